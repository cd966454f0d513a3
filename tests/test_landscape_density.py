r"""Hessian eigen-density by stochastic Lanczos quadrature, checked on quadratics
$\frac12 x^\top A x$ whose Hessian $A = Q \operatorname{diag}(\lambda) Q^\top$ has known
eigenvalues."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import EigenDensity, hessian_eigen_density

N = 20
EIGENVALUES = np.concatenate([np.linspace(-2.0, 1.0, 10), np.geomspace(1.5, 40.0, 10)])


def quadratic(eigenvalues: np.ndarray, seed: int = 0):
    """``(loss, params, A)``: $\\frac12 x^\\top A x$ on params split into a dict of two
    arrays (12 + 8 entries), $A$ with the given eigenvalues and random eigenvectors."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((N, N)))
    a = (q * eigenvalues) @ q.T

    def loss(p):
        x = jnp.concatenate([p["w"].ravel(), p["b"]])
        return 0.5 * x @ jnp.asarray(a) @ x

    params = {"w": jnp.asarray(rng.standard_normal((3, 4))), "b": jnp.asarray(rng.random(8))}
    return loss, params, a


def test_full_lanczos_nodes_are_the_exact_eigenvalues():
    with jax.enable_x64(True):
        loss, params, _ = quadratic(EIGENVALUES)
        out = hessian_eigen_density(
            loss, params, n_probes=3, lanczos_steps=N, key=jax.random.key(0)
        )
        assert isinstance(out, EigenDensity)
        assert out.nodes.shape == out.weights.shape == (3, N)
        for nodes in out.nodes:
            np.testing.assert_allclose(nodes, EIGENVALUES, rtol=0, atol=1e-8)
        np.testing.assert_allclose(out.weights.sum(axis=1), 1.0, atol=1e-12)
        assert np.all(out.weights > 0)  # a random probe sees every eigenvector


def test_repeated_eigenvalues_restart_lanczos_and_give_the_extra_nodes_no_weight():
    with jax.enable_x64(True):
        # 3 distinct eigenvalues: a probe's Krylov space has dimension 3, then restarts
        values = np.repeat([-1.0, 2.0, 5.0], [5, 7, 8])
        loss, params, _ = quadratic(values, seed=1)
        out = hessian_eigen_density(
            loss, params, n_probes=2, lanczos_steps=N, probe="gaussian", key=jax.random.key(1)
        )
        for nodes, weights in zip(out.nodes, out.weights, strict=True):
            np.testing.assert_allclose(nodes, values, atol=1e-8)
            # the weight of each eigenvalue sits on the nodes of the probe's own block
            weighted = nodes[weights > 1e-10]
            assert weighted.size == 3
            np.testing.assert_allclose(np.unique(np.round(weighted, 6)), [-1.0, 2.0, 5.0])
            np.testing.assert_allclose(weights.sum(), 1.0, atol=1e-12)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_density_integrates_to_one_and_its_mean_is_the_normalised_trace(probe):
    with jax.enable_x64(True):
        loss, params, a = quadratic(EIGENVALUES, seed=2)
        n_probes = 30
        out = hessian_eigen_density(
            loss,
            params,
            n_probes=n_probes,
            lanczos_steps=8,
            grid=4001,
            probe=probe,
            key=jax.random.key(2),
        )
        dt = out.grid[1] - out.grid[0]
        mass = np.sum(out.density) * dt
        np.testing.assert_allclose(mass, 1.0, atol=1e-6)
        # the mean of the smoothed density equals that of the nodes (the kernel is centred)
        mean = np.sum(out.grid * out.density) * dt
        node_mean = np.sum(out.weights * out.nodes) / n_probes
        np.testing.assert_allclose(mean, node_mean, atol=1e-6)
        # within the stochastic error of Hutchinson's estimate of tr A / n: for unit probes
        # Var(v^T A v) <= 2 ||A - diag(A)||_F^2 / n^2 (Rademacher; Gaussian probes on the
        # sphere: 2 (||A||_F^2 - (tr A)^2 / n) / (n (n + 2)), below the same bound here)
        off = a - np.diag(np.diag(a))
        std = np.sqrt(2 * np.sum(off**2)) / N / np.sqrt(n_probes)
        exact = np.trace(a) / N
        assert abs(node_mean - exact) < 4 * std, (node_mean, exact, std)
        assert abs(node_mean - exact) > 0  # a real estimate, not the trace itself


def test_extreme_nodes_approach_the_extreme_eigenvalues_and_never_pass_them():
    # extreme eigenvalues well apart from the rest converge in few steps (Kaniel-Paige)
    values = np.concatenate([[-8.0], np.linspace(-1.0, 2.0, N - 2), [10.0]])
    with jax.enable_x64(True):
        loss, params, _ = quadratic(values, seed=3)
        out = hessian_eigen_density(
            loss, params, n_probes=4, lanczos_steps=12, key=jax.random.key(4)
        )
        low, high = values.min(), values.max()
        # Cauchy interlacing: Ritz values lie inside [lambda_min, lambda_max]
        assert np.all(out.nodes >= low - 1e-10) and np.all(out.nodes <= high + 1e-10)
        np.testing.assert_allclose(out.nodes[:, 0], low, rtol=1e-6)
        np.testing.assert_allclose(out.nodes[:, -1], high, rtol=1e-6)
        # the default grid covers the extreme nodes with 5 sigma on either side
        assert out.sigma == pytest.approx((out.nodes.max() - out.nodes.min()) / 100)
        assert out.grid[0] == pytest.approx(out.nodes.min() - 5 * out.sigma)
        assert out.grid[-1] == pytest.approx(out.nodes.max() + 5 * out.sigma)


def test_a_given_grid_and_sigma_give_the_smoothed_quadrature_exactly():
    with jax.enable_x64(True):
        loss, params, _ = quadratic(EIGENVALUES, seed=4)
        grid = np.array([-1.0, 0.0, 3.0])
        out = hessian_eigen_density(
            loss, params, n_probes=2, lanczos_steps=5, grid=grid, sigma=0.5, key=jax.random.key(5)
        )
        g = np.exp(-0.5 * ((grid[:, None, None] - out.nodes) / 0.5) ** 2) / (
            0.5 * np.sqrt(2 * np.pi)
        )
        expected = np.sum(g * out.weights, axis=(1, 2)) / 2
        np.testing.assert_allclose(out.density, expected, rtol=1e-12)
        np.testing.assert_array_equal(out.grid, grid)
        assert out.sigma == 0.5


def test_float32_parameters_recover_the_spectrum_to_float32_accuracy():
    loss, params, _ = quadratic(EIGENVALUES, seed=5)
    params = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), params)
    out = hessian_eigen_density(loss, params, n_probes=1, lanczos_steps=N, key=jax.random.key(6))
    np.testing.assert_allclose(out.nodes[0], EIGENVALUES, atol=1e-3 * np.abs(EIGENVALUES).max())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(lanczos_steps=N + 1), ValueError, "lanczos_steps must be at most .* n = 20"),
        (dict(lanczos_steps=0), ValueError, "lanczos_steps"),
        (dict(n_probes=0), ValueError, "n_probes must be an int >= 1"),
        (dict(n_probes=2.0), ValueError, "n_probes must be an int"),
        (dict(sigma=0.0), ValueError, "sigma must be a finite number > 0"),
        (dict(sigma="wide"), TypeError, "sigma must be a number"),
        (dict(grid=1), ValueError, "grid"),
        (dict(grid=np.zeros((2, 2))), ValueError, "grid must be"),
        (dict(probe="sobol"), ValueError, "probe must be 'rademacher' or 'gaussian'"),
    ],
)
def test_bad_arguments_are_refused_naming_them(kwargs, error, match):
    loss, params, _ = quadratic(EIGENVALUES)
    with pytest.raises(error, match=match):
        hessian_eigen_density(loss, params, key=jax.random.key(0), **{"lanczos_steps": 4, **kwargs})


def test_a_spectrum_of_one_value_needs_a_given_sigma():
    loss = lambda p: 1.5 * jnp.sum(p**2)  # noqa: E731  (H = 3 I)
    params = jnp.ones(4)
    with pytest.raises(ValueError, match="give sigma > 0"):
        hessian_eigen_density(loss, params, lanczos_steps=4, key=jax.random.key(0))
    out = hessian_eigen_density(loss, params, lanczos_steps=4, sigma=0.1, key=jax.random.key(0))
    np.testing.assert_allclose(out.nodes, 3.0, rtol=1e-5)
    assert out.grid[np.argmax(out.density)] == pytest.approx(3.0, abs=0.01)
