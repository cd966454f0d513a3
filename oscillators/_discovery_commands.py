"""``diffdyn oscillators discover``: learn the dynamics of an oscillator from one noisy
trajectory with a neural ODE, by plain training, multiple shooting or homotopy.

The config is `DiscoverConfig`; `run_discovery` does the work (in float64). Outputs under
``--out``: ``config.yaml`` (rewritten with the published values filled in: what ran),
TensorBoard events, ``model.eqx``/``best.eqx`` (trained pytree), ``best_field.eqx`` (the
selected vector field), figures and ``metrics.json``. With ``--sweep`` it runs every method of
``methods`` for every seed of ``seeds`` and every ``system:model`` of ``targets`` (default: the
configured one), ``workers`` fits at a time in separate processes, each in its own folder with
its own ``config.yaml``, and writes ``results.csv`` and ``results.md`` (mean ± standard error
over seeds).

Examples::

    diffdyn oscillators discover --system lotka-volterra --model blackbox --method homotopy
    diffdyn oscillators discover --sweep --workers 2 --targets \\
        lotka-volterra:blackbox,lotka-volterra:graybox,double-pendulum:second-order,lorenz:blackbox
"""

from __future__ import annotations

import dataclasses
from typing import Any

from diffdyn.common import SolveConfig
from diffdyn.common.cli import RunContext, command, quickstart_part

from ._sweep import DiscoverConfig, discovery_run, run_discovery

__all__ = ["discover", "quickstart"]


@command(
    "oscillators",
    "discover",
    DiscoverConfig,
    help="learn an oscillator's dynamics with a neural ODE",
    quick=DiscoverConfig.quick,
    trains=True,
)
def discover(cfg: DiscoverConfig, ctx: RunContext) -> dict[str, Any]:
    """Learn an oscillator's dynamics with a neural ODE (plain, multiple shooting, homotopy)."""
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
