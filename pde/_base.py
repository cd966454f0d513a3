"""The right-hand side of a semi-discrete PDE, ``dX/dt = F(t, X, args)`` on a grid.

Every PDE model in `diffdyn.pde` (fixed or neural) is an `AbstractPDE`: an
`AbstractModel` (so it saves and loads on its own) holding a
`Grid` and mapping a state ``X`` of shape ``[C, H, W]`` to ``dX/dt``.
`PDESolver` integrates it.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import equinox as eqx
import jax
from jaxtyping import Array, Float, PyTree

from diffdyn.common import AbstractModel

from ._grid import Grid

__all__ = ["AbstractPDE", "check_state"]


def check_state(x: Any, channels: int, name: str = "X") -> None:
    """Raise a ValueError unless ``x`` has shape ``[channels, H, W]``."""
    if not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array [C, H, W]; got {type(x).__name__}")
    if len(x.shape) != 3 or x.shape[0] != channels:
        hint = "; use jax.vmap over the batch axis" if len(x.shape) == 4 else ""
        raise ValueError(
            f"{name} must have shape [{channels}, H, W]; got shape {tuple(x.shape)}{hint}"
        )


def check_grid(grid: Any) -> Grid:
    """``grid`` if it is a `Grid`, else a TypeError."""
    if not isinstance(grid, Grid):
        raise TypeError(
            f"grid must be a Grid (e.g. Grid(dx=0.5, boundary='neumann')); got {grid!r}"
        )
    return grid


class AbstractPDE(AbstractModel):
    """``F(t, X, args) -> dX/dt`` for states ``X`` of shape ``[channels, H, W]``.

    Subclasses give ``grid`` (a `Grid`, held as a static field) and ``channels`` and implement
    `rhs`. ``non_negative_fields`` names the parameters that must stay >= 0 during training
    (diffusion coefficients); see `non_negative_spec`. ``local`` says whether each cell's
    rate depends only on a few neighbours (stencils), which a grid split across devices with
    halos needs; a spectral model (FFTs couple every cell) sets it to ``False``.
    """

    grid: eqx.AbstractVar[Grid]
    channels: eqx.AbstractVar[int]
    non_negative_fields: ClassVar[tuple[str, ...]] = ()
    local: ClassVar[bool] = True

    @property
    def dx(self) -> float:
        """The grid spacing."""
        return self.grid.dx

    @property
    def boundary(self) -> str:
        """The grid's boundary condition."""
        return self.grid.boundary

    @property
    def boundary_value(self) -> float:
        """The value of a Dirichlet boundary."""
        return self.grid.boundary_value

    @abc.abstractmethod
    def rhs(self, t: Float[Array, ""], x: Float[Array, "C H W"], args: Any) -> Array:
        """The time derivative ``dX/dt`` (before the boundary projection)."""

    def __call__(self, t: Float[Array, ""], x: Float[Array, "C H W"], args: Any = None) -> Array:
        """``dX/dt``; checks the shape of ``x`` (at trace time)."""
        check_state(x, self.channels)
        return self.rhs(t, x, args)

    def non_negative_spec(self) -> PyTree[bool]:
        """A boolean pytree with this model's structure, True on the ``non_negative_fields``
        (for `non_negative`)."""
        spec = jax.tree_util.tree_map(lambda _: False, self)
        names = [n for n in self.non_negative_fields if getattr(self, n) is not None]
        if not names:
            return spec
        return eqx.tree_at(
            lambda m: [getattr(m, n) for n in names],
            spec,
            [jax.tree_util.tree_map(lambda _: True, getattr(self, n)) for n in names],
        )

    @classmethod
    def upgrade_hyperparameters(cls, hyperparameters: dict[str, Any], *, version: str) -> dict:
        """Files of diffdyn 0.1.0 recorded the grid as ``dx``, ``boundary`` and
        ``boundary_value`` (and neural models a ``key``); they are one `Grid` now."""
        h = dict(hyperparameters)
        fields = {name: h.pop(name) for name in ("dx", "boundary", "boundary_value") if name in h}
        if fields and "grid" not in h:
            if fields.get("boundary", "periodic") != "dirichlet":
                fields.pop("boundary_value", None)  # it never applied
            h["grid"] = Grid(**fields)
        return h
