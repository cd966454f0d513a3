"""Per-group learning rates of `OptimConfig.group_learning_rates`: closed-form first steps of
sgd and adam, global clipping, schedules, the pattern rules, the command-line form and a
training run."""

import dataclasses
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from jaxtyping import Array

from diffdyn.common import (
    OptimConfig,
    TrainConfig,
    Trainer,
    build_config,
    cli,
    config_to_dict,
    load_config_file,
    parameter_groups,
    parse_value,
    write_config,
)

GROUPS = (("rhs.diffusion*", 1e-2), ("net*", 1e-3))
BASE = 0.1


class Rhs(eqx.Module):
    diffusion_a: Array
    diffusion_b: Array
    rate: Array


class Net(eqx.Module):
    weight: Array
    bias: Array


class Model(eqx.Module):
    rhs: Rhs
    net: Net


def _model():
    """Float64 inside a ``jax.enable_x64`` context."""
    a = jnp.asarray
    return Model(
        Rhs(a(0.3), a([0.1, 0.2]), a(1.5)), Net(a([[1.0, -2.0], [0.5, 3.0]]), a([0.1, -0.2]))
    )


def _grads():
    a = jnp.asarray
    return Model(
        Rhs(a(-0.7), a([2.0, -0.5]), a(0.25)), Net(a([[0.5, -1.0], [3.0, 0.125]]), a([1.0, -4.0]))
    )


def _rates():
    """The rate each leaf should get: its group's, the base rate for ``rhs.rate``."""
    lo, hi = GROUPS[0][1], GROUPS[1][1]
    return Model(Rhs(lo, lo, BASE), Net(hi, hi))


def _first_update(cfg, steps=10):
    opt = cfg.build(steps)
    params = _model()
    updates, _ = opt.update(_grads(), opt.init(params), params)
    return updates


def _check(updates, expected):
    for u, e in zip(
        jax.tree_util.tree_leaves(updates), jax.tree_util.tree_leaves(expected), strict=True
    ):
        np.testing.assert_allclose(u, e, rtol=1e-14, atol=0)


def test_sgd_first_step_is_minus_group_rate_times_gradient_and_base_rate_elsewhere():
    with jax.enable_x64(True):
        cfg = OptimConfig("sgd", learning_rate=BASE, group_learning_rates=GROUPS)
        expected = jax.tree_util.tree_map(lambda lr, g: -lr * g, _rates(), _grads())
        _check(_first_update(cfg), expected)


def test_adam_first_step_is_minus_group_rate_times_sign_of_gradient():
    # adam's first step: m = (1 - b1) g, v = (1 - b2) g^2, bias-corrected to g and g^2, so the
    # update is -lr g / (|g| + eps) = -lr sign(g) up to eps
    with jax.enable_x64(True):
        cfg = OptimConfig("adam", learning_rate=BASE, group_learning_rates=GROUPS)
        expected = jax.tree_util.tree_map(
            lambda lr, g: -lr * g / (jnp.abs(g) + 1e-8), _rates(), _grads()
        )
        updates = _first_update(cfg)
        _check(updates, expected)
        signs = jax.tree_util.tree_map(lambda lr, g: -lr * jnp.sign(g), _rates(), _grads())
        for u, e in zip(
            jax.tree_util.tree_leaves(updates), jax.tree_util.tree_leaves(signs), strict=True
        ):
            np.testing.assert_allclose(u, e, rtol=1e-7)


def test_clipping_acts_on_the_global_norm_of_all_groups():
    # ||g|| over every leaf; each group's step is -lr_group g c / ||g|| when ||g|| > c
    with jax.enable_x64(True):
        c = 0.5
        cfg = OptimConfig("sgd", learning_rate=BASE, clip_norm=c, group_learning_rates=GROUPS)
        norm = np.sqrt(sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(_grads())))
        assert norm > c
        expected = jax.tree_util.tree_map(lambda lr, g: -lr * g * c / norm, _rates(), _grads())
        _check(_first_update(cfg), expected)


@pytest.mark.parametrize("schedule, warmup", [("cosine", 0), ("warmup-cosine", 2)])
def test_schedule_scales_every_group_alike(schedule, warmup):
    # sgd with a fixed gradient: the step at t is -lr_group s(t) g with the schedule's factor
    # s(t) = t / W during the warm-up, then (1 + cos(pi (t - W) / (S - W))) / 2
    with jax.enable_x64(True):
        steps = 10
        cfg = OptimConfig(
            "sgd",
            learning_rate=BASE,
            schedule=schedule,
            warmup=warmup,
            group_learning_rates=GROUPS,
        )
        opt = cfg.build(steps)
        params, grads = _model(), _grads()
        state = opt.init(params)
        for t in range(6):
            updates, state = opt.update(grads, state, params)
            if t < warmup:
                s = t / warmup
            else:
                s = 0.5 * (1 + np.cos(np.pi * (t - warmup) / (steps - warmup)))
            expected = jax.tree_util.tree_map(lambda lr, g, s=s: -lr * s * g, _rates(), grads)
            for u, e in zip(
                jax.tree_util.tree_leaves(updates), jax.tree_util.tree_leaves(expected), strict=True
            ):
                np.testing.assert_allclose(u, e, rtol=1e-6)  # optax schedules: float32
        # at the last step checked, the ratio of the two groups' steps is still lr1 / lr2
        ratio = (updates.rhs.diffusion_a / grads.rhs.diffusion_a) / (
            updates.net.bias[0] / grads.net.bias[0]
        )
        assert float(ratio) == pytest.approx(GROUPS[0][1] / GROUPS[1][1], rel=1e-6)


def test_patterns_select_runs_of_whole_path_components():
    params = _model()
    groups = parameter_groups(params, ["diffusion_b", "net.weight", "rhs"])
    assert groups == Model(Rhs(2, 0, 2), Net(1, -1))
    # a leading dot (as keystr writes paths) is ignored; * crosses dots; the first pattern wins
    assert parameter_groups(params, [".rhs.rate", "*"]) == Model(Rhs(1, 1, 0), Net(1, 1))
    # inside a wrapper (a strategy's parameters, a bound method) the same patterns select
    wrapped = {"model": params}
    labels = parameter_groups(wrapped, ["rhs.diffusion*", "net*"])
    assert labels["model"] == Model(Rhs(0, 0, -1), Net(1, 1))
    # brackets are literal: layers[0] is the first layer, not a character class
    mlp = eqx.nn.MLP(2, 2, 3, 1, key=jax.random.key(0))
    labels = parameter_groups(eqx.filter(mlp, eqx.is_array), ["layers[0]"])
    assert [lab for lab in jax.tree_util.tree_leaves(labels)] == [0, 0, -1, -1]


def test_a_pattern_that_selects_nothing_is_one_line_naming_it_and_the_paths():
    with pytest.raises(ValueError, match=r"'diffusion' matches no trained parameter") as e:
        parameter_groups(_model(), ["diffusion"])
    assert "rhs.diffusion_a, rhs.diffusion_b, rhs.rate" in str(e.value)
    assert "\n" not in str(e.value)
    # a pattern shadowed by an earlier one has no effect: an error too
    with pytest.raises(ValueError, match=r"'rhs.rate' selects no parameter.*earlier pattern"):
        parameter_groups(_model(), ["rhs", "rhs.rate"])


def test_trainer_fails_at_init_on_an_unmatched_pattern():
    cfg = OptimConfig("sgd", learning_rate=BASE, group_learning_rates=(("rhs.difusion*", 1e-2),))
    trainer = Trainer(lambda m, b, k: jnp.sum(m.rhs.rate**2), cfg, config=TrainConfig(steps=2))
    with pytest.raises(ValueError, match=r"'rhs.difusion\*' matches no trained parameter"):
        trainer.fit(_model(), None, jax.random.key(0))


@pytest.mark.parametrize(
    "groups, error",
    [
        ((("a", 0.0),), "finite and > 0"),
        ((("a", -1e-3),), "finite and > 0"),
        ((("a", float("nan")),), "finite and > 0"),
        ((("a", float("inf")),), "finite and > 0"),
        ((("a", True),), "must be a number"),
        ((("", 1e-3),), "non-empty string"),
        ((("a", 1e-3), ("a", 1e-2)), "given twice"),
        ((("a", 1e-3, 2),), r"\(pattern, rate\) pairs"),
        ("a=1e-3", r"\(pattern, rate\) pairs"),
    ],
)
def test_bad_groups_are_refused(groups, error):
    with pytest.raises((ValueError, TypeError), match=error):
        OptimConfig(group_learning_rates=groups)


def test_groups_given_as_a_mapping_or_lists_are_stored_as_pairs():
    want = OptimConfig(group_learning_rates=(("a", 0.5), ("b", 2.0)))
    assert OptimConfig(group_learning_rates={"a": 0.5, "b": 2}) == want
    assert OptimConfig(group_learning_rates=[["a", 0.5], ["b", 2.0]]) == want
    assert hash(want) == hash(OptimConfig(group_learning_rates=[("a", 0.5), ("b", 2.0)]))


@dataclasses.dataclass(frozen=True)
class Run:
    optim: OptimConfig = OptimConfig()


def test_command_line_form_parses_and_round_trips_through_config_yaml(tmp_path):
    want = (("rhs.diffusion*", 1e-2), ("net*", 1e-3))
    text = "rhs.diffusion*=1e-2,net*=1e-3"
    cfg = build_config(Run, overrides={"optim.group_learning_rates": text})
    assert cfg.optim.group_learning_rates == want
    assert build_config(Run, overrides=[f"optim.group_learning_rates={text}"]) == cfg
    assert build_config(Run, overrides=["optim.group_learning_rates= a = 0.5 "]).optim == (
        OptimConfig(group_learning_rates=(("a", 0.5),))
    )
    as_json = '[["rhs.diffusion*", 0.01], ["net*", 0.001]]'
    assert build_config(Run, overrides={"optim.group_learning_rates": as_json}) == cfg
    assert build_config(Run, overrides={"optim.group_learning_rates": ""}).optim == OptimConfig()
    with pytest.raises(ValueError, match="finite"):
        build_config(Run, overrides={"optim.group_learning_rates": "net*=inf"})
    # what ran is recorded, and reads back the same
    path = write_config(cfg, tmp_path / "config.yaml")
    assert "rhs.diffusion*" in path.read_text()
    assert build_config(Run, load_config_file(path)) == cfg
    assert config_to_dict(cfg)["optim"]["group_learning_rates"] == [list(p) for p in want]
    # a plain pair reads from KEY=VALUE; other tuples keep their comma form
    assert parse_value(tuple[str, float], "x.y=2", "k") == ("x.y", 2.0)
    assert parse_value(tuple[str, float], "x.y,2", "k") == ("x.y", 2.0)


class Pair(eqx.Module):
    slow: Array
    fast: Array


def _pair_loss(model, batch, key):
    return jnp.sum((model.slow - 1.0) ** 2) + jnp.sum((model.fast - 1.0) ** 2)


P0 = (0.0, 3.0)


def test_training_moves_a_small_rate_group_much_less():
    # sgd on (p - 1)^2: p_k - 1 = (1 - 2 lr)^k (p_0 - 1) for each group's own rate
    steps, slow, fast = 5, 1e-3, 0.1
    cfg = OptimConfig("sgd", learning_rate=fast, group_learning_rates=(("slow", slow),))
    config = TrainConfig(steps=steps, log_every=steps, progress=False, track_best=False)
    p0 = jnp.asarray(P0)
    result = Trainer(_pair_loss, cfg, config=config).fit(Pair(p0, p0), None, jax.random.key(0))
    for leaf, lr in ((result.model.slow, slow), (result.model.fast, fast)):
        np.testing.assert_allclose(leaf, 1.0 + (1 - 2 * lr) ** steps * (p0 - 1.0), atol=1e-6)
    moved_slow = float(jnp.max(jnp.abs(result.model.slow - p0)))
    moved_fast = float(jnp.max(jnp.abs(result.model.fast - p0)))
    assert moved_slow < 0.02 * moved_fast


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """A fit of two parameters.

    Attributes:
        optim: the optimiser.
        train: the run.
    """

    optim: OptimConfig = OptimConfig("sgd", learning_rate=0.1)
    train: TrainConfig = TrainConfig(steps=3, log_every=3, progress=False, track_best=False)


@pytest.fixture
def fit_command():
    @cli.command("testing", "groups", FitConfig, help="fit two parameters", trains=True)
    def fit(cfg, ctx):
        p0 = jnp.asarray(P0)
        trainer = Trainer(_pair_loss, cfg.optim, config=cfg.train)
        result = trainer.fit(Pair(p0, p0), None, jax.random.key(ctx.seed))
        return {"slow": float(result.model.slow[1]), "fast": float(result.model.fast[1])}

    yield
    cli.COMMANDS.pop(("testing", "groups"))


def test_command_line_runs_the_groups_records_them_and_refuses_an_unmatched_one(
    tmp_path, capsys, fit_command
):
    out = tmp_path / "run"
    argv = ["testing", "groups", "--out", str(out), "--json"]
    assert cli.main([*argv, "--optim.group_learning_rates", "slow=1e-3"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # three sgd steps on (p - 1)^2 from p = 3: p = 1 + 2 (1 - 2 lr)^3
    assert metrics["slow"] == pytest.approx(1 + 2 * (1 - 2e-3) ** 3, rel=1e-6)
    assert metrics["fast"] == pytest.approx(1 + 2 * (1 - 0.2) ** 3, rel=1e-6)
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["optim"]["group_learning_rates"] == [["slow", 1e-3]]
    # a pattern that selects nothing fails before training: one line naming it and the paths
    bad = [*argv[:3], str(tmp_path / "bad"), "--optim.group_learning_rates", "slow=1e-3,net*=1"]
    assert cli.main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'net*' matches no trained parameter" in err and "slow, fast" in err


def test_a_run_recorded_before_the_setting_existed_resumes_at_its_default(
    tmp_path, capsys, fit_command
):
    """A setting added to diffdyn after a run was recorded is absent from its config.yaml; at
    its default it changes nothing that ran, so --resume accepts it; set, it is a change."""
    out = tmp_path / "run"
    argv = ["testing", "groups", "--out", str(out), "--json"]
    assert cli.main(argv) == 0
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    del recorded["optim"]["group_learning_rates"]  # as written by an older diffdyn
    (out / "config.yaml").write_text(yaml.safe_dump(recorded))
    capsys.readouterr()
    assert cli.main([*argv, "--resume"]) == 0
    assert "group_learning_rates" not in capsys.readouterr().err
    assert cli.main([*argv, "--resume", "--optim.group_learning_rates", "slow=1e-3"]) == 2
    # (the accepted resume recorded the default, [])
    assert "optim.group_learning_rates ([] -> [['slow', 0.001]])" in capsys.readouterr().err
