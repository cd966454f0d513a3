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
    SWEEP_PARAMETERS as SWEEP_PARAMETERS,
)
from ._chaos import (
    ChaosSweepConfig as ChaosSweepConfig,
)
from ._chaos import (
    chaos_summary as chaos_summary,
)
from ._chaos import (
    chaos_sweep as chaos_sweep,
)
from ._chaos import (
    sample_network as sample_network,
)
from ._chaos import (
    sweep_statistics as sweep_statistics,
)
from ._connectome import (
    CONNECTOME_FORMAT as CONNECTOME_FORMAT,
)
from ._connectome import (
    DEFAULT_SIGNS as DEFAULT_SIGNS,
)
from ._connectome import (
    REFERENCE_FILES as REFERENCE_FILES,
)
from ._connectome import (
    Connectome as Connectome,
)
from ._connectome import (
    ImportConnectomeConfig as ImportConnectomeConfig,
)
from ._connectome import (
    import_reference_connectome as import_reference_connectome,
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
from ._figures import (
    plot_convergence as plot_convergence,
)
from ._figures import (
    plot_spectrum as plot_spectrum,
)
from ._figures import (
    plot_sweep as plot_sweep,
)
from ._figures import (
    plot_training_spectra as plot_training_spectra,
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
    SpectrumConfig as SpectrumConfig,
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
from ._lyapunov import (
    spectrum_summary as spectrum_summary,
)
from ._model import (
    STEP_SOLVE as STEP_SOLVE,
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
from ._network import (
    LyapunovConfig as LyapunovConfig,
)
from ._network import (
    NetworkConfig as NetworkConfig,
)
from ._network import (
    network_spectrum as network_spectrum,
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
    ParameterSubset as ParameterSubset,
)
from ._train import (
    SpectrumFit as SpectrumFit,
)
from ._train import (
    SpectrumParams as SpectrumParams,
)
from ._train import (
    SpectrumTask as SpectrumTask,
)
from ._train import (
    SpectrumTrainConfig as SpectrumTrainConfig,
)
from ._train import (
    SubsetConfig as SubsetConfig,
)
from ._train import (
    TrainNetworkConfig as TrainNetworkConfig,
)
from ._train import (
    fit_spectra as fit_spectra,
)
from ._train import (
    fit_spectrum as fit_spectrum,
)
from ._train import (
    random_subset as random_subset,
)

__all__ = [
    "RateRNN",
    "STEP_SOLVERS",
    "STEP_SOLVE",
    "random_coupling",
    "ACTIVATIONS",
    "get_activation",
    "tanh",
    "tanh_stretched",
    "tanh_positive",
    "identity",
    "SpectrumConfig",
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
    "spectrum_summary",
    "householder_qr",
    "qr",
    "SWEEP_PARAMETERS",
    "ChaosSweepConfig",
    "chaos_sweep",
    "chaos_summary",
    "sample_network",
    "sweep_statistics",
    "CONNECTOME_FORMAT",
    "DEFAULT_SIGNS",
    "Connectome",
    "load_connectome",
    "save_connectome",
    "sinkhorn_balance",
    "read_plain_pickle",
    "name_map_to_index",
    "REFERENCE_FILES",
    "ImportConnectomeConfig",
    "import_reference_connectome",
    "TRAINABLE",
    "ParameterSubset",
    "random_subset",
    "SpectrumParams",
    "SpectrumTask",
    "SubsetConfig",
    "TrainNetworkConfig",
    "SpectrumTrainConfig",
    "SpectrumFit",
    "fit_spectra",
    "fit_spectrum",
    "plot_spectrum",
    "plot_convergence",
    "plot_sweep",
    "plot_training_spectra",
    "NetworkConfig",
    "LyapunovConfig",
    "network_spectrum",
]
