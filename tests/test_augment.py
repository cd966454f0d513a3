"""Numerical tests of common.augment: transforms, augmenters, sample pool."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import (
    AbstractAugmenter,
    ArrayAugmenter,
    Compose,
    GaussianNoise,
    RandomErase,
    RandomFlip,
    RandomRoll,
    RandomRot90,
    SamplePool,
    TreeAugmenter,
    ZeroPad,
    duplicate,
)

KEYS = jax.random.split(jax.random.key(0), 16)


def _image(shape=(3, 6, 6), seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype=jnp.float32)


# ------------------------------------------------------------------------------ transforms


def _over_keys(fn, keys=KEYS):
    """``fn(key)`` for every key, in one compiled vmap (numpy leaves)."""
    return jax.tree_util.tree_map(np.asarray, jax.jit(jax.vmap(fn))(keys))


def test_flip_is_exact_permutation_and_involution():
    x = _image()
    xn = np.asarray(x)
    h, v = RandomFlip("horizontal"), RandomFlip("vertical")
    out = _over_keys(lambda k: [(t(x, k), t(t(x, k), k), t.flips(k)) for t in (h, v)])
    for ax, (y, yy, flips) in zip((-1, -2), out, strict=True):
        for i in range(len(KEYS)):
            np.testing.assert_array_equal(y[i], np.flip(xn, ax) if flips[i] else xn)
            np.testing.assert_array_equal(yy[i], xn)  # flip twice = identity
        assert set(flips.tolist()) == {True, False}  # p = 0.5: both outcomes occur


def test_flip_probability_bounds():
    x = _image()
    y0, y1 = _over_keys(lambda k: (RandomFlip(p=0.0)(x, k), RandomFlip(p=1.0)(x, k)))
    np.testing.assert_array_equal(y0, np.broadcast_to(x, y0.shape))
    np.testing.assert_array_equal(y1, np.broadcast_to(np.flip(np.asarray(x), -1), y1.shape))
    with pytest.raises(ValueError, match="axis"):
        RandomFlip("diagonal")
    with pytest.raises(ValueError, match="'p'"):
        RandomFlip(p=1.5)


def test_rot90_matches_numpy_and_four_turns_are_identity():
    x = _image()
    xn = np.asarray(x)
    t = RandomRot90()

    def run(k):
        z = x
        for _ in range(4):
            z = t(z, k)
        return t(x, k), z, t.turns(k)

    keys = jax.random.split(jax.random.key(1), 64)
    y, z, turns = _over_keys(run, keys)
    for i in range(len(keys)):
        np.testing.assert_array_equal(y[i], np.rot90(xn, turns[i], axes=(-2, -1)))
        np.testing.assert_array_equal(z[i], xn)  # 4 rotations by n*90 degrees = identity
    assert set(turns.tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="square"):
        t(jnp.zeros((1, 4, 5)), KEYS[0])


def test_roll_equals_jnp_roll_by_sampled_shift():
    x = _image((2, 7, 9))
    xn = np.asarray(x)
    ts = (RandomRoll(), RandomRoll((1, 3)))
    out = _over_keys(lambda k: [(t(x, k), t.shift(k, x.shape)) for t in ts])
    for t, (y, s) in zip(ts, out, strict=True):
        for i in range(len(KEYS)):
            np.testing.assert_array_equal(y[i], np.roll(xn, tuple(s[i]), axis=(-2, -1)))
        if t.max_shift is None:
            assert ((s >= 0) & (s < [7, 9])).all()
        else:
            assert (np.abs(s) <= [1, 3]).all()
    assert RandomRoll(2).max_shift == (2, 2)
    with pytest.raises(ValueError, match="max_shift"):
        RandomRoll(-1)


def test_noise_has_right_std_and_respects_channels():
    std = 0.3
    x = jnp.zeros((2, 32, 32))
    t = GaussianNoise(std, channels=[0])
    ys = _over_keys(lambda k: t(x, k), jax.random.split(KEYS[0], 64))
    noise = ys[:, 0]
    assert abs(noise.mean()) < 0.01
    assert abs(noise.std() - std) < 0.01 * std  # 65536 samples: relative s.e. ~ 0.3%
    np.testing.assert_array_equal(ys[:, 1], 0.0)  # unselected channel untouched
    with pytest.raises(ValueError, match="std"):
        GaussianNoise(-1.0)
    with pytest.raises(TypeError, match="floating"):
        GaussianNoise(0.1)(jnp.zeros((1, 4, 4), jnp.int32), KEYS[0])


def test_erase_zeroes_exactly_a_disk_of_sampled_radius():
    x = jnp.ones((3, 16, 16))
    t = RandomErase((1.5, 4.0), channels=(0, 2))
    ii, jj = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    y, (centre, radius) = _over_keys(lambda k: (t(x, k), t.disk(k, x.shape)))
    assert ((radius >= 1.5) & (radius <= 4.0)).all()
    for i in range(len(KEYS)):
        c, r = centre[i], float(radius[i])
        disk = (ii - c[0]) ** 2 + (jj - c[1]) ** 2 <= r * r
        for ch in (0, 2):
            np.testing.assert_array_equal(y[i, ch] == 0, disk)
        np.testing.assert_array_equal(y[i, 1], 1.0)
    # sequence [T, C, H, W]: the same disk in every frame
    seq = jnp.ones((4, 2, 8, 8))
    y = np.asarray(jax.jit(RandomErase(2.0))(seq, KEYS[1]))
    assert (y == 0).any()
    for f in range(4):
        np.testing.assert_array_equal(y[f], y[0])
    with pytest.raises(ValueError, match="radius"):
        RandomErase((3.0, 1.0))
    with pytest.raises(ValueError, match="channels"):
        RandomErase(1.0, channels=5)(x, KEYS[0])


def test_zero_pad_shape_and_values():
    x = _image((2, 4, 5)) + 10.0
    cases = ((1, (1, 1, 1, 1)), ((2, 3), (2, 2, 3, 3)), ((0, 1, 2, 3), (0, 1, 2, 3)))
    for width, (t, b, left, right) in cases:
        y = np.asarray(ZeroPad(width)(x))
        assert y.shape == (2, 4 + t + b, 5 + left + right)
        np.testing.assert_array_equal(y[:, t : t + 4, left : left + 5], x)
        mask = np.ones(y.shape, bool)
        mask[:, t : t + 4, left : left + 5] = False
        np.testing.assert_array_equal(y[mask], 0.0)
    with pytest.raises(ValueError, match="width"):
        ZeroPad(-1)


def test_duplicate_repeats_each_sample():
    batch = {"x": jnp.arange(3.0)[:, None], "y": jnp.arange(3)}
    out = duplicate(batch, 2)
    np.testing.assert_array_equal(out["x"][:, 0], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(out["y"], [0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="'n'"):
        duplicate(batch, 0)


def test_compose_order_keys_and_determinism():
    x = _image((2, 6, 6))
    ts = [RandomRoll(), RandomRot90(), GaussianNoise(0.1)]
    comp = Compose(ts)

    def run(k):
        expected = x
        for t, kk in zip(ts, jax.random.split(k, len(ts)), strict=True):
            expected = t(expected, kk)
        return comp(x, k), expected

    f = jax.jit(jax.vmap(run))
    got, expected = (np.asarray(a) for a in f(KEYS[:8]))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(f(KEYS[:8])[0], got)  # same key, same result
    assert len({g.tobytes() for g in got}) == 8  # different keys differ


def test_transforms_treat_all_frames_alike():
    frame = _image((2, 6, 6))
    seq = jnp.stack([frame] * 3)
    comp = Compose([RandomRoll(), RandomRot90()])
    ys, y1 = _over_keys(lambda k: (comp(seq, k), comp(frame, k)), KEYS[:4])
    for f in range(3):
        np.testing.assert_array_equal(ys[:, f], y1)


# ------------------------------------------------------------------------------ augmenters


def _per_key(fn, keys):
    """``fn(key)`` for every key through one compiled (not vmapped) function, stacked."""
    f = jax.jit(fn)
    outs = [jax.tree_util.tree_map(np.asarray, f(k)) for k in keys]
    return jax.tree_util.tree_map(lambda *a: np.stack(a), *outs)


def _labelled(n=10, shape=(1, 4, 4)):
    """Item i is the constant i (plus a fixed pattern so flips are visible)."""
    pattern = jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape) / 100
    return jnp.arange(n, dtype=jnp.float32)[:, None, None, None] + pattern


def test_augmenter_is_abstract():
    with pytest.raises(TypeError):
        AbstractAugmenter()


def test_array_augmenter_samples_from_data_under_jit():
    data = _labelled()
    aug = ArrayAugmenter(6)
    state = aug.init(data, KEYS[0])
    keys = KEYS[:5]
    batches = _per_key(lambda k: aug.sample(state, k), keys)
    assert batches.shape == (5, 6, 1, 4, 4)
    for batch in batches:
        ids = batch[:, 0, 0, 0].round().astype(int)
        assert len(set(ids)) == 6  # without replacement: distinct
        np.testing.assert_array_equal(batch, np.asarray(data)[ids])
    assert aug.update(state, None, KEYS[0]) is state


def test_array_augmenter_dict_transforms_move_inputs_and_targets_together():
    data = _labelled(8, (2, 5, 5))
    aug = ArrayAugmenter(4, [RandomRoll(), RandomFlip()], replace=True, repeats=3)
    aug2 = ArrayAugmenter(4, [RandomRoll()], apply_to=["x"])
    state = aug.init({"x": data, "y": data[:, :1]}, KEYS[0])
    state2 = aug2.init({"x": data, "y": data}, KEYS[0])
    batch, b2 = _per_key(lambda k: (aug.sample(state, k), aug2.sample(state2, k)), KEYS[:1])
    batch = jax.tree_util.tree_map(lambda a: a[0], batch)
    assert batch["x"].shape == (12, 2, 5, 5) and batch["y"].shape == (12, 1, 5, 5)
    np.testing.assert_array_equal(batch["x"][:, :1], batch["y"])  # same roll and flip
    ids = np.floor(batch["x"].min(axis=(1, 2, 3))).astype(int)
    assert (ids[0::3] == ids[1::3]).all() and (ids[0::3] == ids[2::3]).all()
    # copies of one item get different augmentations (a roll over 25 positions)
    assert not all(np.array_equal(batch["x"][3 * i], batch["x"][3 * i + 1]) for i in range(4))
    # apply_to: only the inputs are transformed
    ids2 = np.floor(b2["y"][0, :, 0, 0, 0]).astype(int)
    np.testing.assert_array_equal(b2["y"][0], np.asarray(data)[ids2])


def test_array_augmenter_validates():
    aug = ArrayAugmenter(4)
    with pytest.raises(ValueError, match="batch_size"):
        aug.init(jnp.zeros((3, 2)), KEYS[0])
    with pytest.raises(ValueError, match="axis 0"):
        aug.init((jnp.zeros((5, 2)), jnp.zeros((6, 2))), KEYS[0])
    with pytest.raises(TypeError, match="array"):
        aug.init([[1, 2]], KEYS[0])
    with pytest.raises(ValueError, match="apply_to"):
        ArrayAugmenter(2, apply_to=["z"]).init({"x": jnp.zeros((4, 2))}, KEYS[0])
    with pytest.raises(ValueError, match="batch_size"):
        ArrayAugmenter(0)


def test_tree_augmenter_windows_come_from_items():
    rng = np.random.default_rng(1)
    shapes = [(2, 7, 9), (2, 5, 6), (2, 12, 4)]
    items = [rng.uniform(1, 2, size=s).astype(np.float32) for s in shapes]
    aug = TreeAugmenter((None, 4, 3), batch_size=5, return_positions=True)
    state = aug.init([jnp.asarray(x) for x in items], KEYS[0])
    assert state["data"].shape == (3, 2, 12, 9)
    np.testing.assert_array_equal(state["sizes"], [[7, 9], [5, 6], [12, 4]])
    trajs = [jnp.arange(t * 2.0).reshape(t, 2) for t in (5, 8, 6)]
    aug_t = TreeAugmenter((4, None))
    state_t = aug_t.init(trajs, KEYS[0])
    out, out_t = _per_key(lambda k: (aug.sample(state, k), aug_t.sample(state_t, k)), KEYS[:6])
    assert out["x"].shape == (6, 5, 2, 4, 3)
    for xs, its, sts in zip(out["x"], out["item"], out["start"], strict=True):
        for x, i, s in zip(xs, its, sts, strict=True):
            h, w = shapes[i][1:]
            assert s[0] == 0 and 0 <= s[1] <= h - 4 and 0 <= s[2] <= w - 3
            np.testing.assert_array_equal(x, items[i][:, s[1] : s[1] + 4, s[2] : s[2] + 3])
    # batch_size=None: one window from every item, in order; trajectories [T, D]
    assert out_t.shape == (6, 3, 4, 2)
    for batch in out_t:
        for x, traj in zip(batch, trajs, strict=True):
            start = int(x[0, 0]) // 2
            np.testing.assert_array_equal(x, traj[start : start + 4])


def test_tree_augmenter_validates():
    with pytest.raises(ValueError, match="shortest"):
        TreeAugmenter((None, 6)).init([jnp.ones((2, 5)), jnp.ones((2, 8))], KEYS[0])
    with pytest.raises(ValueError, match="same length"):
        TreeAugmenter((None, 2)).init([jnp.ones((2, 5)), jnp.ones((3, 8))], KEYS[0])
    with pytest.raises(ValueError, match="axes"):
        TreeAugmenter((2,)).init([jnp.ones((2, 5))], KEYS[0])
    with pytest.raises(ValueError, match="window"):
        TreeAugmenter((0, None))


def test_sample_pool_update_writes_exactly_the_sampled_slots():
    seed = jnp.zeros((2, 3, 3))
    pool = SamplePool(12, 5, reseed=1)
    state = pool.init(seed, KEYS[0])
    assert state["pool"].shape == (12, 2, 3, 3)
    np.testing.assert_array_equal(state["pool"], 0.0)
    # give every slot a distinct value so slots can be identified by value
    state = {**state, "pool": jnp.arange(12.0)[:, None, None, None] + jnp.zeros((12, 2, 3, 3))}
    prediction = 100.0 + jnp.arange(5.0)[:, None, None, None] + jnp.zeros((5, 2, 3, 3))

    def step(k):
        return pool.sample(state, k), pool.slots(state, k), pool.update(state, prediction, k)

    batches, slots, new = _per_key(step, KEYS[:4])
    for batch, sl, new_pool in zip(batches, slots, new["pool"], strict=True):
        assert len(set(sl.tolist())) == 5
        np.testing.assert_array_equal(batch[0], seed)  # reseeded
        np.testing.assert_array_equal(batch[1:], np.asarray(state["pool"])[sl[1:]])
        expected = np.asarray(state["pool"]).copy()
        expected[sl] = np.asarray(prediction)
        np.testing.assert_array_equal(new_pool, expected)
    np.testing.assert_array_equal(new["seed"], np.broadcast_to(seed, (4, 2, 3, 3)))
    assert pool.update(state, None, KEYS[0]) is state
    with pytest.raises(ValueError, match="prediction"):
        pool.update(state, jnp.zeros((4, 2, 3, 3)), KEYS[0])


def test_sample_pool_score_orders_worst_first_and_damages_best():
    seed = jnp.ones((1, 8, 8))
    pool = SamplePool(
        10, 4, reseed=1, score=lambda s: s.mean(), transforms=[RandomErase(8.0)], n_transformed=1
    )
    state = pool.init(seed, KEYS[0])
    values = 1.0 + jnp.arange(10.0)[:, None, None, None] + jnp.zeros((10, 1, 8, 8))
    state = {**state, "pool": values}
    batch, slots = _per_key(lambda k: (pool.sample(state, k), pool.slots(state, k)), KEYS[5:6])
    batch, slots = batch[0], slots[0]
    assert (np.diff(slots) < 0).all()  # score = value = slot + 1: worst (largest) first
    np.testing.assert_array_equal(batch[0], seed)
    np.testing.assert_array_equal(batch[1:3], np.asarray(values)[slots[1:3]])
    assert (batch[3] == 0).any()  # the best sample is damaged (radius 8 covers most of it)
    assert set(np.unique(batch[3]).tolist()) <= {0.0, float(slots[3] + 1)}
    with pytest.raises(ValueError, match="batch_size"):
        SamplePool(3, 4)
