"""Helpers shared by every package: argument checks, name lookups, atomic writes and the
reading of users' array and image files (one clear error for every way a file can be bad).

The one private module of `diffdyn.common` that the other packages import.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "check_int",
    "check_number",
    "check_pyramid_levels",
    "unknown_name",
    "atomic_write",
    "read_array",
    "read_image",
]


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) ``>= minimum``, else a
    `ValueError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return int(value)


def check_number(value: Any, name: str, minimum: float = 0.0) -> float:
    """``value`` as a ``float`` if it is a real number (not a bool) ``>= minimum``, else a
    `ValueError` naming ``name`` (NaN is refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= minimum:
        raise ValueError(f"{name} must be a number >= {minimum}; got {value!r}")
    return float(value)


def check_pyramid_levels(levels: Any, shape: tuple[int, ...], name: str) -> int:
    """``levels`` of a texture feature pyramid (scales ``1, 2, ..., 2**(levels-1)``) that an
    image of ``shape [..., H, W]`` (called ``name``) can hold, else a `ValueError`."""
    levels = check_int(levels, "levels", 1)
    h, w = shape[-2:]
    if 2**levels > min(h, w):
        raise ValueError(
            f"levels = {levels} needs {name} of at least 2**levels = {2**levels} pixels per side "
            f"(differences at scale 2**(levels-1) on a periodic grid); got H x W = {h} x {w}"
        )
    return levels


def check_time(value: Any, name: str, *, zero: bool) -> float:
    """``value`` as a float if it is a finite real number ``> 0`` (``>= 0`` with ``zero``)."""
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
    )
    if not ok:
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"argument {name!r} must be a finite number {bound}; got {value!r}")
    return float(value)


def steps_of(time: float, dt: float, name: str, *, allow_zero: bool = False) -> int:
    """``time / dt`` as an integer, or a ValueError naming ``name`` when ``time`` is not a
    whole multiple of ``dt``."""
    n = round(time / dt)
    if abs(n * dt - time) > 1e-9 * max(1.0, abs(time)) or n < (0 if allow_zero else 1):
        raise ValueError(
            f"argument {name!r} must be a {'non-negative' if allow_zero else 'positive'} "
            f"multiple of dt = {dt}; got {time}"
        )
    return n


def unknown_name(kind: str, name: Any, known: Iterable[str]) -> ValueError:
    """The error for a name missing from a registry: ``unknown solver 'x'; known solvers: ...``."""
    return ValueError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(known))}")


@functools.cache
def _umask() -> int:
    """The process's umask (read once: reading it means setting it, which is not atomic)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place.

    A reader never sees a half-written file and a crash never destroys the previous version.
    The file gets the permissions the umask allows (``0o666 & ~umask``, as ``open`` would
    give), not the owner-only mode of the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:
            # a failed write names no file ("No space left on device"): name the one we wrote
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    return path


def read_array(path: str | os.PathLike, what: str, *, finite: bool = True) -> Any:
    """The numeric array in ``path``: a ``.npy`` file, or a ``.npz`` file holding exactly one
    array. Missing, empty, corrupt, pickled or non-numeric files and (with ``finite``) NaN or
    inf values are a `ValueError` naming ``what`` and the file; nothing is unpickled."""
    import zipfile

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what}: {str(path)!r} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise ValueError(f"{what}: {str(path)!r} is empty")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                names = list(loaded.files)
                if len(names) != 1:
                    raise ValueError(
                        f"a .npz file must hold exactly one array; it holds {len(names)} "
                        f"({', '.join(names[:5])})"
                    )
                loaded = loaded[names[0]]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(
            f"{what}: cannot read {str(path)!r} as a .npy/.npz array: {first}"
        ) from None
    array = np.asarray(loaded)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{what}: {str(path)!r} holds {array.dtype} values, not numbers")
    if finite and np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
        raise ValueError(f"{what}: {str(path)!r} contains NaN or inf")
    return array


def read_image(path: str | os.PathLike, what: str, mode: str | None = "RGB") -> Any:
    """The image in ``path`` as a PIL image converted to ``mode`` (``None``: as stored, e.g.
    palette indices); a missing file or one that is not an image PIL can read is a
    `ValueError` naming ``what`` and the file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what}: {str(path)!r} does not exist or is not a file")
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy() if mode is None else img.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{what}: {str(path)!r} is not a readable image ({first})") from None
