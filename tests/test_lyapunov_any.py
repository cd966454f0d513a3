"""Lyapunov spectra of any vector field or step map: Lorenz-63 against its published spectrum
and its exact sum, a phase-locked Kuramoto network against the eigenvalues of its Jacobian,
linear systems against their eigenvalues (vector field, fixed-step flow and step map), the
RateRNN path against the generic one, and the gradient of the Lyapunov penalty against
finite differences."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest

from diffdyn.common import SolveConfig, lyapunov_exponents, lyapunov_penalty
from diffdyn.oscillators import Kuramoto, Lorenz63, order_parameter
from diffdyn.rnn import RateRNN, lyapunov_spectrum

ACCURATE = SolveConfig(solver="tsit5", rtol=1e-10, atol=1e-12)


def _field(model):
    """A diffrax-style autonomous field ``g(t, y, args)`` as ``f(y)``."""
    return lambda y: model(0.0, y, None)


def test_lorenz63_spectrum_and_its_exact_sum():
    # sigma = 10, rho = 28, beta = 8/3: (0.9056, 0, -14.5723) (Sprott, Chaos and Time-Series
    # Analysis, 2003); the trace of the Jacobian is -(sigma + 1 + beta) everywhere, so the
    # exponents sum to it exactly (up to the solver's tolerance), whatever the measured time.
    with jax.enable_x64(True):
        model = Lorenz63()
        solve = SolveConfig(solver="tsit5", rtol=1e-9, atol=1e-9)
        res = eqx.filter_jit(
            lambda y: lyapunov_exponents(
                _field(model),
                y,
                kind="flow",
                solve=solve,
                t_sim=1000.0,
                t_transient=20.0,
                checkpoint=False,
                key=jax.random.key(0),
            )
        )(jnp.array([1.0, 1.0, 20.0]))
        lam = np.asarray(res.exponents)
        assert np.all(np.diff(lam) <= 0)  # sorted decreasingly
        error = np.abs(lam - np.array([0.9056, 0.0, -14.5723]))
        assert np.all(error < [0.02, 0.01, 0.03]), lam
        assert abs(lam.sum() + (10.0 + 1.0 + 8.0 / 3.0)) < 1e-6
        assert res.local.shape == (1000, 3) and res.state.shape == (3,)


def test_locked_kuramoto_chain_has_one_zero_exponent_and_its_jacobians_eigenvalues():
    # a chain of 5 oscillators, unit coupling between neighbours, far above the locking
    # threshold of the frequency spread 0.1: the phases lock and rotate together. The Jacobian
    # depends on phase differences only, so it is constant on the locked orbit; it is a
    # weighted graph Laplacian (symmetric, zero row sums: the common rotation), so the
    # exponents are its eigenvalues: one 0 and four distinct negative ones.
    with jax.enable_x64(True):
        n = 5
        coupling = np.eye(n, k=1) + np.eye(n, k=-1)
        omega = 0.3 + 0.05 * np.linspace(-1.0, 1.0, n)
        model = Kuramoto(coupling, omega=omega)
        theta0 = jax.random.uniform(jax.random.key(3), (n,), minval=-1.0, maxval=1.0)
        res = eqx.filter_jit(
            lambda th: lyapunov_exponents(
                _field(model),
                th,
                kind="flow",
                solve=ACCURATE,
                t_sim=40.0,
                t_ons=2.0,
                t_transient=60.0,
                t_ons_transient=40.0,
                checkpoint=False,
                key=jax.random.key(4),
            )
        )(theta0)
        lam = np.asarray(res.exponents)
        assert float(order_parameter(res.state)) > 0.9  # locked
        jacobian = np.asarray(jax.jacfwd(_field(model))(res.state))
        np.testing.assert_allclose(jacobian, jacobian.T, atol=1e-12)
        expected = np.sort(np.linalg.eigvalsh(jacobian))[::-1]
        assert abs(expected[0]) < 1e-12 and np.min(-np.diff(expected)) > 0.2  # distinct
        np.testing.assert_allclose(lam, expected, atol=1e-6)
        assert abs(lam[0]) < 1e-6  # the rotation
        assert lam[1] < -0.2  # the largest nonzero exponent is negative: the lock is stable


def _linear_matrix():
    """A non-normal 5 x 5 matrix with eigenvalues 0.3, -0.2 +- 1.5i, -0.6, -1.1."""
    block = np.zeros((5, 5))
    block[0, 0] = 0.3
    block[1:3, 1:3] = [[-0.2, -1.5], [1.5, -0.2]]
    block[3, 3], block[4, 4] = -0.6, -1.1
    p = np.eye(5) + 0.4 * np.asarray(jax.random.normal(jax.random.key(5), (5, 5)))
    return p @ block @ np.linalg.inv(p), np.array([0.3, -0.2, -0.2, -0.6, -1.1])


def test_linear_vector_field_exponents_are_real_parts_of_eigenvalues():
    # y of shape [5, 1] (any shape is flattened). With real eigenvalues the basis aligns
    # with the Schur vectors and every block gives the exact values; the complex pair
    # rotates in a skewed plane, whose log-stretch averages out like 1/T.
    with jax.enable_x64(True):
        a, expected = _linear_matrix()
        np.testing.assert_allclose(np.sort(np.linalg.eigvals(a).real)[::-1], expected, atol=1e-12)
        res = eqx.filter_jit(
            lambda y: lyapunov_exponents(
                lambda y: jnp.asarray(a) @ y,
                y,
                kind="flow",
                solve=ACCURATE,
                t_sim=400.0,
                t_ons=2.0,
                t_transient=0.0,
                t_ons_transient=60.0,
                checkpoint=False,
                key=jax.random.key(6),
            )
        )(jnp.ones((5, 1)))
        lam = np.asarray(res.exponents)
        np.testing.assert_allclose(lam[[0, 3, 4]], expected[[0, 3, 4]], atol=1e-7)
        np.testing.assert_allclose(lam[1:3], expected[1:3], atol=5e-3)
        np.testing.assert_allclose(lam.sum(), expected.sum(), atol=1e-7)  # tr A, exactly
        assert res.state.shape == (5, 1)


def test_fixed_step_flow_gives_the_exponents_of_the_rk4_map():
    # a fixed step h of RK4 on y' = A y is the map R(hA), R(z) = 1 + z + z^2/2 + z^3/6 + z^4/24:
    # the exponents are log|R(h lambda)| / h, and the step of h = 0.25 is coarse enough for
    # them to differ from lambda by more than the tolerance
    with jax.enable_x64(True):
        a = np.array([[-0.5, 2.0, 0.0], [0.0, 0.4, 1.0], [0.0, 0.0, -2.0]])
        h = 0.25
        res = eqx.filter_jit(
            lambda y: lyapunov_exponents(
                lambda y: jnp.asarray(a) @ y,
                y,
                kind="flow",
                solve=SolveConfig(solver="rk4", dt0=h, adaptive=False),
                t_sim=20.0,
                t_ons=1.0,
                t_transient=0.0,
                t_ons_transient=40.0,
                checkpoint=False,
                key=jax.random.key(7),
            )
        )(jnp.ones(3))
        z = h * np.array([0.4, -0.5, -2.0])
        expected = np.log(np.abs(1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24)) / h
        np.testing.assert_allclose(np.asarray(res.exponents), expected, atol=1e-9)
        assert np.max(np.abs(expected - np.array([0.4, -0.5, -2.0]))) > 1e-3


def test_step_map_exponents_per_time_are_real_parts_of_eigenvalues():
    # F = expm(A dt) on a pytree state {"u": [2], "v": [3]}: exponents per step are
    # dt * Re(lambda), reported per unit time with dt
    with jax.enable_x64(True):
        a, expected = _linear_matrix()
        dt = 0.1
        m = jsl.expm(jnp.asarray(a) * dt)

        def step(y):
            x = m @ jnp.concatenate([y["u"], y["v"]])
            return {"u": x[:2], "v": x[2:]}

        y0 = {"u": jnp.ones(2), "v": jnp.ones(3)}
        res = eqx.filter_jit(
            lambda y: lyapunov_exponents(
                step,
                y,
                kind="map",
                dt=dt,
                t_sim=400.0,
                t_ons=2.0,
                t_transient=1.0,
                t_ons_transient=60.0,
                checkpoint=False,
                key=jax.random.key(8),
            )
        )(y0)
        lam = np.asarray(res.exponents)
        np.testing.assert_allclose(lam[[0, 3, 4]], expected[[0, 3, 4]], atol=1e-9)
        np.testing.assert_allclose(lam[1:3], expected[1:3], atol=5e-3)
        np.testing.assert_allclose(lam.sum(), expected.sum(), atol=1e-9)
        assert set(res.state) == {"u", "v"} and res.state["v"].shape == (3,)


def test_generic_step_map_path_reproduces_the_rate_rnn_spectrum():
    with jax.enable_x64(True):
        base = RateRNN(8, g=3.0, key=jax.random.key(9))
        model = RateRNN.from_coupling(np.asarray(base.coupling, np.float64))
        h0 = jax.random.normal(jax.random.key(10), (8,))
        settings = dict(t_sim=50.0, t_ons=1.0, t_transient=10.0, t_ons_transient=5.0)
        key = jax.random.key(11)
        ours = lyapunov_exponents(
            model.step, h0, kind="map", dt=model.dt, key=key, checkpoint=False, **settings
        )
        theirs = lyapunov_spectrum(model, h0, key=key, checkpoint=False, **settings)
        lam = np.sort(np.asarray(theirs.exponents))[::-1]
        assert lam[0] > 0.0  # chaotic
        np.testing.assert_allclose(np.asarray(ours.exponents), lam, rtol=1e-9, atol=1e-11)


A0 = np.array([[-0.5, 1.0], [0.0, -1.5]])  # eigenvalues -0.5, -1.5, not normal


def _scaled_system(kind, s, dt):
    """y' = s A0 y (flow) or y_next = y + dt s A0 y (its Euler map)."""
    a0 = jnp.asarray(A0)
    return (lambda y: s * a0 @ y) if kind == "flow" else (lambda y: y + dt * s * a0 @ y)


@pytest.mark.parametrize(
    "kind",
    [pytest.param("flow", marks=pytest.mark.heavy), "map"],  # flow: over 15 s
)
def test_gradient_of_the_penalty_matches_finite_differences(kind):
    # through the QR's derivative rule, the tangent map and (flow) the diffrax solve
    with jax.enable_x64(True):
        dt = 0.05
        if kind == "flow":
            options = dict(solve=SolveConfig(solver="rk4", dt0=dt, adaptive=False))
        else:
            options = dict(dt=dt)

        def penalty(s):
            spectrum = lyapunov_exponents(
                _scaled_system(kind, s, dt),
                jnp.array([1.0, 0.5]),
                kind=kind,
                n_exponents=1,
                t_sim=10.0,
                t_ons=0.5,
                t_transient=0.0,
                t_ons_transient=0.0,
                key=jax.random.key(12),
                **options,
            )
            return lyapunov_penalty(spectrum, target=-1.0)

        s, eps = 1.3, 1e-5
        grad = jax.jit(jax.grad(penalty))(s)
        value = jax.jit(penalty)
        fd = (value(s + eps) - value(s - eps)) / (2 * eps)
        assert abs(float(grad)) > 0.1
        np.testing.assert_allclose(float(grad), float(fd), rtol=1e-6)


def test_penalty_and_its_gradient_approach_the_closed_form():
    # the Euler map's largest exponent is lambda(s) = log(1 - dt s / 2) / dt; the penalty
    # (lambda + 1)^2 and its derivative in s follow once the basis has aligned
    with jax.enable_x64(True):
        dt, s = 0.05, 1.3

        def penalty(s):
            spectrum = lyapunov_exponents(
                _scaled_system("map", s, dt),
                jnp.array([1.0, 0.5]),
                kind="map",
                dt=dt,
                n_exponents=1,
                t_sim=100.0,
                t_ons=0.5,
                t_transient=0.0,
                t_ons_transient=20.0,
                key=jax.random.key(13),
            )
            return lyapunov_penalty(spectrum, target=-1.0)

        value, grad = jax.jit(jax.value_and_grad(penalty))(s)
        lam = np.log(1 - dt * s / 2) / dt
        dlam = -0.5 / (1 - dt * s / 2)
        np.testing.assert_allclose(float(value), (lam + 1) ** 2, rtol=1e-8)
        np.testing.assert_allclose(float(grad), 2 * (lam + 1) * dlam, rtol=1e-8)


def test_penalty_is_squared_distance_of_the_largest_exponent():
    lam = jnp.array([-0.3, 0.2, -1.0])
    np.testing.assert_allclose(float(lyapunov_penalty(lam, target=0.5)), 0.09, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lyapunov_penalty)(lam, 0.5), [0.0, -0.6, 0.0], rtol=1e-6)


def test_bad_arguments_are_refused_before_compiling():
    f = lambda y: -y
    y0 = jnp.ones(3)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="'kind'"):
        lyapunov_exponents(f, y0, kind="ode", key=key)
    with pytest.raises(ValueError, match="'dt'"):
        lyapunov_exponents(f, y0, kind="flow", dt=0.1, key=key)
    with pytest.raises(ValueError, match="'solve'"):
        lyapunov_exponents(f, y0, kind="map", solve=SolveConfig(), key=key)
    with pytest.raises(TypeError, match="'solve'"):
        lyapunov_exponents(f, y0, kind="flow", solve="tsit5", key=key)
    with pytest.raises(ValueError, match="'n_exponents'"):
        lyapunov_exponents(f, y0, kind="flow", n_exponents=4, key=key)
    with pytest.raises(ValueError, match="'t_ons'"):
        lyapunov_exponents(f, y0, kind="map", dt=0.3, t_ons=1.0, key=key)
    with pytest.raises(ValueError, match="'t_transient'"):
        lyapunov_exponents(f, y0, kind="map", dt=0.5, t_ons=1.0, t_transient=0.7, key=key)
    with pytest.raises(ValueError, match="'t_sim'"):
        lyapunov_exponents(f, y0, kind="flow", t_sim=0.0, key=key)
    with pytest.raises(ValueError, match="'system'.*shape"):
        lyapunov_exponents(lambda y: y[:2], y0, kind="map", key=key)
    with pytest.raises(TypeError, match="'y0'"):
        lyapunov_exponents(f, jnp.ones(3, int), kind="map", key=key)
    with pytest.raises(TypeError, match="'system'"):
        lyapunov_exponents(None, y0, kind="map", key=key)
    with pytest.raises(ValueError, match="'spectrum'"):
        lyapunov_penalty(jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="'target'"):
        lyapunov_penalty(jnp.ones(2), target=float("nan"))
