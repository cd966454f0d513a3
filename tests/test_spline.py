"""Natural cubic smoothing spline: interpolation, limits, the penalised problem, smoothness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import SmoothingSpline


@pytest.fixture(scope="module")
def knots():
    rng = np.random.default_rng(0)
    ts = np.cumsum(rng.uniform(0.05, 0.3, 25))  # uneven steps
    ys = np.stack([np.sin(2 * ts), np.cos(ts) + 0.1 * rng.standard_normal(25)], axis=1)
    return ts, ys


def _dense_reference(ts, ys, alpha):
    """argmin_g ||y - g||^2 + alpha g^T K g with K = Q R^-1 Q^T, solved densely in numpy."""
    n = len(ts)
    h = np.diff(ts)
    q = np.zeros((n, n - 2))
    r = np.zeros((n - 2, n - 2))
    for j in range(1, n - 1):
        q[j - 1, j - 1] = 1 / h[j - 1]
        q[j, j - 1] = -1 / h[j - 1] - 1 / h[j]
        q[j + 1, j - 1] = 1 / h[j]
        r[j - 1, j - 1] = (h[j - 1] + h[j]) / 3
        if j < n - 2:
            r[j - 1, j] = r[j, j - 1] = h[j] / 6
    k = q @ np.linalg.solve(r, q.T)
    return np.linalg.solve(np.eye(n) + alpha * k, ys)


def test_zero_smoothing_interpolates_with_natural_ends(knots):
    ts, ys = knots
    with jax.enable_x64(True):
        s = SmoothingSpline.fit(ts, ys, 0.0)
        np.testing.assert_allclose(np.asarray(s.evaluate(ts)), ys, atol=1e-12)
        for t in (ts[0], ts[-1]):
            np.testing.assert_allclose(np.asarray(s.derivative(t, 2)), 0.0, atol=1e-9)


def test_second_derivative_is_continuous_at_knots(knots):
    ts, ys = knots
    with jax.enable_x64(True):
        s = SmoothingSpline.fit(ts, ys, 1e-3)
        eps = 1e-7
        for t in ts[3:8]:
            left = np.asarray(s.derivative(t - eps, 2))
            right = np.asarray(s.derivative(t + eps, 2))
            np.testing.assert_allclose(left, right, atol=1e-4)
            # and the knot value of g'' is the stored gamma
        i = 5
        np.testing.assert_allclose(
            np.asarray(s.derivative(ts[i] + 1e-9, 2)), np.asarray(s.second[i]), atol=1e-5
        )


@pytest.mark.parametrize("alpha", [1e-3, 0.1, 10.0])
def test_matches_dense_solve_of_penalised_problem(knots, alpha):
    ts, ys = knots
    with jax.enable_x64(True):
        s = SmoothingSpline.fit(ts, ys, alpha)
        np.testing.assert_allclose(
            np.asarray(s.evaluate(ts)), _dense_reference(ts, ys, alpha), rtol=1e-9, atol=1e-10
        )


def test_large_smoothing_tends_to_least_squares_line(knots):
    ts, ys = knots
    with jax.enable_x64(True):
        g = np.asarray(SmoothingSpline.fit(ts, ys, 1e9).evaluate(ts))
    for d in range(ys.shape[1]):
        slope, intercept = np.polyfit(ts, ys[:, d], 1)
        np.testing.assert_allclose(g[:, d], slope * ts + intercept, atol=1e-5)


def test_straight_line_is_reproduced_for_any_smoothing(knots):
    ts, _ = knots
    line = 3.0 * ts - 1.0
    with jax.enable_x64(True):
        for alpha in (0.0, 1.0, 1e4):
            s = SmoothingSpline.fit(ts, line, alpha)
            tq = np.linspace(ts[0], ts[-1], 37)
            np.testing.assert_allclose(np.asarray(s.evaluate(tq)), 3.0 * tq - 1.0, atol=1e-9)


def test_roughness_is_integral_of_squared_curvature_and_decreases(knots):
    ts, ys = knots
    with jax.enable_x64(True):
        rough = []
        for alpha in (0.0, 1e-3, 1e-1, 10.0):
            s = SmoothingSpline.fit(ts, ys, alpha)
            # g'' is piecewise linear: int (a + (b - a) u)^2 h du = h (a^2 + ab + b^2) / 3
            a, b = np.asarray(s.second[:-1]), np.asarray(s.second[1:])
            exact = np.sum(np.diff(ts)[:, None] * (a * a + a * b + b * b) / 3, axis=0)
            np.testing.assert_allclose(np.asarray(s.roughness()), exact, rtol=1e-10)
            rough.append(exact)
        assert np.all(np.diff(np.stack(rough), axis=0) < 0)


def test_differentiable_in_time_and_extends_end_cubics(knots):
    ts, ys = knots
    with jax.enable_x64(True):
        s = SmoothingSpline.fit(ts, ys[:, 0], 1e-2)
        for t in (ts[0] - 0.2, 0.5 * (ts[4] + ts[5]), ts[-1] + 0.1):
            h = 1e-6
            fd = (s(t + h) - s(t - h)) / (2 * h)
            np.testing.assert_allclose(float(jax.grad(s)(jnp.asarray(t))), float(fd), rtol=1e-6)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="ts"):
        SmoothingSpline.fit(np.array([0.0, 2.0, 1.0]), np.zeros(3))
    with pytest.raises(ValueError, match="ys"):
        SmoothingSpline.fit(np.arange(4.0), np.zeros(5))
    with pytest.raises(ValueError, match="alpha"):
        SmoothingSpline.fit(np.arange(4.0), np.zeros(4), -1.0)
