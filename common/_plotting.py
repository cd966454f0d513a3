"""Figures saved to disk: PNG images and plots, GIF animations of fields.

matplotlib runs with the non-interactive ``Agg`` backend; every function writes a file
atomically and returns its path. Fields are channels-first (``[C, H, W]``, sequences
``[T, C, H, W]``).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._helpers import atomic_write
from ._logger import encode_gif, to_uint8_hwc

__all__ = [
    "figure",
    "save_figure",
    "save_png",
    "save_gif",
    "normalise",
    "channels_to_rgb",
    "plot_curves",
    "plot_training",
    "upscale",
]


def figure(*args: Any, **kwargs: Any) -> Any:
    """A new matplotlib figure and axes (``plt.subplots`` with the Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG (or the format of the suffix) and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fmt = Path(path).suffix.lstrip(".") or "png"
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def normalise(x: Any, per_channel: bool = True) -> np.ndarray:
    """Rescale a ``[..., C, H, W]`` field to ``[0, 1]`` by its min and max (per channel)."""
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(i for i in range(x.ndim) if i != x.ndim - 3) if per_channel else None
    lo = np.nanmin(x, axis=axes, keepdims=per_channel)
    hi = np.nanmax(x, axis=axes, keepdims=per_channel)
    return (x - lo) / np.where(hi > lo, hi - lo, 1.0)


def channels_to_rgb(x: Any, channels: Sequence[int] | None = None) -> np.ndarray:
    """Pick up to three channels of ``[..., C, H, W]`` as RGB (one channel stays grey)."""
    x = np.asarray(x)
    if channels is None:
        channels = list(range(min(3, x.shape[-3])))
    return x[..., list(channels), :, :]


def save_png(image: Any, path: str | os.PathLike, *, scale: int = 1) -> Path:
    """Save a ``[C, H, W]`` / ``[H, W]`` image with values in ``[0, 1]`` as PNG, each pixel
    drawn as a ``scale x scale`` block (for small grids such as cellular automata)."""
    from PIL import Image

    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int; got {scale!r}")
    hwc = to_uint8_hwc(image)
    img = Image.fromarray(hwc[..., 0] if hwc.shape[-1] == 1 else hwc)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def save_gif(frames: Any, path: str | os.PathLike, fps: int = 10) -> Path:
    """Save ``[T, C, H, W]`` / ``[T, H, W]`` frames with values in ``[0, 1]`` as a GIF."""
    data = encode_gif(frames, fps)
    return atomic_write(path, lambda f: f.write(data))


def plot_curves(
    curves: dict[str, Any],
    path: str | os.PathLike,
    *,
    x: Any = None,
    xlabel: str = "step",
    ylabel: str = "",
    logy: bool = False,
    title: str = "",
) -> Path:
    """Line plot of named curves (e.g. training losses, trajectories) saved as PNG."""
    fig, ax = figure(figsize=(6, 4))
    for name, y in curves.items():
        y = np.asarray(y)
        ax.plot(np.arange(len(y)) if x is None else np.asarray(x), y, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    return save_figure(fig, path)


def upscale(images: Any, min_side: int = 256) -> np.ndarray:
    """Nearest-neighbour upscaling of ``[..., H, W]`` by the smallest integer factor that
    makes the longer side at least ``min_side`` pixels (unchanged if it already is), so that
    small grids stay sharp in a viewer."""
    images = np.asarray(images)
    longer = max(images.shape[-2:])
    factor = max(1, math.ceil(min_side / max(longer, 1)))
    if factor == 1:
        return images
    return np.repeat(np.repeat(images, factor, axis=-2), factor, axis=-1)


def plot_training(
    result: Any,
    path: str | os.PathLike | None = None,
    *,
    title: str = "training",
    ylabel: str = "loss",
    training_label: str = "training loss (per step)",
    validation_label: str = "validation loss",
    log: bool = True,
) -> Any:
    """The training loss of every step of a `TrainResult` (a resumed run logs its own steps
    only), the validation loss where it was measured, and the step of the selected model.

    Saved as a PNG at ``path``, whose path is returned; without ``path`` the figure is
    returned."""
    losses = np.asarray(result.losses, np.float64)
    steps = result.steps - len(losses) + np.arange(len(losses))
    fig, ax = figure(figsize=(6, 4))
    ax.plot(steps, losses, lw=0.8, label=training_label)
    history = result.validation or {}
    if "loss" in history:
        ax.plot(history["step"], history["loss"], "o-", ms=3, label=validation_label)
    if result.best_step is not None and result.selected_by != "final":
        ax.axvline(
            result.best_step, color="k", ls="--", lw=0.8, label=f"best model ({result.selected_by})"
        )
    if log and np.all(losses[np.isfinite(losses)] > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig if path is None else save_figure(fig, path)
