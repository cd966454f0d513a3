r"""Lyapunov spectra of any autonomous system by the Benettin / QR method, differentiable.

Let $\Phi$ advance a state $y \in \mathbb{R}^N$ over an interval $t_\mathrm{ons}$: the
flow of an autonomous vector field $\dot y = f(y)$, or $m$ iterations of a step map
$y_{n+1} = F(y_n)$ that stands for a time $\Delta t$ each ($t_\mathrm{ons} = m\,\Delta t$).
With $Q^{(0)}$ a random orthonormal $N\times k$ basis, one QR factorisation per interval,

$$
Q^{(b)} R^{(b)} = D\Phi\big(y^{(b-1)}\big)\, Q^{(b-1)}, \qquad
\lambda_i = \lim_{B\to\infty} \frac{1}{B\,t_\mathrm{ons}} \sum_{b=1}^{B} \log |R^{(b)}_{ii}|,
$$

are the $k$ largest Lyapunov exponents (Benettin, Galgani, Giorgilli & Strelcyn 1980;
Shimada & Nagashima 1979), per unit time. For a step map with $\Delta t = 1$ they are the
exponents per step. A state transient (``t_transient``) runs before any tangent vector is
pushed, and an orthonormalisation transient (``t_ons_transient``) pushes and
re-orthonormalises the basis without accumulating, so that only the measured time
$T = B\,t_\mathrm{ons}$ enters the average.

- `lyapunov_exponents` is the entry point for any system: ``kind="flow"`` for a vector field
  ``f(y) -> dy/dt``, whose variational system $\dot y = f(y)$, $\dot Q = Df(y)\,Q$ is solved
  by diffrax (`FlowPropagator`, a `SolveConfig` with a fixed step or an adaptive one), and
  ``kind="map"`` for a step map ``F(y) -> y_next``, whose tangent map $DF(y_n)$ comes from
  ``jax.linearize`` at the pre-step state (`StepMapPropagator`). The state may have any
  shape, or be a pytree of arrays: it is flattened internally. A Kuramoto network, a neural
  ODE, Lorenz-63 (vector fields) or a neural cellular automaton in which every cell fires
  (a step map) all go in the same way.
- `benettin` is the one pure loop that every measurement runs, fed by an
  `AbstractTangentPropagator`; a model can bring its own propagator (a fused variational
  step, say) and call `benettin` directly. `random_basis` draws $Q^{(0)}$.
- Derived quantities: `max_exponent`, `kaplan_yorke_dimension`, `entropy_rate` (Pesin),
  `running_exponents`, `convergence_diagnostics`, and all at once as `spectrum_summary`.
- `lyapunov_penalty` is $(\lambda_\max - \lambda^*)^2$, a regulariser for any training loss.

Everything is differentiable: the loops are ``lax.scan`` s over (by default checkpointed)
blocks and the thin QR has JAX's derivative rule, so gradients reach the parameters of the
system that ``f`` or ``F`` closes over. In a chaotic regime the trajectory itself depends
on the parameters with a sensitivity growing like $e^{\lambda_1 t}$, and so can the gradient
of a long measurement: differentiate short ones. Use float64 (``jax.enable_x64``) for
accurate spectra.
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from ._helpers import check_time, steps_of
from ._solve import SolveConfig

__all__ = [
    "LyapunovSpectrum",
    "AbstractTangentPropagator",
    "StepMapPropagator",
    "FlowPropagator",
    "random_basis",
    "benettin",
    "lyapunov_exponents",
    "lyapunov_penalty",
    "max_exponent",
    "kaplan_yorke_dimension",
    "entropy_rate",
    "running_exponents",
    "convergence_diagnostics",
    "spectrum_summary",
]

#: A thin QR factorisation ``a -> (Q, R)`` of a tall ``[N, k]`` matrix.
_QR = Callable[[Array], tuple[Array, Array]]


def _lapack_qr(a: Array) -> tuple[Array, Array]:
    """``jax.numpy.linalg.qr`` in its thin (``reduced``) mode."""
    q, r = jnp.linalg.qr(a)
    return q, r


def _check_qr(qr: Any) -> _QR:
    if qr is None:
        return _lapack_qr
    if not callable(qr):
        raise TypeError(f"argument 'qr' must be callable as qr(a) -> (Q, R) or None; got {qr!r}")
    return qr


def _n_blocks(time: float, t_ons: float) -> int:
    """The number of whole ``t_ons`` blocks that cover ``time`` (rounded up)."""
    return math.ceil(time / t_ons - 1e-9)


class LyapunovSpectrum(eqx.Module):
    """The result of `benettin` (and of `lyapunov_exponents`).

    Attributes:
        exponents: ``[k]`` exponents: in QR order (asymptotically decreasing) from
            `benettin`, sorted decreasingly from `lyapunov_exponents`.
        local: ``[B, k]`` local exponents ``log|R_ii| / t_ons`` of the measured blocks, in
            the order of ``exponents``.
        state: the final state (``[N]`` from `benettin`; the structure of the initial state
            from `lyapunov_exponents`).
        basis: the final orthonormal basis ``Q`` (``[N, k]``, rows in the order of the
            flattened state, columns in QR order: the order a continued iteration needs).
        t_ons: time between re-orthonormalisations.
    """

    exponents: Float[Array, " k"]
    local: Float[Array, "blocks k"]
    state: PyTree[Array]
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
    n = steps_of(time, dt, "t_transient", allow_zero=True)
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


class FlowPropagator(AbstractTangentPropagator):
    r"""The continuous-time variational system $\dot h = f(h)$, $\dot Q = Df(h) Q$
    solved by diffrax (``solve``) over each interval ``t_ons``; ``vector_field`` has
    diffrax's signature ``f(t, h, args)``. The state transient (`advance`) is solved in
    intervals of ``t_ons`` as well, so ``solve.max_steps`` bounds the steps of one interval,
    however long the transient."""

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

    def _flow(self, h: Array, time: float) -> Array:
        ts = jnp.asarray([time], h.dtype)
        return self.solve.solve(self.vector_field, h, ts, t0=jnp.zeros((), h.dtype))[-1]

    def advance(self, h, time):
        n_whole = math.floor(time / self.t_ons + 1e-9)
        if n_whole > 0:
            h, _ = jax.lax.scan(lambda h, _: (self._flow(h, self.t_ons), None), h, length=n_whole)
        rest = time - n_whole * self.t_ons
        if rest > 1e-9 * max(1.0, time):
            h = self._flow(h, rest)
        return h


def random_basis(
    key: PRNGKeyArray, n: int, k: int, dtype: Any = None, *, qr: _QR | None = None
) -> Float[Array, "n k"]:
    """A random orthonormal ``[n, k]`` basis: the ``Q`` of a Gaussian matrix (``qr``: a thin
    QR function, default ``jax.numpy.linalg.qr``)."""
    q, _ = _check_qr(qr)(jax.random.normal(key, (n, k), dtype or jnp.result_type(float)))
    return q


def benettin(
    propagator: AbstractTangentPropagator,
    h: Float[Array, " n"],
    q: Float[Array, "n k"],
    *,
    n_blocks: int,
    n_transient_blocks: int = 0,
    checkpoint: bool = True,
    qr: _QR | None = None,
) -> LyapunovSpectrum:
    """The Benettin / QR iteration from state ``h`` and orthonormal basis ``q``.

    ``n_transient_blocks`` blocks are propagated and re-orthonormalised without being
    counted; the next ``n_blocks`` blocks are accumulated and divided by their duration
    ``n_blocks * t_ons``. With ``checkpoint`` each block is recomputed on the backward pass
    instead of stored (memory O(blocks * N * k)). ``qr`` is the thin QR factorisation
    ``a -> (Q, R)`` (default ``jax.numpy.linalg.qr``; it must have derivative rules for the
    result to be differentiable)."""
    factor = _check_qr(qr)

    def block(carry, _):
        h, q = carry
        h, q = propagator(h, q)
        q, r = factor(q)
        return (h, q), jnp.log(jnp.abs(jnp.diagonal(r)))

    if checkpoint:
        block = jax.checkpoint(block)
    if n_transient_blocks > 0:
        (h, q), _ = jax.lax.scan(block, (h, q), length=n_transient_blocks)
    (h, q), logs = jax.lax.scan(block, (h, q), length=n_blocks)
    t_ons = propagator.t_ons
    exponents = jnp.sum(logs, axis=0) / (n_blocks * t_ons)
    return LyapunovSpectrum(exponents, logs / t_ons, h, q, t_ons)


def _flat_system(system: Callable[..., Any], y0: PyTree[Array], unravel: Callable) -> Callable:
    """``system`` on the flattened state, after checking (abstractly, before anything is
    compiled) that it maps a state like ``y0`` to one of the same structure and shapes."""
    try:
        out = jax.eval_shape(system, y0)
    except (TypeError, ValueError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"argument 'system' fails on y0: {first}") from e
    want, got = jtu.tree_structure(y0), jtu.tree_structure(out)
    if want != got:
        raise ValueError(
            f"argument 'system' must return a state with the structure of y0 ({want}); got {got}"
        )
    for y, dy in zip(jtu.tree_leaves(y0), jtu.tree_leaves(out), strict=True):
        if tuple(dy.shape) != tuple(y.shape):
            raise ValueError(
                f"argument 'system' must return a state of y0's shape {tuple(y.shape)}; "
                f"got shape {tuple(dy.shape)}"
            )

    def flat(x: Array) -> Array:
        return ravel_pytree(system(unravel(x)))[0].astype(x.dtype)

    return flat


def lyapunov_exponents(
    system: Callable[[PyTree[Array]], PyTree[Array]],
    y0: PyTree[ArrayLike],
    *,
    kind: Literal["flow", "map"],
    dt: float | None = None,
    solve: SolveConfig | None = None,
    n_exponents: int | None = None,
    t_sim: float = 200.0,
    t_ons: float = 1.0,
    t_transient: float = 100.0,
    t_ons_transient: float = 10.0,
    detach_transient: bool = True,
    checkpoint: bool = True,
    qr: _QR | None = None,
    key: PRNGKeyArray,
) -> LyapunovSpectrum:
    r"""The ``n_exponents`` largest Lyapunov exponents of an autonomous system, sorted
    decreasingly (default: all $N$, the size of the flattened state).

    Args:
        system: with ``kind="flow"`` a vector field ``f(y) -> dy/dt``, with ``kind="map"`` a
            step map ``F(y) -> y_next``; either returns a state of ``y0``'s structure. A
            diffrax-style field ``g(t, y, args)`` of an autonomous system goes in as
            ``lambda y: g(0.0, y, None)`` (e.g. ``Kuramoto``, ``Lorenz63``, a ``NeuralODE``'s
            ``vector_field`` with ``solve=node.solve``); an NCA is a deterministic map when
            every cell fires (``fire_rate=1``): ``lambda x: nca(x, key=jax.random.key(0))``.
            Parameters the system closes over get gradients.
        y0: the initial state: an array of any shape, or a pytree of floating arrays
            (flattened internally).
        kind: ``"flow"`` (continuous-time exponents of $\dot y = f(y)$, per unit time) or
            ``"map"`` (exponents of $F$ per ``dt``).
        dt: for ``kind="map"``: the time one step stands for (default 1: exponents per
            step). Refused for ``kind="flow"``, whose step is ``solve.dt0``.
        solve: for ``kind="flow"``: how the variational system is solved over each
            ``t_ons`` (default ``SolveConfig()``; a fixed step is
            ``SolveConfig(solver="rk4", dt0=..., adaptive=False)``); ``max_steps`` bounds
            one interval. Refused for ``kind="map"``.
        n_exponents: how many exponents, an integer in $[1, N]$ (None: $N$).
        t_sim: the measured time (rounded up to whole ``t_ons`` blocks).
        t_ons: the time between two QR re-orthonormalisations (for a map, a multiple of
            ``dt``).
        t_transient: the time the state runs before tangent vectors are pushed (for a map, a
            multiple of ``dt``).
        t_ons_transient: the time the basis is pushed and re-orthonormalised before
            exponents are accumulated (rounded up to whole ``t_ons`` blocks).
        detach_transient: stop gradients through the state transient.
        checkpoint: recompute each block on the backward pass instead of storing it (no
            effect without differentiation).
        qr: the thin QR ``a -> (Q, R)`` (default ``jax.numpy.linalg.qr``), e.g.
            ``diffdyn.rnn.qr`` on CPU for large states.
        key: draws the initial orthonormal basis.

    Returns:
        A `LyapunovSpectrum` with ``exponents`` sorted decreasingly (``local`` in the same
        order, ``basis`` in QR order) and ``state`` in ``y0``'s structure. Its largest
        exponent, ``exponents[0]``, is differentiable with respect to the system's
        parameters (see `lyapunov_penalty`).

    For a linear system $\dot y = Ay$ the exponents are the real parts of the eigenvalues
    of $A$, and for any flow their sum is the time average of $\operatorname{tr} Df$
    (Lorenz-63: $-(\sigma + 1 + \beta)$); both are checked in the tests.
    """
    if kind not in ("flow", "map"):
        raise ValueError(f"argument 'kind' must be 'flow' or 'map'; got {kind!r}")
    if not callable(system):
        raise TypeError(f"argument 'system' must be callable; got {type(system).__name__}")
    y0 = jtu.tree_map(jnp.asarray, y0)
    leaves = jtu.tree_leaves(y0)
    if not leaves:
        raise ValueError("argument 'y0' must hold at least one array; got an empty pytree")
    for leaf in leaves:
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            raise TypeError(f"argument 'y0' must hold real floating arrays; got {leaf.dtype}")
    flat0, unravel = ravel_pytree(y0)
    n = int(flat0.shape[0])
    if n == 0:
        raise ValueError("argument 'y0' must hold at least one number; got size 0")
    k = n if n_exponents is None else n_exponents
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= n:
        raise ValueError(f"argument 'n_exponents' must be an integer in [1, {n}]; got {k!r}")
    t_sim = check_time(t_sim, "t_sim", zero=False)
    t_ons = check_time(t_ons, "t_ons", zero=False)
    t_transient = check_time(t_transient, "t_transient", zero=True)
    t_ons_transient = check_time(t_ons_transient, "t_ons_transient", zero=True)
    factor = _check_qr(qr)
    flat = _flat_system(system, y0, unravel)

    propagator: AbstractTangentPropagator
    if kind == "map":
        if solve is not None:
            raise ValueError("argument 'solve' is for kind='flow'; a step map is not solved")
        step_dt = 1.0 if dt is None else check_time(dt, "dt", zero=False)
        propagator = StepMapPropagator(flat, steps_of(t_ons, step_dt, "t_ons"), step_dt)
        steps_of(t_transient, step_dt, "t_transient", allow_zero=True)
    else:
        if dt is not None:
            raise ValueError(
                "argument 'dt' is for kind='map'; the step of a flow is set by solve.dt0"
            )
        if solve is None:
            solve = SolveConfig()
        elif not isinstance(solve, SolveConfig):
            raise TypeError(f"argument 'solve' must be a SolveConfig; got {type(solve).__name__}")
        propagator = FlowPropagator(
            vector_field=lambda t, y, args: flat(y), t_ons=t_ons, solve=solve
        )

    h = propagator.advance(flat0, t_transient)
    if detach_transient:
        h = jax.lax.stop_gradient(h)
    result = benettin(
        propagator,
        h,
        random_basis(key, n, int(k), h.dtype, qr=factor),
        n_blocks=max(1, _n_blocks(t_sim, propagator.t_ons)),
        n_transient_blocks=_n_blocks(t_ons_transient, propagator.t_ons),
        checkpoint=checkpoint,
        qr=factor,
    )
    order = jnp.argsort(-result.exponents)
    return LyapunovSpectrum(
        result.exponents[order],
        result.local[:, order],
        unravel(result.state),
        result.basis,
        result.t_ons,
    )


def lyapunov_penalty(
    spectrum: LyapunovSpectrum | Float[ArrayLike, " k"],
    target: float | Float[ArrayLike, ""] = 0.0,
) -> Float[Array, ""]:
    r"""The regulariser $(\lambda_\max - \lambda^*)^2$, $\lambda_\max = \max_i \lambda_i$,
    of a measured spectrum (a `LyapunovSpectrum` or its exponents) and a target
    $\lambda^*$ (``target``, default 0: the edge of chaos).

    It is as differentiable as the spectrum: measured by `lyapunov_exponents` (or
    `benettin`) inside a loss, its gradient reaches the parameters of the system, so it
    can keep a trained model at a chosen degree of stability. Only the largest exponent is
    needed, so measure one (``n_exponents=1``). For instance, a discrete-time RNN
    $h_{n+1} = \tanh(W h_n + b)$ trained on a task while kept near the edge of chaos:

    ```python
    def loss(params, batch, key):
        rnn = lambda h: jnp.tanh(params["w"] @ h + params["b"])
        spectrum = lyapunov_exponents(
            rnn, h0, kind="map", n_exponents=1, t_sim=50.0, t_ons=5.0,
            t_transient=20.0, t_ons_transient=10.0, key=key,
        )
        return task_loss(params, batch) + 0.1 * lyapunov_penalty(spectrum, target=0.0)
    ```
    """
    lam = spectrum.exponents if isinstance(spectrum, LyapunovSpectrum) else jnp.asarray(spectrum)
    if lam.ndim != 1 or lam.shape[0] < 1:
        raise ValueError(
            f"argument 'spectrum' must be a LyapunovSpectrum or exponents of shape [k], k >= 1; "
            f"got shape {lam.shape}"
        )
    target = jnp.asarray(target, lam.dtype)
    if target.ndim != 0:
        raise ValueError(f"argument 'target' must be a scalar; got shape {target.shape}")
    if not isinstance(target, jax.core.Tracer) and not bool(jnp.isfinite(target)):
        raise ValueError(f"argument 'target' must be finite; got {float(target)}")
    return (jnp.max(lam) - target) ** 2


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
