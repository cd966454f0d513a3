"""NCA models: identity at init, fire rate, alive masking, shapes/dtypes, variants, save/load,
files of diffdyn 0.1.0, fixed arrays."""

import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.scipy.stats import norm

from diffdyn.common import AbstractModel, FixedMask, TrainableMask
from diffdyn.nca import (
    KANCA,
    NCA,
    AbstractNCA,
    Cells,
    GatedNCA,
    GaussianKAN,
    GrowTask,
    MultiScaleNCA,
    Pointwise,
    rollout_batch,
    seed_state,
)

C, H, W = 6, 12, 12
KEY = jax.random.key(0)
CELLS_ARGUMENTS = ("filters", "fire_rate", "alive_threshold", "boundary", "boundary_value")
FIXTURES = Path(__file__).parent / "fixtures" / "models_0_1_0"


def make(variant, channels=C, **kw):
    """A ``variant`` NCA; keyword arguments of `Cells` go to its cells."""
    cells = Cells(channels, **{k: kw.pop(k) for k in CELLS_ARGUMENTS if k in kw})
    kw.setdefault("hidden", 16)
    if variant is NCA:
        return NCA(cells, key=KEY, **kw)
    if variant is GatedNCA:
        return GatedNCA(cells, key=KEY, **kw)
    if variant is MultiScaleNCA:
        return MultiScaleNCA(cells, scales=(1, 2), key=KEY, **kw)
    kw.pop("hidden")
    return KANCA(cells, basis=4, key=KEY, **kw)


VARIANTS = [NCA, GatedNCA, MultiScaleNCA, KANCA]


@eqx.filter_jit
def step(model, x, key):
    """``model.step`` compiled once per model structure (shared across tests)."""
    return model.step(x, key)


@eqx.filter_jit
def roll(model, x, steps, key, every=None):
    return model.rollout(x, steps, key, every=every)


def randomise_last_layer(model, key):
    """Give every zero-initialised weight a random value, so the model is not the identity."""
    params, static = eqx.partition(model, model.trainable_filter())
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    leaves = [0.3 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    return eqx.combine(jax.tree_util.tree_unflatten(tree, leaves), static)


@pytest.fixture(scope="module")
def state():
    return jax.random.uniform(jax.random.key(1), (C, H, W))


@pytest.mark.parametrize("variant", VARIANTS)
def test_zero_initialised_nca_is_identity(variant, state):
    model = make(variant, fire_rate=1.0)
    assert np.array_equal(step(model, state, KEY), state)
    assert np.array_equal(roll(model, state, 5, KEY), state)
    # and alive masking keeps a fully alive state as it is
    alive = step(make(variant, fire_rate=1.0, alive_threshold=0.1), state.at[3].set(1.0), KEY)
    assert np.array_equal(alive, state.at[3].set(1.0))


@pytest.mark.parametrize("variant", VARIANTS)
def test_fire_rate_zero_changes_nothing_and_one_adds_the_increment(variant, state):
    model = randomise_last_layer(make(variant, fire_rate=0.0), jax.random.key(2))
    dx = model.increment(state)
    assert float(jnp.max(jnp.abs(dx))) > 1e-3  # the update is not trivially zero
    assert np.array_equal(step(model, state, KEY), state)
    full = randomise_last_layer(make(variant, fire_rate=1.0), jax.random.key(2))
    np.testing.assert_allclose(step(full, state, KEY), state + dx, rtol=1e-6, atol=1e-6)


def test_fire_rate_is_the_fraction_of_updated_cells():
    p, n = 0.3, 64
    model = randomise_last_layer(make(NCA, hidden=8, fire_rate=p), jax.random.key(3))
    x = jax.random.uniform(jax.random.key(4), (C, n, n))
    diff = step(model, x, jax.random.key(5)) != x
    changed = jnp.any(diff, axis=0)
    # one Bernoulli draw per cell: a cell changes in all channels or in none
    assert bool(jnp.all(changed == jnp.all(diff, axis=0)))
    # the number of updated cells is binomial(n², p): a 5 sigma band
    sigma = np.sqrt(p * (1 - p) / n**2)
    assert abs(float(changed.mean()) - p) < 5 * sigma


def test_alive_masking_kills_isolated_cells():
    model = make(NCA, hidden=8, fire_rate=1.0, alive_threshold=0.1)
    x = jnp.zeros((C, H, W))
    x = x.at[:, 3, 3].set(1.0)  # a mature cell
    x = x.at[:, 4, 4].set(0.05)  # an immature neighbour: kept (the mature cell is in reach)
    x = x.at[:, 9, 9].set(0.05)  # an isolated immature cell: killed
    x = x.at[0, 6, 0].set(0.7)  # colour without alpha anywhere near: killed
    y = step(model, x, KEY)
    alive = np.zeros((H, W), bool)
    alive[2:5, 2:5] = True  # 3x3 max-pool of the mature cell
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x) * alive)
    assert float(y[:, 9, 9].sum()) == 0.0 and float(y[0, 6, 0]) == 0.0
    assert float(y[:, 4, 4].sum()) == pytest.approx(0.05 * C)


def test_alive_mask_wraps_on_a_periodic_grid():
    model = make(NCA, hidden=8, alive_threshold=0.1)
    x = jnp.zeros((C, H, W)).at[3, 0, 0].set(1.0)
    alive = np.asarray(model.cells.alive(x))[0]
    assert alive[H - 1, W - 1] and alive[0, 1] and alive.sum() == 9


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_dtypes(variant, state):
    model = make(variant)
    y = step(model, state, KEY)
    assert y.shape == (C, H, W) and y.dtype == jnp.float32
    frames = roll(model, state, 6, KEY, every=2)
    assert frames.shape == (4, C, H, W)
    np.testing.assert_array_equal(frames[0], state)
    batch = rollout_batch(model, jnp.stack([state, state, state]), 4, KEY)
    assert batch.shape == (3, C, H, W) and batch.dtype == jnp.float32
    with jax.enable_x64(True):
        y64 = step(model, state.astype(jnp.float64), KEY)
        assert y64.dtype == jnp.float64


def test_bad_input_is_rejected_before_compilation(state):
    model = make(NCA, hidden=8)
    with pytest.raises(ValueError, match=r"\[6, H, W\]"):
        model.step(jnp.zeros((C + 1, H, W)), KEY)
    with pytest.raises(ValueError, match="rollout_batch"):
        model.step(jnp.zeros((2, C, H, W)), KEY)
    with pytest.raises(ValueError, match="every must divide"):
        model.rollout(state, 5, KEY, every=2)
    with pytest.raises(ValueError, match="fire_rate"):
        Cells(C, fire_rate=1.5)
    with pytest.raises(ValueError, match="boundary"):
        Cells(C, boundary="wrap")
    with pytest.raises(ValueError, match="dirichlet"):
        Cells(C, boundary="periodic", boundary_value=1.0)  # would be ignored: refused
    with pytest.raises(ValueError, match="filters"):
        Cells(C, filters=("identity", "sobel"))
    with pytest.raises(TypeError, match=r"NCA\(Cells\(6\), \.\.\.\)"):
        NCA(C, key=KEY)
    with pytest.raises(ValueError, match="divisible"):
        MultiScaleNCA(Cells(C), scales=(1, 2, 4, 8), key=KEY)
    with pytest.raises(ValueError, match="divisible by every scale"):
        MultiScaleNCA(Cells(C), scales=(1, 5), hidden=8, key=KEY).step(state, KEY)


def test_rollout_is_repeated_steps_and_checkpointing_changes_nothing(state):
    model = randomise_last_layer(make(NCA, hidden=8, fire_rate=0.5), jax.random.key(6))
    keys = jax.random.split(KEY, 4)
    x = state
    for k in keys:
        x = step(model, x, k)
    np.testing.assert_allclose(roll(model, state, 4, KEY), x, rtol=1e-6, atol=1e-6)

    def loss(m, checkpoint):
        return jnp.sum(m.rollout(state, 4, KEY, checkpoint=checkpoint) ** 2)

    g1 = eqx.filter_grad(lambda m: loss(m, False))(model)
    g2 = eqx.filter_grad(lambda m: loss(m, True))(model)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gradient_matches_finite_differences(state):
    model = randomise_last_layer(make(NCA, hidden=8, fire_rate=1.0), jax.random.key(7))
    with jax.enable_x64(True):
        x = state.astype(jnp.float64)
        m = jax.tree_util.tree_map(
            lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, model
        )

        def f(w):
            mm = eqx.tree_at(lambda n: n.net.output_layer.weight, m, w)
            return jnp.sum(jnp.sin(roll(mm, x, 3, KEY)))

        w = m.net.output_layer.weight
        g = jax.grad(f)(w)
        d = jax.random.normal(jax.random.key(8), w.shape, jnp.float64)
        eps = 1e-6
        fd = (f(w + eps * d) - f(w - eps * d)) / (2 * eps)
        assert float(jnp.sum(g * d)) == pytest.approx(float(fd), rel=1e-6)


def test_perception_kernel_is_not_trainable():
    model = make(NCA, hidden=8)
    spec = model.trainable_filter()
    assert not any(jax.tree_util.tree_leaves(spec.cells))
    assert model.num_parameters() == (4 * C) * 8 + 8 + 8 * C + C


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_round_trip(variant, state, tmp_path):
    model = randomise_last_layer(make(variant, alive_threshold=0.2, boundary="neumann"), KEY)
    model.save(tmp_path / "m.eqx")
    back = AbstractNCA.load(tmp_path / "m.eqx")
    assert type(back) is variant and back.hyperparameters() == model.hyperparameters()
    np.testing.assert_array_equal(step(back, state, KEY), step(model, state, KEY))


def test_dirichlet_boundary_holds_the_edge():
    model = randomise_last_layer(
        make(NCA, hidden=8, fire_rate=1.0, boundary="dirichlet", boundary_value=0.0), KEY
    )
    y = model.rollout(jax.random.uniform(KEY, (C, H, W)), 3, KEY)
    edge = np.ones((H, W), bool)
    edge[1:-1, 1:-1] = False
    assert np.all(np.asarray(y)[:, edge] == 0.0)
    assert model.perception.padding == "replicate"


def test_multiscale_block_is_constant_on_coarse_cells(state):
    model = randomise_last_layer(MultiScaleNCA(Cells(C), scales=(1, 2), hidden=8, key=KEY), KEY)
    dx = np.asarray(model.increment(state))
    coarse = dx[C // 2 :].reshape(C // 2, H // 2, 2, W // 2, 2)
    np.testing.assert_allclose(coarse, coarse[:, :, :1, :, :1] * np.ones((1, 1, 2, 1, 2)))
    fine = dx[: C // 2].reshape(C // 2, H // 2, 2, W // 2, 2)
    assert np.abs(fine - fine[:, :, :1, :, :1]).max() > 1e-4


def test_gated_update_is_glu(state):
    model = randomise_last_layer(GatedNCA(Cells(C), hidden=8, key=KEY), KEY)
    z = model.net(model.perception(state))
    np.testing.assert_allclose(
        model.increment(state), z[:C] * jax.nn.sigmoid(z[C:]), rtol=1e-6, atol=1e-7
    )


def test_pointwise_is_a_1x1_convolution():
    layer = Pointwise(5, 3, key=KEY)
    layer = eqx.tree_at(lambda m: m.bias, layer, jnp.arange(3.0))
    x = jax.random.normal(KEY, (5, 7, 9))
    ref = (
        jax.lax.conv_general_dilated(
            x[None],
            layer.weight[:, :, None, None],
            (1, 1),
            "VALID",
            precision=jax.lax.Precision.HIGHEST,
        )[0]
        + jnp.arange(3.0)[:, None, None]
    )
    np.testing.assert_allclose(layer(x), ref, rtol=1e-5, atol=1e-5)


def test_kan_edge_functions_are_gaussian_densities():
    layer = GaussianKAN(2, 1, basis=5, width=4.0, bound=3.0, key=KEY)
    w = jnp.zeros((1, 2, 5)).at[0, 1, 2].set(1.0)  # only edge 1 -> 0, basis k = 2 (centre 0)
    layer = eqx.tree_at(lambda m: m.weight, layer, w)
    x = jnp.linspace(-2, 2, 7)[None, :, None] * jnp.ones((2, 1, 3))
    y = layer(x)
    expected = norm.pdf(x[1], loc=0.0, scale=4.0 / 5)
    np.testing.assert_allclose(y[0], expected, rtol=1e-5)


def test_seed_state():
    s = seed_state(C, 9, 8)
    assert s.shape == (C, 9, 8) and float(s.sum()) == C - 3
    assert np.all(np.asarray(s[3:, 4, 4]) == 1.0) and np.all(np.asarray(s[:3]) == 0.0)


def test_cells_are_saved_as_a_nested_model_and_rebuilt(tmp_path):
    model = make(NCA, fire_rate=0.7, alive_threshold=0.2, boundary="dirichlet", boundary_value=0.5)
    spec = model.hyperparameters()
    assert set(spec) == {"cells", "hidden", "activation"}
    nested = spec["cells"]["__model__"]
    assert (nested["module"], nested["class"]) == ("diffdyn.nca", "Cells")
    assert nested["hyperparameters"] == {
        "channels": C,
        "filters": ["identity", "sobel_x", "sobel_y", "laplacian"],
        "fire_rate": 0.7,
        "alive_threshold": 0.2,
        "alive_channel": 3,
        "boundary": "dirichlet",
        "boundary_value": 0.5,
    }
    back = AbstractNCA.load(model.save(tmp_path / "m.eqx"))
    assert type(back.cells) is Cells and back.hyperparameters() == spec
    assert float(back.cells.bc.values) == 0.5


def test_the_committed_0_1_0_nca_file_maps_its_flat_arguments_to_cells():
    path = FIXTURES / "nca.eqx"
    old = json.loads(path.read_bytes().split(b"\n", 1)[0])["hyperparameters"]
    assert "cells" not in old and old["channels"] == 8  # the flat 0.1.0 signature
    model = AbstractModel.load(path)
    assert type(model) is NCA and (model.hidden, model.activation) == (16, "relu")
    cells = {k: v for k, v in old.items() if k not in ("hidden", "activation")}
    assert model.cells.hyperparameters() == cells  # hyperparameters() gives JSON lists
    # the loaded model is the new constructor's model with the file's leaves
    fresh = NCA(Cells(8), hidden=16, key=jax.random.key(5))
    assert jax.tree_util.tree_structure(fresh) == jax.tree_util.tree_structure(model)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_0_1_0_file_of_every_variant_loads(variant, state, tmp_path):
    model = randomise_last_layer(make(variant, alive_threshold=0.2, boundary="neumann"), KEY)
    new = model.hyperparameters()
    flat = {k: v for k, v in new.items() if k != "cells"}
    flat.update(new["cells"]["__model__"]["hyperparameters"])  # as 0.1.0 recorded them
    module = "nca.model" if variant is NCA else "nca.variants"
    header = {"format": "diffdyn-model/1", "module": module, "class": variant.__name__}
    path = tmp_path / "old.eqx"
    with path.open("wb") as f:
        f.write(json.dumps({**header, "hyperparameters": flat}).encode() + b"\n")
        eqx.tree_serialise_leaves(f, model)
    back = AbstractNCA.load(path)
    assert type(back) is variant and back.hyperparameters() == new
    np.testing.assert_array_equal(step(back, state, KEY), step(model, state, KEY))


def _fixed_arrays(model):
    arrays = {"perception kernel": model.cells.perception.kernel, "boundary": model.cells.bc}
    if isinstance(model, KANCA):
        arrays["kan centres"] = (model.inner.centres, model.outer.centres)
    return jax.tree_util.tree_map(np.asarray, eqx.filter(arrays, eqx.is_array))


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixed_arrays_stay_fixed_under_a_plain_adam_loop(variant, state):
    """Every inexact leaf is differentiated and updated, as a loop without our filter would:
    the stencils, the Dirichlet values and the KAN centres get a zero gradient and stay."""
    model = randomise_last_layer(
        make(variant, fire_rate=1.0, boundary="dirichlet", boundary_value=0.3), KEY
    )
    initial, before = model, _fixed_arrays(model)
    target = jnp.zeros((C, H, W))

    def loss(m):
        return jnp.mean((m.rollout(state, 2, KEY) - target) ** 2)

    optimiser = optax.adam(0.05)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_inexact_array))
    for _ in range(3):
        grads = eqx.filter_grad(loss)(model)
        for leaf in jax.tree_util.tree_leaves(_fixed_arrays(grads)):
            assert not np.any(leaf)  # exactly zero
        updates, opt_state = optimiser.update(grads, opt_state)
        model = eqx.apply_updates(model, updates)
    after = _fixed_arrays(model)
    for a, b in zip(
        jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(after), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    trained = jax.tree_util.tree_leaves(eqx.filter(model, model.trainable_filter()))
    start = jax.tree_util.tree_leaves(eqx.filter(initial, initial.trainable_filter()))
    assert any(np.any(np.asarray(a) != np.asarray(b)) for a, b in zip(trained, start, strict=True))


def test_the_grow_target_gets_no_gradient():
    task = GrowTask(jnp.ones((4, H, W)), rollout_steps=2)
    model = randomise_last_layer(make(NCA, fire_rate=1.0), KEY)
    batch = jnp.stack([task.seed(C)] * 2)
    grads = eqx.filter_grad(lambda t: t.loss(model, batch, KEY)[0])(task)
    assert grads.target.shape == (4, H, W) and not np.any(np.asarray(grads.target))


def test_rollout_frames_take_raw_and_typed_keys_alike():
    from diffdyn.nca import NCA, Cells

    model = NCA(Cells(8), hidden=16, key=jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (8, 12, 12))
    raw = model.rollout(x, 32, jax.random.PRNGKey(4), every=8)
    typed = model.rollout(x, 32, jax.random.wrap_key_data(jax.random.PRNGKey(4)), every=8)
    assert raw.shape == (5, 8, 12, 12)
    np.testing.assert_array_equal(raw, typed)
    np.testing.assert_array_equal(raw[-1], model.rollout(x, 32, jax.random.PRNGKey(4)))


def _mask(kind):
    """A mask of the 12 x 10 grid for every channel: a hard disc, trainable logits, or none."""
    if kind is None:
        return None
    rows, cols = np.mgrid[:12, :10]
    disc = ((rows - 5.5) ** 2 + (cols - 4.5) ** 2 < 16).astype(float)
    if kind == "hard":
        return FixedMask(disc)
    return TrainableMask(4.0 * disc - 2.0 + 0.1 * np.arange(10))


@pytest.mark.parametrize(
    "boundary, alive_threshold, mask",
    [
        ("periodic", None, None),
        ("neumann", 0.1, None),
        ("periodic", None, "hard"),
        ("dirichlet", 0.1, "trainable"),
    ],
)
def test_the_channels_last_rollout_equals_the_step_loop(boundary, alive_threshold, mask):
    """`NCA.rollout` keeps its state channels-last between steps; the result, its frames and
    its gradient (a trainable mask's logits included) equal those of the channels-first step
    loop up to float32 rounding, with and without a mask."""
    cells = Cells(
        6, fire_rate=0.5, alive_threshold=alive_threshold, boundary=boundary, mask=_mask(mask)
    )
    model = NCA(cells, hidden=16, key=jax.random.key(0))
    weight = 0.1 * jax.random.normal(jax.random.key(1), model.net.output_layer.weight.shape)
    model = eqx.tree_at(lambda m: m.net.output_layer.weight, model, weight)
    assert model._rolls_channels_last()
    x0 = jax.random.uniform(jax.random.key(2), (6, 12, 10))
    key = jax.random.key(3)

    def loop(m):
        x = x0
        for k in jax.random.split(key, 6):
            x = m.step(x, k)
        return x

    np.testing.assert_allclose(model.rollout(x0, 6, key), loop(model), atol=2e-6)
    frames = model.rollout(x0, 6, key, every=3)
    assert frames.shape == (3, 6, 12, 10)
    np.testing.assert_allclose(frames[-1], loop(model), atol=2e-6)
    np.testing.assert_array_equal(frames[0], x0)

    def loss(f):
        return lambda m: jnp.sum(f(m) ** 2)

    fast = eqx.filter_grad(loss(lambda m: m.rollout(x0, 6, key, checkpoint=True)))(model)
    slow = eqx.filter_grad(loss(loop))(model)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(slow), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
