"""Figures of phase networks: phase rasters, R(t), coupling vs feature distance, phase maps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from diffdyn.common import figure, save_figure

__all__ = ["phase_raster", "order_parameter_plot", "coupling_vs_distance", "phase_map"]


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
    ax.set_ylabel("node")
    if title:
        ax.set_title(title)
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
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def coupling_vs_distance(
    coupling: Any, features: Any, path: str | os.PathLike, *, columns: Any = None
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
    ax.scatter(dist[off], k[off], s=2, alpha=0.3)
    ax.set_xlabel("feature distance |x_i - x_j|")
    ax.set_ylabel("K_ij")
    return save_figure(fig, path)


def phase_map(
    phases: Any, shape: tuple[int, int], path: str | os.PathLike, image: Any = None
) -> Path:
    """Final phases of an image's pixels as colours (hue = phase), beside the image."""
    import matplotlib.colors as mcolors

    th = np.mod(np.asarray(phases).reshape(shape), 2 * np.pi) / (2 * np.pi)
    hsv = np.stack([th, np.ones_like(th), np.ones_like(th)], -1)
    fig, axes = figure(1, 2 if image is not None else 1, figsize=(8, 4))
    axes = np.atleast_1d(axes)
    axes[-1].imshow(mcolors.hsv_to_rgb(hsv), interpolation="nearest")
    axes[-1].set_title("phase")
    if image is not None:
        axes[0].imshow(np.asarray(image).transpose(1, 2, 0))
        axes[0].set_title("image")
    for ax in axes:
        ax.axis("off")
    return save_figure(fig, path)
