"""KuraNet: normalisations, pair batch norm, losses, gradients vs finite differences, the
training task (one continuous Euler run, fixed validation networks) and model selection by
validation."""

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn import oscillators as osc
from diffdyn.oscillators import (
    Kuramoto,
    KuraNet,
    KuraNetTask,
    circular_moments,
    circular_variance,
    feature_assortativity,
    normalise_coupling,
    order_parameter,
    segmentation_loss,
    simulate,
    splay_state,
)


@pytest.fixture(scope="module")
def features():
    return jax.random.normal(jax.random.key(0), (23, 3))


def test_node_normalisation_mean_degree_and_mask(features):
    logits = jax.random.normal(jax.random.key(1), (23, 23))
    k = normalise_coupling(logits, "node", avg_deg=2.5)
    assert bool(jnp.all(k >= 0))
    assert float(jnp.sum(k, 1).mean()) == pytest.approx(2.5, rel=1e-5)
    np.testing.assert_allclose(k, k.T)
    mask = jax.random.bernoulli(jax.random.key(2), 0.2, (23, 23))
    mask = mask | mask.T
    km = normalise_coupling(logits, "node", mask=mask)
    assert float(jnp.abs(jnp.where(mask, 0.0, km)).max()) == 0.0
    assert float(jnp.sum(km)) == pytest.approx(23.0, rel=1e-5)


def test_graph_normalisation_unit_rows():
    logits = jax.random.normal(jax.random.key(3), (11, 11))
    k = normalise_coupling(logits, "graph", symmetric=False)
    np.testing.assert_allclose(jnp.linalg.norm(k, axis=1), 1.0, rtol=1e-5)
    assert bool(jnp.any(k < 0))  # signed couplings are kept
    np.testing.assert_allclose(normalise_coupling(logits, "none", symmetric=False), logits)


def test_pair_mlp_matches_explicit_pairs_and_chunks(features):
    model = KuraNet(3, 16, key=jax.random.key(4))
    n = features.shape[0]
    pairs = jnp.concatenate(
        [jnp.repeat(features[:, None], n, 1), jnp.repeat(features[None], n, 0)], -1
    ).reshape(n * n, 6)

    def bn(a, scale, shift):
        return (a - a.mean(0)) / jnp.sqrt(a.var(0) + 1e-5) * scale + shift

    h = jax.nn.leaky_relu(bn(pairs @ model.w1.T + model.b1, model.bn1_scale, model.bn1_shift), 0.01)
    h = jax.nn.leaky_relu(bn(h @ model.w2.T + model.b2, model.bn2_scale, model.bn2_shift), 0.01)
    explicit = (h @ model.w3).reshape(n, n)
    np.testing.assert_allclose(model.logits(features), explicit, atol=2e-5)
    chunked = KuraNet(3, 16, row_chunk=5, key=jax.random.key(4))
    np.testing.assert_allclose(chunked.logits(features), explicit, atol=2e-5)


def test_losses_closed_forms():
    n, g = 24, 4
    sync = jnp.zeros((3, n))
    splay = jnp.tile(splay_state(n), (3, 1))
    assert float(circular_variance(sync)) == pytest.approx(0.0, abs=1e-6)
    assert float(circular_variance(splay)) == pytest.approx(1.0, abs=1e-6)
    labels = jnp.arange(n) % g
    masks = jax.nn.one_hot(labels, g).T
    balanced = jnp.tile(2 * jnp.pi * labels / g, (3, 1))
    assert float(circular_moments(balanced, masks)) == pytest.approx(0.0, abs=1e-6)
    # everyone in phase: synch term 0, desynch term at its maximum (G/2) sum 1/m^2
    top = g / 2 * (1 + 1 / 4)
    assert float(circular_moments(sync, masks)) == pytest.approx(top / (1 + top), rel=1e-5)
    rnd = jax.random.uniform(jax.random.key(5), (5, n), maxval=2 * math.pi)
    value = float(segmentation_loss(rnd, labels, g))
    assert 0.0 < value < 1.0


def test_an_empty_group_leaves_the_loss_and_its_gradient_finite():
    """A network may miss a class (9 mixture components in 20 nodes): R_g = 0 and psi_g = 0
    there, and the gradient (sqrt and arctan2 at 0) stays finite, equal to that with the
    empty group's terms left out by hand."""
    labels = jnp.array([0, 0, 1, 1, 1, 3])  # group 2 is empty
    theta = jax.random.uniform(jax.random.key(9), (4, 6), maxval=2 * math.pi)
    value, grad = jax.value_and_grad(segmentation_loss)(theta, labels, 4)
    assert np.isfinite(float(value)) and bool(jnp.all(jnp.isfinite(grad)))
    masks = jax.nn.one_hot(labels, 4).T
    r, psi = osc.group_order_parameter(theta, masks)
    np.testing.assert_array_equal(r[:, 2], 0.0)
    np.testing.assert_array_equal(psi[:, 2], 0.0)

    def by_hand(th):  # the empty group contributes R = 0 and e^{i m 0} = 1
        c = jnp.cos(th) @ masks.T / jnp.maximum(masks.sum(1), 1)
        s = jnp.sin(th) @ masks.T / jnp.maximum(masks.sum(1), 1)
        full = [0, 1, 3]
        rr = jnp.sqrt(c[:, full] ** 2 + s[:, full] ** 2)
        pp = jnp.arctan2(s[:, full], c[:, full])
        synch = 1 - jnp.sum(rr, -1) / 4
        desynch = sum(
            ((jnp.sum(jnp.cos(m * pp), -1) + 1) ** 2 + jnp.sum(jnp.sin(m * pp), -1) ** 2)
            / (8 * m**2)
            for m in (1, 2)
        )
        return jnp.mean(synch + desynch) / (1 + 2 * (1 + 1 / 4))

    np.testing.assert_allclose(value, by_hand(theta), rtol=1e-5)
    np.testing.assert_allclose(grad, jax.grad(by_hand)(theta), rtol=1e-4, atol=1e-6)


def test_feature_assortativity_hand_made():
    x = jnp.array([[-1.0], [1.0], [-1.0], [1.0]])
    opposite = jnp.array([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]], float)
    alike = jnp.array([[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0]], float)
    assert float(feature_assortativity(opposite, x)) == pytest.approx(-1.0)
    assert float(feature_assortativity(alike, x)) == pytest.approx(1.0)


def _tiny(name, **kw):
    base = dict(num_units=12, num_samples=64, hidden=8, burn_in=4, gd=4)
    return dataclasses.replace(osc.get_experiment(name), **{**base, **kw})


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("global-delay", marks=pytest.mark.heavy),
        pytest.param("cluster", marks=pytest.mark.slow),
    ],
)
def test_loss_gradient_matches_finite_differences(name):
    """d loss / d (coupling-network weights) along a random direction, float64, through
    burn-in (no gradient), the delayed ring-buffer solver and the loss window."""
    extra = {"max_delay": 3} if name == "global-delay" else {"alpha": 2.0, "num_classes": 3}
    with jax.enable_x64(True):
        cfg = _tiny(name, **extra)
        data = osc.kuranet_data(cfg)
        batch = {k: v[: cfg.num_units] for k, v in data["train"].items()}
        model = osc.make_kuranet(cfg, jax.random.key(6))
        model = jax.tree_util.tree_map(
            lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, model
        )
        batch["x"] = batch["x"].astype(jnp.float64)
        task = KuraNetTask(cfg)
        params, static = eqx.partition(model, eqx.is_inexact_array)
        key = jax.random.key(7)
        x, labels = batch["x"], batch["labels"]
        # training gradient: truncated at the window start (burn-in is stop-gradient) ...
        grads = jax.grad(lambda p: task.loss(eqx.combine(p, static), batch, key)[0])(params)
        # ... so it must equal the derivative of the window loss from a frozen window start
        theta0 = task.initial_phase(jax.random.split(key, 1)[0], 12)
        start = task.window_start(task.vector_field(model(x), x), theta0)

        def loss(p):
            field = task.vector_field(eqx.combine(p, static)(x), x)
            return task.network_loss(task.window_phases(field, *start), labels)

        leaves = jax.tree_util.tree_leaves(params)
        keys = jax.random.split(jax.random.key(8), len(leaves))
        direction = jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(params),
            [jax.random.normal(k, a.shape, jnp.float64) for k, a in zip(keys, leaves, strict=True)],
        )
        analytic = sum(
            jnp.vdot(g, d)
            for g, d in zip(
                jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction), strict=True
            )
        )
        eps = 1e-7  # small, so that few leaky-ReLU kinks lie within the stencil
        shift = lambda s: jax.tree_util.tree_map(lambda p, d: p + s * eps * d, params, direction)
        numeric = (loss(shift(1.0)) - loss(shift(-1.0))) / (2 * eps)
        assert abs(float(analytic)) > 1e-6
        assert float(analytic) == pytest.approx(float(numeric), rel=1e-4, abs=1e-9)


def test_float32_gradient_under_jit_matches_float64():
    """The jitted float32 gradient of the pair MLP equals the float64 one: LeakyReLU written as
    ``maximum(x, 0.01 x)`` made XLA:CPU return gradients off by 50-80% under jit here (its
    derivative compares ``x`` with the maximum, recomputed with other rounding in fusions)."""
    model = osc.KuraNet(2, 128, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (10, 2))
    weight = jax.random.normal(jax.random.key(2), (10, 10))

    def grads(m, x, w):
        return jax.grad(lambda m: jnp.sum(m(x) * w))(m)

    got = jax.jit(grads)(model, x, weight)
    with jax.enable_x64(True):
        wide = lambda t: jax.tree_util.tree_map(  # noqa: E731
            lambda a: np.asarray(a, np.float64) if eqx.is_inexact_array(a) else a, t
        )
        exact = grads(wide(model), jnp.asarray(x, jnp.float64), jnp.asarray(weight, jnp.float64))
    for name in ("w1", "w2", "w3", "bn1_scale", "bn2_scale", "bn2_shift"):
        a, b = np.asarray(getattr(got, name)), np.asarray(getattr(exact, name))
        assert np.max(np.abs(a - b)) < 1e-4 * np.max(np.abs(b)), name


def test_data_distributions():
    cfg = dataclasses.replace(osc.get_experiment("global-delay"), num_samples=20000)
    splits = osc.kuranet_data(cfg)
    assert set(splits) == {"train", "validation", "test"}
    assert not np.allclose(splits["validation"]["x"][:, 1], splits["train"]["x"][:, 1])
    data = splits["train"]["x"]
    np.testing.assert_array_equal(data[:, 0], 0.0)
    assert float(data[:, 1].min()) >= 2.0 and float(data[:, 1].max()) <= 4.0
    tau = np.asarray(data[:, 2])
    assert tau.max() <= 40 and np.allclose(tau, np.round(tau))
    assert tau.mean() == pytest.approx(15.0, abs=0.3)  # NB(15, 0.5): mean 15, variance 30
    assert tau.var() == pytest.approx(30.0, rel=0.1)


def test_save_load_roundtrip(tmp_path, features):
    model = KuraNet(3, 8, normalise="graph", gain=0.5, key=jax.random.key(10))
    model.save(tmp_path / "m.eqx")
    back = KuraNet.load(tmp_path / "m.eqx")
    np.testing.assert_allclose(back(features), model(features))


def test_bad_input():
    with pytest.raises(ValueError, match="normalise"):
        KuraNet(3, 8, normalise="row", key=jax.random.key(0))
    with pytest.raises(ValueError, match="features"):
        KuraNet(3, 8, key=jax.random.key(0))(jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match="num_classes"):
        dataclasses.replace(osc.get_experiment("global"), loss="circular-moments")
    with pytest.raises(ValueError, match="unknown experiment"):
        osc.get_experiment("moons")
    cfg = _tiny("global")
    split = osc.kuranet_data(cfg)["validation"]
    with pytest.raises(ValueError, match="key"):
        KuraNetTask(cfg, validation=split)
    with pytest.raises(ValueError, match="momentum"):
        osc.configure_experiment("cluster", optim={"momentum": 0.5})  # Adam takes none
    with pytest.raises(ValueError, match="splits"):
        osc.train_experiment(cfg, jax.random.key(0), data={"train": split})


@pytest.mark.parametrize("networks", [1, 2])
def test_task_loss_is_the_window_of_one_continuous_euler_run(networks):
    """Burn-in (no gradient) then the window (with gradient) is one Euler run of
    burn_in + gd - 2 steps from theta = 0; the loss is the circular variance of its last gd
    points, averaged over the networks of the batch."""
    cfg = _tiny("global-field", burn_in=7, gd=5, networks_per_step=networks)
    data = osc.kuranet_data(cfg)["train"]
    batch = {k: v[: networks * 12] for k, v in data.items()}
    model = osc.make_kuranet(cfg, jax.random.key(1))
    loss, aux = eqx.filter_jit(KuraNetTask(cfg).loss)(model, batch, jax.random.key(2))

    @eqx.filter_jit
    def reference(model, x):
        field = Kuramoto(model(x), omega=x[:, 1], field=x[:, 0])
        window = simulate(field, jnp.zeros(12), dt=cfg.alpha, steps=7 + 5 - 2)[-5:]
        return circular_variance(window), jnp.mean(order_parameter(window))

    losses, rs = zip(
        *(reference(model, batch["x"][12 * i : 12 * (i + 1)]) for i in range(networks)),
        strict=True,
    )
    assert float(loss) == pytest.approx(float(np.mean(losses)), rel=1e-5)
    assert float(aux["order_parameter"]) == pytest.approx(float(np.mean(rs)), rel=1e-5)


@pytest.mark.heavy  # over 15 s on 2 cores
def test_validation_scores_the_same_held_out_networks_whatever_the_key():
    cfg = _tiny("cluster", num_classes=3, eval_networks=3)
    split = osc.kuranet_data(cfg)["validation"]
    task = KuraNetTask(cfg, validation=split, key=jax.random.key(3))
    assert task.validates and task.draws
    assert task.held_out["x"].shape == (3, 12, 2) and task.held_out["theta0"].shape == (3, 12)
    model = osc.make_kuranet(cfg, jax.random.key(4))
    first = task.evaluate(model, jax.random.key(5))
    assert task.evaluate(model, jax.random.key(6)) == first
    held = task.held_out

    @eqx.filter_jit
    def one(model, x, theta0, labels):
        return task.network_loss(task.phases(model, x, theta0), labels)

    losses = [one(model, held["x"][i], held["theta0"][i], held["labels"][i]) for i in range(3)]
    assert first["loss"] == pytest.approx(float(np.mean(losses)), rel=1e-5)
    assert first["loss_sd"] == pytest.approx(float(np.std(losses)), rel=1e-4, abs=1e-7)
    image = task.visualise(model, jax.random.key(7))["phases"]
    assert image.shape == (3, 12, cfg.gd) and 0 <= image.min() and image.max() <= 1
    assert not KuraNetTask(cfg).validates


def small_experiment(**extra):
    return osc.configure_experiment(
        "global",
        num_units=12,
        num_samples=64,
        hidden=8,
        burn_in=4,
        gd=4,
        eval_networks=3,
        eval_burn_in=2,
        eval_window=6,
        size_eval=(20, 70),  # 70 > the 64 test samples: left out
        optim={"learning_rate": 0.5},
        train={"steps": 16, "log_every": 4, "validate_every": 4, "progress": False},
        **extra,
    )


@pytest.mark.heavy
def test_training_keeps_the_model_with_the_lowest_validation_loss_and_compares_it_with_control():
    cfg = small_experiment()
    key = jax.random.key(8)
    result = osc.train_experiment(cfg, key)
    history = result.training.validation
    np.testing.assert_array_equal(history["step"], [4, 8, 12, 16])
    best = int(np.argmin(history["loss"]))
    assert result.training.selected_by == result.metrics["selected_by"] == "validation"
    assert result.metrics["best_step"] == history["step"][best]
    assert result.metrics["validation_loss_best"] == pytest.approx(history["loss"][best])
    # the returned model scores the best validation loss on the same held-out networks
    k_model, _, k_eval = jax.random.split(key, 3)
    data = osc.kuranet_data(cfg)
    task = KuraNetTask(cfg, validation=data["validation"], key=jax.random.fold_in(k_eval, 0))
    again = task.evaluate(result.trained, jax.random.key(0))["loss"]
    assert again == pytest.approx(history["loss"][best], rel=1e-5)
    # the control is the untrained initialisation, evaluated on the same test networks
    control = osc.make_kuranet(cfg, k_model)
    for a, b in zip(
        jax.tree_util.tree_leaves(result.control), jax.tree_util.tree_leaves(control), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert set(result.evaluations) == {"test", "long", "size20"}
    ev = osc.evaluate_kuranet(
        control,
        cfg,
        data["test"],
        jax.random.fold_in(k_eval, 12),
        networks=3,
        num_units=12,
        burn_in=2,
        window=6,
    )
    assert result.metrics["long_loss_control"] == pytest.approx(ev["loss"], rel=1e-6)
    assert result.evaluations["long"]["control"]["order_parameter"].shape == (6,)
    assert len(result.training.losses) == 16 and result.phase_map is None


@pytest.mark.heavy
def test_several_seeds_train_as_one_ensemble_whose_first_member_is_the_single_run():
    key = jax.random.key(8)
    single = osc.train_experiment(small_experiment(), key)
    three = osc.train_experiment(small_experiment(num_seeds=3), key)
    assert len(three.seeds) == 3 and single.seeds == []
    first = three.seeds[0]
    for name, value in single.metrics.items():
        if isinstance(value, float) and name not in ("train_seconds", "steps_per_second"):
            assert first[name] == pytest.approx(value, rel=1e-5), name
    # the reported seed is the one with the lowest validation loss, with means over seeds
    best = int(np.argmin([m["validation_loss_best"] for m in three.seeds]))
    assert three.metrics["best_seed"] == best
    assert three.metrics["validation_loss_best"] == three.seeds[best]["validation_loss_best"]
    losses = [m["long_loss_trained"] for m in three.seeds]
    assert three.metrics["long_loss_trained_mean"] == pytest.approx(np.mean(losses))
    assert three.metrics["long_loss_trained_std"] == pytest.approx(np.std(losses))
    assert len({m["long_loss_control"] for m in three.seeds}) == 3  # independent initialisations
