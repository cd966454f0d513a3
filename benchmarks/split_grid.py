"""A grid split across devices against the same grid on one device.

A Gray-Scott solve (fixed Heun steps, periodic ``N x N`` grid) and an NCA rollout (16
channels, ``N x N``), each run whole on one device and split into bands of rows over every
device (`SplitGrid`, halo 1). Rows (one JSON object per line): seconds per run on one device,
split, their ratio ``split / one`` (> 1: the split run is slower; what it buys is memory:
each device holds ``1 / P`` of the grid), the state bytes per device, and the load average.

On a CPU the devices are forced (``--xla_force_host_platform_device_count``) and share the
cores, so the ratio shows the cost of the halo exchange and partitioning, not a speed-up.

Usage: ``python benchmarks/split_grid.py [--devices 4] [--sizes 256 512] [--steps 100]``
(set ``XLA_FLAGS`` yourself to choose CPU devices, or run on a machine with several GPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=4, help="CPU devices to force (CPU only)")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--steps", type=int, default=100, help="solver / NCA steps per run")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"

    import jax
    import jax.numpy as jnp

    from diffdyn.common import SolveConfig, SplitGrid
    from diffdyn.nca import NCA, Cells
    from diffdyn.pde import GrayScott, PDESolver, gray_scott_seeds

    split = SplitGrid.over(halo=1)
    if split.parts < 2:
        sys.exit("split_grid: only one device; set XLA_FLAGS or run where there are several")
    device = jax.devices()[0]

    def timed(fn, x):
        jax.block_until_ready(fn(x))  # compile
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(x))
            best = min(best, time.perf_counter() - t0)
        return best

    solver = PDESolver(GrayScott(), SolveConfig(solver="heun", dt0=1.0, adaptive=False))
    nca = NCA(Cells(16), hidden=64, key=jax.random.key(1))
    for n in args.sizes:
        ts = jnp.asarray([0.0, float(args.steps)])
        x0 = gray_scott_seeds(jax.random.key(0), n, seeds=8)
        s0 = jax.random.uniform(jax.random.key(2), (16, n, n))
        cases = {
            "gray_scott_heun": (
                x0,
                jax.jit(lambda x, ts=ts: solver(x, ts)[-1]),
                jax.jit(lambda x, ts=ts: solver(x, ts, split=split)[-1]),
            ),
            "nca_rollout": (
                s0,
                jax.jit(lambda x: nca.rollout(x, args.steps, jax.random.key(3))),
                jax.jit(lambda x: nca.rollout(x, args.steps, jax.random.key(3), split=split)),
            ),
        }
        for name, (x, whole, parted) in cases.items():
            one = timed(whole, jax.device_put(x, device))
            many = timed(parted, split.place(x))
            print(
                json.dumps(
                    {
                        "benchmark": f"split_grid_{name}",
                        "size": n,
                        "steps": args.steps,
                        "devices": split.parts,
                        "platform": device.platform,
                        "seconds_one_device": one,
                        "seconds_split": many,
                        "ratio_split_over_one": many / one,
                        "state_mb_per_device_one": x.nbytes / 2**20,
                        "state_mb_per_device_split": x.nbytes / split.parts / 2**20,
                        "loadavg": os.getloadavg()[0],
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
