"""``diffdyn nca train`` / ``diffdyn nca run`` and the NCA part of ``diffdyn quickstart``.

- ``diffdyn nca train --task grow --target smiley`` grows a built-in target (or a PNG path)
  from one seed cell with a sample pool and damage;
- ``diffdyn nca train --task pde`` fits an NCA to Gray-Scott trajectories and tests it from an
  unseen initial condition;
- ``diffdyn nca run --model RUN_DIR [--damage true]`` loads a trained model, grows it from a
  seed cell and writes a GIF (erasing the right half at ``damage_at`` to show regeneration).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from diffdyn.common import TrainConfig, load_config_file, plot_curves, save_gif, save_png
from diffdyn.common.cli import RunContext, command, quickstart_part

from ._grow import erase_half, evaluate_growth, nca_optimiser, train_grow
from ._model import DEFAULT_FILTERS, NCA, AbstractNCA, seed_state
from ._pde_task import evaluate_trajectory, gray_scott_trajectory, train_trajectory
from ._targets import make_target, to_rgb
from ._variants import KANCA, GatedNCA, MultiScaleNCA
from ._visualise import plot_channels, plot_perception, plot_weights

__all__ = ["NCAModelConfig", "NCATrainConfig", "NCARunConfig", "build_model"]


@dataclasses.dataclass(frozen=True)
class NCAModelConfig:
    """Which NCA to build. ``None`` fields take the task's default (see ``_task_defaults``)."""

    variant: Literal["nca", "gated", "multiscale", "kan"] = dataclasses.field(
        default="nca", metadata={"help": "nca | gated (GLU) | multiscale | kan"}
    )
    channels: int | None = dataclasses.field(
        default=None, metadata={"help": "state channels (grow: 16, pde: 8)"}
    )
    filters: tuple[str, ...] | None = dataclasses.field(
        default=None,
        metadata={"help": "perception filters (grow: identity,sobel_x,sobel_y,laplacian)"},
    )
    hidden: int = dataclasses.field(default=96, metadata={"help": "hidden width of f"})
    activation: str = "relu"
    fire_rate: float | None = dataclasses.field(
        default=None, metadata={"help": "per-cell update probability (grow: 0.5, pde: 1)"}
    )
    alive: bool | None = dataclasses.field(
        default=None, metadata={"help": "alive masking on channel 3 (grow: true, pde: false)"}
    )
    alive_threshold: float = 0.1
    boundary: Literal["periodic", "dirichlet", "neumann"] = "periodic"
    scales: tuple[int, ...] = dataclasses.field(
        default=(1, 2), metadata={"help": "multiscale: pooling factor per channel block"}
    )
    basis: int = dataclasses.field(default=8, metadata={"help": "kan: Gaussians per edge"})


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    optimiser: str = "adam"
    learning_rate: float = dataclasses.field(
        default=2e-3, metadata={"help": "initial learning rate"}
    )
    schedule: str = dataclasses.field(
        default="exponential", metadata={"help": "constant | exponential | cosine | ..."}
    )
    decay_rate: float = dataclasses.field(
        default=0.1, metadata={"help": "exponential: lr factor over the whole run"}
    )
    normalise_gradients: bool = dataclasses.field(
        default=True, metadata={"help": "g / ||g|| per parameter block before the optimiser"}
    )


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    iterations: int = dataclasses.field(default=2000, metadata={"help": "optimisation steps"})
    log_every: int = 25
    image_every: int = dataclasses.field(
        default=250, metadata={"help": "TensorBoard batch image + rollout video"}
    )
    checkpoint_every: int = 250
    progress: bool = True
    max_seconds: float = dataclasses.field(
        default=0.0, metadata={"help": "stop after this wall-clock time (0: no limit)"}
    )


@dataclasses.dataclass(frozen=True)
class GrowConfig:
    size: int = dataclasses.field(default=40, metadata={"help": "target side in cells"})
    pad: int = dataclasses.field(default=0, metadata={"help": "empty cells around the target"})
    steps: int = dataclasses.field(default=64, metadata={"help": "NCA steps per rollout"})
    pool_size: int = 256
    batch_size: int = 8
    damage: int = dataclasses.field(default=2, metadata={"help": "damaged samples per batch"})
    reseed: int = dataclasses.field(
        default=2, metadata={"help": "worst samples per batch restarted from a fresh seed state"}
    )
    checkpoint: bool = dataclasses.field(
        default=False, metadata={"help": "jax.checkpoint every NCA step (long rollouts)"}
    )


@dataclasses.dataclass(frozen=True)
class PDEConfig:
    size: int = 32
    frames: int = dataclasses.field(default=24, metadata={"help": "frames per trajectory"})
    frame_dt: float = dataclasses.field(default=50.0, metadata={"help": "PDE time per frame"})
    trajectories: int = dataclasses.field(default=2, metadata={"help": "training trajectories"})
    steps_per_frame: int = 8
    window: int = dataclasses.field(
        default=6, metadata={"help": "frames per free rollout (2 learns steps, not trajectories)"}
    )
    batch_size: int = 8


@dataclasses.dataclass(frozen=True)
class NCATrainConfig:
    """``diffdyn nca train``."""

    task: Literal["grow", "pde"] = dataclasses.field(
        default="grow", metadata={"help": "grow an image | learn a Gray-Scott trajectory"}
    )
    target: str = dataclasses.field(
        default="smiley", metadata={"help": "built-in (smiley, heart, ring, glyph:X) or PNG"}
    )
    model: NCAModelConfig = NCAModelConfig()
    optim: OptimConfig = OptimConfig()
    train: LoopConfig = LoopConfig()
    grow: GrowConfig = GrowConfig()
    pde: PDEConfig = PDEConfig()


@dataclasses.dataclass(frozen=True)
class NCARunConfig:
    """``diffdyn nca run``."""

    model: str = dataclasses.field(
        default="", metadata={"help": "model file (.eqx) or a `nca train` output folder"}
    )
    steps: int = dataclasses.field(default=128, metadata={"help": "NCA steps to run"})
    every: int = dataclasses.field(default=2, metadata={"help": "steps per GIF frame"})
    damage: bool = dataclasses.field(
        default=False, metadata={"help": "erase the right half at damage_at"}
    )
    damage_at: int = 64
    target: str = dataclasses.field(
        default="", metadata={"help": "target for MSE (default: the training config's)"}
    )
    size: int = dataclasses.field(default=0, metadata={"help": "grid side (0: from training)"})


_TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "grow": {"channels": 16, "filters": DEFAULT_FILTERS, "fire_rate": 0.5, "alive": True},
    "pde": {"channels": 8, "filters": ("identity", "laplacian"), "fire_rate": 1.0, "alive": False},
}


def build_model(cfg: NCAModelConfig, task: str, key: PRNGKeyArray) -> AbstractNCA:
    """The NCA of ``cfg`` with the task's defaults for the ``None`` fields."""
    d = _TASK_DEFAULTS[task]
    pick = {k: d[k] if getattr(cfg, k) is None else getattr(cfg, k) for k in d}
    common: dict[str, Any] = {
        "channels": pick["channels"],
        "filters": pick["filters"],
        "fire_rate": pick["fire_rate"],
        "alive_threshold": cfg.alive_threshold if pick["alive"] else None,
        "alive_channel": 3,
        "boundary": cfg.boundary,
    }
    if cfg.variant == "nca":
        return NCA(hidden=cfg.hidden, activation=cfg.activation, key=key, **common)
    if cfg.variant == "gated":
        return GatedNCA(hidden=cfg.hidden, activation=cfg.activation, key=key, **common)
    if cfg.variant == "multiscale":
        return MultiScaleNCA(
            hidden=cfg.hidden, activation=cfg.activation, scales=cfg.scales, key=key, **common
        )
    return KANCA(basis=cfg.basis, key=key, **common)


def _train_config(cfg: LoopConfig, quick: bool) -> TrainConfig:
    return TrainConfig(
        steps=cfg.iterations,
        log_every=min(cfg.log_every, cfg.iterations),
        image_every=cfg.image_every,
        checkpoint_every=cfg.checkpoint_every,
        progress=cfg.progress and not quick,
        max_seconds=cfg.max_seconds,
    )


def _optimiser(cfg: OptimConfig, steps: int) -> Any:
    return nca_optimiser(
        cfg.learning_rate,
        steps,
        name=cfg.optimiser,
        schedule=cfg.schedule,
        decay_rate=cfg.decay_rate,
        normalise=cfg.normalise_gradients,
    )


def _quick(cfg: NCATrainConfig) -> NCATrainConfig:
    """Small settings for tests and notebooks (``--quick`` / ``DIFFDYN_QUICK=1``)."""
    r = dataclasses.replace
    return r(
        cfg,
        model=r(cfg.model, hidden=min(cfg.model.hidden, 32), channels=cfg.model.channels or 8),
        train=r(cfg.train, iterations=min(cfg.train.iterations, 30), image_every=0),
        grow=r(
            cfg.grow,
            size=min(cfg.grow.size, 24),
            steps=min(cfg.grow.steps, 24),
            batch_size=min(cfg.grow.batch_size, 4),
            pool_size=min(cfg.grow.pool_size, 32),
        ),
        pde=r(
            cfg.pde,
            size=min(cfg.pde.size, 24),
            frames=min(cfg.pde.frames, 8),
            trajectories=1,
            steps_per_frame=min(cfg.pde.steps_per_frame, 4),
            window=min(cfg.pde.window, 3),
        ),
    )


def _save_grow_figures(
    model: AbstractNCA, target: np.ndarray, steps: int, key: PRNGKeyArray, out: Path
) -> None:
    seed = seed_state(model.channels, *target.shape[1:], first=min(3, model.channels - 1))
    frames = np.asarray(model.rollout(seed, 2 * steps, key, every=max(1, steps // 16)))
    save_gif(to_rgb(frames), out / "rollout.gif")
    grown = np.asarray(model.rollout(seed, steps, key))
    regrown = np.asarray(model.rollout(erase_half(grown), steps, jax.random.fold_in(key, 1)))
    tiles = [to_rgb(target), to_rgb(grown), to_rgb(np.asarray(erase_half(grown))), to_rgb(regrown)]
    save_png(np.concatenate(tiles, axis=-1), out / "grown_damaged_regrown.png", scale=4)
    plot_channels(frames, out / "channels.png")
    plot_perception(model, out / "perception.png")
    plot_weights(model, out / "weights.png")


def _train_grow(cfg: NCATrainConfig, ctx: RunContext) -> dict[str, Any]:
    g = cfg.grow
    target = make_target(cfg.target, g.size, g.pad)
    k_model, k_train, k_eval = jax.random.split(ctx.key, 3)
    model = build_model(cfg.model, "grow", k_model)
    save_png(to_rgb(target), ctx.path("target.png"))
    logger = ctx.logger()
    t0 = time.perf_counter()
    res = train_grow(
        model,
        target,
        k_train,
        steps=g.steps,
        pool_size=g.pool_size,
        batch_size=g.batch_size,
        damage=g.damage,
        reseed=min(g.reseed, g.batch_size),
        optimiser=_optimiser(cfg.optim, cfg.train.iterations),
        config=_train_config(cfg.train, ctx.quick),
        logger=logger,
        out=ctx.out,
        checkpoint=g.checkpoint,
        resume=ctx.resume,
    )
    seconds = time.perf_counter() - t0
    metrics = evaluate_growth(res.model, target, k_eval, steps=g.steps)
    for name, value in metrics.items():
        logger.scalar(f"eval/{name}", value, res.steps)
    logger.flush()
    plot_curves({"loss": res.losses}, ctx.path("loss.png"), logy=True, ylabel="per-pixel MSE")
    _save_grow_figures(res.model, target, g.steps, k_eval, ctx.out)
    return {
        **metrics,
        "final_loss": res.final_loss,
        "best_loss": res.best_loss,
        "iterations": res.steps,
        "seconds": seconds,
        "parameters": res.model.num_parameters(),
    }


def _train_pde(cfg: NCATrainConfig, ctx: RunContext) -> dict[str, Any]:
    p = cfg.pde
    k_data, k_test, k_model, k_train, k_eval = jax.random.split(ctx.key, 5)
    data = jnp.stack(
        [
            gray_scott_trajectory(k, p.size, p.frames, p.frame_dt)
            for k in jax.random.split(k_data, p.trajectories)
        ]
    )
    test = gray_scott_trajectory(k_test, p.size, p.frames, p.frame_dt)
    model = build_model(cfg.model, "pde", k_model)
    logger = ctx.logger()
    t0 = time.perf_counter()
    res = train_trajectory(
        model,
        data,
        k_train,
        steps_per_frame=p.steps_per_frame,
        window=min(p.window, p.frames - 1),
        batch_size=p.batch_size,
        optimiser=_optimiser(cfg.optim, cfg.train.iterations),
        config=_train_config(cfg.train, ctx.quick),
        logger=logger,
        out=ctx.out,
        resume=ctx.resume,
    )
    seconds = time.perf_counter() - t0
    train_eval = evaluate_trajectory(res.model, data[0], k_eval, p.steps_per_frame)
    test_eval = evaluate_trajectory(res.model, test, k_eval, p.steps_per_frame)
    plot_curves({"loss": res.losses}, ctx.path("loss.png"), logy=True, ylabel="frame MSE")
    pred = jax.jit(
        lambda x: res.model.rollout(
            jnp.concatenate([x, jnp.zeros((model.channels - 2, *x.shape[1:]))]),
            (p.frames - 1) * p.steps_per_frame,
            k_eval,
            every=p.steps_per_frame,
        )
    )(test[0])
    both = np.concatenate([np.asarray(test[:, 1:2]), np.asarray(pred[:, 1:2])], axis=-1)
    save_gif(np.clip(both / max(float(test[:, 1].max()), 1e-6), 0, 1), ctx.path("test_rollout.gif"))
    plot_channels(np.asarray(pred), ctx.path("channels.png"))
    return {
        "train_mse": train_eval["mse"],
        "test_mse": test_eval["mse"],
        "test_mse_persistence": test_eval["mse_persistence"],
        "test_mse_last": test_eval["mse_last"],
        "final_loss": res.final_loss,
        "iterations": res.steps,
        "seconds": seconds,
    }


@command("nca", "train", NCATrainConfig, help="train a neural cellular automaton")
def train(cfg: NCATrainConfig, ctx: RunContext) -> dict[str, Any]:
    """Train an NCA: grow a target image (``--task grow``) or learn Gray-Scott (``pde``)."""
    if ctx.quick:
        cfg = _quick(cfg)
    if cfg.task == "grow":
        return _train_grow(cfg, ctx)
    return _train_pde(cfg, ctx)


def _resolve_model(spec: str) -> tuple[Path, dict[str, Any]]:
    if not spec:
        raise ValueError("--model must name a model file or a `diffdyn nca train` output folder")
    path = Path(spec)
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        path = path / "model.eqx"
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} does not exist")
    train_cfg = folder / "config.yaml"
    return path, (load_config_file(train_cfg) if train_cfg.is_file() else {})


@command("nca", "run", NCARunConfig, help="roll out a trained NCA and write a GIF")
def run(cfg: NCARunConfig, ctx: RunContext) -> dict[str, Any]:
    """Load a trained NCA, grow it from a seed cell (optionally erasing half), write a GIF."""
    path, trained = _resolve_model(cfg.model)
    if trained.get("task", "grow") != "grow":
        raise ValueError(
            f"nca run grows a model from its seed; {str(path)!r} was trained on task "
            f"{trained.get('task')!r} (its figures are in the training folder)"
        )
    model = AbstractNCA.load(path)
    grow = trained.get("grow", {})
    size = cfg.size or int(grow.get("size", 40)) + 2 * int(grow.get("pad", 0))
    spec = cfg.target or trained.get("target", "")
    target = (
        make_target(spec, int(grow.get("size", size)), int(grow.get("pad", 0))) if spec else None
    )
    if target is not None and target.shape[-1] != size:
        raise ValueError(f"--size {size} does not match the target's grid {target.shape[-1]}")
    if cfg.steps < 1 or cfg.every < 1 or cfg.steps % cfg.every:
        raise ValueError(f"--every ({cfg.every}) must divide --steps ({cfg.steps}), both >= 1")
    if cfg.damage and not 0 < cfg.damage_at < cfg.steps:
        raise ValueError(f"--damage_at must lie in (0, {cfg.steps}); got {cfg.damage_at}")
    if cfg.damage and cfg.damage_at % cfg.every:
        raise ValueError(f"--every ({cfg.every}) must divide --damage_at ({cfg.damage_at})")
    seed = seed_state(model.channels, size, size, first=min(3, model.channels - 1))
    k1, k2 = jax.random.split(ctx.key)
    metrics: dict[str, Any] = {}
    first = cfg.damage_at if cfg.damage else cfg.steps
    frames = np.asarray(model.rollout(seed, first, k1, every=cfg.every))
    if target is not None:
        metrics["mse"] = float(np.mean((frames[-1][: target.shape[0]] - target) ** 2))
    if cfg.damage:
        damaged = np.asarray(erase_half(frames[-1]))
        more = np.asarray(model.rollout(damaged, cfg.steps - first, k2, every=cfg.every))
        frames = np.concatenate([frames, more])
        if target is not None:
            metrics["mse_damaged"] = float(np.mean((damaged[: target.shape[0]] - target) ** 2))
            metrics["mse_regrown"] = float(np.mean((more[-1][: target.shape[0]] - target) ** 2))
    rgb = to_rgb(frames) if model.channels >= 4 else np.clip(frames[:, :1], 0, 1)
    save_gif(rgb, ctx.path("rollout.gif"))
    save_png(rgb[-1], ctx.path("final.png"))
    metrics["frames"] = int(frames.shape[0])
    return metrics


@quickstart_part("nca", order=20)
def nca_quickstart(ctx: RunContext) -> dict[str, Any]:
    """Grow a 24x24 smiley for 60 steps on CPU; returns the loss before and after."""
    cfg = NCATrainConfig(
        model=NCAModelConfig(channels=8, hidden=32, filters=("identity", "sobel_x", "sobel_y")),
        optim=OptimConfig(learning_rate=3e-3, decay_rate=0.3),
        train=LoopConfig(
            iterations=60, log_every=10, image_every=30, checkpoint_every=0, progress=False
        ),
        grow=GrowConfig(size=24, steps=24, batch_size=4, pool_size=32, damage=1),
    )
    m = _train_grow(cfg, ctx)
    return {k: m[k] for k in ("mse", "mse_regrown", "final_loss", "seconds")}
