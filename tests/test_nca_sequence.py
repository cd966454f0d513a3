"""SequenceTask: the loss by hand, teacher forcing and propagation, masks, the state
regulariser, steps from times, held-out validation, learning diffusion, and the command."""

import dataclasses
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import OptimConfig, TrainConfig, Trainer
from diffdyn.common.cli import COMMANDS, main
from diffdyn.nca import (
    NCA,
    Cells,
    NCATrainConfig,
    PDEConfig,
    SequenceConfig,
    SequenceTask,
    interval_steps,
    state_regulariser,
)

KEY = jax.random.key(0)


def randomise(model, scale=0.3, seed=4):
    """Every trainable weight drawn at random, so that the NCA is not the identity."""
    params, static = eqx.partition(model, model.trainable_filter())
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [
        scale * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)
    ]
    return eqx.combine(jax.tree_util.tree_unflatten(tree, leaves), static)


def uniform_frames(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).uniform(0.05, 0.95, shape).astype(dtype)


# ------------------------------------------------------------------ the loss by hand
def roll(u, a, b):
    """u[i + a, j + b] on a periodic grid."""
    return np.roll(u, (-a, -b), axis=(-2, -1))


def sobel_x(u):
    k = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8.0
    return sum(k[1 + a, 1 + b] * roll(u, a, b) for a in (-1, 0, 1) for b in (-1, 0, 1))


def hand_step(model, x):
    """One NCA step (fire rate 1, filters identity and sobel_x, periodic) in numpy."""
    w1, b1 = np.asarray(model.net.hidden_layer.weight), np.asarray(model.net.hidden_layer.bias)
    w2, b2 = np.asarray(model.net.output_layer.weight), np.asarray(model.net.output_layer.bias)
    features = np.concatenate([x, sobel_x(x)])  # blocked by filter: [id c..., sobel c...]
    hidden = np.maximum(np.einsum("oi,ihw->ohw", w1, features) + b1[:, None, None], 0.0)
    return x + np.einsum("oi,ihw->ohw", w2, hidden) + b2[:, None, None]


def rho(x, low=0.0, high=1.0):
    return np.mean(2 * np.maximum(np.maximum(low - x, 0.0), x - high))


def tiny_model(dtype_key=KEY):
    cells = Cells(2, ("identity", "sobel_x"), fire_rate=1.0)
    return randomise(NCA(cells, hidden=3, key=dtype_key))


def test_teacher_forced_loss_equals_the_hand_computation():
    """One NCA step per frame, every start state teacher-forced: the loss is the mean over
    the 2 x 2 intervals of frame MSE + 0.3 Sobel-feature MSE, plus 0.7 times the state
    regulariser of the one intermediate (= end) state."""
    y = uniform_frames(2, 5, 1, 5, 5)
    task = SequenceTask(
        y,
        steps_per_frame=1,
        held_out=2,
        propagate_fraction=0.0,
        perception_weight=0.3,
        regulariser_weight=0.7,
    )
    model = tiny_model()
    aug = task.augmenter()
    batch = aug.sample(aug.init(task.training_data(2)), KEY)
    assert batch["start"].shape == (4, 2, 5, 5) and not np.any(batch["propagated"])
    loss, aux = eqx.filter_jit(task.loss)(model, batch, KEY)
    fit, reg = [], []
    for b in range(2):
        for n in range(2):  # 3 training frames: intervals 0 -> 1 and 1 -> 2
            x1 = hand_step(model, np.concatenate([y[b, n], np.zeros((1, 5, 5))]))
            e = np.mean((x1[0] - y[b, n + 1, 0]) ** 2)
            p = np.mean((sobel_x(x1[0]) - sobel_x(y[b, n + 1, 0])) ** 2)
            fit.append(e + 0.3 * p)
            reg.append(rho(x1))
    expected = np.mean(fit) + 0.7 * np.mean(reg)
    assert np.mean(reg) > 0  # the random model leaves [0, 1]: the regulariser is tested
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(aux["state_regulariser"]) == pytest.approx(np.mean(reg), rel=1e-5)


def test_the_loss_is_differentiable_to_finite_differences():
    with jax.enable_x64(True):
        y = uniform_frames(1, 5, 1, 6, 6, dtype=np.float64)
        task = SequenceTask(
            y, steps_per_frame=2, held_out=2, regulariser_weight=0.5, perception_weight=0.2
        )
        model = randomise(NCA(Cells(2, ("identity", "sobel_x"), fire_rate=1.0), 4, key=KEY))
        aug = task.augmenter()
        batch = aug.sample(aug.init(task.training_data(2)), KEY)
        params, static = eqx.partition(model, model.trainable_filter())

        def f(p):
            return task.loss(eqx.combine(p, static), batch, KEY)[0]

        value_and_grad = jax.jit(jax.value_and_grad(f))  # one compilation for all three

        def value(p):
            return float(value_and_grad(p)[0])

        grad = value_and_grad(params)[1]
        direction = randomise(model, scale=1.0, seed=7)
        d = eqx.filter(direction, model.trainable_filter())
        analytic = sum(
            float(jnp.vdot(g, v))
            for g, v in zip(
                jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(d), strict=True
            )
        )
        eps = 1e-6
        plus = jax.tree_util.tree_map(lambda p, v: p + eps * v, params, d)
        minus = jax.tree_util.tree_map(lambda p, v: p - eps * v, params, d)
        numeric = (value(plus) - value(minus)) / (2 * eps)
        assert analytic != 0.0
        assert analytic == pytest.approx(numeric, rel=1e-6)


# ------------------------------------------------------------------ teacher forcing / propagation
def test_start_states_are_teacher_forced_or_carry_the_propagated_hidden_channels():
    """All 2 x 3 intervals in one batch; after an update with fake end states E, the start of
    interval n >= 1 is E of interval n - 1 (hidden channels included) with fraction 1, and
    the observed frame with zero hidden channels with fraction 0."""
    y = uniform_frames(2, 6, 1, 4, 4)
    for fraction in (0.0, 1.0):
        task = SequenceTask(y, steps_per_frame=1, held_out=2, propagate_fraction=fraction)
        aug = task.augmenter()
        state = aug.init(task.training_data(3))
        k1, k2 = jax.random.split(jax.random.key(3))
        first = aug.sample(state, k1)
        assert first["start"].shape[0] == 6 and int(np.sum(first["propagated"])) == 6 * fraction
        ends = jax.random.normal(KEY, (6, 3, 4, 4)) + 5.0
        state = aug.update(state, ends, k1)
        second = aug.sample(state, k2)
        end_of = {
            (int(b), int(n)): ends[i]
            for i, (b, n) in enumerate(zip(first["sequence"], first["interval"], strict=True))
        }
        for i, (b, n) in enumerate(zip(second["sequence"], second["interval"], strict=True)):
            b, n = int(b), int(n)
            start = np.asarray(second["start"][i])
            np.testing.assert_array_equal(second["target"][i], y[b, n + 1])
            if fraction == 0.0 or n == 0:
                np.testing.assert_array_equal(start[:1], y[b, n])
                np.testing.assert_array_equal(start[1:], 0.0)
            else:
                np.testing.assert_array_equal(start, end_of[(b, n - 1)])
                assert np.all(start[1:] > 0.0)  # the carried hidden channels


def test_half_of_each_batch_propagates_by_default():
    task = SequenceTask(uniform_frames(3, 6, 1, 4, 4), batch_size=5, held_out=2)
    assert task.propagate_fraction == 0.5 and task.propagated == 3  # round(2.5) up
    batch = task.augmenter().sample(task.augmenter().init(task.training_data(2)), KEY)
    np.testing.assert_array_equal(batch["propagated"], [True, True, True, False, False])


# ------------------------------------------------------------------ masks
def test_masked_channels_and_frames_do_not_change_the_loss():
    """Training frames 0..3 give the targets 1, 2, 3; with loss channels 0, 2 and loss frames
    1, 3, a change of channel 1 of any target, or of any channel of target frame 2, leaves
    the loss exactly as it was; the same change of a counted value moves it."""
    y = uniform_frames(1, 6, 3, 5, 5)
    model = tiny_model_channels(4)
    task = SequenceTask(
        y,
        steps_per_frame=1,
        held_out=2,
        propagate_fraction=0.0,
        loss_channels=(0, 2),
        loss_frames=(1, 3),
    )
    aug = task.augmenter()
    batch = aug.sample(aug.init(task.training_data(4)), KEY)
    loss = eqx.filter_jit(lambda b: task.loss(model, b, KEY)[0])
    frame2 = np.asarray(batch["interval"]) + 1 == 2
    assert frame2.sum() == 1

    def changed(channels, rows):
        target = np.asarray(batch["target"]).copy()
        target[np.ix_(rows, channels)] += 0.03
        return {**batch, "target": jnp.asarray(target)}

    base = float(loss(batch))
    every = np.arange(3)
    assert float(loss(changed([1], every))) == base
    assert float(loss(changed([0, 1, 2], every[frame2]))) == base
    assert float(loss(changed([0], every))) != base
    assert float(loss(changed([2], every[~frame2][:1]))) != base
    with pytest.raises(ValueError, match=r"loss_frames must be training frames in \[1, 3\]"):
        SequenceTask(y, held_out=2, loss_frames=(4,))
    with pytest.raises(ValueError, match=r"loss_channels must be channels in \[0, 2\]"):
        SequenceTask(y, held_out=2, loss_channels=(3,))


def tiny_model_channels(c):
    return randomise(NCA(Cells(c, ("identity", "sobel_x"), fire_rate=1.0), 4, key=KEY), 0.2)


# ------------------------------------------------------------------ the state regulariser
def test_state_regulariser_is_zero_inside_the_range_and_twice_the_distance_outside():
    inside = jnp.array([-0.5, 0.0, 0.3, 2.0])
    assert float(state_regulariser(inside, -0.5, 2.0)) == 0.0
    x = jnp.array([-1.5, 0.5, 2.75, 3.0])
    # distances to [-0.5, 2]: 1, 0, 0.75, 1 -> mean of twice them
    assert float(state_regulariser(x, -0.5, 2.0)) == pytest.approx(2 * (1 + 0.75 + 1) / 4)
    assert float(state_regulariser(jnp.array([1.25, -0.25]))) == pytest.approx(0.5)


# ------------------------------------------------------------------ steps from times
def counter_model(channels=1):
    """An NCA whose every step adds 1 to every channel of every cell."""
    model = NCA(Cells(channels, ("identity", "laplacian"), fire_rate=1.0), 2, key=KEY)
    return eqx.tree_at(lambda m: m.net.output_layer.bias, model, jnp.ones(channels))


def test_steps_are_proportional_to_the_time_gaps():
    assert interval_steps([0.0, 1.0, 3.0, 3.5], 2) == (4, 8, 2)
    assert interval_steps([0.0, 0.2, 0.6], 3) == (3, 6)
    with pytest.raises(ValueError, match=r"gap t\[2\] - t\[1\] = 1.5 .* 1.5 NCA steps"):
        interval_steps([0.0, 1.0, 2.5], 1)
    assert interval_steps([0.0, 1.0, 2.5], 2) == (2, 3)
    # each interval runs its own number of steps (a counter adds 1 per step), and the
    # regulariser averages over them: states x0 + 1, ..., x0 + s against [0, 1]
    y = np.zeros((1, 5, 1, 3, 3), np.float32)
    task = SequenceTask(
        y,
        [0.0, 1.0, 3.0, 4.0, 7.0],
        steps_per_frame=1,
        held_out=2,
        perception_weight=0.0,
        regulariser_weight=1.0,
    )
    assert task.steps_per_interval == (1, 2, 1, 3)
    model = counter_model()
    for s, expected in ((1, 0.0), (2, (0 + 2) / 2)):  # rho(1) = 0, rho(2) = 2
        end, reg = task.advance(model, jnp.zeros((1, 3, 3)), s, KEY)
        np.testing.assert_array_equal(end, float(s))
        assert float(reg) == pytest.approx(expected)
    # the held-out rollout runs the held-out interval's 3 steps
    rollout = task.held_out_rollout(model, KEY)
    assert rollout.shape == (1, 2, 1, 3, 3)
    np.testing.assert_array_equal(rollout[0, :, 0, 0, 0], [0.0, 3.0])


def test_advance_equals_the_step_loop_in_its_faster_layout():
    """`advance` keeps the state channels-last between steps (the rollout's layout) and
    ends where stepping channels-first with the same keys ends, stochastic firing included."""
    y = uniform_frames(1, 6, 4, 6, 6)
    task = SequenceTask(y, held_out=2, steps_per_frame=3)
    model = NCA(Cells(4, fire_rate=0.5), 16, key=KEY)
    model = eqx.tree_at(
        lambda m: m.net.output_layer.weight,
        model,
        0.1 * jax.random.normal(KEY, model.net.output_layer.weight.shape),
    )
    x = jax.random.uniform(jax.random.key(1), (4, 6, 6))
    keys = jax.random.split(jax.random.key(2), max(task.steps_per_interval))
    expected = x
    for k in keys[:2]:
        expected = model.step(expected, k)
    end, _ = task.advance(model, x, 2, jax.random.key(2))
    assert float(jnp.max(jnp.abs(expected - x))) > 1e-3  # the steps did change the state
    np.testing.assert_allclose(end, expected, atol=1e-6)


# ------------------------------------------------------------------ validation and refusals
def test_the_untrained_nca_scores_exactly_persistence():
    """The zero-initialised NCA is the identity, so its held-out error is persistence's."""
    y = uniform_frames(2, 7, 2, 4, 4)
    task = SequenceTask(y, held_out=3, steps_per_frame=2)
    model = NCA(Cells(4, fire_rate=1.0), 8, key=KEY)
    ev = task.evaluate(model, KEY)
    persistence = np.mean((y[:, 5:] - y[:, 4:5]) ** 2)
    assert float(ev["loss"]) == float(ev["mse_persistence"]) == pytest.approx(persistence)
    assert float(ev["mse_last"]) == pytest.approx(np.mean((y[:, 6] - y[:, 4]) ** 2))
    assert task.visualise(model, KEY)["nca/held_out"].shape == (3, 1, 4, 8)


def test_settings_that_cannot_work_are_refused():
    y = uniform_frames(1, 5, 1, 4, 4)
    with pytest.raises(ValueError, match="leaves 2 training frames|at least 2"):
        SequenceTask(y, held_out=4)
    with pytest.raises(ValueError, match="batch_size = 3 .* 2 training intervals"):
        SequenceTask(y, held_out=2, batch_size=3)
    with pytest.raises(ValueError, match=r"frames lie in \[-1, 0.94.*regulariser_weight"):
        SequenceTask(np.concatenate([y, -np.ones_like(y)], axis=1), held_out=2)
    SequenceTask(np.concatenate([y, -np.ones_like(y)], axis=1), held_out=2, state_range=(-1, 1))
    task = SequenceTask(y, held_out=2)
    lonely = NCA(Cells(2, ("identity",), fire_rate=1.0), 4, key=KEY)
    with pytest.raises(ValueError, match="perception_weight to 0"):
        Trainer(task, OptimConfig()).fit(lonely, task.training_data(2), KEY)
    with pytest.raises(ValueError, match="task.training_data"):
        Trainer(task, OptimConfig()).fit(tiny_model(), task.training_data(3), KEY)


# ------------------------------------------------------------------ learning diffusion
def heat_frames(sequences=2, frames=8, size=16, substeps=4, alpha=0.1, seed=0):
    """u_t = alpha * (9-point Laplacian of u), ``substeps`` Euler steps per frame, from a
    smooth random periodic field in [0.1, 0.9]: dynamics a 3x3 NCA can represent."""
    rng = np.random.default_rng(seed)
    i = np.arange(size)
    lap = {
        (0, 1): 0.5,
        (0, -1): 0.5,
        (1, 0): 0.5,
        (-1, 0): 0.5,
        (1, 1): 0.25,
        (1, -1): 0.25,
        (-1, 1): 0.25,
        (-1, -1): 0.25,
    }
    out = []
    for _ in range(sequences):
        u = 0.5 + sum(
            0.1
            * rng.normal()
            * np.sin(
                2 * np.pi * (kx * i[:, None] + ky * i[None, :]) / size + rng.uniform(0, 2 * np.pi)
            )
            for kx, ky in ((1, 0), (0, 1), (1, 1), (2, 1), (1, 3))
        )
        seq = []
        for _ in range(frames):
            seq.append(u.copy())
            for _ in range(substeps):
                u = u + alpha * (sum(w * roll(u, a, b) for (a, b), w in lap.items()) - 3 * u)
        out.append(np.stack(seq)[:, None])
    return np.stack(out).astype(np.float32)


def test_short_training_on_diffusion_beats_persistence_on_held_out_frames():
    y = heat_frames()
    task = SequenceTask(y, steps_per_frame=4, held_out=3)
    model = NCA(Cells(2, ("identity", "laplacian"), fire_rate=1.0), hidden=8, key=KEY)
    optim = OptimConfig(
        "adam", 3e-3, schedule="exponential", decay_rate=0.3, normalise_gradients=True
    )
    config = TrainConfig(steps=40, log_every=10, progress=False)
    res = Trainer(task, optim, config=config).fit(model, task.training_data(2), KEY)
    assert np.all(np.isfinite(res.losses)) and res.selected_by == "validation"
    ev = task.evaluate(res.best_model, KEY)
    assert float(ev["loss"]) < 0.5 * float(ev["mse_persistence"])


# ------------------------------------------------------------------ the command
def test_configs_require_data_for_sequence_and_refuse_it_elsewhere():
    with pytest.raises(ValueError, match="give --data PATH"):
        NCATrainConfig(task="sequence")
    with pytest.raises(ValueError, match="--data belongs to task sequence"):
        NCATrainConfig(task="pde", data="x.npy")
    with pytest.raises(ValueError, match=r"sequence.held_out=5.*belong to task sequence"):
        NCATrainConfig(task="grow", sequence=SequenceConfig(held_out=5))
    with pytest.raises(ValueError, match=r"pde.window=2.*not to task sequence"):
        NCATrainConfig(task="sequence", data="x.npy", pde=PDEConfig(window=2))
    with pytest.raises(ValueError, match="propagate_fraction"):
        SequenceConfig(propagate_fraction=1.5)
    with pytest.raises(ValueError, match="held_out"):
        SequenceConfig(held_out=1)


def test_quick_keeps_the_data_channels_and_stays_valid(capsys):
    assert main(["nca", "train", "--help"]) == 0
    capsys.readouterr()
    cfg = NCATrainConfig(task="sequence", data="x.npy", sequence=SequenceConfig(batch_size=32))
    quick = COMMANDS[("nca", "train")].quick(cfg)
    assert quick.model.channels is None and quick.model.hidden == 32
    assert (quick.sequence.steps_per_frame, quick.sequence.batch_size) == (4, 8)
    assert quick.train.steps == 30 and dataclasses.replace(quick) == quick


def test_cli_refuses_a_sequence_without_data_in_one_line(tmp_path, capsys):
    assert main(["nca", "train", "--task", "sequence", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "give --data PATH" in err and len(err.splitlines()) == 1
    missing = tmp_path / "missing.npy"
    assert main(["nca", "train", "--task", "sequence", "--data", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(missing) in err and len(err.splitlines()) == 1


@pytest.mark.heavy
def test_cli_trains_on_a_small_npy_end_to_end(tmp_path, capsys):
    data = tmp_path / "heat.npy"
    np.save(data, heat_frames(sequences=1, frames=6, size=12)[0])
    out = tmp_path / "run"
    args = [
        "nca",
        "train",
        "--task",
        "sequence",
        "--data",
        str(data),
        "--quick",
        "--out",
        str(out),
        "--json",
    ]
    assert main(args) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["steps"] == 30 and metrics["selected_by"] == "validation"
    assert (metrics["sequences"], metrics["frames"], metrics["observed_channels"]) == (1, 6, 1)
    assert metrics["interval_steps"] == [4] * 5
    assert 0 < metrics["held_out_mse_persistence"]
    assert metrics["best_held_out_mse"] <= metrics["held_out_mse_persistence"] + 1e-12
    for name in ("held_out.png", "held_out.gif", "channels.png", "loss.png", "model.eqx"):
        assert (out / name).is_file(), name
    assert (out / "config.yaml").read_text().count(str(data)) == 1
