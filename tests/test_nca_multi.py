"""One NCA on several targets: multi-species growth from coded seeds, and morphing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import OptimConfig, TrainConfig, Trainer
from diffdyn.nca import NCA, Cells, MorphTask, MultiTargetTask, SpeciesPool, seed_state

KEY = jax.random.key(0)
N = 16


def disc(n=N, r=4.5, colour=(1.0, 0.5, 0.1)):
    """A premultiplied disc of radius ``r`` centred on the grid."""
    i, j = np.mgrid[:n, :n]
    a = ((i - n / 2 + 0.5) ** 2 + (j - n / 2 + 0.5) ** 2 <= r * r).astype(np.float32)
    return np.stack([a * colour[0], a * colour[1], a * colour[2], a])


def square(n=N, half=3, colour=(0.1, 0.3, 0.9)):
    """A premultiplied square of side ``2 half`` centred on the grid."""
    a = np.zeros((n, n), np.float32)
    a[n // 2 - half : n // 2 + half, n // 2 - half : n // 2 + half] = 1.0
    return np.stack([a * colour[0], a * colour[1], a * colour[2], a])


def two_targets():
    return np.stack([disc(), square()])


def test_seeds_carry_the_one_hot_species_code_in_the_documented_channels():
    targets = np.stack([disc(), square(), disc(colour=(0.2, 0.9, 0.2))])
    task = MultiTargetTask(targets, 4)
    assert task.species_channels == (4, 5, 6)
    seeds = np.asarray(task.seed(9))
    assert seeds.shape == (3, 9, N, N)
    base = np.asarray(seed_state(9, N, N))
    c = N // 2
    for s in range(3):
        expected = base.copy()
        expected[4:7, c, c] = np.eye(3)[s]
        np.testing.assert_array_equal(seeds[s], expected)
    # explicit channels: the code goes exactly there, the rest is the plain seed
    task = MultiTargetTask(two_targets(), 4, species_channels=(7, 5))
    seeds = np.asarray(task.seed(8))
    np.testing.assert_array_equal(seeds[:, [7, 5], c, c], np.eye(2))
    np.testing.assert_array_equal(seeds[:, [3, 4, 6], c, c], np.ones((2, 3)))
    off = np.ones((N, N), bool)
    off[c, c] = False
    assert not seeds[:, :, off].any()


def test_loss_is_the_mean_mse_of_each_sample_against_its_own_species_target():
    targets = two_targets()
    task = MultiTargetTask(targets, 3)
    model = NCA(Cells(6), hidden=8, key=KEY)  # zero last layer: the identity map
    x = np.asarray(jax.random.uniform(jax.random.key(3), (3, 6, N, N)))
    species = np.array([1, 0, 1])
    loss, aux = task.loss(model, {"x": jnp.asarray(x), "species": jnp.asarray(species)}, KEY)
    by_hand = np.mean([np.mean((x[b, :4] - targets[species[b]]) ** 2) for b in range(3)])
    assert float(loss) == pytest.approx(by_hand, rel=1e-6)
    np.testing.assert_array_equal(aux["prediction"], x)
    # swapping the labels scores against the other targets: a different number
    swapped = {"x": jnp.asarray(x), "species": jnp.asarray(1 - species)}
    assert float(task.loss(model, swapped, KEY)[0]) != pytest.approx(by_hand, rel=1e-3)


def test_evaluation_of_the_identity_is_each_seed_against_its_own_target():
    targets = two_targets()
    task = MultiTargetTask(targets, 3, samples=2)
    model = NCA(Cells(6), hidden=8, key=KEY)
    seeds = np.asarray(task.seed(6))
    metrics = task.evaluate(model, KEY)
    for s in range(2):
        expected = np.mean((seeds[s, :4] - targets[s]) ** 2)
        assert float(metrics[f"species_{s}"]) == pytest.approx(expected, rel=1e-6)
    assert float(metrics["loss"]) == pytest.approx(
        (float(metrics["species_0"]) + float(metrics["species_1"])) / 2, rel=1e-6
    )
    image = task.visualise(model, KEY)["nca/species"]
    assert image.shape == (3, 2 * N, 2 * N)


def test_species_pool_labels_slots_and_reseeds_each_sample_from_its_own_seed():
    seeds = jnp.arange(3, dtype=jnp.float32)[:, None, None, None] * jnp.ones((3, 2, 4, 4))
    pool = SpeciesPool(7, 5, reseed=5)
    state = pool.init(seeds, KEY)
    np.testing.assert_array_equal(state["species"], [0, 1, 2, 0, 1, 2, 0])
    batch = pool.sample(state, KEY)
    np.testing.assert_array_equal(batch["x"], np.asarray(seeds)[np.asarray(batch["species"])])
    state = pool.update(state, batch["x"] + 10.0, KEY)
    idx = np.asarray(pool.slots(state, KEY))
    np.testing.assert_array_equal(state["pool"][idx], np.asarray(batch["x"]) + 10.0)
    with pytest.raises(ValueError, match="pool_size = 2 cannot hold"):
        SpeciesPool(2, 1).init(seeds, KEY)


def test_training_on_two_targets_grows_each_species_and_the_code_matters():
    """60 steps of one NCA on a disc and a square: each species' growth error falls below a
    third of the untrained one, and the two seeds grow images as far apart as the targets."""
    targets = two_targets()
    task = MultiTargetTask(targets, 10, pool_size=16, batch_size=4, damage=0, reseed=4, samples=2)
    model = NCA(Cells(8, fire_rate=1.0, alive_threshold=0.1), hidden=32, key=KEY)
    before = task.evaluate(model, KEY)
    optim = OptimConfig(
        learning_rate=1e-2, schedule="exponential", decay_rate=0.5, normalise_gradients=True
    )
    config = TrainConfig(steps=60, log_every=60, progress=False)
    res = Trainer(task, optim, config=config).fit(model, task.seed(8), jax.random.key(1))
    assert np.all(np.isfinite(res.losses))
    after = task.evaluate(res.model, KEY)
    for s in range(2):
        ratio = float(after[f"species_{s}"]) / float(before[f"species_{s}"])
        assert ratio < 0.3, (s, ratio)
    grown = np.asarray(jax.vmap(lambda x: res.model.rollout(x, 10, KEY))(task.seed(8)))
    apart = np.mean((grown[0, :4] - grown[1, :4]) ** 2)
    assert apart > 0.4 * np.mean((targets[0] - targets[1]) ** 2)


def test_morph_loss_of_the_identity_is_the_source_target_mse():
    source, target = disc(), square()
    task = MorphTask(source, target, 5, code_channels=(5,), batch_size=2, samples=2)
    model = NCA(Cells(6), hidden=8, key=KEY)
    x0 = np.asarray(task.seed(6))
    np.testing.assert_array_equal(x0[:4], source)
    np.testing.assert_array_equal(x0[5], (source[3] > 0).astype(np.float32))
    assert not x0[4].any()
    closed_form = np.mean((source - target) ** 2)
    loss, _ = task.loss(model, jnp.stack([x0, x0]), KEY)
    assert float(loss) == pytest.approx(closed_form, rel=1e-6)
    assert float(task.evaluate(model, KEY)["loss"]) == pytest.approx(closed_form, rel=1e-6)
    assert task.visualise(model, KEY)["nca/morph"].shape == (3, N, 4 * N)


def test_bad_inputs_are_refused_before_anything_compiles():
    with pytest.raises(ValueError, match="one shape"):
        MultiTargetTask([disc(), disc(n=12)], 4)
    with pytest.raises(ValueError, match="S >= 2"):
        MultiTargetTask(disc()[None], 4)
    with pytest.raises(ValueError, match=r"targets must have shape \[S, 4, H, W\]"):
        MultiTargetTask(two_targets()[:, :3], 4)
    with pytest.raises(ValueError, match=r"targets must have shape \[S, 4, H, W\]"):
        MultiTargetTask(disc(), 4)
    with pytest.raises(ValueError, match="one channel per species"):
        MultiTargetTask(two_targets(), 4, species_channels=(4,))
    with pytest.raises(ValueError, match="species_channels must be an int >= 4"):
        MultiTargetTask(two_targets(), 4, species_channels=(3, 4))
    with pytest.raises(ValueError, match="distinct"):
        MultiTargetTask(two_targets(), 4, species_channels=(5, 5))
    with pytest.raises(ValueError, match="channels must be >= 6"):
        MultiTargetTask(two_targets(), 4).seed(5)
    with pytest.raises(ValueError, match="pool_size must be an int >= 2"):
        MultiTargetTask(two_targets(), 4, pool_size=1, batch_size=1)
    task = MultiTargetTask(two_targets(), 4)
    with pytest.raises(ValueError, match="trains from the seeds"):
        task.init(NCA(Cells(6), hidden=4, key=KEY), task.seed(6)[0])
    with pytest.raises(ValueError, match="source and target must have one shape"):
        MorphTask(disc(), disc(n=12), 4)
    with pytest.raises(ValueError, match=r"source must have shape \[4, H, W\]"):
        MorphTask(disc()[:3], disc(), 4)
    with pytest.raises(ValueError, match="code_channels must be an int >= 4"):
        MorphTask(disc(), square(), 4, code_channels=(2,))
    with pytest.raises(ValueError, match="channels must be >= 5"):
        MorphTask(disc(), square(), 4).seed(4)
