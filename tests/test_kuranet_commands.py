"""The oscillators commands: kuramoto simulation and config resolution of kuranet."""

import json

import numpy as np
import pytest

from diffdyn.common.cli import main
from diffdyn.oscillators import configure_experiment


def test_kuramoto_command_synchronises_above_kc(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["oscillators", "kuramoto", "--out", str(out), "--json", "--n", "40"]
    code = main(args + ["--coupling", "4.0", "--steps", "300", "--initial_phase", "zero"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    phases = np.load(out / "phases.npy")
    assert phases.shape == (301, 40)
    r = np.abs(np.exp(1j * phases[-1]).mean())
    assert metrics["final_R"] == pytest.approx(r, abs=1e-5)
    assert r > 0.9  # K = 4 is far above K_c = 4/pi for omega ~ U(-1, 1)
    assert (out / "figures" / "order_parameter.png").is_file()


def test_kuranet_bad_override_is_one_line_error(tmp_path, capsys):
    code = main(["oscillators", "kuranet", "--out", str(tmp_path), "--experiment", "moons"])
    assert code == 2
    assert "experiment" in capsys.readouterr().err


def test_overrides_replace_the_preset_and_none_keeps_it():
    cfg = configure_experiment("global-delay", steps=7, lr=0.1, momentum=None)
    assert (cfg.steps, cfg.lr, cfg.momentum, cfg.delay) == (7, 0.1, 0.5, "negative-binomial")
    with pytest.raises(ValueError, match="num_classes"):
        configure_experiment("global", loss="circular-moments")
