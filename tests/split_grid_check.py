"""Split-grid runs against one-device runs, executed in a subprocess by tests/test_split.py.

Usage: ``XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/split_grid_check.py``.
Prints one JSON line: the largest relative differences between the split and the unsplit
results and gradients of a Gray-Scott solve and of an NCA rollout, and how the split arrays
are laid out.
"""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from diffdyn.common import SolveConfig, SplitGrid
from diffdyn.nca import NCA, Cells
from diffdyn.pde import GrayScott, PDESolver, gray_scott_seeds


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def grad_rel(ga, gb):
    la = jax.tree_util.tree_leaves(eqx.filter(ga, eqx.is_inexact_array))
    lb = jax.tree_util.tree_leaves(eqx.filter(gb, eqx.is_inexact_array))
    return max(rel(a, b) for a, b in zip(la, lb, strict=True))


def main() -> None:
    split = SplitGrid.over(halo=1)
    out = {"devices": len(jax.devices()), "parts": split.parts}

    # Gray-Scott, 64 x 32, periodic, Heun steps; gradient of a loss w.r.t. the model
    model = PDESolver(GrayScott(), SolveConfig(solver="heun", dt0=1.0, adaptive=False))
    x0 = gray_scott_seeds(jax.random.key(0), (64, 32), seeds=4)
    ts = jnp.linspace(0.0, 40.0, 5)

    def pde_loss(m, split):
        return jnp.mean(m(x0, ts, split=split)[-1] ** 2)

    one = jax.jit(lambda m: m(x0, ts))(model)
    many = jax.jit(lambda m: m(x0, ts, split=split))(model)
    out["pde_rel"] = rel(many, one)
    out["pde_sharded_rows"] = many.sharding.shard_shape(many.shape)[-2]
    g_one = jax.jit(jax.grad(lambda m: pde_loss(m, None)))(model)
    g_many = jax.jit(jax.grad(lambda m: pde_loss(m, split)))(model)
    out["pde_grad_rel"] = grad_rel(g_many, g_one)
    short = PDESolver(GrayScott(), SolveConfig(solver="tsit5", dt0=0.1, adaptive=True, max_steps=3))
    out["pde_failure_jit_nan"] = bool(
        jnp.isnan(jax.jit(lambda: short(x0, ts, split=split))()).all()
    )
    try:
        short(x0, ts, split=split)
        out["pde_failure"] = ""
    except RuntimeError as e:
        out["pde_failure"] = str(e)

    # NCA rollout with stochastic updates and alive masking, 32 x 16
    nca = NCA(Cells(8, alive_threshold=0.1), hidden=32, key=jax.random.key(1))
    last = nca.net.output_layer.weight
    nca = eqx.tree_at(  # a non-zero last layer, so that the rollout moves
        lambda m: m.net.output_layer.weight,
        nca,
        0.1 * jax.random.normal(jax.random.key(2), last.shape),
    )
    s0 = jax.random.uniform(jax.random.key(3), (8, 32, 16))
    key = jax.random.key(4)

    def nca_loss(m, split):
        return jnp.mean(m.rollout(s0, 12, key, split=split) ** 2)

    one = jax.jit(lambda m: m.rollout(s0, 12, key, every=4))(nca)
    many = jax.jit(lambda m: m.rollout(s0, 12, key, every=4, split=split))(nca)
    out["nca_rel"] = rel(many, one)
    out["nca_sharded_rows"] = many.sharding.shard_shape(many.shape)[-2]
    out["nca_moved"] = rel(one[-1], one[0])
    g_one = jax.jit(jax.grad(lambda m: nca_loss(m, None)))(nca)
    g_many = jax.jit(jax.grad(lambda m: nca_loss(m, split)))(nca)
    out["nca_grad_rel"] = grad_rel(g_many, g_one)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
