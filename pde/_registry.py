"""PDE right-hand sides by config name: the fixed models and the neural ones."""

from __future__ import annotations

import typing
from typing import Any, Literal

from ._base import AbstractPDE
from ._chemotaxis import HillenPainter
from ._grid import Grid
from ._models import (
    AdvectionDiffusion,
    Brusselator,
    CahnHilliard,
    Chhabra,
    FitzHughNagumo,
    GrayScott,
    KellerSegel,
    Schnakenberg,
)
from ._navier_stokes import NavierStokes
from ._neural import NeuralChemotaxis, NeuralRDA

__all__ = ["FIXED_MODELS", "PDE_MODELS", "NEURAL_MODELS", "make_pde"]

FixedModelName = Literal[
    "heat",
    "advection-diffusion",
    "gray-scott",
    "fitzhugh-nagumo",
    "brusselator",
    "schnakenberg",
    "keller-segel",
    "cahn-hilliard",
    "chhabra",
    "hillen-painter",
    "navier-stokes-2d",
]
ModelName = Literal[FixedModelName, "neural-rda", "neural-chemotaxis"]

FIXED_MODELS: dict[str, type[AbstractPDE]] = {
    "heat": AdvectionDiffusion,
    "advection-diffusion": AdvectionDiffusion,
    "gray-scott": GrayScott,
    "fitzhugh-nagumo": FitzHughNagumo,
    "brusselator": Brusselator,
    "schnakenberg": Schnakenberg,
    "keller-segel": KellerSegel,
    "cahn-hilliard": CahnHilliard,
    "chhabra": Chhabra,
    "hillen-painter": HillenPainter,
    "navier-stokes-2d": NavierStokes,
}
"""Config names of the fixed models."""

NEURAL_MODELS: dict[str, type[AbstractPDE]] = {
    "neural-rda": NeuralRDA,
    "neural-chemotaxis": NeuralChemotaxis,
}
"""The neural right-hand sides by config name (they need a PRNG key)."""

PDE_MODELS: dict[str, type[AbstractPDE]] = {**FIXED_MODELS, **NEURAL_MODELS}
"""Every right-hand side by its config name."""

if set(typing.get_args(FixedModelName)) != set(FIXED_MODELS):  # pragma: no cover
    raise ImportError("FixedModelName and FIXED_MODELS disagree")


def make_pde(name: str, *, key: Any = None, **kwargs: Any) -> AbstractPDE:
    """Build the right-hand side called ``name`` (see `PDE_MODELS`) from keyword arguments.

    Neural models need ``key`` (fixed models have no random initialisation and do not use it).
    ``grid`` may be a `Grid` or a dict of its fields (as a JSON config gives it), e.g.
    ``make_pde("chhabra", grid={"dx": 0.25})``.
    """
    if name not in PDE_MODELS:
        raise ValueError(f"model must be one of {sorted(PDE_MODELS)}; got {name!r}")
    cls = PDE_MODELS[name]
    if isinstance(kwargs.get("grid"), dict):
        try:
            kwargs["grid"] = Grid(**kwargs["grid"])
        except TypeError as e:
            raise ValueError(f"model {name!r}: bad grid {kwargs['grid']!r}: {e}") from None
    if name in NEURAL_MODELS:
        if key is None:
            raise ValueError(f"model {name!r} is a neural network and needs a PRNG key")
        kwargs["key"] = key
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"model {name!r}: bad arguments: {e}") from None
