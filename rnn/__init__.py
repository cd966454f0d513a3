"""Continuous-time rate RNNs and their Lyapunov spectra.

`RateRNN` (cell types, gains and shifts, connectome constraints), Lyapunov spectra by the
Benettin/QR method (differentiable, in float64), the transition to chaos, connectome files,
and training a network towards a target spectrum.
"""

from ._model import (
    RateRNN as RateRNN,
    STEP_SOLVERS as STEP_SOLVERS,
    random_coupling as random_coupling,
)
from ._activations import (
    ACTIVATIONS as ACTIVATIONS,
    get_activation as get_activation,
    tanh as tanh,
    tanh_stretched as tanh_stretched,
    tanh_positive as tanh_positive,
    identity as identity,
)
from ._lyapunov import (
    LyapunovSpectrum as LyapunovSpectrum,
    AbstractTangentPropagator as AbstractTangentPropagator,
    StepMapPropagator as StepMapPropagator,
    VariationalStepPropagator as VariationalStepPropagator,
    FlowPropagator as FlowPropagator,
    benettin as benettin,
    lyapunov_spectrum as lyapunov_spectrum,
    random_basis as random_basis,
    max_exponent as max_exponent,
    kaplan_yorke_dimension as kaplan_yorke_dimension,
    entropy_rate as entropy_rate,
    running_exponents as running_exponents,
    convergence_diagnostics as convergence_diagnostics,
)
from ._qr import (
    householder_qr as householder_qr,
    qr as qr,
)
from ._chaos import (
    chaos_sweep as chaos_sweep,
    plot_sweep as plot_sweep,
    sample_network as sample_network,
)
from ._connectome import (
    CONNECTOME_FORMAT as CONNECTOME_FORMAT,
    DEFAULT_SIGNS as DEFAULT_SIGNS,
    Connectome as Connectome,
    load_connectome as load_connectome,
    save_connectome as save_connectome,
    sinkhorn_balance as sinkhorn_balance,
    read_plain_pickle as read_plain_pickle,
    name_map_to_index as name_map_to_index,
)
from ._train import (
    SpectrumObjective as SpectrumObjective,
    TRAINABLE as TRAINABLE,
    trainable_spec as trainable_spec,
    spectrum_optimiser as spectrum_optimiser,
    fit_spectrum as fit_spectrum,
)

__all__ = [
    "RateRNN",
    "STEP_SOLVERS",
    "random_coupling",
    "ACTIVATIONS",
    "get_activation",
    "tanh",
    "tanh_stretched",
    "tanh_positive",
    "identity",
    "LyapunovSpectrum",
    "AbstractTangentPropagator",
    "StepMapPropagator",
    "VariationalStepPropagator",
    "FlowPropagator",
    "benettin",
    "lyapunov_spectrum",
    "random_basis",
    "max_exponent",
    "kaplan_yorke_dimension",
    "entropy_rate",
    "running_exponents",
    "convergence_diagnostics",
    "householder_qr",
    "qr",
    "chaos_sweep",
    "plot_sweep",
    "sample_network",
    "CONNECTOME_FORMAT",
    "DEFAULT_SIGNS",
    "Connectome",
    "load_connectome",
    "save_connectome",
    "sinkhorn_balance",
    "read_plain_pickle",
    "name_map_to_index",
    "SpectrumObjective",
    "TRAINABLE",
    "trainable_spec",
    "spectrum_optimiser",
    "fit_spectrum",
]
