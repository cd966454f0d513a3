"""The model base class: one-file save/load, trainable/fixed split, parameter count.

Every model in diffdyn subclasses :class:`AbstractModel`. Two conventions make a model
saveable without pickle:

1. every constructor argument other than ``key`` is stored on the model under the same name
   (usually as a static field), and its value is JSON-serialisable (numbers, strings, bools,
   ``None`` and lists/tuples/dicts of those);
2. the constructor builds a model of the right *structure* from those arguments and any key,
   so that loading can build a skeleton and then fill its leaves from the file.

Arrays that must never be trained (stencil kernels, masks) are declared with
:func:`fixed_field`; :meth:`AbstractModel.trainable_filter` leaves them out, together with
every non-floating leaf.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = [
    "AbstractModel",
    "fixed_field",
    "trainable_filter",
    "num_parameters",
    "atomic_write",
]

_FORMAT = "diffdyn-model/1"
_FIXED = "diffdyn_fixed"
M = TypeVar("M", bound="AbstractModel")


def fixed_field(**kwargs: Any) -> Any:
    """A dataclass field whose arrays are part of the model but never trained.

    Use it for stencil kernels, masks and other constants that should travel with the model
    (and be saved with it) but be left out of the gradient: ``kernel: Array = fixed_field()``.
    """
    metadata = dict(kwargs.pop("metadata", {}))
    metadata[_FIXED] = True
    return eqx.field(metadata=metadata, **kwargs)


def _is_trainable_leaf(leaf: Any) -> bool:
    return eqx.is_inexact_array(leaf)


def trainable_filter(tree: Any) -> Any:
    """A filter spec (same structure as ``tree``, boolean leaves) marking trainable leaves.

    A leaf is trainable when it is a floating-point array and no enclosing module field was
    declared with :func:`fixed_field`. Use it with ``eqx.partition(tree, trainable_filter(tree))``.
    """

    def visit(node: Any) -> Any:
        if isinstance(node, eqx.Module):
            updates = {}
            for field in dataclasses.fields(node):
                if field.metadata.get("static", False):
                    continue
                value = getattr(node, field.name, None)
                if field.metadata.get(_FIXED, False):
                    updates[field.name] = jax.tree_util.tree_map(lambda _: False, value)
                else:
                    updates[field.name] = visit(value)
            return _replace_fields(node, updates)
        if isinstance(node, (list, tuple, dict)) and not eqx.is_array(node):
            children, treedef = jax.tree_util.tree_flatten(node, is_leaf=lambda x: x is not node)
            return jax.tree_util.tree_unflatten(treedef, [visit(c) for c in children])
        return jax.tree_util.tree_map(_is_trainable_leaf, node)

    return visit(tree)


def _replace_fields(module: eqx.Module, updates: dict[str, Any]) -> eqx.Module:
    names = list(updates)
    return eqx.tree_at(
        lambda m: [getattr(m, n) for n in names],
        module,
        [updates[n] for n in names],
        is_leaf=lambda x: x is None,
    )


def num_parameters(tree: Any) -> int:
    """The number of trainable scalars in ``tree`` (see :func:`trainable_filter`)."""
    params, _ = eqx.partition(tree, trainable_filter(tree))
    return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))


def atomic_write(path: str | os.PathLike, write: Any) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place.

    A reader never sees a half-written file and a crash never destroys the previous version.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _jsonable(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (jnp.ndarray,)) and value.ndim == 0:
        return value.item()
    raise TypeError(
        f"hyperparameter {where!r} must be JSON-serialisable (numbers, strings, bools, None, "
        f"lists, dicts); got {type(value).__name__}"
    )


class AbstractModel(eqx.Module):
    """Base class of every diffdyn model: an ``eqx.Module`` that saves to and loads from one file.

    The file holds one JSON header line (format, class, hyperparameters) followed by the leaves
    in equinox's serialisation format. Loading imports the recorded class, checks that it is an
    ``AbstractModel`` subclass, builds a skeleton from the hyperparameters and fills in the
    leaves; nothing is unpickled.
    """

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments (all but ``key``), read from same-named attributes."""
        params = inspect.signature(type(self).__init__).parameters
        out: dict[str, Any] = {}
        for name, p in list(params.items())[1:]:
            if name == "key" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if not hasattr(self, name):
                raise TypeError(
                    f"{type(self).__name__} cannot be saved: constructor argument {name!r} is "
                    "not stored as an attribute of the same name"
                )
            out[name] = _jsonable(getattr(self, name), name)
        return out

    def trainable_filter(self) -> Any:
        """Boolean filter spec of trainable leaves (floating arrays not in fixed fields)."""
        return trainable_filter(self)

    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return num_parameters(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write hyperparameters and leaves to ``path`` atomically."""
        cls = type(self)
        header = {
            "format": _FORMAT,
            "module": cls.__module__,
            "class": cls.__qualname__,
            "hyperparameters": self.hyperparameters(),
        }

        def write(f: Any) -> None:
            f.write(json.dumps(header).encode() + b"\n")
            eqx.tree_serialise_leaves(f, self)

        return atomic_write(path, write)

    @classmethod
    def load(cls: type[M], path: str | os.PathLike) -> M:
        """Read a model written by :meth:`save`; the class is taken from the file.

        Called on a subclass, the stored class must be that subclass or derive from it.
        """
        path = Path(path)
        with path.open("rb") as f:
            line = f.readline()
            try:
                header = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path} is not a diffdyn model file (no JSON header)") from None
            if not isinstance(header, dict) or header.get("format") != _FORMAT:
                raise ValueError(f"{path} is not a diffdyn model file (format {_FORMAT!r})")
            model_cls = _resolve_class(header["module"], header["class"])
            if not issubclass(model_cls, cls):
                raise TypeError(
                    f"{path} holds a {model_cls.__name__}, which is not a {cls.__name__}"
                )
            skeleton = model_cls(**header["hyperparameters"], key=jax.random.key(0))
            return eqx.tree_deserialise_leaves(f, skeleton)


def _resolve_class(module: str, qualname: str) -> type[AbstractModel]:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, AbstractModel)):
        raise TypeError(f"{module}.{qualname} is not an AbstractModel subclass")
    return obj
