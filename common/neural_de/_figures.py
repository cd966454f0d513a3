r"""Figures of neural differential equations trained on point data.

Each function returns a matplotlib figure (save it with `save_figure`); the training tasks
turn the same figures into images for TensorBoard, and `node_fit_figures` writes those of a
``diffdyn node fit`` run.

- `decision_boundary_figure`: a classifier's class probabilities over the plane, with the
  points it is scored on;
- `flow_figure`: trajectories $y(t)$, $t \in [0, t_1]$, of an `ODEClassifier`: in the plane
  of the first two state coordinates for 2-D inputs, else the first coordinate against $t$;
- `density_figure`: a density model's $p(x)$ over the plane;
- `sample_figure`: samples of a density model beside the data;
- `training_figure`: the training loss per step and the validation loss.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._plotting import figure, plot_training, save_figure

__all__ = [
    "decision_boundary_figure",
    "flow_figure",
    "density_figure",
    "sample_figure",
    "node_fit_figures",
]

_CLASS_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple", "tab:brown")


def _colour(k: int) -> str:
    return _CLASS_COLOURS[k % len(_CLASS_COLOURS)]


def _plane(x: Any, resolution: int, margin: float = 0.5) -> tuple[np.ndarray, ...]:
    """A ``resolution x resolution`` grid around the points ``x [N, 2]``."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"points must be [N, 2] to be drawn in the plane; got {x.shape}")
    lo, hi = x.min(0) - margin, x.max(0) + margin
    gx, gy = np.meshgrid(
        np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    )
    return gx, gy, np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32)


@eqx.filter_jit
def _probabilities(model: Any, points: Array) -> Array:
    return jax.nn.softmax(jax.vmap(model)(points), axis=-1)


@eqx.filter_jit
def _log_density(model: Any, points: Array, key: PRNGKeyArray) -> Array:
    return jax.vmap(model.log_prob)(points, jax.random.split(key, points.shape[0]))


@eqx.filter_jit
def _samples(model: Any, keys: Array) -> Array:
    return jax.vmap(model.sample)(keys)


@eqx.filter_jit
def _trajectories(model: Any, x: Array, ts: Array) -> Array:
    return jax.vmap(lambda v: model.trajectory(v, ts))(x)


def decision_boundary_figure(
    model: Any, x: Any, y: Any, *, title: str = "decision boundary", resolution: int = 80
) -> Any:
    """A classifier ``model`` (one input ``[2]`` -> logits ``[K]``) over the plane around the
    points ``x [N, 2]`` with labels ``y [N]``: $p(\\text{class } 1)$ for two classes, else the
    predicted class, with a colour bar; the points coloured by their labels."""
    gx, gy, points = _plane(x, resolution)
    probs = np.asarray(_probabilities(model, jnp.asarray(points)))
    x, y = np.asarray(x), np.asarray(y)
    classes = probs.shape[-1]
    fig, ax = figure(figsize=(5.5, 4.2))
    if classes == 2:
        field = ax.contourf(
            gx, gy, probs[:, 1].reshape(gx.shape), levels=np.linspace(0, 1, 11), cmap="coolwarm"
        )
        fig.colorbar(field, ax=ax, label="p(class 1)")
    else:
        levels = np.arange(classes + 1) - 0.5
        field = ax.contourf(
            gx, gy, probs.argmax(-1).reshape(gx.shape), levels=levels, cmap="tab10", alpha=0.5
        )
        fig.colorbar(field, ax=ax, label="predicted class", ticks=np.arange(classes))
    for k in np.unique(y):
        pts = x[y == k]
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=6,
            color=_colour(int(k)),
            edgecolors="k",
            linewidths=0.2,
            label=f"class {int(k)}",
        )
    ax.legend(loc="upper right", fontsize="small")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)
    return fig


def flow_figure(
    model: Any, x: Any, y: Any, *, points: int = 64, steps: int = 20, title: str = ""
) -> Any:
    """Trajectories of an `ODEClassifier` from up to ``points`` of the inputs ``x [N, D]``,
    coloured by their labels (or by the sign of their targets) ``y``: in the plane of the first
    two state coordinates when $D = 2$ (start points marked), else the first coordinate
    against $t$."""
    x, y = np.asarray(x), np.asarray(y)
    every = max(1, len(x) // points)
    x, y = x[::every], y[::every]
    if y.ndim == 2:  # regression targets: grouped by their sign
        groups = (y[:, 0] > 0).astype(int)
        names = {0: "target <= 0", 1: "target > 0"}
    else:
        groups = y.astype(int)
        names = {int(k): f"class {int(k)}" for k in np.unique(groups)}
    ts = jnp.linspace(0.0, model.t1, steps)
    traj = np.asarray(_trajectories(model, jnp.asarray(x), ts))
    fig, ax = figure(figsize=(5.5, 4.2))
    plane = x.shape[1] == 2 and traj.shape[-1] >= 2
    for k in np.unique(groups):
        for i, path in enumerate(traj[groups == k]):
            label = names[int(k)] if i == 0 else None
            if plane:
                ax.plot(path[:, 0], path[:, 1], color=_colour(int(k)), lw=0.6, label=label)
            else:
                ax.plot(np.asarray(ts), path[:, 0], color=_colour(int(k)), lw=0.8, label=label)
        if plane:
            starts = traj[groups == k][:, 0]
            ax.scatter(starts[:, 0], starts[:, 1], s=6, color=_colour(int(k)), marker="o")
    if plane:
        ax.set_xlabel("$y_1$")
        ax.set_ylabel("$y_2$")
        ax.set_title(title or "flows of the state (first two coordinates; dots: t = 0)")
    else:
        ax.set_xlabel("t")
        ax.set_ylabel("$y_1(t)$")
        ax.set_title(title or "trajectories of the first state coordinate")
    ax.legend(loc="best", fontsize="small")
    return fig


def density_figure(
    model: Any,
    x: Any,
    *,
    key: PRNGKeyArray,
    title: str = "learned density",
    resolution: int = 60,
) -> Any:
    """$p(x) = \\exp \\log p(x)$ of a density model (``model.log_prob(x, key)``) over the
    plane around the points ``x [N, 2]``, with a colour bar; ``key`` draws Hutchinson
    noise where the model uses it."""
    gx, gy, points = _plane(x, resolution)
    log_p = np.asarray(_log_density(model, jnp.asarray(points), key))
    fig, ax = figure(figsize=(5.5, 4.2))
    image = ax.imshow(
        np.exp(log_p).reshape(gx.shape),
        origin="lower",
        extent=(gx.min(), gx.max(), gy.min(), gy.max()),
        aspect="auto",
        cmap="viridis",
        interpolation="nearest",
    )
    fig.colorbar(image, ax=ax, label="p(x)")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)
    return fig


def sample_figure(model: Any, x: Any, *, key: PRNGKeyArray, n: int = 512) -> Any:
    """``n`` samples of a density model (``model.sample(key) -> [2]``) beside the data
    ``x [N, 2]``."""
    x = np.asarray(x)
    samples = np.asarray(_samples(model, jax.random.split(key, n)))
    fig, ax = figure(figsize=(5, 4.2))
    ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.4, label="data")
    ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.4, label="model samples")
    ax.legend(loc="upper right", fontsize="small")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title("data and samples")
    return fig


def node_fit_figures(fit: Any, folder: str | os.PathLike, *, key: PRNGKeyArray) -> list[Path]:
    """Write the figures of a `NodeFitResult` (of `fit_node`) under ``folder``: the
    decision boundary and the flows of a classifier (the flows alone for regression), or the
    density and samples of a CNF, and the training curves. Returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, (x, y) = fit.model, fit.data
    paths = []
    if fit.config.model == "cnf":
        k_density, k_samples = jax.random.split(key)
        paths.append(save_figure(density_figure(model, x, key=k_density), folder / "density.png"))
        paths.append(save_figure(sample_figure(model, x, key=k_samples), folder / "samples.png"))
    else:
        if fit.config.dataset != "crossing":
            figure_ = decision_boundary_figure(model, x, y)
            paths.append(save_figure(figure_, folder / "decision_boundary.png"))
        paths.append(save_figure(flow_figure(model, x, y), folder / "flows.png"))
    paths.append(plot_training(fit.train, folder / "loss.png"))
    return paths


def _image(fig: Any) -> np.ndarray:
    """The figure rendered as an RGB image ``[3, H, W]`` in ``[0, 1]`` (for TensorBoard);
    closes it."""
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba(), dtype=np.float32)
    plt.close(fig)
    return np.moveaxis(rgba[..., :3], -1, 0) / 255.0
