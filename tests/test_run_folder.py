"""The output folder of a run: one run at a time, no mixing, resume of the same run only,
bad input leaves no trace, stale partial files removed."""

import dataclasses
import json

import pytest
import yaml

from diffdyn.common import RunFolder, cli


@dataclasses.dataclass(frozen=True)
class FolderConfig:
    """A run that writes a file.

    Attributes:
        steps: how many steps.
        name: a name (``fail`` fails after writing; a path is read).
    """

    steps: int = 3
    name: str = "x"


@pytest.fixture(autouse=True)
def folder_command():
    @cli.command("testing", "folder", FolderConfig, help="write and maybe fail", trains=True)
    def run(cfg, ctx):
        ctx.path("output.txt").write_text(f"{cfg.steps} resumed={ctx.resume}\n")
        if cfg.name == "fail":
            raise ValueError("name 'fail' is not allowed")
        return {"steps": cfg.steps}

    yield
    cli.COMMANDS.pop(("testing", "folder"))


def run(out, *extra):
    return cli.main(["testing", "folder", "--out", str(out), *extra])


def one_line_error(capsys, *parts):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffdyn: error: "), err
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def test_a_used_folder_needs_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(out) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["command"] == "testing folder" and record["seed"] == 0
    assert record["quick"] is False and "diffdyn" in record
    assert run(out, "--steps", "4") == 2
    one_line_error(capsys, "holds a run; pass --resume", "or --overwrite")
    assert yaml.safe_load((out / "config.yaml").read_text())["steps"] == 3  # untouched
    (out / "old-figure.png").write_bytes(b"x")
    assert run(out, "--steps", "4", "--overwrite") == 0
    assert not (out / "old-figure.png").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["steps"] == 4
    assert run(out, "--overwrite", "--resume") == 2
    one_line_error(capsys, "--resume and --overwrite exclude each other")


def test_resume_refuses_a_different_run_unless_the_change_is_allowed(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(out, "--resume") == 2
    one_line_error(capsys, "holds no run to resume")
    assert not out.exists()
    assert run(out) == 0
    assert run(out, "--resume", "--steps", "5", "--seed", "2") == 2
    one_line_error(capsys, "steps (3 -> 5)", "seed (0 -> 2)", "--allow-change seed,steps")
    assert run(out, "--resume", "--steps", "5", "--allow-change", "steps") == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["steps"] == 5
    assert (out / "output.txt").read_text() == "5 resumed=True\n"
    assert run(out, "--resume", "--allow-change", "name") == 2
    one_line_error(capsys, "--allow-change names keys that do not change: name")
    assert run(out, "--allow-change", "steps", "--overwrite") == 2
    one_line_error(capsys, "--allow-change only applies with --resume")


def test_bad_input_leaves_the_folder_as_it_was(tmp_path, capsys):
    out = tmp_path / "fresh"
    assert run(out, "--name", "fail") == 2
    one_line_error(capsys, "name 'fail' is not allowed")
    assert not out.exists()  # created by the run, removed with everything in it
    assert run(out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert run(out, "--resume", "--name", "fail", "--allow-change", "name") == 2
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after.keys() == before.keys()
    for name in ("config.yaml", "run.json", "metrics.json"):
        assert after[name] == before[name], name


def test_a_busy_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "busy"
    other = RunFolder(out)
    other.claim()  # another run holds the lock (a separate open file: flock conflicts)
    try:
        assert run(out) == 2
        one_line_error(capsys, "is in use by another run (pid")
    finally:
        other.release()
    assert run(out) == 0


def test_stale_partial_files_are_removed(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(out) == 0
    stale = [out / ".model.eqx.abc123.tmp", out / "checkpoints" / ".latest.ckpt.x1.tmp"]
    for p in stale:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"\0" * 1000)
    assert run(out, "--resume") == 0
    assert "removed 2 partial file(s)" in capsys.readouterr().err
    assert not any(p.exists() for p in stale)


def test_overwrite_never_deletes_what_the_run_reads(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(out) == 0
    (out / "model.eqx").write_bytes(b"a model")
    assert run(out, "--overwrite", "--name", str(out / "model.eqx")) == 2
    one_line_error(capsys, "--overwrite would delete", "choose another --out")
    assert (out / "model.eqx").exists()


def test_an_out_that_is_a_file_or_cannot_be_made_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert run(tmp_path / "file") == 2
    one_line_error(capsys, "is a file, not a folder")
    assert run(tmp_path / "file" / "below") == 2
    one_line_error(capsys, "cannot be created")
