"""Typed dataclass configs: read from TOML/YAML, overridden by dotted keys, written back out.

A workflow's config is a (frozen) dataclass whose fields may be nested dataclasses.
Precedence, lowest to highest: dataclass defaults, the config file, dotted overrides such as
``train.steps=200`` (from the command line). Every value is checked against the field's type;
an unknown key or a value of the wrong type raises a ``ValueError`` naming the key.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from ._helpers import atomic_write

__all__ = [
    "field_docs",
    "load_config_file",
    "build_config",
    "config_to_dict",
    "write_config",
    "leaf_fields",
    "parse_value",
]

C = TypeVar("C")


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file into a (nested) dict."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ValueError(f"config file {str(path)!r} must end in .toml, .yaml, .yml or .json")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"config file {str(path)!r} is not valid: {first}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping at the top level")
    return data


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The help text of each field of dataclass ``cls``, from the ``Attributes:`` section of
    its docstring (Google style: ``name: text``, continued on more-indented lines)."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    lines = doc.splitlines()
    out: dict[str, str] = {}
    inside, name, indent = False, None, None
    for line in lines:
        if re.fullmatch(r"Attributes:\s*", line):
            inside, name, indent = True, None, None
            continue
        if not inside:
            continue
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent or depth == 0:
            break  # the section ended
        match = re.match(r"\s*([A-Za-z_]\w*)(?:\s*\([^)]*\))?:\s*(.*)", line)
        if depth == indent and match:
            name = match.group(1)
            out[name] = match.group(2).strip()
        elif name is not None:
            out[name] = f"{out[name]} {line.strip()}".strip()
    return out


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _field_default(f: dataclasses.Field, parent: Any = None) -> Any:
    if parent is not None:
        return getattr(parent, f.name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def leaf_fields(
    cls: type, prefix: str = "", defaults: Any = None
) -> list[tuple[str, Any, Any, str]]:
    """``(dotted name, type, default, help)`` of every non-dataclass field, recursively.

    Defaults of a nested dataclass come from the parent's default instance when it has one
    (``inner: Inner = Inner(rate=0.1)`` gives ``inner.rate`` the default 0.1).
    """
    out = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        name = f"{prefix}{f.name}"
        default = _field_default(f, defaults)
        if dataclasses.is_dataclass(tp):
            nested = default if dataclasses.is_dataclass(default) else None
            out.extend(leaf_fields(tp, name + ".", nested))
        else:
            text = f.metadata.get("help") or field_docs(cls).get(f.name, "")
            out.append((name, tp, default, text))
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def parse_value(tp: Any, value: Any, key: str) -> Any:
    """Coerce ``value`` (a string from the command line, or a parsed file value) to ``tp``.

    A string for a list or tuple is ``a,b,c`` (or JSON, ``[...]``); a string for a pair
    ``tuple[K, V]`` may also be ``k=v``, so that ``tuple[tuple[str, float], ...]`` reads
    ``a=0.1,b=0.2`` as ``(("a", 0.1), ("b", 0.2))``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        for a in args:
            if a is type(None):
                continue
            try:
                return parse_value(a, value, key)
            except ValueError:
                pass
        raise ValueError(f"config key {key!r}: {value!r} is not a valid {_type_name(tp)}")
    if origin is Literal:
        for a in args:
            if value == a or (isinstance(value, str) and str(a) == value):
                return a
        raise ValueError(f"config key {key!r} must be one of {list(args)}; got {value!r}")
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = json.loads(text)
            elif "=" in text and "," not in text and len(args) == 2 and args[1] is not Ellipsis:
                value = [part.strip() for part in text.rsplit("=", 1)]  # a pair: KEY=VALUE
            else:
                value = [v for v in text.strip("()").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {key!r} must be a list; got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [parse_value(args[0], v, key) for v in value]
        elif origin is tuple and args:
            if len(args) != len(value):
                raise ValueError(f"config key {key!r} needs {len(args)} items; got {value!r}")
            items = [parse_value(a, v, key) for a, v in zip(args, value, strict=True)]
        else:
            inner = args[0] if args else Any
            items = [parse_value(inner, v, key) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"config key {key!r} must be true or false; got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(f"config key {key!r} must be an integer; got {value!r}")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            pass
        try:
            number = float(value)  # accepts 1e3 and 100.0
        except (TypeError, ValueError):
            number = float("nan")
        if number == number and number.is_integer():
            return int(number)
        raise ValueError(f"config key {key!r} must be an integer; got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"config key {key!r} must be a number; got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"config key {key!r} must be a number; got {value!r}") from None
        if number != number:  # no option means anything with NaN
            raise ValueError(f"config key {key!r} must be a number, not NaN")
        if number in (float("inf"), float("-inf")):  # nor with inf: limits are finite
            raise ValueError(f"config key {key!r} must be a finite number; got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"config key {key!r} must be a string; got {value!r}")
        return str(value)
    if tp is Path:
        return Path(str(value))
    raise ValueError(f"config key {key!r} has an unsupported type {_type_name(tp)}")


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for k, v in data.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, name + "."))
        else:
            flat[name] = v
    return flat


def build_config(
    cls: type[C],
    values: dict[str, Any] | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    defaults: C | None = None,
) -> C:
    """Instantiate dataclass ``cls`` from nested ``values`` then dotted ``overrides``.

    ``overrides`` is a dict ``{"train.steps": "200"}`` or a list ``["train.steps=200"]``.
    ``defaults`` (an instance of ``cls``, e.g. a preset) replaces the class defaults.
    """
    if isinstance(overrides, list):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} must look like key=value")
            k, v = item.split("=", 1)
            pairs[k.strip()] = v
        overrides = pairs
    flat = {**_flatten(values or {}), **(overrides or {})}
    fields = {name: (tp, default) for name, tp, default, _ in leaf_fields(cls, defaults=defaults)}
    for k in flat:
        if k not in fields:
            raise ValueError(
                f"unknown config key {k!r} for {cls.__name__}; known keys: {', '.join(fields)}"
            )
    chosen = {}
    for name, (tp, default) in fields.items():
        if name in flat:
            chosen[name] = parse_value(tp, flat[name], name)
        elif default is dataclasses.MISSING:
            raise ValueError(f"config key {name!r} of {cls.__name__} is required")
        else:
            chosen[name] = default
    return _instantiate(cls, chosen, "")


def _instantiate(cls: type[C], chosen: dict[str, Any], prefix: str) -> C:
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        tp, name = hints[f.name], f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _instantiate(tp, chosen, name + ".")
        elif name in chosen:
            kwargs[f.name] = chosen[name]
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"invalid {cls.__name__}: {e}") from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict (tuples as lists, paths as strings) of a dataclass config.

    An equinox module in a config (a diffrax solver instance in a `SolveConfig`) is
    recorded as its ``repr``: what ran, though not something a file can rebuild."""

    def plain(v: Any) -> Any:
        if any(c.__module__.split(".")[0] == "equinox" for c in type(v).__mro__):
            return repr(v)
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(cfg)


def write_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (readable back with `load_config_file`)."""
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    return atomic_write(path, lambda f: f.write(text.encode()))
