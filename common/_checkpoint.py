"""Atomic, checksummed checkpoints of arbitrary pytrees (the layout of `_container`).

Loading needs a *skeleton*: a pytree of the same structure (the trainer builds one from the
model and data it was given), so nothing is ever unpickled.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax

from ._container import read_container, read_container_header, write_container

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_header", "BackgroundCheckpointer"]

_KIND, _VERSIONS = "diffdyn-checkpoint", (1, 2)


def save_checkpoint(path: str | os.PathLike, tree: Any, metadata: dict[str, Any]) -> Path:
    """Write ``tree`` and JSON ``metadata`` to ``path`` atomically (old file kept on failure),
    with a checksum of the whole file that `load_checkpoint` verifies."""
    header = {"format": f"{_KIND}/{_VERSIONS[-1]}", **metadata}
    return write_container(path, header, tree)


def read_checkpoint_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, without reading its arrays."""
    return read_container_header(path, _KIND, _VERSIONS)


def load_checkpoint(path: str | os.PathLike, skeleton: Any) -> tuple[Any, dict[str, Any]]:
    """Read a checkpoint into a pytree shaped like ``skeleton``; returns ``(tree, metadata)``.

    A file whose checksum does not match (a flipped byte, a truncated write) is refused.
    """
    try:
        return read_container(path, _KIND, _VERSIONS, lambda header: skeleton)
    except ValueError as e:
        if "does not hold the arrays" not in str(e):
            raise
        raise ValueError(
            f"checkpoint {path} does not match the current model/optimiser structure: "
            f"{str(e).split(': ', 1)[-1]}"
        ) from None


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
