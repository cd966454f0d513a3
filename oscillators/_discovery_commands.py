"""``diffdyn oscillators discover``: learn the dynamics of an oscillator from one noisy
trajectory with a neural ODE, by plain training, multiple shooting or homotopy.

The config is `DiscoverDataConfig` (`DiscoverConfig` and a data file); `run_discovery` does
the work (in float64) for the simulated systems, `discovery_data_run` for a user's trajectory
(``--data FILE``: see `load_trajectory` for the formats and `trajectory_dataset` for the
split). Outputs under
``--out``: ``config.yaml`` (rewritten with the published values filled in: what ran),
TensorBoard events, ``model.eqx``/``best.eqx`` (trained pytree), ``best_field.eqx`` (the
selected vector field), figures and ``metrics.json``. With ``--sweep`` it runs every method of
``methods`` for every seed of ``seeds`` and every ``system:model`` of ``targets`` (default: the
configured one), ``workers`` fits at a time in separate processes, each in its own folder with
its own ``config.yaml``, and writes ``results.csv`` and ``results.md`` (mean ± standard error
over seeds).

Examples::

    diffdyn oscillators discover --system lotka-volterra --model blackbox --method homotopy
    diffdyn oscillators discover --data traj.csv --method plain --train.steps 500
    diffdyn oscillators discover --sweep --workers 2 --targets \\
        lotka-volterra:blackbox,lotka-volterra:graybox,double-pendulum:second-order,lorenz:blackbox
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from diffdyn.common import SolveConfig, TensorBoardLogger, plot_training, write_config
from diffdyn.common.cli import RunContext, command, quickstart_part

from ._discovery import (
    build_discovery_model,
    check_model_dim,
    fit_system,
    load_trajectory,
    trajectory_dataset,
)
from ._figures import discovery_fit_plot
from ._sweep import DiscoverConfig, discovery_run, resolve_discovery, run_discovery

__all__ = ["DiscoverDataConfig", "discovery_data_run", "discover", "quickstart"]

#: Settings of the simulated data, refused with a data file.
_SIMULATION_SETTINGS = ("noise", "data_seed")


@dataclasses.dataclass(frozen=True)
class DiscoverDataConfig(DiscoverConfig):
    data: str = ""
    train_points: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.data:
            if self.train_points is not None:
                raise ValueError("train_points splits a data file: give --data too")
            return
        if self.sweep:
            raise ValueError(
                "data: a sweep runs the simulated systems; fit a data file one run at a time"
            )
        default = DiscoverConfig()
        for name in _SIMULATION_SETTINGS:
            if getattr(self, name) != getattr(default, name):
                raise ValueError(
                    f"{name} is a setting of the simulated data; a data file (data = "
                    f"{self.data!r}) replaces them"
                )
        if self.train_points is not None and (
            isinstance(self.train_points, bool) or self.train_points < 2
        ):
            raise ValueError(f"train_points must be >= 2; got {self.train_points}")


DiscoverDataConfig.__doc__ = (
    (DiscoverConfig.__doc__ or "").rstrip()
    + """
        data: a trajectory file to learn from instead of the simulated system: .csv (header,
            then time, state... per row), .npy ([T, 1 + D], time in column 0) or .npz (ts [T],
            ys [T, D]); the system then only chooses the published settings (and the gray
            box's equations), noise and data_seed are refused.
        train_points: with data: the first train_points samples are the training window, the
            rest the extrapolation window (None: T - floor(T / 3), two thirds).
"""
)
DiscoverDataConfig.__doc__ = DiscoverDataConfig.__doc__.replace(
    "Configuration of ``diffdyn oscillators discover``: learn an oscillator's dynamics from\n"
    "    one noisy trajectory with a neural ODE, in float64.",
    "Configuration of ``diffdyn oscillators discover``: `DiscoverConfig` and ``data``, a\n"
    "    user's trajectory file to learn from instead of a simulated system.",
)


def discovery_data_run(
    cfg: DiscoverDataConfig,
    *,
    seed: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
    given: Collection[str] | None = None,
) -> dict[str, Any]:
    """One fit of the trajectory in ``cfg.data`` (`load_trajectory`, split by
    `trajectory_dataset` at ``cfg.train_points``) with model seed ``seed``, in float64.

    Unset settings take the published values of ``cfg.system`` with ``cfg.model`` and
    ``cfg.method`` (`resolve_discovery`); the model is built for the file's state dimension
    (`build_discovery_model`), starts from the first observation and trains on the training
    window; ``interp_mse`` scores it there and ``extrap_mse`` on the observed continuation.
    The same initialisation and training as `discovery_run` of the simulated system: the same
    data give the same fit. Writes what `discovery_run` writes under ``out`` and returns its
    metrics, without ``interp_mse_clean`` (a file has no clean trajectory) and with ``data``
    and ``state_dim``."""
    if not cfg.data:
        raise ValueError("discovery_data_run fits a data file: set data")
    ts, ys, names = load_trajectory(cfg.data)  # a bad file fails before anything is written
    dataset = trajectory_dataset(ts, ys, train_points=cfg.train_points)
    ran, settings = _resolve(cfg, given)
    out = None if out is None else Path(out)
    with jax.enable_x64(True):
        model_key, train_key = jax.random.split(jax.random.key(seed))
        field = build_discovery_model(
            ran.system,
            ran.model,
            settings,
            model_key,
            learn_rates=ran.learn_rates,
            inputs=ran.graybox_inputs,
            state_dim=dataset.state_dim,
        )
        if out is not None:
            write_config(ran, out / "config.yaml")
        logger = None if out is None else TensorBoardLogger(out / "tb")
        try:
            result, metrics = fit_system(
                field,
                dataset,
                settings,
                train_key,
                train=ran.train,
                logger=logger,
                out=out,
                resume=resume,
            )
        finally:
            if logger is not None:
                logger.close()
        metrics.pop("interp_mse_clean")
        best = result.best_model
        if out is not None:
            best.save(out / "best_field.eqx")
            metrics["figures"] = _data_figures(out, dataset, names, best, result, settings.solve)
    if ran.model == "graybox":
        a, d = best.physics
        metrics.update(a=float(a), d=float(d))
    metrics.update(
        data=cfg.data,
        state_dim=dataset.state_dim,
        model=ran.model,
        method=ran.method,
        seed=seed,
    )
    return metrics


def _resolve(
    cfg: DiscoverDataConfig, given: Collection[str] | None
) -> tuple[DiscoverDataConfig, Any]:
    """`resolve_discovery` of a data run: the published settings filled in, and the config
    that ran (without a simulation's noise level)."""
    own = {f.name for f in dataclasses.fields(DiscoverConfig)}
    base = DiscoverConfig(**{n: getattr(cfg, n) for n in own})
    ran, settings = resolve_discovery(base, given)
    values = {n: getattr(ran, n) for n in own}
    values.update(noise=None, data=cfg.data, train_points=cfg.train_points)
    return DiscoverDataConfig(**values), settings


def _data_figures(
    out: Path, dataset: Any, names: Any, field: Any, result: Any, solve: SolveConfig
) -> list[str]:
    ts = np.concatenate([dataset.ts, dataset.ts_extrap])
    dense = np.linspace(ts[0], ts[-1], 400)
    ys = np.asarray(solve.solve(field, jnp.asarray(dataset.y0), jnp.asarray(dense), throw=False))
    fit = discovery_fit_plot(
        dataset,
        dense,
        ys,
        out / "figures" / "fit.png",
        names=names,
        observed=True,
    )
    mse = plot_training(
        result,
        out / "figures" / "mse.png",
        title="uncoupled training MSE",
        ylabel="MSE",
        training_label="uncoupled MSE",
    )
    return [str(fit), str(mse)]


def _check(cfg: DiscoverDataConfig, ctx: RunContext) -> None:
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
    ts, ys, _ = load_trajectory(cfg.data)
    dataset = trajectory_dataset(ts, ys, train_points=cfg.train_points)
    check_model_dim(cfg.system, cfg.model, dataset.state_dim)


@command(
    "oscillators",
    "discover",
    DiscoverDataConfig,
    help="learn an oscillator's dynamics with a neural ODE",
    quick=DiscoverConfig.quick,
    check=_check,
    trains=True,
)
def discover(cfg: DiscoverDataConfig, ctx: RunContext) -> dict[str, Any]:
    """Learn an oscillator's dynamics with a neural ODE (plain, multiple shooting, homotopy),
    from a simulated system or from a data file (``--data``)."""
    if cfg.data:
        return discovery_data_run(
            cfg, seed=ctx.seed, out=ctx.out, resume=ctx.resume, given=ctx.given
        )
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
