"""Gray-Scott on a periodic grid: diffdyn (JAX + diffrax) against scipy's solve_ivp.

Both sides integrate the same semi-discrete system (5-point Laplacian, dx = 1, Richardson et
al. parameters) with the same Dormand-Prince 5(4) method (diffrax ``dopri5`` vs scipy
``RK45``) and the same tolerances. Rows (one JSON object per line):

- ``simulate``: adaptive solve over ``[0, t1]``; throughput = grid cells x accepted steps / s;
- ``gradient``: gradient of a mean-squared loss with respect to (D_A, D_B, F, k) through a
  ``grad_steps``-step fixed-step rollout; diffdyn uses reverse mode through diffrax, scipy
  (which has no gradients) central finite differences, 2 x 4 solves of the same rollout;
- ``ratio``: scipy time / diffdyn time for each of the above (> 1: diffdyn is faster).

Usage: ``python benchmarks/pde_gray_scott.py [--sizes 128 256] [--t1 200] [--grad-steps 100]``.
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _bench import best_of, check_jax, emit
from scipy.integrate import solve_ivp

from diffdyn.common import SolveConfig
from diffdyn.pde import GrayScott, PDESolver, gray_scott_seeds

PARAMS = {"diffusion_a": 0.1, "diffusion_b": 0.05, "feed": 0.0623, "kill": 0.06268}


def scipy_rhs(n: int, p: dict[str, float]):
    def f(t, y):
        u = y.reshape(2, n, n)
        lap = np.roll(u, 1, 1) + np.roll(u, -1, 1) + np.roll(u, 1, 2) + np.roll(u, -1, 2) - 4 * u
        a, b = u[0], u[1]
        abb = a * b * b
        da = p["diffusion_a"] * lap[0] - abb + p["feed"] * (1 - a)
        db = p["diffusion_b"] * lap[1] + abb - (p["feed"] + p["kill"]) * b
        return np.stack([da, db]).ravel()

    return f


def bench_simulate(n: int, t1: float, rtol: float, atol: float, repeats: int) -> None:
    x0 = gray_scott_seeds(jax.random.key(0), n, seeds=max(1, n * n // 1024))
    adaptive = SolveConfig(solver="dopri5", dt0=1.0, rtol=rtol, atol=atol, max_steps=100_000)
    model = PDESolver(GrayScott(**PARAMS), adaptive)
    ts = jnp.array([0.0, t1])
    solve = eqx.filter_jit(lambda m, x: m.solve.solve_full(m.vector_field, x, ts))
    sol = jax.block_until_ready(solve(model, x0))  # compile
    steps = int(sol.stats["num_accepted_steps"])
    seconds = best_of(lambda: jax.block_until_ready(solve(model, x0).ys), repeats, warmup=0)
    emit(
        benchmark="simulate",
        impl="diffdyn",
        size=n,
        t1=t1,
        steps=steps,
        seconds=seconds,
        cells_steps_per_s=n * n * steps / seconds,
    )
    y0 = np.asarray(x0, np.float64).ravel()
    f = scipy_rhs(n, PARAMS)
    out = {}

    def run_scipy():
        out["sol"] = solve_ivp(f, (0.0, t1), y0, method="RK45", rtol=rtol, atol=atol)

    sp_seconds = best_of(run_scipy, max(1, repeats // 2), warmup=0)
    sp_steps = len(out["sol"].t) - 1
    emit(
        benchmark="simulate",
        impl="scipy-RK45",
        size=n,
        t1=t1,
        steps=sp_steps,
        seconds=sp_seconds,
        cells_steps_per_s=n * n * sp_steps / sp_seconds,
    )
    final_jax = np.asarray(sol.ys[-1]).ravel()
    diff = float(np.max(np.abs(final_jax - out["sol"].y[:, -1])))
    emit(
        benchmark="simulate",
        impl="ratio",
        size=n,
        speedup_seconds=sp_seconds / seconds,
        speedup_throughput=(n * n * steps / seconds) / (n * n * sp_steps / sp_seconds),
        max_abs_difference=diff,
    )


def bench_gradient(n: int, steps: int, dt: float, repeats: int) -> None:
    x0 = gray_scott_seeds(jax.random.key(0), n, seeds=max(1, n * n // 1024))
    t1 = steps * dt
    ts = jnp.array([0.0, t1])
    fixed = SolveConfig(solver="dopri5", dt0=dt, adaptive=False, max_steps=steps + 1)
    target = np.asarray(PDESolver(GrayScott(**PARAMS), fixed)(x0, ts)[-1])
    names = list(PARAMS)

    def loss(theta):
        model = PDESolver(GrayScott(**PARAMS), fixed)
        model = eqx.tree_at(lambda m: [getattr(m.rhs, k) for k in names], model, list(theta))
        return jnp.mean((model(x0, ts)[-1] - target) ** 2)

    theta = [jnp.asarray(PARAMS[k] * 1.05, dtype=float) for k in names]
    grad = jax.jit(jax.grad(loss))
    jax.block_until_ready(grad(theta))  # compile
    seconds = best_of(lambda: jax.block_until_ready(grad(theta)), repeats, warmup=0)
    emit(benchmark="gradient", impl="diffdyn", size=n, steps=steps, seconds=seconds)

    y0 = np.asarray(x0, np.float64).ravel()
    theta_np = {k: PARAMS[k] * 1.05 for k in names}

    def sp_loss(p):
        sol = solve_ivp(
            scipy_rhs(n, p),
            (0.0, t1),
            y0,
            method="RK45",
            first_step=dt,
            max_step=dt,
            rtol=1e3,
            atol=1e3,
        )
        return float(np.mean((sol.y[:, -1] - target.ravel()) ** 2))

    def fd_gradient():
        g = []
        for k in names:
            h = 1e-6 * max(abs(theta_np[k]), 1.0)
            g.append(
                (
                    sp_loss({**theta_np, k: theta_np[k] + h})
                    - sp_loss({**theta_np, k: theta_np[k] - h})
                )
                / (2 * h)
            )
        return g

    sp_seconds = best_of(fd_gradient, 1, warmup=0)
    emit(
        benchmark="gradient",
        impl="scipy-RK45-finite-differences",
        size=n,
        steps=steps,
        seconds=sp_seconds,
    )
    emit(benchmark="gradient", impl="ratio", size=n, steps=steps, speedup=sp_seconds / seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--t1", type=float, default=200.0)
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--atol", type=float, default=1e-6)
    p.add_argument("--grad-steps", type=int, default=100)
    p.add_argument("--dt", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--x64", action="store_true", help="float64 on the diffdyn side too")
    args = p.parse_args()
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    emit(
        benchmark="device",
        impl="diffdyn",
        device_kind=check_jax(),
        x64=bool(jax.config.jax_enable_x64),
    )
    for n in args.sizes:
        bench_simulate(n, args.t1, args.rtol, args.atol, args.repeats)
        bench_gradient(n, args.grad_steps, args.dt, args.repeats)


if __name__ == "__main__":
    main()
