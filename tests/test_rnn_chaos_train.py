"""The transition to chaos (small N) and training a chaotic network to the edge of chaos."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffdyn.common import TrainConfig
from diffdyn.rnn import (
    RateRNN,
    SpectrumObjective,
    chaos_sweep,
    fit_spectrum,
    lyapunov_spectrum,
    sample_network,
    spectrum_optimiser,
    trainable_spec,
)


def test_chaos_sweep_small_network():
    with jax.enable_x64(True):
        n, key = 80, jax.random.key(0)
        out = chaos_sweep(
            [0.5, 3.0],
            n,
            key=key,
            n_samples=1,
            n_exponents=2,
            t_sim=100.0,
            t_transient=60.0,
            t_ons_transient=40.0,
        )
        # g = 0.5: the origin is a stable fixed point; lambda_max is the largest log-modulus
        # of the step map's eigenvalues there, (1 - dt) + dt * g * eig(J1)
        model, _, _ = sample_network(key, 0, n)
        mu = np.linalg.eigvals(np.asarray(model.coupling))
        exact = np.max(np.log(np.abs(1 - model.dt + model.dt * 0.5 * mu))) / model.dt
        np.testing.assert_allclose(out["lambda_max"][0, 0], exact, atol=5e-3)
        assert out["lambda_max"][1, 0] > 0.05  # chaos well above g = 1
        assert out["dimension"][0, 0] == 0.0 and out["dimension"][1, 0] >= 1.0
        assert out["entropy"][1, 0] > 0


def test_training_moves_lambda_max_to_zero():
    with jax.enable_x64(True):
        n = 50
        model = RateRNN(n, g=4.0, activation="tanh-stretched", key=jax.random.key(1))
        h0 = jax.random.normal(jax.random.key(1), (n,))
        evaluate = eqx.filter_jit(
            lambda m: lyapunov_spectrum(
                m, h0, key=jax.random.key(5), n_exponents=1, t_sim=500.0, checkpoint=False
            ).exponents[0]
        )
        before = float(evaluate(model))
        assert before > 0.1  # chaotic to start with
        objective = SpectrumObjective(0.0, 1, t_sim=50.0, t_transient=20.0, t_ons_transient=5.0)
        result = fit_spectrum(
            model,
            h0,
            objective,
            key=jax.random.key(2),
            train="gains-shifts",
            optimiser=spectrum_optimiser("adam", 0.1),
            config=TrainConfig(steps=40, log_every=10, progress=False),
        )
        after = float(evaluate(result.model))
        assert abs(after) < 0.05, (before, after)
        np.testing.assert_array_equal(result.model.weight, model.weight)  # only NRM trained


def test_weight_projection_keeps_magnitudes_non_negative():
    model = RateRNN(4, key=jax.random.key(0))
    spec = trainable_spec(model, "weights")
    params, _ = eqx.partition(model, spec)
    opt = spectrum_optimiser("sgd", 10.0)
    state = opt.init(params)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)  # pushes every weight below 0
    updates, _ = opt.update(grads, state, params)
    new = optax.apply_updates(params, updates)
    assert float(jnp.min(new.weight)) == 0.0
    assert new.gain is None and new.shift is None
    with pytest.raises(ValueError, match="'train'"):
        trainable_spec(model, "synapses")
    with pytest.raises(ValueError, match="'target'"):
        SpectrumObjective(jnp.zeros(3), 2)
    with pytest.raises(ValueError, match="no gain"):  # plain tanh ignores gains and shifts
        fit_spectrum(model, jnp.zeros(4), SpectrumObjective(0.0, 1), key=jax.random.key(0))
