r"""Continuous normalising flows (Chen et al., 2018; FFJORD, Grathwohl et al., 2019).

A field $f(t, z)$ maps data $x = z(0)$ to a latent $z(1)$ with a standard
normal base density. The instantaneous change of variables
$\tfrac{d}{dt}\log p(z(t)) = -\operatorname{tr}\,\partial f/\partial z$ gives

$$
\log p_x(x) = \log \mathcal{N}(z(1); 0, I) + \int_0^1
\operatorname{tr}\frac{\partial f}{\partial z}(t, z(t))\,dt,
$$

solved as one ODE on $(z, \Delta)$. The trace is either exact (``trace="exact"``:
$D$ Jacobian-vector products through ``jax.linearize``) or Hutchinson's unbiased
estimate $\varepsilon^\top (\partial f/\partial z)\,\varepsilon$ with
$\mathbb{E}[\varepsilon\varepsilon^\top] = I$ (``trace="hutchinson"``: one
Jacobian-vector product, with Rademacher or Gaussian $\varepsilon$ drawn once per solve).
Sampling solves the same ODE backwards from $z(1) \sim \mathcal{N}(0, I)$.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._helpers import check_int
from .._solve import SolveConfig
from ._node import _check_solve

__all__ = ["CNF", "TRACE_ESTIMATORS", "standard_normal_log_prob"]

TRACE_ESTIMATORS = ("exact", "hutchinson")
"""How a `CNF` computes the divergence: exactly (D Jacobian-vector products) or by Hutchinson's
estimator."""
_NOISES = ("rademacher", "gaussian")


def standard_normal_log_prob(z: Float[Array, " d"]) -> Float[Array, ""]:
    r"""$\log \mathcal{N}(z; 0, I) = -\tfrac12 \|z\|^2 - \tfrac{D}{2}\log 2\pi$."""
    return -0.5 * jnp.sum(z**2) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


class _Dynamics(eqx.Module):
    """The augmented field on (z, Δ); ``sign=-1`` runs time backwards from t1."""

    vector_field: Callable[..., Array]
    trace: str = eqx.field(static=True)
    sign: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)

    def __call__(self, s, state, args):
        z, _ = state
        eps, inner = args
        t = s if self.sign > 0 else self.t1 - s

        def f(x):
            return self.vector_field(t, x, inner)

        if self.trace == "exact":
            dz, jvp = jax.linearize(f, z)
            eye = jnp.eye(z.shape[0], dtype=z.dtype)
            tr = jnp.trace(jax.vmap(jvp, out_axes=1)(eye))
        else:
            dz, jeps = jax.jvp(f, (z,), (eps,))
            tr = jnp.vdot(eps, jeps)
        return self.sign * dz, tr


class CNF(eqx.Module):
    r"""A continuous normalising flow on $\mathbb{R}^D$ with field ``f(t, z, args)``
    over $t \in [0, t_1]$ and a standard normal base.

    Args:
        vector_field: the field ``f(t, z, args) -> dz/dt`` on $\mathbb{R}^D$.
        dim: $D$.
        trace: ``exact`` or ``hutchinson`` (see the module docstring).
        noise: the Hutchinson probe: ``rademacher`` or ``gaussian``.
        t1: the end of the flow's time span $[0, t_1]$.
        solve: how the augmented ODE on $(z, \Delta)$ is solved (default ``SolveConfig()``).

    ``log_prob(x, key)`` is $\log p_x(x)$ (``key`` draws the Hutchinson noise; unused
    with the exact trace); ``sample(key)`` returns ``(x, log p_x(x))``.
    """

    vector_field: Callable[..., Array]
    dim: int = eqx.field(static=True)
    trace: str = eqx.field(static=True)
    noise: str = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)

    def __init__(
        self,
        vector_field: Callable[..., Array],
        dim: int,
        *,
        trace: str = "exact",
        noise: str = "rademacher",
        t1: float = 1.0,
        solve: SolveConfig = SolveConfig(),  # noqa: B008 (frozen, hashable)
    ):
        if not callable(vector_field):
            raise TypeError(f"argument 'vector_field' must be callable; got {vector_field!r}")
        if trace not in TRACE_ESTIMATORS:
            raise ValueError(f"argument 'trace' must be one of {TRACE_ESTIMATORS}; got {trace!r}")
        if noise not in _NOISES:
            raise ValueError(f"argument 'noise' must be one of {_NOISES}; got {noise!r}")
        if not (isinstance(t1, (int, float)) and t1 > 0):
            raise ValueError(f"argument 't1' must be a number > 0; got {t1!r}")
        self.vector_field = vector_field
        self.dim = check_int(dim, "dim")
        self.trace = trace
        self.noise = noise
        self.t1 = float(t1)
        self.solve = _check_solve(solve)

    def _noise(self, key: PRNGKeyArray | None, dtype: Any) -> Array:
        if self.trace == "exact":
            return jnp.zeros((self.dim,), dtype)
        if key is None:
            raise ValueError("CNF with trace='hutchinson' needs a PRNG key (argument 'key')")
        if self.noise == "rademacher":
            return jax.random.rademacher(key, (self.dim,), dtype=dtype)
        return jax.random.normal(key, (self.dim,), dtype=dtype)

    def _flow(self, z0: Array, sign: float, key: Any, args: Any) -> tuple[Array, Array]:
        if z0.shape != (self.dim,):
            raise ValueError(f"CNF: a sample must have shape [{self.dim}]; got {z0.shape}")
        dyn = _Dynamics(self.vector_field, self.trace, sign, self.t1)
        ts = jnp.asarray([self.t1], z0.dtype)
        eps = self._noise(key, z0.dtype)
        y0 = (z0, jnp.zeros((), z0.dtype))
        z1, delta = self.solve.solve(dyn, y0, ts, (eps, args), t0=0.0)
        return z1[0], delta[0]

    def log_prob(
        self, x: Float[Array, " d"], key: PRNGKeyArray | None = None, args: Any = None
    ) -> Float[Array, ""]:
        r"""$\log \mathcal{N}(z(t_1)) + \int_0^{t_1} \operatorname{tr} J\,dt$ for one
        sample ``x`` (``vmap`` it for a batch)."""
        z1, delta = self._flow(jnp.asarray(x), 1.0, key, args)
        return standard_normal_log_prob(z1) + delta

    def transform(self, x: Float[Array, " d"], args: Any = None) -> Float[Array, " d"]:
        """The latent $z(t_1)$ of a data point ``x``."""
        return self._flow(jnp.asarray(x), 1.0, jax.random.key(0), args)[0]

    def sample(
        self, key: PRNGKeyArray, args: Any = None, *, trace_key: PRNGKeyArray | None = None
    ) -> tuple[Float[Array, " d"], Float[Array, ""]]:
        r"""Draw $z(t_1) \sim \mathcal{N}(0, I)$ and flow back to
        $x = z(0)$; return ``(x, log p_x(x))``."""
        z1 = jax.random.normal(key, (self.dim,))
        x, delta = self._flow(z1, -1.0, trace_key, args)
        return x, standard_normal_log_prob(z1) + delta
