"""NCA tasks: growing loss, a short training, PDE-trajectory loss, targets and the commands."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import TrainConfig
from diffdyn.nca import (
    NCA,
    GrowLoss,
    TrajectoryLoss,
    builtin_target,
    erase_half,
    evaluate_growth,
    evaluate_trajectory,
    load_png,
    make_target,
    nca_optimiser,
    seed_state,
    to_rgb,
    train_grow,
    trajectory_windows,
)

KEY = jax.random.key(0)


def tiny_target(n=12):
    """A premultiplied orange disc of radius 4 on an n x n grid."""
    i, j = np.mgrid[:n, :n]
    disc = ((i - n / 2 + 0.5) ** 2 + (j - n / 2 + 0.5) ** 2 <= 16).astype(np.float32)
    return np.stack([disc * 1.0, disc * 0.5, disc * 0.1, disc])


def test_grow_loss_of_the_identity_is_the_seed_error():
    target = tiny_target()
    model = NCA(6, hidden=8, alive_threshold=0.1, key=KEY)
    seed = seed_state(6, 12, 12)
    loss, aux = GrowLoss(target, steps=5)(model, jnp.stack([seed, seed]), KEY)
    expected = np.mean((np.asarray(seed[:4]) - target) ** 2)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_array_equal(aux["prediction"][1], seed)
    m = evaluate_growth(model, target, KEY, steps=3, samples=2)
    assert m["mse"] == m["mse_persisted"] == pytest.approx(expected, rel=1e-6)
    damaged = np.mean((np.asarray(erase_half(seed))[:4] - target) ** 2)
    assert m["mse_damaged"] == pytest.approx(damaged, rel=1e-6)


def test_short_training_lowers_the_loss_on_a_tiny_target():
    target = tiny_target()
    model = NCA(
        6,
        filters=("identity", "sobel_x", "sobel_y"),
        hidden=24,
        fire_rate=1.0,
        alive_threshold=0.1,
        key=KEY,
    )
    res = train_grow(
        model,
        target,
        jax.random.key(1),
        steps=10,
        pool_size=8,
        batch_size=4,
        damage=0,
        reseed=4,
        optimiser=nca_optimiser(3e-3, 40, decay_rate=0.5),
        config=TrainConfig(steps=40, log_every=10, progress=False),
    )
    initial = float(np.mean((np.asarray(seed_state(6, 12, 12))[:4] - target) ** 2))
    assert res.losses[0] == pytest.approx(initial, rel=1e-5)  # zero-init: the identity
    assert np.all(np.isfinite(res.losses))
    assert np.mean(res.losses[-5:]) < 0.5 * initial
    grown = evaluate_growth(res.model, target, KEY, steps=10, samples=4)["mse"]
    assert grown < 0.5 * initial


def test_trajectory_loss_of_the_identity_is_the_frame_difference():
    frames = jax.random.uniform(KEY, (5, 2, 8, 8))
    model = NCA(4, filters=("identity", "laplacian"), hidden=8, fire_rate=1.0, key=KEY)
    w = trajectory_windows(frames, 2)
    assert w.shape == (4, 2, 2, 8, 8)
    np.testing.assert_array_equal(w[2], frames[2:4])
    loss = TrajectoryLoss(steps_per_frame=3)(model, w, KEY)
    expected = np.mean((np.asarray(frames[:-1]) - np.asarray(frames[1:])) ** 2)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    ev = evaluate_trajectory(model, frames, KEY, steps_per_frame=2)
    assert ev["mse"] == pytest.approx(ev["mse_persistence"], rel=1e-6)
    with pytest.raises(ValueError, match="windows"):
        TrajectoryLoss(2)(model, frames, KEY)


@pytest.mark.parametrize(
    ("name", "area"),
    [("smiley", np.pi * 0.78**2 / 4), ("ring", np.pi * (0.75**2 - 0.4**2) / 4)],
)
def test_builtin_targets_cover_their_analytic_area(name, area):
    t = builtin_target(name, 40)
    assert t.shape == (4, 40, 40) and t.dtype == np.float32
    assert float(t[3].mean()) == pytest.approx(area, abs=5e-3)
    assert np.all(t[:3] <= t[3:4] + 1e-6)  # premultiplied: colour never exceeds alpha


def test_glyph_target_and_padding():
    t = make_target("glyph:A", 20, pad=3)
    assert t.shape == (4, 26, 26)
    assert t[3].max() > 0.9 and np.all(t[:, :3] == 0) and np.all(t[:, :, -3:] == 0)
    with pytest.raises(ValueError, match="target must be one of"):
        make_target("unicorn")


def test_png_targets_are_premultiplied(tmp_path):
    from PIL import Image

    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    t = load_png(tmp_path / "t.png")
    assert t.shape == (4, 6, 8)
    np.testing.assert_allclose(t[0], 200 / 255 * 128 / 255, atol=1e-6)
    np.testing.assert_allclose(to_rgb(t)[1], 1 - 128 / 255, atol=1e-6)
    assert make_target(str(tmp_path / "t.png"), size=4).shape == (4, 4, 4)
    with pytest.raises(ValueError, match="does not exist"):
        make_target(str(tmp_path / "missing.png"))


@pytest.mark.heavy
def test_train_and_run_commands(tmp_path, capsys):
    from diffdyn.common.cli import main

    out = tmp_path / "train"
    args = [
        "nca",
        "train",
        "--out",
        str(out),
        "--target",
        "ring",
        "--json",
        "--model.channels",
        "6",
        "--model.hidden",
        "8",
        "--grow.size",
        "12",
        "--grow.steps",
        "6",
        "--grow.batch_size",
        "2",
        "--grow.pool_size",
        "4",
        "--train.iterations",
        "2",
        "--train.image_every",
        "1",
        "--train.progress",
        "false",
    ]
    assert main(args) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["iterations"] == 2 and np.isfinite(metrics["mse"])
    for name in ("model.eqx", "rollout.gif", "channels.png", "perception.png", "weights.png"):
        assert (out / name).is_file(), name
    assert list(out.glob("events.out.tfevents.*"))
    run_out = tmp_path / "run"
    args = [
        "nca",
        "run",
        "--model",
        str(out),
        "--out",
        str(run_out),
        "--steps",
        "8",
        "--damage",
        "true",
        "--damage_at",
        "4",
        "--json",
    ]
    assert main(args) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["frames"] == (4 // 2 + 1) * 2 and (run_out / "rollout.gif").is_file()
    assert {"mse", "mse_damaged", "mse_regrown"} <= set(metrics)
    assert main(["nca", "run", "--model", str(tmp_path / "nothing"), "--out", str(run_out)]) == 2
