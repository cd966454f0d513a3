"""The rnn commands end to end, in a subprocess (they switch on float64 globally)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

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


@pytest.mark.parametrize(
    "args, message",
    [
        (["spectrum.t_ons=0.15"], "t_ons"),
        (["--solve.solver", "tsit5", "--solve.adaptive"], "adaptive=False"),
        (["--no-network.balance"], "balance"),  # a random network is not balanced
        (["--solve.adjoint", "direct"], "solve.adjoint"),  # the step map has no adjoint
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, repo, args, message):
    proc = _diffdyn("rnn", "lyapunov", "--out", str(tmp_path), *args, cwd=repo)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().startswith("diffdyn: error:") and message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.heavy  # over 15 s on 2 cores
def test_train_quick_records_what_ran_and_saves_the_best_model(tmp_path, repo):
    out = tmp_path / "train"
    proc = _diffdyn(
        "rnn", "train", "--quick", "--json", "--out", str(out), "--trainable", "all", cwd=repo
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    ran = yaml.safe_load((out / "config.yaml").read_text())
    assert ran["train"]["steps"] == 20 == metrics["steps"]  # the quick run, recorded as such
    assert ran["network"]["n"] == 40 and ran["spectrum"]["n_exponents"] == 2
    assert ran["trainable"] == "all" and ran["optim"]["learning_rate"] == 0.05
    spectra = json.loads((out / "spectra.json").read_text())
    assert len(spectra["before"]) == len(spectra["after"]) == 2
    np.testing.assert_allclose(metrics["lambda_max_after"], max(spectra["after"]))
    assert metrics["selected_by"] == "validation"
    assert (out / "best.eqx").stat().st_size > 0
    assert (out / "spectrum_before_after.png").stat().st_size > 0
    assert "diffdyn rnn train --quick" in proc.stdout  # the human summary


def test_chaos_sweep_quick_summarises_its_json(tmp_path, repo):
    out = tmp_path / "sweep"
    proc = _diffdyn("rnn", "chaos-sweep", "--quick", "--json", "--out", str(out), cwd=repo)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    sweep = json.loads((out / "chaos_sweep.json").read_text())
    assert sweep["n"] == 100 and len(sweep["g"]) == 6
    median = np.median(np.asarray(sweep["lambda_max"]), axis=1)
    first = np.asarray(sweep["g"])[np.argmax(median > 0)]
    assert metrics["g_first_positive"] == first
    assert median[0] < 0 < median[-1]  # g = 0.5 is stable, g = 3 chaotic
    assert (out / "chaos_sweep.png").stat().st_size > 0
