"""Lyapunov spectra: exact linear spectra, the sum rule, twin simulations, tangent maps by
finite differences, the fused variational step against jax.linearize, gradients, derived
quantities and their summary, the spectrum config."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import SolveConfig, get_solver
from diffdyn.rnn import (
    STEP_SOLVERS,
    RateRNN,
    SpectrumConfig,
    StepMapPropagator,
    benettin,
    convergence_diagnostics,
    entropy_rate,
    kaplan_yorke_dimension,
    lyapunov_spectrum,
    random_basis,
    spectrum_summary,
)


def _fixed_step(solver, dt):
    return SolveConfig(solver=solver, dt0=dt, adaptive=False)


def _linear(n, seed, symmetric, dt=0.1):
    j = np.asarray(RateRNN(n, g=1.4, key=jax.random.key(seed)).coupling, dtype=np.float64)
    if symmetric:
        j = (j + j.T) / 2
    return RateRNN.from_coupling(j, activation="identity", solve=_fixed_step("euler", dt)), j


def _step_map_exponents(j, dt):
    m = (1 - dt) * np.eye(len(j)) + dt * j
    return np.sort(np.log(np.abs(np.linalg.eigvals(m))))[::-1] / dt


@pytest.mark.parametrize("symmetric, t_sim, tol", [(True, 300.0, 1e-9), (False, 2000.0, 2e-3)])
def test_linear_network_spectrum_is_log_moduli_of_step_map(symmetric, t_sim, tol):
    with jax.enable_x64(True):
        model, j = _linear(6, 0, symmetric)
        f = eqx.filter_jit(
            lambda m, h: lyapunov_spectrum(
                m,
                h,
                key=jax.random.key(1),
                t_sim=t_sim,
                t_transient=0.0,
                t_ons_transient=200.0,
                checkpoint=False,
            )
        )
        res = f(model, jnp.full(6, 0.1))
        lam = np.sort(np.asarray(res.exponents))[::-1]
        np.testing.assert_allclose(lam, _step_map_exponents(j, model.dt), atol=tol)
        if symmetric:  # aligned basis: every block gives the same local exponents
            diag = convergence_diagnostics(res)
            assert float(jnp.max(diag["stderr"])) < 1e-9
            assert float(jnp.max(diag["drift"])) < 1e-9


def test_flow_mode_gives_continuous_time_exponents():
    with jax.enable_x64(True):
        model, j = _linear(5, 2, True)
        flow = SolveConfig(solver="tsit5", rtol=1e-10, atol=1e-12)
        res = eqx.filter_jit(
            lambda m, h: lyapunov_spectrum(
                m,
                h,
                key=jax.random.key(1),
                t_sim=30.0,
                t_ons=2.0,
                t_transient=0.0,
                t_ons_transient=60.0,
                flow=flow,
                checkpoint=False,
            )
        )(model, jnp.ones(5))
        exact = np.sort(np.linalg.eigvalsh(-np.eye(5) + j))[::-1]
        np.testing.assert_allclose(np.sort(res.exponents)[::-1], exact, atol=1e-6)


@pytest.fixture(scope="module")
def nonlinear():
    """A small tanh-positive network with per-type gains and shifts, and its spectrum."""
    with jax.enable_x64(True):
        n = 12
        base = RateRNN(n, g=3.0, key=jax.random.key(7))
        model = RateRNN.from_coupling(
            np.asarray(base.coupling, dtype=np.float64),
            cell_type=np.arange(n) % 3,
            gain=[2.0, 3.0, 4.0],
            shift=[0.1, 0.5, -0.2],
            activation="tanh-positive",
        )
        h = jax.random.normal(jax.random.key(8), (n,))
        prop = StepMapPropagator(model.step, 5, model.dt)
        n_blocks = 40
        res = eqx.filter_jit(lambda p, h, q: benettin(p, h, q, n_blocks=n_blocks))(
            prop, h, random_basis(jax.random.key(9), n, n)
        )
        yield model, h, res, n_blocks * 5


def test_sum_of_exponents_is_time_average_log_det(nonlinear):
    with jax.enable_x64(True):
        model, h, res, n_steps = nonlinear

        @eqx.filter_jit
        def logdets(m, h):
            def one(h, _):
                return m.step(h), jnp.linalg.slogdet(jax.jacfwd(m.step)(h))[1]

            return jax.lax.scan(one, h, length=n_steps)[1]

        expected = float(jnp.mean(logdets(model, h))) / model.dt
        np.testing.assert_allclose(float(jnp.sum(res.exponents)), expected, rtol=1e-10)
        # and the mean exponent is close to log(1 - dt)/dt (J has a zero diagonal, but the
        # slope factor makes it only approximate for a nonlinear network)
        assert abs(float(jnp.mean(res.exponents)) - np.log(1 - model.dt) / model.dt) < 0.1


def _forward_mode_step(model):
    """model.step with a solver whose stage loop supports jax.jvp (diffrax's default
    checkpointed loop for multi-stage solvers does not)."""
    solver = get_solver(model.solve.solver)
    if hasattr(solver, "scan_kind"):
        solver = type(solver)(scan_kind="lax")
    term = diffrax.ODETerm(model)

    def step(h):
        state = solver.init(term, 0.0, model.dt, h, None)
        return solver.step(term, 0.0, model.dt, h, None, state, False)[0]

    return step


@pytest.mark.parametrize("solver", STEP_SOLVERS)
def test_variational_step_is_step_and_its_derivative(solver):
    with jax.enable_x64(True):
        m = RateRNN(
            9,
            g=2.5,
            activation="tanh-positive",
            n_types=3,
            solve=_fixed_step(solver, 0.1),
            key=jax.random.key(1),
        )
        m = eqx.tree_at(lambda m: m.bias, m, jnp.linspace(-0.3, 0.3, 9))
        h = jax.random.normal(jax.random.key(2), (9,))
        q = jax.random.normal(jax.random.key(3), (9, 4))
        h1, q1 = eqx.filter_jit(lambda m, h, q: m.variational_step(h, q))(m, h, q)
        ref = _forward_mode_step(m)
        jvp = jax.vmap(lambda v: jax.jvp(ref, (h,), (v,)), in_axes=1, out_axes=(None, 1))
        h_ref, q_ref = jvp(q)
        np.testing.assert_allclose(h1, m.step(h), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(h1, h_ref, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(q1, q_ref, rtol=1e-13, atol=1e-14)


def test_fused_and_linearized_spectra_agree():
    """lyapunov_spectrum uses RateRNN.variational_step by default; jax.linearize of the step
    (fused=False) gives the same exponents to rounding (here before chaos amplifies it)."""
    with jax.enable_x64(True):
        model = RateRNN(40, g=1.8, activation="tanh-stretched", n_types=4, key=jax.random.key(5))
        h0 = jax.random.normal(jax.random.key(6), (40,))

        @eqx.filter_jit
        def spectrum(m, h, fused):
            kw = dict(t_sim=8.0, t_transient=5.0, t_ons_transient=2.0, checkpoint=False)
            return lyapunov_spectrum(m, h, key=jax.random.key(7), fused=fused, **kw).exponents

        np.testing.assert_allclose(
            spectrum(model, h0, True), spectrum(model, h0, False), rtol=0, atol=1e-12
        )


def test_multistage_solver_spectrum_of_linear_network():
    """With the fused step every solver works (jax.linearize cannot differentiate diffrax's
    multi-stage loop in forward mode); a linear network's exponents are the log-moduli of the
    eigenvalues of its RK4 step matrix."""
    with jax.enable_x64(True):
        j = np.asarray(RateRNN(6, g=1.4, key=jax.random.key(0)).coupling, dtype=np.float64)
        j = (j + j.T) / 2
        model = RateRNN.from_coupling(j, activation="identity", solve=_fixed_step("rk4", 0.1))
        res = eqx.filter_jit(
            lambda m, h: lyapunov_spectrum(
                m,
                h,
                key=jax.random.key(1),
                t_sim=100.0,
                t_transient=0.0,
                t_ons_transient=100.0,
                checkpoint=False,
            )
        )(model, jnp.full(6, 0.1))
        z = 0.1 * (j - np.eye(6))  # dt A; RK4's step matrix is its degree-4 Taylor polynomial
        step = np.eye(6) + z + z @ z / 2 + z @ z @ z / 6 + z @ z @ z @ z / 24
        exact = np.sort(np.log(np.abs(np.linalg.eigvals(step))))[::-1] / 0.1
        np.testing.assert_allclose(np.sort(res.exponents)[::-1], exact, atol=1e-9)


def test_tangent_map_matches_finite_differences_and_closed_form(nonlinear):
    with jax.enable_x64(True):
        model, h, _, _ = nonlinear
        v = jax.random.normal(jax.random.key(3), h.shape)
        step = eqx.filter_jit(model.step)
        h1, tangent = jax.linearize(model.step, h)
        eps = 1e-6
        fd = (step(h + eps * v) - step(h - eps * v)) / (2 * eps)
        np.testing.assert_allclose(tangent(v), fd, rtol=1e-7, atol=1e-9)
        # D F(h_n) = (1 - dt) I + dt J diag(phi'(h_n)), evaluated at h_n (not at h_{n+1})
        g = np.asarray(model.gain)[model.cell_type]
        s = np.asarray(model.shift)[model.cell_type]
        slope = 0.5 * g / np.cosh(g * (np.asarray(h) - s)) ** 2
        jac = (1 - model.dt) * np.eye(len(h)) + model.dt * np.asarray(model.coupling) * slope
        np.testing.assert_allclose(jax.jacfwd(model.step)(h), jac, rtol=1e-12, atol=1e-14)
        assert np.abs(np.asarray(h1) - np.asarray(h)).max() > 1e-3  # h_{n+1} is another point


@pytest.mark.parametrize("fused", [False, True])
def test_lambda_max_matches_twin_simulation(fused):
    """Growth rate of a small perturbation between two nonlinear trajectories (renormalised
    every t_ons). The reference trajectory is the one the QR method follows: in a chaotic
    network any round-off difference would decorrelate the two over 300 time units. With
    ``fused`` the QR method steps the state inside ``variational_step`` (one stacked product
    with the tangents, rounded differently from ``m.step``), so the twins step that way."""
    with jax.enable_x64(True):
        n = 50
        model = RateRNN(n, g=4.0, key=jax.random.key(1))
        h0 = jax.random.normal(jax.random.key(2), (n,))
        t_ons, blocks = 1.0, 300

        @eqx.filter_jit
        def run(m, h0):
            res = lyapunov_spectrum(
                m,
                h0,
                key=jax.random.key(3),
                n_exponents=1,
                t_sim=t_ons * blocks,
                t_ons=t_ons,
                t_transient=50.0,
                t_ons_transient=0.0,
                checkpoint=False,
                fused=fused,
            )
            h = StepMapPropagator(m.step, 1, m.dt).advance(h0, 50.0)  # the transient
            eps = 1e-8
            if fused:  # the state part of the stacked product does not depend on the tangent
                state_map = lambda h: m.variational_step(h, jnp.zeros((n, 1)))[0]
            else:
                state_map = m.step

            def block(c, _):
                a, b = c
                a1 = StepMapPropagator(state_map, 10, m.dt).advance(a, t_ons)
                b1 = StepMapPropagator(state_map, 10, m.dt).advance(b, t_ons)
                d = jnp.linalg.norm(b1 - a1)
                return (a1, a1 + (b1 - a1) * eps / d), jnp.log(d / eps)

            q0 = random_basis(jax.random.key(3), n, 1)[:, 0]
            _, logs = jax.lax.scan(block, (h, h + eps * q0), length=blocks)
            return res.exponents[0], jnp.sum(logs) / (blocks * t_ons)

        qr, twin = run(model, h0)
        assert float(qr) > 0.05  # a chaotic network
        np.testing.assert_allclose(float(twin), float(qr), atol=1e-5)


def test_gradient_of_spectrum_matches_finite_differences():
    with jax.enable_x64(True):
        n = 8
        model = RateRNN(n, g=2.5, activation="tanh-stretched", n_types=2, key=jax.random.key(4))
        h0 = jax.random.normal(jax.random.key(5), (n,))

        @eqx.filter_jit
        def lam1(gain):
            m = eqx.tree_at(lambda m: m.gain, model, gain)
            return lyapunov_spectrum(
                m,
                h0,
                key=jax.random.key(6),
                n_exponents=2,
                t_sim=10.0,
                t_transient=2.0,
                t_ons_transient=1.0,
                detach_transient=False,
            ).exponents.sum()

        gain = jnp.array([1.1, 0.9])
        grad = jax.grad(lam1)(gain)
        eps = 1e-6
        fd = [(lam1(gain.at[i].add(eps)) - lam1(gain.at[i].add(-eps))) / (2 * eps) for i in (0, 1)]
        np.testing.assert_allclose(grad, np.asarray(fd), rtol=1e-5, atol=1e-8)


def test_gradient_through_the_xla_qr_matches_finite_differences():
    """k = 64 tangents of N = 64 (4096 entries): the QR is rnn.qr's XLA-only one."""
    with jax.enable_x64(True):
        n = 64
        model = RateRNN(n, g=2.5, activation="tanh-stretched", n_types=2, key=jax.random.key(4))
        h0 = jax.random.normal(jax.random.key(5), (n,))

        @eqx.filter_jit
        def top5(gain):
            m = eqx.tree_at(lambda m: m.gain, model, gain)
            res = lyapunov_spectrum(
                m,
                h0,
                key=jax.random.key(6),
                n_exponents=64,
                t_sim=2.0,
                t_transient=1.0,
                t_ons_transient=1.0,
                detach_transient=False,
            )
            return res.exponents[:5].sum()

        gain = jnp.array([1.1, 0.9])
        grad = jax.grad(top5)(gain)
        eps = 1e-6
        fd = [(top5(gain.at[i].add(eps)) - top5(gain.at[i].add(-eps))) / (2 * eps) for i in (0, 1)]
        np.testing.assert_allclose(grad, np.asarray(fd), rtol=1e-6, atol=1e-8)


def test_derived_quantities_closed_forms():
    lam = jnp.array([1.0, -2.0, 0.5, -3.0])  # sorted: 1, 0.5, -2, -3; partial 1, 1.5, -0.5
    np.testing.assert_allclose(kaplan_yorke_dimension(lam), 2 + 1.5 / 2)
    np.testing.assert_allclose(entropy_rate(lam), 1.5)
    assert float(kaplan_yorke_dimension(jnp.array([-0.1, -1.0]))) == 0.0
    assert float(kaplan_yorke_dimension(jnp.array([0.3, 0.2]))) == 2.0  # lower bound
    np.testing.assert_allclose(kaplan_yorke_dimension(jnp.array([0.2, -0.4])), 1.5)


def test_bad_arguments():
    m = RateRNN(4, key=jax.random.key(0))
    h = jnp.zeros(4)
    with pytest.raises(ValueError, match="'n_exponents'"):
        lyapunov_spectrum(m, h, key=jax.random.key(0), n_exponents=5)
    with pytest.raises(ValueError, match="'t_ons'"):
        lyapunov_spectrum(m, h, key=jax.random.key(0), t_ons=0.15)
    with pytest.raises(ValueError, match="'h0'"):
        lyapunov_spectrum(m, jnp.zeros(3), key=jax.random.key(0))


def test_spectrum_config_measures_as_lyapunov_spectrum_and_summary_matches():
    with jax.enable_x64(True):
        model, j = _linear(5, 2, True)
        cfg = SpectrumConfig(n_exponents=3, t_sim=200.0, t_transient=0.0, t_ons_transient=100.0)
        res = eqx.filter_jit(lambda m, h: cfg.measure(m, h, key=jax.random.key(1)))(
            model, jnp.full(5, 0.1)
        )
        exact = _step_map_exponents(j, model.dt)[:3]
        np.testing.assert_allclose(np.sort(res.exponents)[::-1], exact, atol=1e-9)
        summary = spectrum_summary(res)
        np.testing.assert_allclose(summary["lambda_max"], exact[0], atol=1e-9)
        np.testing.assert_allclose(summary["sum_exponents"], exact.sum(), atol=1e-8)
        np.testing.assert_allclose(
            summary["kaplan_yorke_dimension"], float(kaplan_yorke_dimension(jnp.asarray(exact)))
        )
        np.testing.assert_allclose(summary["entropy_rate"], np.maximum(exact, 0).sum(), atol=1e-9)
        assert summary["n_exponents"] == 3 and summary["measured_time"] == 200.0
        assert summary["stderr_lambda_max"] < 1e-9  # a symmetric linear network: aligned


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_exponents": 0}, "'n_exponents'"),
        ({"t_sim": 0.0}, "'t_sim'"),
        ({"t_ons": -1.0}, "'t_ons'"),
        ({"t_transient": float("nan")}, "'t_transient'"),
        ({"t_ons_transient": -1.0}, "'t_ons_transient'"),
    ],
)
def test_spectrum_config_refuses_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpectrumConfig(**kwargs)
