"""Continuous-time rate RNNs and their Lyapunov spectra.

`RateRNN` (cell types, gains and shifts, connectome constraints), Lyapunov spectra by the
Benettin/QR method (differentiable, in float64), the transition to chaos, connectome files,
and training a network towards a target spectrum.
"""

from ._activations import (
    ACTIVATIONS as ACTIVATIONS,
)
from ._activations import (
    get_activation as get_activation,
)
from ._activations import (
    identity as identity,
)
from ._activations import (
    tanh as tanh,
)
from ._activations import (
    tanh_positive as tanh_positive,
)
from ._activations import (
    tanh_stretched as tanh_stretched,
)
from ._chaos import (
    chaos_sweep as chaos_sweep,
)
from ._chaos import (
    plot_sweep as plot_sweep,
)
from ._chaos import (
    sample_network as sample_network,
)
from ._connectome import (
    CONNECTOME_FORMAT as CONNECTOME_FORMAT,
)
from ._connectome import (
    DEFAULT_SIGNS as DEFAULT_SIGNS,
)
from ._connectome import (
    Connectome as Connectome,
)
from ._connectome import (
    load_connectome as load_connectome,
)
from ._connectome import (
    name_map_to_index as name_map_to_index,
)
from ._connectome import (
    read_plain_pickle as read_plain_pickle,
)
from ._connectome import (
    save_connectome as save_connectome,
)
from ._connectome import (
    sinkhorn_balance as sinkhorn_balance,
)
from ._lyapunov import (
    AbstractTangentPropagator as AbstractTangentPropagator,
)
from ._lyapunov import (
    FlowPropagator as FlowPropagator,
)
from ._lyapunov import (
    LyapunovSpectrum as LyapunovSpectrum,
)
from ._lyapunov import (
    StepMapPropagator as StepMapPropagator,
)
from ._lyapunov import (
    VariationalStepPropagator as VariationalStepPropagator,
)
from ._lyapunov import (
    benettin as benettin,
)
from ._lyapunov import (
    convergence_diagnostics as convergence_diagnostics,
)
from ._lyapunov import (
    entropy_rate as entropy_rate,
)
from ._lyapunov import (
    kaplan_yorke_dimension as kaplan_yorke_dimension,
)
from ._lyapunov import (
    lyapunov_spectrum as lyapunov_spectrum,
)
from ._lyapunov import (
    max_exponent as max_exponent,
)
from ._lyapunov import (
    random_basis as random_basis,
)
from ._lyapunov import (
    running_exponents as running_exponents,
)
from ._model import (
    STEP_SOLVERS as STEP_SOLVERS,
)
from ._model import (
    RateRNN as RateRNN,
)
from ._model import (
    random_coupling as random_coupling,
)
from ._qr import (
    householder_qr as householder_qr,
)
from ._qr import (
    qr as qr,
)
from ._train import (
    TRAINABLE as TRAINABLE,
)
from ._train import (
    SpectrumObjective as SpectrumObjective,
)
from ._train import (
    fit_spectrum as fit_spectrum,
)
from ._train import (
    spectrum_optimiser as spectrum_optimiser,
)
from ._train import (
    trainable_spec as trainable_spec,
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
