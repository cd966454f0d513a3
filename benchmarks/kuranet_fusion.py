"""Where KuraNet's coupling pass spends its time, and whether fusing its elementwise passes helps.

KuraNet's pair MLP (Ricci et al. 2021) evaluates two batch-normalised LeakyReLU layers on all
N^2 pairs: activations ``[N^2, H]``. Its forward and backward are two kinds of work: the
``[N^2, H] @ [H, H]`` products, and elementwise passes (the first layer's broadcast sum and
LeakyReLU, the second batch norm's moments, its normalisation, LeakyReLU and the output
product with ``w3``). This script times, side by side in one run, the gradient of
``sum(K * G)`` (a fixed random ``G``) through:

- ``library``: ``KuraNet`` as it ships (XLA fuses the elementwise passes it sees);
- ``one-pass-moments``: the second batch norm's variance as ``E[a^2] - E[a]^2`` (one
  reduction pass instead of two);
- ``fused-head``: a hand-written backward (``jax.custom_vjp``) for the whole head
  batch norm -> LeakyReLU -> ``w3``, the standard batch-norm gradient
  ``r (g - mean(g) - x_hat mean(g x_hat))`` in two passes;
- ``row-chunked``: ``KuraNet.with_row_chunk`` (blocks of rows that stay in cache, moments
  first, then the output, both under ``lax.map``);

and two floors measured in the same run: the products alone (forward and backward of
``[N^2, H] @ [H, H]``) and one elementwise read-write pass over an ``[N^2, H]`` array.

    python benchmarks/kuranet_fusion.py [--n 100] [--hidden 128] [--repeats 30]

Prints one JSON row per variant (milliseconds per gradient, ratio to ``library``) and a
``floor`` row; the variants' gradients are checked against the library's first.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import jax
import jax.numpy as jnp
from _bench import best_of, check_jax, emit

from diffdyn import oscillators as osc

_EPS, _SLOPE = 1e-5, 0.01


def _leaky(x):
    return jnp.where(x > 0, x, _SLOPE * x)


def _hidden1(m: osc.KuraNet, x):
    """First layer on all pairs, factored as KuraNet factors it: ``[N^2, H]``."""
    f, h = m.feature_dim, m.hidden
    u = x @ m.w1[:, :f].T
    v = x @ m.w1[:, f:].T + m.b1
    scale = jax.lax.rsqrt(jnp.var(u, 0) + jnp.var(v, 0) + _EPS) * m.bn1_scale
    mean = jnp.mean(u, 0) + jnp.mean(v, 0)
    a = ((u - mean) * scale)[:, None, :] + (v * scale + m.bn1_shift)[None]
    return _leaky(a.reshape(-1, h))


def _moments(a2):
    mean = jnp.mean(a2, 0)
    return mean, jnp.maximum(jnp.mean(a2 * a2, 0) - mean * mean, 0.0)


def one_pass_logits(m: osc.KuraNet, x):
    a2 = _hidden1(m, x) @ m.w2.T + m.b2
    mean, var = _moments(a2)
    z = (a2 - mean) * (jax.lax.rsqrt(var + _EPS) * m.bn2_scale) + m.bn2_shift
    return _leaky(z) @ m.w3


@jax.custom_vjp
def _head(a2, scale, shift, w3):
    mean, var = _moments(a2)
    z = (a2 - mean) * (jax.lax.rsqrt(var + _EPS) * scale) + shift
    return _leaky(z) @ w3


def _head_fwd(a2, scale, shift, w3):
    mean, var = _moments(a2)
    r = jax.lax.rsqrt(var + _EPS)
    z = (a2 - mean) * (r * scale) + shift
    return _leaky(z) @ w3, (a2, mean, r, scale, shift, w3)


def _head_bwd(res, g):
    a2, mean, r, scale, shift, w3 = res
    x_hat = (a2 - mean) * r
    z = x_hat * scale + shift
    g_z = jnp.where(z > 0, 1.0, _SLOPE) * (g[:, None] * w3)
    g_x = g_z * scale
    g_a2 = r * (g_x - jnp.mean(g_x, 0) - x_hat * jnp.mean(g_x * x_hat, 0))
    return g_a2, jnp.sum(g_z * x_hat, 0), jnp.sum(g_z, 0), g @ _leaky(z)


_head.defvjp(_head_fwd, _head_bwd)


def fused_head_logits(m: osc.KuraNet, x):
    a2 = _hidden1(m, x) @ m.w2.T + m.b2
    return _head(a2, m.bn2_scale, m.bn2_shift, m.w3)


def _couplings(logits: Callable) -> Callable:
    """``K`` from a logits variant, normalised and symmetrised as ``KuraNet`` does."""

    def k(m: osc.KuraNet, x):
        n = x.shape[0]
        return osc.normalise_coupling(logits(m, x).reshape(n, n), m.normalise, avg_deg=m.avg_deg)

    return k


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--chunk", type=int, default=10, help="rows per block of row-chunked")
    a = p.parse_args()
    emit(benchmark="device", impl="diffdyn", device_kind=check_jax())
    n, h = a.n, a.hidden
    model = osc.KuraNet(2, h, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (n, 2))
    weight = jax.random.normal(jax.random.key(2), (n, n))
    variants = {
        "library": (model, lambda m, x: m(x)),
        "one-pass-moments": (model, _couplings(one_pass_logits)),
        "fused-head": (model, _couplings(fused_head_logits)),
        "row-chunked": (model.with_row_chunk(a.chunk), lambda m, x: m(x)),
    }
    grads = {
        name: jax.jit(jax.grad(lambda m, fn=fn: jnp.sum(fn(m, x) * weight)))
        for name, (_, fn) in variants.items()
    }
    ref = grads["library"](model)
    for name, (m, _) in variants.items():
        got = grads[name](m)
        err = max(
            float(jnp.max(jnp.abs(g - r)) / (jnp.max(jnp.abs(r)) + 1e-30))
            for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True)
            if r.size > 1 and float(jnp.max(jnp.abs(r))) > 1e-3  # BN-cancelled biases: ~0
        )
        if err > 1e-3:
            raise SystemExit(f"{name}: gradient differs from the library's by {err:.2e}")

    def timed(fn, *args) -> float:
        def run():
            jax.block_until_ready(fn(*args))

        return 1e3 * best_of(lambda: [run() for _ in range(5)], a.repeats, warmup=2) / 5

    # interleaved twice, the best of each kept: drift in machine load hits every variant
    ms = {name: float("inf") for name in variants}
    for _ in range(2):
        for name, (m, _) in variants.items():
            ms[name] = min(ms[name], timed(grads[name], m))
    for name in variants:
        emit(
            benchmark="kuranet_coupling_fusion",
            impl=name,
            n=n,
            hidden=h,
            ms_per_grad=ms[name],
            speedup_vs_library=ms["library"] / ms[name],
        )

    acts = jax.random.normal(jax.random.key(3), (n * n, h))
    w2 = jax.random.normal(jax.random.key(4), (h, h))
    cot = jax.random.normal(jax.random.key(5), (n * n, h))
    product = jax.jit(lambda a, w: jax.vjp(lambda a, w: a @ w.T, a, w))
    backward = jax.jit(lambda a, w: product(a, w)[1](cot))
    forward = jax.jit(lambda a, w: a @ w.T)
    elementwise = jax.jit(lambda a: a * 1.5 + 0.5)
    products = timed(forward, acts, w2) + timed(backward, acts, w2)
    one_pass = timed(elementwise, acts)
    emit(
        benchmark="kuranet_coupling_fusion",
        impl="floor",
        n=n,
        hidden=h,
        products_ms=products,
        elementwise_pass_ms=one_pass,
        # what the library spends beyond its products, in passes over [N^2, H]
        elementwise_passes=(ms["library"] - products) / one_pass,
    )


if __name__ == "__main__":
    main()
