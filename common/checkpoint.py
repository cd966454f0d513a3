"""Atomic checkpoints of arbitrary pytrees: a JSON header line, then equinox-serialised leaves.

Loading needs a *skeleton*: a pytree of the same structure (the trainer builds one from the
model and data it was given), so nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import equinox as eqx

from common.model import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_header"]

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
