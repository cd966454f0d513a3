"""The oscillators commands: the kuramoto simulation against closed forms, and the kuranet
options (presets, overrides, --quick) from the command line to the trainer."""

import dataclasses
import json

import numpy as np
import pytest
import yaml

from diffdyn.common import config_to_dict
from diffdyn.common.cli import COMMANDS, main
from diffdyn.oscillators import (
    KuraNet,
    configure_experiment,
    get_experiment,
    quick_experiment,
)


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_kuramoto_command_synchronises_above_kc(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["oscillators", "kuramoto", "--out", str(out), "--json", "--n", "40"]
    code = main(args + ["--coupling", "4.0", "--steps", "300", "--initial_phase", "zero"])
    assert code == 0
    metrics = _last_json(capsys)
    phases = np.load(out / "phases.npy")
    assert phases.shape == (301, 40)
    r = np.abs(np.exp(1j * phases[-1]).mean())
    assert metrics["final_R"] == pytest.approx(r, abs=1e-5)
    assert r > 0.9  # K = 4 is far above K_c = 4/pi for omega ~ U(-1, 1)
    assert (out / "figures" / "order_parameter.png").is_file()
    assert yaml.safe_load((out / "config.yaml").read_text())["solve"]["solver"] == "euler"


@pytest.mark.parametrize("steps", [2, 7, 999])
def test_kuramoto_runs_any_step_count_at_dt_one_tenth(tmp_path, capsys, steps):
    """float32 time grids of n * 0.1 do not land on the step count exactly; the run still
    takes exactly ``steps`` steps."""
    out = tmp_path / "run"
    args = ["oscillators", "kuramoto", "--out", str(out), "--n", "8", "--json"]
    assert main(args + ["--steps", str(steps), "--solve.dt0", "0.1"]) == 0
    assert _last_json(capsys)["final_R"] >= 0.0
    assert np.load(out / "phases.npy").shape == (steps + 1, 8)


def test_kuramoto_command_rk4_matches_the_two_oscillator_closed_form(tmp_path, capsys):
    """K_12 = K_21 = k, omega = 0: tan(phi/2) = tan(phi0/2) exp(-2kt) for phi = theta_2 -
    theta_1; rk4 with dt = 0.1 is accurate to float32 round-off."""
    k = 0.7
    np.save(tmp_path / "k.npy", np.array([[0.0, k], [k, 0.0]], np.float32))
    out = tmp_path / "run"
    args = [
        "oscillators",
        "kuramoto",
        "--out",
        str(out),
        "--coupling_file",
        str(tmp_path / "k.npy"),
    ]
    args += ["--omega", "zero", "--steps", "30", "--solve.solver", "rk4", "--json"]
    assert main(args) == 0
    assert _last_json(capsys)["n"] == 2
    phases = np.load(out / "phases.npy")
    phi = phases[:, 1] - phases[:, 0]
    t = 0.1 * np.arange(31)
    want = 2 * np.arctan(np.tan(phi[0] / 2) * np.exp(-2 * k * t))
    np.testing.assert_allclose(phi, want, atol=2e-5)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--coupling", "3"], "coupling_file replaces it"),
        (["--n", "5"], "holds N = 2"),
        (["--delay", "2", "--solve.solver", "rk4"], "euler"),
        (["--solve.adjoint", "direct"], "adjoint"),
    ],
)
def test_kuramoto_command_refuses_settings_that_do_not_apply(tmp_path, capsys, extra, message):
    np.save(tmp_path / "k.npy", np.eye(2, dtype=np.float32))
    args = ["oscillators", "kuramoto", "--out", str(tmp_path / "run")]
    args += ["--coupling_file", str(tmp_path / "k.npy"), "--steps", "3"]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_kuranet_unknown_experiment_is_one_line_error(tmp_path, capsys):
    code = main(["oscillators", "kuranet", "--out", str(tmp_path), "--name", "moons"])
    assert code == 2
    assert "unknown experiment 'moons'" in capsys.readouterr().err


def test_the_preset_gives_the_defaults_and_options_win(tmp_path, monkeypatch):
    cmd = COMMANDS[("oscillators", "kuranet")]
    ran = []
    fake = dataclasses.replace(cmd, run=lambda c, ctx: ran.append(c) or {})
    monkeypatch.setitem(COMMANDS, ("oscillators", "kuranet"), fake)
    args = ["oscillators", "kuranet", "--out", str(tmp_path), "--name", "cluster"]
    assert main(args + ["--optim.learning_rate", "1e-3", "--normalise", "none"]) == 0
    cluster = get_experiment("cluster")
    # the preset's optimiser with only the learning rate changed; "none" is a normalisation
    assert ran[0].optim == dataclasses.replace(cluster.optim, learning_rate=1e-3)
    assert ran[0] == dataclasses.replace(cluster, optim=ran[0].optim, normalise="none")
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert written == config_to_dict(ran[0]) and written["train"]["steps"] == 300
    # the written config, read back as a config file, runs the same experiment
    again = tmp_path / "again"
    assert (
        main(
            [
                "oscillators",
                "kuranet",
                "--out",
                str(again),
                "--config",
                str(tmp_path / "config.yaml"),
            ]
        )
        == 0
    )
    assert ran[1] == ran[0]
    # clipping can be switched off although the preset clips
    again = args[:-2] + ["--name", "global-delay", "--optim.clip_norm", "none", "--overwrite"]
    assert main(again) == 0
    assert ran[2].optim.clip_norm is None and get_experiment("global-delay").optim.clip_norm == 5.0


def test_configure_experiment_merges_nested_overrides_and_none_keeps_the_preset():
    cfg = configure_experiment(
        "global-delay", train={"steps": 7}, optim={"learning_rate": 0.1}, momentum=None
    )
    assert (cfg.train.steps, cfg.optim.learning_rate, cfg.optim.momentum) == (7, 0.1, 0.5)
    assert cfg.optim.clip_norm == 5.0 and cfg.delay == "negative-binomial"
    with pytest.raises(ValueError, match="num_classes"):
        configure_experiment("global", loss="circular-moments")


def test_quick_is_the_reduced_preset_and_config_yaml_records_it(tmp_path, monkeypatch):
    cmd = COMMANDS[("oscillators", "kuranet")]
    ran = []
    monkeypatch.setitem(
        COMMANDS,
        ("oscillators", "kuranet"),
        dataclasses.replace(cmd, run=lambda c, ctx: ran.append(c) or {}),
    )
    args = ["oscillators", "kuranet", "--quick", "--out", str(tmp_path), "--name", "image"]
    assert main(args + ["--optim.learning_rate", "0.02"]) == 0
    cfg = ran[0]
    image = get_experiment("image")
    want = quick_experiment(dataclasses.replace(image, optim=cfg.optim))
    assert cfg == want and cfg.optim.learning_rate == 0.02
    assert (cfg.num_units, cfg.train.steps, cfg.image_width) == (60, 40, 40)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == config_to_dict(ran[0])


@pytest.mark.heavy
def test_kuranet_command_trains_writes_figures_and_the_selected_model(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["oscillators", "kuranet", "--quick", "--out", str(out), "--json"]
    args += ["--num_units", "12", "--hidden", "8", "--burn_in", "6", "--gd", "5"]
    args += ["--eval_window", "20", "--train.steps", "12", "--train.validate_every", "4"]
    args += ["--no-train.progress"]
    assert main(args) == 0
    metrics = _last_json(capsys)
    assert metrics["selected_by"] == "validation" and metrics["best_step"] in (4, 8, 12)
    assert metrics["long_loss_trained"] < 1 and metrics["long_loss_control"] < 1
    ran = yaml.safe_load((out / "config.yaml").read_text())
    assert ran["train"]["steps"] == 12 and ran["num_units"] == 12 and ran["hidden"] == 8
    for name in ("training", "order_parameter", "phases_trained", "coupling_vs_distance"):
        assert (out / "figures" / f"{name}.png").is_file(), name
    best = KuraNet.load(out / "best.eqx")
    assert best.hidden == 8
