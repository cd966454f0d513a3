"""The transition to chaos (small N) and training a network towards a target spectrum: the
task's loss against closed forms, the edge of chaos, the W >= 0 projection, frozen leaves,
selection of the best model by validation, the workflow and its configs."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffdyn.common import OptimConfig, SolveConfig, TrainConfig, Trainer
from diffdyn.rnn import (
    ChaosSweepConfig,
    NetworkConfig,
    RateRNN,
    SpectrumConfig,
    SpectrumParams,
    SpectrumTask,
    SpectrumTrainConfig,
    chaos_summary,
    chaos_sweep,
    fit_spectrum,
    lyapunov_spectrum,
    sample_network,
)


def test_chaos_sweep_small_network():
    with jax.enable_x64(True):
        n, key = 80, jax.random.key(0)
        out = chaos_sweep(
            [0.5, 3.0],
            n,
            key=key,
            n_samples=1,
            spectrum=SpectrumConfig(
                n_exponents=2, t_sim=100.0, t_transient=60.0, t_ons_transient=40.0
            ),
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
        summary = chaos_summary(out)
        assert summary["g_first_positive"] == 3.0
        assert summary["lambda_max_at_gmin"] == out["lambda_max"][0, 0]


def test_chaos_summary_and_sweep_config():
    result = {
        "g": np.array([0.5, 1.0, 1.5]),
        "lambda_max": np.array([[-1, -2], [-0.1, 0.2], [1, 2]]),
    }
    # medians -1.5, 0.05, 1.5: the first positive median is at g = 1
    assert chaos_summary(result) == {
        "g_first_positive": 1.0,
        "lambda_max_at_gmin": -1.5,
        "lambda_max_at_gmax": 1.5,
    }
    none = chaos_summary({"g": np.array([0.5]), "lambda_max": np.array([[-1.0]])})
    assert np.isnan(none["g_first_positive"])
    np.testing.assert_allclose(ChaosSweepConfig(n_g=11).gains(), np.arange(0.5, 3.01, 0.25))
    with pytest.raises(ValueError, match="gmin"):
        ChaosSweepConfig(gmin=2.0, gmax=1.0)
    with pytest.raises(ValueError, match="adjoint"):  # accepted and ignored would be a trap
        ChaosSweepConfig(solve=SolveConfig("euler", dt0=0.1, adaptive=False, adjoint="direct"))


def _linear(n=5, seed=0):
    j = np.asarray(RateRNN(n, g=1.4, key=jax.random.key(seed)).coupling, dtype=np.float64)
    j = (j + j.T) / 2  # a symmetric coupling: an aligned basis converges at once
    return RateRNN.from_coupling(j, activation="identity"), j


@pytest.mark.parametrize("loss", ["mse", "l2"])
def test_task_loss_is_the_distance_of_the_exact_linear_spectrum(loss):
    """A linear network's exponents are log|eig((1 - dt) I + dt J)| / dt, so the loss against
    a target vector has a closed form."""
    with jax.enable_x64(True):
        model, j = _linear()
        dt = model.dt
        exact = np.sort(np.log(np.abs(np.linalg.eigvals((1 - dt) * np.eye(5) + dt * j))))[::-1]
        exact = exact[:3] / dt
        target = np.array([0.1, -0.2, -0.5])
        spectrum = SpectrumConfig(n_exponents=3, t_sim=200.0, t_transient=0.0, t_ons_transient=100)
        task = SpectrumTask(target, spectrum, trainable="weights", loss=loss)
        params = task.init(model, jnp.full(5, 0.1))
        value, aux = eqx.filter_jit(task.loss)(params, jnp.full(5, 0.1), jax.random.key(1))
        diff = exact - target
        expected = np.mean(diff**2) if loss == "mse" else np.sqrt(np.sum(diff**2))
        np.testing.assert_allclose(value, expected, rtol=1e-8)
        np.testing.assert_allclose(aux["lambda_max"], exact[0], atol=1e-9)
        np.testing.assert_allclose(aux["lambda_mean"], exact.mean(), atol=1e-9)


def test_the_task_trains_only_the_chosen_leaves():
    model = RateRNN(4, activation="tanh-positive", n_types=2, key=jax.random.key(0))
    task = SpectrumTask(0.0, SpectrumConfig(n_exponents=1), trainable="gains")
    params = task.init(model, jnp.zeros(4))
    assert isinstance(params, SpectrumParams)
    assert params.trained.weight is None and params.trained.shift is None
    np.testing.assert_array_equal(params.trained.gain, model.gain)
    assert task.non_negative(params) is None  # nothing to keep >= 0 without weights
    rebuilt = task.result(params)
    for name in ("weight", "sign", "gain", "shift", "bias", "cell_type"):
        np.testing.assert_array_equal(getattr(rebuilt, name), getattr(model, name))
    # the trainer sees the gains alone: 2 trainable numbers
    trainable, _ = Trainer(task, OptimConfig()).split(params)
    assert sum(x.size for x in jax.tree_util.tree_leaves(trainable)) == 2


def test_weight_projection_keeps_magnitudes_non_negative_and_signs_fixed():
    """OptimConfig.build with the task's non_negative leaves: an SGD step that pushes every
    weight below 0 leaves them exactly at 0, and the gains (frozen here) untouched."""
    model = RateRNN(4, activation="tanh-stretched", key=jax.random.key(0))
    task = SpectrumTask(0.0, SpectrumConfig(n_exponents=1), trainable="weights")
    params = task.init(model, jnp.zeros(4))
    trainer = Trainer(task, OptimConfig(optimiser="sgd", learning_rate=10.0))
    trainable, static = trainer.split(params)
    opt = OptimConfig(optimiser="sgd", learning_rate=10.0).build(
        1, non_negative_leaves=task.non_negative(params)
    )
    grads = jax.tree_util.tree_map(jnp.ones_like, trainable)  # pushes every weight below 0
    updates, _ = opt.update(grads, opt.init(trainable), trainable)
    new = task.result(eqx.combine(optax.apply_updates(trainable, updates), static))
    assert float(jnp.min(new.weight)) == 0.0
    np.testing.assert_array_equal(new.gain, model.gain)
    np.testing.assert_array_equal(new.sign, model.sign)


def test_weight_training_keeps_w_non_negative_and_signs_fixed():
    with jax.enable_x64(True):
        model = RateRNN(12, g=3.0, key=jax.random.key(3))
        task = SpectrumTask(
            -1.0,  # far below: the weights shrink, many to exactly 0
            SpectrumConfig(n_exponents=2, t_sim=5.0, t_transient=2.0, t_ons_transient=1.0),
            trainable="weights",
        )
        result = Trainer(
            task,
            OptimConfig(optimiser="sgd", learning_rate=2.0),
            config=TrainConfig(steps=6, log_every=3, progress=False),
        ).fit(model, jax.random.normal(jax.random.key(4), (12,)), jax.random.key(5))
        w = np.asarray(result.model.weight)
        assert w.min() == 0.0 and np.any(w != np.asarray(model.weight))
        np.testing.assert_array_equal(result.model.sign, model.sign)
        np.testing.assert_array_equal(result.model.bias, model.bias)
        np.testing.assert_array_equal(result.model.gain, model.gain)


def test_training_moves_lambda_max_to_zero():
    """The README's claim: training only gains and shifts brings a chaotic network
    (N = 50, g = 4, lambda_max about +0.16) to within 0.05 of the edge of chaos."""
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
        task = SpectrumTask(
            0.0,
            SpectrumConfig(n_exponents=1, t_sim=50.0, t_transient=20.0, t_ons_transient=5.0),
            trainable="gains-shifts",
        )
        result = Trainer(
            task,
            OptimConfig(learning_rate=0.1),
            config=TrainConfig(steps=40, log_every=10, progress=False),
        ).fit(model, h0, jax.random.key(2))
        after = float(evaluate(result.model))
        assert abs(after) < 0.05, (before, after)
        np.testing.assert_array_equal(result.model.weight, model.weight)  # only NRM trained
        assert result.selected_by == "loss"  # no held-out state: the training loss selects


def test_the_best_model_is_chosen_by_validation():
    with jax.enable_x64(True):
        n = 20
        model = RateRNN(n, g=3.0, activation="tanh-stretched", key=jax.random.key(1))
        task = SpectrumTask(
            0.0,
            SpectrumConfig(n_exponents=1, t_sim=10.0, t_transient=5.0, t_ons_transient=2.0),
            trainable="gains-shifts",
            held_out=jax.random.normal(jax.random.key(7), (n,)),
            validation_t_sim=40.0,
            key=jax.random.key(8),
        )
        result = Trainer(
            task,
            OptimConfig(learning_rate=0.2),
            config=TrainConfig(steps=12, log_every=3, progress=False),
        ).fit(model, jax.random.normal(jax.random.key(2), (n,)), jax.random.key(3))
        history = result.validation
        assert result.selected_by == "validation"
        np.testing.assert_array_equal(history["step"], [3, 6, 9, 12])
        best = int(np.argmin(history["loss"]))
        assert result.best_step == history["step"][best]
        # the validation is deterministic: the best model scores its recorded loss again
        again = task.evaluate(result.best_model, jax.random.key(0))
        np.testing.assert_allclose(float(again["loss"]), history["loss"][best], rtol=1e-12)
        np.testing.assert_allclose(result.best_loss, history["loss"][best], rtol=1e-6)


def test_fit_spectrum_runs_the_workflow_and_reports_before_and_after(tmp_path):
    with jax.enable_x64(True):
        cfg = SpectrumTrainConfig(
            network=dataclasses.replace(SpectrumTrainConfig().network, n=16),
            spectrum=SpectrumConfig(n_exponents=2, t_sim=5.0, t_transient=2.0, t_ons_transient=1.0),
            target_vector=(0.0, -0.1),
            validation_t_sim=20.0,
            train=TrainConfig(steps=4, log_every=2, progress=False),
        )
        fit = fit_spectrum(cfg, key=jax.random.key(0), out=tmp_path)
        metrics = fit.metrics()
        np.testing.assert_array_equal(fit.target, [0.0, -0.1])
        assert fit.before.shape == fit.after.shape == (2,)
        assert metrics["lambda_max_before"] == fit.before.max()
        diff = fit.after - fit.target
        np.testing.assert_allclose(metrics["validation_loss_after"], np.mean(diff**2))
        assert metrics["selected_by"] == "validation" and metrics["steps"] == 4
        # the best model is the one saved, and its validation spectrum is "after"
        best = RateRNN.load(tmp_path / "best.eqx")
        np.testing.assert_allclose(fit.task.validation_spectrum(best), fit.after, rtol=1e-12)


def test_bad_tasks_and_configs_are_refused():
    model = RateRNN(4, key=jax.random.key(0))
    spectrum = SpectrumConfig(n_exponents=2)
    with pytest.raises(ValueError, match="'trainable'"):
        SpectrumTask(0.0, spectrum, trainable="synapses")
    with pytest.raises(ValueError, match="'target'"):
        SpectrumTask(jnp.zeros(3), spectrum)
    with pytest.raises(ValueError, match="n_exponents"):
        SpectrumTask(0.0, SpectrumConfig())
    with pytest.raises(ValueError, match="'key'"):
        SpectrumTask(0.0, spectrum, held_out=jnp.zeros(4))
    with pytest.raises(ValueError, match="no gain"):  # plain tanh ignores gains and shifts
        SpectrumTask(0.0, spectrum).init(model, jnp.zeros(4))
    with pytest.raises(ValueError, match="'h0'"):
        SpectrumTask(0.0, spectrum, trainable="weights").init(model, jnp.zeros(3))
    with pytest.raises(ValueError, match="target"):
        SpectrumTrainConfig(target=0.5, target_vector=(0.0,) * 10)
    with pytest.raises(ValueError, match="target_vector"):
        SpectrumTrainConfig(target_vector=(0.0, 1.0))
    with pytest.raises(ValueError, match="'n'"):  # a connectome has its own size
        NetworkConfig(n=10, connectome="roi")
    with pytest.raises(ValueError, match="'balance'"):  # only a connectome is balanced
        NetworkConfig(balance=False)
    # the training network's defaults differ, and are not taken as given options
    assert SpectrumTrainConfig().network.n == 100
    dataclasses.replace(SpectrumTrainConfig().network, connectome="roi")
