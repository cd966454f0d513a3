"""The NCA workflows behind ``diffdyn nca train`` and ``diffdyn nca run``, as library calls.

- `fit_nca` builds the task, the data and the model (with its mask, `make_mask`) that an
  `NCATrainConfig` describes (for task sequence: reads the recorded frames with
  `load_sequence`; for task texture: draws the example with `texture_image` or reads a PNG),
  trains with the common `Trainer` and evaluates the result;
- `run_nca` loads a trained growing NCA (models of other tasks are refused), finds its
  target and grid (from the training's ``config.yaml`` next to the model) and grows, damages
  and regrows it (`evaluate_growth`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from diffdyn.common import (
    Logger,
    Trainer,
    TrainResult,
    load_config_file,
    load_sequence,
    texture_image,
)
from diffdyn.common._helpers import read_image

from ._config import (
    _SEQUENCE_HIDDEN,
    NCARunConfig,
    NCATrainConfig,
    TextureConfig,
    _boundary_weight,
    _is_texture_file,
    build_model,
)
from ._grow import GrowTask, GrowthEvaluation, evaluate_growth
from ._model import AbstractNCA, rollout_batch
from ._multi import MorphTask, MultiTargetTask
from ._pde_task import (
    TrajectoryTask,
    evaluate_trajectory,
    gray_scott_trajectory,
    trajectory_windows,
)
from ._sequence import SequenceTask
from ._targets import make_mask, make_target
from ._texture import TextureTask

__all__ = ["NCAFit", "NCARun", "fit_nca", "run_nca", "load_texture"]


@dataclasses.dataclass
class NCAFit:
    """What `fit_nca` returns.

    Attributes:
        result: the trainer's result (final and best model, losses, validation history).
        metrics: scalar metrics of the run (see `fit_nca`).
        growth: grow: the final model's `GrowthEvaluation` (with the frames of one rollout).
        target: grow: the target ``[O, H, W]``; species: the targets ``[S, 4, H, W]``;
            morph: the target ``[4, H, W]``; texture: the example texture ``[3, H, W]``.
        source: morph: the source pattern ``[4, H, W]``.
        names: species: a label per target (its built-in name or its file's stem); morph:
            the source's and the target's.
        truth: pde: the test trajectory ``[N, O, H, W]`` (an unseen initial condition);
            sequence: the held-out frames of every sequence ``[B, K, O, H, W]``.
        prediction: pde: the final model's free rollout from the test trajectory's first
            frame, every channel ``[N, C, H, W]``; sequence: the final model's free rollout
            from the first held-out frame ``[B, K, C, H, W]``.
        times: sequence: the times of the held-out frames ``[K]``; species and morph: the
            NCA step of every frame of ``frames``.
        grown: texture: states grown from noise for ``rollout_max`` steps by the final model
            ``[S, C, H, W]``.
        untrained: texture: states grown from the same noise, with the same keys, by the
            untrained model ``[S, C, H, W]``.
        frames: texture: one rollout of the final model from noise over twice
            ``rollout_max`` steps ``[T, C, H, W]``; species: the final model growing every
            species from its seed over ``rollout_steps`` ``[S, T, C, H, W]``; morph: the
            final model morphing the source over twice ``rollout_steps`` ``[T, C, H, W]``.
        mask: grow, species and morph with a masked NCA: the 0/1 shape ``[H, W]``.
    """

    result: TrainResult
    metrics: dict[str, Any]
    growth: GrowthEvaluation | None = None
    target: np.ndarray | None = None
    truth: np.ndarray | None = None
    prediction: np.ndarray | None = None
    times: np.ndarray | None = None
    grown: np.ndarray | None = None
    untrained: np.ndarray | None = None
    frames: np.ndarray | None = None
    source: np.ndarray | None = None
    names: tuple[str, ...] | None = None
    mask: np.ndarray | None = None


def _frame_every(steps: int, frames: int = 16) -> int:
    """The largest divisor of ``steps`` that is at most ``steps // frames`` (at least 1)."""
    every = max(1, steps // frames)
    while steps % every:
        every -= 1
    return every


def _selection(res: TrainResult, seconds: float) -> dict[str, Any]:
    """The trainer's numbers: its losses, which model it selected, the steps it ran, the
    seconds it took and the model's parameters."""
    return {
        "final_loss": res.final_loss,
        "best_loss": res.best_loss,
        "best_step": res.best_step,
        "selected_by": res.selected_by,
        "steps": res.steps,
        "seconds": seconds,
        "parameters": res.model.num_parameters(),
    }


def fit_nca(
    cfg: NCATrainConfig,
    key: PRNGKeyArray,
    *,
    logger: Logger | None = None,
    out: str | Path | None = None,
    resume: bool = False,
) -> NCAFit:
    """Train the NCA that ``cfg`` describes on its task and evaluate it.

    Keys: ``k_model, k_train, k_eval = split(key, 3)`` (grow, species, morph) or ``k_data,
    k_test, k_model, k_train, k_eval = split(key, 5)`` (pde; the validation trajectory starts
    from ``fold_in(k_test, 1)``).

    - grow: `GrowTask` on ``cfg.grow``'s target; the best model is the one that grows best
      from the seed cell (validation every ``train.validate_every`` steps). Metrics: the
      final model's `evaluate_growth` (``mse``, ``mse_persisted``, ``mse_damaged``,
      ``mse_regrown``), ``best_mse`` (the best model's ``mse``, same key), and the trainer's
      ``final_loss`` (pool loss), ``best_loss`` (the selecting loss), ``best_step``,
      ``selected_by``, ``steps``, ``seconds``, ``parameters``.
    - species: `MultiTargetTask` on ``cfg.species.targets``, every target grown from its own
      coded seed cell; validation and the metrics grow ``samples`` states per species.
      Metrics: ``mse`` (the final model's mean over the species), ``mse_<name>`` per target
      (its built-in name or its file's stem), ``best_mse``, ``untrained_mse`` and
      ``untrained_mse_<name>`` (the untrained model's, same key), and the trainer's numbers
      as for grow.
    - morph: `MorphTask` from ``cfg.morph.source`` to ``cfg.morph.target``. Metrics: ``mse``
      (the final model's MSE to the target after ``rollout_steps`` steps from the source,
      mean of ``samples`` rollouts), ``mse_start`` (the source's MSE to the target: where the
      morph starts), ``mse_persisted`` (after twice ``rollout_steps``: is the target held?),
      ``best_mse``, ``untrained_mse`` (same key), and the trainer's numbers as for grow.
    - pde: `TrajectoryTask` on ``cfg.pde.trajectories`` Gray-Scott trajectories, validated on
      another initial condition and tested on a third. Metrics: the final model's
      ``train_mse`` (first training trajectory), ``test_mse``, ``test_mse_last`` and
      ``test_mse_persistence`` (`evaluate_trajectory`), ``best_test_mse`` (the best model's
      ``test_mse``), and the trainer's numbers as for grow.
    - sequence: `SequenceTask` on the frames of ``cfg.data`` (`load_sequence`), the last
      ``cfg.sequence.held_out`` frames of every sequence held out; the best model is the one
      whose free rollout over them is best. Keys: ``k_model, k_train, k_eval = split(key,
      3)``. Metrics: the final model's ``held_out_mse`` (rollout from the first held-out
      frame, scored on the later ones over the loss channels), ``held_out_mse_last``,
      ``held_out_mse_persistence`` (repeating the first held-out frame), ``best_held_out_mse``
      (the best model's, on the same frames that selected it, so optimistic), the data's
      ``sequences``, ``frames``, ``observed_channels`` and ``interval_steps`` (NCA steps per
      interval), and the trainer's numbers as for grow.
    - texture: `TextureTask` on ``cfg.texture``'s example (`load_texture`), trained from one
      noise seed state that fills the pool; the best model is the one whose states grown from
      fresh noise have the lowest texture loss. Keys: ``k_model, k_seed, k_train, k_eval =
      split(key, 4)``. Metrics: ``texture_loss`` (the final model's `TextureTask.evaluate`:
      the mean `texture_loss` of ``texture.samples`` states grown from noise for
      ``texture.rollout_max`` steps), ``best_texture_loss`` and ``untrained_texture_loss``
      (the best and the untrained model's, same key), and the trainer's numbers as for grow.
      `NCAFit.grown` and ``untrained`` are the states these losses score; ``frames`` is a
      rollout from the noise ``fold_in(k_eval, 1)``.

    ``logger``, ``out`` and ``resume`` go to the `Trainer` (``out`` receives the checkpoints,
    ``model.eqx`` and ``best.eqx``); the final metrics are also logged under ``eval/``.
    """
    if cfg.task == "grow":
        fit = _fit_grow(cfg, key, logger=logger, out=out, resume=resume)
    elif cfg.task == "species":
        fit = _fit_species(cfg, key, logger=logger, out=out, resume=resume)
    elif cfg.task == "morph":
        fit = _fit_morph(cfg, key, logger=logger, out=out, resume=resume)
    elif cfg.task == "pde":
        fit = _fit_pde(cfg, key, logger=logger, out=out, resume=resume)
    elif cfg.task == "texture":
        fit = _fit_texture(cfg, key, logger=logger, out=out, resume=resume)
    else:
        fit = _fit_sequence(cfg, key, logger=logger, out=out, resume=resume)
    if logger is not None:
        for name, value in fit.metrics.items():
            if isinstance(value, float) and math.isfinite(value):
                logger.scalar(f"eval/{name}", value, fit.result.steps)
        logger.flush()
    return fit


_rollouts = eqx.filter_jit(rollout_batch)
"""`rollout_batch`, compiled once per model structure, step count and frame spacing."""


def _pool_arguments(cfg: NCATrainConfig, section: Any) -> dict[str, Any]:
    """The keyword arguments of an `AbstractPoolTask` from a pool section of ``cfg``."""
    names = ("pool_size", "batch_size", "damage", "reseed", "checkpoint", "samples")
    return {
        **{name: getattr(section, name) for name in names},
        "boundary_weight": _boundary_weight(cfg.model),
    }


def _mask(cfg: NCATrainConfig, section: Any, *, seeded: bool) -> np.ndarray | None:
    """The 0/1 field of ``cfg.model.mask`` on a pool section's grid (None without a mask).
    ``seeded``: the task grows from the centre cell, which a confining mask must hold."""
    m = cfg.model
    if m.mask is None:
        return None
    shape = make_mask(m.mask, section.size, section.pad)
    h, w = shape.shape
    if seeded and m.mask_kind != "soft" and shape[h // 2, w // 2] == 0:
        raise ValueError(
            f"model.mask {m.mask!r} leaves out the centre cell, where task {cfg.task} grows "
            "from its seed cell: the mask would erase the seed"
        )
    return shape


def _fit_grow(cfg: NCATrainConfig, key: PRNGKeyArray, **fit_kwargs: Any) -> NCAFit:
    g = cfg.grow
    target = make_target(g.target, g.size, g.pad)
    mask = _mask(cfg, g, seeded=True)
    k_model, k_train, k_eval = jax.random.split(key, 3)
    model = build_model(cfg.model, "grow", k_model, mask=mask)
    task = GrowTask(target, g.rollout_steps, **_pool_arguments(cfg, g))
    res, seconds = _fit(task, cfg, model, task.seed(model.channels), k_train, **fit_kwargs)
    growth = evaluate_growth(
        res.model,
        target,
        k_eval,
        steps=g.rollout_steps,
        samples=g.samples,
        every=_frame_every(g.rollout_steps),
    )
    best_mse = float(task.evaluate(res.best_model, k_eval)["loss"])
    metrics = {
        **growth.metrics(),
        "best_mse": best_mse,
        **_selection(res, seconds),
    }
    return NCAFit(res, metrics, growth=growth, target=target, mask=mask)


def _labels(specs: tuple[str, ...]) -> tuple[str, ...]:
    """A label per target: a built-in name, or a file's stem (prefixed by its index where
    two stems are the same)."""
    names = tuple(Path(s).stem if _is_texture_file(s) else s for s in specs)
    if len(set(names)) == len(names):
        return names
    return tuple(f"{i}_{n}" for i, n in enumerate(names))


def _fit_species(cfg: NCATrainConfig, key: PRNGKeyArray, **fit_kwargs: Any) -> NCAFit:
    s = cfg.species
    targets = np.stack([make_target(t, s.size, s.pad) for t in s.targets])
    mask = _mask(cfg, s, seeded=True)
    k_model, k_train, k_eval = jax.random.split(key, 3)
    model = build_model(cfg.model, "species", k_model, mask=mask)
    task = MultiTargetTask(targets, s.rollout_steps, **_pool_arguments(cfg, s))
    res, seconds = _fit(task, cfg, model, task.seed(model.channels), k_train, **fit_kwargs)
    names = _labels(tuple(s.targets))

    def errors(m: AbstractNCA, prefix: str) -> dict[str, float]:
        out = task.evaluate(m, k_eval)
        return {
            f"{prefix}mse": float(out["loss"]),
            **{f"{prefix}mse_{n}": float(out[f"species_{i}"]) for i, n in enumerate(names)},
        }

    every = _frame_every(s.rollout_steps)
    frames = _rollouts(res.model, task.seed(model.channels), s.rollout_steps, k_eval, every=every)
    metrics = {
        **errors(res.model, ""),
        "best_mse": errors(res.best_model, "")["mse"],
        **errors(model, "untrained_"),
        **_selection(res, seconds),
    }
    return NCAFit(
        res,
        metrics,
        target=targets,
        frames=np.asarray(frames),
        times=np.arange(frames.shape[1]) * every,
        names=names,
        mask=mask,
    )


def _fit_morph(cfg: NCATrainConfig, key: PRNGKeyArray, **fit_kwargs: Any) -> NCAFit:
    m = cfg.morph
    source = make_target(m.source, m.size, m.pad)
    target = make_target(m.target, m.size, m.pad)
    if np.array_equal(source, target):
        raise ValueError(
            f"morph.source {m.source!r} and morph.target {m.target!r} are the same pattern: a "
            "morph needs two different ones"
        )
    mask = _mask(cfg, m, seeded=False)
    k_model, k_train, k_eval = jax.random.split(key, 3)
    model = build_model(cfg.model, "morph", k_model, mask=mask)
    task = MorphTask(
        source,
        target,
        m.rollout_steps,
        code_channels=m.code_channels,
        **_pool_arguments(cfg, m),
    )
    x0 = task.seed(model.channels)
    res, seconds = _fit(task, cfg, model, x0, k_train, **fit_kwargs)
    steps = 2 * m.rollout_steps
    every = _frame_every(steps, 8)
    frames = _rollouts(res.model, x0[None], steps, k_eval, every=every)[0]

    def errors(net: AbstractNCA, n: int) -> float:  # the mean MSE to the target after n steps
        x = jnp.broadcast_to(x0, (m.samples, *x0.shape))
        return float(jnp.mean(task.errors(_rollouts(net, x, n, k_eval))))

    metrics = {
        "mse": errors(res.model, m.rollout_steps),
        "mse_start": float(np.mean((source - target) ** 2)),
        "mse_persisted": errors(res.model, steps),
        "best_mse": errors(res.best_model, m.rollout_steps),
        "untrained_mse": errors(model, m.rollout_steps),
        **_selection(res, seconds),
    }
    return NCAFit(
        res,
        metrics,
        target=target,
        source=source,
        frames=np.asarray(frames),
        times=np.arange(frames.shape[0]) * every,
        names=(m.source, m.target),
        mask=mask,
    )


def _fit_pde(cfg: NCATrainConfig, key: PRNGKeyArray, **fit_kwargs: Any) -> NCAFit:
    p = cfg.pde
    k_data, k_test, k_model, k_train, k_eval = jax.random.split(key, 5)

    def trajectory(k: PRNGKeyArray) -> jax.Array:
        return gray_scott_trajectory(k, p.size, p.frames, p.frame_dt)

    data = jnp.stack([trajectory(k) for k in jax.random.split(k_data, p.trajectories)])
    test = trajectory(k_test)
    validation = trajectory(jax.random.fold_in(k_test, 1))
    model = build_model(cfg.model, "pde", k_model)
    windows = jnp.concatenate([trajectory_windows(t, p.window + 1) for t in data])
    task = TrajectoryTask(
        validation, p.steps_per_frame, batch_size=p.batch_size, checkpoint=p.checkpoint
    )
    res, seconds = _fit(task, cfg, model, windows, k_train, **fit_kwargs)
    spf = p.steps_per_frame
    train_eval = evaluate_trajectory(res.model, data[0], k_eval, spf)
    test_eval = evaluate_trajectory(res.model, test, k_eval, spf, keep_frames=True)
    best_eval = evaluate_trajectory(res.best_model, test, k_eval, spf)
    metrics = {
        "train_mse": train_eval["mse"],
        "test_mse": test_eval["mse"],
        "test_mse_persistence": test_eval["mse_persistence"],
        "test_mse_last": test_eval["mse_last"],
        "best_test_mse": best_eval["mse"],
        **_selection(res, seconds),
    }
    return NCAFit(res, metrics, truth=np.asarray(test), prediction=np.asarray(test_eval["frames"]))


def _fit_sequence(cfg: NCATrainConfig, key: PRNGKeyArray, **fit_kwargs: Any) -> NCAFit:
    s = cfg.sequence
    if cfg.data is None:  # NCATrainConfig refuses this; a library caller may not have used it
        raise ValueError("task sequence needs the recorded frames: cfg.data is None")
    data = load_sequence(cfg.data, times=s.times)
    observed = data.frames.shape[2]
    channels = cfg.model.channels or observed + _SEQUENCE_HIDDEN
    if channels < observed:
        raise ValueError(
            f"model.channels = {channels} is fewer than the {observed} channels of the frames "
            f"in {cfg.data!r}"
        )
    k_model, k_train, k_eval = jax.random.split(key, 3)
    model = build_model(dataclasses.replace(cfg.model, channels=channels), "sequence", k_model)
    task = SequenceTask(
        data.frames,
        data.times,
        steps_per_frame=s.steps_per_frame,
        held_out=s.held_out,
        batch_size=s.batch_size,
        propagate_fraction=s.propagate_fraction,
        loss_channels=s.loss_channels,
        loss_frames=s.loss_frames,
        state_range=s.state_range,
        regulariser_weight=s.regulariser_weight,
        perception_weight=s.perception_weight,
        checkpoint=s.checkpoint,
    )
    training = task.training_data(model.channels)
    res, seconds = _fit(task, cfg, model, training, k_train, **fit_kwargs)
    final = {k: float(v) for k, v in task.evaluate(res.model, k_eval).items()}
    best = float(task.evaluate(res.best_model, k_eval)["loss"])
    prediction = np.asarray(task.held_out_rollout(res.model, k_eval))
    metrics = {
        "held_out_mse": final["loss"],
        "held_out_mse_last": final["mse_last"],
        "held_out_mse_persistence": final["mse_persistence"],
        "best_held_out_mse": best,
        "sequences": int(data.frames.shape[0]),
        "frames": int(data.frames.shape[1]),
        "observed_channels": observed,
        "interval_steps": list(task.steps_per_interval),
        **_selection(res, seconds),
    }
    n = task.training_frames
    return NCAFit(
        res,
        metrics,
        truth=np.asarray(data.frames[:, n:]),
        prediction=prediction,
        times=np.asarray(data.times[n:]),
    )


def load_texture(cfg: TextureConfig) -> np.ndarray:
    """The example texture of ``cfg``: `texture_image` of a built-in name (``cfg.size``
    cells, ``cfg.period``), or a PNG read as RGB in ``[0, 1]`` at its own resolution,
    ``[3, H, W]`` float32."""
    if not _is_texture_file(cfg.texture):
        return texture_image(cfg.texture, cfg.size, period=cfg.period)
    image = read_image(cfg.texture, "texture.texture", "RGB")
    return np.moveaxis(np.asarray(image, np.float32) / 255.0, -1, 0)


def _fit_texture(cfg: NCATrainConfig, key: PRNGKeyArray, **fit_kwargs: Any) -> NCAFit:
    t = cfg.texture
    target = load_texture(t)
    k_model, k_seed, k_train, k_eval = jax.random.split(key, 4)
    model = build_model(cfg.model, "texture", k_model)
    task = TextureTask(
        target,
        (t.rollout_min, t.rollout_max),
        grid=(t.size, t.size),
        pool_size=t.pool_size,
        batch_size=t.batch_size,
        reseed=t.reseed,
        levels=t.levels,
        projections=t.projections,
        overflow=t.overflow,
        checkpoint=t.checkpoint,
        samples=t.samples,
    )
    seed = task.seed(model.channels, key=k_seed)
    res, seconds = _fit(task, cfg, model, seed, k_train, **fit_kwargs)

    def loss(m: AbstractNCA) -> float:
        return float(task.evaluate(m, k_eval)["loss"])

    def grow(m: AbstractNCA) -> np.ndarray:
        return np.asarray(_grow_from_noise(m, task, k_eval))

    k_frames = jax.random.fold_in(k_eval, 1)
    frames = res.model.rollout(
        task.seed(model.channels, key=k_frames),
        2 * t.rollout_max,
        k_frames,
        every=_frame_every(2 * t.rollout_max, 32),
    )
    metrics = {
        "texture_loss": loss(res.model),
        "best_texture_loss": loss(res.best_model),
        "untrained_texture_loss": loss(model),
        **_selection(res, seconds),
    }
    return NCAFit(
        res,
        metrics,
        target=np.asarray(target),
        grown=grow(res.model),
        untrained=grow(model),
        frames=np.asarray(frames),
    )


@eqx.filter_jit
def _grow_from_noise(model: AbstractNCA, task: TextureTask, key: PRNGKeyArray) -> jax.Array:
    """``task.samples`` states grown for ``T_max`` steps from fresh noise; seeds and rollout
    keys drawn from ``key`` as `TextureTask.evaluate` draws them, so the states are the ones
    it scores."""
    k_seed, k_run, _ = jax.random.split(key, 3)
    seeds = jnp.stack(
        [task.seed(model.channels, key=k) for k in jax.random.split(k_seed, task.samples)]
    )
    return rollout_batch(model, seeds, task.rollout_steps[1], k_run)


def _fit(
    task: Any,
    cfg: NCATrainConfig,
    model: AbstractNCA,
    data: Any,
    key: PRNGKeyArray,
    *,
    logger: Logger | None,
    out: str | Path | None,
    resume: bool,
) -> tuple[TrainResult, float]:
    trainer = Trainer(task, cfg.optim, config=cfg.train, logger=logger, out=out)
    t0 = time.perf_counter()
    res = trainer.fit(model, data, key, resume=resume)
    return res, time.perf_counter() - t0


@dataclasses.dataclass
class NCARun:
    """What `run_nca` returns.

    Attributes:
        model: the loaded NCA.
        path: the model file.
        target: the target ``[O, H, W]`` of the metrics.
        growth: the `GrowthEvaluation` (with the frames of the first rollout).
        metrics: the four errors of ``growth``, the step counts and the number of frames.
    """

    model: AbstractNCA
    path: Path
    target: np.ndarray
    growth: GrowthEvaluation
    metrics: dict[str, Any]


def _model_folder(spec: str) -> Path:
    """The folder of ``spec`` (a model file, or a training output folder itself)."""
    path = Path(spec)
    return path if path.is_dir() else path.parent


def _training_settings(folder: Path) -> dict[str, Any]:
    """The growing settings recorded in a training folder's ``config.yaml`` (files of
    diffdyn 0.1.0 kept ``target`` at the top and called the rollout length ``steps``)."""
    file = folder / "config.yaml"
    trained = load_config_file(file) if file.is_file() else {}
    if "task" not in trained and "model" in trained and isinstance(trained["model"], str):
        raise ValueError(
            f"{file} is the config of a `diffdyn nca run`, not of a training: the training's "
            "config.yaml was overwritten (run `nca run` with its own --out)"
        )
    if trained.get("task") == "texture":
        raise ValueError(
            f"nca run grows a model from its seed cell and scores it against a target; the "
            f"model in {str(folder)!r} was trained on task 'texture', which grows from noise "
            "and has no target to score (its grown samples are texture.png and "
            "texture_rollout.gif in the training folder)"
        )
    if trained.get("task", "grow") != "grow":
        raise ValueError(
            f"nca run grows a model from its seed cell; the model in {str(folder)!r} was trained "
            f"on task {trained.get('task')!r} (its figures are in the training folder)"
        )
    grow = dict(trained.get("grow", {}))
    return {
        "target": grow.get("target", trained.get("target")),
        "size": grow.get("size"),
        "pad": int(grow.get("pad", 0)),
        "steps": grow.get("rollout_steps", grow.get("steps")),
    }


def run_nca(cfg: NCARunConfig, key: PRNGKeyArray) -> NCARun:
    """Load the growing NCA of ``cfg.model`` and run `evaluate_growth` on it.

    The target, its side, its padding and the rollout length default to the training's (read
    from ``config.yaml`` in the model's folder); ``cfg`` overrides them. With the training's
    settings and the same number of samples, ``mse`` estimates the training's reported
    ``mse`` (the rollouts differ by their random fire masks only).
    """
    path = Path(cfg.model)
    folder = _model_folder(cfg.model)
    if path.is_dir():
        path = path / "model.eqx"
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} does not exist")
    trained = _training_settings(folder)
    spec = cfg.target or trained["target"]
    if not spec:
        raise ValueError(
            f"no target: {str(folder)!r} holds no training config.yaml, so give --target"
        )
    size = cfg.size or trained["size"] or 40
    target = make_target(spec, int(size), trained["pad"])
    model = AbstractNCA.load(path)
    steps = cfg.steps or trained["steps"]
    if steps is None:
        raise ValueError(
            f"no rollout length: {str(folder)!r} holds no training config.yaml, so give --steps"
        )
    steps = int(steps)
    regrow = steps if cfg.regrow_steps is None else cfg.regrow_steps
    growth = evaluate_growth(
        model, target, key, steps=steps, regrow_steps=regrow, samples=cfg.samples, every=cfg.every
    )
    metrics = {
        **growth.metrics(),
        "steps": steps,
        "regrow_steps": regrow,
        "frames": int(growth.frames.shape[0]) if growth.frames is not None else 0,
    }
    return NCARun(model, path, target, growth, metrics)
