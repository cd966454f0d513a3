"""``diffdyn nca train --task species|morph`` and ``--model.mask``: config refusals, the shared
pool-task base, the boundary regulariser's term in the loss, per-target metrics, a morph whose
loss falls, a hard mask that never touches the outside, and the mask reloaded by ``nca run``."""

import dataclasses
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from diffdyn.common import FixedMask, TrainableMask, TrainConfig
from diffdyn.common.cli import COMMANDS, main
from diffdyn.nca import (
    NCA,
    AbstractNCA,
    AbstractPoolTask,
    Cells,
    GrowConfig,
    GrowTask,
    MorphConfig,
    MorphTask,
    MultiTargetTask,
    NCAModelConfig,
    NCARunConfig,
    NCATrainConfig,
    SpeciesConfig,
    boundary_regulariser,
    build_model,
    fit_nca,
    make_mask,
    make_target,
    rollout_batch,
    run_nca,
)

KEY = jax.random.key(0)


def quick(cfg):
    """``cfg`` as ``--quick`` runs it."""
    main(["nca", "train", "--help"])  # registers the nca commands
    return COMMANDS[("nca", "train")].quick(cfg)


def steps(n):
    """``n`` training steps, logged once, no validation."""
    return TrainConfig(steps=n, log_every=n, validate_every=0, progress=False)


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def randomised(model, key=KEY, scale=0.3):
    """``model`` with every trainable leaf random (a fresh NCA is the identity map)."""
    params, static = eqx.partition(model, model.trainable_filter())
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    leaves = [
        scale * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)
    ]
    return eqx.combine(jax.tree_util.tree_unflatten(tree, leaves), static)


# ------------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SpeciesConfig(targets=("smiley", "blob")), "species.targets must be one of"),
        (lambda: SpeciesConfig(targets=("smiley",)), "at least two targets"),
        (lambda: SpeciesConfig(targets=("heart", "heart")), "species.targets must be distinct"),
        (lambda: MorphConfig(source="heart", target="heart"), "both 'heart'"),
        (lambda: MorphConfig(target="blob"), "morph.target must be one of"),
        (lambda: MorphConfig(code_channels=(3,)), "morph.code_channels must be an int >= 4"),
        (lambda: MorphConfig(batch_size=2, reseed=3), "morph.reseed must be <= morph.batch_size"),
        (lambda: NCAModelConfig(mask="blob"), "model.mask must be one of disk, smiley"),
        (lambda: NCAModelConfig(mask_kind="soft"), "give model.mask"),
        (lambda: NCAModelConfig(boundary_weight=0.5), "give model.mask"),
        (lambda: NCAModelConfig(mask="disk", boundary_weight=-1.0), "must be a number >= 0"),
        (
            lambda: NCATrainConfig(task="pde", model=NCAModelConfig(mask="disk")),
            "model.mask confines the cells of tasks grow, species, morph, not of task pde",
        ),
        (
            lambda: NCATrainConfig(task="grow", species=SpeciesConfig(size=10)),
            "species.size=10: the species.* settings belong to task species, not to task grow",
        ),
        (
            lambda: NCATrainConfig(
                task="species",
                species=SpeciesConfig(targets=("smiley", "heart", "ring")),
                model=NCAModelConfig(channels=6),
            ),
            "model.channels = 6 cannot hold RGBA, the 3 species codes",
        ),
        (
            lambda: NCATrainConfig(
                task="morph",
                morph=MorphConfig(code_channels=(7,)),
                model=NCAModelConfig(channels=8, mask="disk", mask_kind="soft"),
            ),
            "and the soft mask's structure channel: give model.channels >= 9",
        ),
    ],
)
def test_bad_species_morph_and_mask_settings_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_quick_reduces_species_and_morph_and_keeps_room_for_the_codes():
    many = ("smiley", "heart", "ring", "glyph:A", "glyph:B")
    cfg = quick(NCATrainConfig(task="species", species=SpeciesConfig(targets=many)))
    assert cfg.model.channels == 9 and (cfg.species.size, cfg.species.rollout_steps) == (24, 24)
    assert cfg.grow == GrowConfig() and dataclasses.replace(cfg) == cfg
    cfg = quick(NCATrainConfig(task="morph"))
    assert cfg.model.channels == 8 and cfg.morph.batch_size == 4 and cfg.morph.damage == 0
    assert dataclasses.replace(cfg) == cfg


# ------------------------------------------------------------------------- the pool tasks


def test_grow_morph_and_species_tasks_share_one_abstract_pool_base():
    target = make_target("heart", 8)
    tasks = [
        GrowTask(target, 3),
        MorphTask(make_target("smiley", 8), target, 3),
        MultiTargetTask(np.stack([target, make_target("smiley", 8)]), 3),
    ]
    for task in tasks:
        assert isinstance(task, AbstractPoolTask) and task.rollout_steps == 3
        assert type(task).loss is AbstractPoolTask.loss
        assert type(task).augmenter is AbstractPoolTask.augmenter
    with pytest.raises(TypeError):
        AbstractPoolTask()  # abstract
    # a positive boundary weight needs a masked NCA
    task = GrowTask(target, 3, boundary_weight=1.0)
    with pytest.raises(ValueError, match="this NCA has no mask"):
        task.init(NCA(Cells(6), hidden=4, key=KEY), task.seed(6))
    with pytest.raises(ValueError, match="boundary_weight must be a number >= 0"):
        GrowTask(target, 3, boundary_weight=-0.1)


@pytest.mark.parametrize("kind", ["hard", "soft", "trainable"])
def test_the_loss_adds_the_weighted_boundary_regulariser_of_the_proposed_update(kind):
    """loss(λ) = loss(0) + λ mean|x̃ - M(x̃)| with x̃ = x_T + f(P(x_T)), the update each final
    state proposes before the mask acts; for a hard mask that is (1 - m)|f(P(x_T))|."""
    shape = make_mask("disk", 8, 1)
    cfg = NCAModelConfig(channels=6, hidden=8, mask="disk", mask_kind=kind)
    model = randomised(build_model(cfg, "grow", KEY, mask=shape))
    target = make_target("heart", 8, 1)
    batch = jax.random.uniform(jax.random.key(1), (3, 6, 10, 10))
    plain, aux = GrowTask(target, 4).loss(model, batch, KEY)
    weighted, aux_w = GrowTask(target, 4, boundary_weight=0.5).loss(model, batch, KEY)
    final = aux["prediction"]
    np.testing.assert_array_equal(final, aux_w["prediction"])
    proposed = final + jax.vmap(model.increment)(final)
    penalty = boundary_regulariser(model, proposed)
    assert float(aux_w["boundary"]) == pytest.approx(float(penalty), rel=1e-6)
    assert float(weighted) == pytest.approx(float(plain) + 0.5 * float(penalty), rel=1e-6)
    assert float(penalty) > 0
    if kind == "hard":
        dx = np.asarray(jax.vmap(model.increment)(final))
        closed = np.mean((1.0 - shape) * np.abs(dx))
        assert float(penalty) == pytest.approx(closed, rel=1e-5)


def test_the_cli_masks_are_the_documented_kinds():
    shape = make_mask("disk", 8, 2)
    assert shape.shape == (12, 12) and set(np.unique(shape)) == {0.0, 1.0}
    assert shape[:2].sum() == 0 and shape[6, 6] == 1  # padding outside, centre inside
    np.testing.assert_array_equal(make_mask("heart", 8), make_target("heart", 8)[3] > 0.5)
    cfg = NCAModelConfig(channels=6, mask="disk")
    hard = build_model(cfg, "grow", KEY, mask=shape).cells.mask
    assert isinstance(hard, FixedMask) and hard.mode == "hard"
    np.testing.assert_array_equal(hard.mask, shape)
    soft = build_model(dataclasses.replace(cfg, mask_kind="soft"), "grow", KEY, mask=shape)
    x = soft.cells.mask(jnp.zeros((6, 12, 12)))
    np.testing.assert_array_equal(x[-1], shape)  # the last channel holds the shape
    assert not np.asarray(x[:-1]).any()
    trainable = build_model(
        dataclasses.replace(cfg, mask_kind="trainable"), "grow", KEY, mask=shape
    )
    assert isinstance(trainable.cells.mask, TrainableMask)
    np.testing.assert_allclose(trainable.cells.mask.logits, 4.0 * (2 * shape - 1))
    with pytest.raises(ValueError, match="give the argument mask"):
        build_model(cfg, "grow", KEY)


# ---------------------------------------------------------------------------- the workflows


def test_species_metrics_are_per_target_finite_and_below_the_untrained_ones():
    """40 steps on two 12x12 targets: every target's growth error is in the metrics, finite,
    below the untrained model's (the identity: its seed cell against the target, a closed
    form) and the mean is their mean."""
    species = SpeciesConfig(
        targets=("smiley", "heart"), size=12, rollout_steps=8, pool_size=8, batch_size=4,
        damage=0, reseed=2, samples=2,
    )  # fmt: skip
    cfg = NCATrainConfig(
        task="species",
        species=species,
        model=NCAModelConfig(channels=8, hidden=16, fire_rate=1.0),
        optim=dataclasses.replace(NCATrainConfig().optim, learning_rate=1e-2),
        train=steps(40),
    )
    fit = fit_nca(cfg, jax.random.key(2))
    m = fit.metrics
    assert fit.names == ("smiley", "heart")
    task = MultiTargetTask(fit.target, 8)
    seeds = np.asarray(task.seed(8))
    for s, name in enumerate(fit.names):
        closed = np.mean((seeds[s, :4] - fit.target[s]) ** 2)
        assert m[f"untrained_mse_{name}"] == pytest.approx(closed, rel=1e-5)
        assert np.isfinite(m[f"mse_{name}"]) and m[f"mse_{name}"] < 0.8 * closed, name
    assert m["mse"] == pytest.approx((m["mse_smiley"] + m["mse_heart"]) / 2, rel=1e-6)
    assert fit.frames.shape == (2, 9, 8, 12, 12) and list(fit.times) == list(range(9))


def test_a_short_morph_lowers_the_loss_to_the_target_from_where_it_started():
    morph = MorphConfig(
        source="smiley", target="heart", size=12, rollout_steps=8, pool_size=8, batch_size=4,
        reseed=1, samples=2,
    )  # fmt: skip
    cfg = NCATrainConfig(
        task="morph",
        morph=morph,
        model=NCAModelConfig(channels=8, hidden=16),
        optim=dataclasses.replace(NCATrainConfig().optim, learning_rate=1e-2),
        train=steps(40),
    )
    fit = fit_nca(cfg, jax.random.key(3))
    m = fit.metrics
    source, target = make_target("smiley", 12), make_target("heart", 12)
    assert m["mse_start"] == pytest.approx(np.mean((source - target) ** 2), rel=1e-6)
    assert m["untrained_mse"] == pytest.approx(m["mse_start"], rel=1e-5)  # the identity
    assert m["mse"] < 0.6 * m["mse_start"], m
    assert np.all(np.isfinite(fit.result.losses))
    assert fit.result.losses[-5:].mean() < 0.6 * fit.result.losses[:5].mean()
    np.testing.assert_array_equal(fit.frames[0, :4], source)
    assert fit.frames.shape == (9, 8, 12, 12) and fit.times[-1] == 16


def test_a_trained_hard_mask_keeps_the_outside_exactly_zero_and_is_saved(tmp_path):
    """Three steps of `fit_nca` on an 8x8 disk: the saved model holds the mask, and from any
    state its rollout is exactly 0 outside the disk after the first step."""
    grow = GrowConfig(size=8, pad=2, rollout_steps=3, pool_size=4, batch_size=2, reseed=1,
                      damage=0, samples=1)  # fmt: skip
    cfg = NCATrainConfig(
        model=NCAModelConfig(channels=6, hidden=8, mask="disk"), grow=grow, train=steps(3)
    )
    fit = fit_nca(cfg, jax.random.key(4), out=tmp_path)
    shape = make_mask("disk", 8, 2)
    np.testing.assert_array_equal(fit.mask, shape)
    model = AbstractNCA.load(tmp_path / "model.eqx")
    np.testing.assert_array_equal(model.cells.mask.mask, shape)
    x0 = jax.random.uniform(jax.random.key(5), (2, 6, 12, 12))
    frames = np.asarray(rollout_batch(model, x0, 10, jax.random.key(6), every=1))
    outside = np.broadcast_to(shape == 0, (6, 12, 12))
    assert np.all(frames[:, 1:][:, :, outside] == 0.0)
    assert np.any(frames[:, -1][:, ~outside] != frames[:, 1][:, ~outside])


# ---------------------------------------------------------------------------- the commands


def test_bad_names_and_same_pattern_morphs_are_one_line_and_exit_2(tmp_path, capsys):
    cases = [
        (["--task", "species", "--species.targets", "smiley,blob"], "species.targets"),
        (["--task", "morph", "--morph.source", "ring", "--morph.target", "ring"], "both 'ring'"),
        (["--task", "morph", "--morph.target", "nothing"], "morph.target must be one of"),
        (["--model.mask_kind", "soft"], "give model.mask"),
        (["--model.mask", "blob"], "model.mask must be one of"),
        (["--task", "grow", "--model.mask", "ring", "--quick"], "leaves out the centre cell"),
        (["--task", "pde", "--model.mask", "disk"], "not of task pde"),
    ]
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"run{i}"
        assert main(["nca", "train", *args, "--out", str(out)]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (args, err)
        assert not (out / "model.eqx").exists()


def test_a_cli_trained_hard_mask_keeps_the_outside_exactly_zero_and_nca_run_reloads_it(
    tmp_path, capsys
):
    out, run_out = tmp_path / "train", tmp_path / "run"
    args = [
        "nca", "train", "--task", "grow", "--quick", "--grow.size", "8", "--grow.pad", "2",
        "--grow.rollout_steps", "4", "--train.steps", "4", "--model.hidden", "8",
        "--model.mask", "disk", "--model.mask_kind", "hard", "--optim.learning_rate", "0.01",
    ]  # fmt: skip
    assert main([*args, "--out", str(out), "--seed", "1", "--json"]) == 0
    trained = last_json(capsys)
    assert np.isfinite(trained["mse"])
    recorded = yaml.safe_load((out / "config.yaml").read_text())["model"]
    assert (recorded["mask"], recorded["mask_kind"], recorded["boundary_weight"]) == (
        "disk",
        "hard",
        None,
    )
    shape = make_mask("disk", 8, 2)
    model = AbstractNCA.load(out / "model.eqx")
    assert isinstance(model.cells.mask, FixedMask) and model.cells.mask.mode == "hard"
    np.testing.assert_array_equal(model.cells.mask.mask, shape)
    outside = np.broadcast_to(shape == 0, (model.channels, 12, 12))
    # any state, even one full outside: after one step the outside is 0 and stays exactly 0
    x0 = jax.random.uniform(jax.random.key(5), (2, model.channels, 12, 12))
    frames = np.asarray(rollout_batch(model, x0, 20, jax.random.key(6), every=1))
    assert np.all(frames[:, 1:][:, :, outside] == 0.0)
    assert np.any(frames[:, -1][:, ~outside] != frames[:, 1][:, ~outside])  # inside: it lives
    run = ["nca", "run", "--model", str(out), "--samples", "2", "--json"]
    assert main([*run, "--out", str(run_out)]) == 0
    ran = last_json(capsys)
    assert np.isfinite(ran["mse"]) and ran["steps"] == 4 and (run_out / "rollout.gif").is_file()
    reloaded = run_nca(NCARunConfig(model=str(out), samples=2), jax.random.key(7))
    np.testing.assert_array_equal(reloaded.model.cells.mask.mask, shape)
    assert np.all(reloaded.growth.frames[1:][:, outside] == 0.0)  # grown, erased, regrown
    # another grid than the mask's is refused in one line
    assert main([*run, "--size", "10", "--out", str(tmp_path / "bad")]) == 2
    assert "mask's grid" in capsys.readouterr().err


@pytest.mark.heavy
def test_cli_species_with_a_soft_mask_writes_its_figures_and_per_target_metrics(tmp_path, capsys):
    """Labelled figures and GIF, per-target metrics, and a soft mask whose structure channel
    holds the shape exactly in every step."""
    out = tmp_path / "species"
    args = [
        "nca", "train", "--task", "species", "--species.targets", "smiley,heart", "--quick",
        "--species.size", "8", "--species.rollout_steps", "4", "--train.steps", "4",
        "--model.hidden", "8", "--model.mask", "disk", "--model.mask_kind", "soft",
        "--out", str(out), "--json",
    ]  # fmt: skip
    assert main(args) == 0
    m = last_json(capsys)
    for name in ("smiley", "heart"):
        assert np.isfinite(m[f"mse_{name}"]) and np.isfinite(m[f"untrained_mse_{name}"])
    for name in ("species.png", "species_rollout.gif", "loss.png", "channels.png"):
        assert (out / name).is_file(), name
    model = AbstractNCA.load(out / "model.eqx")
    assert model.channels == 8
    shape = make_mask("disk", 8)
    targets = np.stack([make_target(t, 8) for t in ("smiley", "heart")])
    frames = np.asarray(rollout_batch(model, MultiTargetTask(targets, 4).seed(8), 8, KEY, every=1))
    assert np.all(frames[:, 1:, -1] == shape)  # the structure channel, every step


@pytest.mark.heavy
def test_cli_morph_with_a_trainable_mask_writes_its_figures_and_trains_the_mask(tmp_path, capsys):
    out = tmp_path / "morph"
    args = [
        "nca", "train", "--task", "morph", "--morph.size", "8", "--morph.rollout_steps", "4",
        "--quick", "--train.steps", "4", "--model.hidden", "8", "--model.mask", "heart",
        "--model.mask_kind", "trainable", "--model.boundary_weight", "0.5",
        "--out", str(out), "--json",
    ]  # fmt: skip
    assert main(args) == 0
    m = last_json(capsys)
    assert {"mse", "mse_start", "mse_persisted", "untrained_mse", "best_mse"} <= set(m)
    assert all(np.isfinite(m[k]) for k in ("mse", "mse_persisted", "untrained_mse"))
    for name in ("morph.png", "morph_rollout.gif", "loss.png", "perception.png"):
        assert (out / name).is_file(), name
    logits = AbstractNCA.load(out / "model.eqx").cells.mask.logits
    assert np.any(np.asarray(logits) != 4.0 * (2 * make_mask("heart", 8) - 1))  # it trained
    # nca run refuses models of this task in one line
    assert main(["nca", "run", "--model", str(out), "--out", str(tmp_path / "r")]) == 2
    assert "trained on task 'morph'" in capsys.readouterr().err
