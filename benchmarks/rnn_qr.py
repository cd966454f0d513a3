"""Which QR for the Benettin loop on CPU: diffdyn's XLA Householder QR against LAPACK's,
with OpenBLAS free to use its threads and held to one thread.

`diffdyn.rnn.lyapunov_spectrum` re-orthonormalises the k tangent vectors with the QR of
`diffdyn.rnn.qr`, which on CPU is `diffdyn.rnn.householder_qr`: a blocked Householder QR in
plain XLA operations, written because LAPACK's QR (what ``jnp.linalg.qr`` calls on CPU: the
``geqrf``/``orgqr`` of SciPy's OpenBLAS) leaves OpenBLAS threads spinning, which slowed XLA's
matrix products between the QRs. This script measures, side by side in one run, the full
Lyapunov computation with

- ``xla-householder``: the QR as shipped (`diffdyn.rnn.qr`);
- ``lapack``: ``jnp.linalg.qr``, OpenBLAS with its default threads;
- ``lapack-1thread``: ``jnp.linalg.qr`` with every call run inside threadpoolctl's
  ``threadpool_limits(1, "blas")`` (OpenBLAS on one thread; XLA's own threads untouched).

XLA's own CPU QR is not among them: JAX lowers ``jnp.linalg.qr`` on CPU to LAPACK custom
calls (the ``hlo`` row lists the custom-call targets of each variant's compiled program),
and offers no XLA-only QR to choose instead.

Each variant passes its QR to `lyapunov_spectrum` through its ``qr`` argument.

Setting (as ``benchmarks/rnn_lyapunov.py``): float64, a tanh `RateRNN` with g = 2, Euler
dt = 0.1, one QR per time unit over ``--t-sim`` time units, no transients, tangents pushed by
the fused variational step; cases N = 500 with k = 500 and N = 2000 with k = 50. Calls are
interleaved (one call of each variant per round, ``--repeats`` rounds) so that the load of
this shared machine falls on all variants alike; rows give the best and the median, the
compile time (the two LAPACK variants compile the same program, so the second may be
served from JAX's in-memory compilation cache), the largest difference of the exponents
from ``xla-householder``, the OpenBLAS thread count in force, the load average after each
round, and every row the 1-minute load average. ``ratio`` rows are
variant time / ``xla-householder`` time (> 1: the shipped QR is faster). CPU only: on a GPU
`diffdyn.rnn.qr` already is ``jnp.linalg.qr`` (``DIFFDYN_BENCH_DEVICE=gpu`` stops here).

Usage::

    python benchmarks/rnn_qr.py [--t-sim 5] [--repeats 3] [--cases 500:500,2000:50]
        [--g 2.0]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from contextlib import nullcontext

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
from _bench import check_jax, device, emit
from threadpoolctl import threadpool_info, threadpool_limits

from diffdyn.rnn import RateRNN, lyapunov_spectrum
from diffdyn.rnn import qr as shipped_qr

BENCH = "rnn_qr"


def lapack_qr(a, phases=None):
    """``jnp.linalg.qr`` (LAPACK on CPU), with the signature of `diffdyn.rnn.qr`."""
    del phases
    return tuple(jnp.linalg.qr(a))


VARIANTS = {
    "xla-householder": (shipped_qr, False),
    "lapack": (lapack_qr, False),
    "lapack-1thread": (lapack_qr, True),
}


def openblas_threads():
    return [d["num_threads"] for d in threadpool_info() if d["internal_api"] == "openblas"]


def limit(one_thread):
    return threadpool_limits(1, "blas") if one_thread else nullcontext()


def build(qr, model, h0, k, t_sim, one_thread):
    """The variant's jitted spectrum, traced and compiled with ``qr`` as its QR: (fn,
    compile + first call seconds, exponents, custom-call targets of the compiled HLO)."""

    def spectrum(m, h):
        return lyapunov_spectrum(
            m,
            h,
            key=jax.random.key(3),
            n_exponents=k,
            t_sim=t_sim,
            t_ons=1.0,
            t_transient=0.0,
            t_ons_transient=0.0,
            checkpoint=False,
            fused=True,
            qr=qr,
        ).exponents

    with limit(one_thread):
        t0 = time.perf_counter()
        fn = jax.jit(spectrum).lower(model, h0).compile()
        lam = np.asarray(fn(model, h0))
        first = time.perf_counter() - t0
    targets = sorted(set(re.findall(r'custom_call_target="([^"]+)"', fn.as_text())))
    return fn, first, lam, targets


def run_case(n, k, args):
    model = RateRNN(n, g=args.g, key=jax.random.key(1))
    h0 = jax.random.normal(jax.random.key(2), (n,))
    case = {"n": n, "k": k, "t_sim": args.t_sim}
    built = {}
    for name, (qr, one_thread) in VARIANTS.items():
        built[name] = build(qr, model, h0, k, args.t_sim, one_thread)
        emit(
            benchmark=BENCH,
            impl=f"hlo {name}",
            **case,
            custom_calls=built[name][3],
            compile_and_first_run_seconds=built[name][1],
        )
    times = {name: [] for name in VARIANTS}
    loads = []
    for _ in range(args.repeats):
        for name, (_, one_thread) in VARIANTS.items():
            fn = built[name][0]
            with limit(one_thread):
                t0 = time.perf_counter()
                fn(model, h0).block_until_ready()
                times[name].append(time.perf_counter() - t0)
        loads.append(round(os.getloadavg()[0], 2))
    ref = built["xla-householder"][2]
    best = {name: min(ts) for name, ts in times.items()}
    for name, (_, one_thread) in VARIANTS.items():
        with limit(one_thread):
            threads = openblas_threads()
        emit(
            benchmark=BENCH,
            impl=name,
            **case,
            seconds=best[name],
            median_seconds=statistics.median(times[name]),
            compile_and_first_run_seconds=built[name][1],
            max_abs_diff_vs_householder=float(np.abs(built[name][2] - ref).max()),
            openblas_threads=threads,
            loadavg_per_round=loads,
        )
    for name in VARIANTS:
        if name != "xla-householder":
            per_round = [a / b for a, b in zip(times[name], times["xla-householder"], strict=True)]
            emit(
                benchmark=BENCH,
                impl=f"ratio {name}/xla-householder",
                **case,
                ratio=best[name] / best["xla-householder"],
                median_round_ratio=statistics.median(per_round),
            )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--t-sim", type=float, default=5.0, help="measured time units (QRs)")
    p.add_argument("--g", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    p.add_argument("--cases", default="500:500,2000:50", help="N:k pairs")
    args = p.parse_args()
    if device() != "cpu":
        sys.exit("rnn_qr compares CPU QRs; on a GPU diffdyn.rnn.qr is jnp.linalg.qr already")
    emit(
        benchmark="device",
        impl="diffdyn",
        device_kind=check_jax(),
        openblas=[(d["filepath"].rsplit("/", 1)[-1], d["num_threads"]) for d in threadpool_info()],
    )
    for pair in args.cases.split(","):
        n, k = (int(x) for x in pair.split(":"))
        run_case(n, k, args)


if __name__ == "__main__":
    main()
