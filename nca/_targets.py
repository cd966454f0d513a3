"""Target images for growing NCAs: built-in shapes drawn by code, or PNG files.

Targets are premultiplied RGBA fields ``[4, H, W]`` in ``[0, 1]`` (colour times alpha, as in
growing-NCA training, so the empty background is all zeros). Built-in targets are rendered
at 4x resolution and box-filtered down, which anti-aliases their edges; nothing is downloaded.

- ``"smiley"``: a yellow disc with two eyes and a smile (emoji-like);
- ``"heart"``: a red heart, ``(x² + y² - 1)³ - x² y³ <= 0``;
- ``"ring"``: a blue annulus;
- ``"glyph:X"``: the character(s) ``X`` rendered by matplotlib in bold green.

`make_mask` turns a shape into the 0/1 field ``[H, W]`` that confines an NCA's cells
(`Cells(..., mask=...)`): ``"disk"``, the alpha of a built-in target, or a PNG's alpha.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float

from diffdyn.common._helpers import read_image

__all__ = [
    "BUILTIN_TARGETS",
    "MASK_SHAPES",
    "builtin_target",
    "load_png",
    "make_mask",
    "make_target",
    "to_rgb",
]

BUILTIN_TARGETS = ("smiley", "heart", "ring", "glyph:A")
"""Targets drawn in code (``glyph:X`` draws any character X)."""
MASK_SHAPES = ("disk", *BUILTIN_TARGETS)
"""Shapes `make_mask` draws in code (besides PNG files): a disk, or any built-in target's
alpha (``glyph:X`` for any character X)."""
_SUPERSAMPLE = 4


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates in ``[-1, 1]`` at 4x resolution, ``y`` pointing up."""
    n = size * _SUPERSAMPLE
    c = (np.arange(n) + 0.5) / n * 2 - 1
    x, y = np.meshgrid(c, -c)
    return x, y


def _downsample(rgba: np.ndarray) -> np.ndarray:
    c, n, _ = rgba.shape
    s = _SUPERSAMPLE
    return rgba.reshape(c, n // s, s, n // s, s).mean(axis=(2, 4))


def _paint(layers: list[tuple[np.ndarray, tuple[float, float, float]]]) -> np.ndarray:
    """Paint binary masks in order (later on top) into a straight-alpha RGBA image."""
    shape = layers[0][0].shape
    rgba = np.zeros((4, *shape))
    for mask, colour in layers:
        for i, v in enumerate(colour):
            rgba[i][mask] = v
        rgba[3][mask] = 1.0
    return rgba


def _shape(name: str, size: int) -> np.ndarray:
    x, y = _grid(size)
    r = np.hypot(x, y)
    if name == "smiley":
        face = r <= 0.78
        eyes = (np.hypot(x - 0.28, y - 0.25) <= 0.12) | (np.hypot(x + 0.28, y - 0.25) <= 0.12)
        smile = (np.abs(np.hypot(x, y + 0.02) - 0.45) <= 0.07) & (y < -0.12)
        rgba = _paint([(face, (1.0, 0.8, 0.1)), (eyes | smile, (0.35, 0.2, 0.05))])
    elif name == "heart":
        u, v = x / 0.62, (y + 0.1) / 0.62
        rgba = _paint([((u * u + v * v - 1) ** 3 - u * u * v**3 <= 0, (0.9, 0.1, 0.2))])
    elif name == "ring":
        rgba = _paint([((r <= 0.75) & (r >= 0.4), (0.15, 0.35, 0.9))])
    else:
        raise ValueError(
            f"target must be one of {list(BUILTIN_TARGETS)} or a PNG path; got {name!r}"
        )
    return _downsample(rgba)


def _glyph(text: str, size: int) -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = size * _SUPERSAMPLE
    fig = Figure(figsize=(1, 1), dpi=n)
    FigureCanvasAgg(fig)
    fig.patch.set_alpha(0.0)
    fig.text(
        0.5,
        0.5,
        text,
        ha="center",
        va="center",
        fontsize=0.85 * 72,
        fontweight="bold",
        color=(0.1, 0.6, 0.25),
    )
    fig.canvas.draw()
    buf = np.asarray(fig.canvas.buffer_rgba(), dtype=np.float64)[:n, :n] / 255.0
    return _downsample(np.moveaxis(buf, -1, 0))


def _premultiply(rgba: np.ndarray) -> np.ndarray:
    out = rgba.copy()
    out[:3] *= out[3:4]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def builtin_target(name: str, size: int = 40) -> Float[np.ndarray, "4 size size"]:
    """A built-in target (see the module docstring) as premultiplied RGBA ``[4, size, size]``."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8; got {size!r}")
    if not isinstance(name, str):
        raise TypeError(f"target must be a string; got {type(name).__name__}")
    if name.startswith("glyph:") and len(name) > len("glyph:"):
        return _premultiply(_glyph(name[len("glyph:") :], size))
    return _premultiply(_shape(name, size))


def load_png(path: str | os.PathLike, size: int | None = None) -> Float[np.ndarray, "4 H W"]:
    """Read a PNG as premultiplied RGBA ``[4, H, W]``; with ``size``, fit it into a
    ``size x size`` square (aspect kept, Lanczos filter, centred on a transparent canvas)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"target file {str(path)!r} does not exist")
    img = read_image(path, "target", "RGBA")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int or None; got {size!r}")
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
        img = canvas
    rgba = np.moveaxis(np.asarray(img, dtype=np.float64) / 255.0, -1, 0)
    return _premultiply(rgba)


def _is_file(spec: str) -> bool:
    return spec.lower().endswith(".png") or os.sep in spec


def _check_spec(spec: Any, name: str, *, disk: bool = False) -> str:
    """``spec`` if it names a built-in target (``glyph:X`` for any X; with ``disk``, also
    ``"disk"``) or a PNG file (a ``.png`` name or a path), else a `ValueError` naming ``name``
    and the choices. A file is only read when it is used."""
    known = ["disk"] * disk + [t for t in BUILTIN_TARGETS if not t.startswith("glyph:")]
    glyph = isinstance(spec, str) and spec.startswith("glyph:") and len(spec) > len("glyph:")
    if not (isinstance(spec, str) and (spec in known or glyph or _is_file(spec))):
        choices = ", ".join([*known, "glyph:X"])
        raise ValueError(f"{name} must be one of {choices} or a PNG file; got {spec!r}")
    return spec


def make_target(spec: str, size: int = 40, pad: int = 0) -> Float[np.ndarray, "4 H W"]:
    """A target from a built-in name or a PNG path, zero-padded by ``pad`` cells per side."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"target must be a built-in name or a PNG path; got {spec!r}")
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad must be a non-negative int; got {pad!r}")
    if _is_file(spec):
        target = load_png(spec, size)
    else:
        target = builtin_target(spec, size)
    return np.pad(target, ((0, 0), (pad, pad), (pad, pad)))


def make_mask(spec: str, size: int = 40, pad: int = 0) -> Float[np.ndarray, "H W"]:
    """The 0/1 field ``[size + 2 pad, size + 2 pad]`` (float32) of a shape: ``"disk"`` (the
    disk inscribed in the ``size x size`` square), a built-in target's alpha, or a PNG's
    alpha (fitted like `make_target`); 1 where the alpha exceeds 1/2, then zero-padded by
    ``pad`` cells per side like the targets."""
    _check_spec(spec, "mask", disk=True)
    if spec == "disk":
        if isinstance(size, bool) or not isinstance(size, int) or size < 8:
            raise ValueError(f"size must be an int >= 8; got {size!r}")
        if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
            raise ValueError(f"pad must be a non-negative int; got {pad!r}")
        x, y = _grid(size)
        alpha = np.pad(_downsample(np.hypot(x, y)[None] <= 1.0)[0], pad)
    else:
        alpha = make_target(spec, size, pad)[3]
    return (alpha > 0.5).astype(np.float32)


def to_rgb(x: Float[np.ndarray, "... C H W"]) -> Float[np.ndarray, "... 3 H W"]:
    """Premultiplied RGBA (first four channels) over a white background: ``rgb + 1 - a``."""
    x = np.asarray(x)
    a = np.clip(x[..., 3:4, :, :], 0.0, 1.0)
    return np.clip(1.0 - a + x[..., :3, :, :], 0.0, 1.0)
