"""The latent SDE: the path KL, the initial KL, posterior = prior, gradients, training,
save/load and bad input."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from diffdyn.common import AbstractModel
from diffdyn.common.neural_de import LatentSDE, SDESolveConfig

# binary-exact times and step: the fixed-step grid hits every observation time exactly
TS = np.array([0.0, 0.25, 0.5, 1.25, 1.5, 2.0])
SOLVE = SDESolveConfig(dt0=0.0625, max_steps=64)


def tiny(key, **kw):
    settings = dict(context_dim=2, hidden_dim=4, width=8, solve=SOLVE)
    return LatentSDE(2, 2, **{**settings, **kw}, key=key)


def set_last_layer(mlp_path, weight, bias):
    return lambda m: eqx.tree_at(
        lambda m: (mlp_path(m).layers[-1].weight, mlp_path(m).layers[-1].bias),
        m,
        (weight, bias),
    )


@pytest.mark.heavy  # over 15 s on 2 cores
def test_path_kl_of_a_constant_drift_shift_is_half_squared_shift_over_sigma_times_duration():
    # h = 0, f = c, sigma constant: u = c / sigma, so KL(t) = |c / sigma|^2 (t - t0) / 2 on
    # every Brownian path, and the posterior path is the prior path plus c (t - t0)
    with jax.enable_x64(True):
        model = tiny(jax.random.key(0), diffusion="constant")
        c, sigma = jnp.array([0.8, -1.5]), jnp.array([0.3, 0.7])
        zero_w = jnp.zeros((2, model.width))
        model = set_last_layer(lambda m: m.prior_drift, zero_w, jnp.zeros(2))(model)
        model = set_last_layer(lambda m: m.posterior_drift, zero_w, c)(model)
        model = eqx.tree_at(lambda m: m.log_sigma, model, jnp.log(sigma))
        rate = 0.5 * float(jnp.sum((c / sigma) ** 2))
        z0, context = jnp.array([0.2, -0.4]), jnp.ones((len(TS), 2))
        keys = jax.random.split(jax.random.key(1), 3)

        @eqx.filter_jit
        def paths(model):
            post = jax.vmap(lambda k: model.posterior_path(TS, z0, context, key=k))(keys)
            prior = jax.vmap(lambda k: model.prior_path(TS, z0, key=k))(keys)
            return post, prior

        (zs, kl), prior = paths(model)
        np.testing.assert_allclose(kl, np.broadcast_to(rate * (TS - TS[0]), kl.shape), rtol=1e-12)
        np.testing.assert_allclose(zs, prior + c * (TS - TS[0])[:, None], atol=1e-12)
        assert float(jnp.max(jnp.abs(zs[0] - zs[1]))) > 1e-2  # the key draws the path

        # in the ELBO: the last two steps are padding (no observation, even NaN values): the
        # posterior drift is the prior drift after the last observed time t = 1.25
        xs = jnp.asarray(np.stack([np.sin(TS), np.cos(TS)], axis=1))
        mask = jnp.ones_like(xs).at[4:].set(0).at[1, 0].set(0)
        terms = eqx.filter_jit(
            lambda m, x: m.elbo_terms(TS, x, mask, samples=2, key=jax.random.key(2))
        )
        padded = terms(model, xs.at[4:].set(jnp.nan).at[1, 0].set(jnp.nan))
        np.testing.assert_allclose(padded["kl_path"], rate * 1.25, rtol=1e-12)
        other = terms(model, xs.at[4:].set(123.0).at[1, 0].set(-7.0))
        assert float(padded["nll"]) == float(other["nll"])  # masked values are ignored
        np.testing.assert_allclose(
            padded["loss"], padded["nll"] + padded["kl0"] + padded["kl_path"], rtol=1e-14
        )


def test_initial_kl_matches_the_divergence_of_two_gaussians_by_quadrature():
    with jax.enable_x64(True):
        model = tiny(jax.random.key(0), learn_prior=True)
        prior_mean, prior_logstd = jnp.array([0.3, -1.0]), jnp.array([0.2, -0.5])
        model = eqx.tree_at(
            lambda m: (m.prior_mean, m.prior_logstd), model, (prior_mean, prior_logstd)
        )
        mean, logvar = jnp.array([-0.4, 0.7]), jnp.array([-1.1, 0.4])

        def log_normal(z, mu, var):
            return -0.5 * (z - mu) ** 2 / var - 0.5 * np.log(2 * np.pi * var)

        expected = 0.0
        for i in range(2):
            s = float(np.exp(0.5 * logvar[i]))
            z = np.linspace(mean[i] - 14 * s, mean[i] + 14 * s, 200001)
            lq = log_normal(z, float(mean[i]), s**2)
            lp = log_normal(z, float(prior_mean[i]), float(np.exp(2 * prior_logstd[i])))
            expected += np.trapezoid(np.exp(lq) * (lq - lp), z)
        np.testing.assert_allclose(model.kl0(mean, logvar), expected, rtol=1e-9)
        # q = p gives zero; the default prior is N(0, I)
        assert float(model.kl0(prior_mean, 2 * prior_logstd)) == pytest.approx(0.0, abs=1e-15)
        standard = tiny(jax.random.key(0))
        closed = 0.5 * jnp.sum(jnp.exp(logvar) + mean**2 - 1 - logvar)
        np.testing.assert_allclose(standard.kl0(mean, logvar), closed, rtol=1e-14)


def test_posterior_with_the_prior_drift_is_the_prior_path_with_zero_kl():
    with jax.enable_x64(True):
        model = tiny(jax.random.key(3), sigma=1e-3, depth=2)
        # f(z, c) = h(z): the first layer ignores the context, the others are the prior's
        prior, post = model.prior_drift, model.posterior_drift
        first = jnp.concatenate([prior.layers[0].weight, jnp.zeros((model.width, 2))], axis=1)
        layers = [eqx.tree_at(lambda lin: lin.weight, prior.layers[0], first), *prior.layers[1:]]
        model = eqx.tree_at(lambda m: m.posterior_drift.layers, model, tuple(layers))
        assert post.layers[0].weight.shape == first.shape
        z0 = jnp.array([0.5, -0.3])
        context = jax.random.normal(jax.random.key(4), (len(TS), 2))

        @eqx.filter_jit
        def paths(model, key):
            return model.posterior_path(TS, z0, context, key=key), model.prior_path(TS, z0, key=key)

        for k in (5, 6):
            (zs, kl), prior_zs = paths(model, jax.random.key(k))
            np.testing.assert_allclose(zs, prior_zs, rtol=0, atol=1e-13)
            # u = (f - h) / sigma is zero up to the rounding of two dot products (~1e-16 / 1e-3)
            assert float(jnp.max(jnp.abs(kl))) < 1e-24
        # small sigma: the sample path is close to the noise-free flow of h (Euler, same grid)
        sigma = model.sigma_of(z0)
        assert float(jnp.max(sigma)) < 1e-2
        quiet = eqx.tree_at(
            lambda m: m.diffusion_net.layers[-1].bias, model, replace_fn=lambda b: b - 40
        )
        (zs, _), _ = paths(model, jax.random.key(5))
        (zs_quiet, _), _ = paths(quiet, jax.random.key(5))
        np.testing.assert_allclose(zs, zs_quiet, atol=1e-2)
        assert float(jnp.max(jnp.abs(zs - zs_quiet))) > 0  # the small noise is there


@pytest.mark.heavy
def test_elbo_gradient_with_a_fixed_key_matches_central_finite_differences():
    with jax.enable_x64(True):
        model = LatentSDE(
            2,
            2,
            context_dim=2,
            hidden_dim=3,
            width=4,
            decoder="mlp",
            learn_obs_std=True,
            learn_prior=True,
            obs_std=0.5,
            solve=SOLVE,
            key=jax.random.key(7),
        )
        xs = np.stack([np.sin(TS), 0.5 * np.cos(2 * TS)], axis=1)
        mask = jnp.ones_like(xs).at[2, 1].set(0).at[5].set(0)
        params, static = eqx.partition(model, model.trainable_filter())
        flat, unravel = ravel_pytree(params)

        def loss(theta):
            m = eqx.combine(unravel(theta), static)
            return m.negative_elbo(TS, xs, mask, key=jax.random.key(8))

        value_and_grad = jax.jit(jax.value_and_grad(loss))  # one compilation for all calls
        value, grad = value_and_grad(flat)
        assert np.isfinite(value) and np.all(np.isfinite(grad))
        eps = 1e-5
        for k in range(3):
            v = jax.random.normal(jax.random.key(10 + k), flat.shape)
            plus, _ = value_and_grad(flat + eps * v)
            minus, _ = value_and_grad(flat - eps * v)
            np.testing.assert_allclose(jnp.dot(grad, v), (plus - minus) / (2 * eps), rtol=1e-6)


def make_sinusoids(key, batch=8, length=10):
    """Noisy sinusoids of random phase and frequency at random increasing times, with 20% of
    the entries masked out."""
    k_t, k_phase, k_freq, k_noise, k_mask = jax.random.split(key, 5)
    gaps = jax.random.uniform(k_t, (batch, length), minval=0.05, maxval=0.35)
    ts = jnp.cumsum(gaps, axis=1) - gaps[:, :1]
    phase = jax.random.uniform(k_phase, (batch, 1), maxval=2 * math.pi)
    freq = jax.random.uniform(k_freq, (batch, 1), minval=1.5, maxval=2.5)
    clean = jnp.stack([jnp.sin(freq * ts + phase), jnp.cos(freq * ts + phase)], axis=-1)
    xs = clean + 0.05 * jax.random.normal(k_noise, clean.shape)
    mask = jax.random.bernoulli(k_mask, 0.8, xs.shape)
    return ts, xs, mask


@pytest.mark.heavy
def test_a_few_adam_steps_reduce_the_negative_elbo():
    ts, xs, mask = make_sinusoids(jax.random.key(0))
    model = tiny(
        jax.random.key(1),
        diffusion="constant",
        obs_std=0.3,
        solve=SDESolveConfig(dt0=0.1, max_steps=64),
    )
    params, static = eqx.partition(model, model.trainable_filter())
    eval_keys = jax.random.split(jax.random.key(2), 3)
    optimiser = optax.adam(2e-2)

    @jax.jit
    def step(params, state, key):
        def batch_loss(params):
            m = eqx.combine(params, static)
            keys = jax.random.split(key, ts.shape[0])
            return jnp.mean(
                jax.vmap(lambda *a: m.negative_elbo(*a[:3], key=a[3]))(ts, xs, mask, keys)
            )

        loss, grads = jax.value_and_grad(batch_loss)(params)
        updates, new_state = optimiser.update(grads, state, params)
        return optax.apply_updates(params, updates), new_state, loss

    state = optimiser.init(params)
    evaluate = lambda p: np.mean([float(step(p, state, k)[2]) for k in eval_keys])  # noqa: E731
    before = evaluate(params)
    for k in jax.random.split(jax.random.key(3), 40):
        params, state, _ = step(params, state, k)
    after = evaluate(params)
    assert np.isfinite(after) and after < 0.6 * before, (before, after)


@pytest.mark.heavy
def test_sample_prior_draws_the_initial_state_from_the_prior():
    model = tiny(jax.random.key(0), learn_prior=True, diffusion="constant")
    model = eqx.tree_at(
        lambda m: (m.prior_mean, m.prior_logstd),
        model,
        (jnp.array([2.0, -1.0]), jnp.log(jnp.array([0.5, 0.2]))),
    )
    draw = eqx.filter_jit(lambda m, keys: jax.vmap(lambda k: m.sample_prior(TS, key=k))(keys))
    zs, means = draw(model, jax.random.split(jax.random.key(1), 400))
    assert zs.shape == (400, len(TS), 2) and means.shape == (400, len(TS), 2)
    np.testing.assert_allclose(means[3], model.decode(zs[3]), rtol=1e-6)
    n = zs.shape[0]
    np.testing.assert_allclose(jnp.mean(zs[:, 0], 0), [2.0, -1.0], atol=4 * 0.5 / math.sqrt(n))
    np.testing.assert_allclose(jnp.std(zs[:, 0], 0), [0.5, 0.2], rtol=0.15)
    zs_again, _ = draw(model, jax.random.split(jax.random.key(1), 400))
    assert np.array_equal(zs, zs_again)


def test_save_load_roundtrip_and_bad_input(tmp_path):
    model = tiny(
        jax.random.key(0),
        diffusion="constant",
        decoder="mlp",
        learn_obs_std=True,
        learn_prior=True,
        sde_type="stratonovich",
    )
    assert model.solve.solver == "heun"  # the default solver of the calculus, recorded
    path = model.save(tmp_path / "latent.eqx")
    loaded = AbstractModel.load(path)
    assert type(loaded) is LatentSDE
    assert loaded.hyperparameters() == model.hyperparameters()
    for a, b in zip(
        jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(loaded), strict=True
    ):
        assert np.array_equal(a, b)
    xs = jnp.asarray(np.stack([np.sin(TS), np.cos(TS)], axis=1))
    loss = eqx.filter_jit(lambda m: m.negative_elbo(TS, xs, key=jax.random.key(1)))
    assert float(loss(model)) == float(loss(loaded))

    mask = jnp.ones_like(xs)
    with pytest.raises(ValueError, match="'mask' must have the shape"):
        model.negative_elbo(TS, xs, mask[:, :1], key=jax.random.key(1))
    with pytest.raises(ValueError, match="ts must be strictly increasing"):
        model.negative_elbo(TS[::-1], xs, mask, key=jax.random.key(1))
    with pytest.raises(ValueError, match="ts must be strictly increasing"):
        model.negative_elbo(np.array([0.0, 0.5, 0.5, 1.0, 1.5, 2.0]), xs, key=jax.random.key(1))
    with pytest.raises(ValueError, match="'xs' must have shape"):
        model.negative_elbo(TS, xs[:, :1], key=jax.random.key(1))
    with pytest.raises(ValueError, match="NaN or inf at 1 observed"):
        model.negative_elbo(TS, xs.at[2, 1].set(jnp.nan), key=jax.random.key(1))
    with pytest.raises(ValueError, match="only 0/1"):
        model.negative_elbo(TS, xs, 0.5 * mask, key=jax.random.key(1))
    with pytest.raises(ValueError, match="samples"):
        model.negative_elbo(TS, xs, samples=0, key=jax.random.key(1))
    with pytest.raises(ValueError, match="'z0' must have shape"):
        model.prior_path(TS, jnp.zeros(3), key=jax.random.key(1))
    with pytest.raises(ValueError, match="'context' must have shape"):
        model.posterior_path(TS, jnp.zeros(2), jnp.zeros((3, 2)), key=jax.random.key(1))
    with pytest.raises(ValueError, match="'diffusion'"):
        tiny(jax.random.key(0), diffusion="full")
    with pytest.raises(ValueError, match="'sigma'"):
        tiny(jax.random.key(0), sigma=0.0)
    with pytest.raises(ValueError, match="stratonovich"):
        tiny(jax.random.key(0), solve=SDESolveConfig(solver="heun"))
    with pytest.raises(TypeError, match="SDESolveConfig"):
        LatentSDE(2, 2, solve=None, key=jax.random.key(0))
