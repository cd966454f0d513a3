"""Events and hybrid systems: event times and their gradients against closed forms.

A ball dropped from height h with velocity v0 under gravity g lands with speed
s = sqrt(v0^2 + 2 g h) at t_1 = t0 + (v0 + s) / g; with restitution e the k-th impact is at
t_k = t_1 + (2 s / g) (e + e^2 + ... + e^(k-1)).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffdyn.common import SolveConfig
from diffdyn.common.neural_de import (
    EVENT_DIRECTIONS,
    BouncingBall,
    HybridODE,
    solve_to_event,
)

G = 9.81
TIGHT = SolveConfig(rtol=1e-10, atol=1e-12)
# the ball of the hybrid tests: dropped at T0 from H with upward velocity V0
T0, H, V0 = 0.5, 1.5, 1.0
TS = np.linspace(T0, T0 + 3.0, 13)  # save times (made float64 arrays inside x64 blocks)


def fall(t, y, g):
    return jnp.stack([y[1], -g * jnp.ones_like(y[1])])


def height(t, y, g):
    return y[0]


@eqx.filter_jit
def _landing(h, g, t1):
    """((t*, (state, occurred)), (dt*/dh, dt*/dg)) of a ball dropped from rest at height h."""

    def time(h, g):
        y0 = jnp.stack([h, jnp.zeros_like(h)])
        sol = solve_to_event(fall, y0, 0.0, t1, height, solve=TIGHT, args=g)
        return sol.time, (sol.state, sol.occurred)

    return jax.value_and_grad(time, argnums=(0, 1), has_aux=True)(h, g)


def impacts(e, n, h=H, v0=V0, t0=T0, g=G):
    """The first n impact times of the closed form, and the speed s at the first impact."""
    s = math.sqrt(v0**2 + 2 * g * h)
    first = t0 + (v0 + s) / g
    return np.array(
        [first + 2 * s / g * sum(e**i for i in range(1, k)) for k in range(1, n + 1)]
    ), s


def ball_state(t, e, n, h=H, v0=V0, t0=T0, g=G):
    """(x, v) at time t of the closed form, right-continuous at the impacts."""
    times, s = impacts(e, n, h, v0, t0, g)
    k = int(np.sum(times <= t))
    if k == 0:
        dt = t - t0
        return np.array([h + v0 * dt - 0.5 * g * dt**2, v0 - g * dt])
    dt, up = t - times[k - 1], e**k * s
    return np.array([up * dt - 0.5 * g * dt**2, up - g * dt])


@eqx.filter_jit
def _bounce(ball, t1, observed):
    """((loss, solution), gradient) of the loss sum_k (t_k - observed_k)^2 on the impact
    times, for the ball dropped at T0 from (H, V0) and saved at TS (one compilation serves
    every hybrid test)."""

    def loss(b):
        sol = b(jnp.array([H, V0]), T0, t1, jnp.asarray(TS))
        return jnp.sum((sol.event_times - observed) ** 2), sol

    return eqx.filter_value_and_grad(loss, has_aux=True)(ball)


# ------------------------------------------------------------------ one event


def test_falling_ball_lands_at_sqrt_2h_over_g_with_closed_form_gradients():
    with jax.enable_x64(True):
        h, g, t1 = jnp.asarray(2.0), jnp.asarray(G), jnp.asarray(10.0)
        (time, (state, occurred)), (dh, dg) = _landing(h, g, t1)
        assert bool(occurred)
        np.testing.assert_allclose(time, math.sqrt(2 * 2.0 / G), rtol=0, atol=1e-6)
        np.testing.assert_allclose(state, [0.0, -math.sqrt(2 * G * 2.0)], atol=1e-6)

        # dt*/dh = 1/sqrt(2gh), dt*/dg = -t*/(2g), by the implicit function theorem
        np.testing.assert_allclose(dh, 1 / math.sqrt(2 * G * 2.0), rtol=1e-8)
        np.testing.assert_allclose(dg, -0.5 * math.sqrt(2 * 2.0 / G) / G, rtol=1e-8)
        eps = 1e-5
        up, down = _landing(h + eps, g, t1)[0][0], _landing(h - eps, g, t1)[0][0]
        np.testing.assert_allclose(dh, (up - down) / (2 * eps), rtol=1e-7)


def test_no_event_before_t1_is_flagged_not_reported_as_an_event():
    with jax.enable_x64(True):
        (time, (state, occurred)), (dh, _) = _landing(
            jnp.asarray(2.0), jnp.asarray(G), jnp.asarray(0.5)
        )
        # the solve stopped at t1 = 0.5 < t* = 0.639: the end of the interval, flagged
        assert not bool(occurred)
        np.testing.assert_allclose(time, 0.5, rtol=0, atol=0)
        np.testing.assert_allclose(state, [2.0 - 0.5 * G * 0.25, -G * 0.5], rtol=1e-9)
        assert float(dh) == 0.0

        # a falling ball never crosses upwards; with require_event that is an error
        with pytest.raises(Exception, match="no event occurred before t1"):
            solve_to_event(
                fall,
                jnp.array([2.0, 0.0]),
                0.0,
                1.0,
                height,
                direction="up",
                args=G,
                require_event=True,
            )


def test_event_located_in_float32_with_default_settings():
    # located in time, so float32 rounding of the height does not stall the root finder
    sol = solve_to_event(fall, jnp.array([100.0, 0.0]), 0.0, 10.0, height, args=G)
    assert sol.time.dtype == jnp.float32 and bool(sol.occurred)
    np.testing.assert_allclose(sol.time, math.sqrt(2 * 100.0 / G), rtol=1e-5)


# ------------------------------------------------------------------ hybrid systems


@pytest.mark.heavy
def test_bouncing_ball_impacts_and_trajectory_match_closed_form():
    e, k = 0.8, 4
    with jax.enable_x64(True):
        ball = BouncingBall(e, G, k, solve=TIGHT)
        times, s = impacts(e, k + 1)
        assert times[k - 1] < T0 + 3.0 < times[k]  # exactly k impacts in [T0, T0 + 3]

        (_, sol), _ = _bounce(ball, jnp.asarray(T0 + 3.0), jnp.zeros(k))
        assert int(sol.num_events) == k and not bool(sol.truncated)
        np.testing.assert_allclose(sol.event_times, times[:k], rtol=0, atol=1e-6)
        speeds = s * e ** np.arange(k)
        np.testing.assert_allclose(sol.states_before[:, 1], -speeds, rtol=1e-8)
        np.testing.assert_allclose(sol.states_after[:, 1], e * speeds, rtol=1e-8)
        np.testing.assert_allclose(sol.states_before[:, 0], 0.0, atol=1e-8)
        expected = np.stack([ball_state(float(t), e, k) for t in TS])
        np.testing.assert_allclose(sol.ys, expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(sol.t_end, T0 + 3.0, rtol=0, atol=0)
        np.testing.assert_allclose(sol.y_end, ball_state(T0 + 3.0, e, k), atol=1e-6)

        # a (k+1)-th impact before t1 stops the run there, flagged, without applying it
        (_, long), _ = _bounce(ball, jnp.asarray(T0 + 4.0), jnp.zeros(k))
        assert int(long.num_events) == k and bool(long.truncated)
        np.testing.assert_allclose(long.t_end, times[k], rtol=0, atol=1e-6)
        np.testing.assert_allclose(long.y_end, [0.0, -s * e**k], atol=1e-6)


def test_impact_time_loss_gradient_matches_closed_form_and_finite_differences():
    e, k = 0.75, 4
    with jax.enable_x64(True):
        observed = jnp.asarray(impacts(0.7, k)[0])
        t1 = jnp.asarray(T0 + 3.5)
        ball = BouncingBall(e, G, k, solve=TIGHT)
        _, grad = _bounce(ball, t1, observed)

        times, s = impacts(e, k)
        dtimes = (
            2
            * s
            / G
            * np.array([sum(i * e ** (i - 1) for i in range(1, j)) for j in range(1, k + 1)])
        )
        closed = np.sum(2 * (times - np.asarray(observed)) * dtimes)
        np.testing.assert_allclose(grad.restitution, closed, rtol=1e-7)

        def loss(e):
            return float(_bounce(BouncingBall(e, G, k, solve=TIGHT), t1, observed)[0][0])

        eps = 1e-6
        fd = (loss(e + eps) - loss(e - eps)) / (2 * eps)
        np.testing.assert_allclose(grad.restitution, fd, rtol=1e-6)


def test_learning_restitution_from_observed_impact_times_recovers_it():
    with jax.enable_x64(True):
        observed = jnp.asarray(impacts(0.7, 4)[0])
        t1 = jnp.asarray(T0 + 3.5)
        ball = BouncingBall(0.5, G, 4, solve=TIGHT)
        optimiser = optax.sgd(0.02)
        state = optimiser.init(eqx.filter(ball, eqx.is_inexact_array))
        for _ in range(8):
            _, grad = _bounce(ball, t1, observed)
            updates, state = optimiser.update(grad, state)
            ball = eqx.apply_updates(ball, updates)
        np.testing.assert_allclose(ball.restitution, 0.7, rtol=0, atol=1e-6)


@pytest.mark.heavy
def test_batched_gradients_of_impact_times_match_closed_form():
    # vmap of grad over balls whose runs end after different numbers of segments (the
    # skipped segments of a finished run must not break the batched gradient)
    e, k = 0.8, 3
    heights = np.array([0.3, 1.5, 6.0])
    with jax.enable_x64(True):
        ball = BouncingBall(e, G, k, solve=TIGHT)

        def first_impacts(b, h):
            sol = b(jnp.stack([h, jnp.asarray(V0)]), T0, T0 + 2.0)
            return jnp.sum(jnp.where(sol.event_mask, sol.event_times, 0.0))

        grads = jax.vmap(lambda h: eqx.filter_grad(first_impacts)(ball, h))(heights)
        for h, grad in zip(heights, grads.restitution, strict=True):
            times, s = impacts(e, k + 1, h=h)
            n = int(np.sum(times[:k] <= T0 + 2.0))
            closed = sum(
                2 * s / G * sum(i * e ** (i - 1) for i in range(1, j)) for j in range(1, n + 1)
            )
            np.testing.assert_allclose(grad, closed, rtol=1e-7)


def test_bouncing_ball_saves_and_loads(tmp_path):
    ball = BouncingBall(0.65, 3.7, 5, solve=SolveConfig(rtol=1e-7))
    loaded = BouncingBall.load(ball.save(tmp_path / "ball.eqx"))
    assert isinstance(loaded, BouncingBall)
    np.testing.assert_allclose(loaded.restitution, 0.65, rtol=1e-7)
    assert (loaded.gravity, loaded.max_bounces, loaded.solve) == (3.7, 5, ball.solve)


# ------------------------------------------------------------------ bad input


def test_bad_input_is_refused_with_a_clear_message():
    y0 = jnp.array([1.0, 0.0])
    with pytest.raises(TypeError, match="'condition' must be callable"):
        solve_to_event(fall, y0, 0.0, 1.0, "height", args=G)
    with pytest.raises(TypeError, match="'vector_field' must be callable"):
        solve_to_event(None, y0, 0.0, 1.0, height, args=G)
    with pytest.raises(ValueError, match="'t1' must be > t0"):
        solve_to_event(fall, y0, 1.0, 1.0, height, args=G)
    with pytest.raises(ValueError, match="'t1' must be > t0"):
        solve_to_event(fall, y0, 1.0, 0.5, height, args=G)
    with pytest.raises(ValueError, match="'t0' must be finite"):
        solve_to_event(fall, y0, -math.inf, 0.5, height, args=G)
    with pytest.raises(ValueError, match="'direction' must be one of"):
        solve_to_event(fall, y0, 0.0, 1.0, height, args=G, direction="downwards")
    assert EVENT_DIRECTIONS == ("any", "up", "down")
    with pytest.raises(ValueError, match="backsolve"):
        solve_to_event(fall, y0, 0.0, 1.0, height, args=G, solve=SolveConfig(adjoint="backsolve"))
    with pytest.raises(TypeError, match="SolveConfig"):
        solve_to_event(fall, y0, 0.0, 1.0, height, args=G, solve={"rtol": 1e-6})
    with pytest.raises(ValueError, match="must return a scalar"):
        solve_to_event(fall, y0, 0.0, 1.0, lambda t, y, a: y, args=G)
    with pytest.raises(TypeError, match="real"):
        solve_to_event(fall, y0, 0.0, 1.0, lambda t, y, a: y[0] < 0, args=G)
    with pytest.raises(ValueError, match="'ts' must lie in"):
        solve_to_event(fall, y0, 0.0, 1.0, height, args=G, ts=jnp.array([0.5, 2.0]))
    with pytest.raises(ValueError, match="vector_field"):
        solve_to_event(lambda t, y, a: y[:1], y0, 0.0, 1.0, height, args=G)

    with pytest.raises(TypeError, match="'jump' must be callable"):
        HybridODE(fall, height, 0.8, 3)
    with pytest.raises(ValueError, match="max_events"):
        HybridODE(fall, height, lambda t, y, a: y, 0)
    hybrid = HybridODE(fall, height, lambda t, y, a: y[:1], 3, direction="down")
    with pytest.raises(ValueError, match="jump"):
        hybrid(y0, 0.0, 1.0, args=G)
    with pytest.raises(ValueError, match="'restitution' must be >= 0"):
        BouncingBall(-0.1)
    with pytest.raises(ValueError, match="gravity"):
        BouncingBall(0.8, 0.0)
    with pytest.raises(ValueError, match="'y0' must be the state"):
        BouncingBall(0.8)(jnp.zeros(3), 0.0, 1.0)
