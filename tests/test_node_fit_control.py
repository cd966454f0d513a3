"""Integral losses and optimal control in ``diffdyn node fit``: a neural ODE tracking sin t
(``--model integral-node --dataset sinusoid``) and a neural controller of the double
integrator (``--model controller --dataset double-integrator``) against the closed-form
linear-quadratic optimum; the options they refuse."""

import dataclasses
import json
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import OptimConfig, SolveConfig, TrainConfig, Trainer, cli
from diffdyn.common.neural_de import (
    CONTROL_SOLVE,
    TRACK_SOLVE,
    LinearQuadraticTask,
    NeuralController,
    NodeFitConfig,
    TrackingODE,
    TrackingTask,
    double_integrator,
    fit_node,
    linear_quadratic_optimum,
    node_fit_figures,
    node_fit_preset,
    sinusoid,
)

TARGET = jnp.array([1.0, 0.0])


def _zero_last_layer(model):
    last = model.mlp.layers[-1]
    return eqx.tree_at(
        lambda m: (m.mlp.layers[-1].weight, m.mlp.layers[-1].bias),
        model,
        (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)),
    )


# ------------------------------------------------------------------ the closed form


@pytest.mark.parametrize("t1", [1.0, 2.0])
def test_gramian_of_the_double_integrator_is_the_closed_form(t1):
    a, b = double_integrator()
    optimum = linear_quadratic_optimum(a, b, jnp.zeros(2), TARGET, t1=t1, weight=100.0)
    gramian = np.array([[t1**3 / 3, t1**2 / 2], [t1**2 / 2, t1]])
    np.testing.assert_allclose(optimum.gramian, gramian, rtol=1e-5, atol=1e-6)


def test_penalised_optimum_minimises_the_cost_and_tends_to_6_minus_12t():
    a, b = double_integrator()
    weight = 100.0
    optimum = linear_quadratic_optimum(a, b, jnp.zeros(2), TARGET, t1=1.0, weight=weight)
    inverse = np.array([[12.0, -6.0], [-6.0, 4.0]])  # the Gramian's inverse at T = 1

    def cost(z):  # least effort to end at z, plus the penalty
        return z @ inverse @ z + weight * np.sum((z - np.asarray(TARGET)) ** 2)

    z = np.asarray(optimum.final_state, np.float64)
    np.testing.assert_allclose(optimum.cost, cost(z), rtol=1e-5)
    np.testing.assert_allclose(optimum.effort, z @ inverse @ z, rtol=1e-5)
    rng = np.random.default_rng(0)
    for dz in rng.normal(size=(20, 2)) * 1e-2:  # any other end state costs more
        assert cost(z + dz) > cost(z)
    # a hard end constraint (w -> infinity): u* = 6 - 12 t with effort 12
    hard = linear_quadratic_optimum(a, b, jnp.zeros(2), TARGET, t1=1.0, weight=1e5)
    ts = np.linspace(0.0, 1.0, 11)
    controls = np.array([float(hard.control(t)[0]) for t in ts])
    np.testing.assert_allclose(controls, 6 - 12 * ts, atol=2e-3)
    np.testing.assert_allclose(hard.effort, 12.0, rtol=1e-3)


def test_the_solver_integrates_the_closed_form_control_to_the_closed_form_cost():
    a, b = double_integrator()
    task = LinearQuadraticTask(a, b, TARGET, t1=1.0, weight=100.0)
    optimum = task.optimum(jnp.zeros(2))
    open_loop = lambda t, z: optimum.control(t)  # noqa: E731
    costs = task.costs(open_loop, jnp.zeros(2))
    np.testing.assert_allclose(costs["cost"], optimum.cost, rtol=1e-4)
    np.testing.assert_allclose(costs["effort"], optimum.effort, rtol=1e-4)
    np.testing.assert_allclose(costs["final_state"], optimum.final_state, atol=1e-5)
    # u = 0 leaves the plant at rest: J = w |z*|^2 = 100
    np.testing.assert_allclose(task.costs(task.zero_control(), jnp.zeros(2))["cost"], 100.0)


def test_uncontrollable_plants_and_bad_shapes_are_refused():
    b = jnp.array([[0.0], [1.0]])
    with pytest.raises(ValueError, match="not controllable"):
        linear_quadratic_optimum(jnp.zeros((2, 2)), b, jnp.zeros(2), TARGET, t1=1.0, weight=1.0)
    a, b = double_integrator()
    with pytest.raises(ValueError, match="'weight' must be > 0"):
        LinearQuadraticTask(a, b, TARGET, t1=1.0, weight=0.0)
    with pytest.raises(ValueError, match="'target' must have shape"):
        LinearQuadraticTask(a, b, jnp.zeros(3), t1=1.0, weight=1.0)
    task = LinearQuadraticTask(a, b, TARGET, t1=1.0, weight=1.0)
    with pytest.raises(ValueError, match="maps states"):
        task.costs(NeuralController(3, 1, 4, 1, key=jax.random.key(0)), jnp.zeros(2))


# ------------------------------------------------------------------ the tracking integral


def test_the_solvers_integral_of_a_zero_field_is_the_integral_of_sin_squared():
    # y stays at 0, so L = int_0^{2 pi} sin^2 t dt = pi
    model = _zero_last_layer(TrackingODE(1, 8, 1, t1=2 * math.pi, key=jax.random.key(0)))
    task = TrackingTask(sinusoid)
    loss = eqx.filter_jit(task.loss)(model, jnp.zeros(1), None)
    np.testing.assert_allclose(loss, math.pi, rtol=1e-5)


def test_the_solvers_integral_equals_the_trapezoid_rule_on_the_solved_trajectory():
    model = TrackingODE(1, 16, 2, t1=2 * math.pi, key=jax.random.key(1))
    task = TrackingTask(sinusoid, points=2001)
    y0 = jnp.array([0.3])
    integral = eqx.filter_jit(lambda m: m.integral(y0, task.cost)[1])(model)
    trapezoid = eqx.filter_jit(task.trapezoid_loss)(model, y0)
    assert float(integral) > 0.1  # an untrained field: far from sin t
    np.testing.assert_allclose(integral, trapezoid, rtol=1e-4)


@pytest.mark.heavy
def test_training_on_the_integral_loss_tracks_the_sinusoid():
    solve = SolveConfig(solver="rk4", adaptive=False, dt0=2 * math.pi / 48, max_steps=64)
    model = TrackingODE(1, 16, 2, t1=2 * math.pi, solve=solve, key=jax.random.key(0))
    task = TrackingTask(sinusoid)
    config = TrainConfig(steps=150, log_every=50, progress=False)
    y0 = jnp.zeros(1)
    result = Trainer(task, OptimConfig(learning_rate=3e-2), config=config).fit(
        model, y0, jax.random.key(1)
    )
    loss = eqx.filter_jit(task.loss)
    start, trained = float(loss(model, y0, None)), float(loss(result.best_model, y0, None))
    assert trained < 0.1 * start
    trapezoid = float(eqx.filter_jit(task.trapezoid_loss)(result.best_model, y0))
    np.testing.assert_allclose(trained, trapezoid, rtol=1e-3)


@pytest.mark.heavy
def test_a_trained_controller_comes_within_10_percent_of_the_optimum():
    a, b = double_integrator()
    solve = dataclasses.replace(CONTROL_SOLVE, rtol=1e-4, atol=1e-6)
    task = LinearQuadraticTask(a, b, TARGET, t1=1.0, weight=100.0, solve=solve)
    controller = NeuralController(2, 1, 16, 2, key=jax.random.key(0))
    config = TrainConfig(steps=300, log_every=50, progress=False)
    result = Trainer(task, OptimConfig(learning_rate=1e-2), config=config).fit(
        controller, jnp.zeros(2), jax.random.key(1)
    )
    cost = float(task.costs(result.best_model, jnp.zeros(2))["cost"])
    optimal = float(task.optimum(jnp.zeros(2)).cost)
    assert optimal <= cost < 1.1 * optimal
    assert cost < 0.2 * 100.0  # u = 0 costs 100


# ------------------------------------------------------------------ configs and the CLI


def test_presets_choose_the_problem_and_quick_keeps_the_single_trajectory():
    tracking, control = node_fit_preset("integral-node"), node_fit_preset("controller")
    assert (tracking.dataset, tracking.t1, tracking.solve) == ("sinusoid", 2 * math.pi, TRACK_SOLVE)
    assert (control.dataset, control.t1, control.solve) == ("double-integrator", 1.0, CONTROL_SOLVE)
    cli.load_plugins(("node",))
    quick = cli.COMMANDS[("node", "fit")].quick
    for preset in (tracking, control):
        reduced = quick(preset)
        assert reduced.train.steps == 150 and reduced.width == 16
        assert (reduced.n_samples, reduced.batch_size) == (preset.n_samples, preset.batch_size)


@pytest.mark.parametrize(
    "model, change, word",
    [
        ("integral-node", {"n_samples": 10}, "n_samples"),
        ("integral-node", {"noise": 0.1}, "noise"),
        ("integral-node", {"batch_size": 8}, "batch_size"),
        ("integral-node", {"augment_dim": 1}, "augment_dim"),
        ("controller", {"test_samples": 10}, "test_samples"),
        ("controller", {"validation_samples": 10}, "validation_samples"),
        ("controller", {"trace": "hutchinson"}, "trace"),
        ("controller", {"dataset": "sinusoid"}, "does not apply"),
        ("integral-node", {"dataset": "moons"}, "does not apply"),
    ],
)
def test_options_that_mean_nothing_for_a_control_problem_are_refused(model, change, word):
    with pytest.raises(ValueError, match=word):
        dataclasses.replace(node_fit_preset(model), **change)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "controller", "--dataset", "sinusoid"], "does not apply to dataset"),
        (["--model", "anode", "--dataset", "double-integrator"], "does not apply to dataset"),
        (["--model", "integral-node", "--n_samples", "64"], "n_samples=64 means nothing"),
        (["--model", "controller", "--noise", "0.1"], "noise=0.1 means nothing"),
        (["--model", "controller", "--batch_size", "8"], "batch_size=8 means nothing"),
    ],
)
def test_cli_refuses_mismatched_pairs_and_options_in_one_line(tmp_path, capsys, argv, message):
    code = cli.main(["node", "fit", *argv, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("diffdyn: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.heavy
def test_fit_node_reports_the_optimum_and_both_baselines(tmp_path):
    cfg = dataclasses.replace(
        node_fit_preset("controller"),
        width=8,
        solve=SolveConfig(rtol=1e-4, atol=1e-6, max_steps=256),
        train=TrainConfig(steps=40, log_every=20, progress=False),
    )
    fit = fit_node(cfg, jax.random.key(0))
    metrics = fit.metrics()
    assert metrics["zero_control_cost"] == pytest.approx(100.0, rel=1e-5)
    assert metrics["optimal_cost"] <= metrics["cost"] < metrics["start_cost"]
    assert metrics["cost_ratio"] == pytest.approx(metrics["cost"] / metrics["optimal_cost"])
    paths = node_fit_figures(fit, tmp_path, key=jax.random.key(1))
    assert sorted(p.name for p in paths) == ["control.png", "loss.png"]


@pytest.mark.heavy
@pytest.mark.parametrize(
    "model, figure",
    [("integral-node", "tracking"), ("controller", "control")],
)
def test_quick_cli_runs_beat_their_untrained_models_and_write_figures(
    tmp_path, capsys, model, figure
):
    out = tmp_path / model
    argv = ["node", "fit", "--model", model, "--quick", "--out", str(out), "--json"]
    assert cli.main([*argv, "--no-train.progress"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics == json.loads((Path(out) / "metrics.json").read_text())
    assert metrics["steps"] == 150
    if model == "integral-node":
        assert metrics["integral_loss"] < 0.2 * metrics["start_integral_loss"]
        assert metrics["integral_loss"] == pytest.approx(metrics["trapezoid_loss"], rel=1e-3)
    else:
        assert metrics["cost_ratio"] < 1.5
        assert metrics["cost"] < 0.2 * metrics["zero_control_cost"]
    for name in (figure, "loss"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
    assert NodeFitConfig(**{"model": model, "dataset": metrics["dataset"]}).model == model
