"""The model base class: one-file save/load, trainable/fixed split, parameter count.

Every model in diffdyn subclasses `AbstractModel`. Two conventions make a model
saveable without pickle:

1. every constructor argument other than ``key`` is stored on the model under the same name
   (usually as a static field), and its value is JSON-serialisable (numbers, strings, bools,
   ``None`` and lists/tuples/dicts of those);
2. the constructor builds a model of the right *structure* from those arguments and any key,
   so that loading can build a skeleton and then fill its leaves from the file.

Arrays that must never be trained (stencil kernels, masks) are declared with
`fixed_field`; `AbstractModel.trainable_filter` leaves them out, together with
every non-floating leaf.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ._container import read_container, write_container

__all__ = [
    "AbstractModel",
    "fixed_field",
    "trainable_filter",
    "num_parameters",
    "model_spec",
    "model_from_spec",
    "all_finite",
]

_KIND, _VERSIONS = "diffdyn-model", (1, 2)
_FIXED = "diffdyn_fixed"
M = TypeVar("M", bound="AbstractModel")


def fixed_field(**kwargs: Any) -> Any:
    """A dataclass field whose arrays are part of the model but never trained.

    Use it for stencil kernels, masks and other constants that should travel with the model
    (and be saved with it) but be left out of the gradient: ``kernel: Array = fixed_field()``.
    `trainable_filter` leaves such fields out, and the model must read them through
    ``jax.lax.stop_gradient``, so that their gradient is exactly zero under any training loop
    (a plain ``eqx.filter_grad`` over every floating leaf included).
    """
    metadata = dict(kwargs.pop("metadata", {}))
    metadata[_FIXED] = True
    return eqx.field(metadata=metadata, **kwargs)


def _is_trainable_leaf(leaf: Any) -> bool:
    return eqx.is_inexact_array(leaf)


def trainable_filter(tree: Any) -> Any:
    """A filter spec (same structure as ``tree``, boolean leaves) marking trainable leaves.

    A leaf is trainable when it is a floating-point array and no enclosing module field was
    declared with `fixed_field`. Use it with ``eqx.partition(tree, trainable_filter(tree))``.
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
    """The number of trainable scalars in ``tree`` (see `trainable_filter`)."""
    params, _ = eqx.partition(tree, trainable_filter(tree))
    return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))


def all_finite(tree: Any) -> bool:
    """True when every floating-point array leaf of ``tree`` holds only finite values."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    return all(bool(np.isfinite(np.asarray(leaf)).all()) for leaf in leaves)


def _jsonable(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (jnp.ndarray,)) and value.ndim == 0:
        return value.item()
    if isinstance(value, AbstractModel):
        return {_NESTED_MODEL: model_spec(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, (type, eqx.Module)):
        module, qualname = _public_location(type(value))
        fields = {
            f.name: _jsonable(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
            if f.init
        }
        return {_NESTED_CONFIG: {"module": module, "class": qualname, "fields": fields}}
    raise TypeError(
        f"hyperparameter {where!r} must be JSON-serialisable (numbers, strings, bools, None, "
        f"lists, dicts), a model or a dataclass config; got {type(value).__name__}"
    )


_NESTED_MODEL, _NESTED_CONFIG = "__model__", "__config__"


def _decode(value: Any, key: PRNGKeyArray, source: str) -> Any:
    """Hyperparameters with their nested model specs and configs built again."""
    if isinstance(value, list):
        return [_decode(v, jax.random.fold_in(key, i), source) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if set(value) == {_NESTED_MODEL}:
        return model_from_spec(value[_NESTED_MODEL], key=key, source=source)
    if set(value) == {_NESTED_CONFIG}:
        spec = value[_NESTED_CONFIG]
        cls = _resolve(str(spec["module"]), str(spec["class"]), source, _is_config)
        fields = {k: _decode(v, key, source) for k, v in spec["fields"].items()}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    return {
        k: _decode(v, jax.random.fold_in(key, i), source) for i, (k, v) in enumerate(value.items())
    }


class AbstractModel(eqx.Module):
    """Base class of every diffdyn model: an ``eqx.Module`` that saves to and loads from one file.

    The file holds one JSON header line (format, class, hyperparameters) followed by the leaves
    in equinox's serialisation format. Nothing is unpickled, and loading never imports a module
    outside diffdyn because a file names it: a class is found either inside the ``diffdyn``
    package or among the ``AbstractModel`` subclasses already defined in this process (so a
    model class of your own loads once the module that defines it has been imported).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _DEFINED[(cls.__module__, cls.__qualname__)] = cls

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

    @classmethod
    def upgrade_hyperparameters(cls, hyperparameters: dict[str, Any], *, version: str) -> dict:
        """The constructor arguments of this class from those a file of diffdyn ``version``
        recorded (``"0.1.0"`` for files written before the ``diffdyn`` namespace). A class
        whose signature changed overrides it; the default returns them unchanged."""
        return hyperparameters

    def trainable_filter(self) -> Any:
        """Boolean filter spec of trainable leaves (floating arrays not in fixed fields)."""
        return trainable_filter(self)

    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return num_parameters(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write hyperparameters and leaves to ``path`` atomically.

        A model with a non-finite parameter (NaN or inf) is refused with a `ValueError`:
        such a file could only ever reproduce a diverged run.
        """
        if not all_finite(self):
            raise ValueError(
                f"refusing to save {type(self).__name__} to {path}: it has NaN or inf parameters"
            )
        header = {"format": f"{_KIND}/{_VERSIONS[-1]}", **model_spec(self)}
        return write_container(path, header, self)

    @classmethod
    def load(cls: type[M], path: str | os.PathLike) -> M:
        """Read a model written by `save`; the class is taken from the file.

        The file's checksum is verified and the array sizes its hyperparameters describe are
        checked against the file before anything is allocated. Called on a subclass, the
        stored class must be that subclass or derive from it.
        """

        def skeleton(header: dict[str, Any]) -> Any:
            # built abstractly: the arrays the hyperparameters describe are compared with the
            # bytes the file holds before any of them is allocated
            build = lambda: model_from_spec(  # noqa: E731
                header, key=jax.random.key(0), base=cls, source=str(path)
            )
            try:
                return eqx.filter_eval_shape(build)
            except (KeyError, AttributeError, IndexError) as e:  # a malformed header
                raise ValueError(
                    f"{path}: its header does not describe a model diffdyn can build ({e!r})"
                ) from None

        model, _ = read_container(path, _KIND, _VERSIONS, skeleton)
        return model


#: Every ``AbstractModel`` subclass defined in this process, by ``(module, qualname)``.
_DEFINED: dict[tuple[str, str], type[AbstractModel]] = {}

#: Where the classes of files written by diffdyn 0.1.0 live now. Those files name the module
#: that defined the class before the packages moved under ``diffdyn``.
_MOVED: dict[tuple[str, str], tuple[str, str]] = {
    ("common.commands", "LinearODE"): ("diffdyn.common.neural_de", "LinearField"),
    **{
        (old, name): (new, name)
        for old, new, names in (
            (
                "common.neural_de.models",
                "diffdyn.common.neural_de",
                ("DensityCNF", "ODEClassifier"),
            ),
            ("nca.model", "diffdyn.nca", ("NCA",)),
            ("nca.variants", "diffdyn.nca", ("GatedNCA", "KANCA", "MultiScaleNCA")),
            ("oscillators.discovery", "diffdyn.common.neural_de", ("MLPField",)),
            (
                "oscillators.discovery",
                "diffdyn.oscillators",
                ("LotkaVolterraGrayBox", "SecondOrderField"),
            ),
            ("oscillators.kuranet", "diffdyn.oscillators", ("KuraNet",)),
            (
                "pde.models",
                "diffdyn.pde",
                (
                    "AdvectionDiffusion",
                    "Brusselator",
                    "CahnHilliard",
                    "Chhabra",
                    "FitzHughNagumo",
                    "GrayScott",
                    "KellerSegel",
                    "Schnakenberg",
                ),
            ),
            ("pde.neural", "diffdyn.pde", ("NeuralChemotaxis", "NeuralRDA")),
            ("pde.solver", "diffdyn.pde", ("PDESolver",)),
            ("rnn.model", "diffdyn.rnn", ("RateRNN",)),
        )
        for name in names
    },
}


#: Constructor arguments of 0.1.0 files whose class changed its signature since.
_OLD_ARGUMENTS: dict[tuple[str, str], Any] = {
    # the discovery MLP became the one saveable MLPField of neural_de (GELU, as before)
    ("oscillators.discovery", "MLPField"): lambda h: {
        "dim": h["state_dim"],
        "width": h["width"],
        "depth": h["depth"],
        "activation": "gelu",
    },
}


def model_spec(model: AbstractModel) -> dict[str, Any]:
    """A JSON description of ``model``: where its class lives and its hyperparameters.

    A diffdyn class is named by the public package that exports it (``diffdyn.pde``,
    ``GrayScott``), so that files do not depend on the private module that defines it.
    """
    module, qualname = _public_location(type(model))
    return {"module": module, "class": qualname, "hyperparameters": model.hyperparameters()}


def model_from_spec(
    spec: dict[str, Any],
    *,
    key: PRNGKeyArray,
    base: type[M] | None = None,
    source: str = "spec",
) -> M:
    """Build the model that `model_spec` describes (its leaves drawn from ``key``).

    The class must be an ``AbstractModel`` subclass (and a subclass of ``base`` if given),
    found inside ``diffdyn`` or among the classes defined in this process; anything else is
    refused before any import.
    """
    if not isinstance(spec, dict) or not {"module", "class", "hyperparameters"} <= set(spec):
        raise ValueError(
            f"{source}: a model spec is a dict with keys module, class and hyperparameters; "
            f"got {spec!r}"
        )
    module, qualname = str(spec["module"]), str(spec["class"])
    model_cls = _resolve_class(module, qualname, source)
    base = AbstractModel if base is None else base
    if not issubclass(model_cls, base):
        raise TypeError(f"{source} holds a {model_cls.__name__}, which is not a {base.__name__}")
    key, nested_key = jax.random.split(key)
    hyperparameters = _decode(spec["hyperparameters"], nested_key, source)
    if (module, qualname) in _OLD_ARGUMENTS:
        hyperparameters = _OLD_ARGUMENTS[(module, qualname)](hyperparameters)
    elif (module, qualname) in _MOVED:  # a file of 0.1.0
        hyperparameters = model_cls.upgrade_hyperparameters(hyperparameters, version="0.1.0")
    if "key" in inspect.signature(model_cls.__init__).parameters:
        return model_cls(**hyperparameters, key=key)
    return model_cls(**hyperparameters)  # a model without random initialisation


def _public_location(cls: type) -> tuple[str, str]:
    """``(package, qualname)`` of the shallowest diffdyn package exporting ``cls``, else
    ``(cls.__module__, qualname)``."""
    parts = cls.__module__.split(".")
    if parts[0] == "diffdyn" and "." not in cls.__qualname__:
        for depth in range(2, len(parts) + 1):
            package = ".".join(parts[:depth])
            module = sys.modules.get(package)
            if module is not None and getattr(module, cls.__qualname__, None) is cls:
                return package, cls.__qualname__
    return cls.__module__, cls.__qualname__


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, AbstractModel)


def _is_config(obj: Any) -> bool:
    return isinstance(obj, type) and dataclasses.is_dataclass(obj) and not _is_model(obj)


def _resolve_class(module: str, qualname: str, source: str) -> type[AbstractModel]:
    return _resolve(module, qualname, source, _is_model)


def _resolve(module: str, qualname: str, source: str, kind: Any) -> Any:
    """The class ``module.qualname`` if ``kind(cls)``: a model class defined in this process
    or any class inside diffdyn, found without importing anything outside diffdyn."""
    module, qualname = _MOVED.get((module, qualname), (module, qualname))
    names = qualname.split(".")
    parts = [*module.split("."), *names]
    if not all(part.isidentifier() and not part.startswith("__") for part in parts):
        raise ValueError(f"{source} names an invalid class {module!r}, {qualname!r}")
    if kind is _is_model and (module, qualname) in _DEFINED:
        return _DEFINED[(module, qualname)]
    if module != "diffdyn" and not module.startswith("diffdyn."):
        raise ValueError(
            f"{source} names the class {qualname} of module {module!r}, which is outside "
            "diffdyn and not defined in this process; diffdyn never imports a module because a "
            "file names it: import the module that defines the class, then load"
        )
    try:
        obj: Any = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or not module.startswith(e.name):
            raise  # a dependency is missing: not the file's fault
        raise ValueError(
            f"{source} names the module {module!r}, which diffdyn does not have"
        ) from None
    for part in names:
        obj = getattr(obj, part, None)
    if not kind(obj):
        what = "an AbstractModel" if kind is _is_model else "a dataclass config"
        raise TypeError(f"{source} names {module}.{qualname}, which is not {what}")
    return obj
