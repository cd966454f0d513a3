r"""Fixed pattern-forming PDEs with literature defaults.

Each model is an `AbstractPDE` whose parameters are trainable 0-d arrays (so a
model can be fitted to data, see `diffdyn.pde`); the constructor takes them as Python numbers
together with the grid (a `Grid`: ``dx``, ``boundary``, ``boundary_value``; fixed models
have no random initialisation and take no ``key``). Laplacians use the 5-point
stencil and first derivatives central differences, with the padding the boundary prescribes.

- ``heat``, ``advection-diffusion`` ``[u]*C``: u_t = D Δu − ∇·(v u)
- ``gray-scott`` ``[A, B]``: A_t = D_A ΔA − A B² + F (1 − A);  B_t = D_B ΔB + A B² − (F + k) B
- ``fitzhugh-nagumo`` ``[u, v]``: u_t = a Δu + u − u³ − v + k;  τ v_t = b Δv + u − v
- ``brusselator`` ``[u, v]``: u_t = D_u Δu + a − (b + 1) u + u² v;  v_t = D_v Δv + b u − u² v
- ``schnakenberg`` ``[u, v]``: u_t = D_u Δu + a − u + u² v;  v_t = D_v Δv + b − u² v
- ``keller-segel`` ``[u, v]``: u_t = D_u Δu − ∇·(χ u/(1+u²) ∇v) + u(1−u) − ε u³;
  v_t = D_v Δv + u − α v
- ``cahn-hilliard`` ``[φ]``: φ_t = D Δμ,  μ = φ³ − φ − γ Δφ
- ``chhabra`` ``[A, I]``: A_t = D_A ΔA + S_A A²/(K_I + I) − K_dA A;  I_t = D_I ΔI + S_I A² − K_dI I
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import AbstractPDE, check_grid
from ._grid import Grid, scalar_parameter

__all__ = [
    "AdvectionDiffusion",
    "GrayScott",
    "FitzHughNagumo",
    "Brusselator",
    "Schnakenberg",
    "KellerSegel",
    "CahnHilliard",
    "Chhabra",
]

Scalar = Float[Array, ""]


class AdvectionDiffusion(AbstractPDE):
    r"""Heat / advection-diffusion equation, every channel independently:

    $$
    \partial_t u = D\,\Delta u - \nabla\cdot(\mathbf v\,u),
    \qquad \mathbf v = (v_x, v_y) \text{ constant}.
    $$

    On a periodic grid a Gaussian of variance $\sigma_0^2$ stays Gaussian with variance
    $\sigma_0^2 + 2Dt$, centre moved by $\mathbf v t$ and peak scaled by
    $\sigma_0^2 / (\sigma_0^2 + 2Dt)$ (2-D). Defaults: ``D = 1``, ``v = 0`` (heat).
    """

    diffusion: Scalar
    velocity_x: Scalar
    velocity_y: Scalar
    grid: Grid = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    non_negative_fields: ClassVar[tuple[str, ...]] = ("diffusion",)

    def __init__(
        self,
        diffusion: float = 1.0,
        velocity_x: float = 0.0,
        velocity_y: float = 0.0,
        channels: int = 1,
        grid: Grid = Grid(),
    ):
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int; got {channels!r}")
        self.diffusion = scalar_parameter(diffusion, "diffusion", non_negative=True)
        self.velocity_x = scalar_parameter(velocity_x, "velocity_x")
        self.velocity_y = scalar_parameter(velocity_y, "velocity_y")
        self.channels = channels
        self.grid = check_grid(grid)

    def rhs(self, t: Scalar, x: Float[Array, "C H W"], args: Any) -> Array:
        g = self.grid
        return self.diffusion * g.laplacian(x) - g.divergence(
            self.velocity_x * x, self.velocity_y * x
        )


class GrayScott(AbstractPDE):
    r"""Gray-Scott reaction-diffusion (Pearson 1993), state ``[A, B]``:

    $$
    \partial_t A = D_A \Delta A - A B^2 + F (1 - A), \qquad
    \partial_t B = D_B \Delta B + A B^2 - (F + k) B.
    $$

    Defaults are those of Richardson et al. (2024, Fig. 3): ``D_A = 0.1``, ``D_B = 0.05``,
    ``F = 0.0623`` (feed), ``k = 0.06268`` (kill), ``dx = 1``. The homogeneous state
    ``(A, B) = (1, 0)`` is stable; a seeded perturbation grows into spots and stripes.
    """

    diffusion_a: Scalar
    diffusion_b: Scalar
    feed: Scalar
    kill: Scalar
    grid: Grid = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    non_negative_fields: ClassVar[tuple[str, ...]] = ("diffusion_a", "diffusion_b")

    def __init__(
        self,
        diffusion_a: float = 0.1,
        diffusion_b: float = 0.05,
        feed: float = 0.0623,
        kill: float = 0.06268,
        grid: Grid = Grid(),
    ):
        self.diffusion_a = scalar_parameter(diffusion_a, "diffusion_a", non_negative=True)
        self.diffusion_b = scalar_parameter(diffusion_b, "diffusion_b", non_negative=True)
        self.feed = scalar_parameter(feed, "feed")
        self.kill = scalar_parameter(kill, "kill")
        self.channels = 2
        self.grid = check_grid(grid)

    def rhs(self, t: Scalar, x: Float[Array, "2 H W"], args: Any) -> Array:
        lap = self.grid.laplacian(x)
        a, b = x[0], x[1]
        abb = a * b * b
        da = self.diffusion_a * lap[0] - abb + self.feed * (1 - a)
        db = self.diffusion_b * lap[1] + abb - (self.feed + self.kill) * b
        return jnp.stack([da, db])


class FitzHughNagumo(AbstractPDE):
    r"""FitzHugh-Nagumo reaction-diffusion with Turing patterns, state ``[u, v]``:

    $$
    \partial_t u = a \Delta u + u - u^3 - v + k, \qquad
    \tau \partial_t v = b \Delta v + u - v.
    $$

    Defaults (Rossant, *IPython Cookbook*, recipe 12.4): ``a = 2.8e-4``, ``b = 5e-3``,
    ``τ = 0.1``, ``k = -0.005`` on the square [-1, 1]² with 100 cells, ``dx = 0.02``.
    """

    diffusion_u: Scalar
    diffusion_v: Scalar
    tau: Scalar
    k: Scalar
    grid: Grid = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    non_negative_fields: ClassVar[tuple[str, ...]] = ("diffusion_u", "diffusion_v")

    def __init__(
        self,
        diffusion_u: float = 2.8e-4,
        diffusion_v: float = 5e-3,
        tau: float = 0.1,
        k: float = -0.005,
        grid: Grid = Grid(dx=0.02),
    ):
        self.diffusion_u = scalar_parameter(diffusion_u, "diffusion_u", non_negative=True)
        self.diffusion_v = scalar_parameter(diffusion_v, "diffusion_v", non_negative=True)
        self.tau = scalar_parameter(tau, "tau")
        if not float(tau) > 0:
            raise ValueError(f"tau must be > 0; got {tau!r}")
        self.k = scalar_parameter(k, "k")
        self.channels = 2
        self.grid = check_grid(grid)

    def rhs(self, t: Scalar, x: Float[Array, "2 H W"], args: Any) -> Array:
        lap = self.grid.laplacian(x)
        u, v = x[0], x[1]
        du = self.diffusion_u * lap[0] + u - u**3 - v + self.k
        dv = (self.diffusion_v * lap[1] + u - v) / self.tau
        return jnp.stack([du, dv])


class Brusselator(AbstractPDE):
    r"""Brusselator (Prigogine & Lefever 1968), state ``[u, v]``:

    $$
    \partial_t u = D_u \Delta u + a - (b + 1) u + u^2 v, \qquad
    \partial_t v = D_v \Delta v + b u - u^2 v.
    $$

    The fixed point ``(a, b/a)`` is Turing-unstable for
    $b > (1 + a\sqrt{D_u/D_v})^2$ and Hopf-unstable for $b > 1 + a^2$.
    Defaults ``a = 4.5``, ``b = 7.5``, ``D_u = 2``, ``D_v = 16`` (Peña & Pérez-García 2001):
    Turing threshold 6.71 < b < Hopf threshold 21.25, so stationary Turing patterns form.
    """

    diffusion_u: Scalar
    diffusion_v: Scalar
    a: Scalar
    b: Scalar
    grid: Grid = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    non_negative_fields: ClassVar[tuple[str, ...]] = ("diffusion_u", "diffusion_v")

    def __init__(
        self,
        diffusion_u: float = 2.0,
        diffusion_v: float = 16.0,
        a: float = 4.5,
        b: float = 7.5,
        grid: Grid = Grid(),
    ):
        self.diffusion_u = scalar_parameter(diffusion_u, "diffusion_u", non_negative=True)
        self.diffusion_v = scalar_parameter(diffusion_v, "diffusion_v", non_negative=True)
        self.a = scalar_parameter(a, "a")
        self.b = scalar_parameter(b, "b")
        self.channels = 2
        self.grid = check_grid(grid)

    def rhs(self, t: Scalar, x: Float[Array, "2 H W"], args: Any) -> Array:
        lap = self.grid.laplacian(x)
        u, v = x[0], x[1]
        uuv = u * u * v
        du = self.diffusion_u * lap[0] + self.a - (self.b + 1) * u + uuv
        dv = self.diffusion_v * lap[1] + self.b * u - uuv
        return jnp.stack([du, dv])


class Schnakenberg(AbstractPDE):
    r"""Schnakenberg (1979) activator-substrate model, state ``[u, v]``:

    $$
    \partial_t u = D_u \Delta u + a - u + u^2 v, \qquad
    \partial_t v = D_v \Delta v + b - u^2 v.
    $$

    Fixed point ``(a + b, b / (a + b)²)``. Defaults ``a = 0.1``, ``b = 0.9``, ``D_u = 1``,
    ``D_v = 40`` (Murray, *Mathematical Biology II*, Ch. 2), which lie in the Turing space.
    """

    diffusion_u: Scalar
    diffusion_v: Scalar
    a: Scalar
    b: Scalar
    grid: Grid = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    non_negative_fields: ClassVar[tuple[str, ...]] = ("diffusion_u", "diffusion_v")

    def __init__(
        self,
        diffusion_u: float = 1.0,
        diffusion_v: float = 40.0,
        a: float = 0.1,
        b: float = 0.9,
        grid: Grid = Grid(),
    ):
        self.diffusion_u = scalar_parameter(diffusion_u, "diffusion_u", non_negative=True)
        self.diffusion_v = scalar_parameter(diffusion_v, "diffusion_v", non_negative=True)
        self.a = scalar_parameter(a, "a")
        self.b = scalar_parameter(b, "b")
        self.channels = 2
        self.grid = check_grid(grid)

    def rhs(self, t: Scalar, x: Float[Array, "2 H W"], args: Any) -> Array:
        lap = self.grid.laplacian(x)
        u, v = x[0], x[1]
        uuv = u * u * v
        du = self.diffusion_u * lap[0] + self.a - u + uuv
        dv = self.diffusion_v * lap[1] + self.b - uuv
        return jnp.stack([du, dv])


class KellerSegel(AbstractPDE):
    r"""Keller-Segel chemotaxis with logistic growth, cells ``u`` and chemoattractant ``v``:

    $$
    \partial_t u = D_u \Delta u - \nabla\cdot\Big(\chi \frac{u}{1 + u^2} \nabla v\Big)
    + u (1 - u) - \varepsilon u^3, \qquad
    \partial_t v = D_v \Delta v + u - \alpha v.
    $$

    Defaults as in Richardson et al.'s fixed model: ``D_u = 1``, ``χ = 3``, ``D_v = 1``,
    ``α = 0.01``, ``ε = 0.01``.
    """

    diffusion_u: Scalar
    diffusion_v: Scalar
    chemotaxis: Scalar
    decay: Scalar
    stability: Scalar
    grid: Grid = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    non_negative_fields: ClassVar[tuple[str, ...]] = ("diffusion_u", "diffusion_v")

    def __init__(
        self,
        diffusion_u: float = 1.0,
        diffusion_v: float = 1.0,
        chemotaxis: float = 3.0,
        decay: float = 0.01,
        stability: float = 0.01,
        grid: Grid = Grid(),
    ):
        self.diffusion_u = scalar_parameter(diffusion_u, "diffusion_u", non_negative=True)
        self.diffusion_v = scalar_parameter(diffusion_v, "diffusion_v", non_negative=True)
        self.chemotaxis = scalar_parameter(chemotaxis, "chemotaxis")
        self.decay = scalar_parameter(decay, "decay")
        self.stability = scalar_parameter(stability, "stability")
        self.channels = 2
        self.grid = check_grid(grid)

    def rhs(self, t: Scalar, x: Float[Array, "2 H W"], args: Any) -> Array:
        g = self.grid
        lap = g.laplacian(x)
        u, v = x[:1], x[1:]
        vx, vy = g.gradient(v)
        sensitivity = self.chemotaxis * u / (1 + u * u)
        taxis = g.divergence(sensitivity * vx, sensitivity * vy)
        du = self.diffusion_u * lap[:1] - taxis + u * (1 - u) - self.stability * u**3
        dv = self.diffusion_v * lap[1:] + u - self.decay * v
        return jnp.concatenate([du, dv])


class CahnHilliard(AbstractPDE):
    r"""Cahn-Hilliard phase separation, order parameter ``φ``:

    $$
    \partial_t \varphi = D \Delta \mu, \qquad \mu = \varphi^3 - \varphi - \gamma\Delta\varphi.
    $$

    Conserves $\sum \varphi$ exactly on periodic and Neumann grids. Defaults ``D = 0.1``,
    ``γ = 1`` (Richardson et al.), typically from ``U(-1, 1)`` noise.
    """

    mobility: Scalar
    gamma: Scalar
    grid: Grid = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    non_negative_fields: ClassVar[tuple[str, ...]] = ("mobility", "gamma")

    def __init__(
        self,
        mobility: float = 0.1,
        gamma: float = 1.0,
        grid: Grid = Grid(),
    ):
        self.mobility = scalar_parameter(mobility, "mobility", non_negative=True)
        self.gamma = scalar_parameter(gamma, "gamma", non_negative=True)
        self.channels = 1
        self.grid = check_grid(grid)

    def rhs(self, t: Scalar, x: Float[Array, "1 H W"], args: Any) -> Array:
        g = self.grid
        mu = x**3 - x - self.gamma * g.laplacian(x)
        return self.mobility * g.laplacian(mu)


class Chhabra(AbstractPDE):
    r"""Activator-inhibitor model of Chhabra et al. (2019), activator ``A``, inhibitor ``I``:

    $$
    \partial_t A = D_A \Delta A + S_A \frac{A^2}{K_I + I} - K_{dA} A, \qquad
    \partial_t I = D_I \Delta I + S_I A^2 - K_{dI} I.
    $$

    Defaults (Richardson et al.): ``D_A = 0.0025``, ``D_I = 0.4``, ``S_A = S_I = 0.01``,
    ``K_I = 1``, ``K_dA = 0.001``, ``K_dI = 0.008``, ``dx = 0.5``; typically from ``U(0, 0.5)``.
    """

    diffusion_a: Scalar
    diffusion_i: Scalar
    production_a: Scalar
    production_i: Scalar
    saturation: Scalar
    decay_a: Scalar
    decay_i: Scalar
    grid: Grid = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    non_negative_fields: ClassVar[tuple[str, ...]] = ("diffusion_a", "diffusion_i")

    def __init__(
        self,
        diffusion_a: float = 0.0025,
        diffusion_i: float = 0.4,
        production_a: float = 0.01,
        production_i: float = 0.01,
        saturation: float = 1.0,
        decay_a: float = 0.001,
        decay_i: float = 0.008,
        grid: Grid = Grid(dx=0.5),
    ):
        self.diffusion_a = scalar_parameter(diffusion_a, "diffusion_a", non_negative=True)
        self.diffusion_i = scalar_parameter(diffusion_i, "diffusion_i", non_negative=True)
        self.production_a = scalar_parameter(production_a, "production_a")
        self.production_i = scalar_parameter(production_i, "production_i")
        self.saturation = scalar_parameter(saturation, "saturation", non_negative=True)
        self.decay_a = scalar_parameter(decay_a, "decay_a")
        self.decay_i = scalar_parameter(decay_i, "decay_i")
        self.channels = 2
        self.grid = check_grid(grid)

    def rhs(self, t: Scalar, x: Float[Array, "2 H W"], args: Any) -> Array:
        lap = self.grid.laplacian(x)
        a, i = x[0], x[1]
        da = (
            self.diffusion_a * lap[0]
            + self.production_a * a * a / (self.saturation + i)
            - self.decay_a * a
        )
        di = self.diffusion_i * lap[1] + self.production_i * a * a - self.decay_i * i
        return jnp.stack([da, di])
