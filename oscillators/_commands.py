"""Commands: ``diffdyn oscillators kuranet``, ``diffdyn oscillators kuramoto`` and the
quickstart part ``kuranet``."""

from __future__ import annotations

from typing import Any

import numpy as np

from diffdyn.common.cli import RunContext, command, quickstart_part

from . import _figures as figures
from ._experiments import (
    ExperimentConfig,
    KuramotoConfig,
    configure_experiment,
    get_experiment,
    quick_experiment,
    simulate_network,
    train_experiment,
)

__all__ = ["run_kuranet", "run_kuramoto"]

KURANET_HELP = "train KuraNet on an experiment and compare it with a control"
KURAMOTO_HELP = "simulate a Kuramoto network and plot its phases and R(t)"


@command(
    "oscillators",
    "kuranet",
    ExperimentConfig,
    help=KURANET_HELP,
    quick=quick_experiment,
    presets=("name", get_experiment),
    trains=True,
)
def run_kuranet(cfg: ExperimentConfig, ctx: RunContext) -> dict[str, Any]:
    """Train KuraNet on an experiment preset (``--name``, whose values are the defaults of
    every other option) and compare it with an untrained control."""
    logger = ctx.logger()
    try:
        result = train_experiment(cfg, ctx.key, out=ctx.out, logger=logger, resume=ctx.resume)
    finally:
        logger.close()
    figures.kuranet_figures(result, ctx.out / "figures")
    return result.metrics


@command("oscillators", "kuramoto", KuramotoConfig, help=KURAMOTO_HELP)
def run_kuramoto(cfg: KuramotoConfig, ctx: RunContext) -> dict[str, Any]:
    """Simulate a Kuramoto network; write phases.npy, a phase raster and R(t)."""
    run = simulate_network(cfg, ctx.key)
    np.save(ctx.path("phases.npy"), run["phases"])
    figures.phase_raster(
        run["phases"],
        ctx.path("figures/phases.png"),
        dt=run["dt"],
        order=run["omega"],
        title="phases (nodes sorted by natural frequency)",
    )
    figures.order_parameter_plot(
        {"R": run["order_parameter"]}, ctx.path("figures/order_parameter.png"), dt=run["dt"]
    )
    return run["metrics"]


@quickstart_part("kuranet", order=40)
def quickstart_kuranet(ctx: RunContext) -> dict[str, Any]:
    """A short KuraNet training on the global-synchrony task (small network)."""
    exp = configure_experiment(
        "global",
        quick=True,
        eval_window=200,
        size_eval=(200,),
        optim={"learning_rate": 0.02},
        train={"steps": 60, "progress": False},
    )
    ctx.out.mkdir(parents=True, exist_ok=True)
    logger = ctx.logger()
    try:
        result = train_experiment(exp, ctx.key, out=ctx.out, logger=logger)
    finally:
        logger.close()
    figures.kuranet_figures(result, ctx.out / "figures")
    keys = ("train_loss_final", "long_loss_trained", "long_loss_control", "steps_per_second")
    return {k: result.metrics[k] for k in keys}
