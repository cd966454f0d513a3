"""``diffdyn node fit`` on digits, the block-model graph and irregular series: the
model/dataset pairs, the options each dataset refuses, the node and series tasks, and short
training runs that beat chance, a per-node MLP or predicting zeros."""

import dataclasses
import json
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from diffdyn.common import AbstractModel, SolveConfig, TrainConfig, cli
from diffdyn.common.neural_de import (
    ODERNN,
    GraphODEClassifier,
    GRUDelta,
    IrregularSeriesTask,
    LatentODE,
    NodeClassificationTask,
    NodeFitConfig,
    fit_node,
    irregular_oscillators,
    node_fit_figures,
    node_fit_preset,
)

NEW = {
    "conv-node": "digits",
    "graph-node": "block-model",
    "odernn": "irregular-oscillators",
    "latent-ode": "irregular-oscillators",
}


def _run(argv, capsys):
    """``diffdyn node fit ARGV --json``: the JSON line, checked against metrics.json."""
    out = argv[argv.index("--out") + 1]
    assert cli.main(["node", "fit", *argv, "--json", "--no-train.progress"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics == json.loads((Path(out) / "metrics.json").read_text())
    return metrics


# ------------------------------------------------------------------ configs


@pytest.mark.parametrize(
    "model, dataset",
    [
        ("conv-node", "moons"),
        ("anode", "digits"),
        ("cnf", "block-model"),
        ("graph-node", "digits"),
        ("conv-node", "irregular-oscillators"),
        ("odernn", "block-model"),
        ("latent-ode", "moons"),
        ("node", "irregular-oscillators"),
    ],
)
def test_every_mismatched_model_and_dataset_is_refused_naming_both(model, dataset):
    with pytest.raises(ValueError, match=f"model '{model}' does not apply to dataset '{dataset}'"):
        NodeFitConfig(model=model, dataset=dataset)


@pytest.mark.parametrize(
    "model, change, word",
    [
        ("conv-node", {"n_samples": 512}, "n_samples"),
        ("conv-node", {"validation_samples": 100}, "validation_samples"),
        ("conv-node", {"test_samples": 100}, "test_samples"),
        ("conv-node", {"noise": 0.1}, "noise"),
        ("conv-node", {"depth": 1}, "depth"),
        ("conv-node", {"augment_dim": 2}, "augment_dim"),
        ("conv-node", {"trace": "hutchinson"}, "trace"),
        ("conv-node", {"batch_size": 1260}, "batch_size"),
        ("graph-node", {"n_samples": 300}, "n_samples"),
        ("graph-node", {"test_samples": 180}, "test_samples"),
        ("graph-node", {"batch_size": 64}, "batch_size"),
        ("graph-node", {"augment_dim": 1}, "augment_dim"),
        ("odernn", {"t1": 2.0}, "t1"),
        ("latent-ode", {"t1": 2.0}, "t1"),
        ("latent-ode", {"trace": "hutchinson"}, "trace"),
        ("odernn", {"augment_dim": 1}, "augment_dim"),
        ("odernn", {"n_samples": 8}, "batch_size"),  # 16 series per step of 8
    ],
)
def test_options_that_mean_nothing_for_a_dataset_are_refused(model, change, word):
    with pytest.raises(ValueError, match=word):
        dataclasses.replace(node_fit_preset(model), **change)


def test_the_options_each_new_dataset_honours_are_accepted():
    preset = node_fit_preset
    assert dataclasses.replace(preset("conv-node"), width=4, t1=0.5, batch_size=1259).t1 == 0.5
    graph = dataclasses.replace(preset("graph-node"), noise=1.0, depth=2, t1=2.0)
    assert (graph.noise, graph.depth) == (1.0, 2)
    series = dataclasses.replace(preset("latent-ode"), n_samples=64, noise=0.0, batch_size=8)
    assert (series.n_samples, series.noise) == (64, 0.0)


def test_presets_choose_each_models_dataset_and_leave_the_toy_defaults_alone():
    for model, dataset in NEW.items():
        assert node_fit_preset(model).dataset == dataset
    assert node_fit_preset("anode") == NodeFitConfig()
    assert node_fit_preset("cnf") == NodeFitConfig(model="cnf")
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        node_fit_preset("resnet")


def test_quick_keeps_fixed_splits_and_full_graph_steps():
    cli.load_plugins(("node",))
    quick = cli.COMMANDS[("node", "fit")].quick
    digits = quick(node_fit_preset("conv-node"))
    assert (digits.n_samples, digits.test_samples, digits.batch_size) == (1024, 1024, 64)
    assert digits.train.steps == 40 and digits.width == 16
    graph = quick(node_fit_preset("graph-node"))
    assert graph.batch_size == 256 and graph.train.steps == 150
    series = quick(node_fit_preset("odernn"))
    assert (series.n_samples, series.test_samples, series.train.steps) == (512, 512, 150)


# ------------------------------------------------------------------ the tasks


class _Linear(eqx.Module):
    weight: jax.Array

    def __call__(self, x):
        return x @ self.weight


def test_node_task_is_the_cross_entropy_and_accuracy_over_the_masked_nodes():
    x = jax.random.normal(jax.random.key(0), (7, 3))
    labels = jnp.array([0, 1, 1, 0, 1, 0, 0])
    mask = jnp.array([True, False, True, True, False, False, True])
    model = _Linear(jax.random.normal(jax.random.key(1), (3, 2)))
    logits = np.asarray(x @ model.weight, np.float64)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    picked = logp[np.arange(7), np.asarray(labels)]
    m = np.asarray(mask)
    right = (logits.argmax(1) == np.asarray(labels))[m]
    scores = NodeClassificationTask((x, labels, mask)).evaluate(model, None)
    np.testing.assert_allclose(scores["loss"], -picked[m].mean(), rtol=1e-5)
    assert float(scores["accuracy"]) == right.mean()
    loss, aux = NodeClassificationTask().loss(model, (x, labels, mask), None)
    np.testing.assert_allclose(loss, -picked[m].mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="selects no node"):
        NodeClassificationTask((x, labels, jnp.zeros(7, bool)))
    with pytest.raises(TypeError, match="mask must be bool"):
        NodeClassificationTask((x, labels, jnp.ones(7)))


def test_series_splits_hold_out_every_third_step_and_the_late_steps():
    ts = jnp.array([[0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.0]])
    mask = jnp.ones((1, 9, 2), bool).at[0, 8].set(False).at[0, 2, 1].set(False)
    task = IrregularSeriesTask("one-step", split_time=5.0)
    splits = task.splits(ts, mask)
    ctx, target = splits["interpolation"]
    # observed steps 0..7 (the last is padding); ranks 3 and 6 held out, never the last (8)
    assert np.flatnonzero(np.asarray(target[0].any(-1))).tolist() == [2, 5]
    assert not bool(target[0, 2, 1])  # a missing entry is no target
    assert not bool(jnp.any(ctx & target)) and bool(jnp.all((ctx | target) == mask))
    ctx, target = splits["extrapolation"]
    assert np.flatnonzero(np.asarray(target[0].any(-1))).tolist() == [5, 6, 7]
    assert np.flatnonzero(np.asarray(ctx[0].any(-1))).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="objective"):
        IrregularSeriesTask("mse", split_time=5.0)
    with pytest.raises(ValueError, match="split_time"):
        IrregularSeriesTask("elbo", split_time=0.0)


def test_one_step_prediction_is_the_readout_of_the_state_before_each_step():
    # with a zero field the flow is the identity: x_hat_i = W h_(last context step before i) + b
    model = ODERNN(
        2,
        5,
        width=8,
        solve=SolveConfig(solver="heun", adaptive=False, dt0=0.5),
        key=jax.random.key(0),
    )
    last = model.field.layers[-1]
    model = eqx.tree_at(
        lambda m: (m.field.layers[-1].weight, m.field.layers[-1].bias),
        model,
        (jnp.zeros_like(last.weight), jnp.zeros_like(last.bias)),
    )
    ts, xs, mask = (a[0] for a in irregular_oscillators(1, key=jax.random.key(1), max_points=8))
    context = mask.at[3].set(False).at[4].set(False)
    task = IrregularSeriesTask("one-step", split_time=5.0)
    both = eqx.filter_jit(lambda m: (task.predict(m, ts, xs, context), m(ts, xs, context, t0=0.0)))
    predicted, post = both(model)
    before = [None, 0, 1, 2, 2, 2, 5, 6]  # steps 3 and 4 are outside the context
    for i, j in enumerate(before):
        h = jnp.zeros(5) if j is None else post[j]
        np.testing.assert_allclose(predicted[i], model.readout(h), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="ODERNN"):
        task.predict(LatentODE(2, 2, key=jax.random.key(2)), ts, xs, context)


def test_gru_delta_predicts_each_step_from_the_context_before_it():
    gru = GRUDelta(2, 6, key=jax.random.key(0))
    ts = jnp.array([0.5, 1.0, 2.5, 4.0])
    xs = jax.random.normal(jax.random.key(1), (4, 2))
    context = jnp.ones((4, 2), bool).at[2].set(False)
    predicted = gru(ts, xs, context)
    h, dts = jnp.zeros(6), np.diff(np.asarray(ts), prepend=0.0)
    for i in range(4):
        dt = jnp.array([dts[i]])
        query = gru.cell(jnp.concatenate([jnp.zeros(4), dt]), h)
        np.testing.assert_allclose(predicted[i], gru.readout(query), rtol=1e-5, atol=1e-6)
        m = context[i].astype(xs.dtype)
        h = gru.cell(jnp.concatenate([m * xs[i], m, dt]), h)
    # what lies outside the context is never read
    again = gru(ts, xs.at[2].set(jnp.nan), context)
    np.testing.assert_allclose(again, predicted)


def test_context_objective_trains_on_random_contexts_and_validates_on_both_splits():
    series = irregular_oscillators(8, key=jax.random.key(0), max_points=12)
    task = IrregularSeriesTask("context", series, split_time=5.0)
    gru = GRUDelta(2, 4, key=jax.random.key(2))
    scores = task.evaluate(gru, None)
    mean = (scores["interpolation_mse"] + scores["extrapolation_mse"]) / 2
    np.testing.assert_allclose(scores["loss"], mean, rtol=1e-6)
    # two keys give two random contexts, so two losses; the same key the same loss
    loss = eqx.filter_jit(task.loss)
    a, b = loss(gru, series, jax.random.key(3)), loss(gru, series, jax.random.key(4))
    assert float(a) != float(b)
    assert float(a) == float(loss(gru, series, jax.random.key(3)))
    # the full context is the one-step objective
    one_step = IrregularSeriesTask("one-step", split_time=5.0)
    ts, xs, mask = series
    full = np.asarray(jax.vmap(gru)(ts, xs, mask))
    m = np.asarray(mask)
    np.testing.assert_allclose(
        one_step.loss(gru, series, None),
        np.sum(m * (full - np.asarray(xs)) ** 2) / m.sum(),
        rtol=1e-5,
    )
    with pytest.raises(TypeError, match="ODERNN or GRUDelta"):
        task.init(LatentODE(2, 2, key=jax.random.key(5)), series)


# ------------------------------------------------------------------ training runs


@pytest.mark.heavy
def test_digits_cli_run_beats_chance_and_writes_metrics_and_figures(tmp_path, capsys):
    out = tmp_path / "digits"
    argv = ["--model", "conv-node", "--quick", "--out", str(out), "--train.steps", "20"]
    argv += ["--train.log_every", "20", "--width", "8", "--batch_size", "32"]
    argv += ["--solve.solver", "euler", "--solve.dt0", "0.5"]
    metrics = _run(argv, capsys)
    assert metrics["dataset"] == "digits" and metrics["selected_by"] == "validation"
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["dataset"] == "digits" and config["optim"]["optimiser"] == "adamw"
    assert config["n_samples"] == 1024  # the fixed split: not reduced by --quick
    for name in ("confusion", "digits", "loss"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0


@pytest.mark.heavy
def test_graph_cli_run_beats_chance_and_the_per_node_mlp(tmp_path, capsys):
    out = tmp_path / "graph"
    argv = ["--model", "graph-node", "--quick", "--out", str(out), "--train.steps", "40"]
    metrics = _run(argv, capsys)
    assert metrics["test_accuracy"] > 1 / 3 + 0.3
    assert metrics["baseline"] == "per-node MLP"
    assert metrics["test_accuracy"] > metrics["baseline_accuracy"] + 0.1
    assert (out / "figures" / "node_accuracy.png").stat().st_size > 0
    best = AbstractModel.load(out / "best.eqx")
    assert isinstance(best, GraphODEClassifier)
    assert int(jnp.sum(best.flow.vector_field.adjacency > 0)) > 300  # it carries its graph


@pytest.mark.heavy
def test_odernn_interpolates_far_better_than_zeros(tmp_path):
    cfg = dataclasses.replace(
        node_fit_preset("odernn"),
        n_samples=64,
        validation_samples=32,
        test_samples=32,
        train=TrainConfig(steps=60, log_every=30, progress=False),
    )
    fit = fit_node(cfg, jax.random.key(0))
    metrics = fit.metrics()
    assert metrics["baseline"] == "zeros"
    assert metrics["test_interpolation_mse"] < 0.3 * metrics["baseline_interpolation_mse"]
    assert math.isfinite(metrics["test_extrapolation_mse"])
    for split in ("interpolation", "extrapolation"):  # the GRU fed time deltas, trained alike
        assert math.isfinite(metrics[f"baseline_gru_dt_{split}_mse"])
    # the zero baseline is the mean square of the held-out entries
    ts, xs, mask = fit.test_data
    _, target = fit.task.splits(ts, mask)["interpolation"]
    zero = np.asarray(xs)[np.asarray(target)]
    np.testing.assert_allclose(metrics["baseline_interpolation_mse"], np.mean(zero**2), rtol=1e-5)
    # the reported error is that of the stored predictions
    guess = np.asarray(fit.predictions["interpolation"])[np.asarray(target)]
    np.testing.assert_allclose(
        metrics["test_interpolation_mse"], np.mean((guess - zero) ** 2), rtol=1e-4
    )
    paths = node_fit_figures(fit, tmp_path, key=jax.random.key(1))
    assert sorted(p.name for p in paths) == ["loss.png", "series.png"]


@pytest.mark.heavy
def test_latent_ode_cli_run_interpolates_and_extrapolates_better_than_zeros(tmp_path, capsys):
    out = tmp_path / "latent"
    argv = ["--model", "latent-ode", "--out", str(out), "--n_samples", "256"]
    argv += ["--validation_samples", "32", "--test_samples", "64", "--train.steps", "400"]
    argv += ["--optim.schedule", "constant"]
    metrics = _run(argv, capsys)
    assert metrics["baseline"] == "zeros" and metrics["steps"] == 400
    assert metrics["test_interpolation_mse"] < 0.3 * metrics["baseline_interpolation_mse"]
    assert metrics["test_extrapolation_mse"] < 0.9 * metrics["baseline_extrapolation_mse"]
    assert (out / "figures" / "series.png").stat().st_size > 0
    assert isinstance(AbstractModel.load(out / "best.eqx"), LatentODE)
