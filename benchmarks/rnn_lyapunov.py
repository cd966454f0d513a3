"""Benettin/QR Lyapunov spectra: diffdyn (JAX) versus the same algorithm in numpy (and torch).

Cases (float64, tanh network, Euler dt = 0.1, one QR per time unit, over ``--t-sim`` time
units, no transients): the full spectrum of N = 500 and the first 50 exponents of N = 2000.
Implementations:

- ``jax``: `diffdyn.rnn.lyapunov_spectrum` as users call it: the state and the k
  tangent vectors pushed together by `RateRNN.variational_step` (one
  [N, N] x [N, k + 1] product per step) and the QR of `diffdyn.rnn.qr` (XLA-only on CPU);
- ``jax-linearize``: the same with ``fused=False``: jax.linearize of the diffrax Euler step,
  vmapped over the k tangent vectors (a [N, N] x [N, k] and a matrix-vector product);
- ``numpy-jacobian``: the loop of the Engelken, Wolf & Abbott demo (RNN-LyapunovSpectra),
  forming the Jacobian D = (1 - dt) I + dt J diag(phi'(h_n)) every step and multiplying D @ Q;
- ``numpy-matfree``: the same without forming D: Q <- (1 - dt) Q + dt J (phi'(h_n) * Q);
- ``torch``: numpy-matfree in PyTorch (on ``cuda`` under ``DIFFDYN_BENCH_DEVICE=gpu``), if
  torch is installed.

Achieved FLOP/s count 2 N^2 k + 2 N^2 per step and 4 N k^2 - 4 k^3 / 3 per QR, and are
compared with this machine's measured float64 matmul peak (jnp.dot of 2000 x 2000).
Timings are the best of ``--repeats`` runs, except ``numpy-jacobian`` (one run).
One JSON object per line.
"""

from __future__ import annotations

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from _bench import best_of, check_jax, emit, torch_setup

from diffdyn.rnn import (
    RateRNN,
    lyapunov_spectrum,
)


def matmul_peak(n=2000, repeats=5):
    a = jax.random.normal(jax.random.key(0), (n, n))
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    sec = best_of(lambda: f(a).block_until_ready(), repeats, warmup=0)
    return 2 * n**3 / sec


def flops(n, k, steps, n_qr):
    return steps * (2 * n * n * k + 2 * n * n) + n_qr * (4 * n * k * k - 4 * k**3 / 3)


def numpy_benettin(j, h, q, dt, steps_per_ons, n_ons, form_jacobian):
    n = j.shape[0]
    logs = np.zeros(q.shape[1])
    eye = np.eye(n)
    for _ in range(n_ons):
        for _ in range(steps_per_ons):
            slope = 1.0 - np.tanh(h) ** 2
            if form_jacobian:
                d = (1 - dt) * eye + dt * j * slope[None, :]
                q = d @ q
            else:
                q = (1 - dt) * q + dt * (j @ (slope[:, None] * q))
            h = (1 - dt) * h + dt * (j @ np.tanh(h))
        q, r = np.linalg.qr(q)
        logs += np.log(np.abs(np.diag(r)))
    return logs / (n_ons * steps_per_ons * dt)


def torch_benettin(torch, j, h, q, dt, steps_per_ons, n_ons):
    logs = torch.zeros(q.shape[1], dtype=torch.float64)
    for _ in range(n_ons):
        for _ in range(steps_per_ons):
            slope = 1.0 - torch.tanh(h) ** 2
            q = (1 - dt) * q + dt * (j @ (slope[:, None] * q))
            h = (1 - dt) * h + dt * (j @ torch.tanh(h))
        q, r = torch.linalg.qr(q)
        logs += torch.log(torch.abs(torch.diagonal(r)))
    return logs / (n_ons * steps_per_ons * dt)


def run_case(n, k, t_sim, g, repeats, with_torch, peak):
    model = RateRNN(n, g=g, key=jax.random.key(1))  # Euler steps of dt = 0.1 (STEP_SOLVE)
    dt, t_ons = model.dt, 1.0
    steps_per_ons, n_ons = round(t_ons / dt), round(t_sim / t_ons)
    h0 = jax.random.normal(jax.random.key(2), (n,))
    work = flops(n, k, steps_per_ons * n_ons, n_ons)
    case = {"n": n, "k": k, "t_sim": t_sim}
    lam, rows = {}, {}
    for name, fused in (("jax", True), ("jax-linearize", False)):
        f = eqx.filter_jit(
            lambda m, h, fused=fused: (
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
                    fused=fused,
                ).exponents
            )
        )
        t0 = time.perf_counter()
        lam[name] = np.asarray(f(model, h0))
        first = time.perf_counter() - t0
        sec = best_of(lambda f=f: f(model, h0).block_until_ready(), repeats, warmup=0)
        if name == "jax":
            sec_jax = sec
        else:
            rows[name] = sec
        emit(
            benchmark="rnn_lyapunov",
            impl=name,
            **case,
            seconds=sec,
            compile_and_first_run_seconds=first,
            gflops=work / sec / 1e9,
            fraction_of_peak=work / sec / peak,
            max_abs_diff_vs_jax=float(np.abs(lam[name] - lam["jax"]).max()),
        )
    lam_jax = lam["jax"]
    j = np.asarray(model.coupling)
    q0 = np.asarray(jnp.linalg.qr(jax.random.normal(jax.random.key(3), (n, k)))[0])
    for name, form in (("numpy-jacobian", True), ("numpy-matfree", False)):
        out = {}

        def run(form=form, out=out):
            out["lam"] = numpy_benettin(j, np.asarray(h0), q0, dt, steps_per_ons, n_ons, form)

        sec = best_of(run, 1 if form else repeats, warmup=0)
        rows[name] = sec
        emit(
            benchmark="rnn_lyapunov",
            impl=name,
            **case,
            seconds=sec,
            gflops=work / sec / 1e9,
            fraction_of_peak=work / sec / peak,
            max_abs_diff_vs_jax=float(np.abs(out["lam"] - lam_jax).max()),
        )
    if with_torch:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            dev = torch_setup()
            tj, th, tq = (torch.from_numpy(np.array(x)).to(dev) for x in (j, np.asarray(h0), q0))
            torch_benettin(torch, tj, th, tq, dt, steps_per_ons, 1)  # warm-up
            out = {}

            def run_torch(out=out):
                lam = torch_benettin(torch, tj, th, tq, dt, steps_per_ons, n_ons)
                out["lam"] = lam.cpu().numpy()

            sec = best_of(run_torch, repeats, warmup=0)
            rows["torch"] = sec
            emit(
                benchmark="rnn_lyapunov",
                impl="torch",
                **case,
                seconds=sec,
                gflops=work / sec / 1e9,
                fraction_of_peak=work / sec / peak,
                max_abs_diff_vs_jax=float(np.abs(out["lam"] - lam_jax).max()),
            )
    for name, sec in rows.items():
        emit(benchmark="rnn_lyapunov", impl=f"ratio {name}/jax", **case, ratio=sec / sec_jax)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--t-sim", type=float, default=100.0)
    p.add_argument("--g", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--cases", default="500:500,2000:50", help="N:k pairs")
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()
    peak = matmul_peak()
    emit(
        benchmark="rnn_lyapunov",
        impl="jnp.dot float64 2000^3",
        gflops=peak / 1e9,
        device_kind=check_jax(),
    )
    for pair in args.cases.split(","):
        n, k = (int(x) for x in pair.split(":"))
        run_case(n, k, args.t_sim, args.g, args.repeats, not args.no_torch, peak)


if __name__ == "__main__":
    main()
