"""``diffdyn rnn lyapunov | chaos-sweep | train | import-connectome`` and the ``rnn``
quickstart part.

Each command reads its config, makes one library call and writes figures and JSON. Every
workflow that measures spectra switches on float64 (``jax_enable_x64``) at the start of its
run: Lyapunov spectra accumulate millions of small logarithms.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from diffdyn.common._helpers import atomic_write
from diffdyn.common.cli import RunContext, command, quickstart_part

from ._chaos import ChaosSweepConfig
from ._connectome import ImportConnectomeConfig
from ._network import LyapunovConfig
from ._train import SpectrumTrainConfig

__all__: list[str] = []


def _write_json(path: Any, obj: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=1).encode()))


# ---------------------------------------------------------------------- lyapunov
def quick_lyapunov(cfg: LyapunovConfig) -> LyapunovConfig:
    """A short measurement (the network as configured)."""
    spectrum = dataclasses.replace(cfg.spectrum, t_sim=50.0, t_transient=20.0, t_ons_transient=5.0)
    return dataclasses.replace(cfg, spectrum=spectrum)


@command(
    "rnn",
    "lyapunov",
    LyapunovConfig,
    help="Lyapunov spectrum of one rate network (in float64)",
    quick=quick_lyapunov,
)
def run_lyapunov(cfg: LyapunovConfig, ctx: RunContext) -> dict[str, Any]:
    """Lyapunov spectrum of one network, with its convergence plot."""
    jax.config.update("jax_enable_x64", True)
    from ._figures import plot_convergence, plot_spectrum
    from ._lyapunov import spectrum_summary
    from ._network import network_spectrum

    t0 = time.perf_counter()
    model, result = network_spectrum(cfg, key=ctx.key)
    lam = np.asarray(jax.block_until_ready(result.exponents))
    seconds = time.perf_counter() - t0
    what = "flow" if cfg.flow else f"{cfg.solve.solver} step map"
    plot_convergence(result, ctx.path("convergence.png"), f"Convergence, N = {model.n}, {what}")
    plot_spectrum(lam, ctx.path("spectrum.png"), f"Lyapunov spectrum, N = {model.n}, {what}")
    _write_json(ctx.path("spectrum.json"), {"exponents": lam.tolist()})
    return {**spectrum_summary(result), "n": int(model.n), "seconds": seconds}


# ---------------------------------------------------------------------- chaos sweep
def quick_chaos_sweep(cfg: ChaosSweepConfig) -> ChaosSweepConfig:
    """N = 100, six swept values, two networks each, short measurements."""
    spectrum = dataclasses.replace(cfg.spectrum, t_sim=50.0, t_transient=30.0, t_ons_transient=5.0)
    points = {"n_g": 6} if cfg.parameter == "weights" else {"n_sigma": 6}
    return dataclasses.replace(cfg, n_samples=2, n=100, spectrum=spectrum, **points)


def _check_sweep(cfg: ChaosSweepConfig, ctx: RunContext) -> None:
    """Refuse an option of the other kind of sweep even when it was given at its default
    value (the config itself can only see values that differ from the defaults)."""
    from ._chaos import _DISORDER_OPTIONS, _WEIGHT_OPTIONS

    unused = _DISORDER_OPTIONS if cfg.parameter == "weights" else _WEIGHT_OPTIONS
    given = sorted(set(unused) & ctx.given)
    if given:
        applies = "gains or shifts" if cfg.parameter == "weights" else "weights"
        raise ValueError(
            f"option(s) {', '.join(given)} apply only to parameter {applies}, not to "
            f"{cfg.parameter!r}"
        )


def _finite_or_none(values: Any) -> Any:
    """A JSON-ready copy: arrays as lists, NaN as None (strict JSON has no NaN)."""
    array = np.asarray(values)
    if array.dtype.kind == "f":
        return np.where(np.isfinite(array), array, None).tolist()
    return array.tolist()


def _write_sweep_table(stats: dict[str, Any], path: Any) -> None:
    """One CSV row per swept point: the value, the networks, mean and standard error."""
    name = "g" if stats["parameter"] == "weights" else "sigma"
    columns = [c for c in stats if c.endswith(("_mean", "_se"))]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([name, "n_samples", *columns])
    for i, value in enumerate(np.asarray(stats[name])):
        row = [float(stats[c][i]) for c in columns]
        writer.writerow([repr(float(value)), stats["n_samples"], *map(repr, row)])
    atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


def _sweep(cfg: ChaosSweepConfig, ctx: RunContext) -> dict[str, Any]:
    from ._chaos import chaos_summary, chaos_sweep, sweep_statistics
    from ._figures import plot_sweep

    weights = cfg.parameter == "weights"
    t0 = time.perf_counter()
    result = chaos_sweep(
        cfg.values(),
        cfg.n,
        key=ctx.key,
        parameter=cfg.parameter,
        g=None if weights else cfg.g,
        centre=None if weights else cfg.centre,
        n_samples=cfg.n_samples,
        activation=cfg.activation,
        spectrum=cfg.spectrum,
        solve=cfg.solve,
    )
    seconds = time.perf_counter() - t0
    stats = sweep_statistics(result)
    name = "g" if weights else "sigma"
    logger = ctx.logger()
    medians = np.median(result["lambda_max"], axis=1)
    for i, (value, median) in enumerate(zip(result["values"], medians, strict=True)):
        logger.scalar("sweep/lambda_max_median", float(median), i)
        logger.scalar("sweep/lambda_max_mean", float(stats["lambda_max_mean"][i]), i)
        logger.scalar(f"sweep/{name}", float(value), i)
    logger.flush()
    title = f"N = {cfg.n}, {cfg.activation}"
    if not weights:
        title = f"{title}, {cfg.parameter} disorder at g = {cfg.g:g}"
    plot_sweep(result, ctx.path("chaos_sweep.png"), title=title)
    _write_sweep_table(stats, ctx.path("chaos_sweep.csv"))
    _write_json(
        ctx.path("chaos_sweep.json"),
        {k: _finite_or_none(v) for k, v in result.items()}
        | {"n": cfg.n, "statistics": {k: _finite_or_none(v) for k, v in stats.items()}},
    )
    return {**chaos_summary(result), "parameter": cfg.parameter, "seconds": seconds}


@command(
    "rnn",
    "chaos-sweep",
    ChaosSweepConfig,
    help=(
        "largest exponent and dimension versus the coupling scale or "
        "the spread of gains or shifts (in float64)"
    ),
    quick=quick_chaos_sweep,
    check=_check_sweep,
)
def run_chaos_sweep(cfg: ChaosSweepConfig, ctx: RunContext) -> dict[str, Any]:
    """λ_max and Kaplan-Yorke dimension of random networks versus g, or versus the spread of
    their gains or shifts (``--parameter``), with mean and standard error over the networks
    (plotted; table in chaos_sweep.csv)."""
    jax.config.update("jax_enable_x64", True)
    return _sweep(cfg, ctx)


@quickstart_part("rnn", order=50)
def quickstart_rnn(ctx: RunContext) -> dict[str, Any]:
    """A short chaos sweep: N = 100, g from 0.5 to 3, two networks per g."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    with jax.enable_x64(True):  # quickstart parts share a process: no global switch here
        return _sweep(quick_chaos_sweep(ChaosSweepConfig()), ctx)


# ---------------------------------------------------------------------- training
def quick_train(cfg: SpectrumTrainConfig) -> SpectrumTrainConfig:
    """A small network (unless it is a connectome), two exponents, 20 short steps."""
    network = cfg.network
    if network.connectome is None:
        network = dataclasses.replace(network, n=40)
    spectrum = dataclasses.replace(
        cfg.spectrum, n_exponents=2, t_sim=20.0, t_transient=10.0, t_ons_transient=2.0
    )
    train = dataclasses.replace(cfg.train, steps=20, log_every=5)
    return dataclasses.replace(
        cfg,
        network=network,
        spectrum=spectrum,
        target_vector=cfg.target_vector[:2],
        validation_t_sim=100.0,
        train=train,
    )


@command(
    "rnn",
    "train",
    SpectrumTrainConfig,
    help="train a network towards a target spectrum (in float64)",
    quick=quick_train,
    trains=True,
)
def run_train(cfg: SpectrumTrainConfig, ctx: RunContext) -> dict[str, Any]:
    """Gradient descent on weights, gains and shifts, or a random subset of them, towards a
    target Lyapunov spectrum (or a larger sum of exponents), for one or several networks."""
    jax.config.update("jax_enable_x64", True)
    from ._figures import plot_training_spectra
    from ._train import fit_spectra

    fits = fit_spectra(cfg, key=ctx.key, logger=ctx.logger(), out=ctx.out, resume=ctx.resume)
    target = fits[0].target
    before = np.stack([f.before for f in fits])
    after = np.stack([f.after for f in fits])
    one = len(fits) == 1
    plot_training_spectra(
        before[0] if one else before,
        after[0] if one else after,
        target,
        ctx.path("spectrum_before_after.png"),
    )
    _write_json(
        ctx.path("spectra.json"),
        {
            "before": (before[0] if one else before).tolist(),
            "after": (after[0] if one else after).tolist(),
            "target": None if target is None else target.tolist(),
        },
    )
    if cfg.trainable == "subset":
        _write_json(
            ctx.path("trained_subset.json"),
            {
                "counts": fits[0].subset.counts(),  # type: ignore[union-attr]
                "samples": [f.subset.indices() for f in fits],  # type: ignore[union-attr]
            },
        )
    if one:
        return fits[0].metrics()
    samples = [f.metrics() for f in fits]
    _write_json(ctx.path("samples.json"), samples)
    metrics: dict[str, Any] = {"n_samples": len(fits)}
    for name, value in samples[0].items():
        if isinstance(value, float) and name != "seconds":
            values = np.asarray([m[name] for m in samples], np.float64)
            metrics[f"{name}_mean"], metrics[f"{name}_std"] = values.mean(), values.std()
    metrics.update(steps=samples[0]["steps"], seconds=samples[0]["seconds"])
    return metrics


# ---------------------------------------------------------------------- connectome import
def _check_import(cfg: ImportConnectomeConfig, ctx: RunContext) -> None:
    """Refuse, before ``--out`` is claimed, an import that would fail: unreadable or
    inconsistent source files, an existing ``dst`` without ``force``, or ``--out`` inside
    ``dst`` (the run's own record would end up in the connectome folder)."""
    from ._connectome import _check_destination, _read_reference

    dst, out = Path(cfg.dst).resolve(), ctx.out.resolve()
    if out == dst or dst in out.parents:
        raise ValueError(
            f"--out {str(ctx.out)!r} lies in --dst {str(cfg.dst)!r}: give the run record "
            "another folder"
        )
    _check_destination(cfg.dst, cfg.force)
    _read_reference(cfg.src, cfg.orientation, cfg.split_mixed)


@command(
    "rnn",
    "import-connectome",
    ImportConnectomeConfig,
    help="convert a FlyStability region-of-interest folder into a connectome folder",
    check=_check_import,
)
def run_import_connectome(cfg: ImportConnectomeConfig, ctx: RunContext) -> dict[str, Any]:
    """Read adjacency_scc.npy, nid_scc.npy, ei_neuron_types.npy and the two .pkl name maps of
    ``--src``; write the connectome folder ``--dst`` (signs by presynaptic neuron)."""
    from ._connectome import import_reference_connectome

    if not ctx.primary:  # only process 0 writes; the others have checked the input
        return {}
    conn = import_reference_connectome(
        cfg.src,
        cfg.dst,
        orientation=cfg.orientation,
        split_mixed=cfg.split_mixed,
        force=cfg.force,
    )
    off_diagonal = conn.weight * (1.0 - np.eye(conn.n))
    return {
        "n": conn.n,
        "connections": int(np.count_nonzero(off_diagonal)),
        "self_connections": int(np.count_nonzero(np.diag(conn.weight))),
        "excitatory": int(np.sum(conn.presynaptic_sign > 0)),
        "inhibitory": int(np.sum(conn.presynaptic_sign < 0)),
        "neurotransmitters": len(conn.neurotransmitter_names),
        "cell_types": len(conn.cell_type_names or ()),
        "dst": str(cfg.dst),
    }
