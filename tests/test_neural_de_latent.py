"""The latent ODE: the closed-form KL, the ELBO's parts, padding, the latent path as an ODE
solution (interpolation and extrapolation), gradients, training, save/load; and the
irregularly sampled oscillators it is trained on."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from diffdyn.common import AbstractModel, SolveConfig
from diffdyn.common.neural_de import LatentODE, NeuralODE, irregular_oscillators

TIGHT = SolveConfig(rtol=1e-10, atol=1e-12)
# a fixed step is a fraction of each interval: 4 RK4 steps per interval
FIXED = SolveConfig(solver="rk4", adaptive=False, dt0=0.25, adjoint="direct", max_steps=8)
# (JAX caches the device copy of a NumPy array with the precision of its first use, so
# float64 tests build their own arrays from these lists.)
_TS = [0.2, 0.7, 1.5, 1.9, 2.8]
_LATER = [3.5, 4.0, 6.0]


def tiny(key, **kw):
    settings = dict(hidden_dim=3, width=4, depth=1)
    return LatentODE(2, 2, **{**settings, **kw}, key=key)


def data(key=0):
    xs = jax.random.normal(jax.random.key(key), (len(_TS), 2))
    mask = jnp.ones((len(_TS), 2)).at[1, 0].set(0).at[3, 1].set(0)
    return xs, mask


def test_kl_is_the_divergence_of_two_gaussians_by_quadrature():
    with jax.enable_x64(True):
        mean, logvar = jnp.array([-0.4, 0.7, 1.3]), jnp.array([-1.1, 0.4, 0.0])
        expected = 0.0
        for m, v in zip(np.asarray(mean), np.asarray(logvar), strict=True):
            s = math.exp(0.5 * v)
            z = np.linspace(m - 14 * s, m + 14 * s, 200001)
            lq = -0.5 * (z - m) ** 2 / s**2 - 0.5 * np.log(2 * np.pi * s**2)
            lp = -0.5 * z**2 - 0.5 * np.log(2 * np.pi)
            expected += np.trapezoid(np.exp(lq) * (lq - lp), z)
        np.testing.assert_allclose(LatentODE.kl(mean, logvar), expected, rtol=1e-9)
        assert float(LatentODE.kl(jnp.zeros(3), jnp.zeros(3))) == 0.0


def test_elbo_terms_are_the_masked_gaussian_nll_and_the_kl_of_the_encoding():
    with jax.enable_x64(True):
        ts = np.array(_TS)
        model = tiny(jax.random.key(1), learn_obs_std=True, solve=FIXED)
        model = eqx.tree_at(lambda m: m.log_obs_std, model, jnp.log(jnp.array([0.3, 0.6])))
        xs, mask = data(2)
        key = jax.random.key(3)

        @eqx.filter_jit
        def run(m):
            terms = m.elbo_terms(ts, xs, mask, key=key)
            recon = m.reconstruct(ts, xs, mask, key=jax.random.split(key, 1)[0])
            return terms, m.encode(ts, xs, mask), recon

        terms, (mean, logvar), (zs, means) = run(model)
        std = jnp.array([0.3, 0.6])
        nll = -jnp.sum(
            mask * (-0.5 * ((xs - means) / std) ** 2 - jnp.log(std) - 0.5 * math.log(2 * math.pi))
        )
        np.testing.assert_allclose(terms["nll"], nll, rtol=1e-12)
        np.testing.assert_allclose(terms["kl"], LatentODE.kl(mean, logvar), rtol=1e-12)
        np.testing.assert_allclose(terms["loss"], terms["nll"] + terms["kl"], rtol=1e-14)
        np.testing.assert_allclose(means, zs @ model.decoder_net.weight.T + model.decoder_net.bias)


def test_masked_junk_steps_and_masked_values_do_not_change_the_negative_elbo():
    model = tiny(jax.random.key(4), solve=FIXED)
    ts = np.array(_TS)
    xs, mask = data(5)
    key = jax.random.key(6)
    run = eqx.filter_jit(lambda m, t, x, k: m.elbo_terms(t, x, k, samples=2, key=key))
    terms = run(model, ts, xs, mask)
    # junk steps (NaN values, junk times) before, between and after the observations
    pts = np.array([-3.0, ts[0], ts[1], np.nan, ts[2], ts[3], ts[4], 40.0])
    real = np.array([0, 1, 1, 0, 1, 1, 1, 0], bool)
    pxs = jnp.full((8, 2), jnp.nan).at[real].set(xs.at[1, 0].set(jnp.nan))
    pmask = jnp.zeros((8, 2)).at[real].set(mask)
    padded = run(model, pts, pxs, pmask)
    for name in ("nll", "kl", "loss"):
        np.testing.assert_allclose(padded[name], terms[name], rtol=1e-6)
    assert np.isfinite(float(padded["loss"]))


def test_latent_path_is_the_ode_solution_interpolated_and_extrapolated():
    with jax.enable_x64(True):
        ts, later = np.array(_TS), np.array(_LATER)
        model = tiny(jax.random.key(7), solve=TIGHT)
        xs, mask = data(8)
        t0, full = 0.0, np.concatenate([ts, later])

        @eqx.filter_jit
        def run(m):
            mean, _ = m.encode(ts, xs, mask, t0=t0)
            path = m.latent_path(mean, ts, t0=t0)  # interpolation at the observed times
            extended = m.reconstruct(ts, xs, mask, full, t0=t0, key=None)  # and past them
            reference = NeuralODE(m.vector_field, solve=TIGHT)(mean, full, t0=t0)
            return path, extended, reference

        path, (zs, means), reference = run(model)
        np.testing.assert_allclose(path, reference[: len(ts)], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(zs, reference, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(means, model.decode(zs), rtol=1e-12)
        assert float(jnp.max(jnp.abs(zs[-1] - zs[0]))) > 1e-2  # the path moves


@pytest.fixture(scope="module")
def oscillator_problem():
    """A tiny float64 latent ODE on a padded batch of damped oscillators, as a function of its
    flat parameters: ``(value_and_grad, flat)``; compiled once for the two tests below."""
    with jax.enable_x64(True):
        ts, xs, mask = irregular_oscillators(8, key=jax.random.key(20), max_points=6,
                                             min_points=4, t1=5.0, missing=0.1)  # fmt: skip
        model = tiny(jax.random.key(21), learn_obs_std=True, obs_std=0.3,
                     solve=FIXED)  # fmt: skip
        params, static = eqx.partition(model, eqx.is_inexact_array)
        flat, unravel = ravel_pytree(params)

        def loss(p, key):
            m = eqx.combine(unravel(p), static)
            keys = jax.random.split(key, ts.shape[0])
            return jnp.mean(
                jax.vmap(lambda t, x, k, r: m.negative_elbo(t, x, k, key=r))(ts, xs, mask, keys)
            )

        return jax.jit(jax.value_and_grad(loss)), flat


@pytest.mark.heavy
def test_negative_elbo_gradient_matches_finite_differences(oscillator_problem):
    f, flat = oscillator_problem
    with jax.enable_x64(True):
        key, eps = jax.random.key(22), 1e-6
        grad = f(flat, key)[1]
        for k in (1, 2, 3):
            v = jax.random.normal(jax.random.key(k), flat.shape, flat.dtype)
            fd = (f(flat + eps * v, key)[0] - f(flat - eps * v, key)[0]) / (2 * eps)
            np.testing.assert_allclose(grad @ v, fd, rtol=1e-6)


@pytest.mark.heavy
def test_a_few_adam_steps_on_damped_oscillators_lower_the_negative_elbo(oscillator_problem):
    f, flat = oscillator_problem
    with jax.enable_x64(True):
        optimiser = optax.adam(3e-2)
        state = optimiser.init(flat)
        key = jax.random.key(23)  # one posterior draw per sequence, the same at every step
        values = []
        for _ in range(30):
            value, grad = f(flat, key)
            updates, state = optimiser.update(grad, state, flat)
            flat = optax.apply_updates(flat, updates)
            values.append(float(value))
        assert np.all(np.isfinite(values))
        assert values[-1] < 0.8 * values[0], values


def test_save_load_roundtrip_and_bad_input(tmp_path):
    model = tiny(jax.random.key(12), decoder="mlp", learn_obs_std=True, obs_std=0.2, solve=FIXED)
    loaded = AbstractModel.load(model.save(tmp_path / "latent.eqx"))
    assert type(loaded) is LatentODE
    assert loaded.hyperparameters() == model.hyperparameters()
    ts = np.array(_TS)
    xs, mask = data(13)
    run = eqx.filter_jit(lambda m: m.negative_elbo(ts, xs, mask, key=jax.random.key(0)))
    assert float(run(loaded)) == float(run(model))

    with pytest.raises(ValueError, match="decoder"):
        tiny(jax.random.key(0), decoder="cnn")
    with pytest.raises(ValueError, match="obs_std"):
        tiny(jax.random.key(0), obs_std=-1.0)
    with pytest.raises(ValueError, match="'xs' must have shape"):
        model.negative_elbo(ts, xs[:, :1], key=jax.random.key(0))
    with pytest.raises(ValueError, match="'t0'"):
        model.encode(ts, xs, t0=1.0)
    with pytest.raises(ValueError, match="'ts_out'"):
        model.reconstruct(ts, xs, ts_out=np.array([0.0, 1.0]), key=None)
    with pytest.raises(ValueError, match="'z0'"):
        model.latent_path(jnp.zeros(3), ts)
    with pytest.raises(ValueError, match="samples"):
        model.negative_elbo(ts, xs, samples=0, key=jax.random.key(0))


def test_irregular_oscillators_are_ragged_padded_damped_oscillations():
    gamma = 0.2
    kw = dict(max_points=12, min_points=4, t1=8.0, frequency=(1.0, 1.0), damping=(gamma, gamma),
              amplitude=(1.0, 1.0))  # fmt: skip
    ts, xs, mask = irregular_oscillators(6, key=jax.random.key(3), **kw)
    assert ts.shape == (6, 12) and xs.shape == mask.shape == (6, 12, 2)
    ts, xs, mask = np.asarray(ts), np.asarray(xs), np.asarray(mask)
    counts = mask[:, :, 0].sum(1)
    assert counts.min() >= 4 and len(set(counts.tolist())) > 1  # ragged
    for b, k in enumerate(counts):
        assert mask[b, :k].all() and not mask[b, k:].any()  # padding at the end
        np.testing.assert_array_equal(ts[b, k:], ts[b, k - 1])  # padded times repeat
    assert np.all(np.diff(ts, axis=1) >= 0) and np.all((ts >= 0) & (ts <= 8.0))
    np.testing.assert_array_equal(xs[~mask], 0.0)
    # with omega = 1, a = 1: q = e^{-gamma t} cos(t + phi) and q' + gamma q = -e^{-gamma t}
    # sin(t + phi), so q^2 + (q' + gamma q)^2 = e^{-2 gamma t}
    q, dq = xs[..., 0], xs[..., 1]
    real = mask[..., 0]
    np.testing.assert_allclose(
        (q**2 + (dq + gamma * q) ** 2)[real], np.exp(-2 * gamma * ts)[real], rtol=1e-5
    )
    # partial observations: missing entries are masked out of real steps only
    _, xs2, mask2 = irregular_oscillators(6, key=jax.random.key(3), missing=0.3, **kw)
    mask2 = np.asarray(mask2)
    assert not np.any(mask2 & ~mask) and 0.1 < 1 - mask2[mask].mean() < 0.5
    np.testing.assert_array_equal(np.asarray(xs2)[mask2], xs[mask2])
    with pytest.raises(ValueError, match="min_points"):
        irregular_oscillators(2, key=jax.random.key(0), max_points=3, min_points=4)
    with pytest.raises(ValueError, match="missing"):
        irregular_oscillators(2, key=jax.random.key(0), missing=1.0)
