"""The one training loop of diffdyn.

A jitted step (``eqx.filter_value_and_grad`` + an optax update) driven by an outer Python loop
with a progress bar, TensorBoard logging, atomic checkpoints, exact resume, a NaN guard,
validation, best-model selection and data parallelism by sharding. Domain packages give it

* a model (an ``eqx.Module``; its trainable leaves are chosen by ``trainable_filter``),
* a task (`AbstractTask`: the loss, how batches are drawn, constraints, drawings and
  validation), or just a loss ``loss_fn(model, batch, key) -> loss`` or ``-> (loss, aux)``
  where ``aux`` is a dict: scalar entries of ``aux`` are logged, and ``aux["prediction"]``
  (if present) is handed to the augmenter's ``update`` (sample pools write it back),
* an `OptimConfig` (or any optax transformation),
* data for the task's augmenter; without one the whole data pytree is the batch every step.

The best model is the one with the lowest validation loss where the task has held-out data
(`AbstractTask.evaluate`), and otherwise the one with the lowest training loss after the first
logging block (the losses of the first steps of a run say little).

Randomness is reproducible and resumable: the key of step ``s`` is ``fold_in(key, s)``, so a
run stopped and resumed from a checkpoint takes exactly the steps of an uninterrupted run.

`Trainer.fit_ensemble` trains K models of one structure at once: the step is vmapped over a
stacked state, and each member takes exactly the steps of its own `Trainer.fit`.

In a multi-process run (see `initialize_distributed`) every process runs the same loop; only
process 0 logs and writes files. Checkpoints gather data split across processes first, and a
resumed run reads its checkpoint in process 0 and sends it to the others.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray
from tqdm.auto import tqdm

from ._checkpoint import BackgroundCheckpointer, load_checkpoint, save_checkpoint
from ._config import _flatten, config_to_dict
from ._distributed import broadcast_from_primary, gather_to_host, is_primary
from ._logger import Logger, NullLogger, ShiftedLogger
from ._model import AbstractModel, all_finite, trainable_filter
from ._optim import OptimConfig
from ._sharding import constrain_batch, make_mesh, replicate, shard_batch
from ._task import AbstractTask, LossTask

__all__ = ["TrainConfig", "TrainState", "TrainResult", "EnsembleResult", "Trainer", "CompiledStep"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How long to train and how often to report.

    Attributes:
        steps: total number of optimisation steps (a resumed run continues up to it).
        log_every: every step's loss is logged; values are fetched from the device in blocks of
            this many steps (larger blocks keep the device busy; NaNs are detected per block).
        image_every: draw the task's images every this many steps, and at the end (0: only at
            the end; a task that draws nothing refuses a positive value).
        histogram_every: log parameter histograms every this many steps (0: never).
        checkpoint_every: write ``checkpoints/latest.ckpt`` every this many steps (0: only
            at the end). A checkpoint is only written from a state whose losses were finite.
        checkpoint_seconds: also write one at the first logging boundary after this much
            wall-clock time since the last (0: never by time), so that a killed run loses at
            most about this much work whatever ``checkpoint_every`` is.
        validate_every: score the model on the task's held-out data every this many steps
            and at the end (``None``: every ``log_every`` steps; 0: never; a task without
            held-out data refuses a positive value).
        track_best: keep the best parameters (by validation loss, else by training loss
            after the first ``log_every`` steps) and return them as ``best_model``.
        shard_data: split the augmenter state along axis 0 across devices (array data;
            not for sample pools, whose state also holds an unbatched seed).
        progress: show a progress bar.
        max_seconds: stop after this much wall-clock time (0: no limit), as if ``steps`` had
            been reached there: the last block is logged and a checkpoint written.
        steps_per_call: how many steps one call to the device runs (an on-device loop;
            calls never cross a logging, image, histogram or checkpoint boundary). ``None``
            chooses it from the measured time of one step so that a call lasts about
            ``call_seconds``: small models run tens of steps per dispatch, large ones one.
            The result does not depend on it: every step is the same compiled computation.
        call_seconds: the target duration of one call when ``steps_per_call`` is ``None``.
    """

    steps: int = 1000
    log_every: int = 50
    image_every: int = 0
    histogram_every: int = 0
    checkpoint_every: int = 0
    checkpoint_seconds: float = 60.0
    validate_every: int | None = None
    track_best: bool = True
    shard_data: bool = False
    progress: bool = True
    max_seconds: float = 0.0
    steps_per_call: int | None = None
    call_seconds: float = 0.05

    def __post_init__(self) -> None:
        for name in ("max_seconds", "call_seconds", "checkpoint_seconds"):
            if not getattr(self, name) >= 0:  # NaN is refused too
                raise ValueError(f"TrainConfig.{name} must be >= 0; got {getattr(self, name)}")
        if self.steps_per_call is not None and self.steps_per_call < 1:
            raise ValueError(
                f"TrainConfig.steps_per_call must be >= 1 or None; got {self.steps_per_call}"
            )
        for name in ("steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1; got {getattr(self, name)}")
        if self.validate_every is not None and self.validate_every < 0:
            raise ValueError(
                f"TrainConfig.validate_every must be >= 0 or None; got {self.validate_every}"
            )
        for name in ("image_every", "histogram_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0; got {getattr(self, name)}")


class TrainState(eqx.Module):
    """Everything that changes during training; checkpointed whole."""

    params: Any
    opt_state: Any
    data: Any
    best_params: Any
    best_loss: Float[Array, ""]
    step: Array
    key: Array  # raw uint32 key data, so that it serialises
    # The metrics of the last ``log_every`` steps, step ``s`` in slot ``s % log_every``: the
    # loop fetches a whole block in one transfer instead of one transfer per value.
    recent_metrics: dict[str, Float[Array, " log_every"]]


@dataclasses.dataclass
class TrainResult:
    """What `Trainer.fit` returns."""

    model: Any
    best_model: Any
    best_loss: float
    losses: np.ndarray  # the training loss of every step from 0 (a resumed run's too)
    steps: int
    diverged_at: int | None = None
    seconds: float = 0.0
    steps_per_second: float = math.nan  # measured after the first (compiling) step
    best_step: int | None = None
    selected_by: str = "final"  # "validation", "loss" or "final" (no better state was seen)
    validation: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1]) if len(self.losses) else math.nan


@dataclasses.dataclass
class EnsembleResult:
    """What `Trainer.fit_ensemble` returns: each member's `TrainResult`, and the best member
    (lowest validation loss where the task validates, else lowest best training loss; members
    without a finite best are never chosen)."""

    members: list[TrainResult]
    best_member: int | None
    seconds: float = 0.0
    steps_per_second: float = math.nan  # ensemble steps (each advances every member)

    @property
    def best(self) -> TrainResult | None:
        return None if self.best_member is None else self.members[self.best_member]


class CompiledStep:
    """A training step compiled once over the flat list of the state's array leaves.

    Calling an ``eqx.filter_jit`` function partitions, flattens and rebuilds its pytree
    arguments and results in Python on every call: for a train state (parameters, optimiser
    moments, best parameters) that can take longer than the whole step of a small model on a
    CPU. This wrapper does that work once: `flatten` turns a state into
    its array leaves, `step_leaves` runs the step on leaves (one ``jax.jit`` dispatch),
    and `unflatten` rebuilds the state when the loop needs it (to log, checkpoint or
    return). Non-array leaves are static and must come out of the step unchanged.

    `run` takes ``n`` steps in one call (a ``fori_loop`` whose trip count is an
    argument, so every ``n`` shares one compilation): for small models the dispatch of a call
    costs more than the step, and fusing steps removes it.

    ``step(state) -> (state, metrics)`` is also callable directly, at the cost of the
    flattening it avoids.
    """

    def __init__(self, fn: Callable[[TrainState], tuple[TrainState, dict]]):
        self._fn = fn
        self._static: Any = None
        self._treedef: Any = None
        self._fields: dict[str, tuple[slice, Any, Any]] = {}
        self._jit = jax.jit(self._flat_step)
        self._jit_many = jax.jit(self._flat_steps)

    def _flat_step(self, leaves: list[Array]) -> tuple[list[Array], dict]:
        new, metrics = self._fn(self.unflatten(leaves))
        dynamic, _ = eqx.partition(new, eqx.is_array)
        new_leaves, treedef = jax.tree_util.tree_flatten(dynamic)
        if treedef != self._treedef:
            raise ValueError(
                f"the training step changed the structure of its state:\n{self._treedef}\n"
                f"became\n{treedef}"
            )
        return new_leaves, metrics

    def _flat_steps(self, leaves: list[Array], n: Array) -> list[Array]:
        return jax.lax.fori_loop(0, n, lambda _, leaves: self._flat_step(leaves)[0], leaves)

    def flatten(self, state: TrainState) -> list[Array]:
        """The array leaves of ``state`` (the first call fixes the structure)."""
        dynamic, static = eqx.partition(state, eqx.is_array)
        leaves, treedef = jax.tree_util.tree_flatten(dynamic)
        if self._treedef is None:
            self._static, self._treedef = static, treedef
            start = 0  # TrainState flattens field by field, in declaration order
            for field in dataclasses.fields(TrainState):
                part, part_static = getattr(dynamic, field.name), getattr(static, field.name)
                count = len(jax.tree_util.tree_leaves(part))
                part_def = jax.tree_util.tree_structure(part)
                self._fields[field.name] = (slice(start, start + count), part_def, part_static)
                start += count
        elif treedef != self._treedef:
            raise ValueError("state does not have the structure this step was built for")
        return leaves

    def field(self, leaves: list[Array], name: str) -> Any:
        """One field of the state with array leaves ``leaves``, without rebuilding the rest."""
        where, treedef, static = self._fields[name]
        return eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves[where]), static)

    def replace_field(self, leaves: list[Array], name: str, value: Any) -> list[Array]:
        """``leaves`` with the field ``name`` of the state replaced by ``value`` (same
        structure)."""
        where, treedef, _ = self._fields[name]
        dynamic = eqx.filter(value, eqx.is_array)
        new, new_def = jax.tree_util.tree_flatten(dynamic)
        if new_def != treedef:
            raise ValueError(f"state field {name!r} would change its structure")
        return leaves[: where.start] + new + leaves[where.stop :]

    def unflatten(self, leaves: list[Array]) -> TrainState:
        """The state whose array leaves are ``leaves``."""
        return eqx.combine(jax.tree_util.tree_unflatten(self._treedef, leaves), self._static)

    def step_leaves(self, leaves: list[Array]) -> tuple[list[Array], dict]:
        """One step on flat leaves: ``(leaves, metrics)``."""
        return self._jit(leaves)

    def run(self, leaves: list[Array], n: int) -> list[Array]:
        """``n`` steps on flat leaves in one call (one compilation for every ``n``)."""
        return self._jit_many(leaves, np.int32(n))

    def __call__(self, state: TrainState) -> tuple[TrainState, dict]:
        leaves, metrics = self._jit(self.flatten(state))
        return self.unflatten(leaves), metrics


class _Validation:
    """Scores the model on the task's held-out data, logs the metrics under ``validation/``
    and keeps the parameters with the lowest validation ``loss`` as the state's best (member
    by member in an ensemble, under ``member_<i>/validation/``)."""

    def __init__(self, trainer: Trainer, static: Any, members: list[int | None]):
        self._trainer, self._static, self._members = trainer, static, members
        self._steps: list[int] = []
        self._values: dict[int | None, dict[str, list[float]]] = {i: {} for i in members}
        self.best_steps: dict[int | None, int | None] = {i: None for i in members}

    def run(self, step_fn: CompiledStep, leaves: list[Array], step: int) -> list[Array]:
        self._steps.append(step)
        for i in self._members:
            leaves = self._run_member(step_fn, leaves, step, i)
        return leaves

    def _run_member(
        self, step_fn: CompiledStep, leaves: list[Array], step: int, i: int | None
    ) -> list[Array]:
        task, trainer = self._trainer.task, self._trainer
        params = _take(step_fn.field(leaves, "params"), i)
        key_data = _take(step_fn.field(leaves, "key"), i)
        key = jax.random.split(jax.random.wrap_key_data(key_data), 3)[2]
        model = task.result(eqx.combine(params, self._static))
        metrics = task.evaluate(model, jax.random.fold_in(key, step))
        if "loss" not in metrics:
            raise ValueError(
                f"{type(task).__name__}.evaluate must return a 'loss' entry; got {sorted(metrics)}"
            )
        values = {name: float(v) for name, v in metrics.items()}
        for name, v in values.items():
            self._values[i].setdefault(name, []).append(v)
            trainer.logger.scalar(f"{_prefix(i)}validation/{name}", v, step)
        best = _take(step_fn.field(leaves, "best_loss"), i)
        if trainer.config.track_best and np.isfinite(values["loss"]):
            if values["loss"] < float(best):
                self.best_steps[i] = step
                all_best = step_fn.field(leaves, "best_params")
                leaves = step_fn.replace_field(leaves, "best_params", _put(all_best, i, params))
                value = jnp.asarray(values["loss"], jnp.float32)
                all_loss = step_fn.field(leaves, "best_loss")
                leaves = step_fn.replace_field(leaves, "best_loss", _put(all_loss, i, value))
        return leaves

    def history(self, i: int | None) -> dict[str, np.ndarray]:
        if not self._steps:
            return {}
        out = {"step": np.asarray(self._steps)}
        out.update({name: np.asarray(v) for name, v in self._values[i].items()})
        return out


class _MetricBlocks:
    """Fetches the per-step metrics of a run in blocks and logs them, one block behind.

    At each `push` the newest block (the state's ``recent_metrics`` ring buffer, an
    immutable snapshot) starts copying to the host, and older blocks, finished by now, are
    logged: the loop does not wait for the device, which keeps its queue of dispatched steps.
    ``wait=True`` logs everything pushed so far (before a checkpoint, at the end). The
    members of an ensemble are logged under ``member_<i>/``; a step is bad when the loss of
    any member is not finite.

    Attributes:
        losses: the training losses of each member (key ``None`` for a single run), one per
            step from step 0 (a resumed run's earlier losses come from its checkpoint).
        good_leaves: the leaves of the newest state whose losses were all finite.
    """

    def __init__(
        self,
        step_fn: CompiledStep,
        logger: Logger,
        block: int,
        start: int,
        leaves: list,
        members: list[int | None],
        history: dict[int | None, list[float]],
    ):
        self._step_fn, self._logger, self._block = step_fn, logger, block
        self._members = members
        self._logged = start
        self._queue: list[tuple[int, int, dict, list]] = []
        # the losses of the steps before ``start`` (from a checkpoint), then this run's
        self.losses: dict[int | None, list[float]] = {i: list(history[i]) for i in members}
        self._first = start - len(self.losses[members[0]])
        self.good_leaves = leaves
        self.bad_member: int | None = None

    def push(self, leaves: list[Array], upto: int, *, wait: bool) -> int | None:
        """Queue the steps before ``upto``; log what is due. Returns the first step whose loss
        is not finite (nothing after it is logged), else ``None``."""
        if upto > self._logged:
            recent = self._step_fn.field(leaves, "recent_metrics")
            for array in recent.values():
                array.copy_to_host_async()
            self._queue.append((self._logged, upto, recent, leaves))
            self._logged = upto
        while self._queue and (wait or len(self._queue) > 1):
            bad = self._log(*self._queue.pop(0))
            if bad is not None:
                self._queue.clear()
                return bad
        return None

    def last_loss(self) -> float | None:
        """The newest logged loss (the mean over the members of an ensemble)."""
        last = [v[-1] for v in self.losses.values() if v]
        return float(np.mean(last)) if last else None

    def best_step(
        self, step_fn: CompiledStep, leaves: list[Array], known: int | None, i: int | None
    ) -> int | None:
        """The step whose training loss is member ``i``'s best loss (selection by training
        loss), looked up in this run's logged losses; ``known`` (from a checkpoint) if it is
        older."""
        best = np.float32(_take(step_fn.field(leaves, "best_loss"), i))
        if not np.isfinite(best):
            return None
        start = self._first
        with np.errstate(over="ignore"):  # float64 losses beyond float32 (x64 runs)
            losses = np.asarray(self.losses[i], np.float32)
        hits = np.nonzero(losses == best)[0]
        hits = hits[hits + start >= self._block]
        return int(hits[-1] + start) if len(hits) else known

    def _log(self, first: int, upto: int, recent: dict, leaves: list) -> int | None:
        steps = np.arange(first, upto)
        values = {name: np.asarray(v)[..., steps % self._block] for name, v in recent.items()}
        finite = np.isfinite(values["loss"])
        if finite.ndim == 2:  # an ensemble: [members, steps]
            bad_members = np.nonzero(~finite.all(axis=1))[0]
            self.bad_member = int(bad_members[0]) if len(bad_members) else None
            finite = finite.all(axis=0)
        bad = None if finite.all() else first + int(np.argmin(finite))
        n = len(steps) if bad is None else bad - first
        for i in self._members:
            member = {name: v if i is None else v[i] for name, v in values.items()}
            self.losses[i].extend(member["loss"][:n].tolist())
            for name, series in member.items():
                self._logger.scalars(f"{_prefix(i)}train/{name}", series[:n], steps[:n])
        if bad is None:
            self.good_leaves = leaves
        return bad


def _take(tree: Any, i: int | None) -> Any:
    """Member ``i`` of a stacked ensemble pytree (the tree itself for ``i = None``)."""
    if i is None:
        return tree
    return jax.tree_util.tree_map(lambda x: x[i] if eqx.is_array(x) else x, tree)


def _put(tree: Any, i: int | None, value: Any) -> Any:
    """``tree`` with member ``i`` replaced by ``value`` (``value`` itself for ``i = None``)."""
    if i is None:
        return value
    return jax.tree_util.tree_map(lambda t, v: t.at[i].set(v), tree, value)


def _prefix(i: int | None) -> str:
    return "" if i is None else f"member_{i}/"


def _stack(trees: list[Any]) -> Any:
    """One pytree whose array leaves stack those of ``trees`` along a new axis 0."""
    return jax.tree_util.tree_map(
        lambda *xs: jnp.stack(xs) if eqx.is_array(xs[0]) else xs[0], *trees
    )


def _as_key_data(key: Any) -> Array:
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    key = jnp.asarray(key)
    if key.dtype != jnp.uint32:
        raise TypeError(f"key must be a PRNG key; got dtype {key.dtype}")
    return key


def _split_aux(out: Any) -> tuple[Array, dict[str, Any]]:
    if isinstance(out, tuple):
        if len(out) != 2 or not isinstance(out[1], dict):
            raise TypeError("loss_fn must return a scalar or a (scalar, dict) pair")
        return out
    return out, {}


class Trainer:
    """Fit a model with optax under one jitted step and one outer loop.

    Args:
        task: an `AbstractTask`, or a loss ``(model, batch, key) -> loss`` or
            ``-> (loss, aux_dict)`` (wrapped in a `LossTask` with ``augmenter`` and
            ``visualise``).
        optimiser: an `OptimConfig` (built for ``config.steps`` steps with the task's
            non-negative leaves), or an optax transformation used as it is (it receives
            ``params``, for projections).
        augmenter: with a loss function only: an object with ``init/sample/update`` (see
            `AbstractAugmenter`); default `FullBatch`.
        config: a `TrainConfig`.
        logger: where scalars, histograms and images go (default: none); used by process 0
            only. A run begins by marking its first step (`Logger.start`), so that
            TensorBoard hides what an interrupted earlier run logged after its checkpoint.
        first_step: the global step at which this trainer's step 0 is logged: a second
            training stage on the same logger passes the first stage's step count, so that
            its steps follow the first stage's instead of overwriting them. Checkpoints and
            `TrainResult` count the stage's own steps from 0.
        out: a folder for checkpoints and the final/best model (default: none written);
            written by process 0 only.
        mesh: the device mesh; default all devices, with the batch axis split across them.
        filter_spec: which leaves to train; default `trainable_filter`.
        visualise: with a loss function only: ``(model, key) -> {tag: image [C,H,W] or video
            [T,C,H,W]}``, called every ``config.image_every`` steps and at the end.
    """

    def __init__(
        self,
        task: AbstractTask | Callable[..., Any],
        optimiser: OptimConfig | optax.GradientTransformation,
        augmenter: Any = None,
        *,
        config: TrainConfig = TrainConfig(),
        logger: Logger | None = None,
        first_step: int = 0,
        out: str | Path | None = None,
        mesh: jax.sharding.Mesh | None = None,
        filter_spec: Any = None,
        visualise: Callable[[Any, PRNGKeyArray], dict[str, Any]] | None = None,
    ):
        if not isinstance(task, AbstractTask):
            if not callable(task):
                raise TypeError(
                    f"task must be an AbstractTask or a loss function; got {type(task).__name__}"
                )
            task = LossTask(task, augmenter, visualise)
        elif augmenter is not None or visualise is not None:
            raise TypeError(
                "augmenter and visualise belong to the task: give them with a loss function, "
                f"not with the task {type(task).__name__}"
            )
        if not isinstance(optimiser, OptimConfig) and not hasattr(optimiser, "update"):
            raise TypeError("optimiser must be an OptimConfig or an optax.GradientTransformation")
        if config.image_every > 0 and not task.draws:
            raise ValueError(
                f"TrainConfig.image_every is {config.image_every} but the task "
                f"{type(task).__name__} draws nothing"
            )
        if task.steps() is not None and task.steps() != config.steps:
            raise ValueError(
                f"the task {type(task).__name__} is scheduled over {task.steps()} steps; "
                f"TrainConfig.steps is {config.steps}"
            )
        if config.validate_every and not task.validates:
            raise ValueError(
                f"TrainConfig.validate_every is {config.validate_every} but the task "
                f"{type(task).__name__} has no held-out data to validate on"
            )
        self.task = task
        self.loss_fn = task.loss
        self.optimiser = optimiser
        self.augmenter = task.augmenter()
        self.config = config
        self.primary = is_primary()
        if not isinstance(first_step, int) or isinstance(first_step, bool) or first_step < 0:
            raise ValueError(f"first_step must be an int >= 0; got {first_step!r}")
        if logger is None or not self.primary:
            self.logger: Logger = NullLogger()
        else:
            self.logger = ShiftedLogger(logger, first_step) if first_step else logger
        self.first_step = first_step
        self.out = None if out is None else Path(out)
        self.mesh = mesh if mesh is not None else make_mesh()
        self.filter_spec = filter_spec
        every = config.validate_every
        self.validate_every = (
            0 if not task.validates else (config.log_every if every is None else every)
        )
        self._optax: optax.GradientTransformation | None = None

    # ------------------------------------------------------------------ building blocks
    def split(self, model: Any) -> tuple[Any, Any]:
        """``(params, static)``: trainable leaves and everything else."""
        spec = trainable_filter(model) if self.filter_spec is None else self.filter_spec
        return eqx.partition(model, spec)

    def init_state(
        self, model: Any, data: Any, key: PRNGKeyArray, *, place: bool = True
    ) -> tuple[TrainState, Any]:
        """The state at step 0 (placed on the mesh unless ``place`` is False) and the static
        part of the model."""
        key = _as_key_data(key)
        data_key, _ = jax.random.split(jax.random.wrap_key_data(key))
        params, static = self.split(model)
        # Weakly typed leaves (jnp.asarray(0.1)) would lose that flag in the first update and
        # make the step compile twice: give every parameter its strong dtype up front.
        params = jax.tree_util.tree_map(lambda x: jnp.array(x, dtype=x.dtype), params)
        aug_state = self.augmenter.init(data, data_key)
        self._optax = self._build_optimiser(model)
        state = TrainState(
            params=params,
            opt_state=self._optax.init(params),
            data=aug_state,
            best_params=params if self.config.track_best else None,
            best_loss=jnp.asarray(jnp.inf, jnp.float32),
            step=jnp.asarray(0, jnp.int32),
            key=key,
            recent_metrics={},
        )
        # the metric names; an ensemble member (place=False) is not batch-split
        _, metrics = eqx.filter_eval_shape(self._advance(static, ensemble=not place), state)
        block = self.config.log_every
        recent = {name: jnp.zeros(block, jnp.result_type(float)) for name in metrics}
        state = dataclasses.replace(state, recent_metrics=recent)
        return (self._place(state) if place else state), static

    def _build_optimiser(self, trained: Any) -> optax.GradientTransformation:
        if not isinstance(self.optimiser, OptimConfig):
            return self.optimiser
        spec = self.task.non_negative(trained)
        return self.optimiser.build(self.config.steps, non_negative_leaves=spec)

    def _place(self, state: TrainState, *, members: bool = False) -> TrainState:
        """Replicate the state over the mesh; optionally split the data along axis 0. The
        stacked state of an ensemble (``members``) is split along its member axis instead."""
        if self.mesh.size == 1:
            return state
        if members:
            return shard_batch(state, self.mesh)
        placed = replicate(state, self.mesh)
        if self.config.shard_data:
            data = shard_batch(state.data, self.mesh)
            placed = eqx.tree_at(lambda s: s.data, placed, data, is_leaf=lambda x: x is None)
        return placed

    def make_step(self, static: Any, *, ensemble: bool = False) -> CompiledStep:
        """The jitted training step ``state -> (state, metrics)`` for this model structure
        (``jax.vmap``-ped over the members of a stacked ``ensemble`` state)."""
        advance, block = self._advance(static, ensemble=ensemble), self.config.log_every

        def step(state: TrainState) -> tuple[TrainState, dict]:
            new_state, metrics = advance(state)
            slot = state.step % block
            recent = {
                name: buffer.at[slot].set(metrics[name].astype(buffer.dtype))
                for name, buffer in state.recent_metrics.items()
            }
            return dataclasses.replace(new_state, recent_metrics=recent), metrics

        return CompiledStep(jax.vmap(step) if ensemble else step)

    def _advance(
        self, static: Any, *, ensemble: bool = False
    ) -> Callable[[TrainState], tuple[TrainState, dict]]:
        """One optimisation step as a pure function (``recent_metrics`` left as it was). An
        ensemble's members, not its batches, are split across the devices."""
        loss_fn, optimiser, augmenter = self.loss_fn, self._optax, self.augmenter
        if optimiser is None:
            raise RuntimeError("build the state with init_state before the step")
        mesh, first_block = (None if ensemble else self.mesh), self.config.log_every
        track_best = self.config.track_best and not self.validate_every

        def objective(params: Any, batch: Any, key: PRNGKeyArray) -> tuple[Array, dict]:
            loss, aux = _split_aux(loss_fn(eqx.combine(params, static), batch, key))
            return loss, aux

        def advance(state: TrainState) -> tuple[TrainState, dict]:
            key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
            data_key, loss_key = jax.random.split(key)
            batch = constrain_batch(augmenter.sample(state.data, data_key), mesh)
            (loss, aux), grads = eqx.filter_value_and_grad(objective, has_aux=True)(
                state.params, batch, loss_key
            )
            if isinstance(optimiser, optax.GradientTransformationExtraArgs):
                # what line-search optimisers (optax.lbfgs) need; the others ignore them
                updates, opt_state = optimiser.update(
                    grads,
                    state.opt_state,
                    state.params,
                    value=loss,
                    grad=grads,
                    value_fn=lambda p: objective(p, batch, loss_key)[0],
                )
            else:
                updates, opt_state = optimiser.update(grads, state.opt_state, state.params)
            params = eqx.apply_updates(state.params, updates)
            aux = dict(aux)
            data = augmenter.update(state.data, aux.pop("prediction", None), data_key)
            if track_best:
                # the first block's losses say little about the model: never select there
                better = jnp.isfinite(loss) & (loss < state.best_loss) & (state.step >= first_block)
                best_params = jax.tree_util.tree_map(
                    lambda new, old: jnp.where(better, new, old), state.params, state.best_params
                )
                best_loss = jnp.where(better, loss, state.best_loss).astype(jnp.float32)
            else:
                best_params, best_loss = state.best_params, state.best_loss
            metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
            metrics.update({k: v for k, v in aux.items() if eqx.is_array(v) and v.ndim == 0})
            new_state = TrainState(
                params,
                opt_state,
                data,
                best_params,
                best_loss,
                state.step + 1,
                state.key,
                state.recent_metrics,
            )
            return new_state, metrics

        return advance

    # ------------------------------------------------------------------ the loop
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out is None else self.out / "checkpoints" / "latest.ckpt"

    def fit(self, model: Any, data: Any, key: PRNGKeyArray, *, resume: bool = False) -> TrainResult:
        """Train ``model`` on ``data`` for ``config.steps`` steps (continuing a checkpoint if
        ``resume`` and one exists under ``out``)."""
        state, static = self.init_state(self.task.init(model, data), data, key)
        return self._fit(state, static, [None], resume)[0]

    def init_ensemble(self, models: list[Any], data: Any, keys: Any) -> tuple[TrainState, Any]:
        """The stacked state at step 0 of the ensemble of `fit_ensemble` (every array leaf
        gains a leading member axis, split across the devices of the mesh) and the static
        part the members share."""
        models = list(models)
        keys = list(keys) if not hasattr(keys, "shape") else [keys[i] for i in range(len(keys))]
        if not models or len(models) != len(keys):
            raise ValueError(
                f"fit_ensemble needs one key per model and at least one model; got "
                f"{len(models)} models and {len(keys)} keys"
            )
        if self.config.shard_data:
            raise ValueError(
                "an ensemble splits its members across the devices; TrainConfig.shard_data "
                "must be False"
            )
        k, n = len(models), self.mesh.size
        if n > 1 and k % n:
            raise ValueError(
                f"an ensemble of {k} members does not split over the {n} devices of the mesh; "
                f"use a multiple of {n} members or a smaller mesh (make_mesh(devices))"
            )
        states, static = [], None
        for i, (model, key) in enumerate(zip(models, keys, strict=True)):
            state, member_static = self.init_state(
                self.task.init(model, data), data, key, place=False
            )
            if static is None:
                static = member_static
            elif not eqx.tree_equal(member_static, static) or jax.tree_util.tree_structure(
                state
            ) != jax.tree_util.tree_structure(states[0]):
                raise ValueError(
                    f"ensemble member {i} differs from member 0 in structure, shapes or static "
                    "fields; every member must be the same model with other values"
                )
            states.append(state)
        return self._place(_stack(states), members=True), static

    def fit_ensemble(
        self, models: list[Any], data: Any, keys: Any, *, resume: bool = False
    ) -> EnsembleResult:
        """Train ``K = len(models)`` models of one structure as one program.

        Member ``i`` is ``models[i]`` trained with ``keys[i]``, on the same ``data``: the
        steps are ``jax.vmap``-ped over the members and, on a mesh of several devices, the
        members are split across the devices (``K`` must then be a multiple of the device
        count). Each member takes exactly the steps of ``fit(models[i], data, keys[i])``
        (same keys, batches, optimiser and best-model selection), and is logged under
        ``member_<i>/``; models are written to ``out/member_<i>/``. Training stops for every
        member when the loss of any member becomes non-finite.
        """
        state, static = self.init_ensemble(models, data, keys)
        results = self._fit(state, static, list(range(len(models))), resume)
        return EnsembleResult(
            members=results,
            best_member=_best_member(results),
            seconds=results[0].seconds,
            steps_per_second=results[0].steps_per_second,
        )

    def _fit(
        self, state: TrainState, static: Any, members: list[int | None], resume: bool
    ) -> list[TrainResult]:
        """The loop: ``members`` is ``[None]`` for one model, ``[0, ..., K-1]`` for a stacked
        ensemble."""
        cfg, task = self.config, self.task
        start, best_steps = 0, {i: None for i in members}
        history: dict[int | None, list[float]] = {i: [] for i in members}
        if resume:
            if self.out is None:
                raise ValueError("resume=True needs a trainer with out= (where checkpoints are)")
            state, start, best_steps, history = self._restore(state, members)
            if start == 0 and self.primary:
                tqdm.write(f"diffdyn: no checkpoint in {self.out} yet; training starts at step 0")
        self.logger.start(start)
        step_fn = self.make_step(static, ensemble=members != [None])
        diverged_at = None
        bar = tqdm(
            total=cfg.steps,
            initial=start,
            disable=not (cfg.progress and self.primary),
            desc="train",
            leave=False,
        )
        t_start = t_warm = t_checkpoint = time.perf_counter()
        warm_step = start
        validation = _Validation(self, static, members)
        if self.validate_every:  # a resumed run's best so far is the checkpoint's
            validation.best_steps.update(best_steps)

        checkpointer = BackgroundCheckpointer()
        try:
            leaves = step_fn.flatten(state)
            blocks = _MetricBlocks(
                step_fn, self.logger, cfg.log_every, start, leaves, members, history
            )
            done, per_call = start, cfg.steps_per_call
            while done < cfg.steps:
                # the first call compiles; with steps_per_call=None the second, one step
                # timed alone, sets how many steps later calls fuse
                timed = done == start or per_call is None
                n = 1 if timed else self._call_length(done, per_call)
                t_call = time.perf_counter()
                leaves = step_fn.run(leaves, n)
                if timed:
                    jax.block_until_ready(leaves)
                    now = time.perf_counter()
                    if done == start:
                        t_warm, warm_step = now, start + 1
                    else:
                        per_call = max(1, int(cfg.call_seconds / max(now - t_call, 1e-9)))
                bar.update(n)
                done += n
                out_of_time = (
                    cfg.max_seconds > 0 and time.perf_counter() - t_start > cfg.max_seconds
                )
                last = done == cfg.steps or out_of_time
                checkpoint_due = (
                    _due(done, cfg.checkpoint_every)
                    or last
                    or (
                        cfg.checkpoint_seconds > 0
                        and self.out is not None
                        and done % cfg.log_every == 0
                        and time.perf_counter() - t_checkpoint > cfg.checkpoint_seconds
                    )
                )
                if done % cfg.log_every == 0 or checkpoint_due:
                    # checkpoints and the end wait for every value; other blocks are logged
                    # one block later, so that the device never idles waiting for the host
                    diverged_at = blocks.push(leaves, done, wait=checkpoint_due)
                    if diverged_at is not None:
                        break
                    if blocks.last_loss() is not None:
                        bar.set_postfix(loss=f"{blocks.last_loss():.4g}")
                if self.validate_every and (_due(done, self.validate_every) or last):
                    leaves = validation.run(step_fn, leaves, done)
                if _due(done, cfg.histogram_every):
                    for i in members:
                        self._log_histograms(_take(step_fn.field(leaves, "params"), i), done, i)
                if _due(done, cfg.image_every) and not isinstance(self.logger, NullLogger):
                    params, key_data = step_fn.field(leaves, "params"), step_fn.field(leaves, "key")
                    for i in members:
                        model = eqx.combine(_take(params, i), static)
                        self._log_images(model, _take(key_data, i), done, i)
                if checkpoint_due and self.out is not None:
                    for i in members:
                        if not self.validate_every:
                            best_steps[i] = blocks.best_step(step_fn, leaves, best_steps[i], i)
                        else:
                            best_steps[i] = validation.best_steps[i]
                    self._checkpoint(
                        checkpointer, step_fn.unflatten(leaves), done, best_steps, blocks.losses
                    )
                    t_checkpoint = time.perf_counter()
                if out_of_time:
                    tqdm.write(f"diffdyn: max_seconds={cfg.max_seconds} reached after {done} steps")
                    break
            bar.close()
            state = step_fn.unflatten(leaves)
            jax.block_until_ready(state)
            t_end = time.perf_counter()
            seconds = t_end - t_start
            timed_steps = _step_of(state) - warm_step
        finally:
            checkpointer.close()  # the last checkpoint is on disk before fit returns
        rate = timed_steps / (t_end - t_warm) if timed_steps > 0 else math.nan
        if diverged_at is not None:
            state = step_fn.unflatten(blocks.good_leaves)
            who = "loss" if blocks.bad_member is None else f"loss of member {blocks.bad_member}"
            message = (
                f"{who} became non-finite at step {diverged_at}; training stopped, last good "
                f"state is step {_step_of(state)}"
            )
            self.logger.text("train/diverged", message, diverged_at)
            tqdm.write(f"diffdyn: {message}")
        results = []
        for i in members:
            member = _take(state, i)
            final = eqx.combine(member.params, static)
            selected = member.best_params is not None and bool(np.isfinite(float(member.best_loss)))
            if selected:
                best = eqx.combine(member.best_params, static)
                if self.validate_every:
                    selected_by, best_step = "validation", validation.best_steps[i]
                else:
                    selected_by = "loss"
                    best_step = blocks.best_step(step_fn, step_fn.flatten(state), best_steps[i], i)
            else:
                best, selected_by, best_step = final, "final", _step_of(member)
            if not all_finite(member.params):
                # the last update of a block whose losses were finite can still produce
                # non-finite parameters; no model is ever kept or written from those
                if not selected:
                    who = "the" if i is None else f"member {i}'s"
                    raise FloatingPointError(
                        f"{who} parameters are non-finite after step "
                        f"{_step_of(member)} and no finite best state was tracked; nothing saved"
                    )
                final = best
                message = (
                    f"parameters are non-finite after step {_step_of(member)}; the final "
                    f"model is the best state (step {best_step})"
                )
                self.logger.text(f"{_prefix(i)}train/nonfinite", message, _step_of(member))
                tqdm.write(f"diffdyn: {_prefix(i)}{message}")
            model_out, best_out = task.result(final), task.result(best)
            if task.draws and diverged_at is None and not isinstance(self.logger, NullLogger):
                self._log_images(final, member.key, _step_of(member), i)
            if self.out is not None:
                self._save_models(model_out, best_out, i)
            results.append(
                TrainResult(
                    model=model_out,
                    best_model=best_out,
                    best_loss=float(member.best_loss) if selected else math.nan,
                    losses=np.asarray(blocks.losses[i]),
                    steps=_step_of(member),
                    diverged_at=diverged_at,
                    seconds=seconds,
                    steps_per_second=rate,
                    best_step=best_step,
                    selected_by=selected_by,
                    validation=validation.history(i),
                )
            )
        self.logger.flush()
        return results

    def _call_length(self, done: int, limit: int) -> int:
        """Steps for the next call from step ``done``: at most ``limit``, ending at the next
        step where the loop logs, draws, validates, writes histograms or checkpoints, or
        stops."""
        cfg = self.config
        end = cfg.steps
        for every in (
            cfg.log_every,
            cfg.checkpoint_every,
            cfg.histogram_every,
            cfg.image_every,
            self.validate_every,
        ):
            if every > 0:
                end = min(end, (done // every + 1) * every)
        return min(limit, end - done)

    # ------------------------------------------------------------------ side effects
    def _restore(
        self, state: TrainState, members: list[int | None]
    ) -> tuple[TrainState, int, dict[int | None, int | None], dict[int | None, list[float]]]:
        """``(state, start step, best step of each member, losses of each member before the
        start)`` from the checkpoint under ``out`` if there is one (read by process 0, sent to
        the others), else the state as it is, step 0, no best steps and no losses."""
        path, ensemble = self.checkpoint_path, members != [None]
        none: dict[int | None, int | None] = {i: None for i in members}
        empty: dict[int | None, list[float]] = {i: [] for i in members}

        def losses_of(header: dict, step: int) -> np.ndarray:
            """The recorded losses ``[members, step]`` (NaN where a checkpoint written
            before losses were recorded has none)."""
            recorded = header.get("losses")
            table = np.full((len(members), step), np.nan)
            if recorded is not None:
                rows = recorded if ensemble else [recorded]
                for j, row in enumerate(rows):
                    table[j, : len(row)] = np.asarray(row, float)[:step]
            return table

        def history(table: np.ndarray) -> dict[int | None, list[float]]:
            if np.isnan(table).all():
                return empty
            return {i: table[j].tolist() for j, i in enumerate(members)}

        def best_steps(header: dict) -> dict[int | None, int | None]:
            best = header.get("best_step")
            if ensemble and not (isinstance(best, list) and len(best) == len(members)):
                raise ValueError(
                    f"checkpoint {path} is not one of an ensemble of {len(members)} members"
                )
            return {i: (best[i] if ensemble else best) for i in members}

        if jax.process_count() == 1:
            if path is None or not path.exists():
                return state, 0, none, empty
            loaded, header = load_checkpoint(path, state)
            self._report_changes(header)
            step = int(header["step"])
            restored = self._place(loaded, members=ensemble)
            return restored, step, best_steps(header), history(losses_of(header, step))
        skeleton = jax.tree_util.tree_map(
            lambda x: np.zeros(x.shape, x.dtype) if eqx.is_array(x) else x, state
        )
        flags = np.full(2 + len(members), -1, np.int32)
        flags[:2] = 0
        header = None
        if self.primary and path is not None and path.exists():
            skeleton, header = load_checkpoint(path, skeleton)
            self._report_changes(header)
            flags[0], flags[1] = 1, int(header["step"])
            for j, (_, step) in enumerate(best_steps(header).items()):
                flags[2 + j] = -1 if step is None else step
        dynamic, static = eqx.partition(skeleton, eqx.is_array)
        dynamic, flags = broadcast_from_primary((dynamic, flags))
        if not flags[0]:
            return state, 0, none, empty
        table = np.zeros((len(members), int(flags[1])))
        if header is not None:
            table = losses_of(header, int(flags[1]))
        table = np.asarray(broadcast_from_primary(table))
        restored = self._place(eqx.combine(dynamic, static), members=ensemble)
        best = {i: None if flags[2 + j] < 0 else int(flags[2 + j]) for j, i in enumerate(members)}
        return restored, int(flags[1]), best, history(table)

    def _checkpoint(
        self,
        writer: BackgroundCheckpointer,
        state: TrainState,
        step: int,
        best_steps: dict[int | None, int | None],
        losses: dict[int | None, list[float]],
    ) -> None:
        # one transfer (an all-gather where data is split across processes, so every process
        # takes part); the checks and the write use this copy
        host = gather_to_host(state)
        if not all_finite(host.params):
            tqdm.write(f"diffdyn: parameters are non-finite at step {step}; checkpoint kept")
            return
        best = best_steps[None] if None in best_steps else list(best_steps.values())
        if self.primary:
            # copies: the loop appends to the lists while the writer thread serialises
            recorded = list(losses[None]) if None in losses else [list(v) for v in losses.values()]
            metadata = {
                "step": step,
                "best_step": best,
                "losses": recorded,
                "settings": self._settings(),
            }
            writer.save(self.checkpoint_path, host, metadata)

    def _settings(self) -> dict[str, Any]:
        """The training settings a checkpoint records: the `TrainConfig` and the `OptimConfig`
        (an optax transformation given as it is records nothing)."""
        optim = self.optimiser
        return {
            "train": config_to_dict(self.config),
            "optim": config_to_dict(optim) if isinstance(optim, OptimConfig) else None,
        }

    def _report_changes(self, header: dict[str, Any]) -> None:
        """Say which recorded settings a resume changes (a command refuses such a resume
        unless told to allow it; a library call is told here)."""
        recorded = header.get("settings")
        if not self.primary or not isinstance(recorded, dict):
            return
        before, now = _flatten(recorded), _flatten(self._settings())
        # settings added after the checkpoint was written, at their defaults, change nothing
        default = _flatten(
            {"train": config_to_dict(TrainConfig()), "optim": config_to_dict(OptimConfig())}
        )
        changed = [
            f"{k} ({before.get(k)!r} -> {now.get(k)!r})"
            for k in sorted(set(before) | set(now))
            if before.get(k) != now.get(k)
            and k != "train.progress"
            and (k in before or k not in default or now.get(k) != default[k])
        ]
        if changed:
            tqdm.write(
                f"diffdyn: resuming {self.checkpoint_path} with changed settings: "
                + ", ".join(changed)
            )

    def _save_models(self, final: Any, best: Any, i: int | None) -> None:
        if not self.primary:
            return
        folder = self.out if i is None else self.out / f"member_{i}"
        for name, m in (("model", final), ("best", best)):
            if isinstance(m, AbstractModel):
                m.save(folder / f"{name}.eqx")
            else:
                save_checkpoint(folder / f"{name}.eqx", m, {"kind": "model-leaves"})

    def _log_histograms(self, params: Any, step: int, i: int | None) -> None:
        flat, _ = jax.tree_util.tree_flatten_with_path(params)
        for path, leaf in flat:
            if eqx.is_array(leaf):
                tag = f"{_prefix(i)}params/{jax.tree_util.keystr(path)}"
                self.logger.histogram(tag, leaf, step)

    def _log_images(self, model: Any, key: Array, step: int, i: int | None) -> None:
        _, vis_key = jax.random.split(jax.random.wrap_key_data(key))
        key = jax.random.fold_in(vis_key, step)
        for tag, image in self.task.visualise(self.task.result(model), key).items():
            image = np.asarray(image)
            if image.ndim == 4:
                self.logger.video(f"{_prefix(i)}{tag}", image, step)
            else:
                self.logger.image(f"{_prefix(i)}{tag}", image, step)


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0


def _step_of(state: TrainState) -> int:
    """The step of a state (of every member of an ensemble: they advance together)."""
    return int(np.max(np.asarray(state.step)))


def _best_member(results: list[TrainResult]) -> int | None:
    """The member with the lowest best loss (validation or training, as it was selected)."""
    scores = [r.best_loss if np.isfinite(r.best_loss) else np.inf for r in results]
    return int(np.argmin(scores)) if np.isfinite(min(scores)) else None
