"""The diffdyn command: config building, outputs, JSON line, exit code 2 on bad input."""

import dataclasses
import json
import os
import subprocess
import sys
import typing
from typing import Literal

import pytest
import yaml

import diffdyn
from diffdyn.common import cli, config_to_dict, leaf_fields


@dataclasses.dataclass(frozen=True)
class Inner:
    """A nested part.

    Attributes:
        rate: how fast.
    """

    rate: float = 0.5


@dataclasses.dataclass(frozen=True)
class EchoConfig:
    """What echo echoes.

    Attributes:
        steps: how many steps.
        name: a name.
        mode: one of three modes.
        loud: shout.
        inner: a nested part.
    """

    steps: int = 3
    name: str = "x"
    mode: Literal["a", "b", "c"] = "a"
    loud: bool = False
    inner: Inner = dataclasses.field(default_factory=Inner)


def _quick(cfg):
    return dataclasses.replace(cfg, steps=1, inner=Inner(rate=0.125))


@pytest.fixture(autouse=True)
def echo_command():
    @cli.command("testing", "echo", EchoConfig, help="echo the config back", quick=_quick)
    def echo(cfg, ctx):
        if cfg.name == "fail":
            raise ValueError("name 'fail' is not allowed; choose another")
        return {
            "steps": cfg.steps,
            "rate": cfg.inner.rate,
            "seed": ctx.seed,
            "nan": float("nan"),
            "loud": cfg.loud,
            "mode": cfg.mode,
            "given": ",".join(sorted(ctx.given)),
        }

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
    expected = {
        "steps": 5,
        "rate": 0.25,
        "seed": 4,
        "nan": None,
        "loud": False,
        "mode": "a",
        "given": "inner.rate,name,steps",  # from the file and the options, not the defaults
    }
    assert metrics == expected
    assert json.loads((out / "metrics.json").read_text()) == metrics
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written == {"steps": 5, "name": "y", "mode": "a", "loud": False, "inner": {"rate": 0.25}}


def test_every_run_logs_its_config_and_metrics_as_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    out = tmp_path / "run"
    assert cli.main(["testing", "echo", "--out", str(out), "--seed", "2", "--inner.rate", "4"]) == 0
    acc = EventAccumulator(str(out / "hparams"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["inner.rate"].number_value == 4.0
    assert hparams["mode"].string_value == "a" and hparams["loud"].bool_value is False
    assert hparams["seed"].number_value == 2 and hparams["quick"].bool_value is False
    # the final metrics are the sub-run's scalars; non-finite ones (nan) cannot be shown
    scalars = set(acc.Tags()["scalars"])
    assert {"steps", "rate", "seed"} <= scalars and "nan" not in scalars
    assert acc.Scalars("rate")[0].value == 4.0


def test_booleans_are_flags_choices_are_checked_and_a_summary_is_printed(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["testing", "echo", "--out", str(out), "--loud", "--mode", "c"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("diffdyn testing echo: echo the config back (")
    assert "  loud   True" in printed and f"outputs: {out}" in printed
    assert yaml.safe_load((out / "config.yaml").read_text())["mode"] == "c"
    assert cli.main(["testing", "echo", "--out", str(out), "--no-loud", "--mode", "d"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffdyn: error:") and "invalid choice" in err
    assert len(err.strip().splitlines()) == 1


def test_quick_runs_the_reduced_config_and_records_it(tmp_path, capsys):
    out = tmp_path / "quick"
    assert (
        cli.main(["testing", "echo", "--out", str(out), "--quick", "--json", "--steps", "9"]) == 0
    )
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert metrics["steps"] == written["steps"] == 1
    assert metrics["rate"] == written["inner"]["rate"] == 0.125
    assert metrics["given"] == "inner.rate,steps"  # what --quick changed counts as given


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


def test_help_and_version_answer_without_importing_jax():
    code = (
        "import sys; from diffdyn.__main__ import main; main(['--help']); main(['pde', '--help']);"
        " main(['--version']); assert 'jax' not in sys.modules, 'jax was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for group in ("quickstart", "node", "pde", "nca", "oscillators", "rnn"):
        assert f"  {group} " in proc.stdout
    assert "fit a fixed or neural PDE" in proc.stdout
    assert f"diffdyn {diffdyn.__version__}" in proc.stdout
    module = subprocess.run(
        [sys.executable, "-m", "diffdyn", "--version"], capture_output=True, text=True, timeout=120
    )
    assert module.stdout.strip() == f"diffdyn {diffdyn.__version__}"


def test_the_fast_help_lists_exactly_the_registered_commands():
    from diffdyn.__main__ import GROUPS

    cli.load_plugins()
    registered = {}
    for (group, verb), cmd in cli.COMMANDS.items():
        if group != "testing":
            registered.setdefault(group, {})[verb] = cmd.help
    listed = {group: verbs for group, (_, verbs) in GROUPS.items() if group != "quickstart"}
    assert listed == registered


def _verbs():
    cli.load_plugins()
    return sorted(k for k in cli.COMMANDS if k[0] != "testing")


@pytest.mark.parametrize("group, verb", _verbs())
def test_every_option_has_help_and_enumerations_list_their_choices(group, verb, capsys):
    assert cli.main([group, verb, "--help"]) == 0
    text = capsys.readouterr().out
    cmd = cli.COMMANDS[(group, verb)]
    for name, tp, _, help_text in leaf_fields(cmd.config):
        assert help_text.strip(), f"{group} {verb}: --{name} has no help text"
        if typing.get_origin(tp) is Literal:
            choices = "{" + ",".join(str(c) for c in typing.get_args(tp)) + "}"
            assert choices in text.replace("\n", "").replace(" ", ""), (name, choices)
        if name.endswith("group_learning_rates"):  # a list of pairs reads PATTERN=RATE,...
            assert f"--{name} TEXT=FLOAT,..." in text
        assert f"--{name}" in text
    names = [name for name, *_ in leaf_fields(cmd.config)]
    for name in names:
        last = name.split(".")[-1]
        assert last not in ("iterations", "epochs", "lr", "clip"), f"{group} {verb}: --{name}"
        if last in ("solver", "rtol", "atol", "adjoint", "dt0", "max_steps"):
            assert name.endswith("solve." + last), f"{group} {verb}: flat --{name}"


@pytest.mark.parametrize("group, verb", [k for k in _verbs() if cli.COMMANDS[k].quick])
def test_config_yaml_is_the_config_that_ran_with_quick(group, verb, tmp_path, monkeypatch):
    cmd = cli.COMMANDS[(group, verb)]
    ran = []
    monkeypatch.setitem(
        cli.COMMANDS,
        (group, verb),
        dataclasses.replace(cmd, run=lambda c, ctx: ran.append(c) or {}),
    )
    assert cli.main([group, verb, "--quick", "--out", str(tmp_path)]) == 0
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    default = cmd.config()
    if cmd.presets is not None:  # the default preset's values are the defaults
        field, lookup = cmd.presets
        default = lookup(getattr(default, field))
    assert written == config_to_dict(ran[0]) == config_to_dict(cmd.quick(default))


TRAINING = {
    ("nca", "train"),
    ("pde", "fit"),
    ("oscillators", "kuranet"),
    ("oscillators", "discover"),
    ("rnn", "train"),
    ("node", "fit"),
}
SOLVING = {
    ("pde", "simulate"),
    ("pde", "fit"),
    ("oscillators", "kuramoto"),
    ("oscillators", "discover"),
    ("node", "fit"),
}


def test_training_and_solving_commands_speak_one_vocabulary():
    cli.load_plugins()
    for key in TRAINING | SOLVING:
        names = {name for name, *_ in leaf_fields(cli.COMMANDS[key].config)}
        if key in TRAINING:
            assert {"train.steps", "optim.learning_rate"} <= names, key
        if key in SOLVING:
            assert "solve.solver" in names, key


@pytest.mark.heavy
def test_files_a_run_writes_are_readable_by_group_and_others_under_umask_022(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "diffdyn", "pde", "simulate", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert proc.returncode == 0, proc.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"config.yaml", "metrics.json"} <= {p.name for p in files} and len(files) >= 4
    for path in files:
        mode = path.stat().st_mode & 0o777
        assert mode & 0o044 == 0o044, (path.name, oct(mode))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--inner.rate", "nan"], "'inner.rate' must be a number, not NaN"),
        (["inner.rate=NaN"], "'inner.rate' must be a number, not NaN"),
        (["--seed", str(2**64)], "--seed must be in [0, 2**32)"),
        (["--seed", "-1"], "--seed must be in [0, 2**32)"),
        # no abbreviations; the error names the verb's help, not the top level's
        (["--inner.r", "1"], "unrecognized arguments: --inner.r (see diffdyn testing echo --help)"),
    ],
)
def test_nan_values_bad_seeds_and_abbreviations_are_refused(tmp_path, capsys, extra, message):
    assert cli.main(["testing", "echo", "--out", str(tmp_path / "run")] + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffdyn: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
