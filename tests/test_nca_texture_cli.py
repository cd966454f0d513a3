"""``diffdyn nca train --task texture`` and the polynomial, attention and bounded variants on
the command line: config refusals, the example texture, ``--quick``, the texture workflow's
metrics and figures, ``nca run``'s refusal, and a short training of every new variant."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from diffdyn.common import AbstractModel, TrainConfig, texture_image, texture_loss
from diffdyn.common.cli import COMMANDS, main
from diffdyn.nca import (
    AttentionNCA,
    BoundedNCA,
    GrowConfig,
    NCAModelConfig,
    NCATrainConfig,
    PDEConfig,
    PolynomialNCA,
    TextureConfig,
    TextureTask,
    build_model,
    fit_nca,
    load_texture,
    plot_texture,
)

KEY = jax.random.key(0)


def quick(cfg):
    assert main(["nca", "train", "--help"]) == 0  # registers the nca commands
    return COMMANDS[("nca", "train")].quick(cfg)


def short_train(steps=2):
    """``steps`` optimisation steps in one compiled call, no validation."""
    return TrainConfig(
        steps=steps, log_every=steps, validate_every=0, steps_per_call=steps, progress=False
    )


# ------------------------------------------------------------------------------ configs


def test_texture_settings_belong_to_task_texture():
    with pytest.raises(
        ValueError, match=r"texture.size=16.*belong to task texture, not to task grow"
    ):
        NCATrainConfig(task="grow", texture=TextureConfig(size=16))
    with pytest.raises(ValueError, match=r"grow.size=10.*belong to task grow, not to task texture"):
        NCATrainConfig(task="texture", grow=GrowConfig(size=10))
    with pytest.raises(ValueError, match=r"pde.window=2.*belong to task pde"):
        NCATrainConfig(task="texture", pde=PDEConfig(window=2))
    with pytest.raises(ValueError, match="alive masking"):  # off for texture by default
        NCATrainConfig(task="texture", model=NCAModelConfig(alive_threshold=0.2))
    NCATrainConfig(task="texture", texture=TextureConfig(texture="spots", size=16))


@pytest.mark.parametrize(
    ("variant", "setting", "message"),
    [
        ("nca", {"degree": 3}, "model.degree is a setting of the polynomial variant, not nca"),
        ("bounded", {"token_size": 8}, "model.token_size is a setting of the attention variant"),
        ("polynomial", {"heads": 2}, "model.heads is a setting of the attention variant"),
        ("attention", {"bound": 0.5}, "model.bound is a setting of the bounded variant"),
        ("polynomial", {"basis": 4}, "model.basis is a setting of the kan variant"),
        ("attention", {"hidden": 32}, "model.hidden is not a setting of the attention variant"),
        ("attention", {"token_size": 6, "heads": 4}, "divisible by model.heads = 4"),
        ("attention", {"token_size": 6}, "divisible by model.heads = 4"),  # the default heads
        ("polynomial", {"degree": 0}, "model.degree must be an int >= 1"),
        ("bounded", {"bound": 0.0}, "model.bound must be a finite number > 0"),
        ("bounded", {"bound": float("inf")}, "model.bound must be a finite number > 0"),
    ],
)
def test_variant_settings_are_refused_for_other_variants_and_checked(variant, setting, message):
    with pytest.raises(ValueError, match=message):
        NCAModelConfig(variant=variant, **setting)


def test_build_model_builds_the_new_variants_with_their_settings_and_the_task_defaults():
    poly = build_model(NCAModelConfig(variant="polynomial", degree=3, hidden=8), "texture", KEY)
    assert isinstance(poly, PolynomialNCA) and (poly.degree, poly.hidden) == (3, 8)
    # texture defaults: 12 channels, four filters, fire rate 0.5, no alive masking
    assert (poly.channels, len(poly.filters), poly.fire_rate, poly.alive_threshold) == (
        12,
        4,
        0.5,
        None,
    )
    attention = build_model(NCAModelConfig(variant="attention"), "grow", KEY)
    assert isinstance(attention, AttentionNCA)
    assert (attention.token_size, attention.heads, attention.channels) == (16, 4, 16)
    bounded = build_model(NCAModelConfig(variant="bounded", bound=0.25), "pde", KEY)
    assert isinstance(bounded, BoundedNCA) and bounded.bound == 0.25 and bounded.hidden == 96
    default = build_model(NCAModelConfig(variant="polynomial"), "grow", KEY)
    assert default.degree == 2


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"texture": "plaid"}, r"texture.texture must be one of \['stripes', 'spots', 'checker'\]"),
        ({"texture": "my.png", "period": 4}, "texture.period=4 draws the built-in textures"),
        ({"size": 4}, r"texture.size must be >= 2\*\*texture.levels = 8"),
        ({"rollout_min": 10, "rollout_max": 5}, "texture.rollout_max must be an int >= 10"),
        ({"batch_size": 8, "pool_size": 4}, "texture.batch_size must be <= texture.pool_size"),
        ({"reseed": 9}, "texture.reseed must be <= texture.batch_size = 8"),
        ({"overflow": -1.0}, "texture.overflow must be a number >= 0"),
        ({"period": 1}, "texture.period must be an int >= 2"),
    ],
)
def test_bad_texture_settings_are_refused(setting, message):
    with pytest.raises(ValueError, match=message):
        TextureConfig(**setting)


def test_the_example_is_the_built_in_texture_or_the_png_as_rgb(tmp_path):
    from PIL import Image

    cfg = TextureConfig(texture="checker", size=16, period=4)
    np.testing.assert_array_equal(load_texture(cfg), texture_image("checker", 16, period=4))
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 255, 51, 0, 128
    rgba[:5, :, 2] = 102
    path = tmp_path / "example.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = load_texture(TextureConfig(texture=str(path)))
    assert image.shape == (3, 10, 12) and image.dtype == np.float32  # its own resolution
    np.testing.assert_allclose(image[0], 1.0)
    np.testing.assert_allclose(image[1], 0.2, atol=1e-7)  # alpha is dropped, not multiplied
    np.testing.assert_allclose(image[2, :5], 0.4, atol=1e-7)
    np.testing.assert_array_equal(image[2, 5:], 0.0)


def test_a_missing_or_unreadable_texture_file_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    for path, message in (
        (tmp_path / "missing.png", "does not exist"),
        (bad, "is not a readable image"),
    ):
        out = tmp_path / f"run-{path.stem}"
        args = ["nca", "train", "--task", "texture", "--texture.texture", str(path)]
        assert main([*args, "--quick", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "texture.texture" in err[0] and message in err[0], err
    args = ["nca", "train", "--task", "grow", "--texture.size", "16", "--out", str(tmp_path / "g")]
    assert main(args) == 2
    assert "belong to task texture" in capsys.readouterr().err


def test_quick_keeps_a_texture_run_short_and_valid():
    cfg = quick(NCATrainConfig(task="texture"))
    t = cfg.texture
    assert cfg.train.steps == 30 and cfg.model.hidden == 32 and cfg.model.channels == 8
    assert (t.size, t.rollout_min, t.rollout_max, t.batch_size, t.pool_size) == (16, 8, 16, 4, 32)
    assert (cfg.grow, cfg.pde) == (GrowConfig(), PDEConfig())
    assert dataclasses.replace(cfg) == cfg  # __post_init__ accepts it
    # a pyramid too deep for 16 cells keeps the grid it needs
    deep = quick(NCATrainConfig(task="texture", texture=TextureConfig(levels=5)))
    assert deep.texture.size == 32
    # the attention variant has no hidden width: quick leaves it unset
    att = quick(NCATrainConfig(model=NCAModelConfig(variant="attention")))
    assert att.model.hidden is None and dataclasses.replace(att) == att


# ---------------------------------------------------------------------------- the workflow


def test_texture_metrics_score_the_states_of_the_figure(tmp_path):
    """Two training steps on an 8 x 8 grid. The untrained NCA is the identity, so its grown
    states are the evaluation's noise seeds (keys as documented by `fit_nca`), and every
    texture metric is the texture loss of exactly the states that the figure shows."""
    texture = TextureConfig(
        size=8, period=4, levels=2, rollout_min=2, rollout_max=3, pool_size=4, batch_size=2,
        samples=2,
    )  # fmt: skip
    cfg = NCATrainConfig(
        task="texture",
        model=NCAModelConfig(channels=4, hidden=8),
        train=short_train(),
        texture=texture,
    )
    key = jax.random.key(3)
    fit = fit_nca(cfg, key)
    np.testing.assert_array_equal(fit.target, texture_image("stripes", 8, period=4))
    task = TextureTask(fit.target, (2, 3), levels=2, samples=2, pool_size=4, batch_size=2)
    k_eval = jax.random.split(key, 4)[3]
    k_seed, _, k_proj = jax.random.split(k_eval, 3)
    seeds = jnp.stack([task.seed(4, key=k) for k in jax.random.split(k_seed, 2)])
    np.testing.assert_array_equal(fit.untrained, seeds)
    m = fit.metrics
    untrained = float(jnp.mean(texture_loss(seeds[:, :3], fit.target, levels=2, key=k_proj)))
    assert m["untrained_texture_loss"] == pytest.approx(untrained, rel=1e-5)
    grown = float(jnp.mean(task.texture_errors(jnp.asarray(fit.grown), k_proj)))
    assert m["texture_loss"] == pytest.approx(grown, rel=1e-5)
    assert not np.array_equal(fit.grown, fit.untrained)  # trained: no longer the identity
    assert m["steps"] == 2 and np.isfinite(m["best_texture_loss"])
    assert fit.frames.shape == (7, 4, 8, 8)  # 2 x 3 steps, every step
    figure = plot_texture(fit.target, fit.untrained, fit.grown, tmp_path / "t.png")
    assert figure.is_file()
    with pytest.raises(ValueError, match="trained must have shape"):
        plot_texture(fit.target, fit.untrained, fit.grown[0], tmp_path / "u.png")


@pytest.mark.parametrize(
    ("variant", "settings", "cls", "hyper"),
    [
        ("polynomial", {"hidden": 8, "degree": 2}, PolynomialNCA, {"degree": 2}),
        ("attention", {"token_size": 4, "heads": 2}, AttentionNCA, {"token_size": 4, "heads": 2}),
        ("bounded", {"hidden": 8, "bound": 0.5}, BoundedNCA, {"bound": 0.5}),
    ],
)
def test_every_new_variant_trains_on_grow_and_saves_and_loads(
    variant, settings, cls, hyper, tmp_path
):
    """Two steps of `fit_nca` (task grow) from the model `build_model` gives: the parameters
    move, the losses are finite, and the saved ``model.eqx`` loads back as the same class with
    the same settings and the same update."""
    model_cfg = NCAModelConfig(variant=variant, channels=6, **settings)
    grow = GrowConfig(size=8, rollout_steps=3, pool_size=4, batch_size=2, damage=0, reseed=1,
                      samples=1)  # fmt: skip
    cfg = NCATrainConfig(model=model_cfg, train=short_train(), grow=grow)
    key = jax.random.key(1)
    fit = fit_nca(cfg, key, out=tmp_path)
    assert np.all(np.isfinite(fit.result.losses)) and fit.metrics["steps"] == 2
    untrained = build_model(model_cfg, "grow", jax.random.split(key, 3)[0])
    moved = jax.tree_util.tree_map(
        lambda a, b: bool(jnp.any(a != b)),
        jax.tree_util.tree_leaves(fit.result.model),
        jax.tree_util.tree_leaves(untrained),
    )
    assert any(moved)
    loaded = AbstractModel.load(tmp_path / "model.eqx")
    assert type(loaded) is cls
    assert {k: getattr(loaded, k) for k in hyper} == hyper
    assert loaded.num_parameters() == fit.metrics["parameters"]
    x = jax.random.uniform(jax.random.key(2), (6, 8, 8))
    np.testing.assert_array_equal(loaded.increment(x), fit.result.model.increment(x))


# ---------------------------------------------------------------------------- the commands


@pytest.mark.heavy
def test_quick_texture_training_beats_the_untrained_model_and_nca_run_refuses_it(tmp_path, capsys):
    out = tmp_path / "texture"
    args = ["nca", "train", "--task", "texture", "--texture.texture", "stripes", "--quick"]
    assert main([*args, "--out", str(out), "--seed", "0", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["texture_loss"] == printed["texture_loss"]
    assert metrics["steps"] == 30
    assert metrics["texture_loss"] < 0.7 * metrics["untrained_texture_loss"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["task"] == "texture" and config["texture"]["size"] == 16
    for name in ("texture.png", "texture_rollout.gif", "loss.png", "model.eqx", "best.eqx"):
        assert (out / name).is_file(), name

    run = ["nca", "run", "--model", str(out), "--out", str(tmp_path / "run")]
    assert main(run) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained on task 'texture'" in err[0], err
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.heavy
@pytest.mark.parametrize("variant", ["polynomial", "attention", "bounded"])
def test_every_new_variant_runs_nca_train_quick_with_its_figures(variant, tmp_path, capsys):
    out = tmp_path / variant
    args = ["nca", "train", "--model.variant", variant, "--quick", "--train.steps", "3"]
    assert main([*args, "--out", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["steps"] == 3 and np.isfinite(metrics["mse"])
    for name in ("model.eqx", "perception.png", "weights.png", "grown_damaged_regrown.png"):
        assert (out / name).is_file(), name
    assert type(AbstractModel.load(out / "model.eqx")).__name__.lower().startswith(variant)
