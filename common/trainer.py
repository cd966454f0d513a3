"""The one training loop of diffdyn.

A jitted step (``eqx.filter_value_and_grad`` + an optax update) driven by an outer Python loop
with a progress bar, TensorBoard logging, atomic checkpoints, exact resume, a NaN guard,
best-model tracking and data parallelism by sharding. Domain packages give it

* a model (an ``eqx.Module``; its trainable leaves are chosen by ``trainable_filter``),
* a loss ``loss_fn(model, batch, key) -> loss`` or ``-> (loss, aux)`` where ``aux`` is a dict;
  scalar entries of ``aux`` are logged, and ``aux["prediction"]`` (if present) is handed to
  the augmenter's ``update`` (sample pools write it back),
* an optax optimiser (see ``common.optim``),
* data and an augmenter (``common.augment``); without an augmenter the whole data pytree is
  the batch at every step.

Randomness is reproducible and resumable: the key of step ``s`` is ``fold_in(key, s)``, so a
run stopped and resumed from a checkpoint takes exactly the steps of an uninterrupted run.
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

from common.checkpoint import load_checkpoint, save_checkpoint
from common.logger import Logger, NullLogger
from common.model import AbstractModel, trainable_filter
from common.sharding import constrain_batch, make_mesh, replicate, shard_batch

__all__ = ["TrainConfig", "TrainState", "TrainResult", "Trainer", "FullBatch"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How long to train and how often to report.

    Attributes:
        steps: total number of optimisation steps (a resumed run continues up to it).
        log_every: every step's loss is logged; values are fetched from the device in blocks of
            this many steps (larger blocks keep the device busy; NaNs are detected per block).
        image_every: call ``visualise`` every this many steps (0: only at the end).
        histogram_every: log parameter histograms every this many steps (0: never).
        checkpoint_every: write ``checkpoints/latest.ckpt`` every this many steps (0: only
            at the end). A checkpoint is only written from a state whose losses were finite.
        track_best: keep the parameters with the lowest training loss seen so far.
        shard_data: split the augmenter state along axis 0 across devices (array data;
            not for sample pools, whose state also holds an unbatched seed).
        progress: show a progress bar.
        max_seconds: stop after this much wall-clock time (0: no limit), as if ``steps`` had
            been reached there: the last block is logged and a checkpoint written.
    """

    steps: int = 1000
    log_every: int = 50
    image_every: int = 0
    histogram_every: int = 0
    checkpoint_every: int = 0
    track_best: bool = True
    shard_data: bool = False
    progress: bool = True
    max_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.max_seconds < 0:
            raise ValueError(f"TrainConfig.max_seconds must be >= 0; got {self.max_seconds}")
        for name in ("steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1; got {getattr(self, name)}")
        for name in ("image_every", "histogram_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0; got {getattr(self, name)}")


class FullBatch(eqx.Module):
    """The trivial augmenter: every step sees the whole data pytree as its batch."""

    def init(self, data: Any, key: PRNGKeyArray) -> Any:
        return data

    def sample(self, state: Any, key: PRNGKeyArray) -> Any:
        return state

    def update(self, state: Any, prediction: Any, key: PRNGKeyArray) -> Any:
        return state


class TrainState(eqx.Module):
    """Everything that changes during training; checkpointed whole."""

    params: Any
    opt_state: Any
    data: Any
    best_params: Any
    best_loss: Float[Array, ""]
    step: Array
    key: Array  # raw uint32 key data, so that it serialises


@dataclasses.dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    model: Any
    best_model: Any
    best_loss: float
    losses: np.ndarray
    steps: int
    diverged_at: int | None = None
    seconds: float = 0.0
    steps_per_second: float = math.nan  # measured after the first (compiling) step

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1]) if len(self.losses) else math.nan


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
        loss_fn: ``(model, batch, key) -> loss`` or ``-> (loss, aux_dict)``.
        optimiser: an optax transformation; it receives ``params`` (for projections).
        augmenter: an object with ``init/sample/update`` (see ``common.augment``);
            default :class:`FullBatch`.
        config: a :class:`TrainConfig`.
        logger: where scalars, histograms and images go (default: none).
        out: a folder for checkpoints and the final/best model (default: none written).
        mesh: the device mesh; default all devices, with the batch axis split across them.
        filter_spec: which leaves to train; default :func:`common.model.trainable_filter`.
        visualise: ``(model, key) -> {tag: image [C,H,W] or video [T,C,H,W]}``, called
            every ``config.image_every`` steps and at the end.
    """

    def __init__(
        self,
        loss_fn: Callable[..., Any],
        optimiser: optax.GradientTransformation,
        augmenter: Any = None,
        *,
        config: TrainConfig = TrainConfig(),
        logger: Logger | None = None,
        out: str | Path | None = None,
        mesh: jax.sharding.Mesh | None = None,
        filter_spec: Any = None,
        visualise: Callable[[Any, PRNGKeyArray], dict[str, Any]] | None = None,
    ):
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable; got {type(loss_fn).__name__}")
        if not hasattr(optimiser, "update"):
            raise TypeError("optimiser must be an optax.GradientTransformation")
        self.loss_fn = loss_fn
        self.optimiser = optimiser
        self.augmenter = FullBatch() if augmenter is None else augmenter
        self.config = config
        self.logger = NullLogger() if logger is None else logger
        self.out = None if out is None else Path(out)
        self.mesh = mesh if mesh is not None else make_mesh()
        self.filter_spec = filter_spec
        self.visualise = visualise

    # ------------------------------------------------------------------ building blocks
    def split(self, model: Any) -> tuple[Any, Any]:
        """``(params, static)``: trainable leaves and everything else."""
        spec = trainable_filter(model) if self.filter_spec is None else self.filter_spec
        return eqx.partition(model, spec)

    def init_state(self, model: Any, data: Any, key: PRNGKeyArray) -> tuple[TrainState, Any]:
        """The state at step 0 (placed on the mesh) and the static part of the model."""
        key = _as_key_data(key)
        data_key, _ = jax.random.split(jax.random.wrap_key_data(key))
        params, static = self.split(model)
        # Weakly typed leaves (jnp.asarray(0.1)) would lose that flag in the first update and
        # make the step compile twice: give every parameter its strong dtype up front.
        params = jax.tree_util.tree_map(lambda x: jnp.array(x, dtype=x.dtype), params)
        aug_state = self.augmenter.init(data, data_key)
        state = TrainState(
            params=params,
            opt_state=self.optimiser.init(params),
            data=aug_state,
            best_params=params if self.config.track_best else None,
            best_loss=jnp.asarray(jnp.inf, jnp.float32),
            step=jnp.asarray(0, jnp.int32),
            key=key,
        )
        return self._place(state), static

    def _place(self, state: TrainState) -> TrainState:
        """Replicate the state over the mesh; optionally split the data along axis 0."""
        if self.mesh.size == 1:
            return state
        placed = replicate(state, self.mesh)
        if self.config.shard_data:
            data = shard_batch(state.data, self.mesh)
            placed = eqx.tree_at(lambda s: s.data, placed, data, is_leaf=lambda x: x is None)
        return placed

    def make_step(self, static: Any) -> Callable[[TrainState], tuple[TrainState, dict]]:
        """The jitted training step ``state -> (state, metrics)`` for this model structure."""
        loss_fn, optimiser, augmenter = self.loss_fn, self.optimiser, self.augmenter
        mesh, track_best = self.mesh, self.config.track_best

        def objective(params: Any, batch: Any, key: PRNGKeyArray) -> tuple[Array, dict]:
            loss, aux = _split_aux(loss_fn(eqx.combine(params, static), batch, key))
            return loss, aux

        @eqx.filter_jit
        def step(state: TrainState) -> tuple[TrainState, dict]:
            key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
            data_key, loss_key = jax.random.split(key)
            batch = constrain_batch(augmenter.sample(state.data, data_key), mesh)
            (loss, aux), grads = eqx.filter_value_and_grad(objective, has_aux=True)(
                state.params, batch, loss_key
            )
            updates, opt_state = optimiser.update(grads, state.opt_state, state.params)
            params = eqx.apply_updates(state.params, updates)
            aux = dict(aux)
            data = augmenter.update(state.data, aux.pop("prediction", None), data_key)
            if track_best:
                better = loss < state.best_loss
                best_params = jax.tree_util.tree_map(
                    lambda new, old: jnp.where(better, new, old), state.params, state.best_params
                )
                best_loss = jnp.where(better, loss, state.best_loss).astype(jnp.float32)
            else:
                best_params, best_loss = None, state.best_loss
            metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
            metrics.update({k: v for k, v in aux.items() if eqx.is_array(v) and v.ndim == 0})
            new_state = TrainState(
                params, opt_state, data, best_params, best_loss, state.step + 1, state.key
            )
            return new_state, metrics

        return step

    # ------------------------------------------------------------------ the loop
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out is None else self.out / "checkpoints" / "latest.ckpt"

    def fit(self, model: Any, data: Any, key: PRNGKeyArray, *, resume: bool = False) -> TrainResult:
        """Train ``model`` on ``data`` for ``config.steps`` steps (continuing a checkpoint if
        ``resume`` and one exists under ``out``)."""
        cfg = self.config
        state, static = self.init_state(model, data, key)
        start = 0
        if resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            state, header = load_checkpoint(self.checkpoint_path, state)
            state = self._place(state)
            start = int(header["step"])
        step_fn = self.make_step(static)
        losses: list[float] = []
        good_state, diverged_at = state, None
        pending: list[tuple[int, dict]] = []
        bar = tqdm(
            total=cfg.steps, initial=start, disable=not cfg.progress, desc="train", leave=False
        )
        t_start = t_warm = time.perf_counter()
        warm_step = start

        def flush() -> int | None:
            if not pending:
                return None
            host = jax.device_get([m for _, m in pending])
            bad = None
            for (s, _), m in zip(pending, host, strict=True):
                loss = float(m["loss"])
                if not math.isfinite(loss):
                    bad = s
                    break
                losses.append(loss)
                for name, value in m.items():
                    self.logger.scalar(f"train/{name}", float(value), s)
            pending.clear()
            if bad is None and losses:
                bar.set_postfix(loss=f"{losses[-1]:.4g}")
            return bad

        for s in range(start, cfg.steps):
            state, metrics = step_fn(state)
            if s == start:
                jax.block_until_ready(metrics)
                t_warm, warm_step = time.perf_counter(), s + 1
            pending.append((s, metrics))
            bar.update(1)
            done = s + 1
            out_of_time = cfg.max_seconds > 0 and time.perf_counter() - t_start > cfg.max_seconds
            last = done == cfg.steps or out_of_time
            if done % cfg.log_every == 0 or last or _due(done, cfg.checkpoint_every):
                diverged_at = flush()
                if diverged_at is not None:
                    break
                good_state = state
            if _due(done, cfg.histogram_every):
                self._log_histograms(state.params, done)
            if _due(done, cfg.image_every) and self.visualise is not None:
                self._log_images(eqx.combine(state.params, static), state.key, done)
            if (_due(done, cfg.checkpoint_every) or last) and self.out is not None:
                self._checkpoint(state, done)
            if out_of_time:
                tqdm.write(f"diffdyn: max_seconds={cfg.max_seconds} reached after {done} steps")
                break
        bar.close()
        jax.block_until_ready(state)
        t_end = time.perf_counter()
        seconds = t_end - t_start
        timed_steps = int(state.step) - warm_step
        rate = timed_steps / (t_end - t_warm) if timed_steps > 0 else math.nan
        if diverged_at is not None:
            state = good_state
            message = (
                f"loss became non-finite at step {diverged_at}; training stopped, last good "
                f"state is step {int(state.step)}"
            )
            self.logger.text("train/diverged", message, diverged_at)
            tqdm.write(f"diffdyn: {message}")
        final = eqx.combine(state.params, static)
        best = final if state.best_params is None else eqx.combine(state.best_params, static)
        if self.visualise is not None and diverged_at is None:
            self._log_images(final, state.key, int(state.step))
        if self.out is not None:
            self._save_models(final, best)
        self.logger.flush()
        return TrainResult(
            model=final,
            best_model=best,
            best_loss=float(state.best_loss),
            losses=np.asarray(losses),
            steps=int(state.step),
            diverged_at=diverged_at,
            seconds=seconds,
            steps_per_second=rate,
        )

    # ------------------------------------------------------------------ side effects
    def _checkpoint(self, state: TrainState, step: int) -> None:
        leaves = jax.tree_util.tree_leaves(eqx.filter(state.params, eqx.is_inexact_array))
        if not all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in leaves):
            tqdm.write(f"diffdyn: parameters are non-finite at step {step}; checkpoint kept")
            return
        save_checkpoint(self.checkpoint_path, state, {"step": step})

    def _save_models(self, final: Any, best: Any) -> None:
        for name, m in (("model", final), ("best", best)):
            if isinstance(m, AbstractModel):
                m.save(self.out / f"{name}.eqx")
            else:
                save_checkpoint(self.out / f"{name}.eqx", m, {"kind": "model-leaves"})

    def _log_histograms(self, params: Any, step: int) -> None:
        flat, _ = jax.tree_util.tree_flatten_with_path(params)
        for path, leaf in flat:
            if eqx.is_array(leaf):
                self.logger.histogram(f"params/{jax.tree_util.keystr(path)}", leaf, step)

    def _log_images(self, model: Any, key: Array, step: int) -> None:
        _, vis_key = jax.random.split(jax.random.wrap_key_data(key))
        key = jax.random.fold_in(vis_key, step)
        for tag, image in self.visualise(model, key).items():
            image = np.asarray(image)
            if image.ndim == 4:
                self.logger.video(tag, image, step)
            else:
                self.logger.image(tag, image, step)


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0
