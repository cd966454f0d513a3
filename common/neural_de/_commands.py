"""``diffdyn node fit``: train a neural ODE classifier / regressor or a CNF on a toy dataset.

Models (``--model``): ``node`` (plain), ``anode`` (zero augmentation), ``input-anode``
(learned input layer), ``depth`` (time as input), ``galerkin`` (Galerkin weights), ``sonode``
(second order), ``cnf`` (continuous normalising flow density). Datasets (``--dataset``):
moons, circles, spirals, gaussians, crossing (1-D regression x -> -x; the classifiers use
``readout=project`` there so that the map is a pure flow). Outputs under ``--out``:
TensorBoard scalars, ``model.eqx``/``best.eqx``, figures (decision boundary and flows, or
density and samples, and the loss curve), ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._augment import ArrayAugmenter
from .._optim import make_optimiser
from .._plotting import figure, plot_curves, save_figure
from .._trainer import TrainConfig, Trainer
from ..cli import RunContext, command, quickstart_part
from ._datasets import make
from ._models import DensityCNF, ODEClassifier

__all__ = ["NodeFitConfig", "fit", "PRESETS"]

#: model name -> (augment, field)
PRESETS = {
    "node": ("none", "mlp"),
    "anode": ("zero", "mlp"),
    "input-anode": ("input", "mlp"),
    "depth": ("none", "time"),
    "galerkin": ("none", "galerkin"),
    "sonode": ("none", "second-order"),
}


@dataclasses.dataclass(frozen=True)
class NodeFitConfig:
    """Configuration of ``diffdyn node fit``."""

    model: Literal["node", "anode", "input-anode", "depth", "galerkin", "sonode", "cnf"] = (
        dataclasses.field(default="anode", metadata={"help": "which neural DE to train"})
    )
    dataset: Literal["moons", "circles", "spirals", "gaussians", "crossing"] = dataclasses.field(
        default="moons", metadata={"help": "toy dataset"}
    )
    n_samples: int = dataclasses.field(default=1024, metadata={"help": "training samples"})
    noise: float = dataclasses.field(default=0.1, metadata={"help": "dataset noise"})
    augment_dim: int = dataclasses.field(default=2, metadata={"help": "augmented dimensions"})
    width: int = dataclasses.field(default=32, metadata={"help": "hidden width of the field"})
    depth: int = dataclasses.field(default=2, metadata={"help": "hidden layers of the field"})
    t1: float = dataclasses.field(default=1.0, metadata={"help": "integration time"})
    solver: str = dataclasses.field(default="tsit5", metadata={"help": "ODE solver"})
    rtol: float = dataclasses.field(default=1e-3, metadata={"help": "relative tolerance"})
    atol: float = dataclasses.field(default=1e-5, metadata={"help": "absolute tolerance"})
    adjoint: str = dataclasses.field(
        default="recursive-checkpoint",
        metadata={"help": "recursive-checkpoint, backsolve or direct"},
    )
    trace: Literal["exact", "hutchinson"] = dataclasses.field(
        default="exact", metadata={"help": "CNF trace estimator"}
    )
    steps: int = dataclasses.field(default=1000, metadata={"help": "optimisation steps"})
    batch_size: int = dataclasses.field(default=256, metadata={"help": "minibatch size"})
    learning_rate: float = dataclasses.field(default=1e-2, metadata={"help": "Adam step size"})
    log_every: int = dataclasses.field(default=50, metadata={"help": "logging interval"})


def _classification_loss(model: Any, batch: Any, key: Any) -> Any:
    x, y = batch
    logits = jax.vmap(model)(x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == y)}


def _regression_loss(model: Any, batch: Any, key: Any) -> Any:
    x, y = batch
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def _density_loss(model: Any, batch: Any, key: Any) -> Any:
    x = batch[0]
    keys = jax.random.split(key, x.shape[0])
    return -jnp.mean(jax.vmap(model.log_prob)(x, keys))


def _grid(x: np.ndarray, n: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi = x.min(0) - 0.5, x.max(0) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n))
    return gx, gy, np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32)


def _classifier_figures(model: ODEClassifier, x: Any, y: Any, ctx: RunContext) -> list[str]:
    x, y = np.asarray(x), np.asarray(y)
    paths = []
    ts = jnp.linspace(0.0, model.t1, 20)
    sub = jnp.asarray(x[:: max(1, len(x) // 64)])
    traj = np.asarray(jax.vmap(lambda v: model.trajectory(v, ts))(sub))
    colour = y[:: max(1, len(x) // 64)]
    fig, ax = figure(figsize=(5, 4))
    if x.shape[1] == 2:
        gx, gy, pts = _grid(x)
        logits = np.asarray(jax.jit(jax.vmap(model))(jnp.asarray(pts)))
        ax.contourf(gx, gy, logits.argmax(-1).reshape(gx.shape), alpha=0.3, cmap="coolwarm")
        ax.scatter(x[:, 0], x[:, 1], c=y, s=4, cmap="coolwarm")
        ax.set_title("decision boundary")
        paths.append(str(save_figure(fig, ctx.path("figures/decision_boundary.png"))))
        fig, ax = figure(figsize=(5, 4))
        for p, c in zip(traj, colour, strict=True):
            ax.plot(p[:, 0], p[:, 1], color="tab:red" if c else "tab:blue", lw=0.6)
        ax.set_title("flows of the state (first two coordinates)")
    else:
        for p, c in zip(traj, colour, strict=True):
            ax.plot(np.asarray(ts), p[:, 0], color="tab:red" if c > 0 else "tab:blue", lw=0.8)
        ax.set_xlabel("t")
        ax.set_title("trajectories of the first coordinate")
    paths.append(str(save_figure(fig, ctx.path("figures/flows.png"))))
    return paths


def _density_figures(model: DensityCNF, x: Any, key: Any, ctx: RunContext) -> list[str]:
    x = np.asarray(x)
    gx, gy, pts = _grid(x, 40)
    logp = np.asarray(jax.jit(jax.vmap(model.log_prob))(jnp.asarray(pts)))
    fig, ax = figure(figsize=(5, 4))
    ax.contourf(gx, gy, np.exp(logp).reshape(gx.shape), levels=30, cmap="viridis")
    ax.set_title("learned density")
    paths = [str(save_figure(fig, ctx.path("figures/density.png")))]
    samples = np.asarray(jax.jit(jax.vmap(model.sample))(jax.random.split(key, 512)))
    fig, ax = figure(figsize=(5, 4))
    ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.4, label="data")
    ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.4, label="samples")
    ax.legend()
    paths.append(str(save_figure(fig, ctx.path("figures/samples.png"))))
    return paths


def _check(cfg: NodeFitConfig) -> None:
    if cfg.model == "cnf" and cfg.dataset == "crossing":
        raise ValueError("model 'cnf' needs a 2-D dataset; got dataset 'crossing'")
    for name in ("n_samples", "batch_size", "steps", "width"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"config key {name!r} must be >= 1; got {getattr(cfg, name)}")
    if cfg.batch_size > cfg.n_samples:
        raise ValueError(
            f"config key 'batch_size' must be <= n_samples = {cfg.n_samples}; got {cfg.batch_size}"
        )


@command("node", "fit", NodeFitConfig)
def fit(cfg: NodeFitConfig, ctx: RunContext) -> dict[str, Any]:
    """Train a neural ODE / ANODE / CNF on a toy dataset."""
    _check(cfg)
    k_data, k_test, k_model, k_train, k_fig = jax.random.split(ctx.key, 5)
    # the Gaussian mixture has its own spread (std); crossing is noise-free by definition
    kw = {} if cfg.dataset in ("gaussians", "crossing") else {"noise": cfg.noise}
    x, y = make(cfg.dataset, k_data, cfg.n_samples, **kw)
    xt, yt = make(cfg.dataset, k_test, cfg.n_samples, **kw)
    solve_kw = dict(solver=cfg.solver, rtol=cfg.rtol, atol=cfg.atol, adjoint=cfg.adjoint)
    if cfg.model == "cnf":
        model: Any = DensityCNF(
            2, cfg.width, cfg.depth, trace=cfg.trace, t1=cfg.t1, key=k_model, **solve_kw
        )
        loss_fn: Any = _density_loss
        data: Any = (x,)
    else:
        augment, field = PRESETS[cfg.model]
        regression = cfg.dataset == "crossing"
        model = ODEClassifier(
            x.shape[1],
            1 if regression else int(y.max()) + 1,
            augment=augment,
            augment_dim=cfg.augment_dim if augment != "none" else 0,
            field=field,
            width=cfg.width,
            depth=cfg.depth,
            readout="project" if regression else "linear",
            t1=cfg.t1,
            key=k_model,
            **solve_kw,
        )
        loss_fn = _regression_loss if regression else _classification_loss
        data = (x, y)
    logger = ctx.logger()
    trainer = Trainer(
        loss_fn,
        make_optimiser("adam", cfg.learning_rate),
        ArrayAugmenter(cfg.batch_size),
        config=TrainConfig(steps=cfg.steps, log_every=cfg.log_every, progress=False),
        logger=logger,
        out=ctx.out,
    )
    start = time.perf_counter()
    result = trainer.fit(model, data, k_train, resume=ctx.resume)
    seconds = time.perf_counter() - start
    model = result.model
    metrics: dict[str, Any] = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "final_loss": result.final_loss,
        "steps": result.steps,
        "parameters": model.num_parameters(),
        "seconds": seconds,
    }
    eval_loss = eqx.filter_jit(loss_fn)
    if cfg.model == "cnf":
        metrics["test_nll"] = float(eval_loss(model, (xt,), k_fig))
        figures = _density_figures(model, x, k_fig, ctx)
    elif cfg.dataset == "crossing":
        metrics["test_mse"] = float(eval_loss(model, (xt, yt), None))
        figures = _classifier_figures(model, x, y[:, 0], ctx)
    else:
        test_loss, aux = eval_loss(model, (xt, yt), None)
        metrics["test_loss"] = float(test_loss)
        metrics["test_accuracy"] = float(aux["accuracy"])
        figures = _classifier_figures(model, x, y, ctx)
        logger.scalar("test/accuracy", metrics["test_accuracy"], result.steps)
    figures.append(str(plot_curves({"train loss": result.losses}, ctx.path("figures/loss.png"))))
    for name, value in metrics.items():
        if isinstance(value, float):
            logger.scalar(f"final/{name}", value, result.steps)
    logger.flush()
    metrics["figures"] = figures
    return metrics


@quickstart_part("node", order=60)
def quickstart(ctx: RunContext) -> dict[str, Any]:
    """ANODE on moons: a short training run, decision boundary and flow figures."""
    cfg = NodeFitConfig(
        model="anode",
        dataset="moons",
        n_samples=512,
        steps=150 if ctx.quick else 400,
        batch_size=128,
        width=16,
        log_every=50,
    )
    metrics = fit(cfg, ctx)
    return {k: metrics[k] for k in ("test_accuracy", "final_loss", "seconds")}
