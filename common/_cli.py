"""The ``diffdyn`` command: typed configs in, one library call, outputs written.

Packages register workflows with `command`; each workflow is a function
``run(cfg, ctx) -> metrics`` taking its typed dataclass config and a `RunContext`.
The command line of every workflow is generated from its config::

    diffdyn <group> <verb> [--config FILE] [--out DIR] [--seed N] [--resume] [--overwrite]
                           [--allow-change KEY,...] [--json] [--quick]
                           [--train.steps 200 ...] [train.steps=200 ...]

Every option shows its type, its choices and its help (from the ``Attributes:`` section of
the config's docstring); booleans are flags (``--train.progress`` / ``--no-train.progress``).
Dotted overrides beat the config file, which beats the defaults. ``--quick`` exists where the
workflow registered a reduced config; the config written to ``DIR/config.yaml`` is exactly the
one that ran (``--quick`` included), ``DIR/run.json`` records the command and its PRNG seed, and
the final metrics go to ``DIR/metrics.json``. ``DIR`` holds one run: see `RunFolder` for the
rules of ``--resume``, ``--overwrite`` and ``--allow-change``. Every
run prints a short summary; with ``--json`` the metrics follow as one JSON line, last on
stdout. The resolved config and the final metrics are also logged as TensorBoard hparams (the
``hparams`` sub-run of ``DIR``). Bad input (a ``ValueError`` or ``TypeError``) is reported as
one line on stderr with exit code 2.

In a multi-process run (SLURM, Open MPI, ``DIFFDYN_*``: see `initialize_distributed`) every
process runs the command and only process 0 writes to ``DIR``; the others write into a
temporary folder that is removed at the end.

Packages add their parts to ``diffdyn quickstart`` with `quickstart_part`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ._config import (
    _flatten,
    build_config,
    config_to_dict,
    leaf_fields,
    load_config_file,
)
from ._helpers import atomic_write
from ._run_folder import RunFolder, recorded_run

__all__ = ["command", "quickstart_part", "RunContext", "main", "COMMANDS", "QUICKSTART"]

#: The modules that register each group's commands (and quickstart parts) when imported.
GROUP_MODULES: dict[str, tuple[str, ...]] = {
    "core": ("diffdyn.common._commands",),
    "node": ("diffdyn.common.neural_de._commands",),
    "pde": ("diffdyn.pde._commands",),
    "nca": ("diffdyn.nca._commands",),
    "oscillators": ("diffdyn.oscillators._commands", "diffdyn.oscillators._discovery_commands"),
    "rnn": ("diffdyn.rnn._commands",),
}


@dataclasses.dataclass
class RunContext:
    """What every workflow gets besides its config: where outputs go, the seed, whether to
    resume, and (for quickstart parts, whose sizes are not configs) whether to run small."""

    out: Path
    seed: int = 0
    resume: bool = False
    quick: bool = False
    given: frozenset[str] = frozenset()  # the dotted config keys the user set (file or options)
    primary: bool = True  # False in processes other than 0 of a multi-process run

    @property
    def key(self) -> Any:
        import jax

        return jax.random.key(self.seed)

    def logger(self, subdir: str = "") -> Any:
        """A TensorBoard logger writing under ``out/subdir`` (in process 0; the others get a
        `NullLogger`)."""
        from ._logger import NullLogger, TensorBoardLogger

        if not self.primary:
            return NullLogger()
        return TensorBoardLogger(self.out / subdir if subdir else self.out)

    def path(self, name: str) -> Path:
        """``out/name``, with parent folders created."""
        p = self.out / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def sub(self, name: str) -> RunContext:
        """The context of a sub-run writing under ``out/name``."""
        return dataclasses.replace(self, out=self.out / name)


@dataclasses.dataclass(frozen=True)
class Command:
    """A registered workflow (see `command`)."""

    group: str
    name: str
    config: type
    run: Callable[[Any, RunContext], dict[str, Any]]
    help: str
    quick: Callable[[Any], Any] | None = None
    check: Callable[[Any, RunContext], None] | None = None
    presets: tuple[str, Callable[[str], Any]] | None = None
    trains: bool = False


COMMANDS: dict[tuple[str, str], Command] = {}
"""Registered workflows by ``(group, verb)``; filled by `command`."""
QUICKSTART: dict[str, tuple[int, Callable[[RunContext], dict[str, Any]]]] = {}
"""Parts of ``diffdyn quickstart`` by name, with their order; filled by `quickstart_part`."""


def command(
    group: str,
    name: str,
    config: type,
    help: str = "",
    *,
    quick: Callable[[Any], Any] | None = None,
    check: Callable[[Any, RunContext], None] | None = None,
    presets: tuple[str, Callable[[str], Any]] | None = None,
    trains: bool = False,
) -> Callable:
    """Register ``run(cfg, ctx) -> metrics`` as ``diffdyn <group> <name>``.

    ``quick(cfg) -> cfg`` (optional) gives the reduced config that ``--quick`` runs (and
    records); without it the verb has no ``--quick``. ``check(cfg, ctx)`` (optional) refuses
    a run with a ``ValueError`` before anything is written to ``--out``. ``presets = (field,
    lookup)`` makes the config's ``field`` choose a preset, ``lookup(name) -> config``, whose
    values are the defaults of every other option. ``trains`` offers ``--resume`` (continue
    the checkpoint in ``--out``); a verb that trains nothing has no ``--resume``.
    """
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config of {group} {name} must be a dataclass; got {config!r}")

    def register(fn: Callable) -> Callable:
        text = help or next(iter((fn.__doc__ or "").strip().splitlines()), "")
        COMMANDS[(group, name)] = Command(
            group, name, config, fn, text, quick, check, presets, trains
        )
        return fn

    return register


def quickstart_part(name: str, order: int = 50) -> Callable:
    """Register ``fn(ctx) -> metrics`` as a part of ``diffdyn quickstart`` (run by ``order``)."""

    def register(fn: Callable) -> Callable:
        QUICKSTART[name] = (order, fn)
        return fn

    return register


def load_plugins(groups: tuple[str, ...] | None = None) -> None:
    """Import the modules that register the commands of ``groups`` (default: all)."""
    for group in GROUP_MODULES if groups is None else groups:
        for module in GROUP_MODULES[group]:
            importlib.import_module(module)


def is_quick() -> bool:
    """True when ``DIFFDYN_QUICK`` asks for small settings (tests, notebooks in CI)."""
    return os.environ.get("DIFFDYN_QUICK", "").lower() in ("1", "true", "yes")


# ---------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit code 2, and which
    takes no abbreviations (``--n`` never silently means ``--network.n``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"diffdyn: error: {message} (see {self.prog} --help)\n")


def _type_text(tp: Any) -> str:
    """The metavar of an option of type ``tp``: INT, FLOAT, TEXT, FLOAT|none, INT,INT..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return "|".join("none" if a is type(None) else _type_text(a) for a in args)
    if origin is Literal:
        return "{" + ",".join(str(a) for a in args) + "}"
    if origin in (tuple, list):
        inner = _type_text(args[0]) if args else "VALUE"
        pair = typing.get_args(args[0]) if args else ()
        if typing.get_origin(args[0]) is tuple and len(pair) == 2 and pair[1] is not Ellipsis:
            inner = f"{_type_text(pair[0])}={_type_text(pair[1])}"  # a list of KEY=VALUE pairs
        return (
            f"{inner},..."
            if (origin is list or args[-1] is Ellipsis)
            else ",".join(_type_text(a) for a in args)
        )
    names = {int: "INT", float: "FLOAT", str: "TEXT", bool: "BOOL", Path: "PATH"}
    return names.get(tp, getattr(tp, "__name__", "VALUE").upper())


def _choices(tp: Any) -> list[str] | None:
    if typing.get_origin(tp) is Literal:
        return [str(a) for a in typing.get_args(tp)]
    return None


def _add_run_options(
    p: argparse.ArgumentParser, default_out: str, quick: bool, resume: bool = True
) -> None:
    p.add_argument(
        "--out", default=default_out, metavar="DIR", help=f"output folder (default: {default_out})"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="INT",
        help="PRNG seed (default: 0, or the recorded one with --resume)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="delete the run in --out first and start afresh"
    )
    if resume:
        p.add_argument(
            "--resume", action="store_true", help="continue from the checkpoint in --out"
        )
        p.add_argument(
            "--allow-change",
            default="",
            metavar="KEY,...",
            help="config keys (or seed) that --resume may change, e.g. train.steps",
        )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the final metrics as one JSON line, last on stdout",
    )
    if quick:
        p.add_argument(
            "--quick",
            action="store_true",
            help="small settings (also DIFFDYN_QUICK=1); config.yaml records what ran",
        )


def _add_config_options(p: argparse.ArgumentParser, config: type) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML/YAML/JSON file with config values")
    for name, tp, default, help_text in leaf_fields(config):
        shown = "required" if default is dataclasses.MISSING else f"default: {default!r}"
        text = f"{help_text} ({shown})" if help_text else f"({shown})"
        kwargs: dict[str, Any] = {"dest": f"cfg:{name}", "default": None, "help": text}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            choices = _choices(tp)
            kwargs["metavar"] = "{" + ",".join(choices) + "}" if choices else _type_text(tp)
            if choices:
                kwargs["choices"] = choices
        p.add_argument(f"--{name}", **kwargs)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides")


def _build_parser(groups: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="diffdyn",
        description="Differentiable simulation in JAX: NCA, PDEs, oscillators, RNNs, neural DEs.",
    )
    from diffdyn import __version__

    parser.add_argument("--version", action="version", version=f"diffdyn {__version__}")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    if "quickstart" in groups:
        qs = sub.add_parser("quickstart", help="a short tour of every package on CPU")
        _add_run_options(qs, "runs", quick=True)
        qs.add_argument(
            "--only",
            default="",
            metavar="PART,...",
            help="comma-separated parts to run (default: all)",
        )
    by_group: dict[str, list[Command]] = {}
    for cmd in COMMANDS.values():
        if cmd.group in groups or cmd.group not in GROUP_MODULES:
            by_group.setdefault(cmd.group, []).append(cmd)
    for group in sorted(by_group):
        gp = sub.add_parser(group, help=f"{group} workflows")
        verbs = gp.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=_Parser)
        for cmd in sorted(by_group[group], key=lambda c: c.name):
            vp = verbs.add_parser(cmd.name, help=cmd.help, description=cmd.help)
            _add_run_options(
                vp, f"runs/{group}-{cmd.name}", quick=cmd.quick is not None, resume=cmd.trains
            )
            _add_config_options(vp, cmd.config)
    return parser


# ---------------------------------------------------------------------- outputs
def _finish(
    metrics: dict[str, Any],
    ctx: RunContext,
    as_json: bool,
    title: str,
    seconds: float,
    hparams: dict[str, Any],
) -> None:
    clean = {k: _jsonable(v) for k, v in metrics.items()}
    text = json.dumps(clean, sort_keys=True)
    if not ctx.primary:
        return
    atomic_write(ctx.path("metrics.json"), lambda f: f.write(text.encode() + b"\n"))
    from ._logger import write_hparams

    write_hparams(ctx.out, hparams, clean)
    print(_summary(title, clean, ctx.out, seconds), flush=True)
    if as_json:
        print(text, flush=True)


def _summary(
    title: str, metrics: dict[str, Any], out: Path, seconds: float, shown: int = 12
) -> str:
    """What ran, its key metrics and where the outputs are, in a few lines."""
    lines = [f"{title} ({seconds:.1f} s)"]
    scalars = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None]
    width = max((len(k) for k, _ in scalars[:shown]), default=0)
    for k, v in scalars[:shown]:
        value = f"{v:.6g}" if isinstance(v, float) else str(v)
        lines.append(f"  {k:<{width}}  {value}")
    rest = len(metrics) - min(len(scalars), shown)
    if rest > 0:
        lines.append(f"  ... {rest} more in metrics.json")
    lines.append(f"outputs: {out}")
    return "\n".join(lines)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, bool)) or v is None:
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if isinstance(v, int) or (hasattr(v, "dtype") and "int" in str(v.dtype)):
        return int(f)
    return f if math.isfinite(f) else None


def _claim(
    args: argparse.Namespace, ctx: RunContext, cfg: Any, record: dict[str, Any]
) -> RunFolder | None:
    """Claim ``--out`` for this run (process 0 only; see `RunFolder`) and write its record."""
    if not ctx.primary:
        ctx.out.mkdir(parents=True, exist_ok=True)
        return None
    from diffdyn import __version__

    allow = frozenset(k.strip() for k in getattr(args, "allow_change", "").split(",") if k.strip())
    inputs = ()
    if cfg is not None:
        values = _flatten(config_to_dict(cfg)).values()
        inputs = tuple(Path(v) for v in values if isinstance(v, str) and v and Path(v).exists())
    folder = RunFolder(
        ctx.out, resume=ctx.resume, overwrite=args.overwrite, allow_change=allow, inputs=inputs
    )
    folder.claim()
    try:
        folder.check_resume(cfg, record)
        folder.write_record(cfg, {**record, "diffdyn": __version__})
    except BaseException:
        folder.rollback()
        folder.release()
        raise
    return folder


def run_quickstart(ctx: RunContext, only: str = "") -> dict[str, Any]:
    """Run every registered quickstart part in order; metrics are prefixed by part name."""
    wanted = {w.strip() for w in only.split(",") if w.strip()}
    unknown = wanted - set(QUICKSTART)
    if unknown:
        raise ValueError(
            f"--only names unknown parts {sorted(unknown)}; known: {sorted(QUICKSTART)}"
        )
    metrics: dict[str, Any] = {}
    for name, (_, fn) in sorted(QUICKSTART.items(), key=lambda kv: (kv[1][0], kv[0])):
        if wanted and name not in wanted:
            continue
        print(f"diffdyn quickstart: {name} -> {ctx.out / name}", file=sys.stderr, flush=True)
        part = fn(ctx.sub(name))
        metrics.update({f"{name}.{k}": v for k, v in part.items()})
    return metrics


def _groups_for(argv: list[str]) -> list[str]:
    """The command groups to load for ``argv``: the one it runs, or all (quickstart, help)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in GROUP_MODULES and first != "core":
        return [first]
    return [*GROUP_MODULES, "quickstart"]


def main(argv: list[str] | None = None) -> int:
    """Run ``diffdyn`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    groups = _groups_for(argv)
    try:
        load_plugins(tuple(g for g in groups if g in GROUP_MODULES))
        parser = _build_parser(groups)
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if unknown:  # named with the help of the verb they were given to, not the top level
        where = " ".join(str(p) for p in ("diffdyn", args.group, getattr(args, "verb", None)) if p)
        print(
            f"diffdyn: error: unrecognized arguments: {' '.join(unknown)} (see {where} --help)",
            file=sys.stderr,
        )
        return 2
    if args.group is None:
        parser.print_help()
        return 0
    quick = bool(getattr(args, "quick", False)) or (is_quick() and hasattr(args, "quick"))
    resume = getattr(args, "resume", False)
    recorded: tuple[dict, dict] = ({}, {})
    try:
        if resume and Path(args.out).is_dir():
            recorded = recorded_run(Path(args.out))  # --resume continues the recorded run
    except ValueError as e:
        print(f"diffdyn: error: {e}", file=sys.stderr)
        return 2
    quick = quick or bool(recorded[1].get("quick", False))
    seed = args.seed if args.seed is not None else int(recorded[1].get("seed", 0))
    if not 0 <= seed < 2**32:
        print(f"diffdyn: error: --seed must be in [0, 2**32); got {seed}", file=sys.stderr)
        return 2
    ctx = RunContext(out=Path(args.out), seed=seed, resume=resume)
    start = time.perf_counter()
    scratch, folder = None, None
    try:
        from ._distributed import initialize_distributed, is_primary

        initialize_distributed()
        if not is_primary():
            # every process computes; only process 0 writes to --out
            scratch = Path(tempfile.mkdtemp(prefix="diffdyn-process-"))
        if args.group == "quickstart":
            ctx = dataclasses.replace(ctx, quick=quick)
            if scratch is not None:
                ctx = dataclasses.replace(ctx, out=scratch, primary=False)
            hparams = {"seed": ctx.seed, "quick": quick, "only": args.only or "all"}
            folder = _claim(args, ctx, None, {"command": "quickstart", **hparams})
            metrics = run_quickstart(ctx, args.only)
            title = "diffdyn quickstart" + (" --quick" if quick else "")
        else:
            cmd = COMMANDS[(args.group, args.verb)]
            values = load_config_file(args.config) if args.config else {}
            overrides = {
                k[4:]: v for k, v in vars(args).items() if k.startswith("cfg:") and v is not None
            }
            for item in args.overrides:
                if "=" not in item:
                    raise ValueError(f"override {item!r} must look like key=value")
                k, v = item.split("=", 1)
                overrides[k.strip()] = v
            defaults = None
            if cmd.presets is not None:
                field, lookup = cmd.presets
                chosen = overrides.get(field, values.get(field, recorded[0].get(field)))
                if chosen is None:
                    chosen = getattr(cmd.config(), field)
                defaults = lookup(str(chosen))
            if recorded[0]:
                defaults = build_config(cmd.config, recorded[0], defaults=defaults)
            cfg = build_config(cmd.config, values, overrides, defaults=defaults)
            ctx = dataclasses.replace(ctx, given=frozenset(_flatten(values)) | set(overrides))
            if quick:
                reduced = cmd.quick(cfg)  # type: ignore[misc]
                before = _flatten(config_to_dict(cfg))
                changed = {
                    k for k, v in _flatten(config_to_dict(reduced)).items() if before[k] != v
                }
                cfg, ctx = reduced, dataclasses.replace(ctx, given=ctx.given | changed)
            if recorded[1].get("given"):  # a resume takes as given what the run took as given
                ctx = dataclasses.replace(ctx, given=ctx.given | set(recorded[1]["given"]))
            if cmd.check is not None:
                cmd.check(cfg, ctx)
            if scratch is not None:
                ctx = dataclasses.replace(ctx, out=scratch, primary=False)
            record = {
                "command": f"{cmd.group} {cmd.name}",
                "seed": ctx.seed,
                "quick": quick,
                "given": sorted(ctx.given),
            }
            folder = _claim(args, ctx, cfg, record)
            hparams = {**_flatten(config_to_dict(cfg)), "seed": ctx.seed, "quick": quick}
            metrics = cmd.run(cfg, ctx)
            title = f"diffdyn {cmd.group} {cmd.name}" + (" --quick" if quick else "")
            title = f"{title}: {cmd.help}" if cmd.help else title
        _finish(metrics or {}, ctx, args.json, title, time.perf_counter() - start, hparams)
    except (ValueError, TypeError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"diffdyn: error: {message}", file=sys.stderr)
        if folder is not None:
            folder.rollback()
        return 2
    except OSError as e:  # the disk, not the input: a full disk, a vanished folder
        print(f"diffdyn: error: {e}", file=sys.stderr)
        return 1
    except FloatingPointError as e:  # a run that diverged with nothing finite to keep
        print(f"diffdyn: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("diffdyn: interrupted", file=sys.stderr)
        return 130
    finally:
        if folder is not None:
            folder.release()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0
