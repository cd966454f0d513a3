"""KuraNet's remaining reference options: Cohn's loss, Brede's c_x logged in training and
validation, sub-sampled populations (rand_inds) and size generalisation."""

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn import oscillators as osc
from diffdyn.common import TensorBoardLogger, Trainer, read_events
from diffdyn.oscillators import (
    KuraNetTask,
    SubsampledNetwork,
    circular_variance,
    cohn_loss,
    feature_assortativity,
    simulate,
    subsample_nodes,
)


def _tiny(name="global-field", **extra):
    values = dict(num_units=8, num_samples=64, hidden=4, burn_in=4, gd=3, eval_networks=2)
    values.update(extra)
    return osc.configure_experiment(name, **values)


# ----------------------------------------------------------------------------- Cohn's loss
def test_cohn_loss_closed_form():
    # t = 0: group A locked at 0, group B locked at pi / 2 -> R = 1, 1; chord 2 sin(pi / 4)
    # t = 1: group A at 0 and pi / 2 (R = 1/sqrt 2, psi = pi / 4), group B at pi (R = 1)
    theta = jnp.array([[0.0, 0.0, np.pi / 2, np.pi / 2], [0.0, np.pi / 2, np.pi, np.pi]])
    masks = jnp.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    t0 = math.log(2) - math.log(2 * math.sin(math.pi / 4) + 1e-5)
    t1 = (
        (1 - (1 / math.sqrt(2) + 1) / 2)
        + math.log(2)
        - math.log(2 * math.sin(3 * math.pi / 8) + 1e-5)
    )
    assert float(cohn_loss(theta, masks)) == pytest.approx((t0 + t1) / 2, rel=1e-5)
    # three locked groups in splay: every chord is sqrt 3; groups in antiphase: ~0
    splay = jnp.repeat(jnp.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]), 2)[None]
    masks3 = osc.one_hot_groups(jnp.repeat(jnp.arange(3), 2), 3)
    expected = math.log(2) - math.log(math.sqrt(3) + 1e-5)
    assert float(cohn_loss(splay, masks3)) == pytest.approx(expected, rel=1e-5)
    anti = jnp.array([[0.0, 0.0, np.pi, np.pi]])
    assert abs(float(cohn_loss(anti, masks))) < 1e-5
    with pytest.raises(ValueError, match="G >= 2"):
        cohn_loss(theta, masks[:1])


def test_cohn_is_a_selectable_loss_of_the_task():
    with pytest.raises(ValueError, match="needs num_classes >= 2"):
        _tiny("cluster", loss="cohn", num_classes=1)
    cfg = _tiny("cluster", loss="cohn", num_classes=3)
    task = KuraNetTask(cfg)
    theta = jax.random.normal(jax.random.key(0), (3, 8))
    labels = jnp.arange(8) % 3
    expected = cohn_loss(theta, osc.one_hot_groups(labels, 3))
    assert float(task.network_loss(theta, labels)) == pytest.approx(float(expected))


# ----------------------------------------------------------------------------- c_x
@pytest.mark.heavy
def test_cx_is_the_aux_of_each_step_and_logged_in_training_and_validation(tmp_path):
    cfg = _tiny(
        train={"steps": 4, "log_every": 2, "validate_every": 2, "progress": False},
        optim={"learning_rate": 0.1},
    )
    data = osc.kuranet_data(cfg)
    model = osc.make_kuranet(cfg, jax.random.key(1))
    task = KuraNetTask(cfg, validation=data["validation"], key=jax.random.key(2))
    batch = {k: v[:8] for k, v in data["train"].items()}
    _, aux = eqx.filter_jit(task.loss)(model, batch, jax.random.key(3))
    x = batch["x"]
    assert float(aux["cx"]) == pytest.approx(float(feature_assortativity(model(x), x)), rel=1e-5)
    held = task.held_out["x"]
    direct = np.mean([float(feature_assortativity(model(h), h)) for h in held])
    assert task.evaluate(model, jax.random.key(4))["cx"] == pytest.approx(direct, rel=1e-5)
    # both reach TensorBoard: train/cx every step, validation/* at each validation
    logger = TensorBoardLogger(tmp_path)
    Trainer(task, cfg.optim, config=cfg.train, logger=logger).fit(
        model, data["train"], jax.random.key(5)
    )
    logger.close()
    tags = {}
    for path in tmp_path.glob("events.out.tfevents.*"):
        for event in read_events(path):
            for v in event.summary.value:
                tags.setdefault(v.tag, set()).add(event.step)
    assert tags["train/cx"] == {0, 1, 2, 3}
    for name in ("loss", "loss_sd", "order_parameter", "cx"):
        assert tags[f"validation/{name}"] == {2, 4}, name
    off = dataclasses.replace(cfg, measure_cx=False)
    assert "cx" not in KuraNetTask(off).loss(model, batch, jax.random.key(3))[1]


# ----------------------------------------------------------------------------- populations
def test_subsampling_draws_distinct_nodes_and_moves_only_them():
    key = jax.random.key(7)
    draws = [np.asarray(subsample_nodes(jax.random.fold_in(key, k), 20, 6)) for k in range(5)]
    for idx in draws:
        assert len(set(idx.tolist())) == 6 and idx.min() >= 0 and idx.max() < 20
    assert len({tuple(sorted(d.tolist())) for d in draws}) == 5  # a new set every step
    np.testing.assert_array_equal(np.sort(subsample_nodes(key, 9, 9)), np.arange(9))
    with pytest.raises(ValueError, match="size must be in"):
        subsample_nodes(key, 5, 6)
    cfg = _tiny()
    model = osc.make_kuranet(cfg, jax.random.key(1))
    x = osc.kuranet_data(cfg)["train"]["x"][:20]
    theta = jax.random.uniform(jax.random.key(2), (20,), maxval=6.0)
    field = SubsampledNetwork(model, x, jax.random.key_data(key), 6, 0.1, "full")
    rate = field(3 * 0.1, theta)
    idx = draws[3]
    sub = osc.Kuramoto(model(x[idx]), omega=x[idx, 1], field=x[idx, 0])
    np.testing.assert_allclose(rate[idx], sub(0.0, theta[idx]), rtol=1e-5, atol=1e-6)
    rest = np.setdiff1d(np.arange(20), idx)
    np.testing.assert_array_equal(rate[rest], 0.0)


@pytest.mark.parametrize("name", ["global-field", "cluster"])
def test_a_population_updated_whole_is_the_direct_network(name):
    """population = num_units: every node moves every step (in a random order), which is the
    direct computation of the whole network."""
    extra = {"num_classes": 3} if name == "cluster" else {}
    direct = _tiny(name, **extra)
    whole = dataclasses.replace(direct, population=8)
    data = osc.kuranet_data(direct)["train"]
    batch = {k: v[:8] for k, v in data.items()}
    model = osc.make_kuranet(direct, jax.random.key(1))
    assert KuraNetTask(whole).subsample == 8 and KuraNetTask(direct).subsample == 0
    a, _ = eqx.filter_jit(KuraNetTask(direct).loss)(model, batch, jax.random.key(2))
    b, _ = eqx.filter_jit(KuraNetTask(whole).loss)(model, batch, jax.random.key(2))
    assert float(b) == pytest.approx(float(a), rel=1e-5, abs=1e-7)


@pytest.mark.heavy
def test_a_subsampled_population_loss_is_the_circular_variance_of_the_whole_population():
    cfg = _tiny(population=24, num_samples=64)
    with pytest.raises(ValueError, match="population must be 0 or >= num_units"):
        dataclasses.replace(cfg, population=5)
    with pytest.raises(ValueError, match="delayed networks"):
        _tiny("global-delay", population=24)
    task = KuraNetTask(cfg)
    assert (task.num_units, task.subsample) == (24, 8)
    assert task.augmenter().batch_size == 24  # one population per network
    data = osc.kuranet_data(cfg)["train"]
    batch = {k: v[:24] for k, v in data.items()}
    model = osc.make_kuranet(cfg, jax.random.key(1))
    key = jax.random.key(2)
    loss_and_grad = eqx.filter_value_and_grad(lambda m: task.loss(m, batch, key), has_aux=True)
    (loss, aux), grads = eqx.filter_jit(loss_and_grad)(model)
    x = batch["x"]

    @eqx.filter_jit
    def by_hand(model):
        """Burn-in, then the window, of the sub-sampled Euler run of all 24 nodes from 0."""
        k_net = jax.random.split(key, 1)[0]
        k_burn, k_window = jax.random.split(jax.random.fold_in(k_net, 1))
        burn = SubsampledNetwork(model, x, jax.random.key_data(k_burn), 8, cfg.alpha, "full")
        theta = simulate(burn, jnp.zeros(24), dt=cfg.alpha, steps=cfg.burn_in - 1)[-1]
        win = SubsampledNetwork(model, x, jax.random.key_data(k_window), 8, cfg.alpha, "full")
        return simulate(win, theta, dt=cfg.alpha, steps=cfg.gd - 1)

    window = by_hand(model)
    assert window.shape == (cfg.gd, 24)
    assert float(loss) == pytest.approx(float(circular_variance(window)), rel=1e-5)
    x8 = x[:8]
    assert float(aux["cx"]) == pytest.approx(float(feature_assortativity(model(x8), x8)), rel=1e-5)
    assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))
    assert float(jnp.abs(grads.w3).sum()) > 0


@pytest.mark.heavy
def test_size_generalisation_with_row_chunks_matches_the_direct_evaluation():
    cfg = _tiny(num_samples=64, eval_burn_in=3, eval_window=4)
    split = osc.kuranet_data(cfg)["test"]
    model = osc.make_kuranet(cfg, jax.random.key(1))
    key = jax.random.key(3)
    chunked = osc.evaluate_sizes(model, cfg, split, key, sizes=(64,), row_chunk=3)
    direct = osc.evaluate_kuranet(
        model,
        cfg,
        split,
        jax.random.fold_in(key, 64),
        networks=1,
        num_units=64,
        burn_in=3,
        window=4,
        subsample=0,
    )
    assert set(chunked) == {64} and chunked[64]["example"]["phases"].shape == (4, 64)
    assert chunked[64]["loss"] == pytest.approx(direct["loss"], rel=1e-5)
    sub = osc.evaluate_sizes(model, cfg, split, key, sizes=(64,), subsample=16)
    assert np.isfinite(sub[64]["loss"]) and sub[64]["loss"] != chunked[64]["loss"]
    with pytest.raises(ValueError, match="sizes must be in"):
        osc.evaluate_sizes(model, cfg, split, key, sizes=(65,))
    np.testing.assert_allclose(
        model.with_row_chunk(3)(split["x"][:10]), model(split["x"][:10]), rtol=1e-5
    )
