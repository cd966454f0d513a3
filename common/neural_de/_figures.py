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
- `digit_predictions_figure`: images titled with their true and predicted labels;
- `confusion_figure`: a classifier's confusion matrix;
- `node_accuracy_figure`: accuracies of node classifiers on the splits of a graph's nodes;
- `series_prediction_figure`: an irregularly observed series and a model's predictions of
  its held-out steps;
- `tracking_figure`: trajectories beside the target they track, and their squared error;
- `control_figure`: states and controls of controllers of one plant (e.g. a neural
  controller beside the optimal control);
- `training_figure`: the training loss per step and the validation loss.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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
    "digit_predictions_figure",
    "confusion_figure",
    "node_accuracy_figure",
    "series_prediction_figure",
    "tracking_figure",
    "control_figure",
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


def digit_predictions_figure(
    images: Any, labels: Any, predicted: Any, *, n: int = 16, title: str = ""
) -> Any:
    """The first ``n`` of ``images [N, 1, H, W]`` (or ``[N, H, W]``) in grey, each titled
    ``true -> predicted`` (red where the prediction is wrong)."""
    images, labels, predicted = np.asarray(images), np.asarray(labels), np.asarray(predicted)
    if images.ndim == 4:
        images = images[:, 0]
    if images.ndim != 3 or not len(images) == len(labels) == len(predicted):
        raise ValueError(
            f"images [N, (1,) H, W], labels [N] and predicted [N] must agree; got shapes "
            f"{images.shape}, {labels.shape} and {predicted.shape}"
        )
    n = min(n, len(images))
    cols = min(n, 8)
    rows = -(-n // cols)
    fig, axes = figure(rows, cols, figsize=(1.3 * cols, 1.5 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray_r")
            wrong = labels[i] != predicted[i]
            ax.set_title(
                f"{int(labels[i])} -> {int(predicted[i])}",
                fontsize=9,
                color="tab:red" if wrong else "k",
            )
    correct = float(np.mean(labels[:n] == predicted[:n]))
    fig.suptitle(title or f"test images: true -> predicted ({correct:.0%} right here)")
    return fig


def confusion_figure(
    labels: Any, predicted: Any, *, classes: int | None = None, title: str = ""
) -> Any:
    """The confusion matrix: how many samples of each true class (rows) went to each
    predicted class (columns), counts written in the cells, with the accuracy in the
    title."""
    labels, predicted = np.asarray(labels, int), np.asarray(predicted, int)
    if labels.shape != predicted.shape or labels.ndim != 1:
        raise ValueError(
            f"labels and predicted must be [N] alike; got {labels.shape} and {predicted.shape}"
        )
    k = int(max(labels.max(), predicted.max()) + 1) if classes is None else classes
    counts = np.zeros((k, k), int)
    np.add.at(counts, (labels, predicted), 1)
    fig, ax = figure(figsize=(5.2, 4.4))
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, label="samples")
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                light = counts[i, j] > counts.max() / 2
                ax.text(
                    j,
                    i,
                    str(counts[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="w" if light else "k",
                )
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = float(np.mean(labels == predicted))
    ax.set_title(title or f"confusion matrix (accuracy {accuracy:.1%})")
    return fig


def node_accuracy_figure(
    accuracies: Mapping[str, Mapping[str, float]], *, chance: float | None = None, title: str = ""
) -> Any:
    """Grouped bars of accuracies: ``accuracies[model][split]`` (e.g. train, validation and
    test nodes), with the chance level as a dashed line."""
    models = list(accuracies)
    if not models:
        raise ValueError("accuracies must name at least one model")
    splits = list(accuracies[models[0]])
    fig, ax = figure(figsize=(5.5, 3.8))
    width = 0.8 / len(models)
    for m, name in enumerate(models):
        values = [accuracies[name][split] for split in splits]
        where = np.arange(len(splits)) + (m - (len(models) - 1) / 2) * width
        bars = ax.bar(where, values, width, label=name, color=_colour(m))
        for bar, value in zip(bars, values, strict=True):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                value + 0.01,
                f"{value:.2f}",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    if chance is not None:
        ax.axhline(chance, color="k", ls="--", lw=0.8, label=f"chance ({chance:.2f})")
    ax.set_xticks(np.arange(len(splits)))
    ax.set_xticklabels([f"{split} nodes" for split in splits])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy")
    ax.set_title(title or "node classification accuracy")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def series_prediction_figure(
    ts: Any,
    xs: Any,
    panels: Mapping[str, tuple[Any, Any, Any]],
    *,
    dim: int = 0,
    ylabel: str = "",
) -> Any:
    """One series ``ts [T]``, ``xs [T, D]`` and a model's predictions of it: one panel per
    entry ``name: (context [T, D], targets [T, D], predicted [T, D])`` (bool masks), drawing
    coordinate ``dim``: the context observations (dots), the held-out targets (crosses)
    and the predictions at the observed steps (line, targets ringed)."""
    ts, xs = np.asarray(ts), np.asarray(xs)
    if not panels:
        raise ValueError("panels must hold at least one (context, targets, predicted)")
    fig, axes = figure(1, len(panels), figsize=(5.2 * len(panels), 3.6), sharey=True, squeeze=False)
    for ax, (name, (context, target, predicted)) in zip(axes[0], panels.items(), strict=True):
        context = np.asarray(context)[:, dim]
        target = np.asarray(target)[:, dim]
        predicted = np.asarray(predicted)[:, dim]
        seen = context | target
        ax.plot(ts[seen], predicted[seen], "-", color="tab:blue", lw=1, label="prediction")
        ax.plot(ts[target], predicted[target], "o", mfc="none", color="tab:blue", ms=6)
        ax.plot(ts[context], xs[context, dim], "k.", ms=7, label="context")
        ax.plot(ts[target], xs[target, dim], "x", color="tab:red", ms=7, label="targets")
        ax.set_title(name)
        ax.set_xlabel("t")
    axes[0, 0].set_ylabel(ylabel or f"$x_{dim + 1}$")
    axes[0, -1].legend(loc="best", fontsize="small")
    return fig


def tracking_figure(
    ts: Any, target: Any, trajectories: Mapping[str, Any], *, title: str = ""
) -> Any:
    """Trajectories ``{name: ys [T] or [T, 1]}`` at the times ``ts [T]`` beside the
    ``target [T]`` they track (left), and their squared errors on a log scale, with the
    trapezoid-rule integral of each in the legend (right)."""
    ts, target = np.asarray(ts), np.asarray(target).reshape(-1)
    if not trajectories:
        raise ValueError("trajectories must hold at least one entry")
    fig, (a1, a2) = figure(1, 2, figsize=(10.5, 3.6))
    a1.plot(ts, target, "k--", lw=1.2, label="target")
    for i, (name, ys) in enumerate(trajectories.items()):
        ys = np.asarray(ys).reshape(-1)
        if ys.shape != ts.shape:
            raise ValueError(f"trajectory {name!r} must have {ts.shape[0]} values; got {ys.shape}")
        error = (ys - target) ** 2
        integral = float(np.sum((error[1:] + error[:-1]) / 2 * np.diff(ts)))
        a1.plot(ts, ys, color=_colour(i), lw=1, label=name)
        a2.semilogy(
            ts, np.maximum(error, 1e-12), color=_colour(i), lw=1, label=f"{name}: {integral:.3g}"
        )
    a1.set_xlabel("t")
    a1.set_ylabel("y(t)")
    a1.set_title(title or "trajectory and target")
    a1.legend(loc="best", fontsize="small")
    a2.set_xlabel("t")
    a2.set_ylabel("squared error $(y - r)^2$")
    a2.set_title("tracking error (legend: its integral)")
    a2.legend(loc="best", fontsize="small")
    return fig


def control_figure(
    ts: Any,
    states: Mapping[str, Any],
    controls: Mapping[str, Any],
    *,
    target: Any = None,
    state_names: tuple[str, ...] = (),
    title: str = "",
) -> Any:
    """Controllers of one plant at the times ``ts [T]``: their states ``{name: zs [T, N]}``
    (left; every coordinate, named by ``state_names``, with the ``target [N]`` end state
    marked at the last time) and their controls ``{name: us [T] or [T, M]}`` (right)."""
    ts = np.asarray(ts)
    if not states or not controls:
        raise ValueError("states and controls must hold at least one entry each")
    fig, (a1, a2) = figure(1, 2, figsize=(10.5, 3.6))
    styles = ("-", "--", ":", "-.")
    for i, (name, zs) in enumerate(states.items()):
        zs = np.asarray(zs).reshape(len(ts), -1)
        for j in range(zs.shape[1]):
            coordinate = state_names[j] if j < len(state_names) else f"$z_{j + 1}$"
            a1.plot(
                ts, zs[:, j], styles[i % 4], color=_colour(j), lw=1.2, label=f"{coordinate}, {name}"
            )
    if target is not None:
        target = np.asarray(target).reshape(-1)
        for j, value in enumerate(target):
            a1.plot([ts[-1]], [value], "*", color=_colour(j), ms=10, mec="k")
    for i, (name, us) in enumerate(controls.items()):
        us = np.asarray(us).reshape(len(ts), -1)
        for j in range(us.shape[1]):
            suffix = f" ($u_{j + 1}$)" if us.shape[1] > 1 else ""
            a2.plot(ts, us[:, j], styles[i % 4], color=_colour(i), lw=1.2, label=name + suffix)
    a1.set_xlabel("t")
    a1.set_ylabel("state")
    a1.set_title(title or "trajectory (stars: target end state)")
    a1.legend(loc="best", fontsize="small")
    a2.set_xlabel("t")
    a2.set_ylabel("control u(t)")
    a2.set_title("control")
    a2.legend(loc="best", fontsize="small")
    return fig


@eqx.filter_jit
def _predicted_labels(model: Any, x: Array) -> Array:
    return jnp.argmax(jax.vmap(model)(x), -1)


@eqx.filter_jit
def _node_predictions(model: Any, x: Array) -> Array:
    return jnp.argmax(model(x), -1)


def node_fit_figures(fit: Any, folder: str | os.PathLike, *, key: PRNGKeyArray) -> list[Path]:
    """Write the figures of a `NodeFitResult` (of `fit_node`) under ``folder``: the
    decision boundary and the flows of a classifier (the flows alone for regression), the
    density and samples of a CNF, the confusion matrix and some test images with their
    predicted labels (digits), the accuracy on each split of the nodes beside the per-node
    MLP's (block-model), a test series predicted from its context (irregular series), the
    trajectories before and after training against the target (sinusoid), the trained and
    the optimal control and trajectory (double-integrator), and the training curves.
    Returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, data, cfg = fit.model, fit.data, fit.config
    paths = []
    if cfg.model == "cnf":
        x = data[0]
        k_density, k_samples = jax.random.split(key)
        paths.append(save_figure(density_figure(model, x, key=k_density), folder / "density.png"))
        paths.append(save_figure(sample_figure(model, x, key=k_samples), folder / "samples.png"))
    elif cfg.dataset == "digits":
        images, labels = fit.test_data
        predicted = np.asarray(_predicted_labels(model, images))
        figure_ = confusion_figure(labels, predicted, classes=10)
        paths.append(save_figure(figure_, folder / "confusion.png"))
        figure_ = digit_predictions_figure(images, labels, predicted)
        paths.append(save_figure(figure_, folder / "digits.png"))
    elif cfg.dataset == "block-model":
        x, labels, train = data
        masks = {
            "train": train,
            "validation": fit.task.validation[2],
            "test": fit.test_data[2],
        }
        accuracies = {}
        for name, m in (("graph neural ODE", model), ("per-node MLP", fit.baseline_model)):
            right = np.asarray(_node_predictions(m, x)) == np.asarray(labels)
            accuracies[name] = {s: float(right[np.asarray(k)].mean()) for s, k in masks.items()}
        chance = 1.0 / (int(np.max(np.asarray(labels))) + 1)
        figure_ = node_accuracy_figure(accuracies, chance=chance)
        paths.append(save_figure(figure_, folder / "node_accuracy.png"))
    elif cfg.dataset == "sinusoid":
        paths.append(save_figure(_tracking(fit), folder / "tracking.png"))
    elif cfg.dataset == "double-integrator":
        paths.append(save_figure(_control(fit), folder / "control.png"))
    elif cfg.dataset == "irregular-oscillators":
        ts, xs, mask = fit.test_data
        splits = fit.task.splits(ts[:1], mask[:1])
        panels = {
            f"{name} ({cfg.model})": (
                np.asarray(context[0]),
                np.asarray(target[0]),
                np.asarray(fit.predictions[name][0]),
            )
            for name, (context, target) in splits.items()
        }
        figure_ = series_prediction_figure(ts[0], xs[0], panels, ylabel="position q")
        paths.append(save_figure(figure_, folder / "series.png"))
    else:
        x, y = data
        if cfg.dataset != "crossing":
            figure_ = decision_boundary_figure(model, x, y)
            paths.append(save_figure(figure_, folder / "decision_boundary.png"))
        paths.append(save_figure(flow_figure(model, x, y), folder / "flows.png"))
    paths.append(plot_training(fit.train, folder / "loss.png"))
    return paths


def _tracking(fit: Any) -> Any:
    (y0,) = fit.data
    ts = jnp.linspace(0.0, fit.model.t1, 401)
    target = jax.vmap(fit.task.target)(ts)[:, 0]
    trajectories = {
        "before training": fit.baseline_model.trajectory(y0, ts)[:, 0],
        "after training": fit.model.trajectory(y0, ts)[:, 0],
    }
    return tracking_figure(
        ts, target, trajectories, title=f"{fit.config.model}: y(t) against the target sin t"
    )


def _control(fit: Any) -> Any:
    (z0,) = fit.data
    task = fit.task
    optimum = task.optimum(z0)
    ts = jnp.linspace(0.0, task.t1, 201)
    states, controls = {}, {}
    for name, controller in (("neural", fit.model), ("untrained", fit.baseline_model)):
        states[name], controls[name] = task.rollout(controller, z0, ts)
    # the optimal open-loop control, applied to the plant
    opt = lambda t, z, args: task.a @ z + task.b @ optimum.control(t)  # noqa: E731
    states["optimal"] = task.solve.solve(opt, z0, ts, t0=0.0)
    controls["optimal"] = jax.vmap(optimum.control)(ts)
    return control_figure(
        ts,
        states,
        controls,
        target=task.target,
        state_names=("x", "v"),
        title=f"cost {fit.test['cost']:.3f} (optimal {fit.test['optimal_cost']:.3f})",
    )


def _image(fig: Any) -> np.ndarray:
    """The figure rendered as an RGB image ``[3, H, W]`` in ``[0, 1]`` (for TensorBoard);
    closes it."""
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba(), dtype=np.float32)
    plt.close(fig)
    return np.moveaxis(rgba[..., :3], -1, 0) / 255.0
