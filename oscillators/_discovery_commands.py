"""``diffdyn oscillators discover``: learn the dynamics of an oscillator from one noisy
trajectory with a neural ODE, by plain training, multiple shooting or homotopy.

The config is `DiscoverConfig`; `run_discovery` does the work (in float64), on a simulated
system or on a user's trajectory (``--data FILE``: see `load_trajectory` for the formats and
`trajectory_dataset` for the split). Outputs under ``--out``: ``config.yaml`` (rewritten with
the published values filled in: what ran), TensorBoard events, ``model.eqx``/``best.eqx``
(trained pytree), ``best_field.eqx`` (the selected vector field), figures and
``metrics.json``. With ``--sweep`` it runs every method of ``methods`` for every seed of
``seeds`` and every ``system:model`` of ``targets`` (default: the configured one), ``workers``
fits at a time in separate processes, each in its own folder with its own ``config.yaml``, and
writes ``results.csv`` and ``results.md`` (mean ± standard error over seeds); ``--vary`` makes
the sweep an ablation over ``--values`` of one setting (the span of the training window, the
sampling interval, the noise level or the hidden width), with a row per value and method and
``figures/ablation.png``.

Examples::

    diffdyn oscillators discover --system lotka-volterra --model blackbox --method homotopy
    diffdyn oscillators discover --data traj.csv --method plain --train.steps 500
    diffdyn oscillators discover --sweep --workers 2 --targets \\
        lotka-volterra:blackbox,lotka-volterra:graybox,double-pendulum:second-order,lorenz:blackbox
    diffdyn oscillators discover --sweep --vary noise --values 0.05,0.1,0.2,0.5
"""

from __future__ import annotations

import dataclasses
from typing import Any

from diffdyn.common import SolveConfig
from diffdyn.common.cli import RunContext, command, quickstart_part

from ._discovery import check_model_dim
from ._sweep import (
    _SIMULATION_SETTINGS,
    DiscoverConfig,
    discovery_dataset,
    discovery_run,
    run_discovery,
)

__all__ = ["discover", "quickstart"]


def _check(cfg: DiscoverConfig, ctx: RunContext) -> None:
    """Refuse, before anything is written, simulation settings given with a data file (even
    at their default values) and a bad data file."""
    if not cfg.data:
        return
    for name in _SIMULATION_SETTINGS:
        if name in ctx.given:
            raise ValueError(
                f"{name} is a setting of the simulated data; a data file (data = "
                f"{cfg.data!r}) replaces them"
            )
    dataset, _ = discovery_dataset(cfg)
    check_model_dim(cfg.system, cfg.model, dataset.state_dim)


@command(
    "oscillators",
    "discover",
    DiscoverConfig,
    help="learn an oscillator's dynamics with a neural ODE",
    quick=DiscoverConfig.quick,
    check=_check,
    trains=True,
)
def discover(cfg: DiscoverConfig, ctx: RunContext) -> dict[str, Any]:
    """Learn an oscillator's dynamics with a neural ODE (plain, multiple shooting, homotopy),
    from a simulated system or from a data file (``--data``)."""
    return run_discovery(cfg, ctx.out, seed=ctx.seed, resume=ctx.resume, given=ctx.given)


@quickstart_part("discover", order=45)
def quickstart(ctx: RunContext) -> dict[str, Any]:
    """A short homotopy fit of Lotka-Volterra (black box, 6 plateaus of 20 steps)."""
    cfg = DiscoverConfig(
        solve=SolveConfig(solver="dopri5", rtol=1e-6, atol=1e-8),
        train=dataclasses.replace(DiscoverConfig().train, steps=120, log_every=20),
    )
    metrics = discovery_run(cfg, seed=ctx.seed, out=ctx.out)
    keep = ("interp_mse", "extrap_mse", "best_step", "steps_per_second", "figures")
    return {k: metrics[k] for k in keep}
