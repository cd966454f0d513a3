"""diffdyn: differentiable simulation in JAX.

Five packages on one shared core, each imported from here:
``from diffdyn import nca, oscillators, pde, rnn`` and ``import diffdyn.common``.

- `diffdyn.common`: models, spatial operators, boundaries, ODE solving, the trainer,
  training strategies, augmentation, sharding, logging, and neural differential equations
  (`diffdyn.common.neural_de`);
- `diffdyn.nca`: neural cellular automata;
- `diffdyn.pde`: semi-discrete PDEs, neural reaction-diffusion models, fitting PDEs to data;
- `diffdyn.oscillators`: Kuramoto networks, KuraNet, low-dimensional oscillators and learning
  their dynamics;
- `diffdyn.rnn`: rate RNNs, Lyapunov spectra, the transition to chaos, connectomes.

Subpackages are imported on first use, so ``import diffdyn`` alone does not import JAX.
"""

import importlib
from types import ModuleType

__version__ = "0.2.0"

__all__ = ["__version__", "common", "nca", "pde", "oscillators", "rnn"]

_SUBPACKAGES = ("common", "nca", "pde", "oscillators", "rnn")


def __getattr__(name: str) -> ModuleType:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
