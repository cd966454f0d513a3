"""ODE-RNN and GRU-ODE-Bayes: masks and padding, closed-form flows between observations,
the GRU limit, partial observations, loss gradients and bad input."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from diffdyn.common import AbstractModel, SolveConfig
from diffdyn.common.neural_de import ODERNN, GRUODEBayes, irregular_oscillators

TIGHT = SolveConfig(rtol=1e-10, atol=1e-12)
# a fixed step is a fraction of each interval: 4 RK4 steps per interval
FIXED = SolveConfig(solver="rk4", adaptive=False, dt0=0.25, adjoint="direct", max_steps=8)

# a repeated time: a zero-length interval. (JAX caches the device copy of a NumPy array
# with the precision of its first use, so float64 tests take their own copies.)
_TS = [0.3, 0.9, 0.9, 1.4, 2.6, 3.0]
TS = np.array(_TS)
A = [[-0.4, 1.1, 0.0], [-0.9, -0.2, 0.3], [0.2, -0.5, -0.1]]


def data(key=0, dim=2):
    xs = jax.random.normal(jax.random.key(key), (len(_TS), dim))
    mask = jnp.ones((len(_TS), dim)).at[1, 0].set(0).at[4, 1].set(0)
    return xs, mask


def pad(ts, xs, mask, where):
    """Insert masked junk steps (NaN values, junk or NaN times) before the indices ``where``."""
    ts, xs, mask = list(np.asarray(ts)), list(np.asarray(xs)), list(np.asarray(mask))
    junk_times = iter([1e3, np.nan, -5.0, 0.0, 7.0])
    for i in sorted(where, reverse=True):
        ts.insert(i, next(junk_times))
        xs.insert(i, np.full_like(xs[0], np.nan))
        mask.insert(i, np.zeros_like(mask[0]))
    real = np.ones(len(ts), bool)
    shifted = [i + k for k, i in enumerate(sorted(where))]
    real[shifted] = False
    return np.array(ts), np.array(xs), np.array(mask), real


def gru_bias(model, index, value):
    """Set one of the GRU cell's three input biases (0 reset, 1 update, 2 candidate)."""
    h = model.cell.hidden_size
    return eqx.tree_at(
        lambda m: m.cell.bias, model, model.cell.bias.at[index * h : (index + 1) * h].set(value)
    )


def directional_check(loss, model, keys=(1, 2, 3), eps=1e-6):
    params, static = eqx.partition(model, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    # one compilation: the value and gradient function also gives the values
    f = jax.jit(jax.value_and_grad(lambda p: loss(eqx.combine(unravel(p), static))))
    grad = f(flat)[1]
    for k in keys:
        v = jax.random.normal(jax.random.key(k), flat.shape, flat.dtype)
        fd = (f(flat + eps * v)[0] - f(flat - eps * v)[0]) / (2 * eps)
        np.testing.assert_allclose(grad @ v, fd, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------ ODE-RNN


def test_odernn_masked_junk_steps_and_masked_values_do_not_change_the_states():
    model = ODERNN(2, 4, width=8, solve=FIXED, key=jax.random.key(0))
    xs, mask = data()
    run = eqx.filter_jit(lambda m, t, x, k: m.states(t, x, k))
    pre, post = run(model, TS, xs, mask)
    pts, pxs, pmask, real = pad(TS, xs, mask, [0, 3, 6, 6])
    ppre, ppost = run(model, pts, pxs, pmask)
    np.testing.assert_allclose(ppre[real], pre, atol=1e-6)
    np.testing.assert_allclose(ppost[real], post, atol=1e-6)
    # a padded step repeats the state of the last observed step
    np.testing.assert_allclose(ppost[~real][1:], ppost[np.flatnonzero(~real)[1:] - 1], atol=0)
    # values under the mask are ignored (even NaN); observed values are not
    other = run(model, TS, xs.at[1, 0].set(jnp.nan).at[4, 1].set(50.0), mask)[1]
    np.testing.assert_array_equal(other, post)
    assert float(jnp.max(jnp.abs(run(model, TS, xs.at[1, 1].add(1.0), mask)[1] - post))) > 1e-3


def test_odernn_batch_of_ragged_padded_sequences_equals_each_unpadded_sequence():
    ts, xs, mask = irregular_oscillators(2, key=jax.random.key(1), max_points=6, min_points=3)
    counts = np.asarray(mask[:, :, 0].sum(1))
    assert len(set(counts.tolist())) == 2  # ragged
    model = ODERNN(2, 3, width=8, solve=FIXED, key=jax.random.key(2))
    batch = eqx.filter_jit(lambda m: m.batch(ts, xs, mask))(model)
    # the shorter sequence alone, unpadded (one more compilation: keep it to one)
    b = int(np.argmin(counts))
    k = counts[b]
    np.testing.assert_allclose(batch[b, :k], model(ts[b, :k], xs[b, :k]), atol=1e-6)
    np.testing.assert_array_equal(
        batch[b, k:], jnp.broadcast_to(batch[b, k - 1], batch[b, k:].shape)
    )
    assert float(jnp.max(jnp.abs(batch[1 - b, k:] - batch[1 - b, k - 1]))) > 1e-3


def test_odernn_with_a_zero_field_is_a_plain_gru_over_the_observations():
    model = ODERNN(2, 4, width=8, solve=FIXED, key=jax.random.key(3))
    last = model.field.layers[-1]
    model = eqx.tree_at(
        lambda m: (m.field.layers[-1].weight, m.field.layers[-1].bias),
        model,
        (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)),
    )
    xs, mask = data(4)
    run = eqx.filter_jit(lambda m: (m.states(TS, xs, mask), m.predict(TS, xs, mask)))
    (pre, post), readout = run(model)
    h, expected = jnp.zeros(4), []
    for x, m in zip(xs, mask, strict=True):
        h = model.cell(jnp.concatenate([x * m, m]), h)
        expected.append(h)
    np.testing.assert_allclose(post, jnp.stack(expected), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(pre[1:], post[:-1])
    np.testing.assert_allclose(
        readout, post @ model.readout.weight.T + model.readout.bias, atol=1e-6
    )


def test_odernn_with_a_linear_field_evolves_by_the_matrix_exponential():
    with jax.enable_x64(True):
        ts, a = np.array(_TS), np.array(A)
        model = ODERNN(2, 3, depth=0, solve=TIGHT, key=jax.random.key(5))
        model = eqx.tree_at(
            lambda m: (m.field.layers[0].weight, m.field.layers[0].bias),
            model,
            (jnp.asarray(a), jnp.zeros(3)),
        )
        xs, mask = data(6)
        h0, t0 = jnp.array([0.5, -1.0, 0.25]), 0.1
        run = eqx.filter_jit(lambda m, **kw: m.states(ts, xs, mask, **kw))
        pre, post = run(model, h0=h0, t0=t0)
        np.testing.assert_allclose(pre[0], jsl.expm(a * (ts[0] - t0)) @ h0, rtol=1e-9)
        for i in range(1, len(ts)):
            expected = jsl.expm(a * (ts[i] - ts[i - 1])) @ post[i - 1]
            np.testing.assert_allclose(pre[i], expected, rtol=1e-9, atol=1e-12)
        # an identity GRU (update gate z = 1): the whole path is the linear flow
        identity = gru_bias(model, 1, 100.0)
        pre, post = run(identity, h0=h0, t0=t0)
        flows = jnp.stack([jsl.expm(a * (t - t0)) @ h0 for t in ts])
        np.testing.assert_allclose(post, flows, rtol=1e-9, atol=1e-12)
        # reversed: from the last observation back to the first, time running backwards
        back = eqx.filter_jit(lambda m: m.final(ts, xs, mask, h0=h0, reverse=True))(identity)
        np.testing.assert_allclose(back, jsl.expm(-a * (ts[-1] - ts[0])) @ h0, rtol=1e-9)


def test_odernn_refuses_bad_input_before_solving():
    model = ODERNN(2, 3, width=4, key=jax.random.key(0))
    xs, mask = data()
    with pytest.raises(ValueError, match="'xs' must have shape"):
        model(TS, xs[:, :1])
    with pytest.raises(ValueError, match="'ts' must have shape"):
        model(TS[:-1], xs)
    with pytest.raises(ValueError, match="'mask' must have shape"):
        model(TS, xs, mask[:, :1])
    with pytest.raises(ValueError, match="0/1"):
        model(TS, xs, 2 * mask)
    with pytest.raises(ValueError, match="non-decreasing"):
        model(TS[::-1], xs)
    with pytest.raises(ValueError, match="NaN"):
        model(TS, xs.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="'t0'"):
        model(TS, xs, t0=1.0)
    with pytest.raises(ValueError, match="'h0'"):
        model(TS, xs, h0=jnp.zeros(2))
    with pytest.raises(TypeError, match="SolveConfig"):
        ODERNN(2, 3, solve={"solver": "tsit5"}, key=jax.random.key(0))
    with pytest.raises(ValueError, match="B, T"):
        model.batch(TS[None], xs[None], mask[None, :3])


# ------------------------------------------------------------------ GRU-ODE-Bayes


def test_gru_ode_with_fixed_gates_relaxes_exponentially_to_the_candidate():
    with jax.enable_x64(True):
        ts = np.array(_TS)
        model = GRUODEBayes(2, 3, width=4, solve=TIGHT, key=jax.random.key(7))
        bz, bg = jnp.array([0.3, -1.2, 2.0]), jnp.array([0.8, -0.4, 1.5])
        zero = jnp.zeros((3, 3))
        model = eqx.tree_at(
            lambda m: (
                m.update_gate.weight,
                m.update_gate.bias,
                m.candidate.weight,
                m.candidate.bias,
            ),
            model,
            (zero, bz, zero, bg),
        )
        z, g = jax.nn.sigmoid(bz), jnp.tanh(bg)
        xs, mask = data(8)
        h0 = jnp.array([1.0, -2.0, 0.3])
        pre, post = eqx.filter_jit(lambda m: m.states(ts, xs, mask, h0=h0, t0=0.0))(model)
        closed = lambda h, t: g + (h - g) * jnp.exp(-(1 - z) * t)  # noqa: E731
        np.testing.assert_allclose(pre[0], closed(h0, ts[0]), rtol=1e-9)
        for i in range(1, len(ts)):
            np.testing.assert_allclose(
                pre[i], closed(post[i - 1], ts[i] - ts[i - 1]), rtol=1e-9, atol=1e-12
            )
        np.testing.assert_allclose(model.vector_field(0.0, h0), (1 - z) * (g - h0), rtol=1e-12)


def test_gru_bayes_update_ignores_unobserved_dimensions():
    with jax.enable_x64(True):
        ts = np.array(_TS)
        model = GRUODEBayes(3, 4, width=8, solve=FIXED, key=jax.random.key(9))
        h = jax.random.normal(jax.random.key(10), (4,))
        x = jnp.array([0.4, -1.3, 2.2])
        m = jnp.array([1.0, 0.0, 1.0])
        base = model.update(h, x, m)
        assert float(jnp.max(jnp.abs(base - h))) > 1e-3
        np.testing.assert_array_equal(model.update(h, x.at[1].set(jnp.nan), m), base)
        jac = jax.jacobian(model.update, argnums=1)(h, x, m)
        np.testing.assert_array_equal(jac[:, 1], 0.0)
        assert float(jnp.min(jnp.max(jnp.abs(jac[:, [0, 2]]), axis=0))) > 1e-6
        # an observation with no observed dimension changes nothing
        np.testing.assert_array_equal(
            model.update(h, x, jnp.zeros(3)), model.cell(jnp.zeros(12), h)
        )

        # in a sequence: masked values, masked junk steps do not change states or loss
        xs, mask = data(11, dim=3)
        run = eqx.filter_jit(lambda m, t, x, k: m.trajectory(t, x, k))
        out = run(model, ts, xs, mask)
        other = run(model, ts, xs.at[1, 0].set(123.0), mask)
        for name in out:
            np.testing.assert_array_equal(other[name], out[name])
        pts, pxs, pmask, real = pad(ts, xs, mask, [0, 2, 6])
        padded = run(model, pts, pxs, pmask)
        for name in ("pre", "post", "mean", "logvar", "nll", "kl"):
            np.testing.assert_allclose(padded[name][real], out[name], rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(padded["nll"][~real], 0.0)
        np.testing.assert_array_equal(padded["kl"][~real], 0.0)


def test_gru_ode_bayes_loss_is_the_pre_update_nll_plus_the_weighted_post_update_kl():
    with jax.enable_x64(True):
        ts = np.array(_TS)
        model = GRUODEBayes(2, 3, width=4, mixing=0.3, solve=FIXED, key=jax.random.key(12))
        xs, mask = data(13)
        run = eqx.filter_jit(lambda m: (m.trajectory(ts, xs, mask), m.loss_terms(ts, xs, mask)))
        out, terms = run(model)
        mean, logvar, post = out["mean"], out["logvar"], out["post"]
        var = jnp.exp(logvar)
        nll = 0.5 * jnp.sum(mask * (jnp.log(2 * math.pi * var) + (xs - mean) ** 2 / var))
        # the post-update prediction, from the states after each observation
        pm, plv = jax.vmap(model.observation_model)(post)
        s = model.obs_noise_std
        kl = jnp.sum(
            mask * (math.log(s) - 0.5 * plv + (jnp.exp(plv) + (pm - xs) ** 2) / (2 * s**2) - 0.5)
        )
        np.testing.assert_allclose(terms["nll"], nll, rtol=1e-12)
        np.testing.assert_allclose(terms["kl"], kl, rtol=1e-12)
        np.testing.assert_allclose(terms["loss"], nll + 0.3 * kl, rtol=1e-12)
        assert float(terms["count"]) == float(mask.sum())


@pytest.mark.heavy
def test_gru_ode_bayes_loss_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        ts = np.array(_TS)
        model = GRUODEBayes(2, 3, prep_dim=2, width=4, mixing=0.1, obs_noise_std=0.5,
                            solve=FIXED, key=jax.random.key(14))  # fmt: skip
        xs, mask = data(15)
        directional_check(lambda m: m.loss(ts, xs, mask), model)


def test_recurrent_models_save_and_load(tmp_path):
    xs, mask = data(16)
    for model in (
        ODERNN(2, 3, 1, width=4, solve=FIXED, key=jax.random.key(0)),
        GRUODEBayes(2, 3, width=4, mixing=0.5, solve=FIXED, key=jax.random.key(1)),
    ):
        loaded = AbstractModel.load(model.save(tmp_path / "model.eqx"))
        assert type(loaded) is type(model)
        assert loaded.hyperparameters() == model.hyperparameters()
        run = eqx.filter_jit(lambda m: m(TS, xs, mask))  # one compilation for both
        np.testing.assert_array_equal(run(loaded), run(model))
    with pytest.raises(ValueError, match="obs_noise_std"):
        GRUODEBayes(2, 3, obs_noise_std=0.0, key=jax.random.key(0))
