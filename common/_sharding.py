"""Data parallelism by JAX sharding.

One mesh axis, ``"batch"``, spans every device (of every process). The batch axis (axis 0) of
data is split across it with a ``NamedSharding``; parameters and optimiser state are
replicated. XLA inserts the gradient all-reduce itself, so the training step is written once
and runs unchanged on one CPU, several GPUs, or several hosts.

Multi-host: call `initialize_distributed` before anything touches a device. It reads
``DIFFDYN_COORDINATOR`` (``host:port``), ``DIFFDYN_NUM_PROCESSES`` and ``DIFFDYN_PROCESS_ID``
and calls ``jax.distributed.initialize``; with none of them set it does nothing.
"""

from __future__ import annotations

import os
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
    "initialize_distributed",
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

    Leaves whose axis 0 does not divide by the device count are left unconstrained.
    """
    if mesh is None or mesh.size == 1:
        return tree
    sharding = batch_sharding(mesh)

    def constrain(x: Any) -> Any:
        if eqx.is_array(x) and x.ndim > 0 and x.shape[0] % mesh.size == 0:
            return jax.lax.with_sharding_constraint(x, sharding)
        return x

    return jax.tree_util.tree_map(constrain, tree)


def initialize_distributed(env: dict[str, str] | None = None) -> bool:
    """Join a multi-process JAX run described by environment variables; True if it did.

    ``DIFFDYN_COORDINATOR=host:port``, ``DIFFDYN_NUM_PROCESSES=P``, ``DIFFDYN_PROCESS_ID=i``.
    On CPU the gloo collectives are switched on so that CPU processes can all-reduce.
    """
    env = os.environ if env is None else env
    names = ("DIFFDYN_COORDINATOR", "DIFFDYN_NUM_PROCESSES", "DIFFDYN_PROCESS_ID")
    present = [n for n in names if env.get(n)]
    if not present:
        return False
    if len(present) != len(names):
        missing = sorted(set(names) - set(present))
        raise ValueError(f"multi-process run needs all of {names}; missing {missing}")
    try:
        num_processes = int(env["DIFFDYN_NUM_PROCESSES"])
        process_id = int(env["DIFFDYN_PROCESS_ID"])
    except ValueError:
        raise ValueError(
            "DIFFDYN_NUM_PROCESSES and DIFFDYN_PROCESS_ID must be integers; got "
            f"{env['DIFFDYN_NUM_PROCESSES']!r}, {env['DIFFDYN_PROCESS_ID']!r}"
        ) from None
    if not 0 <= process_id < num_processes:
        raise ValueError(f"DIFFDYN_PROCESS_ID must be in [0, {num_processes}); got {process_id}")
    if env.get("JAX_PLATFORMS", "").startswith("cpu") or env.get("DIFFDYN_CPU_COLLECTIVES"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=env["DIFFDYN_COORDINATOR"],
        num_processes=num_processes,
        process_id=process_id,
    )
    return True
