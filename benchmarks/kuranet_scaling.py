"""Cost of one Kuramoto Euler step versus N (dense coupling): it must grow as N^2.

The fast coupling sum (one [N, N] @ [N, 2] product) against the pairwise one (N^2 sines),
both inside a diffrax solve through `diffdyn.oscillators.simulate`.

    python benchmarks/kuranet_scaling.py [--sizes 100,300,1000,3000,10000] [--steps 20]

Prints one JSON object per line per (impl, N), then the fitted exponent p of
seconds ~ N^p over N >= 1000 and the pairwise / fast "ratio" at each N where both ran.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from diffdyn.oscillators import (
    AbstractDelayedVectorField,
    Kuramoto,
    pairwise_coupling_sum,
    simulate,
)


class PairwiseKuramoto(AbstractDelayedVectorField):
    """The same field with the O(N^2)-sines coupling sum (reference)."""

    coupling: jax.Array
    omega: jax.Array
    delays: jax.Array

    def delayed(self, t, theta, theta_delayed, args):
        return self.omega + pairwise_coupling_sum(self.coupling, theta, theta_delayed)


def time_per_step(field, theta0, steps: int, repeats: int = 3) -> float:
    run = jax.jit(lambda f, y: simulate(f, y, dt=0.01, steps=steps, save_every=steps)[-1])
    jax.block_until_ready(run(field, theta0))
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(run(field, theta0))
        best = min(best, time.perf_counter() - t)
    return best / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,300,1000,3000,10000")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--pairwise-max", type=int, default=3000, help="largest N for pairwise")
    a = p.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    fast: dict[int, float] = {}
    for n in sizes:
        k = jax.random.normal(jax.random.key(n), (n, n), jnp.float32) / n
        omega = jnp.linspace(-1, 1, n)
        theta0 = jax.random.uniform(jax.random.key(1), (n,), maxval=6.28)
        fast[n] = time_per_step(Kuramoto(k, omega), theta0, a.steps)
        print(
            json.dumps(
                {"benchmark": "kuramoto_step", "impl": "matmul", "n": n, "seconds": fast[n]}
            ),
            flush=True,
        )
        if n <= a.pairwise_max:
            slow = time_per_step(
                PairwiseKuramoto(k, omega, jnp.zeros(n, jnp.int32)), theta0, a.steps
            )
            print(
                json.dumps(
                    {
                        "benchmark": "kuramoto_step",
                        "impl": "pairwise-sines",
                        "n": n,
                        "seconds": slow,
                    }
                ),
                flush=True,
            )
            print(
                json.dumps(
                    {"benchmark": "kuramoto_step", "impl": "ratio", "n": n, "ratio": slow / fast[n]}
                ),
                flush=True,
            )
        del k
    big = [n for n in sizes if n >= 1000]
    if len(big) >= 2:
        slope = np.polyfit(np.log(big), np.log([fast[n] for n in big]), 1)[0]
        print(
            json.dumps(
                {
                    "benchmark": "kuramoto_step",
                    "impl": "matmul",
                    "fit": "seconds ~ N^p",
                    "sizes": big,
                    "p": float(slope),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
