"""Oscillator systems, discovery models and settings, fitting, the sweep's report, and the
discover command."""

import csv
import dataclasses
import json
import math
import subprocess
import sys
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from diffdyn.common import (
    AbstractModel,
    Homotopy,
    MultipleShooting,
    OptimConfig,
    Plain,
    SolveConfig,
    TrainConfig,
)
from diffdyn.common.cli import main
from diffdyn.common.neural_de import MLPField
from diffdyn.oscillators import (
    DISCOVERY_PRESETS,
    PUBLISHED_SOLVE,
    SYSTEMS,
    DiscoverConfig,
    DoublePendulum,
    LotkaVolterra,
    LotkaVolterraGrayBox,
    SecondOrderField,
    build_discovery_model,
    claim_holds,
    discovery_ensemble,
    discovery_fit_plot,
    discovery_run,
    discovery_settings,
    discovery_task,
    evaluate_field,
    fit_system,
    make_dataset,
    resolve_discovery,
    summarise_results,
    sweep_runs,
    trajectory_of,
    write_results,
)


@pytest.fixture(scope="module")
def lv():
    return make_dataset("lotka-volterra")


# ----------------------------------------------------------------------------- systems
def test_lotka_volterra_data_conserves_its_first_integral(lv):
    f = LotkaVolterra()
    for ys in (lv.clean, lv.ys_extrap):
        x, y = ys[:, 0], ys[:, 1]
        v = f.c * x - f.d * np.log(x) + f.b * y - f.a * np.log(y)
        np.testing.assert_allclose(v, v[0], rtol=1e-8)
    assert lv.ts.shape == (61,) and lv.ts[-1] == pytest.approx(6.0)
    # noise: 5 % of the per-dim temporal mean (std ~ (0.102, 0.081), as in Ko et al. 2023)
    np.testing.assert_allclose(lv.noise_std, 0.05 * lv.clean.mean(0), rtol=1e-12)
    np.testing.assert_allclose(lv.noise_std, [0.102, 0.081], atol=2e-3)
    ratio = (lv.ys - lv.clean).std(0) / lv.noise_std
    assert np.all((ratio > 0.7) & (ratio < 1.3))


def test_double_pendulum_conserves_energy():
    ds = make_dataset("double-pendulum", noise=0.0)
    with jax.enable_x64(True):
        e = np.asarray(
            DoublePendulum().energy(jnp.asarray(np.concatenate([ds.clean, ds.ys_extrap])))
        )
    np.testing.assert_allclose(e, e[0], rtol=1e-8, atol=1e-9)
    np.testing.assert_array_equal(ds.ys, ds.clean)  # noise 0 leaves the data clean


def test_true_field_has_zero_interpolation_and_extrapolation_error(lv):
    with jax.enable_x64(True):
        m = evaluate_field(
            LotkaVolterra(), lv, SolveConfig(solver="dopri5", rtol=1e-10, atol=1e-12)
        )
    assert m["interp_mse_clean"] < 1e-14 and m["extrap_mse"] < 1e-14
    np.testing.assert_allclose(m["interp_mse"], np.mean((lv.ys - lv.clean) ** 2), rtol=1e-6)


# ----------------------------------------------------------------------------- models
def test_models_structure_and_save_load(tmp_path):
    key = jax.random.key(0)
    so = SecondOrderField(4, 8, 1, key=key)
    y = jnp.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(np.asarray(so(0.0, y)[:2]), np.asarray(y[2:]))  # dθ/dt = ω
    gb = LotkaVolterraGrayBox(8, 1, a=1.1, d=1.7, learn_rates=True, inputs="interaction", key=key)
    assert gb.num_parameters() == 2 + (1 * 8 + 8) + (8 * 2 + 2)
    gb.save(tmp_path / "gb.eqx")
    back = LotkaVolterraGrayBox.load(tmp_path / "gb.eqx")
    np.testing.assert_array_equal(np.asarray(back(0.0, y[:2])), np.asarray(gb(0.0, y[:2])))
    fixed = LotkaVolterraGrayBox(8, 1, key=key)
    assert fixed.physics == (1.3, 1.8) and fixed.num_parameters() == 8 * 2 + 8 + 8 * 2 + 2
    # with a, d fixed the field is a x, -d y plus the MLP exactly
    u = jnp.array([0.7, 1.9])
    np.testing.assert_allclose(
        np.asarray(fixed(0.0, u) - fixed.mlp(u)), [1.3 * 0.7, -1.8 * 1.9], rtol=1e-6
    )


def test_the_black_box_is_the_one_gelu_mlp_field_of_neural_de():
    s = discovery_settings("lorenz", "blackbox", "plain")
    field = build_discovery_model("lorenz", "blackbox", s, jax.random.key(1))
    assert isinstance(field, MLPField) and field.activation == "gelu"
    assert field.num_parameters() == 3 * 50 + 50 + 50 * 50 + 50 + 50 * 3 + 3
    y = jnp.array([0.3, -0.1, 0.2])
    h = jax.nn.gelu(field.mlp.layers[0].weight @ y + field.mlp.layers[0].bias)
    h = jax.nn.gelu(field.mlp.layers[1].weight @ h + field.mlp.layers[1].bias)
    expected = field.mlp.layers[2].weight @ h + field.mlp.layers[2].bias
    np.testing.assert_allclose(np.asarray(field(0.0, y)), np.asarray(expected), rtol=1e-6)
    with pytest.raises(ValueError, match="gray box"):
        build_discovery_model("lorenz", "blackbox", s, jax.random.key(1), learn_rates=True)


@pytest.mark.parametrize(
    "cls, hyperparameters",
    [
        (
            LotkaVolterraGrayBox,
            {"width": 4, "depth": 1, "a": 1.2, "d": 1.7, "learn_rates": True, "inputs": "state"},
        ),
        (SecondOrderField, {"state_dim": 4, "width": 4, "depth": 1}),
    ],
)
def test_discovery_model_files_of_0_1_0_load(tmp_path, cls, hyperparameters):
    """0.1.0 wrote these models from the module ``oscillators.discovery``."""
    model = cls(**hyperparameters, key=jax.random.key(2))
    path = model.save(tmp_path / "new.eqx")
    _, leaves = path.read_bytes().split(b"\n", 1)
    old = {
        "format": "diffdyn-model/1",
        "module": "oscillators.discovery",
        "class": cls.__name__,
        "hyperparameters": hyperparameters,
    }
    (tmp_path / "old.eqx").write_bytes(json.dumps(old).encode() + b"\n" + leaves)
    back = AbstractModel.load(tmp_path / "old.eqx")
    assert type(back) is cls
    y = jnp.ones(hyperparameters.get("state_dim", 2)) * 0.3
    np.testing.assert_array_equal(np.asarray(back(0.0, y)), np.asarray(model(0.0, y)))


# ----------------------------------------------------------------------------- settings
def test_settings_follow_the_published_values_in_steps():
    s = discovery_settings("lotka-volterra", "blackbox", "homotopy")
    assert (s.width, s.depth, s.k, s.alpha, s.steps) == (32, 1, 6.0, 1e-3, 600)
    assert s.optim == OptimConfig("adamw", 0.05, weight_decay=0.01)
    assert s.solve == PUBLISHED_SOLVE == SolveConfig("dopri5", rtol=1e-7, atol=1e-9, max_steps=4096)
    # 6 plateaus of 100 steps; lambda_j = 1 - sum_{m<j} r^m / sum_{m<M} r^m, the last 0
    assert s.schedule.steps_per_plateau == 100 and s.schedule.total_steps == 600
    r = 0.6 ** np.arange(5)
    np.testing.assert_allclose(s.schedule.values, [1, *(1 - np.cumsum(r) / r.sum())], atol=1e-15)
    plain = discovery_settings("lotka-volterra", "blackbox", "plain")
    assert (plain.steps, plain.optim.learning_rate) == (4000, 0.02)
    lorenz = discovery_settings("lorenz", "blackbox", "homotopy", k=None, optim=OptimConfig())
    assert (lorenz.decrements, lorenz.schedule.steps_per_plateau, lorenz.k) == (7, 300, 6.0)
    assert lorenz.optim == OptimConfig() and lorenz.steps == 2400
    pendulum = discovery_settings("double-pendulum", "second-order", "multiple-shooting")
    assert (pendulum.continuity, pendulum.segments, pendulum.steps) == (2e-3, 5, 4000)
    assert (
        discovery_settings("double-pendulum", "blackbox", "homotopy").schedule.steps_per_plateau
        == 300
    )


def test_settings_refuse_a_homotopy_length_that_is_not_whole_plateaus():
    with pytest.raises(ValueError, match="multiple of 6"):
        discovery_settings("lotka-volterra", "blackbox", "homotopy", steps=700)
    s = discovery_settings("lotka-volterra", "blackbox", "homotopy", steps=700, decrements=6)
    assert s.schedule.steps_per_plateau == 100
    # plain and multiple shooting take any length
    assert discovery_settings("lorenz", "blackbox", "plain", steps=7).steps == 7
    with pytest.raises(ValueError, match="graybox"):
        discovery_settings("lorenz", "graybox", "plain")
    with pytest.raises(ValueError, match="method"):
        discovery_settings("lorenz", "blackbox", "adjoint")
    with pytest.raises(TypeError, match="epochs"):
        discovery_settings("lorenz", "blackbox", "plain", epochs=10)
    with pytest.raises(ValueError, match="unknown system"):
        make_dataset("pendulum")
    assert set(SYSTEMS) == {"lotka-volterra", "lorenz", "double-pendulum", "van-der-pol"}


def test_the_task_of_each_method_and_its_length(lv):
    with jax.enable_x64(True):  # the data are float64
        data = trajectory_of(lv)
        tasks = {
            m: discovery_task(discovery_settings("lorenz", "blackbox", m), data)
            for m in ("plain", "multiple-shooting", "homotopy")
        }
    assert isinstance(tasks["plain"], Plain) and tasks["plain"].steps() is None
    ms = tasks["multiple-shooting"]
    assert isinstance(ms, MultipleShooting) and (ms.segments, ms.continuity) == (5, 0.5)
    h = tasks["homotopy"]
    assert isinstance(h, Homotopy) and h.steps() == 2400 and h.solve == PUBLISHED_SOLVE
    settings = discovery_settings("lotka-volterra", "blackbox", "plain")
    field = build_discovery_model("lotka-volterra", "blackbox", settings, jax.random.key(0))
    with pytest.raises(ValueError, match="train.steps is 10 but the settings are for 4000"):
        fit_system(field, lv, settings, jax.random.key(0), train=TrainConfig(steps=10))


def test_the_published_targets_are_the_sweep_choices():
    hints = typing.get_type_hints(DiscoverConfig)
    (target,) = typing.get_args(hints["targets"])[:1]
    assert set(typing.get_args(target)) == {f"{s}:{m}" for s, m in DISCOVERY_PRESETS}


# ----------------------------------------------------------------------------- the config
def test_unset_settings_take_the_published_values_once():
    ran, s = resolve_discovery(DiscoverConfig())
    assert (s.method, s.steps, s.optim.learning_rate, s.width) == ("homotopy", 600, 0.05, 32)
    assert ran == dataclasses.replace(
        DiscoverConfig(),
        width=32,
        depth=1,
        k=6.0,
        alpha=1e-3,
        decrements=5,
        ratio=0.6,
        noise=0.05,
    )
    ran, s = resolve_discovery(DiscoverConfig(method="plain"))
    assert (s.steps, s.optim.learning_rate) == (4000, 0.02)
    assert (ran.train.steps, ran.optim.learning_rate, ran.k, ran.segments) == (
        4000,
        0.02,
        None,
        None,
    )
    ran, s = resolve_discovery(DiscoverConfig(system="lorenz", method="homotopy"))
    assert (s.steps, s.decrements, s.schedule.steps_per_plateau, s.alpha) == (2400, 7, 300, 1e-4)
    assert ran.noise == 0.25 and ran.optim.learning_rate == 0.02
    # resolving what ran gives what ran
    assert resolve_discovery(ran) == (ran, s)


def test_given_settings_win_over_the_published_ones():
    cfg = DiscoverConfig(
        method="plain",
        width=8,
        optim=OptimConfig("adamw", 0.01, weight_decay=0.01, clip_norm=1.0),
        train=dataclasses.replace(DiscoverConfig().train, steps=30),
        solve=SolveConfig("tsit5", rtol=1e-5, atol=1e-7),
    )
    ran, s = resolve_discovery(cfg)
    assert (s.steps, s.width, s.depth) == (30, 8, 1)
    assert s.optim == OptimConfig("adamw", 0.01, weight_decay=0.01, clip_norm=1.0)
    assert s.solve == cfg.solve and ran.train.steps == 30
    # homotopy: the length is train.steps, split into decrements + 1 plateaus
    cfg = DiscoverConfig(decrements=6, train=dataclasses.replace(cfg.train, steps=70))
    assert resolve_discovery(cfg)[1].schedule.steps_per_plateau == 10
    with pytest.raises(ValueError, match="multiple of 7"):
        resolve_discovery(DiscoverConfig(decrements=6))  # 600 steps are not 7 plateaus


@pytest.mark.parametrize(
    "values, match",
    [
        ({"method": "plain", "k": 3.0}, "k is a setting of homotopy"),
        ({"segments": 4}, "segments is a setting of multiple-shooting"),
        ({"learn_rates": True}, "gray box"),
        ({"workers": 2}, "settings of a sweep"),
        ({"seeds": (1,)}, "settings of a sweep"),
        ({"sweep": True, "method": "plain"}, "a sweep trains with every method"),
        ({"sweep": True, "methods": ("plain",), "alpha": 0.1}, "alpha is a setting of homotopy"),
        ({"system": "lorenz", "model": "graybox"}, "graybox"),
        ({"train": TrainConfig(image_every=5)}, "draw no images"),
        ({"train": TrainConfig(validate_every=5)}, "no held-out data"),
        ({"workers": 0, "sweep": True}, "workers"),
    ],
)
def test_settings_that_do_not_apply_are_refused(values, match):
    with pytest.raises(ValueError, match=match):
        DiscoverConfig(**values)


def test_quick_configs_are_short_and_whole_plateaus():
    q = DiscoverConfig().quick()
    assert (q.train.steps, q.train.log_every) == (42, 10)  # 6 plateaus of 7 steps
    assert resolve_discovery(q)[1].schedule.steps_per_plateau == 7
    assert DiscoverConfig(system="lorenz").quick().train.steps == 40  # 8 plateaus of 5
    assert DiscoverConfig(method="plain").quick().train.steps == 40
    assert DiscoverConfig(decrements=6).quick().train.steps == 42  # 7 plateaus of 6
    sweep = DiscoverConfig(sweep=True, targets=("lotka-volterra:blackbox", "lorenz:blackbox"))
    q = sweep.quick()
    assert q.train.steps == 48 and q.seeds == (10,)  # lcm(6, 8) = 24
    assert all(resolve_discovery(one)[1].steps == 48 for _, one, _ in sweep_runs(q))


def test_a_sweep_runs_every_target_method_and_seed_in_order():
    cfg = DiscoverConfig(
        sweep=True,
        methods=("plain", "homotopy"),
        seeds=(1, 2),
        targets=("lotka-volterra:graybox", "lorenz:blackbox"),
        k=3.0,
        learn_rates=True,
    )
    runs = sweep_runs(cfg)
    assert [name for name, _, _ in runs] == [
        f"{t}/{m}/seed{s}"
        for t in ("lotka-volterra-graybox", "lorenz-blackbox")
        for m in ("plain", "homotopy")
        for s in (1, 2)
    ]
    for _, one, seed in runs:
        assert not one.sweep and one.seeds == DiscoverConfig().seeds and seed in (1, 2)
        assert one.k == (3.0 if one.method == "homotopy" else None)
        assert one.learn_rates == (one.model == "graybox")
    with pytest.raises(ValueError, match="sweep"):
        resolve_discovery(cfg)


# ----------------------------------------------------------------------------- the report
def _row(system, method, seed, interp, best_step, steps=100):
    return {
        "system": system,
        "model": "blackbox",
        "method": method,
        "seed": seed,
        "interp_mse": interp,
        "interp_mse_clean": interp / 2,
        "extrap_mse": 2 * interp,
        "best_step": best_step,
        "steps": steps,
        "best_train_mse": interp,
        "seconds": 1.0,
    }


def test_the_report_averages_over_seeds_and_checks_the_claim(tmp_path):
    rows = [
        _row("lorenz", "plain", 1, 1.0, 90),
        _row("lorenz", "plain", 2, 3.0, 70),
        _row("lorenz", "homotopy", 1, 2.0, 40),
        _row("lorenz", "homotopy", 2, 2.0, 20),
        _row("lotka-volterra", "plain", 1, 0.1, 80),
        _row("lotka-volterra", "homotopy", 1, 0.1, 50),
        _row("lotka-volterra", "homotopy", 2, math.inf, 60),  # a failed run: left out
    ]
    summary = summarise_results(rows)
    assert [(e["system"], e["method"], e["seeds"]) for e in summary] == [
        ("lorenz", "plain", 2),
        ("lorenz", "homotopy", 2),
        ("lotka-volterra", "plain", 1),
        ("lotka-volterra", "homotopy", 2),
    ]
    plain = summary[0]
    assert (plain["interp_mse"], plain["best_step"]) == (2.0, 80.0)
    assert plain["interp_mse_se"] == pytest.approx(np.std([1.0, 3.0], ddof=1) / np.sqrt(2))
    assert summary[1]["interp_mse_se"] == 0.0 and math.isnan(summary[2]["interp_mse_se"])
    assert summary[3]["interp_mse"] == 0.1 and summary[3]["best_step"] == 55.0
    # an equal mean MSE in fewer steps holds: Lorenz 2.0 <= 2.0 and 30 < 80
    assert claim_holds(summary) == {"lorenz:blackbox": True, "lotka-volterra:blackbox": True}
    rows[2]["interp_mse"] = 2.2  # homotopy mean 2.1 > 2.0
    assert claim_holds(summarise_results(rows))["lorenz:blackbox"] is False
    assert claim_holds(summarise_results(rows[:2])) == {}  # no homotopy, no verdict

    metrics = write_results(rows, tmp_path)
    assert metrics == {
        "runs": 7,
        "table": str(tmp_path / "results.md"),
        "claim_holds.lorenz:blackbox": False,
        "claim_holds.lotka-volterra:blackbox": True,
    }
    with open(tmp_path / "results.csv") as f:
        written = list(csv.DictReader(f))
    assert [(r["system"], r["method"], r["seed"]) for r in written] == [
        (r["system"], r["method"], str(r["seed"])) for r in rows
    ]
    assert list(written[0])[4:9] == [
        "interp_mse",
        "interp_mse_clean",
        "extrap_mse",
        "best_step",
        "steps",
    ]
    md = (tmp_path / "results.md").read_text()
    assert "| lorenz | blackbox | plain | 2 | 2 ± 1 | 1 ± 0.5 | 4 ± 2 | 80 | 100 |" in md
    assert (
        "- lorenz:blackbox: the claim (homotopy: equal or lower interpolation MSE in fewer "
        "steps than every other method, on the means over seeds) does not hold." in md
    )


def test_discovery_figures_are_written(tmp_path, lv):
    ts = np.linspace(0, 9, 50)
    ys = np.stack([np.sin(ts), np.cos(ts)], -1)
    path = discovery_fit_plot(lv, ts, ys, tmp_path / "fit.png", names=("x", "y"))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.heavy
# ----------------------------------------------------------------------------- fitting
def test_the_best_model_is_scored_by_its_uncoupled_mse_after_the_first_block(lv):
    settings = discovery_settings("lotka-volterra", "blackbox", "plain", steps=30)
    train = TrainConfig(steps=30, log_every=10, progress=False)
    with jax.enable_x64(True):
        field = build_discovery_model("lotka-volterra", "blackbox", settings, jax.random.key(3))
        result, metrics = fit_system(field, lv, settings, jax.random.key(4), train=train)
    losses = np.asarray(result.losses)
    assert len(losses) == 30 and result.selected_by == "loss"
    # never chosen within the first logging block; the lowest loss after it
    assert result.best_step == 10 + int(np.argmin(losses[10:]))
    assert metrics["best_step"] == result.best_step and metrics["steps"] == 30
    # best_loss, the uncoupled training MSE of the best model, is its interpolation MSE
    assert metrics["best_train_mse"] == pytest.approx(metrics["interp_mse"], rel=1e-5)
    assert metrics["interp_mse"] == pytest.approx(losses[result.best_step], rel=1e-5)


@pytest.mark.heavy
def test_an_ensemble_of_seeds_equals_one_run_per_seed(tmp_path):
    cfg = DiscoverConfig(
        method="plain",
        train=TrainConfig(steps=12, log_every=4, progress=False),
        solve=SolveConfig(solver="dopri5", rtol=1e-5, atol=1e-7, max_steps=4096),
    )
    given = {"train.steps"}
    runs = discovery_ensemble(cfg, [10, 20], out=tmp_path / "ens", given=given)
    for seed, run in zip([10, 20], runs, strict=True):
        one = discovery_run(cfg, seed=seed, given=given)
        assert run["seed"] == seed and run["best_step"] == one["best_step"]
        for name in ("interp_mse", "extrap_mse", "best_train_mse"):
            assert run[name] == pytest.approx(one[name], rel=1e-9), name
    assert runs[0]["interp_mse"] != runs[1]["interp_mse"]
    for i, seed in enumerate([10, 20]):
        assert (tmp_path / "ens" / f"seed{seed}" / "best_field.eqx").exists()
        assert (tmp_path / "ens" / f"seed{seed}" / "config.yaml").exists()
        assert (tmp_path / "ens" / f"member_{i}" / "model.eqx").exists()


def test_command_rejects_bad_input_before_compiling(tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["oscillators", "discover", "--out", out]
    assert main([*argv, "--system", "lorenz", "--model", "graybox"]) == 2
    assert "graybox" in capsys.readouterr().err
    assert main([*argv, "--sweep", "--targets", "lorenz"]) == 2
    assert main([*argv, "--sweep", "--workers", "0"]) == 2
    assert main([*argv, "--method", "plain", "--k", "3"]) == 2
    assert "k is a setting of homotopy" in capsys.readouterr().err
    assert main([*argv, "--decrements", "6"]) == 2
    assert "multiple of 7" in capsys.readouterr().err
    assert main([*argv, "--sweep", "--seed", "3"]) == 2
    assert "seeds" in capsys.readouterr().err
    # a sweep resolves every run first: Lorenz's published 2400 steps are not 7 plateaus
    assert main([*argv, "--sweep", "--targets", "lorenz:blackbox", "--decrements", "6"]) == 2
    assert "multiple of 7" in capsys.readouterr().err
    assert not (tmp_path / "run" / "tb").exists()


def test_config_yaml_records_the_published_values_that_ran(tmp_path):
    out = tmp_path / "run"
    argv = ["oscillators", "discover", "--out", str(out), "--method", "plain"]
    argv += ["--train.max_seconds", "0.01", "--train.log_every", "2"]
    assert main(argv) == 0
    ran = yaml.safe_load((out / "config.yaml").read_text())
    assert ran["train"]["steps"] == 4000 and ran["optim"]["learning_rate"] == 0.02
    assert (ran["width"], ran["depth"], ran["noise"], ran["k"]) == (32, 1, 0.05, None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "plain" and 1 <= metrics["steps"] < 4000  # stopped by time
    assert (out / "best_field.eqx").exists() and (out / "figures" / "fit.png").exists()


# ----------------------------------------------------------------------------- heavy
@pytest.mark.heavy
def test_sweep_in_two_worker_processes(tmp_path):
    """A sweep run by two worker processes writes every run in order, and each run equals the
    same fit done here."""
    out = tmp_path / "sweep"
    argv = ["oscillators", "discover", "--out", str(out), "--sweep", "--workers", "2"]
    argv += ["--methods", "plain,homotopy", "--seeds", "10,20", "--train.steps", "12"]
    argv += ["--train.log_every", "4", "--solve.rtol", "1e-5", "--solve.atol", "1e-7"]
    code = f"from diffdyn.common.cli import main; raise SystemExit(main({argv!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["seed"]) for r in rows] == [
        ("plain", "10"),
        ("plain", "20"),
        ("homotopy", "10"),
        ("homotopy", "20"),
    ]
    assert "| lotka-volterra | blackbox | homotopy | 2 |" in (out / "results.md").read_text()
    one = yaml.safe_load((out / "lotka-volterra-blackbox/plain/seed20/config.yaml").read_text())
    assert one["train"]["steps"] == 12 and one["optim"]["learning_rate"] == 0.02
    settings = discovery_settings(
        "lotka-volterra",
        "blackbox",
        "plain",
        steps=12,
        solve=SolveConfig(solver="dopri5", rtol=1e-5, atol=1e-7, max_steps=4096),
    )
    with jax.enable_x64(True):
        model_key, train_key = jax.random.split(jax.random.key(20))
        field = build_discovery_model("lotka-volterra", "blackbox", settings, model_key)
        train = TrainConfig(steps=12, log_every=4, progress=False)
        _, metrics = fit_system(
            field, make_dataset("lotka-volterra"), settings, train_key, train=train
        )
    assert int(rows[1]["steps"]) == metrics["steps"] == 12
    assert int(rows[1]["best_step"]) == metrics["best_step"] >= 4
    assert float(rows[1]["interp_mse"]) == pytest.approx(metrics["interp_mse"], rel=1e-9)


@pytest.mark.heavy
def test_graybox_recovers_a_and_d_on_noise_free_data():
    """Gray box (a x, -d y) + MLP(x y) with trainable a, d from 15 % / 11 % off; homotopy."""
    ds = make_dataset("lotka-volterra", noise=0.0)
    s = discovery_settings(
        "lotka-volterra",
        "graybox",
        "homotopy",
        width=8,
        depth=1,
        steps=720,  # 6 plateaus of 120 steps
        optim=OptimConfig("adamw", 0.05),
        alpha=0.0,
    )
    with jax.enable_x64(True):
        model_key, train_key = jax.random.split(jax.random.key(0))
        field = LotkaVolterraGrayBox(
            8, 1, a=1.1, d=1.6, learn_rates=True, inputs="interaction", key=model_key
        )
        result, _ = fit_system(field, ds, s, train_key)
    a, d = (float(v) for v in result.best_model.physics)
    assert abs(a / 1.3 - 1) < 0.05 and abs(d / 1.8 - 1) < 0.05, (a, d)


def test_a_value_the_user_gave_is_honoured_even_when_it_equals_the_default():
    plain = DiscoverConfig(method="plain")  # train.steps is at its default, 600
    ran, settings = resolve_discovery(plain, given=set())
    assert settings.steps == ran.train.steps == 4000  # unset: the published length
    ran, settings = resolve_discovery(plain, given={"train.steps", "optim.learning_rate"})
    assert settings.steps == ran.train.steps == 600
    assert ran.optim.learning_rate == plain.optim.learning_rate
