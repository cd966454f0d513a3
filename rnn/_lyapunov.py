r"""Lyapunov spectra by the Benettin / QR method, differentiable end to end.

The algorithm follows Engelken, Wolf & Abbott (RNN-LyapunovSpectra), as used for rate RNNs by
FlyStability (Koehn; edouardkoehn/FlyStability).

For a map $h_{n+1} = F(h_n)$ (here: one fixed step of a diffrax solver, see
`RateRNN.step`) the first $k$ exponents are

$$
\lambda_i = \lim_{T\to\infty} \frac{1}{T} \sum_{b=1}^{B} \log |R^{(b)}_{ii}|,
\qquad Q^{(b)} R^{(b)} = \Big(\prod_{n \in \text{block } b} DF(h_n)\Big) Q^{(b-1)},
$$

with $Q^{(0)}$ a random orthonormal $N\times k$ basis, one QR factorisation every
$t_\mathrm{ons}$ and $T = B\,t_\mathrm{ons}$ the *measured* time only. Tangent
vectors are pushed by ``jax.linearize`` of the exact step map, or, for a model with a
``variational_step`` (`RateRNN`), by that step of the variational system,
which is the same map with the state and tangent products stacked into one (never a
hand-written Jacobian; FlyStability's Jacobian had the wrong slope and was evaluated at
$h_{n+1}$ instead of $h_n$). The QR is `qr`: on CPU a Householder QR
in XLA operations, since LAPACK's threads slow the surrounding matrix products down. A state
transient (``t_transient``) runs before tangent propagation starts, and an
orthonormalisation transient (``t_ons_transient``) propagates and re-orthonormalises
without accumulating. The loops are ``lax.scan`` s over checkpointed blocks, so the
spectrum can be differentiated with respect to the model (the QR has JAX's JVP rule for
tall matrices); use float64 (``jax.enable_x64``) for accurate spectra.

The *flow* mode (``flow=SolveConfig(...)``) measures the continuous-time exponents instead:
the variational system $\dot h = f(h),\ \dot Q = Df(h)\,Q$ is solved by diffrax (any
solver, adaptive included) over each $t_\mathrm{ons}$ interval.

Derived quantities: `max_exponent`, `kaplan_yorke_dimension`,
`entropy_rate` (Pesin: the sum of positive exponents bounds the Kolmogorov-Sinai
entropy), `convergence_diagnostics`, and all of them at once as `spectrum_summary`.

The measurement settings of configs and commands are one `SpectrumConfig`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from diffdyn.common import SolveConfig

from ._qr import qr as _thin_qr

__all__ = [
    "SpectrumConfig",
    "LyapunovSpectrum",
    "AbstractTangentPropagator",
    "StepMapPropagator",
    "VariationalStepPropagator",
    "FlowPropagator",
    "benettin",
    "lyapunov_spectrum",
    "random_basis",
    "max_exponent",
    "kaplan_yorke_dimension",
    "entropy_rate",
    "running_exponents",
    "convergence_diagnostics",
    "spectrum_summary",
]


def _check_time(value: Any, name: str, *, zero: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"argument {name!r} must be a finite number {bound}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class SpectrumConfig:
    """How a Lyapunov spectrum is measured (times in units of the membrane time constant).

    Attributes:
        n_exponents: how many exponents, the largest first (None: all N).
        t_sim: the measured time over which the exponents are averaged (rounded up to whole
            t_ons blocks).
        t_ons: the time between two QR re-orthonormalisations (a multiple of the step dt0).
        t_transient: the time the state runs before tangent vectors are propagated (a
            multiple of dt0).
        t_ons_transient: the time the tangent basis is propagated and re-orthonormalised
            before exponents are accumulated (rounded up to whole t_ons blocks).
    """

    n_exponents: int | None = None
    t_sim: float = 200.0
    t_ons: float = 1.0
    t_transient: float = 100.0
    t_ons_transient: float = 10.0

    def __post_init__(self) -> None:
        k = self.n_exponents
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"argument 'n_exponents' must be an integer >= 1 or None; got {k!r}")
        _check_time(self.t_sim, "t_sim", zero=False)
        _check_time(self.t_ons, "t_ons", zero=False)
        _check_time(self.t_transient, "t_transient", zero=True)
        _check_time(self.t_ons_transient, "t_ons_transient", zero=True)

    def measure(
        self,
        model: Any,
        h0: Float[ArrayLike, " n"],
        *,
        key: PRNGKeyArray,
        flow: SolveConfig | None = None,
        checkpoint: bool = True,
    ) -> LyapunovSpectrum:
        """`lyapunov_spectrum` of ``model`` from ``h0`` with these settings (``flow`` and
        ``checkpoint`` as there; ``checkpoint=False`` when nothing is differentiated)."""
        return lyapunov_spectrum(
            model,
            h0,
            key=key,
            n_exponents=self.n_exponents,
            t_sim=self.t_sim,
            t_ons=self.t_ons,
            t_transient=self.t_transient,
            t_ons_transient=self.t_ons_transient,
            flow=flow,
            checkpoint=checkpoint,
        )


class LyapunovSpectrum(eqx.Module):
    """The result of `benettin`.

    Attributes:
        exponents: ``[k]`` exponents in QR order (asymptotically decreasing).
        local: ``[B, k]`` local exponents ``log|R_ii| / t_ons`` of the measured blocks.
        t_ons: time between re-orthonormalisations.
        state: the final state ``h``.
        basis: the final orthonormal basis ``Q`` (``[N, k]``).
    """

    exponents: Float[Array, " k"]
    local: Float[Array, "blocks k"]
    state: Float[Array, " n"]
    basis: Float[Array, "n k"]
    t_ons: float = eqx.field(static=True)


class AbstractTangentPropagator(eqx.Module):
    """Advances a state and its tangent vectors over one orthonormalisation interval."""

    t_ons: eqx.AbstractVar[float]

    @abc.abstractmethod
    def __call__(
        self, h: Float[Array, " n"], q: Float[Array, "n k"]
    ) -> tuple[Float[Array, " n"], Float[Array, "n k"]]:
        """``(h, Q) -> (Φ(h), DΦ(h) Q)`` for the map Φ over ``t_ons``."""

    @abc.abstractmethod
    def advance(self, h: Float[Array, " n"], time: float) -> Float[Array, " n"]:
        """The state alone advanced by ``time`` (used for the state transient)."""


def _advance_map(step: Callable[..., Any], dt: float, h: Array, time: float) -> Array:
    """``h`` iterated by ``step`` for ``time`` (a multiple of ``dt``)."""
    n = _n_steps(time, dt, "t_transient", allow_zero=True)
    if n == 0:
        return h
    h, _ = jax.lax.scan(lambda h, _: (step(h), None), h, length=n)
    return h


class StepMapPropagator(AbstractTangentPropagator):
    r"""``n_steps`` iterations of a step map ``step(h) -> h`` of duration ``dt`` each; the
    tangent map is $DF(h_n)$ from ``jax.linearize`` at the pre-step state, applied to
    all columns of $Q$ at once (``vmap``, i.e. one matrix product per step)."""

    step: Callable[[Float[Array, " n"]], Float[Array, " n"]]
    n_steps: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    t_ons: float = eqx.field(static=True)

    def __init__(self, step: Callable[..., Any], n_steps: int, dt: float):
        self.step, self.n_steps, self.dt = step, int(n_steps), float(dt)
        self.t_ons = self.n_steps * self.dt

    def __call__(self, h, q):
        def one(carry, _):
            h, q = carry
            h1, tangent = jax.linearize(self.step, h)
            return (h1, jax.vmap(tangent, in_axes=1, out_axes=1)(q)), None

        (h, q), _ = jax.lax.scan(one, (h, q), length=self.n_steps)
        return h, q

    def advance(self, h, time):
        return _advance_map(self.step, self.dt, h, time)


class VariationalStepPropagator(AbstractTangentPropagator):
    r"""The same iteration as `StepMapPropagator`, for a model that advances its state
    and tangent columns together: ``variational_step(h, Q) -> (F(h), DF(h) Q)``.

    The result is the same (up to rounding: the tests compare both); what differs is the
    work. With ``jax.linearize`` the state and the tangents are pushed by separate products;
    for `RateRNN` (see `RateRNN.variational_step`) that is a
    matrix-vector product $J\phi(h)$ and a matrix product $J\,D\phi(h)\,Q$,
    each reading all of $J$ from memory, while the variational step stacks them into
    one $[N, N] \times [N, k+1]$ product that reads $J$ once. `lyapunov_spectrum` uses this
    propagator whenever the model has a ``variational_step`` method."""

    step: Callable[[Float[Array, " n"]], Float[Array, " n"]]
    variational_step: Callable[..., tuple[Float[Array, " n"], Float[Array, "n k"]]]
    n_steps: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    t_ons: float = eqx.field(static=True)

    def __init__(
        self,
        step: Callable[..., Any],
        variational_step: Callable[..., Any],
        n_steps: int,
        dt: float,
    ):
        self.step, self.variational_step = step, variational_step
        self.n_steps, self.dt = int(n_steps), float(dt)
        self.t_ons = self.n_steps * self.dt

    def __call__(self, h, q):
        def one(carry, _):
            return self.variational_step(*carry), None

        (h, q), _ = jax.lax.scan(one, (h, q), length=self.n_steps)
        return h, q

    def advance(self, h, time):
        return _advance_map(self.step, self.dt, h, time)


class FlowPropagator(AbstractTangentPropagator):
    r"""The continuous-time variational system $\dot h = f(h)$, $\dot Q = Df(h) Q$
    solved by diffrax (``solve``) over each interval ``t_ons``."""

    vector_field: Callable[..., Float[Array, " n"]]
    t_ons: float = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)

    def _rhs(self, t, y, args):
        h, q = y
        f = lambda x: self.vector_field(t, x, args)
        fh, tangent = jax.linearize(f, h)
        return fh, jax.vmap(tangent, in_axes=1, out_axes=1)(q)

    def __call__(self, h, q):
        ts = jnp.asarray([self.t_ons], h.dtype)
        h1, q1 = self.solve.solve(self._rhs, (h, q), ts, t0=jnp.zeros((), h.dtype))
        return h1[-1], q1[-1]

    def advance(self, h, time):
        if time <= 0:
            return h
        ts = jnp.asarray([time], h.dtype)
        return self.solve.solve(self.vector_field, h, ts, t0=jnp.zeros((), h.dtype))[-1]


def _n_steps(time: float, dt: float, name: str, *, allow_zero: bool = False) -> int:
    """``time / dt`` as an integer, or a ValueError naming ``name``."""
    n = round(time / dt)
    if abs(n * dt - time) > 1e-9 * max(1.0, abs(time)) or n < (0 if allow_zero else 1):
        raise ValueError(
            f"argument {name!r} must be a {'non-negative' if allow_zero else 'positive'} "
            f"multiple of dt = {dt}; got {time}"
        )
    return n


def random_basis(key: PRNGKeyArray, n: int, k: int, dtype: Any = None) -> Float[Array, "n k"]:
    """A random orthonormal ``[n, k]`` basis (QR of a Gaussian matrix)."""
    # one QR: the version that compiles fastest (see rnn.qr)
    q, _ = _thin_qr(jax.random.normal(key, (n, k), dtype or jnp.result_type(float)), phases=1)
    return q


def benettin(
    propagator: AbstractTangentPropagator,
    h: Float[Array, " n"],
    q: Float[Array, "n k"],
    *,
    n_blocks: int,
    n_transient_blocks: int = 0,
    checkpoint: bool = True,
) -> LyapunovSpectrum:
    """The Benettin / QR iteration from state ``h`` and orthonormal basis ``q``.

    ``n_transient_blocks`` blocks are propagated and re-orthonormalised without being
    counted; the next ``n_blocks`` blocks are accumulated and divided by their duration
    ``n_blocks * t_ons``. With ``checkpoint`` each block is recomputed on the backward pass
    instead of stored (memory O(blocks * N * k))."""

    def block(carry, _):
        h, q = carry
        h, q = propagator(h, q)
        q, r = _thin_qr(q)
        return (h, q), jnp.log(jnp.abs(jnp.diagonal(r)))

    if checkpoint:
        block = jax.checkpoint(block)
    if n_transient_blocks > 0:
        (h, q), _ = jax.lax.scan(block, (h, q), length=n_transient_blocks)
    (h, q), logs = jax.lax.scan(block, (h, q), length=n_blocks)
    t_ons = propagator.t_ons
    exponents = jnp.sum(logs, axis=0) / (n_blocks * t_ons)
    return LyapunovSpectrum(exponents, logs / t_ons, h, q, t_ons)


def lyapunov_spectrum(
    model: Any,
    h0: Float[ArrayLike, " n"],
    *,
    key: PRNGKeyArray,
    n_exponents: int | None = None,
    t_sim: float = 200.0,
    t_ons: float = 1.0,
    t_transient: float = 100.0,
    t_ons_transient: float = 10.0,
    flow: SolveConfig | None = None,
    detach_transient: bool = True,
    checkpoint: bool = True,
    fused: bool = True,
) -> LyapunovSpectrum:
    """The first ``n_exponents`` (default all) Lyapunov exponents of a model.

    ``model`` needs ``n``, ``dt``, ``step(h)`` and the vector field ``model(t, h, args)``
    (e.g. `RateRNN`). Without ``flow`` the exponents are those of the
    exact step map ``model.step`` (time unit: ``dt`` per step); with ``flow`` those of the
    continuous-time flow solved by that config. ``t_ons`` and ``t_transient`` must be
    multiples of ``dt`` in map mode; ``t_sim`` and ``t_ons_transient`` are rounded up to
    whole ``t_ons`` blocks. ``detach_transient`` stops gradients through the state transient.
    In map mode a model with a ``variational_step(h, Q)`` method (such as
    `RateRNN`) has its tangents pushed by it
    (`VariationalStepPropagator`, faster); ``fused=False`` uses ``jax.linearize`` of
    ``model.step`` instead (`StepMapPropagator`; the same exponents up to rounding).
    """
    n = int(model.n)
    h0 = model.check_state(h0, "h0")
    k = n if n_exponents is None else n_exponents
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"argument 'n_exponents' must be an integer in [1, {n}]; got {k!r}")
    for name, value in (("t_sim", t_sim), ("t_ons", t_ons)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"argument {name!r} must be a finite number > 0; got {value!r}")
    for name, value in (("t_transient", t_transient), ("t_ons_transient", t_ons_transient)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"argument {name!r} must be a finite number >= 0; got {value!r}")
    if flow is None:
        n_ons = _n_steps(t_ons, model.dt, "t_ons")
        variational = getattr(model, "variational_step", None) if fused else None
        propagator: AbstractTangentPropagator = (
            StepMapPropagator(model.step, n_ons, float(model.dt))
            if variational is None
            else VariationalStepPropagator(model.step, variational, n_ons, float(model.dt))
        )
        _n_steps(t_transient, model.dt, "t_transient", allow_zero=True)
    elif isinstance(flow, SolveConfig):
        propagator = FlowPropagator(vector_field=model, t_ons=float(t_ons), solve=flow)
    else:
        raise TypeError(f"argument 'flow' must be a SolveConfig or None; got {flow!r}")
    n_blocks = max(1, math.ceil(t_sim / t_ons - 1e-9))
    n_transient_blocks = math.ceil(t_ons_transient / t_ons - 1e-9)
    h = propagator.advance(h0, float(t_transient))
    if detach_transient:
        h = jax.lax.stop_gradient(h)
    q0 = random_basis(key, n, int(k), h.dtype)
    return benettin(
        propagator,
        h,
        q0,
        n_blocks=n_blocks,
        n_transient_blocks=n_transient_blocks,
        checkpoint=checkpoint,
    )


# ---------------------------------------------------------------------- derived quantities
def max_exponent(exponents: Float[Array, " k"]) -> Float[Array, ""]:
    r"""$\lambda_\max = \max_i \lambda_i$."""
    return jnp.max(exponents)


def kaplan_yorke_dimension(exponents: Float[Array, " k"]) -> Float[Array, ""]:
    r"""Kaplan-Yorke dimension $D = j + \sum_{i\le j}\lambda_i / |\lambda_{j+1}|$, with
    the exponents sorted decreasingly and $j$ the largest index with
    $\sum_{i\le j}\lambda_i \ge 0$ ($D = 0$ if $\lambda_1 < 0$; if every
    partial sum is non-negative the spectrum is too short and $D = k$, a lower bound)."""
    lam = jnp.sort(exponents)[::-1]
    partial = jnp.cumsum(lam)
    j = jnp.sum(partial >= 0)  # partial sums of a decreasing sequence: a prefix is >= 0
    k = lam.shape[0]
    idx = jnp.clip(j, 1, k - 1) if k > 1 else jnp.asarray(0)
    frac = jnp.where(
        (j > 0) & (j < k), partial[idx - 1] / jnp.abs(lam[jnp.minimum(idx, k - 1)]), 0.0
    )
    return j.astype(lam.dtype) + frac


def entropy_rate(exponents: Float[Array, " k"]) -> Float[Array, ""]:
    r"""Sum of the positive exponents $\sum_i \max(\lambda_i, 0)$ (Pesin's formula for
    the Kolmogorov-Sinai entropy rate, an upper bound in general)."""
    return jnp.sum(jnp.maximum(exponents, 0.0))


def running_exponents(result: LyapunovSpectrum) -> Float[Array, "blocks k"]:
    """The estimate after each measured block: the running mean of the local exponents."""
    counts = jnp.arange(1, result.local.shape[0] + 1, dtype=result.local.dtype)
    return jnp.cumsum(result.local, axis=0) / counts[:, None]


def convergence_diagnostics(result: LyapunovSpectrum, n_batches: int = 10) -> dict[str, Array]:
    """How well the exponents have converged.

    - ``stderr``: batch-means standard error of each exponent (the measured blocks split into
      ``n_batches`` consecutive batches; local exponents are correlated, batches much less),
    - ``drift``: ``|estimate at the end - estimate at half time|`` per exponent,
    - ``time``: the measured time.
    """
    local = result.local
    b = local.shape[0]
    m = max(1, min(n_batches, b))
    size = b // m
    means = jnp.mean(local[: m * size].reshape(m, size, -1), axis=1)
    stderr = (
        jnp.std(means, axis=0, ddof=1) / math.sqrt(m)
        if m > 1
        else jnp.full_like(result.exponents, jnp.nan)
    )
    running = running_exponents(result)
    drift = jnp.abs(running[-1] - running[max(0, b // 2 - 1)])
    return {"stderr": stderr, "drift": drift, "time": jnp.asarray(b * result.t_ons)}


def spectrum_summary(result: LyapunovSpectrum) -> dict[str, float]:
    r"""Scalar summaries of a measured spectrum: ``lambda_max``, ``kaplan_yorke_dimension``,
    ``entropy_rate``, ``sum_exponents`` ($\sum_i\lambda_i$), ``n_exponents``,
    ``stderr_lambda_max`` (the batch-means standard error of $\lambda_\max$, see
    `convergence_diagnostics`) and ``measured_time``."""
    lam = np.asarray(result.exponents)
    diag = convergence_diagnostics(result)
    return {
        "lambda_max": float(lam.max()),
        "kaplan_yorke_dimension": float(kaplan_yorke_dimension(result.exponents)),
        "entropy_rate": float(entropy_rate(result.exponents)),
        "sum_exponents": float(lam.sum()),
        "n_exponents": int(lam.size),
        "stderr_lambda_max": float(np.asarray(diag["stderr"])[int(np.argmax(lam))]),
        "measured_time": float(diag["time"]),
    }
