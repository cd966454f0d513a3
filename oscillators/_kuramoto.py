r"""Kuramoto and XY phase-oscillator networks: vector fields and order parameters.

Two vector fields on phases $\theta \in \mathbb{R}^N$, with a coupling matrix
$K_{ij}$ (the weight by which *receiver* ``i`` feels *sender* ``j``):

- `Kuramoto` (the "full" model of KuraNet)

  $$
  \dot\theta_i = \omega_i + \sum_j K_{ij} \sin(\theta_j(t - \tau_j) - \theta_i)
  + h_i \sin\theta_i,
  $$

  natural frequencies $\omega$, an external field $h$ and transmission delays
  $\tau_j$ (whole solver steps, one per *sending* node; see `diffdyn.oscillators`).
  Without delays it is an ordinary vector field ``f(t, theta, args)``.
- `XYModel`: $\dot\theta_i = \frac1N \sum_j K_{ij}\sin(\theta_j - \theta_i)$,
  gradient descent on $E = -\frac1{2N}\sum_{ij} K_{ij}\cos(\theta_i - \theta_j)$ when
  $K$ is symmetric.

The coupling sum costs two matrix products instead of $N^2$ sines:

$$
\sum_j K_{ij}\sin(\phi_j - \theta_i)
= \cos\theta_i\,(K\sin\phi)_i - \sin\theta_i\,(K\cos\phi)_i .
$$

Order parameters: $R e^{i\psi} = \frac1N\sum_j e^{i\theta_j}$ (`order_parameter`)
and per group $R_g e^{i\psi_g}$ (`group_order_parameter`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from diffdyn.common import SolveConfig
from diffdyn.common import solve as solve_ode

from ._delays import AbstractDelayedVectorField, DelayedEuler

__all__ = [
    "coupling_sum",
    "pairwise_coupling_sum",
    "Kuramoto",
    "XYModel",
    "xy_energy",
    "order_parameter",
    "mean_phase",
    "group_order_parameter",
    "one_hot_groups",
    "splay_state",
    "simulate",
]


def _check_coupling(coupling: Array, n: int, name: str = "coupling") -> None:
    if coupling.ndim != 2 or coupling.shape != (n, n):
        raise ValueError(f"{name} must have shape [N, N] = ({n}, {n}); got {coupling.shape}")


def coupling_sum(
    coupling: Float[Array, "n n"],
    theta: Float[Array, " n"],
    sender: Float[Array, " n"] | None = None,
) -> Float[Array, " n"]:
    r"""$c_i = \sum_j K_{ij}\sin(\phi_j - \theta_i)$ with $\phi$ = ``sender``
    (default ``theta``), computed as $\cos\theta_i (K\sin\phi)_i - \sin\theta_i
    (K\cos\phi)_i$: one ``[N, N] @ [N, 2]`` product, $2N$ sines and cosines per phase
    vector."""
    phi = theta if sender is None else sender
    sc = jnp.stack([jnp.sin(phi), jnp.cos(phi)], axis=-1)
    # Keep the product [N, 2] and index its columns: moving the axis first makes XLA:CPU
    # compute it as (sc^T K^T) with a transposed K, which is much slower.
    out = coupling @ sc
    return jnp.cos(theta) * out[..., 0] - jnp.sin(theta) * out[..., 1]


def pairwise_coupling_sum(
    coupling: Float[Array, "n n"],
    theta: Float[Array, " n"],
    sender: Float[Array, " n"] | None = None,
) -> Float[Array, " n"]:
    r"""Reference $\sum_j K_{ij}\sin(\phi_j - \theta_i)$ with $N^2$ sines (tests)."""
    phi = theta if sender is None else sender
    return jnp.sum(coupling * jnp.sin(phi[None, :] - theta[:, None]), axis=-1)


class Kuramoto(AbstractDelayedVectorField):
    r"""$\dot\theta_i = \omega_i + \sum_j K_{ij}\sin(\theta_j(t-\tau_j) - \theta_i)
    + h_i \sin\theta_i$.

    ``omega``, ``field`` ($h$) and ``delays`` ($\tau$, ints >= 0, in solver steps)
    default to zeros. Called as ``f(t, theta, args)`` it ignores the delays (undelayed
    dynamics); `DelayedEuler` calls `delayed` with the phases
    of the senders $\tau_j$ steps back.
    """

    coupling: Float[Array, "n n"]
    omega: Float[Array, " n"]
    field: Float[Array, " n"]
    delays: Int[Array, " n"]

    def __init__(
        self,
        coupling: Float[ArrayLike, "n n"],
        omega: Float[ArrayLike, " n"] | None = None,
        field: Float[ArrayLike, " n"] | None = None,
        delays: Int[ArrayLike, " n"] | None = None,
    ):
        coupling = jnp.asarray(coupling)
        if coupling.ndim != 2 or coupling.shape[0] != coupling.shape[1]:
            raise ValueError(f"coupling must be a square matrix [N, N]; got {coupling.shape}")
        n = coupling.shape[0]
        dtype = coupling.dtype if jnp.issubdtype(coupling.dtype, jnp.floating) else float

        def vec(x, name, dt):
            if x is None:
                return jnp.zeros((n,), dt)
            x = jnp.asarray(x)
            if x.shape != (n,):
                raise ValueError(f"{name} must have shape [N] = ({n},); got {x.shape}")
            return x.astype(dt)

        self.coupling = coupling.astype(dtype)
        self.omega = vec(omega, "omega", dtype)
        self.field = vec(field, "field", dtype)
        if delays is not None:
            d = jnp.asarray(delays)
            if not jnp.issubdtype(d.dtype, jnp.integer):
                raise TypeError(f"delays must be integers (solver steps); got dtype {d.dtype}")
        self.delays = vec(delays, "delays", jnp.int32)
        if _concrete(self.coupling, self.omega, self.field, self.delays):
            for name in ("coupling", "omega", "field"):
                if not bool(jnp.all(jnp.isfinite(getattr(self, name)))):
                    raise ValueError(f"{name} must be finite; it holds NaN or inf")
            if bool(jnp.any(self.delays < 0)):
                raise ValueError(f"delays must be >= 0 solver steps; got {int(self.delays.min())}")

    def undelayed(self) -> "Kuramoto":
        """The same oscillators with every delay 0 (what a pre-history runs with)."""
        return eqx.tree_at(lambda f: f.delays, self, jnp.zeros_like(self.delays))

    def delayed(
        self,
        t: Float[ArrayLike, ""],
        theta: Float[Array, " n"],
        theta_delayed: Float[Array, " n"],
        args: object = None,
    ) -> Float[Array, " n"]:
        r"""$\omega + \sum_j K_{ij}\sin(\phi_j - \theta_i) + h\sin\theta$,
        $\phi_j = \theta_j(t - \tau_j)$ = ``theta_delayed``."""
        return (
            self.omega
            + coupling_sum(self.coupling, theta, theta_delayed)
            + self.field * jnp.sin(theta)
        )


class XYModel(eqx.Module):
    r"""$\dot\theta_i = \frac1N \sum_j K_{ij}\sin(\theta_j - \theta_i)$ (the gradient
    flow of `xy_energy` for symmetric $K$)."""

    coupling: Float[Array, "n n"]

    def __init__(self, coupling: Float[ArrayLike, "n n"]):
        coupling = jnp.asarray(coupling)
        if coupling.ndim != 2 or coupling.shape[0] != coupling.shape[1]:
            raise ValueError(f"coupling must be a square matrix [N, N]; got {coupling.shape}")
        self.coupling = coupling

    def __call__(
        self, t: Float[ArrayLike, ""], theta: Float[Array, " n"], args: object = None
    ) -> Float[Array, " n"]:
        return coupling_sum(self.coupling, theta) / theta.shape[-1]


def xy_energy(coupling: Float[Array, "n n"], theta: Float[Array, " n"]) -> Float[Array, ""]:
    r"""$E = -\frac1{2N}\sum_{ij} K_{ij}\cos(\theta_i - \theta_j)$
    $= -\frac1{2N}(c^\top K c + s^\top K s)$, $c = \cos\theta, s = \sin\theta$."""
    c, s = jnp.cos(theta), jnp.sin(theta)
    return -(c @ coupling @ c + s @ coupling @ s) / (2 * theta.shape[-1])


def _mean_field(theta: Float[Array, "*t n"]) -> tuple[Array, Array]:
    return jnp.mean(jnp.cos(theta), axis=-1), jnp.mean(jnp.sin(theta), axis=-1)


def order_parameter(theta: Float[Array, "*t n"]) -> Float[Array, "*t"]:
    r"""Kuramoto order parameter $R = |\frac1N\sum_j e^{i\theta_j}|$ over the last axis."""
    c, s = _mean_field(theta)
    return jnp.sqrt(c**2 + s**2)


def mean_phase(theta: Float[Array, "*t n"]) -> Float[Array, "*t"]:
    r"""Mean phase $\psi = \arg \frac1N\sum_j e^{i\theta_j}$ over the last axis."""
    c, s = _mean_field(theta)
    return jnp.arctan2(s, c)


def one_hot_groups(labels: Int[ArrayLike, " n"], num_groups: int) -> Float[Array, "g n"]:
    """Masks ``[G, N]``: ``masks[g, i] = 1`` when ``labels[i] == g``."""
    if not isinstance(num_groups, int) or num_groups < 1:
        raise ValueError(f"num_groups must be an int >= 1; got {num_groups!r}")
    labels = jnp.asarray(labels)
    return (labels[None, :] == jnp.arange(num_groups)[:, None]).astype(jnp.result_type(float))


def group_order_parameter(
    theta: Float[Array, "*t n"], masks: Float[Array, "g n"]
) -> tuple[Float[Array, "*t g"], Float[Array, "*t g"]]:
    r"""Per-group order parameter and mean phase, $R_g e^{i\psi_g} =
    \frac1{\max(|g|, 1)}\sum_{i\in g} e^{i\theta_i}$ with ``masks [G, N]`` (empty groups
    get size 1, so $R_g = 0$ and $\psi_g = 0$ there, with zero gradients)."""
    masks = jnp.asarray(masks, theta.dtype)
    if masks.ndim != 2 or masks.shape[-1] != theta.shape[-1]:
        raise ValueError(
            f"masks must have shape [G, N] with N = {theta.shape[-1]}; got {masks.shape}"
        )
    size = jnp.maximum(jnp.sum(masks, axis=-1), 1.0)
    c = jnp.cos(theta) @ masks.T / size
    s = jnp.sin(theta) @ masks.T / size
    # sqrt and arctan2 have no derivative at 0: an empty group (or an exactly balanced one)
    # would turn every gradient into NaN. Same values; zero gradient there.
    sq = c**2 + s**2
    zero = sq == 0
    r = jnp.where(zero, 0.0, jnp.sqrt(jnp.where(zero, 1.0, sq)))
    psi = jnp.where(zero, 0.0, jnp.arctan2(s, jnp.where(zero, 1.0, c)))
    return r, psi


def splay_state(n: int, dtype: jax.typing.DTypeLike = float) -> Float[Array, " n"]:
    r"""Phases $2\pi j / N$, $j = 0..N-1$ ($R = 0$ for $N \ge 2$)."""
    return 2 * jnp.pi * jnp.arange(n, dtype=dtype) / n


def _concrete(*arrays: Any) -> bool:
    """True when no array is a tracer (values can be checked), e.g. outside ``jax.jit``."""
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def simulate(
    field: Callable[..., Array],
    theta0: Float[ArrayLike, " n"],
    *,
    dt: float,
    steps: int,
    save_every: int = 1,
    t0: float = 0.0,
    solve: SolveConfig | None = None,
    max_delay: int = 0,
    past: Float[Array, "d n"] | None = None,
) -> Float[Array, "t n"]:
    r"""Integrate ``field`` over ``steps`` steps of size ``dt`` from ``theta0`` at ``t0`` and
    return the phases at $t_0 + k\,dt$, $k = 0, s, 2s, \dots$ (``s`` = ``save_every``;
    ``steps`` must be a multiple of it), initial state included.

    ``solve`` says how (default: explicit Euler with the fixed step ``dt``, as in KuraNet).
    A fixed-step ``solve`` steps by ``dt`` (its ``dt0`` must be ``None`` or ``dt``); an
    adaptive one chooses its own steps between the save times (``dt0`` is its first step)
    and may take up to ``solve.max_steps`` of them. With ``max_delay > 0`` the solve uses
    `DelayedEuler` (the field must have delays; ``past`` is its pre-history
    ``[max_delay, N]``), which needs the fixed-step ``euler`` solve. Every solve is a
    ``diffrax`` solve.
    """
    for name, v, lo in (
        ("steps", steps, 1),
        ("save_every", save_every, 1),
        ("max_delay", max_delay, 0),
    ):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}; got {v!r}")
    if steps % save_every:
        raise ValueError(f"steps = {steps} must be a multiple of save_every = {save_every}")
    if not (isinstance(dt, (int, float)) and dt > 0):
        raise ValueError(f"dt must be a number > 0; got {dt!r}")
    theta0 = jnp.asarray(theta0)
    if theta0.ndim != 1:
        raise ValueError(f"theta0 must have shape [N]; got {theta0.shape}")
    coupling = getattr(field, "coupling", None)
    if coupling is not None and jnp.ndim(coupling) == 2 and coupling.shape[0] != len(theta0):
        raise ValueError(
            f"theta0 has {len(theta0)} phases but the field couples N = {coupling.shape[0]} "
            "oscillators"
        )
    if solve is None:
        # a cap, not a count: in float32 the end time t0 + steps * dt may round up, and the
        # up-front step count of the solve then reads steps + 1
        solve = SolveConfig(solver="euler", adaptive=False, max_steps=int(steps) + 1)
    elif not isinstance(solve, SolveConfig):
        raise TypeError(f"solve must be a SolveConfig or None; got {type(solve).__name__}")
    if not solve.adaptive:
        if solve.dt0 is not None and solve.dt0 != dt:
            raise ValueError(
                f"a fixed-step simulation steps by dt = {dt}; got solve.dt0 = {solve.dt0} "
                "(leave it None)"
            )
        solve = dataclasses.replace(solve, dt0=dt)
    solver: str | diffrax.AbstractSolver = solve.solver
    if max_delay > 0:
        if not isinstance(field, AbstractDelayedVectorField):
            raise TypeError(
                f"max_delay > 0 needs an AbstractDelayedVectorField; got {type(field).__name__}"
            )
        if solve.solver != "euler" or solve.adaptive:
            raise ValueError(
                "delays are counted in fixed steps and solved by DelayedEuler: they need the "
                f"fixed-step 'euler' solve; got solver {solve.solver!r}, adaptive={solve.adaptive}"
            )
        if solve.adjoint == "backsolve":
            raise ValueError("DelayedEuler needs an adjoint through the solver; got 'backsolve'")
        longest = getattr(field, "delays", None)
        if _concrete(longest) and longest is not None and int(jnp.max(longest)) > max_delay:
            raise ValueError(
                f"the field's longest delay is {int(jnp.max(longest))} steps, more than "
                f"max_delay = {max_delay}; raise max_delay (delays are never clipped)"
            )
        solver = DelayedEuler(int(max_delay), past)
    elif (
        _concrete(getattr(field, "delays", None))
        and getattr(field, "delays", None) is not None
        and bool(jnp.any(field.delays > 0))
    ):
        raise ValueError(
            "the field has delays > 0 but max_delay = 0 would run it undelayed; pass "
            f"max_delay >= {int(jnp.max(field.delays))}"
        )
    elif past is not None:
        raise ValueError("past is the pre-history of a delayed solve: it needs max_delay > 0")
    ts = t0 + dt * np.arange(0, steps + 1, save_every)
    settings = {f.name: getattr(solve, f.name) for f in dataclasses.fields(solve)}
    return solve_ode(field, theta0, ts, **{**settings, "solver": solver})
