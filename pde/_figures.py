"""Figures of PDE simulations and fits: states, trajectories, held-out predictions, losses.

Every panel has a title, axis labels and a colour bar; curves have a legend. Raw images and GIFs
of small grids are upscaled (nearest neighbour) so that cells stay visible. Functions that write
a file return its path; `comparison_video` returns frames for TensorBoard.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from diffdyn.common import figure, normalise, save_figure, save_gif, upscale

__all__ = [
    "comparison_video",
    "save_trajectory_gif",
    "plot_state",
    "plot_held_out",
]


def _channel(frames: np.ndarray, channel: int) -> np.ndarray:
    c = frames.shape[-3]
    if not -c <= channel < c:
        raise ValueError(f"channel must be in [{-c}, {c - 1}] for {c} channels; got {channel}")
    return frames[..., channel % c, :, :]


def comparison_video(truth: Any, prediction: Any, channel: int = -1) -> np.ndarray:
    """Frames ``[T, 1, H', W']`` in ``[0, 1]``: channel ``channel`` of ``truth`` (left) and
    ``prediction`` (right) ``[T, C, H, W]``, on the colour scale of the truth, separated by a
    white line and upscaled."""
    a = _channel(np.asarray(truth, np.float64), channel)
    b = _channel(np.asarray(prediction, np.float64), channel)
    lo, hi = np.nanmin(a), np.nanmax(a)
    scale = hi - lo if hi > lo else 1.0
    a, b = (np.clip((x - lo) / scale, 0.0, 1.0) for x in (a, b))
    gap = np.ones((a.shape[0], a.shape[1], 1))
    frames = np.concatenate([a, gap, b], axis=-1)[:, None]
    return upscale(frames)


def save_trajectory_gif(
    frames: Any, path: str | os.PathLike, channel: int = -1, fps: int = 10
) -> Path:
    """A GIF of channel ``channel`` of ``frames`` ``[T, C, H, W]`` (one colour scale over the
    whole trajectory, upscaled)."""
    shown = _channel(np.asarray(frames), channel)[:, None]
    return save_gif(upscale(normalise(shown, per_channel=False)), path, fps=fps)


def _panel(fig: Any, ax: Any, image: np.ndarray, title: str, **kwargs: Any) -> None:
    im = ax.imshow(image, interpolation="nearest", origin="upper", **kwargs)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x (cell)")
    ax.set_ylabel("y (cell)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def plot_state(
    state: Any,
    path: str | os.PathLike,
    *,
    title: str = "",
    channel_names: list[str] | None = None,
) -> Path:
    """One panel per channel of ``state`` ``[C, H, W]``, each with its colour bar."""
    state = np.asarray(state)
    c = state.shape[0]
    names = channel_names or [f"channel {i}" for i in range(c)]
    if len(names) != c:
        raise ValueError(f"channel_names must have {c} entries; got {names!r}")
    fig, axes = figure(1, c, figsize=(4.2 * c, 3.6), squeeze=False, layout="constrained")
    for i in range(c):
        _panel(fig, axes[0, i], state[i], names[i], cmap="viridis")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_held_out(
    truth: Any,
    prediction: Any,
    ts: Any,
    path: str | os.PathLike,
    *,
    channel: int = -1,
    max_frames: int = 6,
) -> Path:
    """Rows data, model and |model - data| of channel ``channel`` over held-out frames
    ``[V, C, H, W]`` at times ``ts`` (at most ``max_frames`` columns, evenly spaced); data and
    model share one colour scale."""
    truth, prediction, ts = np.asarray(truth), np.asarray(prediction), np.asarray(ts)
    a, b = _channel(truth, channel), _channel(prediction, channel)
    columns = np.unique(np.linspace(0, a.shape[0] - 1, min(max_frames, a.shape[0])).astype(int))
    lo, hi = float(a.min()), float(a.max())
    err = np.abs(b - a)
    err_hi = float(err[columns].max()) or 1.0
    n = len(columns)
    fig, axes = figure(3, n, figsize=(3.8 * n, 9.6), squeeze=False, layout="constrained")
    c = channel % truth.shape[1]
    for j, k in enumerate(columns):
        _panel(fig, axes[0, j], a[k], f"data, channel {c}, t = {ts[k]:g}", vmin=lo, vmax=hi)
        _panel(fig, axes[1, j], b[k], f"model, t = {ts[k]:g}", vmin=lo, vmax=hi)
        _panel(fig, axes[2, j], err[k], f"|model - data|, t = {ts[k]:g}", vmin=0, vmax=err_hi)
    fig.suptitle("held-out frames, rolled out from the last training frame")
    return save_figure(fig, path)
