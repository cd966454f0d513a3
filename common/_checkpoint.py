"""Atomic checkpoints of arbitrary pytrees: a JSON header line, then equinox-serialised leaves.

Loading needs a *skeleton*: a pytree of the same structure (the trainer builds one from the
model and data it was given), so nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import equinox as eqx
import jax

from ._helpers import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_header", "BackgroundCheckpointer"]

_FORMAT = "diffdyn-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, tree: Any, metadata: dict[str, Any]) -> Path:
    """Write ``tree`` and JSON ``metadata`` to ``path`` atomically (old file kept on failure)."""
    header = {"format": _FORMAT, **metadata}
    line = json.dumps(header).encode() + b"\n"

    def write(f: Any) -> None:
        f.write(line)
        eqx.tree_serialise_leaves(f, tree)

    return atomic_write(path, write)


def read_checkpoint_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, without reading its arrays."""
    with Path(path).open("rb") as f:
        return _parse_header(f.readline(), path)


def load_checkpoint(path: str | os.PathLike, skeleton: Any) -> tuple[Any, dict[str, Any]]:
    """Read a checkpoint into a pytree shaped like ``skeleton``; returns ``(tree, metadata)``."""
    with Path(path).open("rb") as f:
        header = _parse_header(f.readline(), path)
        try:
            tree = eqx.tree_deserialise_leaves(f, skeleton)
        except (RuntimeError, ValueError) as e:
            raise ValueError(
                f"checkpoint {path} does not match the current model/optimiser structure: {e}"
            ) from None
    return tree, header


def _parse_header(line: bytes, path: Any) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a diffdyn checkpoint (format {_FORMAT!r})")
    return header


class BackgroundCheckpointer:
    """Saves checkpoints from a writer thread so that training does not wait for the disk.

    `save` copies the tree to host memory (the only part that blocks the caller, and the
    point at which the checkpoint's contents are fixed), then serialises it and calls ``fsync``
    on one background thread. At most one write is in flight: a second `save` first
    waits for the previous one, so files appear in order. Errors surface from the next
    `save` or from `wait`, which training must call before it returns.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def save(self, path: str | os.PathLike, tree: Any, metadata: dict[str, Any]) -> None:
        host = jax.device_get(tree)
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="diffdyn-checkpoint")
        self._pending = self._pool.submit(save_checkpoint, path, host, metadata)

    def wait(self) -> None:
        """Block until the last write is on disk; re-raise its error if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Wait for the last write and stop the writer thread."""
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
