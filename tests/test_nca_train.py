"""NCA tasks: growing and trajectory losses, evaluation, validation selection, targets, configs,
figures and the commands."""

import dataclasses
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from diffdyn.common import OptimConfig, TrainConfig, Trainer, upscale
from diffdyn.common.cli import COMMANDS, main
from diffdyn.nca import (
    NCA,
    Cells,
    GrowConfig,
    GrowTask,
    NCAModelConfig,
    NCARunConfig,
    NCATrainConfig,
    PDEConfig,
    TrajectoryTask,
    build_model,
    builtin_target,
    erase_half,
    evaluate_growth,
    evaluate_trajectory,
    load_png,
    make_target,
    plot_growth,
    rollout_batch,
    save_rollout_gif,
    seed_state,
    to_rgb,
    trajectory_windows,
)

KEY = jax.random.key(0)


def tiny_target(n=12):
    """A premultiplied orange disc of radius 4 on an n x n grid."""
    i, j = np.mgrid[:n, :n]
    disc = ((i - n / 2 + 0.5) ** 2 + (j - n / 2 + 0.5) ** 2 <= 16).astype(np.float32)
    return np.stack([disc * 1.0, disc * 0.5, disc * 0.1, disc])


def test_grow_loss_and_evaluation_of_the_identity_are_the_seed_errors():
    target = tiny_target()
    model = NCA(Cells(6, alive_threshold=0.1), hidden=8, key=KEY)
    task = GrowTask(target, rollout_steps=5, samples=2)
    seed = task.seed(6)
    np.testing.assert_array_equal(seed, seed_state(6, 12, 12))
    loss, aux = task.loss(model, jnp.stack([seed, seed]), KEY)
    expected = np.mean((np.asarray(seed[:4]) - target) ** 2)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_array_equal(aux["prediction"][1], seed)
    m = evaluate_growth(model, target, KEY, steps=3, samples=2, every=1)
    assert m.mse == m.mse_persisted == pytest.approx(expected, rel=1e-6)
    damaged = np.mean((np.asarray(erase_half(seed))[:4] - target) ** 2)
    assert m.mse_damaged == m.mse_regrown == pytest.approx(damaged, rel=1e-6)
    assert m.frames.shape == (4 + 4, 6, 12, 12)  # x_0..x_3, then erased..regrown
    np.testing.assert_array_equal(m.regrown_frames[0], erase_half(seed))
    assert float(task.evaluate(model, KEY)["loss"]) == pytest.approx(expected, rel=1e-6)


def test_the_task_validation_is_the_growth_error_of_evaluate_growth():
    """Same key, steps and samples: `GrowTask.evaluate` is `evaluate_growth(...).mse`, and
    asking for frames changes no number."""
    target = tiny_target()
    model = randomise(NCA(Cells(6, fire_rate=0.5, alive_threshold=0.1), hidden=8, key=KEY))
    task = GrowTask(target, rollout_steps=6, samples=3)
    key = jax.random.key(9)
    plain = evaluate_growth(model, target, key, steps=6, samples=3)
    framed = evaluate_growth(model, target, key, steps=6, samples=3, every=2)
    assert plain.metrics() == framed.metrics() and plain.frames is None
    assert float(task.evaluate(model, key)["loss"]) == pytest.approx(plain.mse, rel=1e-6)
    with pytest.raises(ValueError, match="every must divide"):
        evaluate_growth(model, target, key, steps=6, every=4)


def randomise(model, scale=0.1):
    """Every trainable weight drawn at random, so that the NCA is not the identity."""
    params, static = eqx.partition(model, model.trainable_filter())
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(4), len(leaves))
    leaves = [scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    return eqx.combine(jax.tree_util.tree_unflatten(tree, leaves), static)


def test_short_training_lowers_the_loss_on_a_tiny_target():
    target = tiny_target()
    cells = Cells(6, filters=("identity", "sobel_x", "sobel_y"), fire_rate=1.0, alive_threshold=0.1)
    model = NCA(cells, hidden=24, key=KEY)
    task = GrowTask(target, 10, pool_size=8, batch_size=4, damage=0, reseed=4, samples=4)
    optim = OptimConfig(
        learning_rate=3e-3, schedule="exponential", decay_rate=0.5, normalise_gradients=True
    )
    config = TrainConfig(steps=40, log_every=10, progress=False)
    res = Trainer(task, optim, config=config).fit(model, task.seed(6), jax.random.key(1))
    initial = float(np.mean((np.asarray(seed_state(6, 12, 12))[:4] - target) ** 2))
    assert res.losses[0] == pytest.approx(initial, rel=1e-5)  # zero-init: the identity
    assert np.all(np.isfinite(res.losses))
    assert np.mean(res.losses[-5:]) < 0.5 * initial
    assert res.selected_by == "validation" and list(res.validation["step"]) == [10, 20, 30, 40]
    grown = evaluate_growth(res.model, target, KEY, steps=10, samples=4).mse
    assert grown < 0.5 * initial


def test_the_best_model_is_the_one_with_the_lowest_validation_loss():
    """With fire rate 1 the NCA is deterministic, so validation does not depend on its key:
    the best model must score exactly the lowest validation loss of the run, at its step."""
    frames = gray_scott_like(6)
    model = NCA(Cells(4, filters=("identity", "laplacian"), fire_rate=1.0), hidden=8, key=KEY)
    task = TrajectoryTask(frames[3:], steps_per_frame=1, batch_size=2)
    windows = trajectory_windows(frames[:4], 2)
    optim = OptimConfig(learning_rate=0.05)  # large: the validation loss goes up and down
    config = TrainConfig(steps=24, log_every=4, progress=False)
    res = Trainer(task, optim, config=config).fit(model, windows, jax.random.key(2))
    history = res.validation
    assert res.selected_by == "validation" and len(history["loss"]) == 6
    best = int(np.argmin(history["loss"]))
    assert res.best_step == history["step"][best]
    assert res.best_loss == pytest.approx(float(history["loss"][best]), rel=1e-6)
    again = float(task.evaluate(res.best_model, jax.random.key(99))["loss"])
    assert again == pytest.approx(float(history["loss"][best]), rel=1e-5)
    final = float(task.evaluate(res.model, jax.random.key(99))["loss"])
    assert final == pytest.approx(float(history["loss"][-1]), rel=1e-5)


def gray_scott_like(n, size=8):
    """A smooth periodic pattern drifting by one cell per frame, two channels."""
    i = np.arange(size)
    base = np.sin(2 * np.pi * i / size)[:, None] * np.cos(2 * np.pi * i / size)[None, :]
    return jnp.asarray(
        np.stack([np.stack([np.roll(base, t, 1), 0.5 * np.roll(base, t, 0)]) for t in range(n)]),
        jnp.float32,
    )


def test_trajectory_loss_of_the_identity_is_the_frame_difference():
    frames = jax.random.uniform(KEY, (5, 2, 8, 8))
    model = NCA(Cells(4, filters=("identity", "laplacian"), fire_rate=1.0), hidden=8, key=KEY)
    w = trajectory_windows(frames, 2)
    assert w.shape == (4, 2, 2, 8, 8)
    np.testing.assert_array_equal(w[2], frames[2:4])
    task = TrajectoryTask(frames, steps_per_frame=3)
    loss = task.loss(model, w, KEY)
    expected = np.mean((np.asarray(frames[:-1]) - np.asarray(frames[1:])) ** 2)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    ev = evaluate_trajectory(model, frames, KEY, steps_per_frame=2, keep_frames=True)
    assert ev["mse"] == pytest.approx(ev["mse_persistence"], rel=1e-6)
    assert ev["frames"].shape == (5, 4, 8, 8)
    # the validation of a task holding these frames is the same free-rollout error
    assert float(task.evaluate(model, KEY)["loss"]) == pytest.approx(ev["mse"], rel=1e-6)
    with pytest.raises(ValueError, match="windows"):
        task.loss(model, frames, KEY)
    with pytest.raises(ValueError, match="without replacement"):
        TrajectoryTask(frames, batch_size=8).init(model, w)


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


# ----------------------------------------------------------------------------- configs
def test_the_default_optimiser_is_the_nca_recipe():
    assert NCATrainConfig().optim == OptimConfig(
        "adam", 2e-3, schedule="exponential", decay_rate=0.1, normalise_gradients=True
    )


def test_settings_that_do_not_apply_are_refused():
    with pytest.raises(ValueError, match=r"grow.size=10.*belong to task grow"):
        NCATrainConfig(task="pde", grow=GrowConfig(size=10))
    with pytest.raises(ValueError, match=r"pde.window=2.*belong to task pde"):
        NCATrainConfig(task="grow", pde=PDEConfig(window=2))
    with pytest.raises(ValueError, match="alive masking"):
        NCATrainConfig(task="pde", model=NCAModelConfig(alive_threshold=0.2))
    with pytest.raises(ValueError, match="kan"):
        NCAModelConfig(variant="kan", hidden=32)
    with pytest.raises(ValueError, match="multiscale"):
        NCAModelConfig(scales=(1, 2))
    with pytest.raises(ValueError, match="reseed"):
        GrowConfig(batch_size=2, reseed=3)
    with pytest.raises(ValueError, match="window"):
        PDEConfig(frames=5, window=5)


def test_build_model_takes_the_task_defaults():
    grow = build_model(NCAModelConfig(), "grow", KEY)
    assert (
        grow.cells.hyperparameters()
        == Cells(16, fire_rate=0.5, alive_threshold=0.1).hyperparameters()
    )
    assert grow.hidden == 96
    pde = build_model(NCAModelConfig(variant="kan"), "pde", KEY)
    assert (pde.channels, pde.filters, pde.fire_rate, pde.alive_threshold, pde.basis) == (
        8,
        ("identity", "laplacian"),
        1.0,
        None,
        8,
    )


@pytest.mark.parametrize("task", ["grow", "pde"])
def test_quick_reduces_only_the_chosen_task_and_stays_valid(task, capsys):
    assert main(["nca", "train", "--help"]) == 0  # registers the nca commands
    capsys.readouterr()
    quick = COMMANDS[("nca", "train")].quick
    cfg = quick(NCATrainConfig(task=task))
    assert cfg.train.steps == 30 and cfg.model.hidden == 32 and cfg.model.channels == 8
    if task == "grow":
        assert (cfg.grow.size, cfg.grow.rollout_steps, cfg.pde) == (24, 24, PDEConfig())
    else:
        assert (cfg.pde.size, cfg.pde.frames, cfg.grow) == (24, 8, GrowConfig())
    assert dataclasses.replace(cfg) == cfg  # __post_init__ accepts it


# ----------------------------------------------------------------------------- figures
def test_upscale_repeats_every_cell():
    x = np.arange(6.0).reshape(1, 2, 3)
    y = upscale(x, min_side=7)
    assert y.shape == (1, 6, 9)  # factor ceil(7 / 3) = 3
    np.testing.assert_array_equal(y[0, ::3, ::3], x[0])
    np.testing.assert_array_equal(y[0, 4, 5], x[0, 1, 1])
    assert upscale(x, min_side=3) is x


def test_growth_figure_and_gif_are_written_upscaled(tmp_path):
    from PIL import Image

    target = tiny_target()
    model = randomise(NCA(Cells(6, alive_threshold=0.1), hidden=8, key=KEY))
    ev = evaluate_growth(model, target, KEY, steps=2, samples=1, every=1)
    assert plot_growth(target, ev, tmp_path / "g.png").is_file()
    gif = save_rollout_gif(ev.frames, tmp_path / "r.gif")
    with Image.open(gif) as img:
        assert img.size == (264, 264) and img.n_frames == 6  # 12 cells x 22


# ----------------------------------------------------------------------------- commands
@pytest.mark.heavy
def test_nca_run_reproduces_the_growth_error_that_quick_training_reported(tmp_path, capsys):
    """``nca train --quick`` records the grid it ran (24x24, not the default 40x40), so
    ``nca run`` on its folder grows on the same grid and measures the same error.

    Both are means of 8 stochastic rollouts (random fire masks) of the same model, with
    different keys: their difference has standard deviation sigma * sqrt(2 / 8) for the
    per-rollout spread sigma, measured here from 64 rollouts; 5 such deviations bound it.
    """
    out, run_out = tmp_path / "train", tmp_path / "run"
    assert main(["nca", "train", "--quick", "--out", str(out), "--seed", "0", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["grow"]["size"], config["grow"]["rollout_steps"]) == (24, 24)
    assert config["train"]["steps"] == trained["steps"] == 30
    for name in ("model.eqx", "best.eqx", "rollout.gif", "grown_damaged_regrown.png", "loss.png"):
        assert (out / name).is_file(), name
    assert trained["selected_by"] == "validation"

    args = ["nca", "run", "--model", str(out), "--out", str(run_out), "--seed", "0", "--json"]
    assert main(args) == 0
    ran = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ran["steps"] == 24 and ran["frames"] == 2 * (24 // 2 + 1)

    from diffdyn.common import AbstractModel

    model = AbstractModel.load(out / "model.eqx")
    task = GrowTask(make_target("smiley", 24), 24)
    seed = task.seed(model.channels)
    grown = rollout_batch(model, jnp.stack([seed] * 64), 24, jax.random.key(7))
    sigma = float(np.std(np.asarray(task.errors(grown)), ddof=1))
    tolerance = 5 * sigma * np.sqrt(2 / 8) + 1e-6
    assert abs(ran["mse"] - trained["mse"]) <= tolerance
    assert tolerance < 0.1 * trained["mse"]  # far below the wrong grid's error (~7x larger)

    # the training folder is never the run's output
    before = (out / "metrics.json").read_bytes()
    assert main(["nca", "run", "--model", str(out), "--out", str(out)]) == 2
    assert "another --out" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == before


@pytest.mark.heavy
def test_train_pde_and_run_refusals(tmp_path, capsys):
    out = tmp_path / "pde"
    args = ["nca", "train", "--task", "pde", "--quick", "--out", str(out), "--json"]
    assert main(args) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["steps"] == 30 and metrics["selected_by"] == "validation"
    for name in ("test_rollout.gif", "test_rollout.png", "channels.png", "best.eqx"):
        assert (out / name).is_file(), name
    recorded = (out / "config.yaml").read_bytes()
    assert main(["nca", "run", "--model", str(out), "--out", str(out)]) == 2
    assert "model's own folder" in capsys.readouterr().err
    assert (out / "config.yaml").read_bytes() == recorded  # refused before anything is written
    run = ["nca", "run", "--model", str(out), "--out", str(tmp_path / "run")]
    assert main(run) == 2
    assert "trained on task 'pde'" in capsys.readouterr().err
    assert main([*run[:-2], "--out", str(tmp_path / "r2"), "--resume"]) == 2
    assert main(["nca", "train", "--task", "pde", "--grow.size", "10"]) == 2
    assert "belong to task grow" in capsys.readouterr().err


def test_run_config_requires_a_model():
    with pytest.raises(TypeError):
        NCARunConfig()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="model"):
        NCARunConfig(model="")
