"""The file layout of models and checkpoints: one JSON header line, then serialised leaves.

::

    {"format": "diffdyn-model/2", ..., "sha256": "<hex>"}\\n
    <the leaves, in equinox's serialisation format (one .npy record per array)>

The ``sha256`` field is the SHA-256 digest of the header without it (as canonical JSON: sorted
keys, no spaces) followed by the leaf bytes, so that a flipped or missing byte anywhere in the
file is found before anything is used. Files of format version 1 carry no digest; they are
read as before. Reading is done against a *skeleton* pytree (nothing is ever unpickled), and
the skeleton may hold ``jax.ShapeDtypeStruct`` leaves, so that the arrays a header describes
are compared with the bytes the file holds before any of them is allocated.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import equinox as eqx
import jax
import numpy as np

from ._helpers import atomic_write

__all__ = ["write_container", "read_container_header", "read_container"]

_CHUNK = 1 << 22


def _digest_start(header: dict[str, Any]) -> Any:
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode())


def write_container(path: str | os.PathLike, header: dict[str, Any], tree: Any) -> Path:
    """Write ``header`` (with its ``sha256``) and the leaves of ``tree`` to ``path``
    atomically (the previous file, if any, is kept on failure)."""
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    data = buffer.getvalue()
    digest = _digest_start(header)
    digest.update(data)
    line = json.dumps({**header, "sha256": digest.hexdigest()}).encode() + b"\n"

    def write(f: BinaryIO) -> None:
        f.write(line)
        f.write(data)

    return atomic_write(path, write)


def read_container_header(path: str | os.PathLike, kind: str, versions: tuple[int, ...]) -> dict:
    """The JSON header of a file of format ``"<kind>/<version>"``, without reading its leaves
    (and so without checking its digest)."""
    with _open(path) as f:
        return _parse_header(f.readline(), path, kind, versions)


def read_container(
    path: str | os.PathLike,
    kind: str,
    versions: tuple[int, ...],
    skeleton: Callable[[dict[str, Any]], Any],
) -> tuple[Any, dict[str, Any]]:
    """``(tree, header)`` of a file written by `write_container`.

    ``skeleton(header)`` gives a pytree of the stored structure (its array leaves may be
    ``jax.ShapeDtypeStruct``). The digest is checked first, then the bytes the skeleton's
    arrays need against the bytes the file holds, then the leaves are read; any mismatch is a
    `ValueError` naming the file.
    """
    with _open(path) as f:
        line = f.readline()
        header = _parse_header(line, path, kind, versions)
        stated = header.pop("sha256", None)
        if stated is not None or versions[-1] == int(header["format"].rsplit("/", 1)[1]):
            digest = _digest_start(header)
            size = 0
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
            if stated != digest.hexdigest():
                raise ValueError(
                    f"{path} is corrupt: its checksum does not match its contents (a changed, "
                    "truncated or partly written file)"
                )
        else:
            size = os.fstat(f.fileno()).st_size - len(line)
        like = skeleton(header)
        # a lower bound (numbers at their narrowest width: the file may hold narrower ones than
        # this process builds), enough to refuse a header that describes far more than is there
        needed = sum(
            int(np.prod(x.shape)) * _narrowest(x.dtype)
            for x in jax.tree_util.tree_leaves(like)
            if _is_array(x)
        )
        if needed > size:
            raise ValueError(
                f"{path}: its header describes {needed} bytes of arrays but the file holds "
                f"only {size}"
            )
        f.seek(len(line))
        try:
            # equinox's leaf order, with our own per-leaf reader (which, unlike equinox's,
            # lets a floating leaf keep the precision it was saved in)
            leaves, treedef = jax.tree_util.tree_flatten(like)
            tree = jax.tree_util.tree_unflatten(treedef, [_read_leaf(f, x) for x in leaves])
            if f.read(1):
                raise ValueError("the file holds more arrays than its header describes")
        except _PrecisionError as e:
            raise ValueError(f"{path}: {e}") from None
        except (RuntimeError, ValueError, OSError, EOFError) as e:
            raise ValueError(f"{path} does not hold the arrays its header describes: {e}") from None
    if stated is not None:
        header["sha256"] = stated
    return tree, header


class _PrecisionError(ValueError):
    pass


def _is_array(x: Any) -> bool:
    return isinstance(x, (jax.Array, jax.ShapeDtypeStruct, np.ndarray))


def _narrowest(dtype: Any) -> int:
    """Bytes per element of the narrowest dtype a leaf of ``dtype`` may be stored in."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:  # an extended dtype (PRNG keys): stored as its raw data
        return 1
    return {"f": 2, "c": 8, "i": 1, "u": 1}.get(dtype.kind, dtype.itemsize)


def _read_leaf(f: BinaryIO, like: Any) -> Any:
    """One leaf as stored: its shape and kind (float, int, ...) must be the skeleton's; it
    keeps the width it was saved in (a float32 model loads as float32 where 64-bit types are
    on), and a 64-bit leaf needs them enabled (it is never narrowed without a word)."""
    if not _is_array(like):
        return eqx.default_deserialise_filter_spec(f, like)
    stored = np.load(f, allow_pickle=False)
    if stored.shape != tuple(like.shape):
        raise ValueError(f"a leaf of shape {tuple(like.shape)} is stored as {stored.shape}")
    kind = stored.dtype.kind
    if kind != np.dtype(like.dtype).kind:
        raise ValueError(f"a leaf of dtype {like.dtype} is stored as {stored.dtype}")
    wide = kind in "fiuc" and stored.dtype.itemsize == (16 if kind == "c" else 8)
    if wide and not jax.config.jax_enable_x64 and not isinstance(like, np.ndarray):
        raise _PrecisionError(
            f"it holds {stored.dtype} arrays; enable 64-bit types to load it exactly "
            "(jax.config.update('jax_enable_x64', True))"
        )
    return stored if isinstance(like, np.ndarray) else jax.numpy.asarray(stored)


def _open(path: str | os.PathLike) -> BinaryIO:
    try:
        return Path(path).open("rb")
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not a file") from None


def _parse_header(line: bytes, path: Any, kind: str, versions: tuple[int, ...]) -> dict:
    try:
        header = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        header = None
    known = {f"{kind}/{v}" for v in versions}
    if not isinstance(header, dict) or header.get("format") not in known:
        name = kind.replace("-", " ")
        raise ValueError(f"{path} is not a {name} file (format {kind}/{versions[-1]})")
    return header
