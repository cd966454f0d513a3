"""PDE right-hand sides by config name: the fixed models and the neural ones."""

from __future__ import annotations

from typing import Any

from ._base import AbstractPDE
from ._models import FIXED_MODELS
from ._neural import NeuralChemotaxis, NeuralRDA

__all__ = ["PDE_MODELS", "make_pde"]

PDE_MODELS: dict[str, type[AbstractPDE]] = {
    **FIXED_MODELS,
    "neural-rda": NeuralRDA,
    "neural-chemotaxis": NeuralChemotaxis,
}
"""Every right-hand side by its config name."""


def make_pde(name: str, *, key: Any = None, **kwargs: Any) -> AbstractPDE:
    """Build the right-hand side called ``name`` (see `PDE_MODELS`) from keyword
    arguments; neural models need ``key``."""
    if name not in PDE_MODELS:
        raise ValueError(f"model must be one of {sorted(PDE_MODELS)}; got {name!r}")
    cls = PDE_MODELS[name]
    if cls in (NeuralRDA, NeuralChemotaxis) and key is None:
        raise ValueError(f"model {name!r} is a neural network and needs a PRNG key")
    try:
        return cls(**kwargs, key=key)
    except TypeError as e:
        raise ValueError(f"model {name!r}: bad arguments: {e}") from None
