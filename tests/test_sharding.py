"""Data parallelism: the same run on 1 device, on 4 CPU devices and on 2 processes agrees."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from diffdyn.common import initialize_distributed, make_mesh, shard_batch

SCRIPT = Path(__file__).with_name("sharded_training.py")
ROOT = SCRIPT.parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIFFDYN_")}
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(single_device_params, tmp_path):
    port = _free_port()
    out = tmp_path / "params.npy"
    procs = []
    for pid in range(2):
        env = _env(
            DIFFDYN_COORDINATOR=f"127.0.0.1:{port}",
            DIFFDYN_NUM_PROCESSES="2",
            DIFFDYN_PROCESS_ID=str(pid),
            XLA_FLAGS="--xla_force_host_platform_device_count=1",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(SCRIPT), str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr[-2000:]
        assert "devices=2 mesh=2" in stdout
    np.testing.assert_allclose(np.load(out), single_device_params, rtol=2e-5, atol=2e-6)


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
