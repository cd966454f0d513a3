"""``diffdyn pde simulate``, ``diffdyn pde fit`` and the ``pde`` quickstart part.

Each command reads its config, makes one library call (`simulate_pde`, `fit_pde`), writes
the outputs (figures from the figures module) and returns the metrics the CLI prints.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from diffdyn.common import normalise, plot_training
from diffdyn.common._helpers import atomic_write
from diffdyn.common.cli import RunContext, command, quickstart_part

from ._figures import plot_held_out, plot_state, save_trajectory_gif
from ._fit import FitConfig, fit_pde
from ._simulate import SimulateConfig, simulate_pde

__all__: list[str] = []


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array))


def _simulation_outputs(ctx: RunContext, cfg: SimulateConfig, frames: np.ndarray) -> None:
    _save_npy(ctx.path("final.npy"), frames[-1])
    _save_npy(ctx.path("trajectory.npy"), frames)
    save_trajectory_gif(frames, ctx.path("trajectory.gif"), channel=cfg.channel)
    plot_state(frames[-1], ctx.path("final.png"), title=f"{cfg.model} at t = {cfg.t1:g}")


def _quick_simulate(cfg: SimulateConfig) -> SimulateConfig:
    return dataclasses.replace(
        cfg, size=min(cfg.size, 32), t1=min(cfg.t1, 1000.0), frames=min(cfg.frames, 11)
    )


@command(
    "pde",
    "simulate",
    SimulateConfig,
    help="simulate a fixed PDE from its literature initial state",
    quick=_quick_simulate,
)
def simulate(cfg: SimulateConfig, ctx: RunContext) -> dict[str, Any]:
    """Write trajectory.npy, final.npy, trajectory.gif and final.png."""
    run = simulate_pde(cfg, ctx.key)
    _simulation_outputs(ctx, cfg, run.frames)
    return run.metrics


def _quick_fit(cfg: FitConfig) -> FitConfig:
    small: dict[str, Any] = {}
    if cfg.data is None:  # the generator's settings apply to generated data only
        small = {
            "size": min(cfg.size, 16),
            "frames": min(cfg.frames, 13),
            "warmup": min(cfg.warmup, 200.0),
        }
    steps = min(cfg.train.steps, 20)
    if cfg.fit.strategy == "homotopy":
        plateaus = cfg.fit.homotopy_decrements + 1
        steps = plateaus * max(1, min(cfg.train.steps // plateaus, 4))
    train = dataclasses.replace(cfg.train, steps=steps, log_every=min(cfg.train.log_every, 10))
    return dataclasses.replace(cfg, held_out=min(cfg.held_out, 3), train=train, **small)


@command(
    "pde",
    "fit",
    FitConfig,
    help="fit a fixed or neural PDE to a trajectory",
    quick=_quick_fit,
    trains=True,
)
def fit(cfg: FitConfig, ctx: RunContext) -> dict[str, Any]:
    """Write model.eqx, best.eqx, loss.png, held_out.png and TensorBoard events."""
    logger = ctx.logger()
    try:
        run = fit_pde(cfg, ctx.key, logger=logger, out=ctx.out, resume=ctx.resume)
    finally:
        logger.close()
    plot_training(
        run.result,
        ctx.path("loss.png"),
        title=f"{cfg.model} fitted ({cfg.fit.strategy})",
        validation_label="validation: held-out RMSE",
    )
    if run.prediction is not None:
        truth = run.data[0, run.train_frames - 1 :]
        plot_held_out(
            truth, run.prediction, run.ts[run.train_frames - 1 :], ctx.path("held_out.png")
        )
    return run.metrics


@quickstart_part("pde", order=20)
def quickstart(ctx: RunContext) -> dict[str, Any]:
    """A short Gray-Scott simulation: one seeded square splitting into spots."""
    size, t1 = (32, 1000.0) if ctx.quick else (48, 2500.0)
    cfg = SimulateConfig(
        model="gray-scott",
        params=json.dumps({"feed": 0.0367, "kill": 0.0649}),
        size=size,
        t1=t1,
        frames=26,
    )
    run = simulate_pde(cfg, ctx.key)
    _simulation_outputs(ctx, cfg, run.frames)
    logger = ctx.logger()
    logger.video("pde/gray_scott", normalise(run.frames[:, 1:2], per_channel=False), 0)
    logger.scalar("pde/components", run.metrics["components"], 0)
    logger.close()
    return {k: run.metrics[k] for k in ("seconds", "components", "wavelength")}
