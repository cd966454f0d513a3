"""``diffdyn rnn lyapunov | chaos-sweep | train`` and the ``rnn`` quickstart part.

Each command reads its config, makes one library call and writes figures and JSON. Every
workflow switches on float64 (``jax_enable_x64``) at the start of its run: Lyapunov spectra
accumulate millions of small logarithms.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import jax
import numpy as np

from diffdyn.common._helpers import atomic_write
from diffdyn.common.cli import RunContext, command, quickstart_part

from ._chaos import ChaosSweepConfig
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
    """N = 100, six values of g, two networks each, short measurements."""
    spectrum = dataclasses.replace(cfg.spectrum, t_sim=50.0, t_transient=30.0, t_ons_transient=5.0)
    return dataclasses.replace(cfg, n_g=6, n_samples=2, n=100, spectrum=spectrum)


def _sweep(cfg: ChaosSweepConfig, ctx: RunContext) -> dict[str, Any]:
    from ._chaos import chaos_summary, chaos_sweep
    from ._figures import plot_sweep

    t0 = time.perf_counter()
    result = chaos_sweep(
        cfg.gains(),
        cfg.n,
        key=ctx.key,
        n_samples=cfg.n_samples,
        activation=cfg.activation,
        spectrum=cfg.spectrum,
        solve=cfg.solve,
    )
    seconds = time.perf_counter() - t0
    logger = ctx.logger()
    medians = np.median(result["lambda_max"], axis=1)
    for i, (g, median) in enumerate(zip(result["g"], medians, strict=True)):
        logger.scalar("sweep/lambda_max_median", float(median), i)
        logger.scalar("sweep/g", float(g), i)
    logger.flush()
    title = f"N = {cfg.n}, {cfg.activation}"
    plot_sweep(result, ctx.path("chaos_sweep.png"), title=title)
    _write_json(
        ctx.path("chaos_sweep.json"),
        {k: np.asarray(v).tolist() for k, v in result.items()} | {"n": cfg.n},
    )
    return {**chaos_summary(result), "seconds": seconds}


@command(
    "rnn",
    "chaos-sweep",
    ChaosSweepConfig,
    help="largest exponent and dimension versus the coupling scale (in float64)",
    quick=quick_chaos_sweep,
)
def run_chaos_sweep(cfg: ChaosSweepConfig, ctx: RunContext) -> dict[str, Any]:
    """λ_max and Kaplan-Yorke dimension of random networks versus g (plotted)."""
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
    """Gradient descent on weights, or gains and shifts, towards a target Lyapunov spectrum."""
    jax.config.update("jax_enable_x64", True)
    from ._figures import plot_training_spectra
    from ._train import fit_spectrum

    fit = fit_spectrum(cfg, key=ctx.key, logger=ctx.logger(), out=ctx.out, resume=ctx.resume)
    plot_training_spectra(fit.before, fit.after, fit.target, ctx.path("spectrum_before_after.png"))
    _write_json(
        ctx.path("spectra.json"),
        {"before": fit.before.tolist(), "after": fit.after.tolist(), "target": fit.target.tolist()},
    )
    return fit.metrics()
