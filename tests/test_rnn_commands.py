"""The rnn commands end to end, in a subprocess (they switch on float64 globally)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from diffdyn.rnn import save_connectome


def _diffdyn(*args, cwd):
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from diffdyn.common.cli import main; sys.exit(main())",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def repo():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lyapunov_command_on_a_connectome(tmp_path, repo):
    rng = np.random.default_rng(0)
    adjacency = rng.integers(1, 9, (16, 16)) * (rng.random((16, 16)) < 0.7)
    np.fill_diagonal(adjacency, 0)
    save_connectome(tmp_path / "roi", adjacency, rng.integers(0, 2, 16), ["acetylcholine", "gaba"])
    out = tmp_path / "run"
    proc = _diffdyn(
        "rnn",
        "lyapunov",
        "--out",
        str(out),
        "--json",
        f"network.connectome={tmp_path / 'roi'}",
        "network.activation=tanh-positive",
        "spectrum.t_sim=20",
        "spectrum.t_transient=5",
        "spectrum.t_ons_transient=2",
        cwd=repo,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    spectrum = json.loads((out / "spectrum.json").read_text())["exponents"]
    assert len(spectrum) == 16 == metrics["n_exponents"]
    np.testing.assert_allclose(metrics["lambda_max"], max(spectrum))
    np.testing.assert_allclose(metrics["sum_exponents"], sum(spectrum))
    assert (out / "convergence.png").stat().st_size > 0


def test_bad_input_is_one_line_and_exit_2(tmp_path, repo):
    proc = _diffdyn("rnn", "lyapunov", "--out", str(tmp_path), "spectrum.t_ons=0.15", cwd=repo)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("diffdyn: error:") and "t_ons" in proc.stderr
    assert "Traceback" not in proc.stderr
