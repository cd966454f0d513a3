"""The dynamics-discovery workflow: its config, one run, a sweep, and the sweep's report.

`DiscoverConfig` is the config of ``diffdyn oscillators discover``. `run_discovery` runs it:
one fit (`discovery_run`) or, with ``sweep``, every method for every seed and every
``system:model`` target (`discovery_sweep`): the seeds of one method and target train together
as one ensemble (`discovery_ensemble`, one vmapped program), ``workers`` ensembles at a time in
separate processes; then the report (`write_results`: ``results.csv``, ``results.md`` and the
claim check of `claim_holds`). A run's data (`discovery_dataset`) are the simulated system,
sampled as ``dt`` and ``train_span`` say, or a user's trajectory file (``data``). An ablation
(``vary`` and ``values``) is a sweep over the values of one setting, the others fixed; its
report has a row per value and method and a figure of the metrics against the value
(`ablation_plot`).

Settings left unset take the published values of the system, model and method
(`DISCOVERY_PRESETS`); `resolve_discovery` fills them in once and gives the config of the run
as it ran, which is what each run writes to its ``config.yaml``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import typing
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from diffdyn.common import (
    OptimConfig,
    SolveConfig,
    TensorBoardLogger,
    TrainConfig,
    plot_training,
    write_config,
)
from diffdyn.common._helpers import atomic_write

from ._discovery import (
    DISCOVERY_PRESETS,
    PUBLISHED_SOLVE,
    DiscoverySettings,
    Method,
    Model,
    System,
    build_discovery_model,
    check_model_dim,
    discovery_settings,
    fit_system,
    fit_systems,
    load_trajectory,
    trajectory_dataset,
)
from ._figures import ablation_plot, discovery_fit_plot
from ._systems import SYSTEMS, Dataset, make_dataset

__all__ = [
    "DiscoverConfig",
    "ABLATIONS",
    "resolve_discovery",
    "discovery_dataset",
    "discovery_run",
    "discovery_ensemble",
    "sweep_runs",
    "discovery_sweep",
    "run_discovery",
    "RESULT_COLUMNS",
    "summarise_results",
    "claim_holds",
    "write_results",
]

Target = Literal[
    "lotka-volterra:blackbox",
    "lotka-volterra:graybox",
    "van-der-pol:blackbox",
    "double-pendulum:second-order",
    "double-pendulum:blackbox",
    "lorenz:blackbox",
]

#: The settings of one method (refused for runs of other methods).
_METHOD_SETTINGS = {
    "segments": "multiple-shooting",
    "continuity": "multiple-shooting",
    "k": "homotopy",
    "alpha": "homotopy",
    "decrements": "homotopy",
    "ratio": "homotopy",
}
_SWEEP_FIELDS = ("methods", "seeds", "targets", "workers", "ensemble", "vary", "values")
#: Settings of the simulated data, refused with a data file.
_SIMULATION_SETTINGS = ("noise", "data_seed", "dt", "train_span")

Ablation = Literal["train_span", "dt", "noise", "width"]
ABLATIONS: tuple[str, ...] = typing.get_args(Ablation)
"""What an ablation sweep (``vary``) can vary: the span of the training window, the sampling
interval, the noise level, the hidden width."""


@dataclasses.dataclass(frozen=True)
class DiscoverConfig:
    """Configuration of ``diffdyn oscillators discover``: learn an oscillator's dynamics from
    one noisy trajectory with a neural ODE, in float64.

    Unset settings take the published values of the system, model and method
    (`DISCOVERY_PRESETS`, Ko et al. 2023): the model and method settings below where they are
    ``None``, and ``train.steps`` and each ``optim`` field where they are left at their defaults
    here (a value equal to the default counts as unset). The defaults are the published values of
    the default fit (Lotka-Volterra, black box, homotopy). `resolve_discovery` fills them in; the
    ``config.yaml`` of each run records the values that ran.

    Attributes:
        system: the system that made the data.
        model: the vector field: a GELU MLP, the Lotka-Volterra gray box, or a second-order
            field.
        method: how the run trains (a sweep trains with every method of methods).
        width: hidden width of the model (None: the published value).
        depth: hidden layers of the model (None: the published value).
        segments: multiple shooting: the number of segments (None: the published value).
        continuity: multiple shooting: the continuity weight (None: the published value).
        k: homotopy: the coupling strength (None: the published value).
        alpha: homotopy: the smoothing-spline parameter (None: the published value).
        decrements: homotopy: the decrements M of the coupling, M + 1 plateaus of
            train.steps / (M + 1) steps each (None: the published value).
        ratio: homotopy: the decrement ratio r (None: the published value).
        noise: the noise level of the observations (None: the system's).
        data_seed: the seed of the measurement noise.
        dt: the sampling interval of the simulated data (None: the system's); the training
            and extrapolation windows keep their spans in time (`make_dataset`).
        train_span: the span in time of the training window of the simulated data (None: the
            system's, e.g. 6.0 for Lotka-Volterra), sampled every dt.
        data: a trajectory file to learn from instead of the simulated system: .csv (header,
            then time, state... per row), .npy ([T, 1 + D], time in column 0) or .npz (ts [T],
            ys [T, D]); the system then only chooses the published settings (and the gray
            box's equations); noise, data_seed, dt and train_span are refused.
        train_points: with data: the first train_points samples are the training window, the
            rest the extrapolation window (None: T - floor(T / 3), two thirds).
        learn_rates: gray box: train a and d too.
        graybox_inputs: gray box: what the MLP sees, the state (x, y) or the interaction x y.
        sweep: run every method of methods for every seed of seeds and every target, and write
            results.csv and results.md.
        methods: sweep: the methods.
        seeds: sweep: the model seeds (one run takes --seed).
        targets: sweep: the system:model pairs (none: system:model).
        workers: sweep: fits (ensembles, with ensemble) run at once, each in its own process.
        ensemble: sweep: train the seeds of each method and target together, as one ensemble
            (one vmapped program; each member equals its own run); otherwise one run per seed.
        vary: sweep: an ablation: the setting that takes each of values in turn, the others
            fixed, for every target, method and seed; the report then has a row per value
            and method and a figure of the metrics against the value.
        values: sweep: the values of vary (whole numbers for width).
        solve: how the ODEs are solved.
        optim: the optimiser (fields left at these defaults: the published AdamW settings).
        train: the training run (train.steps left at its default: the published length).
    """

    system: System = "lotka-volterra"
    model: Model = "blackbox"
    method: Method = "homotopy"
    width: int | None = None
    depth: int | None = None
    segments: int | None = None
    continuity: float | None = None
    k: float | None = None
    alpha: float | None = None
    decrements: int | None = None
    ratio: float | None = None
    noise: float | None = None
    data_seed: int = 10
    dt: float | None = None
    train_span: float | None = None
    data: str = ""
    train_points: int | None = None
    learn_rates: bool = False
    graybox_inputs: Literal["state", "interaction"] = "state"
    sweep: bool = False
    methods: tuple[Method, ...] = ("plain", "multiple-shooting", "homotopy")
    seeds: tuple[int, ...] = (10, 20, 30)
    targets: tuple[Target, ...] = ()
    workers: int = 1
    ensemble: bool = True
    vary: Ablation | None = None
    values: tuple[float, ...] = ()
    solve: SolveConfig = PUBLISHED_SOLVE
    optim: OptimConfig = OptimConfig("adamw", 0.05, weight_decay=0.01)
    train: TrainConfig = TrainConfig(steps=600, log_every=100, progress=False)

    def __post_init__(self) -> None:
        default = _Defaults()
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.sweep:
            if not self.methods or not self.seeds:
                raise ValueError("a sweep needs at least one method and one seed")
            if self.method != default.method:
                raise ValueError(
                    "method chooses the method of one run; a sweep trains with every method of "
                    f"methods, {list(self.methods)}"
                )
            if self.targets and (self.system, self.model) != (default.system, default.model):
                raise ValueError("give a sweep its targets or its system and model, not both")
        else:
            given = [n for n in _SWEEP_FIELDS if getattr(self, n) != getattr(default, n)]
            if given:
                raise ValueError(f"{', '.join(given)}: settings of a sweep; add --sweep")
        self._check_data(default)
        if self.sweep:
            self._check_ablation()
        pairs = self.pairs()
        methods = self.methods if self.sweep else (self.method,)
        for system, model in pairs:
            discovery_settings(system, model, methods[0])  # a known pair
        for name, method in _METHOD_SETTINGS.items():
            if getattr(self, name) is not None and method not in methods:
                raise ValueError(f"{name} is a setting of {method}, and no run here uses it")
        if self.learn_rates or self.graybox_inputs != default.graybox_inputs:
            if all(model != "graybox" for _, model in pairs):
                raise ValueError("learn_rates and graybox_inputs are settings of the gray box")
        if self.train.image_every:
            raise ValueError("train.image_every: the discovery methods draw no images")
        if self.train.shard_data:
            raise ValueError("train.shard_data: a discovery fit has one trajectory to train on")
        if self.train.validate_every:
            raise ValueError(
                "train.validate_every: a discovery fit has no held-out data (the model is "
                "selected by its uncoupled training MSE)"
            )

    def _check_data(self, default: Any) -> None:
        """Refuse bad data settings: simulation settings with a data file, a split without
        one."""
        for name in ("dt", "train_span"):
            value = getattr(self, name)
            if value is not None and not (0 < value < math.inf):
                raise ValueError(f"{name} must be a finite number > 0; got {value}")
        if not self.data:
            if self.train_points is not None:
                raise ValueError("train_points splits a data file: give --data too")
            return
        if self.sweep:
            raise ValueError(
                "data: a sweep runs the simulated systems; fit a data file one run at a time"
            )
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

    def _check_ablation(self) -> None:
        """Refuse an ablation without values, values without an ablation, a varied setting
        that is also given, and values it cannot take."""
        if self.vary is None:
            if self.values:
                raise ValueError("values are the values of an ablation: give --vary too")
            return
        if not self.values:
            raise ValueError(f"vary = {self.vary}: give its values (--values)")
        if getattr(self, self.vary) is not None:
            raise ValueError(
                f"{self.vary} is varied by the ablation (values {list(self.values)}); leave it "
                "unset"
            )
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"values must be distinct; got {list(self.values)}")
        for v in self.values:
            if self.vary == "width" and not (float(v).is_integer() and v >= 1):
                raise ValueError(f"values of width must be whole numbers >= 1; got {v}")
            if self.vary == "noise" and not v >= 0:
                raise ValueError(f"values of noise must be >= 0; got {v}")
            if self.vary in ("dt", "train_span") and not 0 < v < math.inf:
                raise ValueError(f"values of {self.vary} must be finite numbers > 0; got {v}")

    def pairs(self) -> list[tuple[str, str]]:
        """The ``(system, model)`` pairs that run: the sweep's targets, or the one pair."""
        if self.sweep and self.targets:
            return [tuple(t.split(":")) for t in self.targets]  # type: ignore[misc]
        return [(self.system, self.model)]

    def quick(self) -> DiscoverConfig:
        """The config of ``--quick``: about 40 steps logged every 10, one seed in a sweep."""
        methods = self.methods if self.sweep else (self.method,)
        plateaus = 1
        if "homotopy" in methods:
            for pair in self.pairs():
                published = DISCOVERY_PRESETS[pair]["homotopy"]["decrements"]
                m = published if self.decrements is None else self.decrements
                plateaus = math.lcm(plateaus, m + 1)
        steps = plateaus * math.ceil(40 / plateaus)
        train = dataclasses.replace(self.train, steps=steps, log_every=10)
        seeds = self.seeds[:1] if self.sweep else self.seeds
        return dataclasses.replace(self, train=train, seeds=seeds)


class _Defaults:
    """The default values of `DiscoverConfig`, by attribute (without building one)."""

    def __getattr__(self, name: str) -> Any:
        return DiscoverConfig.__dataclass_fields__[name].default


_DEFAULTS = _Defaults()


def _fill(config: Any, default: Any, published: Any, unset: Any) -> Any:
    """``config`` with each field that ``unset(name, value, default)`` calls unset replaced by
    ``published``'s."""
    values = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if unset(f.name, value, getattr(default, f.name)):
            value = getattr(published, f.name)
        values[f.name] = value
    return type(config)(**values)


def _unset_rule(prefix: str, given: Collection[str] | None) -> Any:
    """Which ``prefix.*`` fields take the published value: those not in ``given`` (the dotted
    keys a user set, as the command line knows them), or without ``given`` those equal to
    `DiscoverConfig`'s defaults."""
    if given is None:
        return lambda name, value, default: value == default
    return lambda name, value, default: f"{prefix}.{name}" not in given


def resolve_discovery(
    cfg: DiscoverConfig, given: Collection[str] | None = None
) -> tuple[DiscoverConfig, DiscoverySettings]:
    """The settings of the one run of ``cfg`` (not a sweep), unset values taken from the
    published ones, and the config with those values filled in (what ran).

    Top-level settings are unset when ``None``. The ``optim`` fields and ``train.steps`` are
    unset when their dotted key is not in ``given`` (the keys a user set: the command line
    passes them, so that a value given equal to the default is still honoured), or, without
    ``given``, when they equal `DiscoverConfig`'s defaults."""
    if cfg.sweep:
        raise ValueError("resolve_discovery resolves one run; a sweep resolves each of its runs")
    names = ("width", "depth", *_METHOD_SETTINGS)
    published = discovery_settings(cfg.system, cfg.model, cfg.method)
    optim = _fill(cfg.optim, _DEFAULTS.optim, published.optim, _unset_rule("optim", given))
    steps_unset = _unset_rule("train", given)("steps", cfg.train.steps, _DEFAULTS.train.steps)
    steps = None if steps_unset else cfg.train.steps
    settings = discovery_settings(
        cfg.system,
        cfg.model,
        cfg.method,
        **{n: getattr(cfg, n) for n in names},
        optim=optim,
        steps=steps,
        solve=cfg.solve,
    )
    filled = {n: getattr(settings, n) for n in ("width", "depth")}
    filled.update({n: getattr(settings, n) for n, m in _METHOD_SETTINGS.items() if m == cfg.method})
    noise = cfg.noise
    if noise is None and not cfg.data:  # a data file has no noise level to fill in
        noise = SYSTEMS[cfg.system].noise
    ran = dataclasses.replace(
        cfg,
        **filled,
        noise=noise,
        optim=settings.optim,
        train=dataclasses.replace(cfg.train, steps=settings.steps),
    )
    return ran, settings


def discovery_dataset(cfg: DiscoverConfig) -> tuple[Dataset, tuple[str, ...]]:
    """The data of a run of ``cfg`` and the names of its state components: the trajectory in
    ``cfg.data`` (`load_trajectory`, split by `trajectory_dataset` at ``cfg.train_points``)
    or the simulation of ``cfg.system`` (`make_dataset` with ``cfg.noise``, ``cfg.data_seed``,
    ``cfg.dt`` and ``cfg.train_span``)."""
    if cfg.data:
        ts, ys, names = load_trajectory(cfg.data)
        return trajectory_dataset(ts, ys, train_points=cfg.train_points), names
    dataset = make_dataset(
        cfg.system, seed=cfg.data_seed, noise=cfg.noise, dt=cfg.dt, train_span=cfg.train_span
    )
    return dataset, SYSTEMS[cfg.system].state_names


def discovery_run(
    cfg: DiscoverConfig,
    *,
    seed: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
    given: Collection[str] | None = None,
) -> dict[str, Any]:
    """One fit of ``cfg`` (not a sweep) with model seed ``seed``, in float64, on the data of
    `discovery_dataset`: the simulated system or, with ``cfg.data``, a user's trajectory (the
    model is then built for its state dimension, starts from its first observation and is
    scored on the observed continuation). The same data give the same fit whichever way they
    came.

    With ``out`` it writes there the config that ran (``config.yaml``), TensorBoard events
    (``tb/``), the checkpoint and the trained pytrees (``model.eqx``, ``best.eqx``), the
    selected vector field (``best_field.eqx``) and figures (``figures/fit.png``,
    ``figures/mse.png``); ``resume`` continues from the checkpoint there. Returns the metrics
    of `fit_system` with ``system``, ``model``, ``method``, ``seed`` (and the gray box's learnt
    ``a``, ``d``); for a data file ``data`` and ``state_dim`` instead of ``system``, and no
    ``interp_mse_clean`` (a file has no clean trajectory).
    """
    return _fit_runs(cfg, [seed], out, resume, given, ensemble=False)[0]


def discovery_ensemble(
    cfg: DiscoverConfig,
    seeds: list[int],
    *,
    out: str | Path | None = None,
    resume: bool = False,
    given: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """The fits of ``cfg`` (not a sweep) for every model seed of ``seeds``, trained together as
    one ensemble (`fit_systems`): member ``i`` is ``discovery_run(cfg, seed=seeds[i])``.

    With ``out`` it writes there the ensemble's TensorBoard events (``tb/``, one
    ``member_<i>/`` group per seed), its checkpoint and the members' pytrees
    (``member_<i>/``), and per seed what `discovery_run` writes besides (``seed<seed>/``:
    ``config.yaml``, ``best_field.eqx``, figures). Returns the metrics of each run, in the order
    of ``seeds`` (``seconds`` is the ensemble's time).
    """
    return _fit_runs(cfg, seeds, out, resume, given, ensemble=True)


def _fit_runs(
    cfg: DiscoverConfig,
    seeds: list[int],
    out: str | Path | None,
    resume: bool,
    given: Collection[str] | None,
    *,
    ensemble: bool,
) -> list[dict[str, Any]]:
    """The body of `discovery_ensemble` (``ensemble``) and of `discovery_run` (one seed,
    trained alone, its outputs directly under ``out``)."""
    single = not ensemble
    dataset, names = discovery_dataset(cfg)  # a bad file fails before anything is written
    check_model_dim(cfg.system, cfg.model, dataset.state_dim)
    ran, settings = resolve_discovery(cfg, given)
    out = None if out is None else Path(out)
    if single and out is not None:
        write_config(ran, out / "config.yaml")
    logger = None if out is None else TensorBoardLogger(out / "tb")
    try:
        with jax.enable_x64(True):
            fields, keys = zip(
                *(_seeded_field(ran, settings, seed, dataset.state_dim) for seed in seeds),
                strict=True,
            )
            train = {"train": ran.train, "logger": logger, "out": out, "resume": resume}
            if single:
                result, metrics = fit_system(fields[0], dataset, settings, keys[0], **train)
                members, all_metrics = [result], [metrics]
            else:
                fitted, all_metrics = fit_systems(
                    list(fields), dataset, settings, list(keys), **train
                )
                members = fitted.members
            runs = []
            for seed, result, m in zip(seeds, members, all_metrics, strict=True):
                folder = out if single or out is None else out / f"seed{seed}"
                if folder is not None and not single:
                    write_config(ran, folder / "config.yaml")
                runs.append(_finish_run(ran, settings, dataset, names, result, m, seed, folder))
            return runs
    finally:
        if logger is not None:
            logger.close()


def _seeded_field(
    ran: DiscoverConfig, settings: DiscoverySettings, seed: int, state_dim: int
) -> tuple:
    """The initial vector field of model seed ``seed`` and the key of its training run."""
    model_key, train_key = jax.random.split(jax.random.key(seed))
    field = build_discovery_model(
        ran.system,
        ran.model,
        settings,
        model_key,
        learn_rates=ran.learn_rates,
        inputs=ran.graybox_inputs,
        state_dim=state_dim,
    )
    return field, train_key


def _finish_run(
    ran: DiscoverConfig,
    settings: DiscoverySettings,
    dataset: Dataset,
    names: tuple[str, ...],
    result: Any,
    metrics: dict[str, Any],
    seed: int,
    out: Path | None,
) -> dict[str, Any]:
    """Save the selected field and the figures of one run under ``out``; its metrics."""
    best = result.best_model
    if out is not None:
        best.save(out / "best_field.eqx")
        metrics["figures"] = _figures(out, dataset, names, best, result, settings.solve, ran)
    if ran.model == "graybox":
        a, d = best.physics
        metrics.update(a=float(a), d=float(d))
    if ran.data:
        metrics.pop("interp_mse_clean")
        metrics.update(data=ran.data, state_dim=dataset.state_dim)
    else:
        metrics["system"] = ran.system
    metrics.update(model=ran.model, method=ran.method, seed=seed)
    return metrics


def _figures(
    out: Path,
    dataset: Dataset,
    names: tuple[str, ...],
    field: Any,
    result: Any,
    solve: SolveConfig,
    ran: DiscoverConfig,
) -> list[str]:
    ts = np.concatenate([dataset.ts, dataset.ts_extrap])
    dense = np.linspace(ts[0], ts[-1], 400)
    ys = np.asarray(solve.solve(field, jnp.asarray(dataset.y0), jnp.asarray(dense), throw=False))
    fit = discovery_fit_plot(
        dataset, dense, ys, out / "figures" / "fit.png", names=names, observed=bool(ran.data)
    )
    mse = plot_training(
        result,
        out / "figures" / "mse.png",
        title="uncoupled training MSE",
        ylabel="MSE",
        training_label="uncoupled MSE",
    )
    return [str(fit), str(mse)]


def sweep_runs(
    cfg: DiscoverConfig, given: Collection[str] | None = None
) -> list[tuple[str, DiscoverConfig, int]]:
    """The runs of the sweep ``cfg``, in order (targets, then the values of an ablation, then
    methods, then seeds): each as its folder name (``<system>-<model>[/<vary>=<value>]/
    <method>/seed<seed>``), its one-run config and its model seed. Every run is resolved here,
    so that bad settings fail before anything is compiled."""
    if not cfg.sweep:
        raise ValueError("sweep_runs needs a sweep config (sweep=True)")
    runs = []
    values = cfg.values if cfg.vary is not None else (None,)
    for system, model in cfg.pairs():
        for value in values:
            varied = {} if value is None else {cfg.vary: _ablation_value(cfg.vary, value)}
            step = "" if value is None else f"/{cfg.vary}={value:g}"
            for method in cfg.methods:
                one = dataclasses.replace(
                    cfg,
                    system=system,
                    model=model,
                    method=method,
                    **{n: None for n, m in _METHOD_SETTINGS.items() if m != method},
                    **{n: getattr(_DEFAULTS, n) for n in ("sweep", *_SWEEP_FIELDS)},
                    **(
                        {}
                        if model == "graybox"
                        else {n: getattr(_DEFAULTS, n) for n in ("learn_rates", "graybox_inputs")}
                    ),
                    **varied,
                )
                resolve_discovery(one, given)
                for seed in cfg.seeds:
                    runs.append((f"{system}-{model}{step}/{method}/seed{seed}", one, seed))
    return runs


def _ablation_value(vary: str, value: float) -> float | int:
    """``value`` as the setting ``vary`` takes it (an int for the width)."""
    return int(value) if vary == "width" else float(value)


def _sweep_job(
    cfg: DiscoverConfig,
    seeds: list[int],
    out: Path,
    ensemble: bool,
    resume: bool,
    cache: str | None,
    given: Collection[str] | None,
) -> list[dict[str, Any]]:
    """The runs of one method and target of a sweep (also the body of a worker process):
    one ensemble under ``out``, or one run per seed under ``out/seed<seed>``."""
    if cache is not None:  # runs that differ only in their seed share compiled code
        jax.config.update("jax_compilation_cache_dir", cache)
    if ensemble:
        return discovery_ensemble(cfg, seeds, out=out, resume=resume, given=given)
    return [
        discovery_run(cfg, seed=seed, out=out / f"seed{seed}", resume=resume, given=given)
        for seed in seeds
    ]


def discovery_sweep(
    cfg: DiscoverConfig,
    out: str | Path,
    *,
    resume: bool = False,
    given: Collection[str] | None = None,
) -> dict:
    """Run every run of `sweep_runs` under its folder (``out/<system>-<model>/<method>/``,
    with ``<vary>=<value>/`` before the method in an ablation), the seeds of each method,
    target and value as one ensemble (``cfg.ensemble``) or one run each, ``cfg.workers``
    methods and targets at a time (each in its own process when more than one), and write the
    report (`write_results`) after every finished job, so that a stopped sweep leaves the table
    of the runs done so far; its rows are in the order of `sweep_runs` whatever order jobs
    finish in. Returns what `write_results` returns."""
    out = Path(out)
    jobs: dict[str, tuple[DiscoverConfig, list[int]]] = {}
    for name, one, seed in sweep_runs(cfg, given):
        jobs.setdefault(name.rsplit("/", 1)[0], (one, []))[1].append(seed)
    done: dict[int, list[dict[str, Any]]] = {}

    def record(i: int, one: DiscoverConfig, metrics: list[dict[str, Any]]) -> None:
        if cfg.vary is not None:  # the row of an ablation says where it stands
            for m in metrics:
                m.update(vary=cfg.vary, value=getattr(one, cfg.vary))
        done[i] = metrics
        write_results([m for j in sorted(done) for m in done[j]], out)

    if cfg.workers == 1:
        for i, (name, (one, seeds)) in enumerate(jobs.items()):
            record(i, one, _sweep_job(one, seeds, out / name, cfg.ensemble, resume, None, given))
    else:
        import concurrent.futures
        import multiprocessing

        cache = str(out / ".jax_cache")
        spawn = multiprocessing.get_context("spawn")  # a forked JAX runtime is not safe
        if not cfg.ensemble:  # one job per run
            jobs = {
                f"{name}/seed{seed}": (one, [seed])
                for name, (one, seeds) in jobs.items()
                for seed in seeds
            }
        workers = min(cfg.workers, len(jobs))
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=spawn) as pool:
            futures = {
                pool.submit(
                    _sweep_job,
                    one,
                    seeds,
                    out / (name if cfg.ensemble else name.rsplit("/", 1)[0]),
                    cfg.ensemble,
                    resume,
                    cache,
                    given,
                ): (i, one)
                for i, (name, (one, seeds)) in enumerate(jobs.items())
            }
            for future in concurrent.futures.as_completed(futures):
                record(*futures[future], future.result())
    return write_results([m for j in sorted(done) for m in done[j]], out)


def run_discovery(
    cfg: DiscoverConfig,
    out: str | Path,
    *,
    seed: int = 0,
    resume: bool = False,
    given: Collection[str] | None = None,
) -> dict[str, Any]:
    """Run ``cfg`` with its outputs under ``out``: one fit (`discovery_run` with model seed
    ``seed``) or, with ``cfg.sweep``, the sweep (`discovery_sweep`, whose model seeds are
    ``cfg.seeds``: a sweep refuses another ``seed`` than 0)."""
    if not cfg.sweep:
        return discovery_run(cfg, seed=seed, out=out, resume=resume, given=given)
    if seed != 0:
        raise ValueError(
            f"a sweep takes its model seeds from seeds, {list(cfg.seeds)}; got seed {seed}"
        )
    return discovery_sweep(cfg, out, resume=resume, given=given)


# ----------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------

RESULT_COLUMNS: tuple[str, ...] = (
    "interp_mse",
    "interp_mse_clean",
    "extrap_mse",
    "best_step",
    "steps",
)
"""The metrics of a run that the report averages over seeds."""
_CLAIM = (
    "the claim (homotopy: equal or lower interpolation MSE in fewer steps than every other "
    "method, on the means over seeds)"
)


def _mean_se(values: list[Any]) -> tuple[float, float]:
    v = np.asarray([float(x) for x in values if x is not None and math.isfinite(float(x))])
    if len(v) == 0:
        return math.inf, math.nan
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return float(v.mean()), se


def summarise_results(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per ``(system, model, method)`` of ``rows`` (the metrics of runs; per
    ``(system, model, value, method)`` for the rows of an ablation, which carry ``vary`` and
    ``value``), in the order they first appear: ``system``, ``model`` (``vary``, ``value``),
    ``method``, ``seeds`` (the number of runs) and, for each column ``c`` of `RESULT_COLUMNS`,
    the mean ``c`` over the runs where it is finite and its standard error ``c_se`` (NaN for
    one run; a mean of no finite value is ``inf``)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        where = (r["vary"], r["value"]) if "value" in r else ()
        groups.setdefault((r["system"], r["model"], *where, r["method"]), []).append(r)
    out = []
    for key, runs in groups.items():
        entry: dict[str, Any] = {"system": key[0], "model": key[1]}
        if len(key) == 5:
            entry.update(vary=key[2], value=key[3])
        entry.update(method=key[-1], seeds=len(runs))
        for c in RESULT_COLUMNS:
            entry[c], entry[f"{c}_se"] = _mean_se([r.get(c) for r in runs])
        out.append(entry)
    return out


def _target(entry: dict[str, Any]) -> str:
    """``system:model`` of an entry (and ``vary=value`` in an ablation)."""
    where = f" {entry['vary']}={entry['value']:g}" if "value" in entry else ""
    return f"{entry['system']}:{entry['model']}{where}"


def claim_holds(summary: list[dict[str, Any]]) -> dict[str, bool]:
    """Whether homotopy reached an equal or lower mean interpolation MSE than every other method
    of its target in fewer steps (a lower mean ``best_step``), per ``system:model`` target of
    `summarise_results` (per ``system:model vary=value`` in an ablation) that has homotopy and
    another method."""
    targets: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in summary:
        targets.setdefault(_target(entry), {})[entry["method"]] = entry
    verdicts = {}
    for target, by_method in targets.items():
        if "homotopy" not in by_method or len(by_method) < 2:
            continue
        h = by_method["homotopy"]
        verdicts[target] = all(
            h["interp_mse"] <= o["interp_mse"] and h["best_step"] < o["best_step"]
            for m, o in by_method.items()
            if m != "homotopy"
        )
    return verdicts


def _cell(mean: float, se: float) -> str:
    return f"{mean:.4g}" if math.isnan(se) else f"{mean:.4g} ± {se:.2g}"


def write_results(rows: list[dict[str, Any]], out: str | Path) -> dict[str, Any]:
    """Write the report of the runs ``rows`` (their metrics) under ``out``: ``results.csv``
    (one line per run) and ``results.md`` (`summarise_results` as a table and the verdicts of
    `claim_holds`); for an ablation (rows with ``vary`` and ``value``) the table has a column
    of the value and ``figures/ablation.png`` plots the metrics against it (`ablation_plot`).
    Returns ``runs``, ``table`` (the path of ``results.md``) and ``claim_holds.<target>`` per
    target; for an ablation also ``figure`` (its path) and ``summary`` (the entries of
    `summarise_results`)."""
    out = Path(out)
    ablation = any("value" in r for r in rows)
    where = ["vary", "value"] if ablation else []
    keys = ["system", "model", *where, "method", "seed", *RESULT_COLUMNS]
    keys += ["best_train_mse", "seconds"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    atomic_write(out / "results.csv", lambda f: f.write(buf.getvalue().encode()))

    summary = summarise_results(rows)
    varied = f" {summary[0]['vary']} |" if ablation else ""
    lines = [
        f"| system | model |{varied} method | seeds | interp MSE | interp MSE (clean) | "
        "extrap MSE | best step | steps |",
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if ablation else ""),
    ]
    for e in summary:
        cells = [_cell(e[c], e[f"{c}_se"]) for c in RESULT_COLUMNS[:3]]
        cells += [f"{e['best_step']:.0f}", f"{e['steps']:.0f}"]
        value = f" {e['value']:g} |" if ablation else ""
        lines.append(
            f"| {e['system']} | {e['model']} |{value} {e['method']} | {e['seeds']} | "
            + " | ".join(cells)
            + " |"
        )
    verdicts = claim_holds(summary)
    lines.append("")
    for target, holds in verdicts.items():
        lines.append(f"- {target}: {_CLAIM} {'holds' if holds else 'does not hold'}.")
    text = "\n".join(lines) + "\n"
    atomic_write(out / "results.md", lambda f: f.write(text.encode()))
    metrics: dict[str, Any] = {"runs": len(rows), "table": str(out / "results.md")}
    metrics.update({f"claim_holds.{t}": v for t, v in verdicts.items()})
    if ablation:
        metrics["figure"] = str(ablation_plot(summary, out / "figures" / "ablation.png"))
        metrics["summary"] = summary
    return metrics
