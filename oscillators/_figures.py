"""Figures of phase networks (phase rasters, R(t), coupling vs feature distance, phase maps)
and of dynamics discovery (a learnt model against its data, the training MSE, an ablation's
metrics against the varied setting)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from diffdyn.common import figure, plot_training, save_figure

__all__ = [
    "phase_raster",
    "order_parameter_plot",
    "coupling_vs_distance",
    "phase_map",
    "kuranet_figures",
    "discovery_fit_plot",
    "ablation_plot",
]


def phase_raster(
    phases: Any, path: str | os.PathLike, *, dt: float = 1.0, order: Any = None, title: str = ""
) -> Path:
    """Image of $\\theta_i(t) \\bmod 2\\pi$ (cyclic colours), nodes on the y axis
    (sorted by ``order``, e.g. the natural frequencies or class labels)."""
    th = np.mod(np.asarray(phases), 2 * np.pi)
    if order is not None:
        th = th[:, np.argsort(np.asarray(order), kind="stable")]
    fig, ax = figure(figsize=(6, 3.5))
    im = ax.imshow(
        th.T,
        aspect="auto",
        cmap="hsv",
        vmin=0,
        vmax=2 * np.pi,
        interpolation="nearest",
        extent=(0, dt * (th.shape[0] - 1), th.shape[1], 0),
    )
    fig.colorbar(im, ax=ax, label="phase")
    ax.set_xlabel("t")
    ax.set_ylabel("node" if order is None else "node (sorted)")
    ax.set_title(title or "phases")
    return save_figure(fig, path)


def order_parameter_plot(
    curves: dict[str, Any], path: str | os.PathLike, *, dt: float = 1.0, title: str = ""
) -> Path:
    """$R(t)$ of several runs (e.g. trained vs control) on one axis."""
    fig, ax = figure(figsize=(6, 3.5))
    for name, r in curves.items():
        r = np.asarray(r)
        ax.plot(dt * np.arange(len(r)), r, label=name)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("t (from the start of the window)")
    ax.set_ylabel("R(t)")
    ax.legend()
    ax.set_title(title or "order parameter")
    return save_figure(fig, path)


def coupling_vs_distance(
    coupling: Any,
    features: Any,
    path: str | os.PathLike,
    *,
    columns: Any = None,
    xlabel: str = "feature distance |x_i - x_j|",
    title: str = "",
) -> Path:
    """Scatter of $K_{ij}$ against $\\|x_i - x_j\\|$ (``columns`` selects
    feature columns, e.g. only $\\omega$)."""
    k = np.asarray(coupling)
    x = np.asarray(features)
    if columns is not None:
        x = x[:, list(columns)]
    dist = np.linalg.norm(x[:, None] - x[None], axis=-1)
    off = ~np.eye(k.shape[0], dtype=bool)
    fig, ax = figure(figsize=(5, 4))
    ax.scatter(dist[off], k[off], s=2, alpha=0.3, label="node pairs i != j")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("K_ij")
    ax.set_title(title or "coupling vs feature distance")
    ax.legend(loc="upper right")
    return save_figure(fig, path)


def phase_map(
    phases: Any, shape: tuple[int, int], path: str | os.PathLike, image: Any = None
) -> Path:
    """Final phases of an image's pixels as colours (hue = phase, with a colour bar), beside
    the image."""
    import matplotlib.cm as mcm
    import matplotlib.colors as mcolors

    th = np.mod(np.asarray(phases).reshape(shape), 2 * np.pi) / (2 * np.pi)
    hsv = np.stack([th, np.ones_like(th), np.ones_like(th)], -1)
    fig, axes = figure(1, 2 if image is not None else 1, figsize=(8, 4))
    axes = np.atleast_1d(axes)
    axes[-1].imshow(mcolors.hsv_to_rgb(hsv), interpolation="nearest")
    axes[-1].set_title("final phase")
    hue = mcm.ScalarMappable(mcolors.Normalize(0, 2 * np.pi), "hsv")
    fig.colorbar(hue, ax=axes[-1], label="phase", fraction=0.046)
    if image is not None:
        axes[0].imshow(np.asarray(image).transpose(1, 2, 0), interpolation="nearest")
        axes[0].set_title("image")
    for ax in axes:
        ax.axis("off")
    return save_figure(fig, path)


def kuranet_figures(result: Any, folder: str | os.PathLike) -> dict[str, Path]:
    """Every figure of a KuraNet experiment (an `ExperimentResult`) in ``folder``: training
    and validation losses, $R(t)$ and phase rasters of a held-out network (trained vs
    control), the learned coupling against the feature distance and, for an image, the
    phase map of the whole picture."""
    folder = Path(folder)
    cfg = result.config
    written = {
        "training": plot_training(
            result.training,
            folder / "training.png",
            title=f"{cfg.name}: training",
            training_label="training (one draw per step)",
            validation_label="validation (held-out networks)",
            log=False,
        )
    }
    runs = result.evaluations.get("long")
    if runs is not None:
        trained, control = runs["trained"], runs["control"]
        written["order_parameter"] = order_parameter_plot(
            {"trained": trained["order_parameter"], "control": control["order_parameter"]},
            folder / "order_parameter.png",
            dt=cfg.alpha,
            title=f"{cfg.name}: mean R(t) of held-out networks",
        )
        example = trained["example"]
        oscillators = cfg.features == "oscillator"
        order = example["x"][:, 1] if oscillators else example["labels"]
        for label, run in (("trained", trained), ("control", control)):
            written[f"phases_{label}"] = phase_raster(
                run["example"]["phases"],
                folder / f"phases_{label}.png",
                dt=cfg.alpha,
                order=order,
                title=f"{cfg.name} ({label}): a held-out network",
            )
        written["coupling_vs_distance"] = coupling_vs_distance(
            result.trained(jnp.asarray(example["x"])),
            example["x"],
            folder / "coupling_vs_distance.png",
            columns=[1] if oscillators else None,
            xlabel="|omega_i - omega_j|" if oscillators else "feature distance |x_i - x_j|",
            title=f"{cfg.name}: trained couplings",
        )
    if result.phase_map is not None:
        phases = result.phase_map["phases"]
        written["phase_map"] = phase_map(
            phases, phases.shape, folder / "phase_map.png", image=result.phase_map["image"]
        )
    return written


def discovery_fit_plot(
    dataset: Any,
    times: Any,
    prediction: Any,
    path: str | os.PathLike,
    *,
    names: Any = None,
    title: str = "",
    observed: bool = False,
) -> Path:
    """A learnt model against its data, one panel per state variable: the noisy training
    observations of ``dataset`` (a `Dataset`), the clean continuation beyond the training window
    (dotted line at its end) and the model's trajectory ``prediction [T, D]`` at ``times [T]``.
    With ``observed`` (a user's data file) the continuation is drawn as observations too."""
    ys = np.asarray(prediction)
    names = [f"u{i}" for i in range(ys.shape[1])] if names is None else list(names)
    fig, axes = figure(len(names), 1, figsize=(6, 1.9 * len(names)), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(dataset.ts, dataset.ys[:, i], "k.", ms=3, label="data (noisy)")
        if observed:
            ax.plot(
                dataset.ts_extrap, dataset.ys_extrap[:, i], "kx", ms=3, alpha=0.5, label="held out"
            )
        else:
            ax.plot(
                dataset.ts_extrap, dataset.ys_extrap[:, i], "k-", lw=0.8, alpha=0.5, label="truth"
            )
        ax.plot(np.asarray(times), ys[:, i], "tab:red", lw=1.2, label="model")
        ax.axvline(dataset.ts[-1], color="grey", ls=":", label="end of training data")
        ax.set_ylabel(names[i])
        ax.set_title(f"{title}: {names[i]}" if title else names[i], fontsize=9)
        ax.legend(fontsize=6, loc="upper right")
    axes[-1, 0].set_xlabel("t")
    fig.tight_layout()
    return save_figure(fig, path)


#: Axis labels of the settings an ablation varies, and of the metrics it plots.
_ABLATION_LABELS = {
    "train_span": "span of the training window T",
    "dt": "sampling interval Δt",
    "noise": "noise level",
    "width": "hidden width",
    "interp_mse": "interpolation MSE (noisy data)",
    "interp_mse_clean": "interpolation MSE (clean)",
    "extrap_mse": "extrapolation MSE",
    "best_step": "step of the best model",
}


def ablation_plot(
    summary: list[dict[str, Any]],
    path: str | os.PathLike,
    *,
    metrics: tuple[str, ...] = ("interp_mse_clean", "extrap_mse", "best_step"),
) -> Path:
    """The metrics of an ablation against the varied value: one row of panels per
    ``system:model`` target, one panel per metric of ``metrics``, one line per method, each
    point the mean over seeds with its standard error as an error bar (MSEs on a log axis).

    Args:
        summary: the entries of `summarise_results` for the rows of an ablation (each with
            ``vary`` and ``value``).
        path: the PNG to write.
        metrics: the columns of `RESULT_COLUMNS` to plot.
    """
    if not summary or any("value" not in e for e in summary):
        raise ValueError("ablation_plot needs the summary of an ablation (entries with value)")
    vary = summary[0]["vary"]
    targets = list(dict.fromkeys((e["system"], e["model"]) for e in summary))
    methods = list(dict.fromkeys(e["method"] for e in summary))
    fig, axes = figure(
        len(targets),
        len(metrics),
        figsize=(3.6 * len(metrics), 2.8 * len(targets)),
        squeeze=False,
    )
    for row, (system, model) in enumerate(targets):
        for col, metric in enumerate(metrics):
            ax = axes[row, col]
            for i, method in enumerate(methods):
                entries = [
                    e
                    for e in summary
                    if (e["system"], e["model"], e["method"]) == (system, model, method)
                ]
                entries.sort(key=lambda e: e["value"])
                x = np.asarray([e["value"] for e in entries], float)
                y = np.asarray([e[metric] for e in entries], float)
                se = np.nan_to_num(np.asarray([e[f"{metric}_se"] for e in entries], float))
                y = np.where(np.isfinite(y), y, np.nan)  # a failed fit leaves a gap
                seeds = max((e["seeds"] for e in entries), default=0)
                ax.errorbar(
                    x,
                    y,
                    yerr=se,
                    marker="os^Dv"[i % 5],
                    ms=4,
                    capsize=3,
                    label=f"{method} ({seeds} seeds)",
                )
            if metric != "best_step":
                ax.set_yscale("log")
            ax.set_xlabel(_ABLATION_LABELS.get(vary, vary))
            ax.set_ylabel(_ABLATION_LABELS.get(metric, metric))
            ax.set_title(f"{system}, {model}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, title="mean ± s.e.", title_fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
