r"""Recorded frame sequences from files: what a model of dynamics is fitted to.

`load_sequence` reads one of

- a ``.npy`` file holding an array ``[T, C, H, W]`` (one sequence) or ``[B, T, C, H, W]``
  (``B`` sequences recorded at the same times);
- a ``.npz`` file holding that array under the key ``"frames"``, or as its only array, and
  optionally the frame times under ``"times"``;
- a folder of PNG frames of one sequence, in the order of their names with runs of digits
  compared as numbers (``f2.png`` before ``f10.png``); grey images give one channel, RGB
  three and images with transparency (RGBA, grey with alpha, palettes with a transparent
  colour) four, every value divided by the largest of its bit depth ($255$, or $65535$ for
  16-bit grey) so that it lies in $[0, 1]$. Files that do not end in ``.png`` are not frames.

Array values are kept as stored (an integer array becomes float32 without rescaling). The
frame times $t_0 < t_1 < \dots < t_{T-1}$ default to $0, 1, \dots, T - 1$. Anything that is
not such a sequence is a one-line `ValueError` that names the path.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["SequenceData", "load_sequence"]


class SequenceData(NamedTuple):
    """What `load_sequence` returns.

    Attributes:
        frames: ``[B, T, C, H, W]`` float32 (``B = 1`` for one sequence).
        times: ``[T]`` float64, strictly increasing.
    """

    frames: np.ndarray
    times: np.ndarray


_GREY = {"1": 1.0, "L": 255.0, "I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0}


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _png(path: Path, where: str) -> np.ndarray:
    """One PNG frame as ``[C, H, W]`` in ``[0, 1]``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif mode in ("LA", "PA", "La", "RGBa"):
                img = img.convert("RGBA")
            elif mode == "I":  # 16-bit grey, as older Pillow versions open it
                img = img.copy()
            elif mode not in _GREY and mode not in ("RGB", "RGBA"):
                img = img.convert("RGB")
            mode = img.mode
            array = np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{where}: {str(path)!r} is not a readable image ({first})") from None
    if mode == "I":
        if array.min() < 0 or array.max() > 65535:
            raise ValueError(
                f"{where}: {str(path)!r} holds 32-bit integer pixels outside the 16-bit range"
            )
        scale = 65535.0
    else:
        scale = _GREY.get(mode, 255.0)
    array = array.astype(np.float32) / np.float32(scale)
    return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)


def _folder(path: Path) -> np.ndarray:
    where = "load_sequence"
    files = sorted(
        (p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".png"),
        key=lambda p: _natural_key(p.name),
    )
    if not files:
        raise ValueError(f"{where}: the folder {str(path)!r} holds no PNG frames (*.png)")
    frames = [_png(f, where) for f in files]
    first = frames[0].shape
    for f, a in zip(files, frames, strict=True):
        if a.shape != first:
            raise ValueError(
                f"{where}: frames of mismatched size in {str(path)!r}: {files[0].name} is "
                f"[C, H, W] = {list(first)} but {f.name} is {list(a.shape)}"
            )
    return np.stack(frames)


def _arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The frames array and the times (or None) stored in a ``.npy`` / ``.npz`` file."""
    where = f"load_sequence: {str(path)!r}"
    if path.stat().st_size == 0:
        raise ValueError(f"{where} is empty")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                names = list(loaded.files)
                rest = [n for n in names if n not in ("frames", "times")]
                if "frames" in names:
                    if rest:
                        raise ValueError(
                            f"holds arrays {rest} besides 'frames' (only 'times' may join it)"
                        )
                    frames_name = "frames"
                elif len(rest) == 1:
                    frames_name = rest[0]
                else:
                    raise ValueError(
                        f"holds the arrays {names}: name the frames 'frames' (and the times "
                        f"'times')"
                    )
                frames = np.asarray(loaded[frames_name])
                times = np.asarray(loaded["times"]) if "times" in names else None
        else:
            frames, times = np.asarray(loaded), None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{where} cannot be read as a .npy/.npz sequence: {first}") from None
    if not (np.issubdtype(frames.dtype, np.number) or frames.dtype == bool):
        raise ValueError(f"{where} holds {frames.dtype} values, not numbers")
    if np.issubdtype(frames.dtype, np.complexfloating):
        raise ValueError(f"{where} holds complex values; frames must be real")
    return frames, times


def _check_times(times: Any, t: int, where: str) -> np.ndarray:
    try:
        times = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: times must be numbers; got {times!r}") from None
    if times.shape != (t,):
        raise ValueError(
            f"{where}: times must hold one time per frame ({t}); got shape {list(times.shape)}"
        )
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{where}: times contain NaN or inf")
    gaps = np.diff(times)
    if np.any(gaps <= 0):
        i = int(np.argmax(gaps <= 0))
        raise ValueError(
            f"{where}: times must be strictly increasing; t[{i}] = {times[i]:g} is followed by "
            f"t[{i + 1}] = {times[i + 1]:g}"
        )
    return times


def load_sequence(path: str | os.PathLike, *, times: Any = None) -> SequenceData:
    """Read recorded frames (see the module docstring for the formats).

    Args:
        path: a ``.npy`` or ``.npz`` file, or a folder of PNG frames.
        times: the time of every frame (``T`` numbers, strictly increasing); refused when
            the ``.npz`` file holds its own ``"times"``. Default: the file's, else
            $0, 1, \\dots, T - 1$.

    Returns:
        `SequenceData` with frames ``[B, T, C, H, W]`` (float32) and times ``[T]``.

    Raises:
        ValueError: the path is missing or unreadable; the array is not 4- or 5-dimensional
            or holds NaN or inf; the folder holds no PNG frame or frames of different sizes;
            there are fewer than 2 frames; the times are not one per frame or not strictly
            increasing.
    """
    path = Path(path)
    where = f"load_sequence: {str(path)!r}"
    if path.is_dir():
        frames, stored = _folder(path), None
    elif path.is_file():
        if path.suffix.lower() not in (".npy", ".npz"):
            raise ValueError(f"{where} is neither a .npy/.npz file nor a folder of PNG frames")
        frames, stored = _arrays(path)
    else:
        raise ValueError(f"{where} does not exist")
    if frames.ndim not in (4, 5):
        raise ValueError(
            f"{where}: frames must be [T, C, H, W] or [B, T, C, H, W]; got an array of "
            f"{frames.ndim} dimensions, shape {list(frames.shape)}"
        )
    if frames.ndim == 4:
        frames = frames[None]
    if 0 in frames.shape:
        raise ValueError(f"{where}: frames have an empty axis, shape {list(frames.shape)}")
    if np.issubdtype(frames.dtype, np.inexact) and not np.all(np.isfinite(frames)):
        raise ValueError(f"{where}: frames contain NaN or inf")
    frames = frames.astype(np.float32)
    if not np.all(np.isfinite(frames)):
        raise ValueError(f"{where}: frames do not fit in float32 (values overflow to inf)")
    t = frames.shape[1]
    if t < 2:
        raise ValueError(f"{where}: a sequence needs at least 2 frames; got {t}")
    if times is not None and stored is not None:
        raise ValueError(f"{where} holds its own 'times'; do not give times as well")
    given = stored if stored is not None else times
    times = np.arange(t, dtype=np.float64) if given is None else _check_times(given, t, where)
    return SequenceData(frames, times)
