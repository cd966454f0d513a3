"""Achieved fraction of memory bandwidth: the NCA update and the PDE step, beside a copy kernel.

Both updates are memory-bound stencils: each step must at least read the state once and write
it once, so ``bytes per step = 2 * state bytes`` is the least any implementation moves (the
NCA's hidden activations and the PDE's Laplacian can stay in registers or caches when fused).
The peak is measured in the same run by a scaling kernel ``y = a * x`` on a large array
(``2 * bytes`` moved per call: one read, one write), so rows compare like with like on any
device. Rows (one JSON object per line):

- ``copy``: the measured peak in GB/s;
- ``nca_update``: ``rollout_batch`` of a 16-channel NCA (hidden 128), state ``[B, 16, H, W]``;
- ``pde_step``: Gray-Scott fixed-step Euler through ``PDESolver`` (diffrax), state ``[2, H, W]``;
  and the same Euler loop written by hand with ``jnp.roll`` (no diffrax), the floor for a
  plain JAX implementation;

each with ``seconds_per_step``, ``gb_per_s`` (state bytes x 2 / time) and ``fraction`` of the
copy peak. The NCA also does arithmetic (about ``2 * 4C * hidden * 2`` FLOPs per cell), so
its fraction is bounded by compute well before bandwidth on a CPU. A state that fits in the
last-level cache can beat the copy peak (a fraction above 1): the defaults on ``gpu`` keep
every state at 128 MiB, past the H100/H200's 50-60 MB L2.

    python benchmarks/bandwidth.py                 # CPU sizes
    DIFFDYN_BENCH_DEVICE=gpu python benchmarks/bandwidth.py   # GPU sizes
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
from _bench import best_of, check_jax, device, emit

from diffdyn.common import SolveConfig
from diffdyn.nca import NCA, Cells, rollout_batch
from diffdyn.pde import GrayScott, PDESolver, gray_scott_seeds

GRAY_SCOTT = {"diffusion_a": 0.1, "diffusion_b": 0.05, "feed": 0.0623, "kill": 0.06268}


def copy_peak(mib: int, repeats: int) -> float:
    """Bytes per second of ``y = a * x`` on a float32 array of ``mib`` MiB (read + write)."""
    x = jnp.ones((mib * 2**18,), jnp.float32)
    scale = jax.jit(lambda x: x * 1.0001)
    seconds = best_of(lambda: scale(x).block_until_ready(), repeats, warmup=2)
    return 2 * x.nbytes / seconds


def nca_rate(batch: int, size: int, channels: int, hidden: int, steps: int, repeats: int):
    key = jax.random.key(0)
    model = NCA(Cells(channels, fire_rate=0.5, alive_threshold=0.1), hidden=hidden, key=key)
    w = 0.01 * jax.random.normal(jax.random.key(1), model.net.output_layer.weight.shape)
    model = eqx.tree_at(lambda m: m.net.output_layer.weight, model, w)
    x0 = jnp.zeros((batch, channels, size, size)).at[:, 3:, ::7, ::7].set(1.0)
    run = eqx.filter_jit(lambda m, x, k: rollout_batch(m, x, steps, k))
    seconds = best_of(lambda: run(model, x0, key).block_until_ready(), repeats)
    return seconds / steps, x0.nbytes


def pde_rates(size: int, steps: int, repeats: int):
    x0 = gray_scott_seeds(jax.random.key(0), size, seeds=max(1, size * size // 1024))
    fixed = SolveConfig(solver="euler", dt0=1.0, adaptive=False, max_steps=steps + 1)
    solver = PDESolver(GrayScott(**GRAY_SCOTT), fixed)
    ts = jnp.array([0.0, float(steps)])
    run = eqx.filter_jit(lambda m, x: m(x, ts)[-1])
    diffrax_seconds = best_of(lambda: run(solver, x0).block_until_ready(), repeats)

    p = GRAY_SCOTT

    def euler(_, u):
        lap = sum(jnp.roll(u, s, a) for s in (1, -1) for a in (1, 2)) - 4 * u
        a, b = u[0], u[1]
        abb = a * b * b
        da = p["diffusion_a"] * lap[0] - abb + p["feed"] * (1 - a)
        db = p["diffusion_b"] * lap[1] + abb - (p["feed"] + p["kill"]) * b
        return u + jnp.stack([da, db])

    hand = jax.jit(lambda u: jax.lax.fori_loop(0, steps, euler, u))
    hand_seconds = best_of(lambda: hand(x0).block_until_ready(), repeats)
    return diffrax_seconds / steps, hand_seconds / steps, x0.nbytes


def main() -> None:
    gpu = device() == "gpu"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--copy-mib", type=int, default=1024 if gpu else 128)
    p.add_argument("--nca-batch", type=int, default=8)
    p.add_argument("--nca-size", type=int, default=512 if gpu else 64)
    p.add_argument("--nca-steps", type=int, default=64 if gpu else 8)
    p.add_argument("--pde-size", type=int, default=4096 if gpu else 256)
    p.add_argument("--pde-steps", type=int, default=1000 if gpu else 100)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    kind = check_jax()
    peak = copy_peak(a.copy_mib, a.repeats)
    emit(benchmark="copy", impl="jax", device_kind=kind, mib=a.copy_mib, gb_per_s=peak / 1e9)

    def row(benchmark: str, impl: str, seconds: float, state_bytes: int, **sizes) -> None:
        rate = 2 * state_bytes / seconds
        emit(
            benchmark=benchmark,
            impl=impl,
            device_kind=kind,
            **sizes,
            seconds_per_step=seconds,
            gb_per_s=rate / 1e9,
            fraction=rate / peak,
        )

    seconds, nbytes = nca_rate(a.nca_batch, a.nca_size, 16, 128, a.nca_steps, a.repeats)
    row("nca_update", "diffdyn", seconds, nbytes, batch=a.nca_batch, size=a.nca_size, channels=16)
    diffrax_s, hand_s, nbytes = pde_rates(a.pde_size, a.pde_steps, a.repeats)
    row("pde_step", "diffdyn PDESolver euler", diffrax_s, nbytes, size=a.pde_size)
    row("pde_step", "hand-written jnp.roll euler", hand_s, nbytes, size=a.pde_size)


if __name__ == "__main__":
    main()
