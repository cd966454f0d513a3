"""Figures of an NCA: its perception filters and update weights, and its channels over time.

- `first_layer_blocks`: the first-layer weights split by perception filter,
  ``W_1 = [W^(f_0) | W^(f_1) | ...]`` with ``W^(f) ∈ R^{hidden x C}``;
- `plot_perception`: the fixed 3x3 kernels and ``‖W^(f)[:, c]‖₂``, how strongly the
  trained network listens to filter ``f`` of channel ``c``;
- `plot_weights`: heatmaps of every weight matrix of the update network;
- `plot_channels`: every channel (rows) at several times (columns).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from diffdyn.common import figure, save_figure

from ._model import AbstractNCA

__all__ = [
    "first_layer_blocks",
    "weight_matrices",
    "plot_perception",
    "plot_weights",
    "plot_channels",
]


def weight_matrices(model: AbstractNCA) -> dict[str, np.ndarray]:
    """Every 2-D (or KAN 3-D, summed in ``|.|`` over the basis) weight of the update network,
    by name."""
    import equinox as eqx
    import jax

    out: dict[str, np.ndarray] = {}
    params = eqx.filter(model, model.trainable_filter())
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = jax.tree_util.keystr(path)
        a = np.asarray(leaf)
        if a.ndim == 2:
            out[name] = a
        elif a.ndim == 3:
            out[name] = np.abs(a).sum(axis=-1)
    return out


def first_layer_blocks(model: AbstractNCA) -> dict[str, np.ndarray]:
    """``{filter: W^(f) [hidden, C]}`` from the first update layer (the first scale's net for
    multi-scale models)."""
    first = next(iter(weight_matrices(model).values()))
    c = model.channels
    return {f: first[:, k * c : (k + 1) * c] for k, f in enumerate(model.filters)}


def plot_perception(model: AbstractNCA, path: str | os.PathLike) -> Path:
    """Top row: the fixed 3x3 perception kernels; bottom: ``‖W^(f)[:, c]‖₂`` per filter and
    channel (the learned use of each perceived feature)."""
    kernels = np.asarray(model.perception.kernel)[: len(model.perception.conv_filters), 0]
    names = model.perception.conv_filters
    blocks = first_layer_blocks(model)
    fig, axes = figure(
        2, max(len(names), 1), figsize=(2.2 * max(len(names), 2), 4.6), squeeze=False
    )
    for i, ax in enumerate(axes[0]):
        if i < len(names):
            k = kernels[i]
            m = max(float(np.abs(k).max()), 1e-12)
            ax.imshow(k, cmap="seismic", vmin=-m, vmax=m)
            ax.set_title(names[i], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    usage = np.stack([np.linalg.norm(b, axis=0) for b in blocks.values()])
    gs = axes[1, 0].get_gridspec()
    for ax in axes[1]:
        ax.remove()
    ax = fig.add_subplot(gs[1, :])
    im = ax.imshow(usage, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(blocks)), list(blocks))
    ax.set_xlabel("channel")
    ax.set_title("‖first-layer weights‖ per filter and channel", fontsize=9)
    fig.colorbar(im, ax=ax)
    return save_figure(fig, path)


def plot_weights(model: AbstractNCA, path: str | os.PathLike) -> Path:
    """One heatmap per weight matrix (symmetric ``seismic`` colour range)."""
    mats = weight_matrices(model)
    fig, axes = figure(1, len(mats), figsize=(4 * len(mats), 3.5), squeeze=False)
    for ax, (name, w) in zip(axes[0], mats.items(), strict=True):
        m = max(float(np.abs(w).max()), 1e-12)
        im = ax.imshow(w, aspect="auto", cmap="seismic", vmin=-m, vmax=m)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("in")
        ax.set_ylabel("out")
        fig.colorbar(im, ax=ax)
    return save_figure(fig, path)


def plot_channels(
    frames: Any, path: str | os.PathLike, *, times: Any = None, max_channels: int = 16
) -> Path:
    """Channels (rows, at most ``max_channels``) of ``frames [T, C, H, W]`` at up to 8 times
    (columns), each channel with its own symmetric colour range."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must have shape [T, C, H, W]; got {frames.shape}")
    t_idx = np.unique(np.linspace(0, frames.shape[0] - 1, min(8, frames.shape[0])).astype(int))
    c = min(frames.shape[1], max_channels)
    fig, axes = figure(c, len(t_idx), figsize=(1.3 * len(t_idx), 1.3 * c), squeeze=False)
    for i in range(c):
        m = max(float(np.abs(frames[:, i]).max()), 1e-12)
        for j, t in enumerate(t_idx):
            ax = axes[i, j]
            ax.imshow(frames[t, i], cmap="RdBu_r", vmin=-m, vmax=m)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t={t if times is None else times[t]}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"ch {i}", fontsize=8)
    return save_figure(fig, path)
