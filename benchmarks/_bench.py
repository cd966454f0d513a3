"""Shared pieces of the benchmark scripts: the device they run on and how they time.

``benchmarks/run.py --device gpu`` sets ``DIFFDYN_BENCH_DEVICE=gpu`` for every script it starts;
a script run by hand reads the same variable (default ``cpu``). On ``gpu`` JAX must see a CUDA
device (a script stops with one line if it does not: a CPU number must never be reported as a
GPU one) and the PyTorch side of a comparison runs on ``cuda``. Timers synchronise both
frameworks, since their calls return before the device has finished.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

DEVICES = ("cpu", "gpu")


def device() -> str:
    """The device the benchmarks run on: ``"cpu"`` or ``"gpu"``."""
    name = os.environ.get("DIFFDYN_BENCH_DEVICE", "cpu")
    if name not in DEVICES:
        sys.exit(f"DIFFDYN_BENCH_DEVICE must be one of {DEVICES}, got {name!r}")
    return name


def check_jax() -> str:
    """Stop unless JAX's default backend is the asked device; return the device's name."""
    import jax

    backend = jax.default_backend()
    want = device()
    if (want == "gpu") != (backend in ("gpu", "cuda", "rocm")):
        sys.exit(f"benchmarks asked for {want!r} but JAX's default backend is {backend!r}")
    return jax.devices()[0].device_kind


def torch_device():
    """The ``torch.device`` for the PyTorch side (``cuda`` on ``gpu``; stops if it has none)."""
    import torch

    if device() == "gpu":
        if not torch.cuda.is_available():
            sys.exit("benchmarks asked for 'gpu' but PyTorch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def torch_sync() -> None:
    """Wait for PyTorch's queued CUDA work (nothing on the CPU)."""
    if device() == "gpu":
        import torch

        torch.cuda.synchronize()


def meta() -> dict:
    """Fields every row carries: the device and the 1-minute load average."""
    return {"device": device(), "loadavg": round(os.getloadavg()[0], 2)}


def emit(**row) -> None:
    """Print one JSON row with :func:`meta`'s fields added."""
    print(json.dumps({**meta(), **row}), flush=True)


def best_of(fn: Callable[[], object], repeats: int, *, warmup: int = 1) -> float:
    """Minimum wall time of ``fn`` over ``repeats`` calls after ``warmup`` untimed ones.

    ``fn`` must block until its work is done (``jax.block_until_ready`` / :func:`torch_sync`).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def torch_setup():
    """Import PyTorch for a comparison and make ``torch_device()`` its default device."""
    import torch

    dev = torch_device()
    torch.set_default_device(dev)
    return dev
