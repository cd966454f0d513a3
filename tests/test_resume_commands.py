"""Every training command checkpoints and resumes: a run stopped right after a mid-run
checkpoint and continued with ``--resume`` ends with the files and metrics of a run that was
never stopped (the SIGKILL case is in test_faults.py)."""

import json

import jax
import numpy as np
import pytest

from diffdyn.__main__ import main
from diffdyn.common import AbstractModel, Trainer

COMMANDS = {
    "pde-fit": ["pde", "fit", "--quick", "--train.checkpoint_every", "10"],
    "pde-fit-shooting": [
        "pde", "fit", "--quick", "--fit.strategy", "multiple-shooting", "--fit.segments", "2",
        "--train.checkpoint_every", "10",
    ],
    "pde-fit-homotopy": [
        "pde", "fit", "--quick", "--fit.strategy", "homotopy", "--train.steps", "600",
        "--train.checkpoint_every", "8",
    ],
    "nca-train": ["nca", "train", "--quick", "--train.checkpoint_every", "10"],
    "kuranet": ["oscillators", "kuranet", "--quick", "--train.checkpoint_every", "10"],
    "discover": ["oscillators", "discover", "--quick", "--train.checkpoint_every", "20"],
    "rnn-train": ["rnn", "train", "--quick", "--train.checkpoint_every", "5"],
    "node-fit": ["node", "fit", "--quick", "--train.checkpoint_every", "25"],
}  # fmt: skip


@pytest.fixture(autouse=True)
def _keep_precision():
    before = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", before)


def _stop_after_second_checkpoint(monkeypatch):
    """Interrupt the run as a kill would, right after its second checkpoint is on disk."""
    original, calls = Trainer._checkpoint, []

    def checkpoint(self, writer, state, step, *rest):
        original(self, writer, state, step, *rest)
        calls.append(step)
        if len(calls) == 2:
            writer.wait()
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_checkpoint", checkpoint)
    return calls


def _models(folder):
    return {p.relative_to(folder): AbstractModel.load(p) for p in sorted(folder.rglob("*.eqx"))}


@pytest.mark.heavy
@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_stopped_run_resumes_to_the_uninterrupted_result(name, tmp_path, monkeypatch, capsys):
    argv = [*COMMANDS[name], "--no-train.progress", "--seed", "3"]
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert main([*argv, "--out", str(whole)]) == 0
    with monkeypatch.context() as patch:
        calls = _stop_after_second_checkpoint(patch)
        assert main([*argv, "--out", str(stopped)]) == 130
    assert len(calls) == 2 and not (stopped / "metrics.json").exists()
    capsys.readouterr()
    assert main([*argv, "--out", str(stopped), "--resume"]) == 0, capsys.readouterr().err
    with jax.enable_x64(True):  # float64 workflows write float64 files
        a, b = _models(whole), _models(stopped)
    assert a and set(a) == set(b)
    for path in a:
        leaves = zip(
            jax.tree_util.tree_leaves(a[path]), jax.tree_util.tree_leaves(b[path]), strict=True
        )
        for x, y in leaves:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))
    ma, mb = (
        json.loads((f / "metrics.json").read_text().replace(str(f), "OUT"))
        for f in (whole, stopped)
    )
    timing = lambda k: k.endswith(("seconds", "per_second"))  # noqa: E731
    assert {k: v for k, v in ma.items() if not timing(k)} == {
        k: v for k, v in mb.items() if not timing(k)
    }
