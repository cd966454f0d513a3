"""Data parallelism: the same run on 1 device, on 4 CPU devices and on 2 processes agrees;
a 2-process run writes one set of artefacts, survives SIGKILL and resumes exactly."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from diffdyn.common import initialize_distributed, make_mesh, read_checkpoint_header, shard_batch

SCRIPT = Path(__file__).with_name("sharded_training.py")
ROOT = SCRIPT.parent.parent
STEPS = 25  # sharded_training.STEPS


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIFFDYN_", "SLURM_"))}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), **extra)
    return env


def _run(out: Path, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out)],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(params: Path, *args: str, processes: int = 2) -> list[subprocess.Popen]:
    """Start a ``processes``-process run of the script on localhost (1 CPU device each)."""
    port = _free_port()
    procs = []
    for pid in range(processes):
        env = _env(
            DIFFDYN_COORDINATOR=f"127.0.0.1:{port}",
            DIFFDYN_NUM_PROCESSES=str(processes),
            DIFFDYN_PROCESS_ID=str(pid),
            XLA_FLAGS="--xla_force_host_platform_device_count=1",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(SCRIPT), str(params), *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (_, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr[-2000:]
    return [stdout for stdout, _ in outputs]


@pytest.fixture(scope="module")
def single_device_params(tmp_path_factory) -> np.ndarray:
    out = tmp_path_factory.mktemp("one") / "params.npy"
    stdout = _run(out, XLA_FLAGS="--xla_force_host_platform_device_count=1")
    assert "devices=1 mesh=1" in stdout
    return np.load(out)


def test_four_devices_match_one(single_device_params, tmp_path):
    out = tmp_path / "params.npy"
    stdout = _run(out, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    assert "devices=4 mesh=4" in stdout
    four = np.load(out)
    assert four.shape == single_device_params.shape
    np.testing.assert_allclose(four, single_device_params, rtol=2e-5, atol=2e-6)
    assert np.abs(four).sum() > 0


def test_two_processes_match_one(single_device_params, tmp_path):
    out = tmp_path / "params.npy"
    for stdout in _finish(_launch(out)):
        assert "devices=2 mesh=2" in stdout
    np.testing.assert_allclose(np.load(out), single_device_params, rtol=2e-5, atol=2e-6)


def _scalar_steps(logdir: Path, tag: str) -> list[int]:
    """The steps of ``tag`` as TensorBoard's own reader shows them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return [event.step for event in acc.Scalars(tag)]


@pytest.mark.heavy
def test_two_processes_checkpoint_survive_sigkill_and_resume_exactly(
    single_device_params, tmp_path
):
    run, params = tmp_path / "run", tmp_path / "params.npy"
    checkpoint = run / "checkpoints" / "latest.ckpt"
    # data split across the two processes; both are killed after a checkpoint, mid-run
    procs = _launch(params, "--out", str(run), "--slow", "0.4")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if checkpoint.exists() and read_checkpoint_header(checkpoint)["step"] >= 10:
            break
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs]
        time.sleep(0.05)
    else:
        pytest.fail("no checkpoint at step >= 10 within 180 s")
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.communicate()
    killed_at = read_checkpoint_header(checkpoint)["step"]
    assert 10 <= killed_at < STEPS
    assert not params.exists()

    for stdout in _finish(_launch(params, "--out", str(run), "--resume")):
        assert f"devices=2 mesh=2 steps={STEPS}" in stdout
    np.testing.assert_allclose(np.load(params), single_device_params, rtol=2e-5, atol=2e-6)
    # one set of artefacts, written by process 0: one event file per launch, one checkpoint
    assert len(list(run.glob("events.out.tfevents.*"))) == 2
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith("events")) == [
        "best.eqx",
        "checkpoints",
        "model.eqx",
    ]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["latest.ckpt"]
    # TensorBoard shows every step once: the resumed run hides what the killed one logged
    # after its checkpoint
    assert _scalar_steps(run, "train/loss") == list(range(STEPS))


def test_shard_batch_checks_divisibility():
    mesh = make_mesh(jax.devices()[:1])
    x = shard_batch(np.ones((3, 2)), mesh)
    assert x.sharding.mesh.size == 1
    with pytest.raises(ValueError, match="divisible"):
        shard_batch(np.ones(()), mesh)


def test_initialize_distributed_env_validation():
    assert initialize_distributed({}) is False
    with pytest.raises(ValueError, match="missing"):
        initialize_distributed({"DIFFDYN_COORDINATOR": "127.0.0.1:1"})
    with pytest.raises(ValueError, match="DIFFDYN_PROCESS_ID"):
        initialize_distributed(
            {
                "DIFFDYN_COORDINATOR": "127.0.0.1:1",
                "DIFFDYN_NUM_PROCESSES": "2",
                "DIFFDYN_PROCESS_ID": "5",
            }
        )
    with pytest.raises(ValueError, match="DIFFDYN_DISTRIBUTED"):
        initialize_distributed({"DIFFDYN_DISTRIBUTED": "yes"})


SLURM = {
    "SLURM_JOB_ID": "7",
    "SLURM_STEP_NODELIST": "node[1-2]",
    "SLURM_NTASKS": "2",
    "SLURM_PROCID": "1",
    "SLURM_LOCALID": "0",
}


@pytest.mark.parametrize(
    ("env", "joins", "expected"),
    [
        (SLURM, True, {}),  # JAX's own detection configures the run
        ({**SLURM, "SLURM_NTASKS": "1"}, False, None),  # one task: a single process
        ({k: v for k, v in SLURM.items() if k != "SLURM_PROCID"}, False, None),
        ({"OMPI_MCA_orte_hnp_uri": "1;tcp://10.0.0.1:1", "OMPI_COMM_WORLD_SIZE": "4"}, True, {}),
        ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, True, {}),
        ({"DIFFDYN_DISTRIBUTED": "auto"}, True, {}),
        ({**SLURM, "DIFFDYN_DISTRIBUTED": "off"}, False, None),
        (  # the explicit variables override a cluster's
            {
                **SLURM,
                "DIFFDYN_COORDINATOR": "h:1",
                "DIFFDYN_NUM_PROCESSES": "3",
                "DIFFDYN_PROCESS_ID": "2",
            },
            True,
            {"coordinator_address": "h:1", "num_processes": 3, "process_id": 2},
        ),
    ],
)
def test_initialize_distributed_detects_clusters(monkeypatch, env, joins, expected):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    monkeypatch.setattr(jax.config, "update", lambda *args: None)
    assert initialize_distributed(env) is joins
    assert calls == ([] if expected is None else [expected])


CONSTRAIN = """
import warnings
import jax, jax.numpy as jnp
from diffdyn.common import make_mesh
from diffdyn.common._sharding import constrain_batch
mesh = make_mesh()
assert mesh.size == 2
try:
    jax.jit(lambda b: constrain_batch(b, mesh))({"x": jnp.ones((3, 2)), "y": jnp.ones(3)})
except ValueError as e:
    print("refused:", e)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = jax.jit(lambda b: constrain_batch(b, mesh))({"x": jnp.ones((4, 2)), "ts": jnp.ones(5)})
print("warned:", caught[0].message)
print("split:", out["x"].sharding.shard_shape((4, 2)))
"""


def test_a_batch_that_does_not_split_is_refused_or_said():
    proc = subprocess.run(
        [sys.executable, "-c", CONSTRAIN],
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "refused: no array of the batch has an axis 0 that divides by the 2 devices" in out
    assert "warned: batch arrays of shapes [(5,)] do not divide" in out
    assert "split: (2, 2)" in out
