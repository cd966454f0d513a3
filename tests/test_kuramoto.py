"""Kuramoto dynamics: fast coupling sum, delayed solver, solver orders against the two-oscillator
closed form, order parameters, K_c = 4/pi onset."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import SolveConfig
from diffdyn.oscillators import (
    DelayedEuler,
    Kuramoto,
    XYModel,
    coupling_sum,
    gather_delayed,
    group_order_parameter,
    one_hot_groups,
    order_parameter,
    pairwise_coupling_sum,
    simulate,
    splay_state,
    xy_energy,
)


def test_fast_coupling_equals_pairwise():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    n = 64
    coupling = jax.random.normal(k1, (n, n))
    theta = jax.random.uniform(k2, (n,), maxval=2 * math.pi)
    sender = jax.random.uniform(k3, (n,), maxval=2 * math.pi)
    with jax.enable_x64(True):
        c, t, s = (jnp.asarray(np.asarray(a), jnp.float64) for a in (coupling, theta, sender))
        np.testing.assert_allclose(coupling_sum(c, t), pairwise_coupling_sum(c, t), atol=1e-12)
        np.testing.assert_allclose(
            coupling_sum(c, t, s), pairwise_coupling_sum(c, t, s), atol=1e-12
        )


def _reference_delayed_euler(coupling, omega, field, delays, theta0, past, dt, steps):
    """Plain loop that stores the whole trajectory and reads delayed phases from it."""
    coupling, omega, field = (np.asarray(a, np.float64) for a in (coupling, omega, field))
    delays = np.asarray(delays)
    traj = [np.asarray(p, np.float64) for p in past] + [np.asarray(theta0, np.float64)]
    start = len(past)
    n = len(theta0)
    for k in range(steps):
        now = start + k
        y = traj[now]
        phi = np.array([traj[now - delays[j]][j] for j in range(n)])
        dy = omega + np.sum(coupling * np.sin(phi[None, :] - y[:, None]), 1) + field * np.sin(y)
        traj.append(y + dt * dy)
    return np.stack(traj[start:])


@pytest.mark.parametrize("with_past", [False, True])
def test_delayed_solver_matches_reference_loop(with_past):
    n, max_delay, steps, dt = 20, 7, 40, 0.1
    ks = jax.random.split(jax.random.key(1), 5)
    with jax.enable_x64(True):
        coupling = jax.random.normal(ks[0], (n, n), jnp.float64) / n
        omega = jax.random.uniform(ks[1], (n,), jnp.float64, -1, 1)
        field = jax.random.uniform(ks[2], (n,), jnp.float64, -1, 1)
        delays = jax.random.randint(ks[3], (n,), 0, max_delay + 1)
        theta0 = jax.random.uniform(ks[4], (n,), jnp.float64, 0, 2 * math.pi)
        past = (
            theta0[None] + 0.1 * jnp.arange(-max_delay, 0, dtype=jnp.float64)[:, None]
            if with_past
            else None
        )
        f = Kuramoto(coupling, omega, field, delays)
        got = simulate(f, theta0, dt=dt, steps=steps, max_delay=max_delay, past=past)
        ref_past = np.repeat(np.asarray(theta0)[None], max_delay, 0) if past is None else past
        want = _reference_delayed_euler(coupling, omega, field, delays, theta0, ref_past, dt, steps)
    assert got.shape == (steps + 1, n)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-11)


def test_zero_delays_equal_plain_euler():
    n = 16
    coupling = jax.random.normal(jax.random.key(2), (n, n)) / n
    theta0 = jax.random.uniform(jax.random.key(3), (n,), maxval=6.0)
    omega = jnp.linspace(-1, 1, n)
    f = Kuramoto(coupling, omega)
    delayed = simulate(f, theta0, dt=0.05, steps=30, max_delay=3)
    plain = simulate(f, theta0, dt=0.05, steps=30)
    np.testing.assert_allclose(delayed, plain, atol=1e-5)


def test_gather_delayed_ring_buffer():
    history = jnp.arange(12.0).reshape(4, 3)  # rows are states; slot 1 is current
    got = gather_delayed(history, 1, jnp.array([0, 1, 2]))
    np.testing.assert_array_equal(got, [history[1, 0], history[0, 1], history[3, 2]])


def test_delayed_solver_rejects_plain_field_and_bad_past():
    with pytest.raises(TypeError, match="AbstractDelayedVectorField"):
        simulate(XYModel(jnp.eye(3)), jnp.zeros(3), dt=0.1, steps=2, max_delay=2)
    with pytest.raises(ValueError, match="past"):
        DelayedEuler(3, jnp.zeros((2, 5)))


def test_order_parameters():
    n = 12
    assert float(order_parameter(jnp.full((n,), 0.7))) == pytest.approx(1.0, abs=1e-6)
    assert float(order_parameter(splay_state(n))) == pytest.approx(0.0, abs=1e-6)
    labels = jnp.arange(n) % 3
    theta = 2 * jnp.pi * labels / 3 + 0.4
    r, psi = group_order_parameter(theta, one_hot_groups(labels, 4))
    np.testing.assert_allclose(r, [1, 1, 1, 0], atol=1e-6)
    np.testing.assert_allclose(
        jnp.cos(psi[:3]), jnp.cos(2 * jnp.pi * jnp.arange(3) / 3 + 0.4), atol=1e-6
    )


def test_xy_energy_decreases():
    n = 30
    k1, k2 = jax.random.split(jax.random.key(4))
    a = jax.random.normal(k1, (n, n))
    coupling = (a + a.T) / 2
    theta0 = jax.random.uniform(k2, (n,), maxval=2 * math.pi)
    traj = simulate(XYModel(coupling), theta0, dt=0.01, steps=200)
    energy = jax.vmap(lambda th: xy_energy(coupling, th))(traj)
    assert np.all(np.diff(np.asarray(energy)) <= 1e-6)
    assert float(energy[-1]) < float(energy[0]) - 0.1
    # the vector field is minus the gradient of E
    grad = jax.grad(lambda th: xy_energy(coupling, th))(theta0)
    np.testing.assert_allclose(XYModel(coupling)(0.0, theta0), -grad, atol=1e-4)


def _uniform_theory_r(k: float) -> float:
    """Mean-field R for g = U(-1, 1) above K_c = 4/pi (Kuramoto's self-consistency): the
    locked oscillators give R = K R int_{-s}^{s} cos^2(x) g(K R sin x) dx
    = K R (s + sin s cos s) / 2 with s = arcsin(min(1, 1/(K R))); solved by bisection."""

    def residual(r):
        s = math.asin(min(1.0, 1.0 / (k * r)))
        # fraction of the mean field from locked oscillators: (1/2) int_{-s}^{s} cos^2 * K r
        locked = k * r * (s + math.sin(s) * math.cos(s)) / 2
        return locked - r

    lo, hi = 1e-3, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if residual(mid) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def test_critical_coupling_onset():
    """All-to-all K_ij = K/N, omega ~ U(-1, 1) (regular quantiles), N = 1000: incoherent
    below K_c = 4/pi, synchronised above it, with R near the mean-field value."""
    n = 1000
    kc = 4 / math.pi
    ratios = np.array([0.8, 0.9, 1.1, 1.3])
    omega = -1 + (2 * jnp.arange(n) + 1) / n
    theta0 = jax.random.uniform(jax.random.key(5), (n,), maxval=2 * math.pi)
    ones = jnp.ones((n, n)) / n

    @jax.jit
    @jax.vmap
    def mean_r(k):
        traj = simulate(Kuramoto(k * ones, omega), theta0, dt=0.2, steps=500, save_every=10)
        return jnp.mean(order_parameter(traj[35:]))

    r = np.asarray(mean_r(jnp.asarray(kc * ratios, jnp.float32)))
    assert r[0] < 0.15 and r[1] < 0.25, r
    assert r[2] > 0.5 and r[3] > 0.7, r
    onset = kc * np.interp(0.4, r, ratios)
    assert abs(onset / kc - 1) < 0.1, (onset, r)
    assert r[3] == pytest.approx(_uniform_theory_r(1.3 * kc), abs=0.05)


def test_simulate_rejects_bad_input():
    f = Kuramoto(jnp.eye(3))
    with pytest.raises(ValueError, match="steps"):
        simulate(f, jnp.zeros(3), dt=0.1, steps=0)
    with pytest.raises(ValueError, match="theta0"):
        simulate(f, jnp.zeros((3, 1)), dt=0.1, steps=3)
    with pytest.raises(ValueError, match="omega"):
        Kuramoto(jnp.eye(3), omega=jnp.zeros(4))
    with pytest.raises(TypeError, match="delays"):
        Kuramoto(jnp.eye(3), delays=jnp.zeros(3))


def _two_oscillators(k: float, phi0: float, t: np.ndarray) -> np.ndarray:
    """Closed form of two identical oscillators coupled by K_12 = K_21 = k: the difference
    phi = theta_2 - theta_1 obeys phi' = -2k sin(phi), so tan(phi/2) = tan(phi0/2) e^{-2kt}."""
    return 2 * np.arctan(np.tan(phi0 / 2) * np.exp(-2 * k * t))


@pytest.mark.parametrize(
    "solve, order",
    [
        (None, 1),  # KuraNet's explicit Euler
        (SolveConfig(solver="heun", adaptive=False), 2),
        (SolveConfig(solver="rk4", adaptive=False), 4),
    ],
)
def test_fixed_step_solvers_converge_at_their_order_to_the_two_oscillator_closed_form(solve, order):
    k, phi0, steps = 0.7, 2.0, 40
    with jax.enable_x64(True):
        field = Kuramoto(jnp.array([[0.0, k], [k, 0.0]]))
        theta0 = jnp.array([0.3, 0.3 + phi0])
        errors = []
        for dt in (0.1, 0.05):
            n = int(round(steps * 0.1 / dt))
            traj = simulate(field, theta0, dt=dt, steps=n, save_every=n, solve=solve)
            want = _two_oscillators(k, phi0, np.array([steps * 0.1]))[0]
            errors.append(abs(float(traj[-1, 1] - traj[-1, 0]) - want))
            # the mean phase is conserved (the coupling is symmetric, omega = 0)
            assert float(traj[-1].sum()) == pytest.approx(float(theta0.sum()), abs=1e-12)
    assert math.log2(errors[0] / errors[1]) == pytest.approx(order, abs=0.25)


def test_adaptive_solve_meets_its_tolerance_on_the_closed_form():
    k, phi0 = 0.7, 2.0
    with jax.enable_x64(True):
        field = Kuramoto(jnp.array([[0.0, k], [k, 0.0]]))
        theta0 = jnp.array([0.3, 0.3 + phi0])
        solve = SolveConfig(solver="tsit5", rtol=1e-10, atol=1e-12)
        traj = simulate(field, theta0, dt=0.5, steps=8, solve=solve)
    want = _two_oscillators(k, phi0, 0.5 * np.arange(9))
    np.testing.assert_allclose(np.asarray(traj[:, 1] - traj[:, 0]), want, atol=1e-8)


def test_simulate_refuses_settings_that_do_not_apply():
    f = Kuramoto(jnp.eye(3), delays=jnp.array([0, 1, 2]))
    with pytest.raises(ValueError, match="euler"):
        simulate(
            f, jnp.zeros(3), dt=0.1, steps=4, max_delay=2, solve=SolveConfig("rk4", adaptive=False)
        )
    with pytest.raises(ValueError, match="dt0"):
        simulate(
            f, jnp.zeros(3), dt=0.1, steps=4, solve=SolveConfig("euler", dt0=0.2, adaptive=False)
        )
    with pytest.raises(ValueError, match="max_delay"):
        simulate(f, jnp.zeros(3), dt=0.1, steps=4, past=jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="max_steps"):
        simulate(
            Kuramoto(jnp.eye(3)),
            jnp.zeros(3),
            dt=0.1,
            steps=40,
            solve=SolveConfig("euler", adaptive=False, max_steps=10),
        )


def test_bad_couplings_and_delays_are_refused_not_clipped():
    from diffdyn.oscillators import Kuramoto, simulate

    k = np.ones((3, 3), np.float32)
    with pytest.raises(ValueError, match="coupling must be finite"):
        Kuramoto(np.where(np.eye(3) > 0, np.nan, k))
    with pytest.raises(ValueError, match="field must be finite"):
        Kuramoto(k, field=np.array([0.0, np.inf, 0.0]))
    with pytest.raises(ValueError, match="delays must be >= 0"):
        Kuramoto(k, delays=np.array([0, -1, 2]))
    delayed = Kuramoto(k, delays=np.array([0, 1, 4]))
    theta0 = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="longest delay is 4 steps, more than max_delay = 2"):
        simulate(delayed, theta0, dt=0.1, steps=4, max_delay=2)
    with pytest.raises(ValueError, match="would run it undelayed; pass max_delay >= 4"):
        simulate(delayed, theta0, dt=0.1, steps=4)
    assert simulate(delayed, theta0, dt=0.1, steps=4, max_delay=4).shape == (5, 3)
    # undelayed dynamics are asked for by name
    np.testing.assert_array_equal(
        simulate(delayed.undelayed(), theta0 + 0.3, dt=0.1, steps=4),
        simulate(Kuramoto(k), theta0 + 0.3, dt=0.1, steps=4),
    )


def test_theta0_of_the_wrong_length_is_named():
    with pytest.raises(ValueError, match="theta0 has 5 phases but the field couples N = 3"):
        simulate(Kuramoto(jnp.eye(3)), jnp.zeros(5), dt=0.1, steps=4)
