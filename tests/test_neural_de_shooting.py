"""Multiple-shooting layers: parareal sweeps reach the sequential solve, boundary by boundary."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest

from diffdyn.common import SolveConfig, solve
from diffdyn.common.neural_de import LinearField, MLPField, MultipleShootingLayer

TIGHT = SolveConfig(solver="dopri5", rtol=1e-10, atol=1e-12)


def pendulum(t, y, args):
    return jnp.stack([y[1], -jnp.sin(y[0]) - 0.1 * y[1]])


def test_n_iterations_reproduce_the_sequential_solve_and_the_matrix_exponential():
    with jax.enable_x64(True):
        a = jnp.array([[-0.1, 1.0], [-1.0, -0.1]])
        field = eqx.tree_at(lambda f: f.matrix, LinearField(2, key=jax.random.key(0)), a)
        y0, ts = jnp.array([1.0, 0.0]), jnp.linspace(0.0, 6.0, 4)
        layer = MultipleShootingLayer(field, iterations=3, solve=TIGHT)
        got = layer(y0, ts)
        want = jnp.stack([jsl.expm(a * t) @ y0 for t in ts])
        np.testing.assert_allclose(got, want, atol=1e-9)


@pytest.mark.heavy
def test_after_k_sweeps_the_first_k_boundaries_are_exact_and_the_error_falls():
    with jax.enable_x64(True):
        y0, ts = jnp.array([2.5, 0.0]), jnp.linspace(0.0, 8.0, 5)
        exact = solve(pendulum, y0, ts, solver="dopri5", rtol=1e-10, atol=1e-12)
        errors = []
        for k in range(5):
            got = MultipleShootingLayer(pendulum, iterations=k, solve=TIGHT)(y0, ts)
            np.testing.assert_allclose(got[: k + 1], exact[: k + 1], atol=1e-8)
            errors.append(float(jnp.max(jnp.abs(got - exact))))
        assert errors[-1] < 1e-8 < errors[0]
        assert all(b <= a for a, b in zip(errors, errors[1:], strict=False))
        # a finer coarse propagator converges in fewer sweeps
        fine_coarse = MultipleShootingLayer(pendulum, iterations=2, solve=TIGHT, coarse_steps=8)
        assert float(jnp.max(jnp.abs(fine_coarse(y0, ts) - exact))) < errors[1] / 10


@pytest.mark.heavy
def test_gradients_flow_through_the_sweeps():
    with jax.enable_x64(True):
        field = MLPField(2, 8, 1, key=jax.random.key(1))
        field = jax.tree_util.tree_map(
            lambda x: x.astype(jnp.float64) if isinstance(x, jax.Array) else x, field
        )
        y0, ts = jnp.array([0.3, -0.2]), jnp.linspace(0.0, 2.0, 3)
        layer = MultipleShootingLayer(field, iterations=2, solve=TIGHT)

        @jax.jit
        def loss(y):
            return jnp.sum(layer(y, ts) ** 2)

        g = jax.grad(loss)(y0)
        eps = 1e-6
        fd = [(loss(y0 + eps * e) - loss(y0 - eps * e)) / (2 * eps) for e in jnp.eye(2)]
        np.testing.assert_allclose(g, fd, rtol=1e-6)
        exact = lambda y: solve(field, y, ts, solver="dopri5", rtol=1e-10, atol=1e-12)  # noqa: E731
        sequential = jax.grad(lambda y: jnp.sum(exact(y) ** 2))(y0)
        np.testing.assert_allclose(g, sequential, rtol=1e-6)


@pytest.mark.heavy  # over 15 s on 2 cores
def test_saves_loads_and_refuses_bad_input(tmp_path):
    layer = MultipleShootingLayer(MLPField(2, 8, 1, key=jax.random.key(2)), iterations=2)
    layer.save(tmp_path / "msl.eqx")
    back = MultipleShootingLayer.load(tmp_path / "msl.eqx")
    ts = jnp.linspace(0.0, 1.0, 4)
    np.testing.assert_array_equal(back(jnp.ones(2), ts), layer(jnp.ones(2), ts))
    with pytest.raises(ValueError, match="iterations must be an int >= 0"):
        MultipleShootingLayer(pendulum, iterations=-1)
    with pytest.raises(ValueError, match="unknown solver"):
        MultipleShootingLayer(pendulum, iterations=1, coarse_solver="rk45")
    with pytest.raises(ValueError, match="strictly increasing"):
        layer(jnp.ones(2), jnp.array([0.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match=r"boundaries \[N \+ 1\]"):
        layer(jnp.ones(2), jnp.array([0.0]))
