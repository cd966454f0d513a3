"""AbstractModel: save/load round trip, trainable filter, parameter count."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.model import AbstractModel, fixed_field, num_parameters, trainable_filter


class Tiny(AbstractModel):
    """A model with a static hyperparameter, trainable layers and a fixed kernel."""

    width: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    layers: list
    kernel: jax.Array = fixed_field()
    steps: jax.Array

    def __init__(self, width: int, activation: str = "tanh", *, key):
        k1, k2 = jax.random.split(key)
        self.width = width
        self.activation = activation
        self.layers = [eqx.nn.Linear(2, width, key=k1), eqx.nn.Linear(width, 1, key=k2)]
        self.kernel = jnp.arange(9.0).reshape(3, 3)
        self.steps = jnp.asarray(3)

    def __call__(self, x):
        return self.layers[1](getattr(jnp, self.activation)(self.layers[0](x)))


class Other(AbstractModel):
    a: jax.Array

    def __init__(self, *, key):
        self.a = jax.random.normal(key, (2,))


class Unsaveable(AbstractModel):
    w: jax.Array

    def __init__(self, size: int, *, key):
        self.w = jnp.zeros(size)


def test_save_load_round_trip(tmp_path):
    model = Tiny(5, "sin", key=jax.random.key(3))
    path = model.save(tmp_path / "m.eqx")
    loaded = AbstractModel.load(path)
    assert isinstance(loaded, Tiny) and loaded.width == 5 and loaded.activation == "sin"
    x = jnp.asarray([0.3, -1.2])
    np.testing.assert_array_equal(loaded(x), model(x))
    np.testing.assert_array_equal(loaded.kernel, model.kernel)
    assert int(loaded.steps) == 3
    assert Tiny.load(path).width == 5
    # the file starts with a readable JSON header and contains no pickle opcodes
    header = path.read_bytes().split(b"\n", 1)[0]
    assert b'"hyperparameters": {"width": 5, "activation": "sin"}' in header


def test_load_checks_the_class_and_the_format(tmp_path):
    path = Tiny(4, key=jax.random.key(0)).save(tmp_path / "m.eqx")
    with pytest.raises(TypeError, match="not a Other"):
        Other.load(path)
    bad = tmp_path / "bad.eqx"
    bad.write_bytes(b"not json\n")
    with pytest.raises(ValueError, match="not a diffdyn model file"):
        AbstractModel.load(bad)


def test_save_requires_hyperparameters_stored_under_their_names(tmp_path):
    with pytest.raises(TypeError, match="size"):
        Unsaveable(3, key=jax.random.key(0)).save(tmp_path / "u.eqx")


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = Tiny(4, key=jax.random.key(0)).save(tmp_path / "m.eqx")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(eqx, "tree_serialise_leaves", boom)
    with pytest.raises(RuntimeError):
        Tiny(7, key=jax.random.key(1)).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.eqx"]


def test_trainable_filter_and_parameter_count():
    model = Tiny(5, key=jax.random.key(0))
    spec = trainable_filter(model)
    assert spec.kernel is False
    assert spec.steps is False  # integer leaves are never trained
    assert spec.layers[0].weight is True and spec.layers[1].bias is True
    # 2*5 + 5 + 5*1 + 1 trainable scalars; the 3x3 kernel does not count
    assert num_parameters(model) == model.num_parameters() == 21
    params, static = eqx.partition(model, spec)
    assert params.kernel is None and static.kernel is not None
    grads = eqx.filter_grad(lambda p: jnp.sum(eqx.combine(p, static)(jnp.ones(2))))(params)
    assert grads.layers[0].weight.shape == (5, 2)
