"""The grid of a semi-discrete PDE: spacing, boundary condition and the stencils that match it.

A `Grid` ties together the three things a right-hand side needs to be consistent at its
edges: the spacing ``dx``, a boundary condition from `diffdyn.common`, and the padding
that the finite differences of `diffdyn.common` must use next to that boundary
(``bc.padding``). Fields are channels-first ``[C, H, W]`` (``H`` = y = rows, ``W`` = x =
columns).

Every boundary in `diffdyn.common` is affine in the state, ``B(u) = P u + c``. The
method of lines keeps the solution on that affine set by integrating the projected vector field

    du/dt = P F(u) = B(u + F(u)) - B(u),

so Dirichlet edges stay at their values (``P`` zeroes them), Neumann edges copy their interior
neighbour, and periodic grids are untouched (``P = I``).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
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

GRID_BOUNDARIES: tuple[str, ...] = ("periodic", "neumann", "dirichlet")
"""Boundary conditions a `Grid` accepts."""


class Grid(eqx.Module):
    """Spacing ``dx``, a boundary (``periodic``, ``neumann`` or ``dirichlet`` with value
    ``boundary_value`` on every channel) and the finite differences consistent with it."""

    dx: float = eqx.field(static=True)
    boundary: str = eqx.field(static=True)
    boundary_value: float = eqx.field(static=True)
    bc: AbstractBoundary

    def __init__(self, dx: float = 1.0, boundary: str = "periodic", boundary_value: float = 0.0):
        if isinstance(dx, bool) or not isinstance(dx, (int, float)):
            raise TypeError(f"dx must be a positive number; got {dx!r}")
        if not (math.isfinite(dx) and dx > 0):
            raise ValueError(f"dx must be a positive number; got {dx!r}")
        if boundary not in GRID_BOUNDARIES:
            raise ValueError(f"boundary must be one of {list(GRID_BOUNDARIES)}; got {boundary!r}")
        if isinstance(boundary_value, bool) or not isinstance(boundary_value, (int, float)):
            raise TypeError(f"boundary_value must be a number; got {boundary_value!r}")
        self.dx = float(dx)
        self.boundary = boundary
        self.boundary_value = float(boundary_value)
        if boundary == "dirichlet":
            self.bc = Dirichlet(values=self.boundary_value)
        else:
            self.bc = make_boundary(boundary)

    @property
    def padding(self) -> str:
        """The padding mode of the stencils, as the boundary prescribes."""
        return self.bc.padding

    # ------------------------------------------------------------------ operators
    def laplacian(self, u: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        """Δu with the 5-point stencil."""
        return laplacian(u, dx=self.dx, padding=self.padding)

    def gradient(self, u: Float[Array, "C H W"]) -> tuple[Array, Array]:
        """``(∂x u, ∂y u)`` by central differences."""
        return (
            gradient_x(u, dx=self.dx, padding=self.padding),
            gradient_y(u, dx=self.dx, padding=self.padding),
        )

    def divergence(self, vx: Float[Array, "C H W"], vy: Float[Array, "C H W"]) -> Array:
        """∇·v = ∂x vx + ∂y vy by central differences."""
        return divergence(vx, vy, dx=self.dx, padding=self.padding)

    def flux_divergence(
        self, k: Float[Array, "C H W"], u: Float[Array, "C H W"]
    ) -> Float[Array, "C H W"]:
        """∇·(k ∇u) = ∇k·∇u + k Δu (compact Laplacian, no checkerboard mode)."""
        kx, ky = self.gradient(k)
        ux, uy = self.gradient(u)
        return kx * ux + ky * uy + k * self.laplacian(u)

    # ------------------------------------------------------------------ boundary
    def impose(self, u: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        """The state with the boundary condition imposed, ``B(u)``."""
        return self.bc(u)

    def project(self, u: Float[Array, "C H W"], du: Float[Array, "C H W"]) -> Array:
        """The linear part of the (affine) boundary applied to ``du``: ``B(u + du) - B(u)``."""
        if self.boundary == "periodic":
            return du
        return self.bc(u + du) - self.bc(u)


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
