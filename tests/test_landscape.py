"""Loss-landscape tools against dense Hessians and closed forms."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from diffdyn.common import hutchinson_trace, hvp, loss_surface, pca_path, top_eigenpairs


@pytest.fixture(scope="module")
def problem():
    """A tiny MLP regression loss and its dense Hessian."""
    with jax.enable_x64(True):
        key = jax.random.key(0)
        mlp = eqx.nn.MLP(2, 1, 4, 1, activation=jnp.tanh, key=key)
        params, static = eqx.partition(mlp, eqx.is_inexact_array)
        x = jax.random.normal(jax.random.key(1), (16, 2))
        y = jnp.sin(x[:, :1])

        def loss(p):
            model = eqx.combine(p, static)
            return jnp.mean((jax.vmap(model)(x) - y) ** 2)

        flat, unravel = ravel_pytree(params)
        dense = np.asarray(jax.hessian(lambda f: loss(unravel(f)))(flat))
        yield loss, params, dense


def test_hvp_matches_dense_hessian(problem):
    loss, params, dense = problem
    with jax.enable_x64(True):
        v = jax.random.normal(jax.random.key(2), (dense.shape[0],))
        _, unravel = ravel_pytree(params)
        out = ravel_pytree(hvp(loss, params, unravel(v)))[0]
        np.testing.assert_allclose(np.asarray(out), dense @ np.asarray(v), rtol=1e-9, atol=1e-12)


def test_lanczos_top_eigenpairs_match_dense(problem):
    loss, params, dense = problem
    with jax.enable_x64(True):
        values, vectors = top_eigenpairs(loss, params, 3, method="lanczos", key=jax.random.key(3))
    ref, ref_vecs = np.linalg.eigh(dense)
    np.testing.assert_allclose(values, ref[::-1][:3], rtol=1e-8, atol=1e-10)
    for i, v in enumerate(vectors):
        flat = np.asarray(ravel_pytree(v)[0])
        assert abs(abs(flat @ ref_vecs[:, -1 - i]) - 1) < 1e-6


def test_power_iteration_finds_largest_magnitude(problem):
    loss, params, dense = problem
    with jax.enable_x64(True):
        values, vectors = top_eigenpairs(
            loss, params, 2, method="power", iterations=2000, tol=1e-12, key=jax.random.key(4)
        )
    ref = np.linalg.eigvalsh(dense)
    by_magnitude = ref[np.argsort(-np.abs(ref))][:2]
    np.testing.assert_allclose(values, by_magnitude, rtol=1e-5)
    flat = np.asarray(ravel_pytree(vectors[0])[0])
    np.testing.assert_allclose(dense @ flat, values[0] * flat, atol=1e-5 * abs(values[0]))


def test_quadratic_surface_trace_and_rejects_bad_k():
    diag = jnp.array([3.0, 1.0, 0.5, 2.0])
    params = {"w": jnp.array([0.1, -0.2]), "b": jnp.array([0.3, 0.0])}

    def loss(p):
        f = ravel_pytree(p)[0]
        return 0.5 * jnp.sum(diag * f**2)

    d1 = {"w": jnp.array([1.0, 0.0]), "b": jnp.array([0.0, 0.0])}
    d2 = {"w": jnp.array([0.0, 0.0]), "b": jnp.array([0.0, 1.0])}
    a, b = np.linspace(-1, 1, 5), np.linspace(-2, 2, 3)
    surface = loss_surface(loss, params, d1, d2, a, b)
    f0 = np.asarray(ravel_pytree(params)[0])  # order: b, w
    dg = np.asarray(diag)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            f = f0 + np.array([0, y, x, 0])
            np.testing.assert_allclose(surface[i, j], 0.5 * np.sum(dg * f**2), rtol=1e-6)
    # Rademacher probes estimate the trace of a diagonal Hessian exactly
    np.testing.assert_allclose(hutchinson_trace(loss, params, 3, key=jax.random.key(0)), 6.5)
    with pytest.raises(ValueError, match="k must"):
        top_eigenpairs(loss, params, 9, key=jax.random.key(0))


def test_pca_of_a_straight_path_has_one_component():
    direction = np.array([1.0, 2.0, -2.0]) / 3.0
    path = [{"p": jnp.asarray(2.0 * s * direction)} for s in np.linspace(0, 1, 7)]
    coords, dirs, explained = pca_path(path)
    np.testing.assert_allclose(explained[0], 1.0, atol=1e-12)
    assert abs(abs(dirs[0] @ direction) - 1) < 1e-12
    np.testing.assert_allclose(np.abs(coords[:, 0]), 2.0 * (1 - np.linspace(0, 1, 7)), atol=1e-12)
