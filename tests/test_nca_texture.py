"""Texture NCAs: example textures, the sliced-Wasserstein texture loss against closed forms,
its translation invariance, and `TextureTask` (variable rollout lengths, fresh-noise reseeding,
a short training)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import ndtri

from diffdyn.common import (
    TEXTURES,
    OptimConfig,
    TrainConfig,
    Trainer,
    sliced_wasserstein,
    texture_features,
    texture_image,
    texture_loss,
)
from diffdyn.nca import (
    NCA,
    Cells,
    TextureTask,
)

KEY = jax.random.key(0)


def quantile_sample(n, mu, sigma):
    """``mu + sigma * Phi^{-1}((i + 1/2) / n)``: n samples whose empirical quantiles are those
    of N(mu, sigma²) (float64)."""
    z = ndtri((jnp.arange(n, dtype=jnp.float64) + 0.5) / n)
    return (mu + sigma * z)[:, None]


# ------------------------------------------------------------------------------ example images


@pytest.mark.parametrize("name", TEXTURES)
def test_example_textures_are_rgb_in_the_unit_interval_and_tile_the_grid(name):
    image = texture_image(name, 16, period=8)
    assert image.shape == (3, 16, 16) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0 and image.std() > 0.1
    # period 8 divides 16 and 32: the 32-pixel texture is the 16-pixel one tiled 2 x 2
    np.testing.assert_allclose(texture_image(name, 32, period=8), np.tile(image, (1, 2, 2)))


def test_example_texture_arguments_are_checked():
    with pytest.raises(ValueError, match="name must be one of"):
        texture_image("plaid", 16)
    with pytest.raises(ValueError, match="period"):
        texture_image("stripes", 16, period=1)


# ---------------------------------------------------------------------------- the texture loss


def test_features_are_the_pyramid_of_shifted_sums():
    """Levels 0 and 1 against the shifted sums of the definition (numpy ``roll``)."""
    x = np.asarray(jax.random.uniform(KEY, (2, 8, 8)), np.float64)
    f = np.asarray(texture_features(x, levels=2)).reshape(2, 4, 2, 8, 8)  # level, feature, C

    def at(u, di, dj):  # u(i + di, j + dj), periodic
        return np.roll(u, (-di, -dj), axis=(-2, -1))

    def parts(u, s):
        xd = 0.5 * (at(u, 0, s) - at(u, 0, -s))
        yd = 0.5 * (at(u, s, 0) - at(u, -s, 0))
        lap = at(u, 0, s) + at(u, 0, -s) + at(u, s, 0) + at(u, -s, 0) - 4 * u
        return [u, xd, yd, lap]

    blur = (
        sum((2 - abs(a)) * (2 - abs(b)) * at(x, a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)) / 16
    )
    for level, u in enumerate((x, blur)):
        for m, expected in enumerate(parts(u, 2**level)):
            np.testing.assert_allclose(f[level, m], expected, atol=1e-6)


@pytest.mark.parametrize("name", TEXTURES)
def test_texture_loss_is_zero_for_the_texture_and_its_periodic_rolls(name):
    image = texture_image(name, 24, period=8)
    assert float(texture_loss(image, image, key=KEY)) == 0.0
    others = [texture_image(n, 24, period=8) for n in TEXTURES if n != name]
    rolled = np.roll(image, (3, -5), axis=(1, 2))  # not a multiple of any level's scale
    different = [float(texture_loss(o, image, key=KEY)) for o in others]
    for key in jax.random.split(KEY, 3):
        assert float(texture_loss(rolled, image, key=key)) < 1e-10
    assert min(different) > 1e-2


def test_texture_loss_ranks_textures():
    """Same texture (rolled) << another period of the stripes << other textures."""
    stripes = texture_image("stripes", 24, period=8)
    loss = lambda x: float(texture_loss(x, stripes, projections=64, key=KEY))  # noqa: E731
    rolled = loss(np.roll(stripes, 7, axis=2))
    coarser = loss(texture_image("stripes", 24, period=12))
    others = [loss(texture_image(n, 24, period=8)) for n in ("spots", "checker")]
    assert rolled < 1e-10 < coarser < min(others)


def test_a_target_of_another_size_is_compared_through_its_quantiles():
    """A 2 x 2 tiling of the texture has every feature vector four times: the interpolated
    quantiles are the texture's own, and the loss is zero."""
    image = texture_image("spots", 16, period=8)
    big = np.tile(image, (1, 2, 2))
    assert float(texture_loss(image, big, key=KEY)) < 1e-10
    assert float(texture_loss(image, texture_image("checker", 32, period=8), key=KEY)) > 1e-2


def test_batched_losses_are_the_losses_of_each_image():
    target = texture_image("checker", 16, period=8)
    images = jax.random.uniform(KEY, (2, 3, 3, 16, 16))
    batched = texture_loss(images, target, key=KEY)
    assert batched.shape == (2, 3)
    one = texture_loss(images[1, 2], target, key=KEY)
    np.testing.assert_allclose(batched[1, 2], one, rtol=1e-6)


def test_sliced_wasserstein_of_two_gaussians_is_the_closed_form():
    """1-D: $W_2^2(N(\\mu_1, \\sigma_1^2), N(\\mu_2, \\sigma_2^2)) = (\\mu_1 - \\mu_2)^2
    + (\\sigma_1 - \\sigma_2)^2$, with one projection (a direction is +-1)."""
    with jax.enable_x64(True):
        a = quantile_sample(2000, 0.3, 0.7)
        b = quantile_sample(2000, -0.9, 0.7)
        sw = sliced_wasserstein(a, b, projections=1, key=KEY)
        assert float(jnp.sqrt(sw)) == pytest.approx(1.2, rel=1e-12)
        # other widths: (sigma_1 - sigma_2)^2 times the mean of z_i^2 (-> 1)
        c = quantile_sample(2000, -0.9, 0.2)
        expected = 1.2**2 + 0.5**2
        assert float(sliced_wasserstein(a, c, projections=1, key=KEY)) == pytest.approx(
            expected, rel=2e-3
        )
        # unequal sample counts: the quantiles of c are interpolated
        c_more = quantile_sample(3000, -0.9, 0.2)
        assert float(sliced_wasserstein(a, c_more, projections=1, key=KEY)) == pytest.approx(
            expected, rel=2e-3
        )
        # independent random samples: |mu_1 - mu_2| up to sampling error
        ka, kb = jax.random.split(jax.random.key(3))
        ra = 0.3 + 0.7 * jax.random.normal(ka, (10000, 1), jnp.float64)
        rb = -0.9 + 0.7 * jax.random.normal(kb, (10000, 1), jnp.float64)
        w = float(jnp.sqrt(sliced_wasserstein(ra, rb, projections=1, key=KEY)))
        assert w == pytest.approx(1.2, abs=0.03)


def test_sliced_wasserstein_of_a_translated_cloud_averages_the_projected_shift():
    """$a = b + c$: every projection is shifted by $\\theta \\cdot c$, and for $\\theta$
    uniform on the sphere of $\\mathbb{R}^D$, $E[(\\theta \\cdot c)^2] = |c|^2 / D$."""
    with jax.enable_x64(True):
        b = jax.random.normal(KEY, (300, 4), jnp.float64)
        c = jnp.array([1.0, -2.0, 0.5, 3.0], jnp.float64)
        sw = float(sliced_wasserstein(b + c, b, projections=4000, key=jax.random.key(1)))
        assert sw == pytest.approx(float(c @ c) / 4, rel=0.05)


def test_bad_texture_loss_arguments_are_refused():
    image = texture_image("stripes", 16)
    with pytest.raises(ValueError, match="same channels"):
        texture_loss(image[:2], image, key=KEY)
    with pytest.raises(ValueError, match="levels"):
        texture_loss(image, image, levels=5, key=KEY)
    with pytest.raises(ValueError, match="projections"):
        texture_loss(image, image, projections=0, key=KEY)
    with pytest.raises(ValueError, match="same number of features"):
        sliced_wasserstein(jnp.zeros((4, 2)), jnp.zeros((4, 3)), key=KEY)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        sliced_wasserstein(jnp.zeros(4), jnp.zeros(4), key=KEY)


# ------------------------------------------------------------------------------- TextureTask


def randomise(model, scale=0.3):
    params, static = eqx.partition(model, model.trainable_filter())
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(7), len(leaves))
    leaves = [scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    return eqx.combine(jax.tree_util.tree_unflatten(tree, leaves), static)


def test_every_state_runs_its_own_number_of_steps():
    """With fire rate 1 the NCA is deterministic: each final state is the plain rollout after
    some T_b in [T_min, T_max], and the drawn lengths are not all equal."""
    task = TextureTask(texture_image("stripes", 8, period=4), (2, 6), levels=2)
    model = randomise(NCA(Cells(4, fire_rate=1.0), hidden=8, key=KEY))
    x0 = jnp.stack([task.seed(4, key=k) for k in jax.random.split(KEY, 6)])
    final = np.asarray(eqx.filter_jit(task.rollout)(model, x0, jax.random.key(2)))
    frames = eqx.filter_jit(lambda m, x: jax.vmap(lambda s: m.rollout(s, 6, KEY, every=1))(x))
    frames = np.asarray(frames(model, x0))  # [B, 7, C, H, W]
    lengths = []
    for b in range(6):
        err = np.abs(frames[b] - final[b]).max(axis=(1, 2, 3))
        assert err.min() < 1e-5
        lengths.append(int(np.argmin(err)))
    assert all(2 <= t <= 6 for t in lengths) and len(set(lengths)) > 1


def test_the_pool_reseeds_samples_with_fresh_noise():
    task = TextureTask(texture_image("spots", 8, period=4), (1, 2), pool_size=6, batch_size=3,
                       reseed=1, levels=2)  # fmt: skip
    pool = task.augmenter()
    seed = jnp.full((4, 8, 8), 7.0)  # far from U(0, 1) noise
    state = pool.init(seed)
    batch = pool.sample(state, KEY)
    assert batch.shape == (3, 4, 8, 8)
    np.testing.assert_array_equal(batch[:2], jnp.broadcast_to(seed, (2, 4, 8, 8)))
    assert 0.0 <= float(batch[2].min()) and float(batch[2].max()) < 1.0
    assert float(jnp.std(batch[2])) > 0.2


def test_texture_task_arguments_are_checked():
    target = texture_image("stripes", 16)
    with pytest.raises(ValueError, match="rollout_steps"):
        TextureTask(target, (8, 4))
    with pytest.raises(ValueError, match="reseed"):
        TextureTask(target, batch_size=2, reseed=3)
    with pytest.raises(ValueError, match="levels"):
        TextureTask(target, grid=(8, 8), levels=4)
    task = TextureTask(target, (2, 3))
    with pytest.raises(ValueError, match="only 2"):
        task.seed(2, key=KEY)
    with pytest.raises(ValueError, match="seed state"):
        task.init(NCA(Cells(4), hidden=4, key=KEY), jnp.zeros((4, 8, 8)))


def test_untrained_loss_is_the_texture_loss_of_the_noise_seeds():
    """The zero-initialised NCA is the identity: the loss is the texture loss of its input."""
    target = texture_image("checker", 16, period=8)
    task = TextureTask(target, (2, 4), batch_size=2, pool_size=2)
    model = NCA(Cells(5), hidden=8, key=KEY)
    x = jnp.stack([task.seed(5, key=k) for k in jax.random.split(KEY, 2)])
    loss, aux = eqx.filter_jit(task.loss)(model, x, jax.random.key(4))
    k_proj = jax.random.split(jax.random.key(4))[1]
    expected = jnp.mean(texture_loss(x[:, :3], target, key=k_proj))
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    assert float(aux["overflow"]) == 0.0
    np.testing.assert_array_equal(aux["prediction"], x)


def test_a_short_training_on_stripes_lowers_the_texture_loss():
    """40 steps on 24 x 24 stripes: the texture loss of states grown from fresh noise (the
    task's validation, same key before and after) falls well below the untrained model's.
    Every sample restarts from fresh noise (``reseed = batch_size``): a short run learns to
    grow from noise, not to persist."""
    target = texture_image("stripes", 24, period=6)
    task = TextureTask(target, (8, 16), pool_size=8, batch_size=4, reseed=4, samples=8)
    model = NCA(Cells(8), hidden=32, key=KEY)
    before = float(task.evaluate(model, jax.random.key(5))["loss"])
    config = TrainConfig(steps=40, log_every=40, validate_every=0, steps_per_call=40,
                         progress=False)  # fmt: skip
    trainer = Trainer(task, OptimConfig(learning_rate=1e-2), config=config)
    res = trainer.fit(model, task.seed(8, key=jax.random.key(1)), jax.random.key(2))
    assert np.all(np.isfinite(res.losses))
    after = float(task.evaluate(res.model, jax.random.key(5))["loss"])
    assert after < 0.7 * before
