"""Multi-process runs: joining one, and the few collectives that the trainer needs.

A run over several hosts (or several processes on one host) is one JAX program in every
process. `initialize_distributed` joins it: the ``DIFFDYN_*`` variables describe it
explicitly; otherwise JAX's own cluster detection configures it (SLURM, Open MPI, a
``JAX_COORDINATOR_ADDRESS``, or any other cluster JAX knows with ``DIFFDYN_DISTRIBUTED=auto``).

Every process computes; only process 0 (`is_primary`) writes: event files, figures, metrics,
configs, models and checkpoints. A checkpoint of state that is split across processes is
gathered into every process's memory first (`gather_to_host`, an all-gather), then written
by process 0 alone; on resume process 0 reads it and sends it to the others
(`broadcast_from_primary`), so the other processes need no access to the output folder.
The gathered copy is chosen over a sharded checkpoint format (such as orbax's) because
diffdyn's train states are small next to a device's memory (parameters and optimiser state
are replicated already; only the data may be split), and one file keeps checkpoints readable
by one process on a laptop.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

__all__ = [
    "initialize_distributed",
    "is_primary",
    "gather_to_host",
    "broadcast_from_primary",
]

_EXPLICIT = ("DIFFDYN_COORDINATOR", "DIFFDYN_NUM_PROCESSES", "DIFFDYN_PROCESS_ID")
# the variables JAX's SLURM detection reads; all must be set
_SLURM = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")


def _launcher(env: Mapping[str, str]) -> str | None:
    """The multi-process launcher ``env`` describes, or None for a single process."""
    if all(name in env for name in _SLURM) and _count(env, "SLURM_NTASKS") > 1:
        return "SLURM"
    if "OMPI_MCA_orte_hnp_uri" in env and _count(env, "OMPI_COMM_WORLD_SIZE") > 1:
        return "Open MPI"
    if env.get("JAX_COORDINATOR_ADDRESS"):
        return "JAX_COORDINATOR_ADDRESS"
    return None


def _count(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env.get(name, "1"))
    except ValueError:
        raise ValueError(f"{name} must be an integer; got {env[name]!r}") from None


def initialize_distributed(env: Mapping[str, str] | None = None) -> bool:
    """Join a multi-process JAX run if the environment describes one; True if it did.

    Call it before anything touches a device (the ``diffdyn`` command does). In order:

    * ``DIFFDYN_DISTRIBUTED=off`` (or ``0``): stay a single process.
    * ``DIFFDYN_COORDINATOR=host:port``, ``DIFFDYN_NUM_PROCESSES=P`` and
      ``DIFFDYN_PROCESS_ID=i``, all three: join exactly that run (an explicit override).
    * A SLURM step with more than one task, an Open MPI launch of more than one process,
      ``JAX_COORDINATOR_ADDRESS``, or ``DIFFDYN_DISTRIBUTED=auto``: call
      ``jax.distributed.initialize()`` without arguments, so that JAX's cluster detection
      finds the coordinator, the process count and this process's id.
    * Otherwise: a single process; nothing is done.

    With ``JAX_PLATFORMS=cpu`` (or ``DIFFDYN_CPU_COLLECTIVES`` set) CPU processes all-reduce
    through gloo. Joining prints one line to stderr naming the process and the launcher.
    """
    env = os.environ if env is None else env
    mode = env.get("DIFFDYN_DISTRIBUTED", "").strip().lower()
    if mode not in ("", "auto", "off", "0"):
        raise ValueError(f"DIFFDYN_DISTRIBUTED must be 'auto' or 'off'; got {mode!r}")
    if mode in ("off", "0"):
        return False
    present = [n for n in _EXPLICIT if env.get(n)]
    if present:
        kwargs = _explicit(env, present)
        launcher = "DIFFDYN_COORDINATOR"
    else:
        launcher = "DIFFDYN_DISTRIBUTED=auto" if mode == "auto" else _launcher(env)
        if launcher is None:
            return False
        kwargs = {}
    if env.get("JAX_PLATFORMS", "").startswith("cpu") or env.get("DIFFDYN_CPU_COLLECTIVES"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)
    print(
        f"diffdyn: process {jax.process_index()} of {jax.process_count()} (via {launcher})",
        file=sys.stderr,
        flush=True,
    )
    return True


def _explicit(env: Mapping[str, str], present: list[str]) -> dict[str, Any]:
    if len(present) != len(_EXPLICIT):
        missing = sorted(set(_EXPLICIT) - set(present))
        raise ValueError(f"multi-process run needs all of {_EXPLICIT}; missing {missing}")
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
    return {
        "coordinator_address": env["DIFFDYN_COORDINATOR"],
        "num_processes": num_processes,
        "process_id": process_id,
    }


def is_primary() -> bool:
    """True in the process that writes files and logs (process 0; always, single-process)."""
    return jax.process_index() == 0


def gather_to_host(tree: Any) -> Any:
    """``tree`` with every array leaf as a whole numpy array in this process's memory.

    Arrays split across processes are all-gathered, so every process must call this at the
    same point of the program; arrays held whole by this process are only copied.
    """

    def fetch(x: Any) -> Any:
        if not isinstance(x, jax.Array):
            return x
        if x.is_fully_addressable or x.is_fully_replicated:
            return np.asarray(jax.device_get(x))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree_util.tree_map(fetch, tree)


def broadcast_from_primary(tree: Any) -> Any:
    """Process 0's values of the array leaves of ``tree``, in every process (numpy).

    The other processes pass a tree of the same structure, shapes and dtypes (their values
    are ignored). Single-process: ``tree`` itself, as numpy.
    """
    host = gather_to_host(tree)
    if jax.process_count() == 1:
        return host
    from jax.experimental import multihost_utils

    return jax.tree_util.tree_map(
        np.asarray, multihost_utils.broadcast_one_to_all(host, is_source=is_primary())
    )
