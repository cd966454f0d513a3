"""Figures saved to disk: PNG images and plots, GIF animations of fields.

matplotlib runs with the non-interactive ``Agg`` backend; every function writes a file
atomically and returns its path. Fields are channels-first (``[C, H, W]``, sequences
``[T, C, H, W]``).
"""

from __future__ import annotations

import io
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
