"""Fault injection on the command line: every kind of bad file is one line and exit code 2
with --out left as it was; a training run killed with SIGKILL resumes to the parameters of
an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from diffdyn.__main__ import main


@pytest.fixture(autouse=True)
def _keep_precision():
    """Commands such as rnn lyapunov turn float64 on for their process: put it back, so that
    the tests after these in-process runs see the precision they started with."""
    import jax

    before = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", before)


def _refused(capsys, argv, *parts):
    out = argv[argv.index("--out") + 1]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffdyn: error: "), err
    for part in parts:
        assert part in lines[0], lines[0]
    assert not os.path.exists(out), "a refused run left its --out behind"


@pytest.fixture
def files(tmp_path):
    f = {}
    f["empty"] = tmp_path / "empty.npy"
    f["empty"].write_bytes(b"")
    f["two"] = tmp_path / "two.npz"
    np.savez(f["two"], a=np.zeros(3), b=np.ones(3))
    f["nan"] = tmp_path / "nan.npy"
    np.save(f["nan"], np.full((3, 3), np.nan, np.float32))
    f["text"] = tmp_path / "words.npy"
    np.save(f["text"], np.array(["a", "b"]))
    f["garbage"] = tmp_path / "garbage.npy"
    f["garbage"].write_bytes(b"\x93NUMPY garbage")
    f["png"] = tmp_path / "fake.png"
    f["png"].write_bytes(b"not an image")
    f["zero"] = tmp_path / "zero.npy"
    np.save(f["zero"], np.zeros((0, 0), np.float32))
    f["pickled"] = tmp_path / "pickled.npy"
    np.save(f["pickled"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return f


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", "is empty"),
        ("two", "exactly one array; it holds 2"),
        ("nan", "contains NaN or inf"),
        ("text", "not numbers"),
        ("garbage", "cannot read"),
        ("zero", "square matrix"),
        ("pickled", "cannot read"),
    ],
)
def test_bad_coupling_files(tmp_path, capsys, files, kind, message):
    argv = ["oscillators", "kuramoto", "--coupling_file", str(files[kind]), "--steps", "3"]
    _refused(capsys, [*argv, "--out", str(tmp_path / "run")], "coupling_file", message)


@pytest.mark.parametrize(
    "kind, message",
    [("empty", "is empty"), ("two", "exactly one array"), ("nan", "NaN"), ("zero", "shape")],
)
def test_bad_pde_data_files(tmp_path, capsys, files, kind, message):
    argv = ["pde", "fit", "--data", str(files[kind]), "--out", str(tmp_path / "run")]
    _refused(capsys, argv, "data", message)


def test_a_file_that_is_not_an_image(tmp_path, capsys, files):
    argv = ["nca", "train", "--grow.target", str(files["png"]), "--quick"]
    _refused(capsys, [*argv, "--out", str(tmp_path / "run")], "is not a readable image")


def test_a_connectome_folder_missing_a_file(tmp_path, capsys):
    from diffdyn.rnn import load_connectome, save_connectome

    folder = tmp_path / "connectome"
    adjacency = np.ones((12, 12), np.int64) - np.eye(12, dtype=np.int64)
    save_connectome(folder, adjacency, np.arange(12) % 2, ["acetylcholine", "gaba"])
    assert load_connectome(folder).weight.shape == (12, 12)
    (folder / "adjacency.npy").unlink()
    argv = ["rnn", "lyapunov", "--network.connectome", str(folder)]
    _refused(capsys, [*argv, "--out", str(tmp_path / "run")], "adjacency.npy", "does not exist")


NODE = [
    "node", "fit", "--model", "node", "--dataset", "moons", "--n_samples", "256",
    "--validation_samples", "64", "--test_samples", "64", "--width", "8", "--batch_size", "64",
    "--train.steps", "400", "--train.log_every", "10", "--train.checkpoint_every", "20",
    "--no-train.progress",
]  # fmt: skip


def _diffdyn(*argv):
    return [sys.executable, "-m", "diffdyn", *argv]


@pytest.mark.heavy
def test_sigkill_during_training_then_resume_equals_an_uninterrupted_run(tmp_path):
    from diffdyn.common import AbstractModel, read_checkpoint_header

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_diffdyn(*NODE, "--out", str(whole)), check=True, capture_output=True)
    proc = subprocess.Popen(_diffdyn(*NODE, "--out", str(killed)), stdout=subprocess.DEVNULL)
    checkpoint = killed / "checkpoints" / "latest.ckpt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.exists() and read_checkpoint_header(checkpoint)["step"] >= 100:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = read_checkpoint_header(checkpoint)["step"]
    assert 100 <= killed_at < 400 and not (killed / "metrics.json").exists()
    resumed = subprocess.run(
        _diffdyn(*NODE, "--out", str(killed), "--resume"), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    a, b = AbstractModel.load(whole / "model.eqx"), AbstractModel.load(killed / "model.eqx")
    import jax

    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert json.loads((killed / "metrics.json").read_text())["steps"] == 400
    # the run record is that of the first run; a resume with another config is refused
    refused = subprocess.run(
        _diffdyn(*NODE, "--out", str(killed), "--resume", "--width", "9"),
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "width (8 -> 9)" in refused.stderr
