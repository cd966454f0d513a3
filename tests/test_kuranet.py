"""KuraNet: normalisations, pair batch norm, losses, gradients vs finite differences, tasks."""

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn import oscillators as osc
from diffdyn.oscillators import (
    KuraNet,
    circular_moments,
    circular_variance,
    feature_assortativity,
    normalise_coupling,
    segmentation_loss,
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
        task = osc.KuraNetTask(cfg)
        params, static = eqx.partition(model, eqx.is_inexact_array)
        key = jax.random.key(7)
        x, labels = batch["x"], batch["labels"]
        # training gradient: truncated at the window start (burn-in is stop-gradient) ...
        grads = jax.grad(lambda p: task(eqx.combine(p, static), batch, key)[0])(params)
        # ... so it must equal the derivative of the window loss from a frozen window start
        start = task.window_start(task.vector_field(model(x), x), jax.random.split(key, 1)[0], 12)

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


def test_data_distributions():
    cfg = dataclasses.replace(osc.get_experiment("global-delay"), num_samples=20000)
    data = osc.kuranet_data(cfg)["train"]["x"]
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
