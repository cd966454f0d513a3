"""NCAs confined by masks: a hard mask keeps the outside at exactly 0, a soft mask holds its
cells at their values, a trainable mask learns, the boundary regulariser, save/load, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import FixedMask, TrainableMask
from diffdyn.nca import NCA, AbstractNCA, Cells, boundary_regulariser

C, H, W = 6, 10, 9
KEY = jax.random.key(0)
ROWS, COLS = np.mgrid[:H, :W]
DISC = ((ROWS - 4.5) ** 2 + (COLS - 4.0) ** 2 < 12).astype(np.float32)  # 0/1, [H, W]


def randomised(cells, key=KEY):
    """An NCA whose every trainable leaf is random (not the identity of a fresh NCA)."""
    model = NCA(cells, hidden=8, key=key)
    params, static = eqx.partition(model, model.trainable_filter())
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    leaves = [
        0.5 * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)
    ]
    return eqx.combine(jax.tree_util.tree_unflatten(tree, leaves), static)


@eqx.filter_jit
def frames(model, x, steps, key, every):
    return model.rollout(x, steps, key, every=every)


@eqx.filter_jit
def step(model, x, key):
    return model.step(x, key)


def state(key=1):
    return jax.random.uniform(jax.random.key(key), (C, H, W), minval=-1.0, maxval=1.0)


@pytest.mark.parametrize("boundary", ["periodic", "neumann"])
def test_a_hard_mask_keeps_the_outside_exactly_zero_in_rollouts_and_steps(boundary):
    model = randomised(Cells(C, fire_rate=0.5, boundary=boundary, mask=FixedMask(DISC)))
    outside = np.broadcast_to(DISC == 0, (C, H, W))
    x0 = state()  # nonzero outside: the first step clears it
    xs = np.asarray(frames(model, x0, 40, KEY, 4))  # the channels-last rollout
    assert np.all(xs[1:][:, outside] == 0.0)
    assert np.all(np.isfinite(xs)) and np.any(xs[-1][~outside] != xs[1][~outside])
    x = x0
    for k in jax.random.split(KEY, 12):  # the channels-first step
        x = step(model, x, k)
        assert np.all(np.asarray(x)[outside] == 0.0)
    assert np.any(np.asarray(x)[~outside] != np.asarray(x0)[~outside])


def test_a_soft_mask_holds_its_cells_at_their_values_exactly():
    values = np.stack([np.full((H, W), 0.25), np.linspace(0.0, 1.0, H * W).reshape(H, W)])
    mask = FixedMask(1.0 - DISC, "soft", channels=(-2, -1), values=values)
    model = randomised(Cells(C, fire_rate=0.5, mask=mask))
    held = DISC == 0
    xs = np.asarray(frames(model, state(), 30, KEY, 3))
    v = np.asarray(mask.values)  # the values as the mask stores them (float32)
    for x in xs[1:]:
        np.testing.assert_array_equal(x[-2:][:, held], v[:, held])
    # the cells outside the mask and the other channels evolve
    assert np.any(xs[-1][-2:][:, ~held] != xs[1][-2:][:, ~held])
    assert np.any(xs[-1][:-2][:, held] != xs[1][:-2][:, held])


def test_a_trainable_mask_gets_the_gradient_of_a_rollout_loss_and_of_its_coverage():
    logits = 3.0 * DISC - 1.5 + 0.1 * jax.random.normal(jax.random.key(3), (H, W))
    with jax.enable_x64(True):
        model = randomised(Cells(C, fire_rate=1.0, mask=TrainableMask(logits)))
        assert model.num_parameters() == NCA(Cells(C), hidden=8, key=KEY).num_parameters() + H * W
        x0 = state().astype(jnp.float64)

        @jax.jit
        def loss(lg):
            m = eqx.tree_at(lambda m: m.cells.mask.logits, model, lg)
            return jnp.mean(m.rollout(x0, 3, KEY) ** 2)

        lg = model.cells.mask.logits
        assert lg.dtype == jnp.float64
        grad = jax.jit(jax.grad(loss))(lg)
        assert np.any(np.asarray(grad) != 0.0)
        # the logits are a trainable leaf: a filtered gradient of the model holds them
        params = eqx.filter(model, model.trainable_filter())
        assert params.cells.mask.logits is lg
        # a central difference along a random direction
        d = jax.random.normal(jax.random.key(4), lg.shape, lg.dtype)
        eps = 1e-5
        fd = (loss(lg + eps * d) - loss(lg - eps * d)) / (2 * eps)
        np.testing.assert_allclose(jnp.vdot(grad, d), fd, rtol=1e-6)
        # coverage = Σ sigmoid(logits), its gradient σ (1 - σ)
        cover = jax.grad(lambda m: m.cells.mask.coverage())(model).cells.mask.logits
        s = jax.nn.sigmoid(lg)
        np.testing.assert_allclose(cover, s * (1 - s), rtol=1e-12)


def test_the_regulariser_is_zero_for_masked_states_and_its_closed_form_otherwise():
    x = state()
    hard = NCA(Cells(C, mask=FixedMask(DISC)), hidden=8, key=KEY)
    assert float(boundary_regulariser(hard, DISC * x)) == 0.0
    expected = np.mean((1.0 - DISC) * np.abs(np.asarray(x)))
    np.testing.assert_allclose(boundary_regulariser(hard, x), expected, rtol=1e-6)
    np.testing.assert_allclose(boundary_regulariser(hard.cells, x), expected, rtol=1e-6)
    # a batch: the mean over all its entries
    batch = jnp.stack([x, 2.0 * x, DISC * x])
    np.testing.assert_allclose(boundary_regulariser(hard, batch), expected, rtol=1e-6)
    # a soft mask on channels 1 and 4 holding them at 0.5 and -1 where m = 1
    soft = Cells(C, mask=FixedMask(DISC, "soft", channels=(1, 4), values=(0.5, -1.0)))
    xn = np.asarray(x)
    forbidden = DISC * (np.abs(xn[1] - 0.5) + np.abs(xn[4] + 1.0))
    np.testing.assert_allclose(boundary_regulariser(soft, x), forbidden.sum() / x.size, rtol=1e-6)
    held = x.at[1].set(jnp.where(DISC == 1, 0.5, x[1])).at[4].set(jnp.where(DISC == 1, -1, x[4]))
    assert float(boundary_regulariser(soft, held)) == 0.0
    with pytest.raises(ValueError, match="needs cells with a mask"):
        boundary_regulariser(Cells(C), x)
    with pytest.raises(ValueError, match="mask's grid"):
        boundary_regulariser(hard, jnp.zeros((C, H + 1, W)))


@pytest.mark.parametrize(
    "mask",
    [
        FixedMask(DISC),
        FixedMask(
            np.stack([DISC, 1.0 - DISC]), "soft", channels=(0, 3), values=np.full((2, H, W), 0.3)
        ),
        TrainableMask(3.0 * DISC - 1.0, channels=(-1,)),
    ],
    ids=["hard", "soft", "trainable"],
)
def test_save_load_round_trip_keeps_the_mask_and_the_rollout_bit_for_bit(mask, tmp_path):
    model = randomised(Cells(C, fire_rate=0.5, boundary="dirichlet", mask=mask))
    back = AbstractNCA.load(model.save(tmp_path / "masked.eqx"))
    assert back.hyperparameters() == model.hyperparameters()
    assert type(back.cells.mask) is type(mask)
    for a, b in zip(jax.tree.leaves(model), jax.tree.leaves(back), strict=True):
        np.testing.assert_array_equal(a, b)
    assert back.num_parameters() == model.num_parameters()
    x0 = state()
    np.testing.assert_array_equal(frames(back, x0, 8, KEY, 4), frames(model, x0, 8, KEY, 4))


def test_a_mask_off_the_grid_or_the_channels_is_refused():
    model = NCA(Cells(C, mask=FixedMask(DISC)), hidden=8, key=KEY)
    wrong = jnp.zeros((C, H, W + 1))
    with pytest.raises(ValueError, match=r"mask's grid \[10, 9\]"):
        model.step(wrong, KEY)
    with pytest.raises(ValueError, match=r"mask's grid \[10, 9\]"):
        model.rollout(wrong, 5, KEY)
    with pytest.raises(ValueError, match=r"\[2, H, W\]"):  # one mask per selected channel
        Cells(C, mask=FixedMask(np.stack([DISC] * 3), channels=(0, 1)))
    with pytest.raises(ValueError, match="mask.channels"):
        Cells(C, mask=FixedMask(DISC, channels=(C,)))
    with pytest.raises(ValueError, match="values"):
        Cells(C, mask=FixedMask(DISC, "soft", values=np.zeros((2, H, W))))
    with pytest.raises(ValueError, match=r"\[H, W\]"):  # a 1-D mask
        Cells(C, mask=FixedMask(np.ones(W)))
    with pytest.raises(TypeError, match="mask must be a FixedMask"):
        Cells(C, mask=DISC)
