"""``diffdyn rnn lyapunov | chaos-sweep | train`` and the ``rnn`` quickstart part.

Every workflow switches on float64 (``jax_enable_x64``) at the start of its run: Lyapunov
spectra accumulate millions of small logarithms.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from diffdyn.common import SolveConfig, TrainConfig, figure, save_figure
from diffdyn.common._helpers import atomic_write
from diffdyn.common.cli import RunContext, command, quickstart_part

__all__ = ["LyapunovConfig", "ChaosSweepConfig", "TrainSpectrumConfig"]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Which network: a random one (n, g) or a connectome folder."""

    n: int = dataclasses.field(default=200, metadata=_help("neurons of a random network"))
    g: float = dataclasses.field(default=2.0, metadata=_help("coupling gain, J ~ N(0, g^2/N)"))
    activation: str = dataclasses.field(
        default="tanh", metadata=_help("tanh, tanh-stretched, tanh-positive or identity")
    )
    dt: float = dataclasses.field(default=0.1, metadata=_help("fixed step of the step map"))
    solver: str = dataclasses.field(default="euler", metadata=_help("fixed-step diffrax solver"))
    n_types: int = dataclasses.field(
        default=0, metadata=_help("cell types sharing gains/shifts (0: one per neuron)")
    )
    connectome: str = dataclasses.field(
        default="", metadata=_help("connectome folder (diffdyn-connectome/1); '' = random")
    )
    types: str = dataclasses.field(
        default="neurotransmitter", metadata=_help("connectome: neurotransmitter|cell-type|neuron")
    )
    balance: bool = dataclasses.field(default=True, metadata=_help("Sinkhorn E/I balancing"))


@dataclasses.dataclass(frozen=True)
class SpectrumConfig:
    """How to measure the spectrum (times in units of the membrane time constant)."""

    n_exponents: int = dataclasses.field(default=0, metadata=_help("exponents (0: all)"))
    t_sim: float = dataclasses.field(default=200.0, metadata=_help("measured time"))
    t_ons: float = dataclasses.field(default=1.0, metadata=_help("time between QRs"))
    t_transient: float = dataclasses.field(default=100.0, metadata=_help("state transient"))
    t_ons_transient: float = dataclasses.field(default=10.0, metadata=_help("basis transient"))
    flow_solver: str = dataclasses.field(
        default="", metadata=_help("'' = exact step map; e.g. tsit5 = continuous-time flow")
    )


@dataclasses.dataclass(frozen=True)
class LyapunovConfig:
    network: NetworkConfig = NetworkConfig()
    spectrum: SpectrumConfig = SpectrumConfig()


@dataclasses.dataclass(frozen=True)
class ChaosSweepConfig:
    gmin: float = dataclasses.field(default=0.5, metadata=_help("smallest g"))
    gmax: float = dataclasses.field(default=3.0, metadata=_help("largest g"))
    n_g: int = dataclasses.field(default=11, metadata=_help("number of g values"))
    n_samples: int = dataclasses.field(default=3, metadata=_help("networks per g"))
    n: int = dataclasses.field(default=1000, metadata=_help("neurons"))
    activation: str = "tanh"
    dt: float = 0.1
    n_exponents: int = dataclasses.field(default=1, metadata=_help("exponents per network"))
    t_sim: float = 200.0
    t_ons: float = 1.0
    t_transient: float = 100.0
    t_ons_transient: float = 10.0


@dataclasses.dataclass(frozen=True)
class TrainNetworkConfig(NetworkConfig):
    """The network to train (default: a chaotic one whose activation has a gain and a shift)."""

    n: int = dataclasses.field(default=100, metadata=_help("neurons of a random network"))
    g: float = dataclasses.field(default=3.0, metadata=_help("coupling gain, J ~ N(0, g^2/N)"))
    activation: str = dataclasses.field(
        default="tanh-stretched", metadata=_help("tanh-stretched, tanh-positive, tanh, identity")
    )


@dataclasses.dataclass(frozen=True)
class TrainSpectrumConfig:
    network: TrainNetworkConfig = TrainNetworkConfig()
    train: str = dataclasses.field(
        default="gains-shifts", metadata=_help("weights|gains-shifts|gains|shifts|all")
    )
    loss: str = dataclasses.field(default="mse", metadata=_help("l2 (norm) or mse"))
    target: float = dataclasses.field(default=0.0, metadata=_help("constant target exponent"))
    target_vector: tuple[float, ...] = dataclasses.field(
        default=(), metadata=_help("per-exponent targets (overrides target)")
    )
    n_exponents: int = dataclasses.field(default=10, metadata=_help("exponents in the loss"))
    t_sim: float = 100.0
    t_ons: float = 1.0
    t_transient: float = 50.0
    t_ons_transient: float = 5.0
    optimiser: str = "adam"
    lr: float = dataclasses.field(default=0.05, metadata=_help("learning rate"))
    clip_norm: float = dataclasses.field(default=0.0, metadata=_help("0: no clipping"))
    steps: int = 200
    log_every: int = 10
    eval_t_sim: float = dataclasses.field(default=500.0, metadata=_help("final evaluation time"))


# ---------------------------------------------------------------------- helpers
def _build_network(cfg: NetworkConfig, key: Any) -> Any:
    from ._connectome import load_connectome
    from ._model import RateRNN

    if cfg.connectome:
        conn = load_connectome(cfg.connectome)
        return conn.to_rnn(
            types=cfg.types,
            balance=cfg.balance,
            activation=cfg.activation,
            dt=cfg.dt,
            solver=cfg.solver,
        )
    return RateRNN(
        cfg.n,
        g=cfg.g,
        activation=cfg.activation,
        n_types=cfg.n_types or None,
        dt=cfg.dt,
        solver=cfg.solver,
        key=key,
    )


def _write_json(path: Any, obj: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=1).encode()))


def _summary(exponents: Any) -> dict[str, float]:
    from ._lyapunov import entropy_rate, kaplan_yorke_dimension

    lam = jnp.asarray(exponents)
    return {
        "lambda_max": float(jnp.max(lam)),
        "kaplan_yorke_dimension": float(kaplan_yorke_dimension(lam)),
        "entropy_rate": float(entropy_rate(lam)),
        "sum_exponents": float(jnp.sum(lam)),
        "n_exponents": int(lam.shape[0]),
    }


# ---------------------------------------------------------------------- lyapunov
@command("rnn", "lyapunov", LyapunovConfig, help="Lyapunov spectrum of one rate network")
def run_lyapunov(cfg: LyapunovConfig, ctx: RunContext) -> dict[str, Any]:
    """Lyapunov spectrum of one network, with the convergence plot."""
    jax.config.update("jax_enable_x64", True)
    import equinox as eqx

    from ._lyapunov import convergence_diagnostics, lyapunov_spectrum, running_exponents

    s = cfg.spectrum
    net_key, h_key, q_key = jax.random.split(ctx.key, 3)
    model = _build_network(cfg.network, net_key)
    h0 = jax.random.normal(h_key, (model.n,))
    flow = SolveConfig(solver=s.flow_solver, max_steps=100_000) if s.flow_solver else None
    spectrum = eqx.filter_jit(
        lambda m, h: lyapunov_spectrum(
            m,
            h,
            key=q_key,
            n_exponents=s.n_exponents or None,
            t_sim=s.t_sim,
            t_ons=s.t_ons,
            t_transient=s.t_transient,
            t_ons_transient=s.t_ons_transient,
            flow=flow,
            checkpoint=False,
        )
    )
    t0 = time.perf_counter()
    result = spectrum(model, h0)
    lam = np.asarray(jax.block_until_ready(result.exponents))
    seconds = time.perf_counter() - t0
    diag = convergence_diagnostics(result)
    running = np.asarray(running_exponents(result))
    times = (np.arange(running.shape[0]) + 1) * result.t_ons
    show = sorted({0, 1, 2, lam.size // 2, lam.size - 1} & set(range(lam.size)))
    fig, ax = figure(figsize=(6, 4))
    for i in show:
        ax.plot(times, running[:, i], label=f"λ_{i + 1}")
    ax.set_xlabel("measured time")
    ax.set_ylabel("running estimate")
    ax.legend()
    save_figure(fig, ctx.path("convergence.png"))
    fig, ax = figure(figsize=(6, 4))
    ax.plot(np.arange(1, lam.size + 1), np.sort(lam)[::-1], ".-")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("index i")
    ax.set_ylabel("λ_i")
    save_figure(fig, ctx.path("spectrum.png"))
    _write_json(ctx.path("spectrum.json"), {"exponents": lam.tolist()})
    metrics = _summary(lam)
    metrics.update(
        stderr_lambda_max=float(np.asarray(diag["stderr"])[int(np.argmax(lam))]),
        measured_time=float(diag["time"]),
        seconds=seconds,
        n=int(model.n),
    )
    return metrics


# ---------------------------------------------------------------------- chaos sweep
def _sweep(cfg: ChaosSweepConfig, ctx: RunContext) -> dict[str, Any]:
    from ._chaos import chaos_sweep, plot_sweep

    if cfg.n_g < 1 or cfg.gmax < cfg.gmin:
        raise ValueError(f"need n_g >= 1 and gmax >= gmin; got {cfg.n_g}, {cfg.gmin}, {cfg.gmax}")
    gs = np.linspace(cfg.gmin, cfg.gmax, cfg.n_g)
    logger = ctx.logger()
    t0 = time.perf_counter()
    result = chaos_sweep(
        gs,
        cfg.n,
        key=ctx.key,
        n_samples=cfg.n_samples,
        activation=cfg.activation,
        n_exponents=cfg.n_exponents,
        dt=cfg.dt,
        t_sim=cfg.t_sim,
        t_ons=cfg.t_ons,
        t_transient=cfg.t_transient,
        t_ons_transient=cfg.t_ons_transient,
    )
    seconds = time.perf_counter() - t0
    median = np.median(result["lambda_max"], axis=1)
    for i, g in enumerate(gs):
        logger.scalar("sweep/lambda_max_median", float(median[i]), i)
        logger.scalar("sweep/g", float(g), i)
    logger.flush()
    plot_sweep(result, ctx.path("chaos_sweep.png"), title=f"N = {cfg.n}, {cfg.activation}")
    _write_json(
        ctx.path("chaos_sweep.json"),
        {k: np.asarray(v).tolist() for k, v in result.items()} | {"n": cfg.n},
    )
    above = np.nonzero(median > 0)[0]
    return {
        "g_first_positive": float(gs[above[0]]) if above.size else float("nan"),
        "lambda_max_at_gmin": float(median[0]),
        "lambda_max_at_gmax": float(median[-1]),
        "seconds": seconds,
    }


@command("rnn", "chaos-sweep", ChaosSweepConfig, help="λ_max and dimension versus g")
def run_chaos_sweep(cfg: ChaosSweepConfig, ctx: RunContext) -> dict[str, Any]:
    """λ_max and Kaplan-Yorke dimension of random tanh networks versus g (plotted)."""
    jax.config.update("jax_enable_x64", True)
    return _sweep(cfg, ctx)


@quickstart_part("rnn", order=50)
def quickstart_rnn(ctx: RunContext) -> dict[str, Any]:
    """A short chaos sweep: N = 100, g from 0.5 to 3, two networks per g."""
    cfg = ChaosSweepConfig(
        gmin=0.5,
        gmax=3.0,
        n_g=6,
        n_samples=2,
        n=100,
        t_sim=50.0,
        t_transient=30.0,
        t_ons_transient=5.0,
    )
    ctx.out.mkdir(parents=True, exist_ok=True)
    with jax.enable_x64(True):  # quickstart parts share a process: no global switch here
        return _sweep(cfg, ctx)


# ---------------------------------------------------------------------- training
@command("rnn", "train", TrainSpectrumConfig, help="train a network towards a target spectrum")
def run_train(cfg: TrainSpectrumConfig, ctx: RunContext) -> dict[str, Any]:
    """Gradient descent on weights, or gains and shifts, towards a target Lyapunov spectrum."""
    jax.config.update("jax_enable_x64", True)
    from ._lyapunov import lyapunov_spectrum
    from ._train import SpectrumObjective, fit_spectrum, spectrum_optimiser

    net_key, h_key, fit_key, eval_key = jax.random.split(ctx.key, 4)
    model = _build_network(cfg.network, net_key)
    h0 = jax.random.normal(h_key, (model.n,))
    k = cfg.n_exponents
    if not 1 <= k <= model.n:
        raise ValueError(f"n_exponents must be in [1, {model.n}]; got {k}")
    target = np.asarray(cfg.target_vector) if cfg.target_vector else cfg.target
    objective = SpectrumObjective(
        target,
        k,
        loss=cfg.loss,
        t_sim=cfg.t_sim,
        t_ons=cfg.t_ons,
        t_transient=cfg.t_transient,
        t_ons_transient=cfg.t_ons_transient,
    )
    optimiser = spectrum_optimiser(cfg.optimiser, cfg.lr, clip_norm=cfg.clip_norm or None)

    def evaluate(m: Any) -> np.ndarray:
        return np.asarray(
            lyapunov_spectrum(
                m,
                h0,
                key=eval_key,
                n_exponents=k,
                t_sim=cfg.eval_t_sim,
                t_ons=cfg.t_ons,
                t_transient=cfg.t_transient,
                t_ons_transient=cfg.t_ons_transient,
                checkpoint=False,
            ).exponents
        )

    before = evaluate(model)
    result = fit_spectrum(
        model,
        h0,
        objective,
        key=fit_key,
        train=cfg.train,
        optimiser=optimiser,
        config=TrainConfig(steps=cfg.steps, log_every=cfg.log_every, checkpoint_every=cfg.steps),
        logger=ctx.logger(),
        out=ctx.out,
        resume=ctx.resume,
    )
    after = evaluate(result.model)
    fig, ax = figure(figsize=(6, 4))
    ax.plot(np.sort(before)[::-1], ".-", label="before")
    ax.plot(np.sort(after)[::-1], ".-", label="after")
    ax.plot(np.asarray(objective.target), "k--", label="target")
    ax.set_xlabel("index i")
    ax.set_ylabel("λ_i")
    ax.legend()
    save_figure(fig, ctx.path("spectrum_before_after.png"))
    _write_json(ctx.path("spectra.json"), {"before": before.tolist(), "after": after.tolist()})
    return {
        "lambda_max_before": float(before.max()),
        "lambda_max_after": float(after.max()),
        "final_loss": result.final_loss,
        "steps": result.steps,
        "seconds": result.seconds,
    }
