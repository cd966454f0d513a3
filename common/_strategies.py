r"""Trajectory-fitting strategies: plain, multiple shooting and homotopy (synchronisation).

Fit a vector field $\dot u = U(t, u; p)$ (any ``eqx.Module`` called as
``vector_field(t, y, args)``, any state array or pytree of arrays) to one observed trajectory
$\{(t_i, \hat u_i)\}_{i<N}$ by minimising the mean squared error

$$
L(p) = \frac{1}{N D} \sum_{i, d} \big(u_d(t_i; p) - \hat u_{d,i}\big)^2 .
$$

- `Plain`: integrate from $u_0$ over the whole series.
- `MultipleShooting`: split the indices into ``S`` contiguous segments (sizes of
  ``numpy.array_split``) that share their boundary points; segment 0 starts at $u_0$,
  segment $s \ge 1$ at $\hat u_{b_s} + \varepsilon_s$ with trainable corrections
  $\varepsilon$ (initially 0). The joined prediction drops the last point of every
  non-final segment; the loss adds $w_c \cdot \mathrm{mean}_{s,d}
  (u^{(s)}(t_{b_s}) - u^{(s-1)}(t_{b_s}))^2$.
- `Homotopy`: train the synchronised system
  $\dot u = U(t, u; p) - \lambda k (u - \hat u_s(t))$ with $\hat u_s$ a smoothing
  spline of the data (`SmoothingSpline`) and $\lambda$ stepped from
  1 to 0 by `HomotopySchedule` (``M`` decrements proportional to $r^m$, ``E``
  steps per plateau). At $\lambda = 0$ this is exactly the plain problem.

Every strategy is a training task (`AbstractTask`) that the one `Trainer` runs over all
steps (the homotopy schedule lives in the batch via `ScheduledBatch`, so the optimiser
state carries across plateaus and checkpoints resume mid-schedule). Model selection follows
NeuralODEHomotopy (Ko et al. 2023): the value the Trainer sees (and tracks as "best") is the
**uncoupled** trajectory MSE of the current parameters, while the gradient is that of the
strategy's objective (``objective + stop_gradient(mse - objective)``); ``aux`` logs both. An
uncoupled solve that fails (``max_steps``) scores `FAILED_MSE` so that it is never selected but
does not stop training; a failing *training* solve gives a NaN loss, which stops the Trainer at
the last good state.

Usage (any state shape: a PDE field ``[C, H, W]`` works the same as a 2-vector)::

    from diffdyn.common import (
        Homotopy, HomotopySchedule, OptimConfig, SolveConfig, TrainConfig, Trainer, Trajectory
    )

    data = Trajectory(ts, ys)                        # ys: [T, *state]; y0 defaults to ys[0]
    strategy = Homotopy.from_data(
        data, k=6.0, alpha=1e-3,
        schedule=HomotopySchedule(decrements=5, ratio=0.6, steps_per_plateau=100),
        solve=SolveConfig(solver="dopri5", rtol=1e-7, atol=1e-9),
    )
    optim = OptimConfig("adamw", 0.05, weight_decay=0.01)
    train = TrainConfig(steps=strategy.steps(), progress=False)
    result = Trainer(strategy, optim, config=train).fit(field, data, key)
    result.best_model, result.best_loss, result.best_step
"""

from __future__ import annotations

import math
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from ._augment import AbstractAugmenter, FullBatch
from ._solve import SolveConfig
from ._spline import SmoothingSpline
from ._task import AbstractTask

__all__ = [
    "FAILED_MSE",
    "Trajectory",
    "trajectory_mse",
    "segment_bounds",
    "AbstractStrategy",
    "Plain",
    "MultipleShooting",
    "ShootingParams",
    "Homotopy",
    "HomotopySchedule",
    "SynchronisedField",
    "ScheduledBatch",
]

FAILED_MSE = 1e30
"""The selection score of an uncoupled solve that failed or diverged."""

DEFAULT_SOLVE = SolveConfig(solver="dopri5", rtol=1e-7, atol=1e-9, max_steps=4096)


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------


class Trajectory(eqx.Module):
    """One observed trajectory: times ``ts [T]``, observations ``ys`` (a pytree of
    ``[T, *shape]`` arrays), the initial state ``y0`` (default ``ys`` at ``ts[0]``;
    NeuralODEHomotopy (Ko et al. 2023) uses the clean initial condition for synthetic data) and
    the field's ``args``."""

    ts: Float[Array, " T"]
    ys: PyTree[Float[Array, "T ..."]]
    y0: PyTree[Float[Array, "..."]]
    args: Any

    def __init__(self, ts: Float[ArrayLike, " T"], ys: PyTree, y0: PyTree = None, args=None):
        ts_np = np.asarray(ts)
        if ts_np.ndim != 1 or ts_np.shape[0] < 2:
            raise ValueError(f"ts must be a 1-D array [T] with T >= 2, got shape {ts_np.shape}")
        if not np.all(np.diff(ts_np) > 0):
            raise ValueError("ts must be strictly increasing")
        ys = jtu.tree_map(jnp.asarray, ys)
        for leaf in jtu.tree_leaves(ys):
            if leaf.ndim < 1 or leaf.shape[0] != ts_np.shape[0]:
                raise ValueError(
                    f"ys leaves must have the time axis first, [T={ts_np.shape[0]}, ...]; "
                    f"got shape {leaf.shape}"
                )
        if y0 is None:
            y0 = jtu.tree_map(lambda y: y[0], ys)
        else:
            y0 = jtu.tree_map(jnp.asarray, y0)
            shapes = jtu.tree_map(lambda y: y.shape[1:], ys)
            got = jtu.tree_map(lambda y: y.shape, y0)
            if jtu.tree_structure(y0) != jtu.tree_structure(ys) or jtu.tree_leaves(
                got, is_leaf=lambda x: isinstance(x, tuple)
            ) != jtu.tree_leaves(shapes, is_leaf=lambda x: isinstance(x, tuple)):
                raise ValueError(f"y0 must match one time slice of ys, {shapes}; got {got}")
        self.ts = jnp.asarray(ts)
        self.ys = ys
        self.y0 = y0
        self.args = args

    @property
    def num_times(self) -> int:
        return int(self.ts.shape[0])


def trajectory_mse(prediction: PyTree[Array], target: PyTree[Array]) -> Float[Array, ""]:
    """Mean of the squared error over every element of every leaf (torch ``MSELoss``)."""
    sq = [
        jnp.sum((p - t) ** 2)
        for p, t in zip(*map(jtu.tree_leaves, (prediction, target)), strict=True)
    ]
    count = sum(int(np.prod(t.shape)) for t in jtu.tree_leaves(target))
    return sum(sq) / count


def _solve(
    solve: SolveConfig, field: Any, y0: PyTree, ts: Array, args: Any
) -> tuple[PyTree, Array]:
    """``(ys, ok)``; a failed solve (e.g. ``max_steps``) gives NaN states and ``ok = False``."""
    sol = solve.solve_full(field, y0, ts, args, throw=False)
    ok = sol.result == diffrax.RESULTS.successful
    ys = jtu.tree_map(lambda y: jnp.where(ok, y, jnp.nan), sol.ys)
    return ys, ok


def _selection_score(mse: Array, ok: Array) -> Array:
    return jnp.where(ok & jnp.isfinite(mse), mse, jnp.asarray(FAILED_MSE, mse.dtype))


def _stop(tree: Any) -> Any:
    """``stop_gradient`` on every array leaf of a module."""
    return jtu.tree_map(lambda x: jax.lax.stop_gradient(x) if eqx.is_array(x) else x, tree)


def _straight_through(objective: Array, score: Array) -> Array:
    """Value ``score`` (exactly), gradient of ``objective``. Written as ``objective +
    stop_gradient(score - objective)``, a huge objective would cancel the score away (1e16 +
    (1 - 1e16) is 0 in float32) and a zero loss would be selected as the best model."""
    return jax.lax.stop_gradient(score) + (objective - jax.lax.stop_gradient(objective))


# ----------------------------------------------------------------------------------------
# Strategies
# ----------------------------------------------------------------------------------------


class AbstractStrategy(AbstractTask):
    """A way of fitting a vector field to a `Trajectory`: a training task whose data is the
    trajectory (``Trainer(strategy, ...).fit(field, trajectory, key)``).

    A subclass says what the Trainer trains (`init`), how to get the field back
    (`result`), the per-step loss (`loss`) and, if the batch changes with the
    step, an augmenter (`augmenter`). Every strategy selects its best model by the uncoupled
    training MSE, the loss value the Trainer sees.
    """

    solve: eqx.AbstractVar[SolveConfig]

    def init(self, model: Any, data: Any) -> Any:
        if not isinstance(data, Trajectory):
            raise TypeError(f"data must be a Trajectory, got {type(data).__name__}")
        return model

    @eqx.filter_jit
    def predict(self, field: Any, data: Trajectory) -> PyTree[Array]:
        """The uncoupled trajectory of ``field`` from ``data.y0`` at ``data.ts`` (NaN if the
        solve fails)."""
        return _solve(self.solve, field, data.y0, data.ts, data.args)[0]

    def uncoupled_mse(self, field: Any, data: Trajectory) -> tuple[Array, Array]:
        """``(score, mse)``: the uncoupled MSE and its selection score (see module doc)."""
        ys, ok = _solve(self.solve, field, data.y0, data.ts, data.args)
        mse = trajectory_mse(ys, data.ys)
        return _selection_score(mse, ok), mse


class Plain(AbstractStrategy):
    """Integrate from the first observation over the whole series; MSE against the data."""

    solve: SolveConfig = eqx.field(static=True, default=DEFAULT_SOLVE)

    def augmenter(self) -> FullBatch:
        return FullBatch()

    def loss(self, params: Any, batch: Trajectory, key: PRNGKeyArray) -> tuple[Array, dict]:
        del key
        ys, ok = _solve(self.solve, params, batch.y0, batch.ts, batch.args)
        mse = trajectory_mse(ys, batch.ys)
        return mse, {"mse": mse}


def segment_bounds(num_times: int, segments: int) -> list[tuple[int, int]]:
    """Inclusive index ranges ``[(b_s, b_{s+1}), ..., (b_{S-1}, T-1)]`` of the shooting
    segments: ``b_s`` are the starts of ``numpy.array_split(range(T), S)``; neighbours share
    their boundary point."""
    if not isinstance(segments, int) or isinstance(segments, bool) or segments < 1:
        raise ValueError(f"segments must be an int >= 1, got {segments!r}")
    if segments > num_times // 2:
        raise ValueError(
            f"segments must be <= T // 2 = {num_times // 2} so that every segment has two "
            f"points; got segments={segments} for T={num_times}"
        )
    starts = [int(c[0]) for c in np.array_split(np.arange(num_times), segments)]
    ends = starts[1:] + [num_times - 1]
    return list(zip(starts, ends, strict=True))


class ShootingParams(eqx.Module):
    """What multiple shooting trains: the field and the start corrections ``[S-1, *shape]``
    per state leaf."""

    field: Any
    corrections: PyTree[Float[Array, "S1 ..."]]


class MultipleShooting(AbstractStrategy):
    """Multiple shooting with ``segments`` segments and continuity weight ``continuity``."""

    segments: int = eqx.field(static=True, default=5)
    continuity: float = eqx.field(static=True, default=0.01)
    solve: SolveConfig = eqx.field(static=True, default=DEFAULT_SOLVE)
    select_uncoupled: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if not isinstance(self.segments, int) or isinstance(self.segments, bool):
            raise TypeError(f"segments must be an int, got {self.segments!r}")
        if self.segments < 1:
            raise ValueError(f"segments must be >= 1, got {self.segments}")
        if not (math.isfinite(self.continuity) and self.continuity >= 0):
            raise ValueError(f"continuity must be finite and >= 0, got {self.continuity!r}")

    def init(self, model: Any, data: Any) -> ShootingParams:
        super().init(model, data)
        segment_bounds(data.num_times, self.segments)  # validates
        corrections = jtu.tree_map(
            lambda y: jnp.zeros((self.segments - 1, *y.shape[1:]), y.dtype), data.ys
        )
        return ShootingParams(model, corrections)

    def result(self, trained: ShootingParams) -> Any:
        return trained.field

    def objective(self, params: ShootingParams, batch: Trajectory) -> tuple[Array, dict]:
        """The multiple-shooting loss (data MSE of the joined segments + continuity)."""
        bounds = segment_bounds(batch.num_times, self.segments)
        pieces, gaps, prev_end, all_ok = [], [], None, jnp.asarray(True)
        for s, (lo, hi) in enumerate(bounds):
            if s == 0:
                start = batch.y0
            else:
                start = jtu.tree_map(
                    lambda y, e, lo=lo, s=s: y[lo] + e[s - 1], batch.ys, params.corrections
                )
                gaps.append(jtu.tree_map(lambda a, b: (a - b) ** 2, start, prev_end))
            seg, ok = _solve(self.solve, params.field, start, batch.ts[lo : hi + 1], batch.args)
            all_ok = all_ok & ok
            prev_end = jtu.tree_map(lambda y: y[-1], seg)
            last = s == len(bounds) - 1
            pieces.append(seg if last else jtu.tree_map(lambda y: y[:-1], seg))
        joined = jtu.tree_map(lambda *p: jnp.concatenate(p, axis=0), *pieces)
        data_mse = trajectory_mse(joined, batch.ys)
        if gaps:
            leaves = [jnp.stack(g) for g in zip(*map(jtu.tree_leaves, gaps), strict=True)]
            cont = sum(jnp.sum(g) for g in leaves) / sum(g.size for g in leaves)
        else:
            cont = jnp.zeros((), data_mse.dtype)
        return data_mse + self.continuity * cont, {"data_mse": data_mse, "continuity": cont}

    def loss(self, params: ShootingParams, batch: Trajectory, key: PRNGKeyArray):
        del key
        objective, aux = self.objective(params, batch)
        aux["objective"] = objective
        if not self.select_uncoupled:
            return objective, aux
        score, mse = self.uncoupled_mse(_stop(params.field), batch)
        aux["mse"] = mse
        return _straight_through(objective, score), aux


class HomotopySchedule(eqx.Module):
    r"""The power-law stepwise schedule of $\lambda$.

    Decrements $\Delta_j = r^j / \sum_{m<M} r^m$, $j = 0..M-1$;
    $\lambda_0 = 1$, $\lambda_{j+1} = \lambda_j - \Delta_j$, the last value set to
    exactly 0: ``M + 1`` plateaus of ``E`` training steps, ``(M + 1) E`` steps in all
    (full-batch training: a step is an epoch of the original paper).
    (``decrements=5, ratio=0.6``: 1, .5663, .3060, .1499, .0562, 0.)
    """

    decrements: int = eqx.field(static=True, default=5)
    ratio: float = eqx.field(static=True, default=0.6)
    steps_per_plateau: int = eqx.field(static=True, default=100)

    def __check_init__(self):
        for name in ("decrements", "steps_per_plateau"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"HomotopySchedule.{name} must be an int >= 1, got {v!r}")
        if not (isinstance(self.ratio, (int, float)) and self.ratio > 0):
            raise ValueError(f"HomotopySchedule.ratio must be > 0, got {self.ratio!r}")

    @property
    def values(self) -> np.ndarray:
        """The plateau values $\\lambda_0 .. \\lambda_M$ (float64 numpy)."""
        steps = self.ratio ** np.arange(self.decrements, dtype=np.float64)
        steps = steps / steps.sum()
        lam = 1.0 - np.concatenate([[0.0], np.cumsum(steps)])
        lam[-1] = 0.0
        return lam

    @property
    def total_steps(self) -> int:
        """The length of the schedule in training steps, $(M + 1) E$."""
        return (self.decrements + 1) * self.steps_per_plateau

    def __call__(self, step: ArrayLike) -> Array:
        """$\\lambda$ at (0-based) training ``step``; 0 past the schedule."""
        values = jnp.asarray(self.values)
        plateau = jnp.minimum(jnp.asarray(step) // self.steps_per_plateau, self.decrements)
        return values[plateau]


class ScheduledBatch(AbstractAugmenter):
    """The Trainer augmenter of homotopy training: its state is ``(data, step)`` and each
    batch is ``(data, lambda(step))``; ``update`` counts the step (checkpointed with the
    Trainer state, so a resumed run continues the schedule)."""

    schedule: HomotopySchedule

    def init(self, data: Any, key: PRNGKeyArray) -> tuple[Any, Array]:
        del key
        return data, jnp.asarray(0, jnp.int32)

    def sample(self, state: tuple[Any, Array], key: PRNGKeyArray) -> tuple[Any, Array]:
        del key
        data, step = state
        return data, self.schedule(step)

    def update(self, state: tuple[Any, Array], prediction: Any, key: PRNGKeyArray):
        del prediction, key
        data, step = state
        return data, step + 1


def _is_spline(x: Any) -> bool:
    return isinstance(x, SmoothingSpline)


class SynchronisedField(eqx.Module):
    r"""$f(t, u, (\lambda, a)) = U(t, u, a) - \lambda k (u - \hat u_s(t))$."""

    field: Any
    spline: PyTree[SmoothingSpline]
    k: PyTree[Float[Array, "..."]]

    def __call__(self, t: Any, y: PyTree, args: tuple[Any, Any]) -> PyTree:
        lam, inner = args
        drift = self.field(t, y, inner)
        target = jtu.tree_map(lambda s: s(t), self.spline, is_leaf=_is_spline)
        return jtu.tree_map(
            lambda f, u, s, k: f - (lam * k) * (u - s).astype(f.dtype), drift, y, target, self.k
        )


class Homotopy(AbstractStrategy):
    """Homotopy training of the synchronised system (see module doc). Build with
    `from_data` (fields: ``solve``, ``spline``, ``k``, ``schedule``,
    ``select_uncoupled``); ``k`` is a pytree like the state whose leaves broadcast to it."""

    solve: SolveConfig = eqx.field(static=True)
    spline: PyTree[SmoothingSpline]
    k: PyTree[Float[Array, "..."]]
    schedule: HomotopySchedule = HomotopySchedule()
    select_uncoupled: bool = eqx.field(static=True, default=True)

    @classmethod
    def from_data(
        cls,
        data: Trajectory,
        *,
        k: float | PyTree = 1.0,
        alpha: float = 0.0,
        schedule: HomotopySchedule | None = None,
        solve: SolveConfig = DEFAULT_SOLVE,
        select_uncoupled: bool = True,
    ) -> Homotopy:
        """Fit the smoothing spline (parameter ``alpha``) of ``data.ys`` and build the
        strategy with coupling strength ``k`` (a number, or a pytree like the state)."""
        if not isinstance(data, Trajectory):
            raise TypeError(f"data must be a Trajectory, got {type(data).__name__}")
        spline = jtu.tree_map(lambda y: SmoothingSpline.fit(data.ts, y, alpha), data.ys)
        if isinstance(k, (int, float)):
            if not (math.isfinite(k) and k >= 0):
                raise ValueError(f"k must be finite and >= 0, got {k!r}")
            k = jtu.tree_map(lambda y: jnp.asarray(k, y.dtype), data.y0)
        else:
            k = jtu.tree_map(jnp.asarray, k)
        schedule = HomotopySchedule() if schedule is None else schedule
        return cls(
            solve=solve, spline=spline, k=k, schedule=schedule, select_uncoupled=select_uncoupled
        )

    def augmenter(self) -> ScheduledBatch:
        return ScheduledBatch(self.schedule)

    def steps(self) -> int:
        return self.schedule.total_steps

    def synchronised(self, field: Any) -> SynchronisedField:
        return SynchronisedField(field, self.spline, self.k)

    def objective(self, field: Any, data: Trajectory, lam: ArrayLike) -> Array:
        """$L(p; \\lambda)$: MSE of the synchronised trajectory against the data."""
        lam = jnp.asarray(lam)
        ys, _ = _solve(self.solve, self.synchronised(field), data.y0, data.ts, (lam, data.args))
        return trajectory_mse(ys, data.ys)

    def loss(self, params: Any, batch: tuple[Trajectory, Array], key: PRNGKeyArray):
        del key
        data, lam = batch
        objective = self.objective(params, data, lam)
        aux = {"objective": objective, "lambda": lam}
        if not self.select_uncoupled:
            return objective, aux
        score, mse = self.uncoupled_mse(_stop(params), data)
        aux["mse"] = mse
        return _straight_through(objective, score), aux
