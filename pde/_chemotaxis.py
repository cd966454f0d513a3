r"""Hillen-Painter volume-filling chemotaxis in conservative (finite-volume) form.

The cell flux is evaluated on the faces between neighbouring cells and differenced, so the
discrete divergence telescopes: without growth the total cell mass is conserved to round-off
on a periodic grid.
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from diffdyn.common import pad

from ._base import AbstractPDE, check_grid
from ._grid import Grid, scalar_parameter

__all__ = ["HillenPainter"]

Scalar = Float[Array, ""]


def _minmod(a: Array, b: Array) -> Array:
    """The smaller of ``a`` and ``b`` in magnitude where they have the same sign, else 0."""
    return jnp.where(a * b > 0, jnp.sign(a) * jnp.minimum(jnp.abs(a), jnp.abs(b)), 0.0)


class HillenPainter(AbstractPDE):
    r"""Volume-filling chemotaxis with logistic growth (Hillen & Painter 2009, "A user's guide
    to PDE models for chemotaxis"), cells ``u``, chemical ``v``:

    $$
    \partial_t u = \nabla\cdot\Big(D_u \nabla u - \chi\, u \Big(1 - \frac{u}{\gamma}\Big)
    \nabla v\Big) + r\, u (1 - u), \qquad
    \partial_t v = D_v \Delta v + u - v.
    $$

    The crowding factor $1 - u/\gamma$ switches chemotaxis off where the cells fill the
    available volume ($u = \gamma$), which prevents blow-up (Painter & Hillen 2002).

    **Discretisation (finite volumes).** Along each axis the flux through the face between
    cells $j$ and $j+1$ is

    $$
    J_{j+1/2} = D_u \frac{u_{j+1} - u_j}{\Delta x}
    - a^+ u^L \Big(1 - \frac{u^R}{\gamma}\Big) - a^- u^R \Big(1 - \frac{u^L}{\gamma}\Big),
    \qquad a = \chi \frac{v_{j+1} - v_j}{\Delta x},
    $$

    with $a^\pm$ the positive and negative parts of the drift speed and $u^L$, $u^R$ the
    values of cells $j$ and $j+1$ reconstructed at the face with minmod-limited slopes
    (MUSCL, van Leer 1979): the drift is upwinded, the cells' own density from the side they
    come from and the crowding from the side they move into. The cell's rate is
    $(J_{j+1/2} - J_{j-1/2})/\Delta x$ plus the same along y. Hence: $\sum u$ changes only
    through growth (to round-off, periodic grid); no flux leaves an empty cell or enters a
    full one, so $0 \le u \le \gamma$ is kept (for small enough steps), where a central
    average of $f(u) = u(1 - u/\gamma)$ would oscillate and blow up once the cell Péclet
    number $\chi|\nabla v|\Delta x / D_u$ exceeds 2 (as it does at the defaults); the
    diffusion of ``u`` and ``v`` is the 5-point Laplacian; and the scheme is second order in
    smooth regions (first order where the limiter acts, at extrema and fronts). Around a
    homogeneous state the drift is linear in $\nabla v$ with mobility $f(\bar u)$, so the
    linearisation below is exact for the discrete equations. Ghost cells come from the grid's
    boundary (periodic: wrap-around; neumann: copies of the edge cell, so no flux crosses the
    wall).

    **Linear stability.** The homogeneous steady states are $(\bar u, \bar u)$ with
    $\bar u = 1$ (or $0$) when $r > 0$ and any $\bar u$ when $r = 0$. A perturbation
    $\propto e^{\lambda t + i\mathbf k\cdot\mathbf x}$ grows at an eigenvalue of

    $$
    A(K) = \begin{pmatrix} -D_u K + r (1 - 2\bar u) & \chi f(\bar u) K \\
    1 & -D_v K - 1 \end{pmatrix},
    $$

    where $K$ is minus the Laplacian's symbol: $|\mathbf k|^2$ in the continuum, and on this
    grid $K = \frac{4}{\Delta x^2}\big(\sin^2\frac{k_x\Delta x}{2}
    + \sin^2\frac{k_y\Delta x}{2}\big)$ (see `growth_rate`). At $(1, 1)$ a band of modes is
    unstable exactly when $\det A(K) < 0$ for some $K > 0$ (the trace is negative), i.e. when
    $\chi(1 - 1/\gamma) > D_u + r D_v + 2\sqrt{r D_u D_v}$.

    Defaults follow the Hillen-Painter model of Richardson et al. (2024): ``D_u = 0.1``,
    ``χ = 5``, ``γ = 10``, ``r = 0.1`` (their receptor and signal saturation left out), with
    ``D_v = 1``, on ``dx = 0.25``. Then $(1, 1)$ is unstable ($4.5 > 0.4$); the fastest
    continuum mode has $K \approx 8.9$ (wavelength about 2.1, eight cells) and grows at rate
    2.3, and cell aggregates form, merge and split. Explicit solvers need a small step: about
    $(1, 1)$ the stiffest mode decays at rate 134, so Heun needs ``dt0 < 0.0149``
    (``dt0 = 0.01`` runs the defaults well).

    Args:
        diffusion_u: the cells' diffusion coefficient $D_u$ (>= 0).
        diffusion_v: the chemical's diffusion coefficient $D_v$ (>= 0).
        chemotaxis: the chemotactic sensitivity $\chi$.
        capacity: the crowding capacity $\gamma$ (> 0) at which chemotaxis stops.
        growth: the logistic growth rate $r$ (0: the cell mass is conserved).
        grid: the grid (spacing and boundary).
    """

    diffusion_u: Scalar
    diffusion_v: Scalar
    chemotaxis: Scalar
    capacity: Scalar
    growth: Scalar
    grid: Grid = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    non_negative_fields: ClassVar[tuple[str, ...]] = ("diffusion_u", "diffusion_v")

    def __init__(
        self,
        diffusion_u: float = 0.1,
        diffusion_v: float = 1.0,
        chemotaxis: float = 5.0,
        capacity: float = 10.0,
        growth: float = 0.1,
        grid: Grid = Grid(dx=0.25),
    ):
        self.diffusion_u = scalar_parameter(diffusion_u, "diffusion_u", non_negative=True)
        self.diffusion_v = scalar_parameter(diffusion_v, "diffusion_v", non_negative=True)
        self.chemotaxis = scalar_parameter(chemotaxis, "chemotaxis")
        self.capacity = scalar_parameter(capacity, "capacity")
        if not float(capacity) > 0:
            raise ValueError(f"capacity must be > 0; got {capacity!r}")
        self.growth = scalar_parameter(growth, "growth")
        self.channels = 2
        self.grid = check_grid(grid)

    def crowding(self, u: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        r"""The chemotactic sensitivity's density dependence $f(u) = u (1 - u/\gamma)$."""
        u = jnp.asarray(u)
        return u * (1 - u / self.capacity)

    def cell_flux_divergence(self, x: Float[Array, "2 H W"]) -> Float[Array, "1 H W"]:
        r"""$\nabla\cdot(D_u\nabla u - \chi f(u)\nabla v)$ as the difference of the face
        fluxes of the class docstring; its sum over a periodic grid is zero."""
        p = pad(x, 2, self.grid.padding)  # [2, H + 4, W + 4]
        along_x = self._divergence_along_last_axis(p[:, 2:-2, :])
        along_y = self._divergence_along_last_axis(jnp.swapaxes(p[:, :, 2:-2], -1, -2))
        return along_x + jnp.swapaxes(along_y, -1, -2)

    def _divergence_along_last_axis(self, q: Float[Array, "2 M N4"]) -> Float[Array, "1 M N"]:
        # q holds N cells along the last axis plus two ghost cells on each side; padded cell c
        # is grid cell c - 2. Faces (c, c + 1) for c = 1 .. N + 1 bound the N grid cells.
        dx = self.grid.dx
        u, v = q[:1], q[1:]
        du = u[..., 1:] - u[..., :-1]  # du[c] = u[c + 1] - u[c]
        slope = _minmod(du[..., :-1], du[..., 1:])  # slope[c - 1]: limited slope of cell c
        left = u[..., 1:-2] + slope[..., :-1] / 2  # cell c's value at its right face
        right = u[..., 2:-1] - slope[..., 1:] / 2  # cell c + 1's value at its left face
        speed = self.chemotaxis * (v[..., 2:-1] - v[..., 1:-2]) / dx
        capacity = self.capacity
        drift = jnp.maximum(speed, 0) * left * (1 - right / capacity) + jnp.minimum(
            speed, 0
        ) * right * (1 - left / capacity)
        flux = self.diffusion_u * du[..., 1:-1] / dx - drift
        return (flux[..., 1:] - flux[..., :-1]) / dx

    def rhs(self, t: Scalar, x: Float[Array, "2 H W"], args: Any) -> Array:
        u, v = x[:1], x[1:]
        du = self.cell_flux_divergence(x) + self.growth * u * (1 - u)
        dv = self.diffusion_v * self.grid.laplacian(v) + u - v
        return jnp.concatenate([du, dv])

    def linearisation(
        self, symbol: Float[ArrayLike, "..."], density: float = 1.0
    ) -> Float[Array, "... 2 2"]:
        r"""The matrix $A(K)$ of the linearised dynamics about the homogeneous state
        $(\bar u, \bar u)$, $\bar u$ = ``density``, for modes with Laplacian symbol $-K$
        (``symbol`` $= K \ge 0$); see the class docstring. $(\bar u, \bar u)$ is a steady
        state only for $\bar u \in \{0, 1\}$ or $r = 0$."""
        k = jnp.asarray(symbol)
        ones = jnp.ones_like(k)
        row_u = jnp.stack(
            [
                -self.diffusion_u * k + self.growth * (1 - 2 * density),
                self.chemotaxis * self.crowding(density) * k,
            ],
            axis=-1,
        )
        row_v = jnp.stack([ones, -self.diffusion_v * k - 1], axis=-1)
        return jnp.stack([row_u, row_v], axis=-2)

    def growth_rate(
        self, symbol: Float[ArrayLike, "..."], density: float = 1.0
    ) -> Float[Array, "..."]:
        r"""The larger eigenvalue's real part of `linearisation`,
        $\operatorname{Re}\tfrac12\big(\operatorname{tr}A + \sqrt{(\operatorname{tr}A)^2
        - 4\det A}\big)$: the growth rate of the mode with Laplacian symbol $-K$. On this grid
        $K = \frac{4}{\Delta x^2}\big(\sin^2\frac{k_x\Delta x}{2} + \sin^2\frac{k_y\Delta
        x}{2}\big)$ for the wave vector $(k_x, k_y)$."""
        a = self.linearisation(symbol, density)
        trace = a[..., 0, 0] + a[..., 1, 1]
        det = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
        disc = trace * trace - 4 * det
        root = jnp.sqrt(jnp.maximum(disc, 0.0))
        return jnp.where(disc >= 0, (trace + root) / 2, trace / 2)
