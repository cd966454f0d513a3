"""RateRNN: activations, the exact step map, diffrax parity, save/load, fixed arrays, input
checks."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from diffdyn.common import SolveConfig
from diffdyn.rnn import STEP_SOLVE, RateRNN, get_activation


def _fixed_step(solver, dt):
    return SolveConfig(solver=solver, dt0=dt, adaptive=False)


def test_activation_values_and_slopes():
    pos, stretched = get_activation("tanh_positive"), get_activation("tanh-stretched")
    one = jnp.ones(1)
    assert float(pos(jnp.zeros(1), one, 0 * one)[0]) == 0.5
    assert float(pos(one, 2 * one, one)[0]) == 0.5
    assert float(stretched(one, 2 * one, one)[0]) == 0.0
    # autodiff slopes against the closed forms (FlyStability dropped gain, shift and the 1/2)
    x, g, s = 0.3, 1.7, -0.4
    sech2 = 1 / np.cosh(g * (x - s)) ** 2
    d_pos = jax.grad(lambda x: pos(x, g, s))(x)
    d_str = jax.grad(lambda x: stretched(x, g, s))(x)
    np.testing.assert_allclose(d_pos, 0.5 * g * sech2, rtol=1e-6)
    np.testing.assert_allclose(d_str, g * sech2, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown activation"):
        get_activation("relu")


def test_random_coupling_statistics():
    n, g = 300, 1.5
    m = RateRNN(n, g=g, key=jax.random.key(0))
    j = np.asarray(m.coupling)
    assert np.all(np.diag(j) == 0)
    assert np.all(np.asarray(m.weight) >= 0)
    off = j[~np.eye(n, dtype=bool)]
    np.testing.assert_allclose(off.var() * n, g**2, rtol=0.02)
    # circular law: spectral radius close to g
    assert abs(np.abs(np.linalg.eigvals(j)).max() - g) < 0.2


def test_euler_step_closed_form_and_diffrax_parity():
    with jax.enable_x64(True):
        m = RateRNN.from_coupling(
            np.asarray(RateRNN(7, g=2.0, key=jax.random.key(1)).coupling),
            cell_type=np.array([0, 1, 1, 0, 2, 2, 1]),
            gain=[1.5, 0.7, 2.0],
            shift=[0.1, -0.2, 0.3],
            bias=np.linspace(-0.5, 0.5, 7),
            activation="tanh-positive",
        )
        h = jax.random.normal(jax.random.key(2), (7,))
        g, s = np.asarray(m.gain)[m.cell_type], np.asarray(m.shift)[m.cell_type]
        rate = 0.5 * (1 + np.tanh(g * (np.asarray(h) - s)))
        expected = (1 - m.dt) * h + m.dt * (np.asarray(m.coupling) @ rate + np.asarray(m.bias))
        # iterating the step map is exactly the fixed-step diffrax solve
        ts = jnp.arange(0, 41) * m.dt

        @eqx.filter_jit
        def both(m, h):
            _, hs = jax.lax.scan(lambda h, _: (m.step(h), h), h, length=41)
            return m.step(h), hs, m.simulate(h, ts)

        first, hs, traj = both(m, h)
        np.testing.assert_allclose(first, expected, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(traj, hs, rtol=1e-12, atol=1e-12)


def test_adaptive_solve_of_linear_network_matches_matrix_exponential():
    with jax.enable_x64(True):
        m = RateRNN(6, g=1.2, activation="identity", key=jax.random.key(3))
        h0 = jnp.linspace(-1, 1, 6)
        ts = jnp.array([0.0, 0.5, 2.0])
        out = m.simulate(h0, ts, SolveConfig(solver="tsit5", rtol=1e-10, atol=1e-12))
        a = -np.eye(6) + np.asarray(m.coupling)
        for t, y in zip(np.asarray(ts), np.asarray(out), strict=True):
            np.testing.assert_allclose(y, scipy.linalg.expm(a * t) @ np.asarray(h0), atol=1e-8)


def test_rk4_step_is_fourth_order():
    with jax.enable_x64(True):
        base = RateRNN(5, g=1.0, activation="identity", key=jax.random.key(4))
        a = -np.eye(5) + np.asarray(base.coupling)
        h = jnp.ones(5)
        errs = []
        for dt in (0.2, 0.1):
            m = RateRNN.from_coupling(
                np.asarray(base.coupling), activation="identity", solve=_fixed_step("rk4", dt)
            )
            errs.append(
                np.abs(eqx.filter_jit(m.step)(h) - scipy.linalg.expm(a * dt) @ np.ones(5)).max()
            )
        # local error O(dt^5)
        assert 2**4.5 < errs[0] / errs[1] < 2**5.5


def test_save_load_roundtrip(tmp_path):
    m = RateRNN.from_coupling(
        np.asarray(RateRNN(5, key=jax.random.key(0)).coupling),
        cell_type=np.array([0, 1, 0, 1, 1]),
        gain=[2.0, 3.0],
        activation="tanh-stretched",
        solve=_fixed_step("rk4", 0.05),
    )
    path = m.save(tmp_path / "m.eqx")
    back = RateRNN.load(path)
    assert back.hyperparameters() == m.hyperparameters()
    assert back.solve == m.solve and back.dt == 0.05
    for name in ("weight", "sign", "gain", "shift", "cell_type", "bias"):
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name))


def test_files_of_0_1_0_keep_their_step():
    # 0.1.0 recorded the step as flat dt and solver arguments
    old = {"n": 6, "g": 1.5, "activation": "tanh", "n_types": None, "dt": 0.05, "solver": "heun"}
    new = RateRNN.upgrade_hyperparameters(old, version="0.1.0")
    kept = {k: old[k] for k in ("n", "g", "activation", "n_types")}
    assert new == {**kept, "solve": _fixed_step("heun", 0.05)}
    m = RateRNN(**new, key=jax.random.key(0))
    assert m.dt == 0.05 and m.solve.solver == "heun"
    assert RateRNN.upgrade_hyperparameters(m.hyperparameters(), version="0.1.0") == (
        m.hyperparameters()
    )


def test_trainable_leaves():
    m = RateRNN(4, n_types=2, key=jax.random.key(0))
    assert m.num_parameters() == 16 + 2 + 2  # weight, gain, shift; sign/bias fixed


def test_sign_and_bias_stay_fixed_under_a_plain_training_loop():
    """A plain filter_grad + adam loop over every floating leaf (not the common Trainer)
    changes the weights but not the sign matrix nor the bias: both are read through
    stop_gradient, so their gradient is exactly zero."""
    m = RateRNN.from_coupling(
        np.asarray(RateRNN(6, g=2.0, key=jax.random.key(0)).coupling),
        bias=np.linspace(-0.3, 0.3, 6),
        activation="tanh-stretched",
    )
    h0 = jnp.linspace(-1.0, 1.0, 6)
    loss = lambda model: jnp.sum(jnp.square(model.simulate(h0, jnp.array([0.0, 1.0]))[-1]))
    params, static = eqx.partition(m, eqx.is_inexact_array)  # sign and bias included
    grads = eqx.filter_grad(lambda p: loss(eqx.combine(p, static)))(params)
    assert not np.any(np.asarray(grads.sign)) and not np.any(np.asarray(grads.bias))
    opt = optax.adam(0.1)
    state = opt.init(params)
    for _ in range(3):
        grads = eqx.filter_grad(lambda p: loss(eqx.combine(p, static)))(params)
        updates, state = opt.update(grads, state, params)
        params = eqx.apply_updates(params, updates)
    trained = eqx.combine(params, static)
    np.testing.assert_array_equal(trained.sign, m.sign)
    np.testing.assert_array_equal(trained.bias, m.bias)
    assert np.abs(np.asarray(trained.weight - m.weight)).max() > 0.1
    assert np.abs(np.asarray(trained.gain - m.gain)).max() > 0.1


def test_simulate_honours_the_models_max_steps():
    solve = SolveConfig(solver="euler", dt0=0.1, adaptive=False, max_steps=10)
    m = RateRNN(3, solve=solve, key=jax.random.key(0))
    assert m.simulate(jnp.ones(3), jnp.array([0.0, 1.0])).shape == (2, 3)
    with pytest.raises(ValueError, match="max_steps"):
        m.simulate(jnp.ones(3), jnp.array([0.0, 2.0]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "'n'"),
        ({"n": 3, "activation": "relu"}, "activation"),
        ({"n": 3, "solve": _fixed_step("kvaerno5", 0.1)}, "explicit solver"),
        ({"n": 3, "solve": SolveConfig(solver="tsit5")}, "adaptive=False"),
        ({"n": 3, "solve": SolveConfig(solver="euler", adaptive=False)}, "dt0"),
        (
            {"n": 3, "solve": SolveConfig(solver="rk4", dt0=0.1, adaptive=False, rtol=1e-3)},
            "tolerances",
        ),
        ({"n": 3, "n_types": 4}, "'n_types'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RateRNN(**kwargs, key=jax.random.key(0))
    with pytest.raises(TypeError, match="SolveConfig"):
        RateRNN(3, solve="euler", key=jax.random.key(0))
    assert RateRNN(3, key=jax.random.key(0)).solve == STEP_SOLVE


def test_bad_state_and_coupling():
    m = RateRNN(3, key=jax.random.key(0))
    with pytest.raises(ValueError, match="'h0'"):
        m.simulate(jnp.zeros(4), jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="'sign'"):
        RateRNN.from_coupling(sign=2 * np.ones((3, 3)), weight=np.ones((3, 3)))
    with pytest.raises(ValueError, match="'weight'"):
        RateRNN.from_coupling(sign=np.ones((3, 3)), weight=-np.ones((3, 3)))
