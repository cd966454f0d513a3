"""The ``diffdyn`` command.

Packages register workflows with `command`; each workflow is a function
``run(cfg, ctx) -> metrics`` taking its typed dataclass config and a `RunContext`.
The command line of every workflow is built from its config::

    diffdyn <group> <verb> [--config FILE] [--out DIR] [--seed N] [--resume] [--json]
                           [--train.steps 200 ...] [train.steps=200 ...]

Dotted overrides beat the config file, which beats the defaults. The resolved config is
written to ``DIR/config.yaml`` and the final metrics to ``DIR/metrics.json``; with ``--json``
they are also printed as one JSON line, last on stdout. Bad input (a ``ValueError`` or
``TypeError``) is reported as one line on stderr with exit code 2.

Packages add their parts to ``diffdyn quickstart`` with `quickstart_part`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._config import build_config, leaf_fields, load_config_file, write_config
from ._helpers import atomic_write

__all__ = ["command", "quickstart_part", "RunContext", "main", "COMMANDS", "QUICKSTART"]

#: Modules that register commands when imported.
PLUGIN_MODULES = (
    "diffdyn.common._commands",
    "diffdyn.common.neural_de._commands",
    "diffdyn.pde._commands",
    "diffdyn.nca._commands",
    "diffdyn.oscillators._commands",
    "diffdyn.oscillators._discovery_commands",
    "diffdyn.rnn._commands",
)


@dataclasses.dataclass
class RunContext:
    """What every workflow gets besides its config."""

    out: Path
    seed: int = 0
    resume: bool = False
    quick: bool = False

    @property
    def key(self) -> Any:
        import jax

        return jax.random.key(self.seed)

    def logger(self, subdir: str = "") -> Any:
        """A TensorBoard logger writing under ``out/subdir``."""
        from ._logger import TensorBoardLogger

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
    group: str
    name: str
    config: type
    run: Callable[[Any, RunContext], dict[str, Any]]
    help: str


COMMANDS: dict[tuple[str, str], Command] = {}
"""Registered workflows by ``(group, verb)``; filled by `command`."""
QUICKSTART: dict[str, tuple[int, Callable[[RunContext], dict[str, Any]]]] = {}
"""Parts of ``diffdyn quickstart`` by name, with their order; filled by `quickstart_part`."""


def command(group: str, name: str, config: type, help: str = "") -> Callable:
    """Register ``run(cfg, ctx) -> metrics`` as ``diffdyn <group> <name>``."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config of {group} {name} must be a dataclass; got {config!r}")

    def register(fn: Callable) -> Callable:
        text = help or next(iter((fn.__doc__ or "").strip().splitlines()), "")
        COMMANDS[(group, name)] = Command(group, name, config, fn, text)
        return fn

    return register


def quickstart_part(name: str, order: int = 50) -> Callable:
    """Register ``fn(ctx) -> metrics`` as a part of ``diffdyn quickstart`` (run by ``order``)."""

    def register(fn: Callable) -> Callable:
        QUICKSTART[name] = (order, fn)
        return fn

    return register


def load_plugins() -> None:
    """Import the modules that register the commands (all ship with diffdyn)."""
    for module in PLUGIN_MODULES:
        importlib.import_module(module)


def is_quick() -> bool:
    """True when ``DIFFDYN_QUICK`` asks for small settings (tests, notebooks in CI)."""
    return os.environ.get("DIFFDYN_QUICK", "").lower() in ("1", "true", "yes")


# ---------------------------------------------------------------------- parser
def _add_common_options(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--json", action="store_true", help="print final metrics as one JSON line")
    p.add_argument("--quick", action="store_true", help="small settings (also DIFFDYN_QUICK=1)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffdyn",
        description="Differentiable simulation in JAX: NCA, PDEs, oscillators, RNNs, neural DEs.",
    )
    groups = parser.add_subparsers(dest="group", metavar="COMMAND")
    qs = groups.add_parser("quickstart", help="a short tour of every package on CPU")
    _add_common_options(qs, "runs")
    qs.add_argument("--only", default="", help="comma-separated parts to run")
    by_group: dict[str, list[Command]] = {}
    for cmd in COMMANDS.values():
        by_group.setdefault(cmd.group, []).append(cmd)
    for group in sorted(by_group):
        gp = groups.add_parser(group, help=f"{group} workflows")
        verbs = gp.add_subparsers(dest="verb", metavar="VERB", required=True)
        for cmd in sorted(by_group[group], key=lambda c: c.name):
            vp = verbs.add_parser(cmd.name, help=cmd.help, description=cmd.help)
            _add_common_options(vp, f"runs/{group}-{cmd.name}")
            vp.add_argument("--config", help="TOML/YAML/JSON file with config values")
            for name, tp, default, help_text in leaf_fields(cmd.config):
                shown = "required" if default is dataclasses.MISSING else f"default {default!r}"
                vp.add_argument(
                    f"--{name}",
                    dest=f"cfg:{name}",
                    default=None,
                    metavar=getattr(tp, "__name__", "VALUE").upper(),
                    help=f"{help_text} ({shown})".strip(),
                )
            vp.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides")
    return parser


def _finish(metrics: dict[str, Any], ctx: RunContext, as_json: bool) -> None:
    clean = {k: _jsonable(v) for k, v in metrics.items()}
    text = json.dumps(clean, sort_keys=True)
    atomic_write(ctx.path("metrics.json"), lambda f: f.write(text.encode() + b"\n"))
    if as_json:
        print(text, flush=True)


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``diffdyn`` command."""
    load_plugins()
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.group is None:
        parser.print_help()
        return 0
    quick = bool(args.quick) or is_quick()
    ctx = RunContext(out=Path(args.out), seed=args.seed, resume=args.resume, quick=quick)
    try:
        if args.group == "quickstart":
            metrics = run_quickstart(ctx, args.only)
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
            cfg = build_config(cmd.config, values, overrides)
            ctx.out.mkdir(parents=True, exist_ok=True)
            write_config(cfg, ctx.path("config.yaml"))
            metrics = cmd.run(cfg, ctx)
        _finish(metrics or {}, ctx, args.json)
    except (ValueError, TypeError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"diffdyn: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("diffdyn: interrupted", file=sys.stderr)
        return 130
    return 0
