"""diffdyn.rnn: continuous-time rate RNNs, Lyapunov spectra, the transition to chaos,
connectome-constrained networks and training on spectra."""

from diffdyn.rnn.lyapunov import (
    convergence_diagnostics,
    entropy_rate,
    kaplan_yorke_dimension,
    lyapunov_spectrum,
    max_exponent,
)
from diffdyn.rnn.model import RateRNN

__all__ = [
    "RateRNN",
    "lyapunov_spectrum",
    "max_exponent",
    "kaplan_yorke_dimension",
    "entropy_rate",
    "convergence_diagnostics",
]
