"""Commands: ``diffdyn oscillators kuranet``, ``diffdyn oscillators kuramoto`` and the
quickstart part ``kuranet``."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from diffdyn.common import plot_curves
from diffdyn.common.cli import RunContext, command, quickstart_part

from . import _experiments as ex
from . import _figures as figures
from ._kuramoto import Kuramoto, order_parameter, simulate

__all__ = ["KuraNetRunConfig", "KuramotoConfig", "run_kuranet", "run_kuramoto"]


def _options_class() -> type:
    """Every `ExperimentConfig` field as an optional override (None = the preset's)."""
    hints = typing.get_type_hints(ex.ExperimentConfig)
    fields: list[Any] = [
        (
            "experiment",
            Literal[tuple(ex.EXPERIMENTS)],  # type: ignore[misc]
            dataclasses.field(default="global", metadata={"help": "preset to start from"}),
        )
    ]
    for f in dataclasses.fields(ex.ExperimentConfig):
        if f.name == "name":
            continue
        help_text = f.metadata.get("help", "") + " (default: the preset's)"
        fields.append(
            (
                f.name,
                hints[f.name] | None,
                dataclasses.field(default=None, metadata={"help": help_text}),
            )
        )
    return dataclasses.make_dataclass("KuraNetRunConfig", fields, frozen=True)


KuraNetRunConfig = _options_class()
KuraNetRunConfig.__doc__ = "An experiment preset and any field of it overridden."
KuraNetRunConfig.__module__ = __name__


def resolve(cfg: Any, quick: bool = False) -> ex.ExperimentConfig:
    """The preset ``cfg.experiment`` with the non-None fields of ``cfg`` replacing its own."""
    overrides = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    return ex.configure_experiment(overrides.pop("experiment"), quick=quick, **overrides)


def _example_phases(result: dict[str, Any], cfg: ex.ExperimentConfig, out: Path) -> None:
    art = result["artifacts"]
    dt = cfg.alpha
    long_t, long_c = art.get("long_trained"), art.get("long_control")
    if long_t is not None:
        figures.order_parameter_plot(
            {"trained": long_t["order_parameter"], "control": long_c["order_parameter"]},
            out / "figures" / "order_parameter.png",
            dt=dt,
            title=f"{cfg.name}: R(t) on held-out networks",
        )
        ex_t = long_t["example"]
        order = ex_t["x"][:, 1] if cfg.features == "oscillator" else ex_t["labels"]
        for label, run in (("trained", long_t), ("control", long_c)):
            figures.phase_raster(
                run["example"]["phases"],
                out / "figures" / f"phases_{label}.png",
                dt=dt,
                order=order,
                title=f"{cfg.name} ({label})",
            )
        trained = art["trained"]
        x = jnp.asarray(ex_t["x"])
        cols = [1] if cfg.features == "oscillator" else None
        figures.coupling_vs_distance(
            trained(x), x, out / "figures" / "coupling_vs_distance.png", columns=cols
        )
    plot_curves({"train": art["losses"]}, out / "figures" / "train_loss.png", ylabel="loss")
    if cfg.features == "image":
        small = dataclasses.replace(cfg, image_width=min(cfg.image_width, 24))
        rgb, _ = ex.load_kuranet_image(small)
        _, h, w = rgb.shape
        yy, xx = np.meshgrid(np.arange(h) / h, np.arange(w) / w, indexing="ij")
        feats = np.concatenate([rgb, xx[None], yy[None]], 0).reshape(5, -1).T
        task = ex.KuraNetTask(cfg, h * w, cfg.eval_burn_in, cfg.eval_window)
        th = task.phases(art["trained"], jnp.asarray(feats), jax.random.key(0))
        figures.phase_map(np.asarray(th[-1]), (h, w), out / "figures" / "phase_map.png", image=rgb)


@command("oscillators", "kuranet", KuraNetRunConfig)
def run_kuranet(cfg: Any, ctx: RunContext) -> dict[str, Any]:
    """Train KuraNet on an experiment preset and compare it with an untrained control."""
    exp = resolve(cfg, ctx.quick)
    logger = ctx.logger()
    result = ex.train_experiment(
        exp, ctx.key, out=ctx.out, logger=logger, resume=ctx.resume, progress=not ctx.quick
    )
    _example_phases(result, exp, ctx.out)
    logger.close()
    return {k: v for k, v in result.items() if k != "artifacts"}


@dataclasses.dataclass(frozen=True)
class KuramotoConfig:
    """Simulate a Kuramoto network and plot its phases and R(t)."""

    n: int = dataclasses.field(default=200, metadata={"help": "oscillators"})
    coupling: float = dataclasses.field(default=2.0, metadata={"help": "K of all-to-all K/N"})
    coupling_file: str = dataclasses.field(
        default="", metadata={"help": ".npy coupling matrix [N, N] (overrides n, coupling)"}
    )
    omega: Literal["zero", "uniform1", "uniform2"] = dataclasses.field(
        default="uniform1", metadata={"help": "natural frequencies"}
    )
    field: float = dataclasses.field(default=0.0, metadata={"help": "external field h (all)"})
    delay: int = dataclasses.field(default=0, metadata={"help": "max delay (steps); uniform"})
    dt: float = dataclasses.field(default=0.1, metadata={"help": "step"})
    steps: int = dataclasses.field(default=1000, metadata={"help": "steps"})
    solver: str = dataclasses.field(default="euler", metadata={"help": "fixed-step solver"})
    initial_phase: Literal["zero", "uniform"] = dataclasses.field(
        default="uniform", metadata={"help": "theta(0) = 0 or ~ U(0, 2 pi)"}
    )


@command("oscillators", "kuramoto", KuramotoConfig)
def run_kuramoto(cfg: KuramotoConfig, ctx: RunContext) -> dict[str, Any]:
    """Simulate a Kuramoto network; write phases.npy, a phase raster and R(t)."""
    if cfg.coupling_file:
        path = Path(cfg.coupling_file)
        if not path.is_file():
            raise ValueError(f"coupling_file {cfg.coupling_file!r} does not exist")
        k = jnp.asarray(np.load(path), jnp.float32)
        if k.ndim != 2 or k.shape[0] != k.shape[1]:
            raise ValueError(f"coupling_file must hold a square matrix; got shape {k.shape}")
        n = k.shape[0]
    else:
        if cfg.n < 2:
            raise ValueError(f"n must be >= 2; got {cfg.n}")
        n = cfg.n
        k = jnp.full((n, n), cfg.coupling / n)
    k_omega, k_theta, k_delay = jax.random.split(ctx.key, 3)
    omega = ex.sample_distribution(k_omega, cfg.omega, n)
    delays = jax.random.randint(k_delay, (n,), 0, cfg.delay + 1) if cfg.delay > 0 else None
    field = Kuramoto(k, omega, jnp.full((n,), cfg.field), delays)
    if cfg.initial_phase == "zero":
        theta0 = jnp.zeros((n,))
    else:
        theta0 = jax.random.uniform(k_theta, (n,), maxval=2 * jnp.pi)
    phases = simulate(
        field, theta0, dt=cfg.dt, steps=cfg.steps, solver=cfg.solver, max_delay=max(cfg.delay, 0)
    )
    r = np.asarray(order_parameter(phases))
    np.save(ctx.path("phases.npy"), np.asarray(phases))
    figures.phase_raster(phases, ctx.path("figures/phases.png"), dt=cfg.dt, order=omega)
    figures.order_parameter_plot({"R": r}, ctx.path("figures/order_parameter.png"), dt=cfg.dt)
    return {"final_R": float(r[-1]), "mean_R_second_half": float(r[len(r) // 2 :].mean()), "n": n}


@quickstart_part("kuranet", order=40)
def quickstart_kuranet(ctx: RunContext) -> dict[str, Any]:
    """A short KuraNet training on the global-synchrony task (small network)."""
    exp = dataclasses.replace(
        ex.quick_experiment(ex.get_experiment("global")),
        steps=60,
        lr=0.02,
        eval_window=200,
        size_eval=(200,),
    )
    ctx.out.mkdir(parents=True, exist_ok=True)
    logger = ctx.logger()
    result = ex.train_experiment(exp, ctx.key, out=ctx.out, logger=logger)
    _example_phases(result, exp, ctx.out)
    logger.close()
    keys = ("train_loss_final", "long_loss_trained", "long_loss_control", "steps_per_second")
    return {k: result[k] for k in keys}
