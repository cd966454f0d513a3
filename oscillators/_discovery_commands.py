"""``diffdyn oscillators discover``: learn the dynamics of an oscillator from one noisy
trajectory with a neural ODE, by plain training, multiple shooting or homotopy.

Runs in float64 (switched on at the start of the run). Unset hyperparameters (``None``) take
the published values for the system, model and method (`DISCOVERY_PRESETS`).
Outputs under ``--out``: ``config.yaml``, TensorBoard events, ``model.eqx``/``best.eqx``
(trained pytree), ``best_field.eqx`` (the selected vector field), figures and
``metrics.json``. With ``--sweep true`` it runs every method in ``methods`` for every seed in
``seeds`` and every ``system:model`` in ``targets`` (default: the configured one), ``workers``
fits at a time in separate processes, and writes ``results.csv`` and ``results.md`` (mean ±
standard error over seeds).

Examples::

    diffdyn oscillators discover --system lotka-volterra --model blackbox --method homotopy
    diffdyn oscillators discover --sweep true --epoch_scale 0.25 --targets \\
        lotka-volterra:blackbox,lotka-volterra:graybox,double-pendulum:second-order,lorenz:blackbox
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from typing import Any, Literal

import jax
import numpy as np

from diffdyn.common import SolveConfig, TrainConfig, figure, save_figure
from diffdyn.common._helpers import atomic_write
from diffdyn.common.cli import RunContext, command, quickstart_part

from ._discovery import DISCOVERY_METHODS, discovery_settings, fit_system
from ._systems import SYSTEMS, make_dataset

__all__ = ["DiscoverConfig", "discover", "run_one", "write_table"]


def _f(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class DiscoverConfig:
    """Configuration of ``diffdyn oscillators discover``."""

    system: Literal["lotka-volterra", "lorenz", "double-pendulum", "van-der-pol"] = _f(
        "lotka-volterra", "the system that made the data"
    )
    model: Literal["blackbox", "graybox", "second-order"] = _f("blackbox", "the vector field")
    method: Literal["plain", "multiple-shooting", "homotopy"] = _f("homotopy", "training method")
    width: int | None = _f(None, "hidden width (None: the published value)")
    depth: int | None = _f(None, "hidden layers (None: the published value)")
    learning_rate: float | None = _f(None, "AdamW learning rate (None: the published value)")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    epochs: int | None = _f(None, "epochs of plain / multiple shooting (None: 4000)")
    segments: int | None = _f(None, "multiple-shooting segments (None: the published value)")
    continuity: float | None = _f(None, "multiple-shooting continuity weight")
    k: float | None = _f(None, "homotopy coupling strength")
    alpha: float | None = _f(None, "smoothing-spline parameter")
    decrements: int | None = _f(None, "homotopy decrements M (M + 1 plateaus)")
    ratio: float | None = _f(None, "homotopy decrement ratio r")
    epochs_per_step: int | None = _f(None, "homotopy epochs per plateau E")
    epoch_scale: float = _f(1.0, "multiply every epoch count (for short runs)")
    noise: float | None = _f(None, "noise level (None: the published value)")
    data_seed: int = _f(10, "seed of the measurement noise")
    learn_rates: bool = _f(False, "graybox: train a and d too")
    graybox_inputs: Literal["state", "interaction"] = _f("state", "graybox MLP input")
    solver: str = _f("dopri5", "ODE solver")
    rtol: float = _f(1e-7, "relative tolerance")
    atol: float = _f(1e-9, "absolute tolerance")
    max_steps: int = _f(4096, "most solver steps per solve")
    log_every: int = _f(100, "fetch / log losses every this many epochs")
    sweep: bool = _f(False, "run methods x seeds (x targets) and write a results table")
    methods: tuple[str, ...] = _f(DISCOVERY_METHODS, "methods of the sweep")
    seeds: tuple[int, ...] = _f((10, 20, 30), "model seeds of the sweep")
    targets: tuple[str, ...] = _f((), "system:model pairs of the sweep (default: this one)")
    workers: int = _f(1, "sweep: fits run at once, each in its own process")


def _settings(cfg: DiscoverConfig, system: str, model: str, method: str):
    names = (
        "width depth learning_rate epochs segments continuity k alpha decrements ratio "
        "epochs_per_step"
    ).split()
    overrides = {n: getattr(cfg, n) for n in names}
    overrides["weight_decay"] = cfg.weight_decay
    return discovery_settings(system, model, method, cfg.epoch_scale, **overrides)


def _solve(cfg: DiscoverConfig) -> SolveConfig:
    return SolveConfig(
        solver=cfg.solver, rtol=cfg.rtol, atol=cfg.atol, max_steps=cfg.max_steps, adaptive=True
    )


def _figures(ctx: RunContext, dataset: Any, field: Any, mse: np.ndarray, solve: SolveConfig):
    ts = np.concatenate([dataset.ts, dataset.ts_extrap])
    dense = np.linspace(ts[0], ts[-1], 400)
    import jax.numpy as jnp

    ys = np.asarray(solve.solve(field, jnp.asarray(dataset.y0), jnp.asarray(dense), throw=False))
    names = SYSTEMS[dataset.name].state_names
    fig, axes = figure(len(names), 1, figsize=(6, 1.6 * len(names)), sharex=True)
    for i, ax in enumerate(np.atleast_1d(axes)):
        ax.plot(dataset.ts, dataset.ys[:, i], "k.", ms=3, label="data")
        ax.plot(dataset.ts_extrap, dataset.ys_extrap[:, i], "k-", lw=0.8, alpha=0.5, label="truth")
        ax.plot(dense, ys[:, i], "tab:red", lw=1.2, label="model")
        ax.axvline(dataset.ts[-1], color="grey", ls=":")
        ax.set_ylabel(names[i])
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper right")
    paths = [str(save_figure(fig, ctx.path("figures/fit.png")))]
    fig, ax = figure(figsize=(5, 3))
    ax.semilogy(mse)
    ax.set_xlabel("epoch")
    ax.set_ylabel("uncoupled training MSE")
    paths.append(str(save_figure(fig, ctx.path("figures/mse.png"))))
    return paths


def run_one(
    cfg: DiscoverConfig, ctx: RunContext, system: str, model: str, method: str, seed: int
) -> dict[str, Any]:
    """One fit; writes under ``ctx.out`` and returns its metrics."""
    dataset = make_dataset(system, seed=cfg.data_seed, noise=cfg.noise)
    settings = _settings(cfg, system, model, method)
    solve = _solve(cfg)
    kwargs = (
        {"learn_rates": cfg.learn_rates, "inputs": cfg.graybox_inputs} if model == "graybox" else {}
    )
    result, metrics = fit_system(
        dataset,
        model,
        method,
        settings,
        jax.random.key(seed),
        solve=solve,
        train=TrainConfig(log_every=cfg.log_every, progress=False),
        logger=ctx.logger("tb"),
        out=ctx.out,
        resume=ctx.resume,
        model_kwargs=kwargs,
    )
    result.best_field.save(ctx.path("best_field.eqx"))
    metrics["figures"] = _figures(ctx, dataset, result.best_field, result.mse, solve)
    if model == "graybox":
        a, d = result.best_field.physics
        metrics.update(a=float(a), d=float(d))
    metrics.update(system=system, model=model, method=method, seed=seed)
    return metrics


_COLUMNS = ("interp_mse", "interp_mse_clean", "extrap_mse", "epochs_to_best", "epochs")


def _mean_se(values: list[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if math.isfinite(x)], np.float64)
    if len(v) == 0:
        return math.inf, math.nan
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return float(v.mean()), se


def write_table(rows: list[dict[str, Any]], ctx: RunContext) -> dict[str, Any]:
    """Write ``results.csv`` (one row per run) and ``results.md`` (mean ± s.e. over seeds per
    target and method, plus whether homotopy reached an equal or lower interpolation MSE than
    both other methods in fewer epochs)."""
    keys = ["system", "model", "method", "seed", *_COLUMNS, "best_train_mse", "seconds"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    atomic_write(ctx.path("results.csv"), lambda f: f.write(buf.getvalue().encode()))

    groups: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for r in rows:
        groups.setdefault((r["system"], r["model"]), {}).setdefault(r["method"], []).append(r)
    lines = [
        "| system | model | method | seeds | interp MSE | interp MSE (clean) | extrap MSE "
        "| epochs to best | epochs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts: dict[str, Any] = {}
    for (system, model), by_method in groups.items():
        means = {}
        for method, runs in by_method.items():
            stats = {c: _mean_se([float(r[c]) for r in runs]) for c in _COLUMNS}
            means[method] = {c: stats[c][0] for c in _COLUMNS}
            cells = [
                f"{m:.4g}" if math.isnan(se) else f"{m:.4g} ± {se:.2g}"
                for m, se in (stats[c] for c in _COLUMNS[:3])
            ]
            cells += [f"{stats['epochs_to_best'][0]:.0f}", f"{stats['epochs'][0]:.0f}"]
            lines.append(
                f"| {system} | {model} | {method} | {len(runs)} | " + " | ".join(cells) + " |"
            )
        if "homotopy" in means and len(means) > 1:
            h = means["homotopy"]
            others = [m for k, m in means.items() if k != "homotopy"]
            holds = all(
                h["interp_mse"] <= o["interp_mse"] and h["epochs_to_best"] < o["epochs_to_best"]
                for o in others
            )
            verdicts[f"{system}:{model}"] = holds
    lines.append("")
    for target, holds in verdicts.items():
        word = "holds" if holds else "does not hold"
        lines.append(
            f"- {target}: the claim (homotopy: equal or lower interpolation MSE in fewer epochs "
            f"than every other method, on the means over seeds) {word}."
        )
    text = "\n".join(lines) + "\n"
    atomic_write(ctx.path("results.md"), lambda f: f.write(text.encode()))
    return {"table": str(ctx.path("results.md")), "claim_holds": verdicts, "runs": len(rows)}


@command("oscillators", "discover", DiscoverConfig)
def discover(cfg: DiscoverConfig, ctx: RunContext) -> dict[str, Any]:
    """Learn an oscillator's dynamics with a neural ODE (plain, multiple shooting, homotopy)."""
    if cfg.workers < 1:
        raise ValueError(f"workers must be >= 1, got {cfg.workers}")
    for m in cfg.methods:
        if m not in DISCOVERY_METHODS:
            raise ValueError(
                f"methods: unknown method {m!r}; known: {', '.join(DISCOVERY_METHODS)}"
            )
    targets = []
    for t in cfg.targets or (f"{cfg.system}:{cfg.model}",):
        if t.count(":") != 1:
            raise ValueError(f"targets must look like system:model, got {t!r}")
        targets.append(tuple(t.split(":")))
    for system, model in targets:  # check every setting before any compilation
        for method in cfg.methods if cfg.sweep else (cfg.method,):
            _settings(cfg, system, model, method)
    jax.config.update("jax_enable_x64", True)
    if not cfg.sweep:
        return run_one(cfg, ctx, cfg.system, cfg.model, cfg.method, ctx.seed)
    jobs = [
        (system, model, method, seed)
        for system, model in targets
        for method in cfg.methods
        for seed in cfg.seeds
    ]
    # Runs that differ only in their seed compile to the same program: share the compiled code.
    cache = str(ctx.path(".jax_cache"))
    done: dict[int, dict[str, Any]] = {}

    def record(i: int, metrics: dict[str, Any]) -> None:
        done[i] = metrics
        write_table([done[j] for j in sorted(done)], ctx)  # partial tables survive a stop

    if cfg.workers == 1:
        for i, job in enumerate(jobs):
            record(i, _sweep_run(cfg, ctx, cache, *job))
    else:
        import concurrent.futures
        import multiprocessing

        spawn = multiprocessing.get_context("spawn")  # a forked JAX runtime is not safe
        with concurrent.futures.ProcessPoolExecutor(cfg.workers, mp_context=spawn) as pool:
            futures = {
                pool.submit(_sweep_run, cfg, ctx, cache, *job): i for i, job in enumerate(jobs)
            }
            for future in concurrent.futures.as_completed(futures):
                record(futures[future], future.result())
    return write_table([done[j] for j in sorted(done)], ctx)


def _sweep_run(
    cfg: DiscoverConfig,
    ctx: RunContext,
    cache: str,
    system: str,
    model: str,
    method: str,
    seed: int,
) -> dict[str, Any]:
    """One fit of a sweep (also the body of a worker process)."""
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_compilation_cache_dir", cache)
    sub = ctx.sub(f"{system}-{model}/{method}/seed{seed}")
    return run_one(cfg, sub, system, model, method, seed)


@quickstart_part("discover", order=45)
def quickstart(ctx: RunContext) -> dict[str, Any]:
    """A short homotopy fit of Lotka-Volterra (black box, 6 plateaus of 20 epochs)."""
    with jax.enable_x64(True):  # quickstart parts share a process: no global switch here
        dataset = make_dataset("lotka-volterra")
        settings = discovery_settings("lotka-volterra", "blackbox", "homotopy", epochs_per_step=20)
        solve = SolveConfig(solver="dopri5", rtol=1e-6, atol=1e-8)
        result, metrics = fit_system(
            dataset,
            "blackbox",
            "homotopy",
            settings,
            ctx.key,
            solve=solve,
            train=TrainConfig(log_every=20, progress=False),
            logger=ctx.logger("tb"),
            out=ctx.out,
        )
        figures = _figures(ctx, dataset, result.best_field, result.mse, solve)
    keep = ("interp_mse", "extrap_mse", "epochs_to_best", "epochs_per_second")
    return {**{k: metrics[k] for k in keep}, "figures": figures}
