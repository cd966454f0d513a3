"""A convolutional neural ODE on scikit-learn's 8x8 digits (no download)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import OptimConfig, SolveConfig, TrainConfig, Trainer
from diffdyn.common.neural_de import (
    ClassificationTask,
    ConvODEClassifier,
    ConvODEField,
    digits,
)

pytest.importorskip("sklearn")


def test_the_digits_are_split_once_each_and_scaled_to_the_unit_interval():
    splits = digits(key=jax.random.key(0))
    sizes = [len(labels) for _, labels in splits]
    assert sum(sizes) == 1797 and sizes == [1797 - 179 - 359, 179, 359]
    images = jnp.concatenate([x for x, _ in splits])
    assert images.shape[1:] == (1, 8, 8) and float(images.min()) == 0 and float(images.max()) == 1
    flat = np.asarray(images.reshape(1797, -1))
    assert len(np.unique(flat, axis=0)) > 1700  # the splits share no image (few duplicates)
    with pytest.raises(ValueError, match="sum < 1"):
        digits(validation_fraction=0.5, test_fraction=0.5, key=jax.random.key(0))


def test_the_field_is_translation_equivariant_away_from_the_border_and_takes_the_time():
    field = ConvODEField(2, 4, key=jax.random.key(1))
    h = jax.random.normal(jax.random.key(2), (2, 12, 12)).at[:, :3].set(0).at[:, -3:].set(0)
    h = h.at[:, :, :3].set(0).at[:, :, -3:].set(0)
    shifted = jnp.roll(h, 1, axis=2)
    inner = (slice(None), slice(3, -3), slice(3, -3))  # out of reach of the zero padding
    want = jnp.roll(field(0.3, h), 1, axis=2)[inner]
    np.testing.assert_allclose(field(0.3, shifted)[inner], want, atol=1e-6)
    assert not np.allclose(field(0.0, h), field(1.0, h))


def test_a_classifier_saves_and_refuses_a_wrong_image(tmp_path):
    model = ConvODEClassifier(1, (8, 8), 10, channels=4, width=8, key=jax.random.key(3))
    model.save(tmp_path / "conv.eqx")
    back = ConvODEClassifier.load(tmp_path / "conv.eqx")
    x = jnp.ones((1, 8, 8))
    np.testing.assert_array_equal(back(x), model(x))
    with pytest.raises(ValueError, match=r"'image' must be \[C=1, H=8, W=8\]"):
        model(jnp.ones((8, 8)))


@pytest.mark.heavy
def test_a_conv_neural_ode_learns_the_digits():
    """600 steps reach 97.2% test accuracy on this machine (README); the bound leaves room
    for other CPUs' rounding."""
    splits = digits(key=jax.random.key(4))
    solve = SolveConfig(solver="rk4", adaptive=False, dt0=0.25, max_steps=8)
    model = ConvODEClassifier(1, (8, 8), 10, 8, 16, solve=solve, key=jax.random.key(5))
    task = ClassificationTask(splits.validation, batch_size=64)
    optim = OptimConfig("adamw", learning_rate=1e-2, schedule="cosine", weight_decay=0.01)
    config = TrainConfig(steps=600, log_every=50, progress=False)
    result = Trainer(task, optim, config=config).fit(model, splits.train, jax.random.key(6))
    x, y = splits.test
    accuracy = float(jnp.mean(jnp.argmax(eqx.filter_vmap(result.model)(x), -1) == y))
    assert accuracy >= 0.95, accuracy
