"""NeuralODE, augmentation, depth-variant fields, integral losses, adjoints, the training
tasks, ``diffdyn node fit`` and the saved classifier."""

import dataclasses
import json
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest
import yaml

from diffdyn.common import AbstractModel, OptimConfig, SolveConfig, TrainConfig, Trainer, cli
from diffdyn.common.neural_de import (
    MODEL_SOLVE,
    ClassificationTask,
    DensityCNF,
    GalerkinLinear,
    HigherOrderField,
    MLPField,
    NeuralODE,
    NodeFitConfig,
    ODEClassifier,
    RegressionTask,
    RunningCost,
    TimeMLPField,
    basis,
    crossing,
    fit_node,
    moons,
    with_cost,
    zero_augment,
)


def tight(rtol=1e-8, atol=1e-10, **kw):
    return SolveConfig(rtol=rtol, atol=atol, **kw)


class Linear(eqx.Module):
    a: jax.Array

    def __call__(self, t, y, args):
        return self.a @ y


A = jnp.array([[-0.3, 1.0], [-1.0, -0.2]])


def test_linear_field_matches_matrix_exponential_and_per_sample_spans():
    node = NeuralODE(Linear(A), solve=tight())
    y0 = jnp.array([[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]])
    ts = jnp.array([[0.0, 0.5, 1.0], [1.0, 1.5, 3.0], [-1.0, 0.0, 0.2]])
    out = node.batch(y0, ts)
    assert out.shape == (3, 3, 2)
    for b in range(3):
        for k in range(3):
            exact = jsl.expm(A * (ts[b, k] - ts[b, 0])) @ y0[b]
            np.testing.assert_allclose(out[b, k], exact, rtol=1e-5, atol=1e-6)
    # shared ts with per-sample t0 and batched args (a control scaling the field)
    scaled = NeuralODE(lambda t, y, s: s * (A @ y), solve=tight())
    s = jnp.array([1.0, 2.0, 0.5])
    out = scaled.batch(y0, jnp.array([1.0]), s, t0=jnp.array([0.0, 0.5, 0.0]), batched_args=True)
    for b, (scale, t0) in enumerate(zip([1.0, 2.0, 0.5], [0.0, 0.5, 0.0], strict=True)):
        np.testing.assert_allclose(out[b, 0], jsl.expm(scale * A * (1 - t0)) @ y0[b], rtol=1e-5)


def test_bad_input_is_rejected_before_compilation():
    node = NeuralODE(Linear(A))
    with pytest.raises(ValueError, match="ts"):
        node.batch(jnp.ones((3, 2)), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="strictly increasing"):
        node.batch(jnp.ones((2, 2)), jnp.array([[0.0, 1.0], [1.0, 0.5]]))
    with pytest.raises(ValueError, match="unknown solver"):
        NeuralODE(Linear(A), solve=SolveConfig(solver="rk45"))
    with pytest.raises(TypeError, match="SolveConfig"):
        NeuralODE(Linear(A), solve="tsit5")
    with pytest.raises(TypeError, match="vector_field"):
        NeuralODE(3)
    with pytest.raises(ValueError, match="augment_dim"):
        ODEClassifier(2, 2, augment="zero", key=jax.random.key(0))


@pytest.mark.heavy
def test_adjoints_agree_with_each_other_and_finite_differences():
    with jax.enable_x64(True):
        field = MLPField(2, 8, 1, key=jax.random.key(0))
        field = jax.tree_util.tree_map(
            lambda x: x.astype(jnp.float64) if eqx.is_array(x) else x, field
        )
        y0 = jnp.array([0.7, -0.4])
        ts = jnp.linspace(0.0, 1.0, 4)

        def loss(f, adjoint):
            node = NeuralODE(f, solve=tight(1e-12, 1e-12, adjoint=adjoint))
            return jnp.sum(node(y0, ts) ** 2)

        grads = {
            a: eqx.filter_grad(lambda f, a=a: loss(f, a))(field)
            for a in ("recursive-checkpoint", "direct", "backsolve")
        }
        flat = {
            a: jnp.concatenate([x.ravel() for x in jax.tree_util.tree_leaves(g)])
            for a, g in grads.items()
        }
        ref = flat["recursive-checkpoint"]
        for a in ("direct", "backsolve"):
            assert jnp.linalg.norm(flat[a] - ref) / jnp.linalg.norm(ref) < 1e-6, a
        # central finite difference along a random direction in parameter space
        params, static = eqx.partition(field, eqx.is_array)
        leaves, treedef = jax.tree_util.tree_flatten(params)
        keys = jax.random.split(jax.random.key(1), len(leaves))
        direction = [
            jax.random.normal(k, x.shape, jnp.float64) for k, x in zip(keys, leaves, strict=True)
        ]
        h = 1e-5

        def shifted(s):
            p = jax.tree_util.tree_unflatten(
                treedef, [x + s * d for x, d in zip(leaves, direction, strict=True)]
            )
            return loss(eqx.combine(p, static), "recursive-checkpoint")

        fd = (shifted(h) - shifted(-h)) / (2 * h)
        dot = sum(
            jnp.vdot(g, d)
            for g, d in zip(jax.tree_util.tree_leaves(grads["backsolve"]), direction, strict=True)
        )
        assert abs(fd - dot) / abs(fd) < 1e-6


@pytest.mark.heavy
def test_integral_loss_matches_closed_form_and_its_gradient():
    # y' = -a y, cost y^2: C(T) = y0^2 (1 - exp(-2 a T)) / (2 a), dC/da closed form.
    a, y0, big_t = 0.7, 1.3, 2.0

    def cost_of(a, adjoint):
        node = NeuralODE(
            RunningCost(lambda t, y, p: -p * y, lambda t, y, p: y**2),
            solve=tight(1e-9, 1e-9, adjoint=adjoint),
        )
        _, c = node(with_cost(jnp.asarray(y0)), jnp.array([big_t]), a, t0=0.0)
        return c[0]

    exact = lambda a: y0**2 * (1 - jnp.exp(-2 * a * big_t)) / (2 * a)
    np.testing.assert_allclose(cost_of(a, "recursive-checkpoint"), exact(a), rtol=1e-5)
    for adjoint in ("recursive-checkpoint", "backsolve"):
        np.testing.assert_allclose(jax.grad(cost_of)(a, adjoint), jax.grad(exact)(a), rtol=1e-4)


def test_second_order_field_is_a_harmonic_oscillator():
    field = HigherOrderField(lambda t, y, a: -4.0 * y[:1], dim=1, order=2)
    node = NeuralODE(field, solve=tight())
    ts = jnp.linspace(0, 3, 7)
    y = node(jnp.array([1.0, 0.0]), ts)
    np.testing.assert_allclose(y[:, 0], jnp.cos(2 * ts), atol=1e-5)
    np.testing.assert_allclose(y[:, 1], -2 * jnp.sin(2 * ts), atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        field(0.0, jnp.ones(3), None)


def test_depth_variant_fields_and_bases():
    theta = jnp.linspace(0.1, 3.0, 5)
    cheb = jax.vmap(lambda s: basis("chebyshev", s, 5))(jnp.cos(theta))
    np.testing.assert_allclose(cheb, jnp.cos(jnp.arange(5) * theta[:, None]), atol=1e-5)
    four = basis("fourier", 0.25, 5)
    np.testing.assert_allclose(four, [1.0, 0.0, 1.0, -1.0, 0.0], atol=1e-6)
    # a one-function polynomial basis is constant in t: the Galerkin layer is a fixed
    # affine map, so y' = W y + b has the closed form expm.
    layer = GalerkinLinear(2, 2, basis="polynomial", n_basis=1, key=jax.random.key(0))
    w = layer.weights(0.3)
    np.testing.assert_allclose(w, layer.weights(5.0), rtol=1e-6)
    node = NeuralODE(lambda t, y, a: layer(t, y), solve=tight())
    aug = jnp.block([[w[:, :2], w[:, 2:]], [jnp.zeros((1, 3))]])
    exact = jsl.expm(aug) @ jnp.array([1.0, -1.0, 1.0])
    np.testing.assert_allclose(node.final(jnp.array([1.0, -1.0])), exact[:2], rtol=1e-5)
    # time enters TimeMLPField: f(t, y) differs across t for the same y
    f = TimeMLPField(2, 8, 1, key=jax.random.key(1))
    assert not jnp.allclose(f(0.0, jnp.ones(2)), f(1.0, jnp.ones(2)))
    np.testing.assert_array_equal(zero_augment(jnp.ones((3, 2)), 2)[:, 2:], 0.0)


def _fit(task, model, data, steps, learning_rate=1e-2, seed=0):
    trainer = Trainer(
        task,
        OptimConfig(learning_rate=learning_rate),
        config=TrainConfig(steps=steps, log_every=steps, progress=False, track_best=False),
    )
    return trainer.fit(model, data, jax.random.key(seed)).model


def _mse(model, data):
    x, y = data
    return float(jnp.mean((jax.vmap(model)(x) - y) ** 2))


@pytest.mark.heavy
def test_plain_node_cannot_cross_but_anode_can():
    data = crossing(jax.random.key(0), 16)
    common = dict(width=16, depth=2, readout="project", t1=1.0, key=jax.random.key(1))
    plain = _fit(RegressionTask(), ODEClassifier(1, 1, **common), data, 200, 2e-2)
    anode = _fit(
        RegressionTask(),
        ODEClassifier(1, 1, augment="zero", augment_dim=1, **common),
        data,
        200,
        2e-2,
    )
    # a 1-D flow preserves order, so the best it can do is map both points to one value
    assert _mse(plain, data) > 0.9
    assert _mse(anode, data) < 0.05


@pytest.mark.heavy
def test_node_classifies_moons_at_99_percent():
    x, y = moons(jax.random.key(1), 512, noise=0.1)
    xt, yt = moons(jax.random.key(2), 1024, noise=0.1)
    solve = dataclasses.replace(MODEL_SOLVE, max_steps=64)
    model = _fit(
        ClassificationTask(),
        ODEClassifier(2, 2, width=32, depth=2, solve=solve, key=jax.random.key(0)),
        (x, y),
        300,
    )
    accuracy = jnp.mean(jnp.argmax(jax.vmap(model)(xt), -1) == yt)
    assert accuracy >= 0.99


# ------------------------------------------------------------------ tasks


class Logits(eqx.Module):
    """A classifier with logits W x: its cross-entropy has a closed form."""

    weight: jax.Array

    def __call__(self, x):
        return self.weight @ x


def test_classification_task_is_the_cross_entropy_and_the_accuracy():
    w = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    x = jnp.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 3.0]])
    y = jnp.array([0, 1, 2, 0])
    logits = x @ w.T
    exact = np.mean(
        [math.log(np.exp(row).sum()) - row[k] for row, k in zip(logits, y, strict=True)]
    )
    predicted = np.argmax(logits, -1)
    task = ClassificationTask((x, y), batch_size=2)
    loss, aux = task.loss(Logits(w), (x, y), jax.random.key(0))
    np.testing.assert_allclose(loss, exact, rtol=1e-6)
    np.testing.assert_allclose(aux["accuracy"], np.mean(predicted == np.asarray(y)))
    metrics = task.evaluate(Logits(w), jax.random.key(0))
    np.testing.assert_allclose(metrics["loss"], exact, rtol=1e-6)
    assert task.validates and task.draws  # held-out 2-D points: validated and drawn
    assert task.augmenter().batch_size == 2
    image = task.visualise(Logits(w), jax.random.key(0))["decision_boundary"]
    assert image.ndim == 3 and image.shape[0] == 3 and 0 <= image.min() <= image.max() <= 1
    bare = ClassificationTask()
    assert not bare.validates and not bare.draws
    with pytest.raises(TypeError, match="integers"):
        ClassificationTask((x, y.astype(jnp.float32)))
    with pytest.raises(ValueError, match="leading axis"):
        ClassificationTask((x, y[:3]))


def test_regression_task_is_the_mean_squared_error():
    x = jnp.array([[1.0], [-2.0], [0.5]])
    y = jnp.array([[0.0], [1.0], [0.5]])
    exact = np.mean((np.asarray(x) - np.asarray(y)) ** 2)  # the identity model
    task = RegressionTask((x, y))
    np.testing.assert_allclose(task.loss(lambda v: v, (x, y), None), exact, rtol=1e-6)
    np.testing.assert_allclose(task.evaluate(lambda v: v, None)["loss"], exact, rtol=1e-6)
    assert task.validates and not task.draws
    with pytest.raises(ValueError, match="batch_size"):
        RegressionTask(batch_size=0)


def test_the_best_model_is_chosen_by_validation_not_by_training_loss():
    # validation labels are the training labels flipped: the better the fit, the worse the
    # validation loss, so the best model is the one of the first validation
    x, y = moons(jax.random.key(0), 256, noise=0.1)
    task = ClassificationTask((x, 1 - y), batch_size=64)
    model = eqx.nn.MLP(2, 2, 16, 1, key=jax.random.key(1))
    config = TrainConfig(steps=60, log_every=10, progress=False)
    result = Trainer(task, OptimConfig(learning_rate=3e-2), config=config).fit(
        model, (x, y), jax.random.key(2)
    )
    history = result.validation
    assert result.selected_by == "validation"
    assert list(history["step"]) == [10, 20, 30, 40, 50, 60]
    assert history["loss"][-1] > history["loss"][0]
    assert result.best_step == int(history["step"][np.argmin(history["loss"])])
    assert result.best_loss == pytest.approx(float(np.min(history["loss"])), rel=1e-6)
    np.testing.assert_allclose(
        task.evaluate(result.best_model, None)["loss"], result.best_loss, rtol=1e-5
    )
    assert result.losses[-1] < result.losses[result.best_step]  # training kept improving


# ------------------------------------------------------------------ diffdyn node fit


def test_node_fit_config_refuses_options_that_do_not_apply():
    with pytest.raises(ValueError, match="trace"):
        NodeFitConfig(model="anode", trace="hutchinson")
    with pytest.raises(ValueError, match="augment_dim"):
        NodeFitConfig(model="node", augment_dim=2)
    with pytest.raises(ValueError, match="2-D"):
        NodeFitConfig(model="cnf", dataset="crossing")
    with pytest.raises(ValueError, match="batch_size"):
        NodeFitConfig(n_samples=64, batch_size=128)
    assert NodeFitConfig(model="cnf", trace="hutchinson").trace == "hutchinson"


def test_node_fit_quick_config_is_a_smaller_run(capsys):
    assert cli.main(["node", "fit", "--help"]) == 0  # registers the command
    assert "--quick" in capsys.readouterr().out
    quick = cli.COMMANDS[("node", "fit")].quick
    small = quick(NodeFitConfig())
    assert (small.n_samples, small.test_samples, small.width, small.batch_size) == (
        512,
        512,
        16,
        128,
    )
    assert small.train.steps == 150 and small.train.log_every == NodeFitConfig().train.log_every
    assert small.solve == MODEL_SOLVE and small.optim == NodeFitConfig().optim
    tiny = NodeFitConfig(
        n_samples=64, test_samples=64, width=8, batch_size=32, train=TrainConfig(steps=20)
    )
    assert quick(tiny) == tiny  # already small: unchanged


def test_fit_node_keeps_the_model_that_validates_best():
    cfg = NodeFitConfig(
        model="node",
        n_samples=128,
        validation_samples=64,
        test_samples=64,
        width=8,
        batch_size=64,
        solve=SolveConfig(solver="heun", adaptive=False, dt0=0.25),
        train=TrainConfig(steps=30, log_every=10, progress=False),
    )
    fit = fit_node(cfg, jax.random.key(0))
    history = fit.train.validation
    assert fit.train.selected_by == "validation"
    assert fit.train.best_loss == pytest.approx(float(np.min(history["loss"])), rel=1e-6)
    np.testing.assert_allclose(
        fit.task.evaluate(fit.model, None)["loss"], fit.train.best_loss, rtol=1e-5
    )
    metrics = fit.metrics()
    assert metrics["validation_loss"] == fit.train.best_loss
    assert metrics["test_loss"] == fit.test["loss"] and 0 <= metrics["test_accuracy"] <= 1
    assert metrics["steps"] == 30 and metrics["selected_by"] == "validation"


@pytest.mark.heavy
def test_node_fit_command_writes_what_ran(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["node", "fit", "--quick", "--out", str(out), "--train.steps", "60", "--json"]
    assert cli.main(argv + ["--no-train.progress", "--train.log_every", "20"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert metrics["selected_by"] == "validation" and metrics["test_accuracy"] > 0.8
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["train"]["steps"] == 60 and config["n_samples"] == 512
    for name in ("decision_boundary", "flows", "loss"):
        assert Path(out / "figures" / f"{name}.png").stat().st_size > 0
    best = AbstractModel.load(out / "best.eqx")
    assert isinstance(best, ODEClassifier) and best.solve == MODEL_SOLVE
    assert best.augment == "zero" and best.augment_dim == 2


# ------------------------------------------------------------------ saving

FIXTURES = Path(__file__).parent / "fixtures" / "models_0_1_0"


def test_a_classifier_file_of_0_1_0_loads_with_one_solve_config():
    model = AbstractModel.load(FIXTURES / "ode_classifier.eqx")
    assert isinstance(model, ODEClassifier)
    # 0.1.0 recorded solver, rtol, atol, adjoint and max_steps as flat arguments
    expected = SolveConfig(rtol=1e-3, atol=1e-5, adjoint="recursive-checkpoint", max_steps=256)
    assert model.solve == expected and model.node.solve == expected
    assert jax.vmap(model)(jnp.ones((4, 2))).shape == (4, 3)


def test_models_save_their_solve_config_as_a_nested_spec(tmp_path):
    solve = SolveConfig(solver="dopri5", rtol=1e-4, atol=1e-6, adjoint="backsolve", max_steps=99)
    model = ODEClassifier(2, 2, augment="input", augment_dim=1, solve=solve, key=jax.random.key(0))
    path = model.save(tmp_path / "m.eqx")
    header = json.loads(path.read_bytes().split(b"\n", 1)[0])
    spec = header["hyperparameters"]["solve"]["__config__"]
    assert (spec["module"], spec["class"]) == ("diffdyn.common", "SolveConfig")
    assert not {"solver", "rtol", "atol", "adjoint", "max_steps"} & set(header["hyperparameters"])
    again = AbstractModel.load(path)
    assert again.solve == solve and again.node.solve == solve
    np.testing.assert_array_equal(
        jax.vmap(again)(jnp.ones((2, 2))), jax.vmap(model)(jnp.ones((2, 2)))
    )


def test_a_density_cnf_file_of_0_1_0_loads(tmp_path):
    model = DensityCNF(2, 8, 1, key=jax.random.key(0))
    body = model.save(tmp_path / "new.eqx").read_bytes().split(b"\n", 1)[1]
    old = {
        "format": "diffdyn-model/1",
        "module": "common.neural_de.models",
        "class": "DensityCNF",
        "hyperparameters": {
            "dim": 2,
            "width": 8,
            "depth": 1,
            "trace": "exact",
            "t1": 1.0,
            "solver": "rk4",
            "rtol": 1e-3,
            "atol": 1e-5,
            "adjoint": "backsolve",
            "max_steps": 256,
        },
    }
    path = tmp_path / "old.eqx"
    path.write_bytes(json.dumps(old).encode() + b"\n" + body)
    loaded = AbstractModel.load(path)
    # rk4 has no error estimate: 0.1.0 solved it with a fixed step, and so does the upgrade
    assert loaded.solve == SolveConfig(
        solver="rk4", adaptive=False, rtol=1e-3, atol=1e-5, adjoint="backsolve", max_steps=256
    )
    leaves = zip(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(model), strict=True)
    for a, b in leaves:
        np.testing.assert_array_equal(a, b)


def test_a_neural_ode_saves_loads_and_solves_as_solve_does(tmp_path):
    import diffrax

    from diffdyn.common import solve

    field = MLPField(2, 8, 2, key=jax.random.key(0))
    node = NeuralODE(field)
    assert node.solve == SolveConfig()  # the defaults of solve, not a tolerance of its own
    y0, ts = jnp.array([0.5, -0.2]), jnp.linspace(0.0, 1.0, 5)
    np.testing.assert_allclose(node(y0, ts), solve(field, y0, ts), rtol=1e-6)
    node.save(tmp_path / "node.eqx")
    back = NeuralODE.load(tmp_path / "node.eqx")
    assert back.solve == node.solve and isinstance(back.vector_field, MLPField)
    np.testing.assert_array_equal(back(y0, ts), node(y0, ts))
    # diffrax instances, as solve accepts them; such a node runs but names no file format
    custom = SolveConfig(solver=diffrax.Tsit5(), adjoint=diffrax.BacksolveAdjoint())
    run = eqx.filter_jit(lambda n: n(y0, ts))  # the config is a static field: it must hash
    np.testing.assert_array_equal(run(NeuralODE(field, solve=custom)), run(node))
    with pytest.raises(TypeError, match="hyperparameter 'solve.solver' must be JSON"):
        NeuralODE(field, solve=custom).save(tmp_path / "custom.eqx")
    with pytest.raises(TypeError, match="cannot be saved|must be JSON"):
        NeuralODE(lambda t, y, a: -y).save(tmp_path / "lambda.eqx")


def test_a_batch_given_to_a_single_solve_points_at_batch():
    node = NeuralODE(MLPField(2, 8, 2, key=jax.random.key(0)))
    with pytest.raises(ValueError, match=r"fails on y0 of shape \(6, 2\).*NeuralODE.batch"):
        node(jnp.ones((6, 2)), jnp.linspace(0.0, 1.0, 3))
    assert node.batch(jnp.ones((6, 2)), jnp.linspace(0.0, 1.0, 3)).shape == (6, 3, 2)
