"""Data parallelism by JAX sharding.

One mesh axis, ``"batch"``, spans every device (of every process). The batch axis (axis 0) of
data is split across it with a ``NamedSharding``; parameters and optimiser state are
replicated. XLA inserts the gradient all-reduce itself, so the training step is written once
and runs unchanged on one CPU, several GPUs, or several hosts.

Several processes (hosts): call `initialize_distributed` first; the mesh then spans the
devices of every process.
"""

from __future__ import annotations

import warnings
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "BATCH_AXIS",
    "make_mesh",
    "batch_sharding",
    "replicated_sharding",
    "shard_batch",
    "replicate",
    "constrain_batch",
]

BATCH_AXIS = "batch"
"""Name of the device-mesh axis along which batches are split."""


def make_mesh(devices: Any = None) -> Mesh:
    """A one-axis mesh named ``"batch"`` over ``devices`` (default: all global devices)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    return Mesh(np.asarray(devices), (BATCH_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Split axis 0 across the mesh; other axes whole."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def _check_divisible(tree: Any, mesh: Mesh) -> None:
    n = mesh.size
    for leaf in jax.tree_util.tree_leaves(tree):
        if eqx.is_array(leaf) and (leaf.ndim == 0 or leaf.shape[0] % n):
            raise ValueError(
                f"batch axis (axis 0) must be divisible by the {n} devices of the mesh; "
                f"got an array of shape {leaf.shape}"
            )


def shard_batch(tree: Any, mesh: Mesh) -> Any:
    """Place every array leaf of ``tree`` with its axis 0 split across the mesh."""
    _check_divisible(tree, mesh)
    sharding = batch_sharding(mesh)
    return jax.tree_util.tree_map(
        lambda x: jax.device_put(x, sharding) if eqx.is_array(x) else x, tree
    )


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place every array leaf of ``tree`` on every device of the mesh."""
    sharding = replicated_sharding(mesh)
    return jax.tree_util.tree_map(
        lambda x: jax.device_put(x, sharding) if eqx.is_array(x) else x, tree
    )


def constrain_batch(tree: Any, mesh: Mesh | None) -> Any:
    """Inside ``jit``: ask XLA to keep axis 0 of every array leaf split across the mesh.

    A batch in which no leaf's axis 0 divides by the device count is a ``ValueError`` (every
    device would compute the whole batch); leaves that do not divide while others do (a shared
    time grid, say) are replicated, with a warning naming their shapes.
    """
    if mesh is None or mesh.size == 1:
        return tree
    n, sharding = mesh.size, batch_sharding(mesh)
    arrays = [x for x in jax.tree_util.tree_leaves(tree) if eqx.is_array(x) and x.ndim > 0]
    whole = [tuple(x.shape) for x in arrays if x.shape[0] % n]
    if arrays and len(whole) == len(arrays):
        raise ValueError(
            f"no array of the batch has an axis 0 that divides by the {n} devices of the mesh "
            f"(shapes {whole}): nothing could be split; use a batch size that is a multiple of "
            f"{n}, or a mesh of fewer devices (make_mesh(devices))"
        )
    if whole:
        warnings.warn(
            f"batch arrays of shapes {whole} do not divide by the {n} devices of the mesh along "
            "axis 0; they are replicated on every device, the rest is split",
            stacklevel=2,
        )

    def constrain(x: Any) -> Any:
        if eqx.is_array(x) and x.ndim > 0 and x.shape[0] % n == 0:
            return jax.lax.with_sharding_constraint(x, sharding)
        return x

    return jax.tree_util.tree_map(constrain, tree)
