r"""Two-dimensional incompressible Navier-Stokes flow, vorticity-streamfunction form, solved
pseudo-spectrally on a periodic grid."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._base import AbstractPDE, check_grid, check_state
from ._grid import Grid, scalar_parameter

__all__ = ["NavierStokes"]

Scalar = Float[Array, ""]


def _wavenumbers(shape: tuple[int, int], dx: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angular wavenumbers ``ky [H, 1]`` and ``kx [1, W//2 + 1]`` of ``rfft2`` on cells of size
    ``dx``, and the 2/3-rule mask (True where both mode numbers satisfy ``|m| < n/3``)."""
    h, w = shape
    my = np.fft.fftfreq(h, d=1.0 / h)[:, None]  # integer mode numbers
    mx = np.fft.rfftfreq(w, d=1.0 / w)[None, :]
    ky = 2 * math.pi * my / (h * dx)
    kx = 2 * math.pi * mx / (w * dx)
    keep = (np.abs(my) < h / 3) & (np.abs(mx) < w / 3)
    return ky, kx, keep


class NavierStokes(AbstractPDE):
    r"""Incompressible Navier-Stokes flow in two dimensions, in vorticity form, state ``[ω]``:

    $$
    \partial_t \omega + \mathbf u\cdot\nabla\omega = \nu\Delta\omega - \alpha\,\omega
    + F_\omega, \qquad \Delta\psi = -\omega, \qquad
    \mathbf u = (u, v) = \Big(\frac{\partial\psi}{\partial y}, -\frac{\partial\psi}{\partial x}
    \Big),
    $$

    with viscosity $\nu$, linear drag $\alpha$ and the vorticity of a Kolmogorov body force
    $\mathbf f = F \sin(n\kappa y)\,\hat{\mathbf x}$,
    $F_\omega = \partial_x f_y - \partial_y f_x = -F n\kappa\cos(n\kappa y)$, where
    $\kappa = 2\pi / L_y$ and $L_y = H\Delta x$ (x = columns, y = rows, cell centres at
    $y = i\Delta x$). The velocity is divergence-free by construction and
    $\omega = \partial_x v - \partial_y u$.

    **Discretisation (pseudo-spectral, Orszag 1971).** The grid must be periodic. The
    Poisson equation is solved exactly in Fourier space, $\hat\psi = \hat\omega / |\mathbf k|^2$
    with the mean mode set to zero (a periodic streamfunction is defined up to a constant),
    and $\nu\Delta$ is the exact spectral Laplacian $-\nu|\mathbf k|^2$. The advection term is
    computed in physical space from spectral derivatives, with the 2/3 rule: $\omega$ and
    $\psi$ are truncated to the modes with $|m_x| < W/3$ and $|m_y| < H/3$ (mode numbers
    $m$ = periods per domain) before the products and the product is truncated likewise, so
    the quadratic term has no aliasing error: it is the Galerkin projection of
    $\mathbf u\cdot\nabla\omega$. Consequences that hold to round-off in the semi-discrete
    equations:

    - with $\nu = \alpha = F = 0$ the energy $E = \tfrac12\langle|\mathbf u|^2\rangle
      = \tfrac12\langle\psi\,\omega\rangle$ and the enstrophy
      $Z = \tfrac12\langle\omega^2\rangle$ are conserved (modes beyond 2/3 are then frozen);
    - without forcing, $\mathrm dE/\mathrm dt = -2\nu Z - 2\alpha E$ (for zero-mean
      $\omega$);
    - steady Euler flows with $\omega = g(\psi)$ have no advection, so the Taylor-Green
      vortex $\omega = 2k\cos(kx)\cos(ky)$ decays exactly as $e^{-2\nu k^2 t}$.

    The FFT couples every cell, so `PDESolver` refuses a row-split grid (`SplitGrid`),
    whose halo exchange only carries nearest-neighbour coupling (``local = False``).

    Defaults: ``ν = 1e-3`` on the square $[0, 2\pi)^2$ at 64 cells (``dx = 2π/64``), freely
    decaying (no forcing, no drag). Kochkov et al. (2021)'s Kolmogorov flow at Reynolds number
    1000 is ``forcing = 1``, ``forcing_wavenumber = 4``, ``drag = 0.1`` on that square (at far
    higher resolution). Explicit solvers need the advective CFL condition
    ``dt0 <= C dx / max|u|`` (and $\nu|\mathbf k|^2_{\max}$ dt0 below the solver's limit).

    Args:
        viscosity: the kinematic viscosity $\nu$ (>= 0).
        forcing: the amplitude $F$ of the Kolmogorov body force.
        forcing_wavenumber: $n$, the periods of the body force along y (a positive int).
        drag: the linear drag coefficient $\alpha$.
        grid: the grid; its boundary must be periodic.
    """

    viscosity: Scalar
    forcing: Scalar
    drag: Scalar
    forcing_wavenumber: int = eqx.field(static=True)
    grid: Grid = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    non_negative_fields: ClassVar[tuple[str, ...]] = ("viscosity",)
    local: ClassVar[bool] = False

    def __init__(
        self,
        viscosity: float = 1e-3,
        forcing: float = 0.0,
        forcing_wavenumber: int = 4,
        drag: float = 0.0,
        grid: Grid = Grid(dx=2 * math.pi / 64),
    ):
        self.viscosity = scalar_parameter(viscosity, "viscosity", non_negative=True)
        self.forcing = scalar_parameter(forcing, "forcing")
        if (
            isinstance(forcing_wavenumber, bool)
            or not isinstance(forcing_wavenumber, int)
            or forcing_wavenumber < 1
        ):
            raise ValueError(
                f"forcing_wavenumber must be a positive int; got {forcing_wavenumber!r}"
            )
        self.forcing_wavenumber = forcing_wavenumber
        self.drag = scalar_parameter(drag, "drag")
        grid = check_grid(grid)
        if grid.boundary != "periodic":
            raise ValueError(
                "NavierStokes solves its Poisson equation by FFT and needs a periodic grid; got "
                f"boundary {grid.boundary!r}"
            )
        self.grid = grid
        self.channels = 1

    # ------------------------------------------------------------------ diagnostics
    def _spectral(self, x: Array) -> tuple[Array, Array, Array, Array, np.ndarray]:
        check_state(x, 1, "x")
        h, w = x.shape[-2:]
        ky, kx, keep = _wavenumbers((h, w), self.grid.dx)
        k2 = ky**2 + kx**2
        k2[0, 0] = 1.0  # the mean mode of ψ is set to zero below
        omega_hat = jnp.fft.rfft2(x[0])
        psi_hat = (omega_hat / k2).at[0, 0].set(0.0)
        return omega_hat, psi_hat, jnp.asarray(ky), jnp.asarray(kx), keep

    def streamfunction(self, x: Float[Array, "1 H W"]) -> Float[Array, "1 H W"]:
        r"""$\psi$ with $\Delta\psi = -\omega$ and zero mean (spectral)."""
        _, psi_hat, _, _, _ = self._spectral(x)
        return jnp.fft.irfft2(psi_hat, s=x.shape[-2:])[None]

    def velocity(self, x: Float[Array, "1 H W"]) -> tuple[Array, Array]:
        r"""$(u, v) = (\partial_y\psi, -\partial_x\psi)$, each ``[1, H, W]`` (spectral
        derivatives; the Nyquist modes of an even grid, whose derivative is not real, are
        left out)."""
        h, w = x.shape[-2:]
        _, psi_hat, ky, kx, _ = self._spectral(x)
        ky = jnp.where(jnp.arange(h)[:, None] * 2 == h, 0.0, ky)
        kx = jnp.where(jnp.arange(w // 2 + 1)[None, :] * 2 == w, 0.0, kx)
        u = jnp.fft.irfft2(1j * ky * psi_hat, s=(h, w))
        v = jnp.fft.irfft2(-1j * kx * psi_hat, s=(h, w))
        return u[None], v[None]

    def body_force(self, shape: tuple[int, int]) -> Float[Array, "1 H W"]:
        r"""The vorticity source $F_\omega = -F n\kappa\cos(n\kappa y)$ on a grid of
        ``shape`` ``(H, W)``."""
        h, w = shape
        kappa = 2 * math.pi / (h * self.grid.dx)
        n = self.forcing_wavenumber
        y = jnp.arange(h)[:, None] * self.grid.dx
        return (-self.forcing * n * kappa * jnp.cos(n * kappa * y) * jnp.ones((1, w)))[None]

    # ------------------------------------------------------------------ the right-hand side
    def advection(self, x: Float[Array, "1 H W"]) -> Float[Array, "1 H W"]:
        r"""The dealiased advection term $P[\mathbf u\cdot\nabla\omega]$ (2/3 rule, see the
        class docstring)."""
        h, w = x.shape[-2:]
        omega_hat, psi_hat, ky, kx, keep = self._spectral(x)
        keep = jnp.asarray(keep)
        omega_hat = jnp.where(keep, omega_hat, 0.0)
        psi_hat = jnp.where(keep, psi_hat, 0.0)

        def real(z: Array) -> Array:
            return jnp.fft.irfft2(z, s=(h, w))

        u, v = real(1j * ky * psi_hat), real(-1j * kx * psi_hat)
        wx, wy = real(1j * kx * omega_hat), real(1j * ky * omega_hat)
        product = jnp.where(keep, jnp.fft.rfft2(u * wx + v * wy), 0.0)
        return real(product)[None]

    def rhs(self, t: Scalar, x: Float[Array, "1 H W"], args: Any) -> Array:
        h, w = x.shape[-2:]
        ky, kx, _ = _wavenumbers((h, w), self.grid.dx)
        diffusion = jnp.fft.irfft2(-(ky**2 + kx**2) * jnp.fft.rfft2(x[0]), s=(h, w))[None]
        return (
            -self.advection(x)
            + self.viscosity * diffusion
            - self.drag * x
            + self.body_force((h, w))
        )
