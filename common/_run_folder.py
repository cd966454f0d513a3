"""The output folder of a command-line run: one run at a time, never mixed, never half-recorded.

A run folder (``--out DIR``) holds the record of the run that wrote it: ``config.yaml`` (the
resolved config) and ``run.json`` (command, seed, ``--quick``, diffdyn version). The rules:

- **One run at a time.** A run holds an exclusive lock on ``DIR/.diffdyn.lock`` (``flock``,
  released by the kernel when the process ends, however it ends); a second run into a busy
  folder is refused.
- **No mixing.** A folder that holds a run is only used again with ``--resume`` (continue
  it) or ``--overwrite`` (delete it and start afresh).
- **Resume means the same run.** ``--resume`` needs a recorded run and continues it with its
  recorded config and seed (no need to repeat the options); an option that changes the
  record is refused, naming the keys, unless ``--allow-change KEY,...`` accepts it (a longer
  ``train.steps``, say), and the record is updated.
- **Bad input leaves no trace.** The record is written only after the run's checks pass;
  if the run then fails on bad input, the folder is put back as it was.
- **No stale partial files.** Temporary files of writes a killed run left behind
  (``.<name>.*.tmp``, see `atomic_write`) are removed when the folder is claimed.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from ._config import _flatten, config_to_dict, write_config
from ._helpers import atomic_write

__all__ = ["RunFolder", "recorded_run"]

_LOCK, _CONFIG, _RECORD = ".diffdyn.lock", "config.yaml", "run.json"


def _default_flat(cls: type) -> dict[str, Any]:
    """The flattened config of ``cls()`` (empty when the class has no usable defaults)."""
    try:
        default = cls()
    except (TypeError, ValueError):
        return {}
    return _flatten(yaml.safe_load(yaml.safe_dump(config_to_dict(default))))


class RunFolder:
    """The claimed output folder of one run (see the module docstring).

    Args:
        out: the folder (created if missing).
        resume: continue the recorded run.
        overwrite: delete a recorded run first.
        allow_change: dotted config keys (or ``seed``) a resume may change.
        inputs: paths the run reads (``--model DIR``, data files); ``--overwrite`` refuses to
            delete a folder that holds one of them.
    """

    def __init__(
        self,
        out: Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        allow_change: frozenset[str] = frozenset(),
        inputs: tuple[Path, ...] = (),
    ):
        if resume and overwrite:
            raise ValueError("--resume and --overwrite exclude each other")
        if allow_change and not resume:
            raise ValueError("--allow-change only applies with --resume")
        self.out, self.resume, self.allow_change = Path(out), resume, allow_change
        self._lock_fd: int | None = None
        self._existed = self.out.exists()
        if self._existed and not self.out.is_dir():
            raise ValueError(f"--out {self.out} is a file, not a folder")
        holds_run = self.holds_run()
        if holds_run and not (resume or overwrite):
            raise ValueError(
                f"--out {self.out} holds a run; pass --resume to continue it or --overwrite "
                "to replace it"
            )
        if resume and not holds_run:
            raise ValueError(f"--resume: --out {self.out} holds no run to resume")
        if overwrite and holds_run:
            here = self.out.resolve()
            for path in inputs:
                p = Path(path).resolve()
                if p == here or here in p.parents:
                    raise ValueError(
                        f"--overwrite would delete {path}, which this run reads; choose "
                        "another --out"
                    )
        self._overwrite = overwrite and holds_run
        self._before: set[Path] = set(self.out.iterdir()) if self._existed else set()
        self._saved: dict[str, bytes] = {}

    def holds_run(self) -> bool:
        """True when the folder has the record of a run (or, from before records, its
        config and metrics)."""
        return (self.out / _RECORD).exists() or (
            (self.out / _CONFIG).exists() and (self.out / "metrics.json").exists()
        )

    # ------------------------------------------------------------------ claiming
    def claim(self) -> None:
        """Create the folder and take its lock; remove stale temporary files."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.out / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ValueError(f"--out {self.out} cannot be created: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = (self.out / _LOCK).read_text().strip() or "another process"
            raise ValueError(f"--out {self.out} is in use by another run ({holder})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode())
        self._lock_fd = fd
        stale = [p for p in self.out.rglob(".*.tmp") if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        if stale:
            print(
                f"diffdyn: removed {len(stale)} partial file(s) of an interrupted write in "
                f"{self.out}",
                file=sys.stderr,
            )

    def check_resume(self, cfg: Any, record: dict[str, Any]) -> None:
        """Refuse a resume whose config (``None``: a run without one) or record differs from
        the recorded run, except in the keys of ``allow_change``."""
        if not self.resume:
            return
        old = _flatten(_read_mapping(self.out / _CONFIG, "config file")) if cfg is not None else {}
        new = (
            _flatten(yaml.safe_load(yaml.safe_dump(config_to_dict(cfg)))) if cfg is not None else {}
        )
        previous = _read_mapping(self.out / _RECORD, "run record")
        for key in ("command", "seed", "quick"):
            if key in previous:
                old[key], new[key] = previous[key], record[key]
        differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if cfg is not None:
            # a setting added to diffdyn after the run was recorded, at its default, changes
            # nothing that ran
            default = _default_flat(type(cfg))
            differ = [k for k in differ if k in old or k not in default or new[k] != default[k]]
        refused = [k for k in differ if k not in self.allow_change]
        if refused:
            shown = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in refused[:6])
            more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
            raise ValueError(
                f"--resume with a config that differs from the run in {self.out}: {shown}"
                f"{more}; pass --allow-change {','.join(refused)} if that is intended"
            )
        unused = sorted(self.allow_change - set(differ))
        if unused:
            raise ValueError(f"--allow-change names keys that do not change: {', '.join(unused)}")

    def write_record(self, cfg: Any, record: dict[str, Any]) -> None:
        """Delete the old run (``--overwrite``), then write ``config.yaml`` (unless ``cfg``
        is ``None``) and ``run.json``;
        what they replace is kept until `commit`, for `rollback`."""
        if self._overwrite:
            for p in self.out.iterdir():
                if p.name != _LOCK:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            self._before = {self.out / _LOCK}
        for name in (_CONFIG, _RECORD):
            if (self.out / name).exists():
                self._saved[name] = (self.out / name).read_bytes()
        if cfg is not None:
            write_config(cfg, self.out / _CONFIG)
        text = json.dumps(record, sort_keys=True) + "\n"
        atomic_write(self.out / _RECORD, lambda f: f.write(text.encode()))

    def rollback(self) -> None:
        """Put the folder back as it was (after bad input): restore the record, remove
        what this run added at its top level, and the folder itself if it created it."""
        for name, data in self._saved.items():
            atomic_write(self.out / name, lambda f, data=data: f.write(data))
        if not self.out.exists():
            return
        for p in set(self.out.iterdir()) - self._before:
            if p.name == _LOCK:
                continue
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        if not self._existed:
            self.release()
            shutil.rmtree(self.out, ignore_errors=True)

    def release(self) -> None:
        """Give the lock back (the lock file stays; it is empty of meaning without it)."""
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None


def recorded_run(out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config, record)`` of the run recorded in ``out`` (empty dicts for what is missing):
    what ``--resume`` continues, options on the command line changing it."""
    out = Path(out)
    return _read_mapping(out / _CONFIG, "config file"), _read_mapping(out / _RECORD, "run record")


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    """The mapping in ``config.yaml`` (YAML) or ``run.json`` (JSON, parsed strictly) that this
    module wrote (``{}`` if the file is missing)."""
    yaml_file = path.suffix == ".yaml"
    parse, error = (yaml.safe_load, yaml.YAMLError) if yaml_file else (json.loads, ValueError)
    try:
        data = parse(path.read_text()) if path.exists() else {}
    except error:
        data = None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a {what} diffdyn wrote; cannot resume")
    return data
