"""``diffdyn pde simulate``, ``diffdyn pde fit`` and the ``pde`` quickstart part."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from diffdyn.common import (
    TrainConfig,
    figure,
    normalise,
    plot_curves,
    save_figure,
    save_gif,
    save_png,
)
from diffdyn.common.cli import RunContext, command, quickstart_part

from ._base import AbstractPDE
from ._fit import PDEFitConfig, fit_pde, fit_pde_strategy, model_to_fit, rollout_error
from ._initial import initial_state
from ._models import FIXED_MODELS
from ._patterns import connected_components, dominant_wavelength
from ._registry import PDE_MODELS, make_pde
from ._solver import PDESolver

__all__ = ["SimulateConfig", "FitConfig", "simulate", "fit"]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def _params(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(
            f"params must be a JSON object, e.g. '{{\"feed\": 0.04}}'; got {text!r}"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"params must be a JSON object; got {text!r}")
    return value


@dataclasses.dataclass(frozen=True)
class SimulateConfig:
    """Simulate a PDE model from its literature initial state."""

    model: str = dataclasses.field(default="gray-scott", metadata=_help("model name"))
    params: str = dataclasses.field(default="", metadata=_help("JSON object of model arguments"))
    size: int = dataclasses.field(default=64, metadata=_help("grid cells per side"))
    t1: float = dataclasses.field(default=5000.0, metadata=_help("final time"))
    frames: int = dataclasses.field(default=50, metadata=_help("frames saved (GIF)"))
    solver: str = dataclasses.field(default="heun", metadata=_help("diffrax solver name"))
    dt: float = dataclasses.field(default=1.0, metadata=_help("(initial) time step"))
    adaptive: bool = dataclasses.field(default=False, metadata=_help("adaptive step size"))
    rtol: float = dataclasses.field(default=1e-3, metadata=_help("relative tolerance"))
    atol: float = dataclasses.field(default=1e-3, metadata=_help("absolute tolerance"))
    channel: int = dataclasses.field(default=-1, metadata=_help("channel shown in images"))
    float64: bool = dataclasses.field(default=False, metadata=_help("switch on float64"))

    def __post_init__(self) -> None:
        if self.model not in PDE_MODELS:
            raise ValueError(f"model must be one of {sorted(PDE_MODELS)}; got {self.model!r}")
        if self.size < 3:
            raise ValueError(f"size must be >= 3; got {self.size}")
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2; got {self.frames}")
        if not self.t1 > 0 or not self.dt > 0:
            raise ValueError(f"t1 and dt must be > 0; got t1={self.t1}, dt={self.dt}")


def _solver(rhs: AbstractPDE, cfg: Any, t1: float) -> PDESolver:
    steps = int(np.ceil(t1 / cfg.dt)) + 1
    max_steps = steps if not cfg.adaptive else max(16 * steps, 4096)
    return PDESolver(rhs, cfg.solver, cfg.dt, cfg.adaptive, cfg.rtol, cfg.atol, max_steps=max_steps)


def _pattern_metrics(state: np.ndarray, channel: int, dx: float) -> dict[str, Any]:
    field = state[channel]
    threshold = 0.5 * (field.min() + field.max())
    _, n = connected_components(field > threshold)
    return {
        "components": n,
        "wavelength": dominant_wavelength(field, dx) if field.shape[0] == field.shape[1] else None,
        "min": float(field.min()),
        "max": float(field.max()),
    }


def _save_images(ctx: RunContext, ys: np.ndarray, channel: int, prefix: str = "") -> None:
    c = ys.shape[1]
    shown = ys[:, channel % c][:, None]
    frames = normalise(shown, per_channel=False)
    save_gif(frames, ctx.path(f"{prefix}trajectory.gif"))
    save_png(frames[-1], ctx.path(f"{prefix}final.png"))


def run_simulation(cfg: SimulateConfig, ctx: RunContext) -> tuple[dict[str, Any], np.ndarray]:
    rhs = make_pde(cfg.model, key=jax.random.fold_in(ctx.key, 1), **_params(cfg.params))
    solver = _solver(rhs, cfg, cfg.t1)
    x0 = initial_state(rhs, jax.random.fold_in(ctx.key, 2), cfg.size)
    ts = jnp.linspace(0.0, cfg.t1, cfg.frames)
    start = time.perf_counter()
    ys = eqx.filter_jit(lambda s, x, t: s(x, t))(solver, x0, ts)
    ys = np.asarray(jax.block_until_ready(ys))
    seconds = time.perf_counter() - start
    if not np.all(np.isfinite(ys)):
        raise ValueError(
            f"the simulation of {cfg.model!r} became non-finite; use a smaller dt or adaptive=true"
        )
    np.save(ctx.path("final.npy"), ys[-1])
    np.save(ctx.path("trajectory.npy"), ys)
    _save_images(ctx, ys, cfg.channel)
    metrics = {
        "model": cfg.model,
        "seconds": seconds,
        "cells": int(np.prod(ys.shape[1:])),
        **_pattern_metrics(ys[-1], cfg.channel, rhs.dx),
    }
    return metrics, ys


@command("pde", "simulate", SimulateConfig)
def simulate(cfg: SimulateConfig, ctx: RunContext) -> dict[str, Any]:
    """Simulate a PDE model; write trajectory.gif, final.png, final.npy and trajectory.npy."""
    if cfg.float64:
        jax.config.update("jax_enable_x64", True)
    metrics, _ = run_simulation(cfg, ctx)
    return metrics


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Fit a PDE model to trajectories from a .npy file or generated by a fixed model."""

    model: str = dataclasses.field(default="gray-scott", metadata=_help("model to fit"))
    data: str = dataclasses.field(
        default="", metadata=_help(".npy [B,T,C,H,W] or [T,C,H,W]; empty: generate")
    )
    data_dt: float = dataclasses.field(default=10.0, metadata=_help("time between data frames"))
    generator: str = dataclasses.field(
        default="gray-scott", metadata=_help("fixed model generating the data")
    )
    generator_params: str = dataclasses.field(
        default="", metadata=_help("JSON object of generator arguments")
    )
    size: int = dataclasses.field(default=32, metadata=_help("grid size of generated data"))
    frames: int = dataclasses.field(default=31, metadata=_help("frames of generated data"))
    warmup: float = dataclasses.field(
        default=500.0, metadata=_help("generator time before the first frame")
    )
    held_out: int = dataclasses.field(default=10, metadata=_help("final frames held out"))
    perturb: float = dataclasses.field(
        default=0.2, metadata=_help("relative perturbation of a fixed model's parameters")
    )
    hidden: int = dataclasses.field(default=0, metadata=_help("hidden channels (neural)"))
    width: int = dataclasses.field(default=32, metadata=_help("hidden width (neural)"))
    diffusion: str = dataclasses.field(default="linear", metadata=_help("neural diffusion"))
    advection: bool = dataclasses.field(default=False, metadata=_help("neural advection"))
    normalise_inputs: bool = dataclasses.field(
        default=True, metadata=_help("neural RDA: networks read standardised training states")
    )
    solver: str = dataclasses.field(default="heun", metadata=_help("diffrax solver name"))
    dt: float = dataclasses.field(default=1.0, metadata=_help("time step"))
    adaptive: bool = dataclasses.field(default=False, metadata=_help("adaptive step size"))
    rtol: float = dataclasses.field(default=1e-3, metadata=_help("relative tolerance"))
    atol: float = dataclasses.field(default=1e-3, metadata=_help("absolute tolerance"))
    float64: bool = dataclasses.field(default=True, metadata=_help("switch on float64"))
    fit: PDEFitConfig = dataclasses.field(
        default_factory=lambda: PDEFitConfig(window=2, batch_size=2, learning_rate=3e-3)
    )
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(steps=200, log_every=20)
    )

    def __post_init__(self) -> None:
        if self.model not in PDE_MODELS:
            raise ValueError(f"model must be one of {sorted(PDE_MODELS)}; got {self.model!r}")
        if self.generator not in FIXED_MODELS:
            raise ValueError(
                f"generator must be one of {sorted(FIXED_MODELS)}; got {self.generator!r}"
            )
        if self.held_out < 0 or self.frames < 3:
            raise ValueError(
                f"need frames >= 3 and held_out >= 0; got {self.frames}, {self.held_out}"
            )


def _load_data(cfg: FitConfig) -> np.ndarray:
    try:
        x = np.load(cfg.data, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"data: cannot read {cfg.data!r} as a .npy array: {e}") from None
    if x.ndim == 4:
        x = x[None]
    if x.ndim != 5:
        raise ValueError(f"data must have shape [B, T, C, H, W] or [T, C, H, W]; got {x.shape}")
    return x


def _generate(cfg: FitConfig, key: Any) -> tuple[np.ndarray, AbstractPDE]:
    rhs = make_pde(cfg.generator, **_params(cfg.generator_params))
    solver = _solver(rhs, cfg, max(cfg.warmup, cfg.data_dt * cfg.frames))
    run = eqx.filter_jit(lambda s, x, t: s(x, t))
    x0 = initial_state(rhs, key, cfg.size)
    if cfg.warmup > 0:
        x0 = run(solver, x0, jnp.array([0.0, cfg.warmup]))[-1]
    ts = jnp.arange(cfg.frames) * cfg.data_dt
    return np.asarray(run(solver, x0, ts))[None], rhs


def _initial_model(cfg: FitConfig, train: np.ndarray, key: Any) -> AbstractPDE:
    """The model to fit to ``train`` ``[B, T, C, H, W]``."""
    params = _params(cfg.generator_params) if cfg.model == cfg.generator else {}
    return model_to_fit(
        cfg.model,
        train,
        key=key,
        hidden=cfg.hidden,
        width=cfg.width,
        diffusion=cfg.diffusion,
        advection=cfg.advection,
        normalise_inputs=cfg.normalise_inputs,
        perturb=cfg.perturb,
        params=params,
    )


def _compare_figure(ctx: RunContext, truth: np.ndarray, pred: np.ndarray, channel: int) -> None:
    fig, axes = figure(2, truth.shape[0], figsize=(2 * truth.shape[0], 4), squeeze=False)
    lo, hi = truth[:, channel].min(), truth[:, channel].max()
    for i in range(truth.shape[0]):
        axes[0, i].imshow(truth[i, channel], vmin=lo, vmax=hi)
        axes[1, i].imshow(pred[i, channel], vmin=lo, vmax=hi)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("data")
    axes[1, 0].set_ylabel("model")
    save_figure(fig, ctx.path("held_out.png"))


@command("pde", "fit", FitConfig)
def fit(cfg: FitConfig, ctx: RunContext) -> dict[str, Any]:
    """Fit a PDE model (fixed or neural) to trajectories; report parameter and rollout errors."""
    if cfg.float64:
        jax.config.update("jax_enable_x64", True)
    k_data, k_model, k_fit = jax.random.split(ctx.key, 3)
    truth_rhs = None
    if cfg.data:
        data = _load_data(cfg)
    else:
        data, truth_rhs = _generate(cfg, k_data)
    if not np.all(np.isfinite(data)):
        raise ValueError("data contains NaN or inf")
    n_frames = data.shape[1]
    n_train = n_frames - cfg.held_out
    if n_train < cfg.fit.window + 1:
        raise ValueError(
            f"only {n_train} training frames (frames {n_frames} - held_out {cfg.held_out}); "
            f"need at least window + 1 = {cfg.fit.window + 1}"
        )
    ts = np.arange(n_frames) * cfg.data_dt
    rhs = _initial_model(cfg, data[:, :n_train], k_model)
    model = _solver(rhs, cfg, cfg.data_dt * n_frames)
    logger = ctx.logger()
    if cfg.fit.strategy == "plain":
        result = fit_pde(
            model,
            data[:, :n_train],
            ts[:n_train],
            cfg.fit,
            k_fit,
            train=cfg.train,
            logger=logger,
            out=ctx.out,
            resume=ctx.resume,
        )
        fitted, losses = result.model, result.losses
        metrics: dict[str, Any] = {"best_loss": result.best_loss, "steps": result.steps}
    else:
        if data.shape[2] != rhs.channels:
            raise ValueError(f"strategy {cfg.fit.strategy!r} needs every channel observed")
        fitted, result = fit_pde_strategy(
            model,
            data[0, :n_train],
            ts[:n_train],
            cfg.fit,
            k_fit,
            train=cfg.train,
            logger=logger,
            out=ctx.out,
        )
        losses = result.mse
        metrics = {"best_loss": result.best_mse, "steps": result.epochs}
    logger.close()
    plot_curves({"loss": losses}, ctx.path("loss.png"), logy=True, ylabel="loss")
    metrics.update({"final_loss": float(losses[-1]), "seconds": result.seconds})
    if cfg.held_out > 0:
        err = rollout_error(fitted, data, ts, start=n_train - 1)
        metrics["held_out_rmse"] = float(np.mean(err))
        x0 = data[:, n_train - 1]
        hidden = np.zeros((x0.shape[0], fitted.rhs.channels - x0.shape[1], *x0.shape[2:]))
        pred = fitted(
            jnp.asarray(np.concatenate([x0, hidden], 1)[0]), jnp.asarray(ts[n_train - 1 :])
        )
        _compare_figure(ctx, data[0, n_train - 1 :], np.asarray(pred), -1 % data.shape[2])
    if truth_rhs is not None and type(truth_rhs) is type(fitted.rhs):
        for name, value in truth_rhs.hyperparameters().items():
            if eqx.is_array(getattr(truth_rhs, name)) and value != 0:
                got = float(getattr(fitted.rhs, name))
                metrics[f"{name}"] = got
                metrics[f"{name}_relative_error"] = abs(got - value) / abs(value)
    return metrics


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
    logger = ctx.logger()
    metrics, ys = run_simulation(cfg, ctx)
    logger.video("pde/gray_scott", normalise(ys[:, 1:2], per_channel=False), 0)
    logger.scalar("pde/components", metrics["components"], 0)
    logger.close()
    return {k: metrics[k] for k in ("seconds", "components", "wavelength")}
