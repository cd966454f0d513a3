"""Helpers shared by every package: argument checks, name lookups and atomic writes.

The one private module of `diffdyn.common` that the other packages import.
"""

from __future__ import annotations

import functools
import numbers
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["check_int", "check_number", "unknown_name", "atomic_write"]


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
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
