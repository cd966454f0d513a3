"""AbstractModel: save/load round trip, trainable filter, parameter count."""

import json
import shutil
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffdyn.common import (
    AbstractModel,
    NullLogger,
    SolveConfig,
    TrainConfig,
    Trainer,
    fixed_field,
    num_parameters,
    solve,
    trainable_filter,
)
from diffdyn.common.neural_de import LinearField, MLPField
from diffdyn.pde import GrayScott


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


# ----------------------------------------------------------------- files of earlier versions
FIXTURES = Path(__file__).parent / "fixtures" / "models_0_1_0"
OLD_FILES = {
    "gray_scott_solver": "PDESolver",
    "nca": "NCA",
    "rate_rnn": "RateRNN",
    "kuranet": "KuraNet",
    "ode_classifier": "ODEClassifier",
    "linear_ode": "LinearField",
}


@pytest.mark.parametrize("name", sorted(OLD_FILES))
def test_files_written_before_the_namespace_load_with_their_leaves(name):
    path = FIXTURES / f"{name}.eqx"
    header = json.loads(path.read_bytes().split(b"\n", 1)[0])
    assert not header["module"].startswith("diffdyn")
    model = AbstractModel.load(path)
    assert type(model).__name__ == OLD_FILES[name]
    assert type(model).__module__.startswith("diffdyn.")
    stored = np.load(FIXTURES / f"{name}.leaves.npz")
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(model) if eqx.is_array(leaf)]
    assert len(leaves) == len(stored.files)
    for i, leaf in enumerate(leaves):
        np.testing.assert_array_equal(np.asarray(leaf), stored[f"arr_{i}"])


def test_an_old_pde_solver_file_reproduces_its_trajectory():
    solver = AbstractModel.load(FIXTURES / "gray_scott_solver.eqx")
    x0 = jnp.stack([jnp.ones((8, 8)), jnp.zeros((8, 8)).at[3:5, 3:5].set(0.5)])
    frames = solver(x0, jnp.linspace(0.0, 5.0, 3))
    np.testing.assert_allclose(
        frames, np.load(FIXTURES / "gray_scott_solver.frames.npy"), rtol=1e-6
    )


@pytest.mark.heavy  # over 15 s on 2 cores
def test_an_old_checkpoint_resumes_to_the_uninterrupted_result(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "linear_run", run)
    stored = np.load(FIXTURES / "linear_run.data.npz")
    y0, data = jnp.asarray(stored["y0"]), jnp.asarray(stored["data"])
    ts = jnp.linspace(0.0, 1.0, 5)

    def loss(model, batch, key):
        starts, target = batch
        return jnp.mean(
            (jax.vmap(lambda y: solve(model, y, ts, solver="tsit5"))(starts) - target) ** 2
        )

    keys = jax.random.split(jax.random.key(42), 8)
    config = TrainConfig(steps=10, log_every=5, checkpoint_every=5)
    trainer = Trainer(loss, optax.adam(0.05), config=config, logger=NullLogger(), out=run)
    result = trainer.fit(LinearField(2, key=keys[4]), (y0, data), keys[7], resume=True)
    assert result.steps == 10
    # bitwise on the JAX release that wrote the fixture; other releases may round differently
    np.testing.assert_allclose(
        np.asarray(result.model.matrix),
        np.load(FIXTURES / "linear_run.matrix_after_10.npy"),
        rtol=1e-5,
    )


def test_new_files_name_the_public_package_not_the_private_module(tmp_path):
    path = GrayScott().save(tmp_path / "gs.eqx")
    header = json.loads(path.read_bytes().split(b"\n", 1)[0])
    assert (header["module"], header["class"]) == ("diffdyn.pde", "GrayScott")
    assert isinstance(AbstractModel.load(path), GrayScott)


def test_a_file_naming_a_module_outside_diffdyn_is_refused_without_importing_it(
    tmp_path, monkeypatch
):
    marker = tmp_path / "imported"
    (tmp_path / "evil_models.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from diffdyn.common import AbstractModel\n"
        "class Evil(AbstractModel):\n    def __init__(self, *, key): pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in ("evil_models", "os", "subprocess"):
        crafted = tmp_path / f"{module}.eqx"
        header = {
            "format": "diffdyn-model/1",
            "module": module,
            "class": "Evil",
            "hyperparameters": {},
        }
        crafted.write_bytes(json.dumps(header).encode() + b"\n")
        with pytest.raises(ValueError, match="outside diffdyn"):
            AbstractModel.load(crafted)
    assert not marker.exists() and "evil_models" not in sys.modules


def test_a_file_naming_a_missing_or_non_model_diffdyn_class_is_refused(tmp_path):
    for module, cls, error in (
        ("diffdyn.nowhere", "X", ValueError),
        ("diffdyn.pde", "__class__", ValueError),
        ("diffdyn.pde", "make_pde", TypeError),
        ("diffdyn.pde", "A.B(1)", ValueError),
    ):
        crafted = tmp_path / "m.eqx"
        header = {
            "format": "diffdyn-model/1",
            "module": module,
            "class": cls,
            "hyperparameters": {},
        }
        crafted.write_bytes(json.dumps(header).encode() + b"\n")
        with pytest.raises(error):
            AbstractModel.load(crafted)


class Outer(AbstractModel):
    """A model whose constructor takes a model and a config object."""

    inner: Tiny
    solve: SolveConfig = eqx.field(static=True)
    scale: jax.Array

    def __init__(self, inner: Tiny, solve: SolveConfig, *, key):
        self.inner = inner
        self.solve = solve
        self.scale = jax.random.normal(key, ())


def test_constructors_may_take_models_and_configs_which_save_as_nested_specs(tmp_path):
    model = Outer(
        Tiny(3, "sin", key=jax.random.key(1)),
        SolveConfig(solver="rk4", dt0=0.05, adaptive=False),
        key=jax.random.key(2),
    )
    path = model.save(tmp_path / "outer.eqx")
    header = json.loads(path.read_bytes().split(b"\n", 1)[0])
    nested = header["hyperparameters"]
    assert nested["inner"]["__model__"]["hyperparameters"] == {"width": 3, "activation": "sin"}
    assert nested["solve"]["__config__"]["module"] == "diffdyn.common"
    back = AbstractModel.load(path)
    assert back.solve == model.solve and back.inner.activation == "sin"
    x = jnp.asarray([0.1, 0.2])
    np.testing.assert_array_equal(back.inner(x), model.inner(x))
    assert float(back.scale) == float(model.scale)


def test_a_discovery_mlp_file_of_0_1_0_loads_as_the_one_mlp_field(tmp_path):
    """0.1.0 had its own GELU MLPField(state_dim, width, depth) in oscillators.discovery."""
    field = MLPField(2, 8, 1, activation="gelu", key=jax.random.key(3))
    path = field.save(tmp_path / "new.eqx")
    header, leaves = path.read_bytes().split(b"\n", 1)
    old = {
        "format": "diffdyn-model/1",
        "module": "oscillators.discovery",
        "class": "MLPField",
        "hyperparameters": {"state_dim": 2, "width": 8, "depth": 1},
    }
    (tmp_path / "old.eqx").write_bytes(json.dumps(old).encode() + b"\n" + leaves)
    back = AbstractModel.load(tmp_path / "old.eqx")
    assert isinstance(back, MLPField) and back.activation == "gelu"
    y = jnp.asarray([0.3, -0.2])
    np.testing.assert_array_equal(back(0.0, y), field(0.0, y))


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_or_missing_byte_anywhere_is_refused(tmp_path):
    """Model files and checkpoints carry a SHA-256 of header and leaves: one flipped bit in
    the header's numbers or in the arrays, or a truncated file, is found before loading."""
    from diffdyn.common import load_checkpoint, save_checkpoint

    model = Tiny(4, key=jax.random.key(0))
    good = model.save(tmp_path / "m.eqx").read_bytes()
    header_len = good.index(b"\n")
    for name, offset in (
        ("header", good.index(b'"width": 4') + len(b'"width": ')),
        ("leaves", len(good) - 3),
    ):
        path = tmp_path / f"{name}.eqx"
        path.write_bytes(good)
        _flip(path, offset)
        with pytest.raises(ValueError, match="corrupt: its checksum"):
            Tiny.load(path)
    truncated = tmp_path / "short.eqx"
    truncated.write_bytes(good[: header_len + 40])
    with pytest.raises(ValueError, match="corrupt"):
        Tiny.load(truncated)
    # checkpoints alike
    tree = {"w": jnp.arange(6.0), "step": jnp.asarray(3)}
    ckpt = save_checkpoint(tmp_path / "c.ckpt", tree, {"step": 3})
    loaded, header = load_checkpoint(ckpt, tree)
    np.testing.assert_array_equal(loaded["w"], tree["w"])
    assert header["step"] == 3 and len(header["sha256"]) == 64
    _flip(ckpt, len(ckpt.read_bytes()) - 2)
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(ckpt, tree)


def test_hyperparameters_are_checked_against_the_file_before_allocating(tmp_path):
    """A crafted file naming a RateRNN of 20,000 neurons (a 1.6 GB weight matrix) with a
    valid checksum is refused from its size alone, without allocating the matrix."""
    import hashlib
    import json
    import resource

    from diffdyn.rnn import RateRNN

    path = RateRNN(8, key=jax.random.key(0)).save(tmp_path / "rnn.eqx")
    line, data = path.read_bytes().split(b"\n", 1)
    header = json.loads(line)
    del header["sha256"]
    header["hyperparameters"]["n"] = 20000
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    header["sha256"] = hashlib.sha256(canonical + data).hexdigest()
    crafted = tmp_path / "crafted.eqx"
    crafted.write_bytes(json.dumps(header).encode() + b"\n" + data)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match=r"describes \d+ bytes of arrays but the file holds"):
        RateRNN.load(crafted)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 400_000  # the weight matrix alone would be 1,600,000 kB


def test_crafted_headers_are_one_clear_error(tmp_path):
    """Whatever a (checksummed) header says, loading fails with a ValueError or TypeError
    naming the file, never a KeyError, AttributeError or an import of foreign code."""
    import hashlib

    good = Tiny(4, key=jax.random.key(0)).save(tmp_path / "m.eqx")
    line, data = good.read_bytes().split(b"\n", 1)
    base = json.loads(line)
    del base["sha256"]

    def crafted(**changes):
        header = {**base, **changes}
        canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        header["sha256"] = hashlib.sha256(canonical + data).hexdigest()
        path = tmp_path / "crafted.eqx"
        path.write_bytes(json.dumps(header).encode() + b"\n" + data)
        return path

    cases = [
        ({"hyperparameters": {"width": {"__config__": {"module": "diffdyn.common"}}}}, ValueError),
        ({"module": "os", "class": "system"}, ValueError),
        ({"module": "diffdyn.pde", "class": "nothing"}, TypeError),
        ({"module": "diffdyn.pde", "class": "__init__"}, ValueError),
        ({"hyperparameters": {"width": "four"}}, TypeError),
        ({"hyperparameters": {"width": 5}}, ValueError),  # the arrays no longer match
        ({"format": "diffdyn-model/9"}, ValueError),
    ]
    for changes, error in cases:
        with pytest.raises(error, match="crafted.eqx|not a|must be|width"):
            AbstractModel.load(crafted(**changes))


def test_a_model_loads_in_the_precision_it_was_saved_in(tmp_path):
    """A float32 file loads as float32 where float64 is on; a float64 file where float64 is
    off is refused with the one line that says how to load it, never narrowed silently."""
    with jax.enable_x64(False):
        single = Tiny(4, key=jax.random.key(0))
        single.save(tmp_path / "single.eqx")
    with jax.enable_x64(True):
        loaded = Tiny.load(tmp_path / "single.eqx")
        assert loaded.kernel.dtype == jnp.float32
        np.testing.assert_array_equal(loaded.kernel, single.kernel)
        double = Tiny(4, key=jax.random.key(0))
        assert double.kernel.dtype == jnp.float64
        double.save(tmp_path / "double.eqx")
        assert Tiny.load(tmp_path / "double.eqx").kernel.dtype == jnp.float64
    with (
        jax.enable_x64(False),
        pytest.raises(ValueError, match="holds (float|int)64 arrays; enable"),
    ):
        Tiny.load(tmp_path / "double.eqx")
