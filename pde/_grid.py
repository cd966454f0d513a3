r"""The grid of a semi-discrete PDE: spacing, boundary condition and the stencils that match it.

A `Grid` ties together the three things a right-hand side needs to be consistent at its
edges: the spacing ``dx``, a boundary condition from `diffdyn.common`, and the padding
that the finite differences of `diffdyn.common` must use next to that boundary
(``bc.padding``). Fields are channels-first ``[C, H, W]`` (``H`` = y = rows, ``W`` = x =
columns).

Every boundary in `diffdyn.common` is affine in the state, $B(u) = P u + c$. The
method of lines keeps the solution on that affine set by integrating the projected vector field

$$
\dot u = P F(u) = B(u + F(u)) - B(u),
$$

so Dirichlet edges stay at their values ($P$ zeroes them), Neumann edges copy their interior
neighbour, and periodic grids are untouched ($P = I$).

A `Grid` is a frozen dataclass of three numbers and a name, not an array container: models hold
it as a static field and save it as a nested config, and nothing in it can be trained, whatever
the training loop (the boundary value is a compile-time constant of every solve).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal

import jax.numpy as jnp
from jaxtyping import Array, Float

from diffdyn.common import (
    AbstractBoundary,
    Dirichlet,
    divergence,
    gradient_x,
    gradient_y,
    laplacian,
    make_boundary,
)

__all__ = ["Grid", "GRID_BOUNDARIES", "scalar_parameter"]

BoundaryName = Literal["periodic", "neumann", "dirichlet"]
GRID_BOUNDARIES: tuple[str, ...] = typing.get_args(BoundaryName)
"""Boundary conditions a `Grid` accepts."""


@dataclasses.dataclass(frozen=True)
class Grid:
    """The spacing and boundary of a PDE's grid, and the finite differences consistent with
    them.

    Attributes:
        dx: the cell size (the same along x and y).
        boundary: the boundary condition on every edge and channel.
        boundary_value: the value held on the edge cells by a dirichlet boundary (must stay 0
            for the other boundaries).
    """

    dx: float = 1.0
    boundary: BoundaryName = "periodic"
    boundary_value: float = 0.0

    def __post_init__(self) -> None:
        dx, value = self.dx, self.boundary_value
        if isinstance(dx, bool) or not isinstance(dx, (int, float)):
            raise TypeError(f"dx must be a positive number; got {dx!r}")
        if not (math.isfinite(dx) and dx > 0):
            raise ValueError(f"dx must be a positive number; got {dx!r}")
        if self.boundary not in GRID_BOUNDARIES:
            raise ValueError(
                f"boundary must be one of {list(GRID_BOUNDARIES)}; got {self.boundary!r}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"boundary_value must be a number; got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"boundary_value must be finite; got {value!r}")
        if value != 0 and self.boundary != "dirichlet":
            raise ValueError(
                f"boundary_value applies to the dirichlet boundary only; got boundary_value="
                f"{value!r} with boundary {self.boundary!r}"
            )
        object.__setattr__(self, "dx", float(dx))
        object.__setattr__(self, "boundary_value", float(value))

    @property
    def bc(self) -> AbstractBoundary:
        """The boundary condition of `diffdyn.common` (built on use; it holds no state)."""
        if self.boundary == "dirichlet":
            return Dirichlet(values=self.boundary_value)
        return make_boundary(self.boundary)

    @property
    def padding(self) -> str:
        """The padding mode of the stencils, as the boundary prescribes."""
        return self.bc.padding

    # ------------------------------------------------------------------ operators
    def laplacian(self, u: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        r"""$\Delta u$ with the 5-point stencil."""
        return laplacian(u, dx=self.dx, padding=self.padding)

    def gradient(self, u: Float[Array, "C H W"]) -> tuple[Array, Array]:
        r"""$(\partial_x u, \partial_y u)$ by central differences."""
        return (
            gradient_x(u, dx=self.dx, padding=self.padding),
            gradient_y(u, dx=self.dx, padding=self.padding),
        )

    def divergence(self, vx: Float[Array, "C H W"], vy: Float[Array, "C H W"]) -> Array:
        r"""$\nabla\cdot v = \partial_x v_x + \partial_y v_y$ by central differences."""
        return divergence(vx, vy, dx=self.dx, padding=self.padding)

    def flux_divergence(
        self, k: Float[Array, "C H W"], u: Float[Array, "C H W"]
    ) -> Float[Array, "C H W"]:
        r"""$\nabla\cdot(k \nabla u) = \nabla k\cdot\nabla u + k \Delta u$ (compact Laplacian, no
        checkerboard mode)."""
        kx, ky = self.gradient(k)
        ux, uy = self.gradient(u)
        return kx * ux + ky * uy + k * self.laplacian(u)

    # ------------------------------------------------------------------ boundary
    def impose(self, u: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        """The state with the boundary condition imposed, $B(u)$."""
        return self.bc(u)

    def project(self, u: Float[Array, "C H W"], du: Float[Array, "C H W"]) -> Array:
        """The linear part of the (affine) boundary applied to ``du``: $B(u + du) - B(u)$."""
        if self.boundary == "periodic":
            return du
        bc = self.bc
        return bc(u + du) - bc(u)


def scalar_parameter(value: Any, name: str, *, non_negative: bool = False) -> Array:
    """A trainable 0-d float array from a Python number, checked before any tracing."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number; got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if non_negative and v < 0:
        raise ValueError(f"{name} must be >= 0; got {value!r}")
    return jnp.asarray(v, dtype=float)
