"""The diffdyn command: config building, outputs, JSON line, exit code 2 on bad input."""

import dataclasses
import json
import subprocess
import sys

import pytest
import yaml

from diffdyn.common import cli


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: float = 0.5


@dataclasses.dataclass(frozen=True)
class EchoConfig:
    steps: int = 3
    name: str = "x"
    inner: Inner = dataclasses.field(default_factory=Inner)


@pytest.fixture(autouse=True)
def echo_command():
    @cli.command("testing", "echo", EchoConfig, help="echo the config back")
    def echo(cfg, ctx):
        if cfg.name == "fail":
            raise ValueError("name 'fail' is not allowed; choose another")
        return {"steps": cfg.steps, "rate": cfg.inner.rate, "seed": ctx.seed, "nan": float("nan")}

    yield
    cli.COMMANDS.pop(("testing", "echo"))


def test_run_writes_config_metrics_and_prints_json_last(tmp_path, capsys):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("steps: 5\ninner:\n  rate: 0.1\n")
    out = tmp_path / "run"
    argv = ["testing", "echo", "--out", str(out), "--seed", "4", "--config", str(cfg_file)]
    code = cli.main(argv + ["--inner.rate", "0.25", "name=y", "--json"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    metrics = json.loads(last)
    assert metrics == {"steps": 5, "rate": 0.25, "seed": 4, "nan": None}
    assert json.loads((out / "metrics.json").read_text()) == metrics
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written == {"steps": 5, "name": "y", "inner": {"rate": 0.25}}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--steps", "many"], "'steps' must be an integer"),
        (["bogus.key=1"], "unknown config key 'bogus.key'"),
        (["--config", "/nonexistent.toml"], "does not exist"),
        (["name=fail"], "name 'fail' is not allowed"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path, capsys, extra, message):
    code = cli.main(["testing", "echo", "--out", str(tmp_path)] + extra)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("diffdyn: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_quickstart_rejects_unknown_parts(tmp_path, capsys):
    assert cli.main(["quickstart", "--out", str(tmp_path), "--only", "nope"]) == 2
    assert "unknown parts ['nope']" in capsys.readouterr().err


def test_console_script_lists_every_registered_group():
    proc = subprocess.run(
        [sys.executable, "-m", "diffdyn.common.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    for group in ("quickstart", "node", "pde", "nca", "oscillators", "rnn"):
        assert group in proc.stdout
