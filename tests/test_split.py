"""Grids split across devices: the same solve, rollout and gradients as on one device."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import SolveConfig, SplitGrid, laplacian, make_mesh
from diffdyn.nca import NCA, Cells
from diffdyn.pde import GrayScott, Grid, PDESolver

SCRIPT = Path(__file__).with_name("split_grid_check.py")


@pytest.mark.heavy
def test_a_gray_scott_solve_and_an_nca_rollout_split_four_ways_equal_one_device():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIFFDYN_")}
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
        PYTHONPATH=str(SCRIPT.parent.parent),
    )
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == out["parts"] == 4
    # each device holds a quarter of the rows, and the results are those of one device
    assert out["pde_sharded_rows"] == 64 // 4 and out["nca_sharded_rows"] == 32 // 4
    assert out["pde_rel"] < 1e-6 and out["nca_rel"] < 1e-6
    assert out["nca_moved"] > 0.1  # the rollout changed the state: the check can fail
    assert out["pde_grad_rel"] < 1e-4 and out["nca_grad_rel"] < 1e-4
    # a failed solve is NaN under jit and an error outside it
    assert out["pde_failure_jit_nan"] and "max_steps" in out["pde_failure"]


def test_one_band_wraps_onto_itself_like_periodic_padding():
    split = SplitGrid.over(jax.devices()[:1], halo=2)
    x = jax.random.normal(jax.random.key(0), (2, 8, 6))
    mapped = split.map(lambda x, scale: scale * laplacian(x, padding="periodic"))
    np.testing.assert_allclose(mapped(x, 3.0), 3.0 * laplacian(x, padding="periodic"), rtol=1e-6)


def test_splits_are_checked():
    split = SplitGrid.over(jax.devices()[:1], halo=4)
    with pytest.raises(ValueError, match="halo = 4"):
        split.place(jnp.zeros((1, 3, 5)))
    with pytest.raises(ValueError, match="at least the axes"):
        split.sharding(1)
    with pytest.raises(ValueError, match="one-axis mesh named 'space'"):
        SplitGrid(make_mesh(jax.devices()[:1]), halo=1)
    with pytest.raises(ValueError, match="halo must be an int >= 1"):
        SplitGrid.over(halo=0)
    with pytest.raises(ValueError, match="rows of its input"):
        split.map(lambda x: x[..., :1, :])(jnp.zeros((1, 8, 4)))
    one = SplitGrid.over(jax.devices()[:1], halo=1)
    solver = PDESolver(
        GrayScott(grid=Grid(boundary="neumann")), SolveConfig(solver="heun", dt0=1.0)
    )
    with pytest.raises(ValueError, match="periodic rows; this PDE's boundary is 'neumann'"):
        solver(jnp.ones((2, 8, 8)), jnp.arange(2.0), split=one)
    nca = NCA(Cells(4, boundary="neumann"), hidden=8, key=jax.random.key(0))
    with pytest.raises(ValueError, match="periodic rows; this NCA's boundary is 'neumann'"):
        nca.rollout(jnp.ones((4, 8, 8)), 2, jax.random.key(1), split=one)
    with pytest.raises(TypeError, match="split must be a SplitGrid"):
        nca.step(jnp.ones((4, 8, 8)), jax.random.key(1), split="rows")
