"""Ensembles: K models trained as one program equal K separate runs, member by member."""

import json
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffdyn.common import (
    AbstractTask,
    OptimConfig,
    TensorBoardLogger,
    TrainConfig,
    Trainer,
    make_mesh,
    read_events,
)


def noisy_mse(model, batch, key):
    """A loss whose value depends on the key, so that members must get their own keys."""
    x, y = batch
    pred = jax.vmap(model)(x)
    noise = 0.05 * jax.random.normal(key, y.shape)
    return jnp.mean((pred - y - noise) ** 2), {"mae": jnp.mean(jnp.abs(pred - y))}


def data():
    x = jax.random.normal(jax.random.key(1), (32, 2))
    return x, jnp.sin(x[:, :1]) + 0.5 * x[:, 1:]


def models_and_keys(k=3):
    models = [eqx.nn.MLP(2, 1, 8, 2, key=jax.random.key(10 + i)) for i in range(k)]
    keys = [jax.random.key(100 + i) for i in range(k)]
    return models, keys


def leaves(model):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]


def assert_same_model(a, b):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


# clipping by the global norm is per member: an ensemble must not couple its members
OPTIM = OptimConfig("adam", 1e-2, clip_norm=0.5, schedule="cosine")


def test_an_ensemble_of_three_equals_three_separate_runs(tmp_path):
    config = TrainConfig(steps=60, log_every=10, progress=False)
    models, keys = models_and_keys()
    separate = [
        Trainer(noisy_mse, OPTIM, config=config).fit(m, data(), k)
        for m, k in zip(models, keys, strict=True)
    ]
    logger = TensorBoardLogger(tmp_path / "tb")
    out = tmp_path / "run"
    ensemble = Trainer(noisy_mse, OPTIM, config=config, logger=logger, out=out).fit_ensemble(
        models, data(), keys
    )
    logger.close()
    assert len(ensemble.members) == 3
    for one, member in zip(separate, ensemble.members, strict=True):
        assert_same_model(member.model, one.model)
        assert_same_model(member.best_model, one.best_model)
        np.testing.assert_allclose(member.losses, one.losses, rtol=1e-5)
        assert member.best_step == one.best_step and member.selected_by == "loss"
        assert member.best_loss == pytest.approx(one.best_loss, rel=1e-5)
    # the members differ (their keys and initial models do), and the best one is reported
    assert not np.allclose(ensemble.members[0].losses, ensemble.members[1].losses)
    best = int(np.argmin([r.best_loss for r in separate]))
    assert ensemble.best_member == best and ensemble.best is ensemble.members[best]
    # per-member scalars in TensorBoard, and each member's models in its own folder
    tags = {
        v.tag
        for path in (tmp_path / "tb").glob("events*")
        for e in read_events(path)
        for v in e.summary.value
    }
    assert {f"member_{i}/train/{n}" for i in range(3) for n in ("loss", "mae")} <= tags
    for i in range(3):
        assert (out / f"member_{i}" / "model.eqx").exists()
        assert (out / f"member_{i}" / "best.eqx").exists()


class HeldOut(AbstractTask):
    """Pull w to the training targets; validation prefers w = 1."""

    def loss(self, model, batch, key):
        return jnp.mean((model - batch) ** 2)

    def evaluate(self, model, key):
        return {"loss": (model - 1.0) ** 2}


def test_members_are_validated_and_resumed_one_by_one(tmp_path):
    config = TrainConfig(steps=30, log_every=5, validate_every=1, checkpoint_every=10)
    config = TrainConfig(**{**config.__dict__, "progress": False})
    starts = [jnp.asarray(0.0), jnp.asarray(-1.0)]
    keys = [jax.random.key(0), jax.random.key(1)]
    target = jnp.full((4,), 2.0)
    separate = [
        Trainer(HeldOut(), optax.sgd(0.05), config=config).fit(w, target, k)
        for w, k in zip(starts, keys, strict=True)
    ]
    short = TrainConfig(**{**config.__dict__, "steps": 20})
    Trainer(HeldOut(), optax.sgd(0.05), config=short, out=tmp_path).fit_ensemble(
        starts, target, keys
    )
    resumed = Trainer(HeldOut(), optax.sgd(0.05), config=config, out=tmp_path).fit_ensemble(
        starts, target, keys, resume=True
    )
    for one, member in zip(separate, resumed.members, strict=True):
        assert member.selected_by == "validation"
        np.testing.assert_allclose(member.model, one.model, rtol=1e-6)
        np.testing.assert_allclose(member.best_model, one.best_model, rtol=1e-6)
        assert member.best_step == one.best_step
    with pytest.raises(ValueError, match="does not match the current model"):
        Trainer(HeldOut(), optax.sgd(0.05), config=config, out=tmp_path).fit_ensemble(
            [*starts, jnp.asarray(1.0)], target, [*keys, jax.random.key(2)], resume=True
        )


def test_ensembles_are_checked():
    config = TrainConfig(steps=2, log_every=1, progress=False)
    trainer = Trainer(noisy_mse, OPTIM, config=config)
    models, keys = models_and_keys(2)
    with pytest.raises(ValueError, match="one key per model"):
        trainer.fit_ensemble(models, data(), keys[:1])
    other = eqx.nn.MLP(2, 1, 4, 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="member 1 differs from member 0"):
        trainer.fit_ensemble([models[0], other], data(), keys)
    sharded = TrainConfig(steps=2, shard_data=True, progress=False)
    with pytest.raises(ValueError, match="shard_data must be False"):
        Trainer(noisy_mse, OPTIM, config=sharded).fit_ensemble(models, data(), keys)
    one_device = Trainer(noisy_mse, OPTIM, config=config, mesh=make_mesh(jax.devices()[:1]))
    assert one_device.fit_ensemble(models, data(), keys).best_member in (0, 1)


@pytest.mark.heavy
def test_an_ensemble_split_over_two_devices_equals_separate_runs():
    script = Path(__file__).with_name("ensemble_devices_check.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIFFDYN_")}
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        PYTHONPATH=str(script.parent.parent),
    )
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2 and out["members_per_device"] == 2  # 4 members, 2 each
    assert out["max_difference"] < 1e-5
