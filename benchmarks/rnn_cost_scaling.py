"""How the cost of a Lyapunov spectrum scales: seconds versus N, k, t_sim and t_ons.

`diffdyn.rnn.lyapunov_spectrum` of a tanh rate network (float64, g = 2, Euler dt = 0.1, no
transients, nothing differentiated) is timed while one setting varies and the others stay at
the base point (``--base N:k:t_sim:t_ons``, default 200:20:200:1):

- ``n``: network size N (one step is an [N, N] x [N, k + 1] product: ~N^2);
- ``k``: number of exponents (the product ~k, one thin QR of [N, k] per t_ons ~k^2);
- ``t_sim``: measured time (steps and QRs both ~t_sim);
- ``t_ons``: time between QRs (only the QR count, t_sim / t_ons, changes).

Each point is the best of ``--repeats`` runs after a compiling one. Per setting a ``fit`` row
gives the power-law exponent b of seconds ~ a x^b (least squares of log seconds on log x),
its R^2, and the exponent the operation count gives over the same points (2 N^2 (k + 1) per
step, 4 N k^2 - 4 k^3 / 3 per QR), so that a measured exponent below the count's shows a
fixed overhead. One JSON object per line.
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx
import numpy as np
from _bench import best_of, check_jax, emit

from diffdyn.rnn import RateRNN, lyapunov_spectrum


def flops(n: int, k: int, t_sim: float, t_ons: float, dt: float) -> float:
    """Floating-point operations of one measurement (the products and the QRs)."""
    blocks = int(np.ceil(t_sim / t_ons - 1e-9))
    steps = blocks * round(t_ons / dt)
    return steps * 2 * n * n * (k + 1) + blocks * (4 * n * k * k - 4 * k**3 / 3)


def power_law(x, y) -> tuple[float, float, float]:
    """``(b, a, R^2)`` of the least-squares line log y = log a + b log x."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    b, log_a = np.polyfit(lx, ly, 1)
    residual = ly - (log_a + b * lx)
    r2 = 1.0 - np.sum(residual**2) / np.sum((ly - ly.mean()) ** 2)
    return float(b), float(np.exp(log_a)), float(r2)


def time_point(n: int, k: int, t_sim: float, t_ons: float, repeats: int) -> dict:
    model = RateRNN(n, g=2.0, key=jax.random.key(1))
    h0 = jax.random.normal(jax.random.key(2), (n,))
    f = eqx.filter_jit(
        lambda m, h: (
            lyapunov_spectrum(
                m,
                h,
                key=jax.random.key(3),
                n_exponents=k,
                t_sim=t_sim,
                t_ons=t_ons,
                t_transient=0.0,
                t_ons_transient=0.0,
                checkpoint=False,
            ).exponents
        )
    )
    t0 = time.perf_counter()
    lam = np.asarray(f(model, h0))
    first = time.perf_counter() - t0
    seconds = best_of(lambda: f(model, h0).block_until_ready(), repeats, warmup=0)
    work = flops(n, k, t_sim, t_ons, model.dt)
    return {
        "n": n,
        "k": k,
        "t_sim": t_sim,
        "t_ons": t_ons,
        "seconds": seconds,
        "compile_and_first_run_seconds": first,
        "gflops": work / seconds / 1e9,
        "lambda_max": float(lam.max()),
        "flops": work,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="200:20:200:1", help="N:k:t_sim:t_ons held fixed")
    p.add_argument("--ns", default="100,200,400,800")
    p.add_argument("--ks", default="5,10,20,40,80")
    p.add_argument("--t-sims", default="100,200,400,800")
    p.add_argument("--t-onss", default="0.2,0.5,1,2,5")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    kind = check_jax()
    n0, k0, t0, o0 = args.base.split(":")
    base = {"n": int(n0), "k": int(k0), "t_sim": float(t0), "t_ons": float(o0)}
    sweeps = {
        "n": [int(x) for x in args.ns.split(",")],
        "k": [int(x) for x in args.ks.split(",")],
        "t_sim": [float(x) for x in args.t_sims.split(",")],
        "t_ons": [float(x) for x in args.t_onss.split(",")],
    }
    emit(benchmark="rnn_cost_scaling", impl="setup", device_kind=kind, **base)
    for name, values in sweeps.items():
        points = []
        for value in values:
            settings = {**base, name: value}
            row = time_point(**settings, repeats=args.repeats)
            points.append(row)
            emit(benchmark="rnn_cost_scaling", impl="point", vary=name, **row)
        x = [r[name] for r in points]
        b, a, r2 = power_law(x, [r["seconds"] for r in points])
        b_flops, _, _ = power_law(x, [r["flops"] for r in points])
        emit(
            benchmark="rnn_cost_scaling",
            impl="fit",
            vary=name,
            exponent=round(b, 3),
            prefactor=a,
            r2=round(r2, 4),
            flop_exponent=round(b_flops, 3),
            values=x,
            fixed={k: v for k, v in base.items() if k != name},
        )


if __name__ == "__main__":
    main()
