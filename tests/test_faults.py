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
    f["nan_frames"] = tmp_path / "nan_frames.npy"
    np.save(f["nan_frames"], np.full((3, 1, 4, 4), np.nan, np.float32))
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
    [
        ("empty", "is empty"),
        ("two", "name the frames 'frames'"),
        ("nan_frames", "frames contain NaN or inf"),
        ("nan", "frames must be [T, C, H, W]"),
        ("zero", "frames must be [T, C, H, W]"),
    ],
)
def test_bad_pde_data_files(tmp_path, capsys, files, kind, message):
    argv = ["pde", "fit", "--data", str(files[kind]), "--out", str(tmp_path / "run")]
    _refused(capsys, argv, "data", message)


def test_a_file_that_is_not_an_image(tmp_path, capsys, files):
    argv = ["nca", "train", "--grow.target", str(files["png"]), "--quick"]
    _refused(capsys, [*argv, "--out", str(tmp_path / "run")], "is not a readable image")


@pytest.mark.parametrize("damage", ["truncated", "flipped", "random"])
def test_a_damaged_model_file_is_refused_by_nca_run(tmp_path, capsys, damage):
    import jax

    from diffdyn.nca import NCA, Cells

    path = tmp_path / "model.eqx"
    NCA(Cells(8), hidden=16, key=jax.random.key(0)).save(path)
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) - 7]
    elif damage == "flipped":
        data[-3] ^= 0x10
    else:
        data = bytearray(np.random.default_rng(0).bytes(len(data)))
    path.write_bytes(bytes(data))
    argv = ["nca", "run", "--model", str(path), "--target", "smiley"]
    _refused(capsys, [*argv, "--out", str(tmp_path / "run")], str(path))


def test_a_connectome_folder_missing_a_file(tmp_path, capsys):
    from diffdyn.rnn import load_connectome, save_connectome

    folder = tmp_path / "connectome"
    adjacency = np.ones((12, 12), np.int64) - np.eye(12, dtype=np.int64)
    save_connectome(folder, adjacency, np.arange(12) % 2, ["acetylcholine", "gaba"])
    assert load_connectome(folder).weight.shape == (12, 12)
    (folder / "adjacency.npy").unlink()
    argv = ["rnn", "lyapunov", "--network.connectome", str(folder)]
    _refused(capsys, [*argv, "--out", str(tmp_path / "run")], "adjacency.npy", "does not exist")


# One case of each kind of bad input for every command: a wrong type, a value out of range,
# an unknown name and a malformed config file; each is one line, exit 2, and no --out.
BAD_INPUT = {
    ("pde", "simulate"): [
        (["--size", "abc"], "'size' must be an integer"),
        (["--t1", "inf"], "'t1' must be a finite number"),
        (["--channel", "99"], "channel must be in [-2, 1]"),
        (["--model", "nope"], "invalid choice: 'nope'"),
    ],
    ("pde", "fit"): [
        (["--fit.window", "many"], "'fit.window' must be an integer"),
        (["--data_dt", "-1"], "data_dt must be > 0"),
        (["--fit.loss", "nope"], "invalid choice: 'nope'"),
        (["--solve.dt0", "0"], "dt0 must be a finite number > 0"),
    ],
    ("nca", "train"): [
        (["--grow.size", "abc"], "'grow.size' must be an integer"),
        (["--grow.batch_size", "0"], "grow.batch_size must be an int >= 1"),
        (["--model.variant", "nope"], "invalid choice: 'nope'"),
    ],
    ("nca", "run"): [
        (["--model", "m.eqx", "--every", "x"], "'every' must be an integer"),
        (["--model", "m.eqx", "--every", "0"], "every must be an int >= 1"),
        (["--model", "/nonexistent/m.eqx", "--target", "x.png"], "does not exist"),
    ],
    ("nca", "analyse"): [
        (["--model", "/nonexistent/m.eqx"], "does not exist"),
        (["--model", "m.eqx", "--top", "x"], "'top' must be an integer"),
        (["--model", "m.eqx", "--method", "nope"], "invalid choice: 'nope'"),
    ],
    ("oscillators", "kuramoto"): [
        (["--steps", "x"], "'steps' must be an integer"),
        (["--delay", "-1"], "delay must be >= 0"),
        (["--field", "nan"], "'field' must be a number, not NaN"),
        (["--omega", "nope"], "invalid choice: 'nope'"),
    ],
    ("oscillators", "kuranet"): [
        (["--alpha", "abc"], "'alpha' must be a number"),
        (["--num_units", "0"], "num_units must be >= 1"),
        (["--name", "nope"], "unknown experiment 'nope'"),
    ],
    ("oscillators", "discover"): [
        (["--width", "abc"], "'width': 'abc' is not a valid int"),
        (["--train.steps", "0"], "steps must be >= 1"),
        (["--system", "nope"], "invalid choice: 'nope'"),
    ],
    ("rnn", "lyapunov"): [
        (["--network.g", "abc"], "'network.g' must be a number"),
        (["--spectrum.t_sim", "-1"], "'t_sim' must be a finite number > 0"),
        (["--network.activation", "nope"], "invalid choice: 'nope'"),
    ],
    ("rnn", "import-connectome"): [
        (["--src", "/nowhere", "--dst", "x"], "is not a folder"),
        (["--orientation", "nope", "--src", "a", "--dst", "b"], "invalid choice: 'nope'"),
        (["--src", "a"], "config key 'dst' of ImportConnectomeConfig is required"),
    ],
    ("rnn", "chaos-sweep"): [
        (["--n_g", "x"], "'n_g' must be an integer"),
        (["--gmin", "2", "--gmax", "1"], "need 0 <= gmin <= gmax"),
        (["--activation", "nope"], "invalid choice: 'nope'"),
    ],
    ("rnn", "train"): [
        (["--target", "nan"], "'target' must be a number, not NaN"),
        (["--target_vector", "1,2"], "target_vector has 2 values"),
        (["--trainable", "nope"], "invalid choice: 'nope'"),
    ],
    ("node", "fit"): [
        (["--n_samples", "abc"], "'n_samples' must be an integer"),
        (["--t1", "inf"], "'t1' must be a finite number"),
        (["--batch_size", "0"], "batch_size must be >= 1"),
        (["--dataset", "nope"], "invalid choice: 'nope'"),
    ],
}
CASES = [(cmd, extra, msg) for cmd, cases in BAD_INPUT.items() for extra, msg in cases]


@pytest.mark.parametrize("command, extra, message", CASES, ids=lambda v: str(v)[:40])
def test_bad_input_to_every_command(tmp_path, capsys, command, extra, message):
    _refused(capsys, [*command, *extra, "--out", str(tmp_path / "run")], message)


def test_every_command_has_bad_input_cases_and_refuses_a_malformed_config(tmp_path, capsys):
    from diffdyn.common import cli

    assert set(BAD_INPUT) == {k for k in cli.COMMANDS if k[0] != "testing"}
    broken = tmp_path / "broken.toml"
    broken.write_text("steps = [\n")
    for command in BAD_INPUT:
        argv = [*command, "--config", str(broken), "--out", str(tmp_path / "run")]
        _refused(capsys, argv, "broken.toml' is not valid")


NODE = [
    "node", "fit", "--model", "node", "--dataset", "moons", "--n_samples", "256",
    "--validation_samples", "64", "--test_samples", "64", "--width", "8", "--batch_size", "64",
    "--train.steps", "400", "--train.log_every", "10", "--train.checkpoint_every", "20",
    "--no-train.progress",
]  # fmt: skip


def _diffdyn(*argv):
    return [sys.executable, "-m", "diffdyn", *argv]


@pytest.mark.heavy
def test_sigkill_during_training_or_a_checkpoint_write_then_resume_is_uninterrupted(tmp_path):
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
    # what a kill during a checkpoint write leaves: the next checkpoint half written to its
    # temporary file beside the last complete one (which the rename has not yet replaced)
    partial = checkpoint.with_name(".latest.ckpt.k1ll3d.tmp")
    partial.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    resumed = subprocess.run(
        _diffdyn(*NODE, "--out", str(killed), "--resume"), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "removed 1 partial file(s)" in resumed.stderr and not partial.exists()
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


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (root only; skipped with the reason where it cannot be mounted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip() or made.returncode}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.heavy
def test_a_full_disk_keeps_the_last_good_checkpoint_and_the_run_resumes(tmp_path, small_disk):
    from diffdyn.common import AbstractModel, read_checkpoint_header

    argv = [
        *NODE[: NODE.index("--width")], "--width", "256", "--batch_size", "64",
        "--train.steps", "60", "--train.checkpoint_every", "20", "--no-train.progress",
    ]  # fmt: skip
    whole, run = tmp_path / "whole", small_disk / "run"
    subprocess.run(_diffdyn(*argv, "--out", str(whole)), check=True, capture_output=True)
    size = (whole / "checkpoints" / "latest.ckpt").stat().st_size
    # leave room for the run's small files and one checkpoint, not for the next one beside it
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "filler").write_bytes(b"\0" * (free - int(1.5 * size) - 96 * 1024))
    full = subprocess.run(_diffdyn(*argv, "--out", str(run)), capture_output=True, text=True)
    lines = full.stderr.strip().splitlines()
    assert full.returncode == 1 and len(lines) == 1, full.stderr
    assert lines[0].startswith("diffdyn: error: [Errno 28] No space left on device"), lines[0]
    assert lines[0].endswith("latest.ckpt'"), lines[0]
    checkpoint = run / "checkpoints" / "latest.ckpt"
    assert read_checkpoint_header(checkpoint)["step"] == 20  # verified by its checksum
    assert not list(run.rglob("*.tmp")) and not (run / "metrics.json").exists()
    (small_disk / "filler").unlink()
    resumed = subprocess.run(
        _diffdyn(*argv, "--out", str(run), "--resume"), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    import jax

    a, b = AbstractModel.load(whole / "model.eqx"), AbstractModel.load(run / "model.eqx")
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
