"""Optimisers from config strings, and two gradient transforms used across diffdyn.

- `OptimConfig` holds every optimiser setting of a workflow, and `OptimConfig.build` turns it
  into the optax transformation (the one place where that happens);
- `make_optimiser` builds ``clip -> weight decay -> optimiser(schedule)`` from names;
- `make_schedule` builds the learning-rate schedule alone (e.g. to log it);
- `normalise_gradients` rescales every parameter block to unit norm (neural CA);
- `non_negative` projects chosen parameters onto ``p >= 0`` exactly (last in a chain);
- `parameter_groups` says which group of `OptimConfig.group_learning_rates` each parameter
  falls in.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._helpers import check_int

__all__ = [
    "OptimConfig",
    "OPTIMISERS",
    "SCHEDULES",
    "make_optimiser",
    "make_schedule",
    "normalise_gradients",
    "non_negative",
    "parameter_groups",
]

OPTIMISERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": optax.adam,
    "adamw": optax.adamw,
    "nadam": optax.nadam,
    "nadamw": optax.nadamw,
    "sgd": optax.sgd,
    "lion": optax.lion,
    "rmsprop": optax.rmsprop,
    "adabelief": optax.adabelief,
    "adagrad": optax.adagrad,
    "adamax": optax.adamax,
    "amsgrad": optax.amsgrad,
    "lamb": optax.lamb,
    "radam": optax.radam,
    "yogi": optax.yogi,
    "novograd": optax.novograd,
    "sign_sgd": optax.sign_sgd,
}
"""optax optimisers by name, for `make_optimiser`."""

SCHEDULES = ("constant", "linear", "cosine", "warmup-cosine", "exponential")
"""Learning-rate schedules by name, for `make_schedule`."""
_SCHEDULE_KWARGS = ("alpha", "decay_rate")


OptimiserName = Literal[
    "adam",
    "adamw",
    "nadam",
    "nadamw",
    "sgd",
    "lion",
    "rmsprop",
    "adabelief",
    "adagrad",
    "adamax",
    "amsgrad",
    "lamb",
    "radam",
    "yogi",
    "novograd",
    "sign_sgd",
]
ScheduleName = Literal["constant", "linear", "cosine", "warmup-cosine", "exponential"]
_MOMENTUM = ("sgd", "rmsprop")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """How the parameters are updated: the optimiser, its learning-rate schedule and the
    gradient transforms around it.

    Attributes:
        optimiser: the optax optimiser.
        learning_rate: the learning rate (the peak of the schedule).
        schedule: how the learning rate changes over the run's steps.
        warmup: steps of linear warm-up from 0 before the schedule (0: none).
        decay_rate: the factor by which the exponential schedule decays over the run.
        alpha: the final fraction of the learning rate of the linear and cosine schedules.
        weight_decay: decoupled weight decay for the optimisers that take it (adamw, nadamw,
            lion, lamb, novograd), else an L2 term added to the gradient (0: none).
        momentum: momentum of sgd or rmsprop (0: none; refused for other optimisers).
        clip_norm: clip the global gradient norm to this value (None: no clipping).
        normalise_gradients: rescale each parameter block's gradient to unit norm before the
            optimiser (as neural cellular automata are trained).
        group_learning_rates: learning rates of groups of parameters, as ``(pattern, rate)``
            pairs; on the command line ``PATTERN=RATE,PATTERN=RATE`` (e.g.
            ``rhs.diffusion*=1e-2,net*=1e-3``). A parameter takes the rate of the first pattern
            that selects it (see `parameter_groups`), the others ``learning_rate``; the
            optimiser, schedule, warmup and weight decay act on every group alike, each from
            its own rate, and clipping stays global. A pattern that selects no parameter is an
            error.
    """

    optimiser: OptimiserName = "adam"
    learning_rate: float = 1e-3
    schedule: ScheduleName = "constant"
    warmup: int = 0
    decay_rate: float = 0.1
    alpha: float = 0.0
    weight_decay: float = 0.0
    momentum: float = 0.0
    clip_norm: float | None = None
    normalise_gradients: bool = False
    group_learning_rates: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_learning_rates", _check_groups(self.group_learning_rates))
        if self.optimiser not in OPTIMISERS:
            raise _known("optimiser", self.optimiser, OPTIMISERS)
        if self.schedule not in SCHEDULES:
            raise _known("schedule", self.schedule, SCHEDULES)
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate!r}")
        check_int(self.warmup, "warmup", 0)
        if self.schedule == "warmup-cosine" and self.warmup == 0:
            raise ValueError("schedule 'warmup-cosine' needs warmup > 0; got 0 (use 'cosine')")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay!r}")
        if not self.momentum >= 0:
            raise ValueError(f"momentum must be >= 0; got {self.momentum!r}")
        if self.momentum and self.optimiser not in _MOMENTUM:
            raise ValueError(
                f"momentum is a setting of {' and '.join(_MOMENTUM)}, not of "
                f"{self.optimiser!r}; got momentum = {self.momentum}"
            )
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0 or None (no clipping); got {self.clip_norm!r}")

    def build(self, steps: int, *, non_negative_leaves: Any = None) -> optax.GradientTransformation:
        r"""The optax transformation for a run of ``steps`` steps: `normalise_gradients` (if
        asked), clipping, weight decay and the optimiser with its schedule, then the exact
        projection `non_negative` of the leaves ``non_negative_leaves`` selects (if any: a bool
        pytree or a predicate, as `non_negative` takes).

        With ``group_learning_rates`` the weight decay and the optimiser are one
        ``optax.multi_transform`` over the groups of `parameter_groups`: group $g$ of rate
        $\eta_g$ runs the same optimiser with the schedule $\eta_g s(t)$, where
        $\eta\, s(t)$ is the schedule of rate $\eta$ (every schedule is proportional to its
        rate), so the ratio of two groups' rates is the same at every step. Clipping acts on
        the global norm of all the gradients, before the groups. The groups are found when
        the transformation is initialised (a pattern that selects no parameter fails there)."""
        kw: dict[str, Any] = {}
        if self.schedule == "exponential":
            kw["decay_rate"] = self.decay_rate
        if self.schedule in ("linear", "cosine", "warmup-cosine"):
            kw["alpha"] = self.alpha
        if self.momentum:
            kw["momentum"] = self.momentum

        def optimiser(rate: float, clip_norm: float | None) -> optax.GradientTransformation:
            return make_optimiser(
                self.optimiser,
                rate,
                schedule=self.schedule,
                steps=steps,
                warmup=self.warmup,
                clip_norm=clip_norm,
                weight_decay=self.weight_decay,
                **kw,
            )

        chain = [normalise_gradients()] if self.normalise_gradients else []
        if not self.group_learning_rates:
            chain.append(optimiser(self.learning_rate, self.clip_norm))
        else:
            if self.clip_norm is not None:
                chain.append(optax.clip_by_global_norm(float(self.clip_norm)))
            patterns = [pattern for pattern, _ in self.group_learning_rates]
            transforms = {
                i: optimiser(rate, None) for i, (_, rate) in enumerate(self.group_learning_rates)
            }
            transforms[-1] = optimiser(self.learning_rate, None)
            chain.append(
                optax.multi_transform(transforms, lambda tree: parameter_groups(tree, patterns))
            )
        if non_negative_leaves is not None:
            chain.append(non_negative(non_negative_leaves))
        return chain[0] if len(chain) == 1 else optax.chain(*chain)


def _check_groups(groups: Any) -> tuple[tuple[str, float], ...]:
    """``group_learning_rates`` checked, as a tuple of ``(pattern, rate)`` pairs (a mapping
    ``{pattern: rate}`` or lists are taken too)."""
    name = "group_learning_rates"
    if isinstance(groups, Mapping):
        groups = tuple(groups.items())
    if isinstance(groups, str) or not isinstance(groups, Sequence):
        raise TypeError(f"{name} must be a tuple of (pattern, rate) pairs; got {groups!r}")
    out: list[tuple[str, float]] = []
    for pair in groups:
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"{name} must hold (pattern, rate) pairs; got {pair!r}")
        pattern, rate = pair
        if not isinstance(pattern, str) or not pattern.lstrip("."):
            raise ValueError(f"{name}: a pattern must be a non-empty string; got {pattern!r}")
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise TypeError(f"{name}: the rate of {pattern!r} must be a number; got {rate!r}")
        rate = float(rate)
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(
                f"{name}: the rate of {pattern!r} must be finite and > 0; got {rate!r}"
            )
        if any(pattern == p for p, _ in out):
            raise ValueError(f"{name}: the pattern {pattern!r} is given twice")
        out.append((pattern, rate))
    return tuple(out)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` (a leading ``.`` dropped) matching a run of whole components of a path."""
    body = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.removeprefix(".")
    )
    return re.compile(rf"(?:^|(?<=\.)|(?=\[)){body}(?=$|[.\[])", re.DOTALL)


def parameter_groups(params: Any, patterns: Sequence[str]) -> Any:
    """The group of each leaf of ``params``: the index of the first pattern that selects it,
    or ``-1`` when none does (a pytree of ints with the structure of ``params``).

    A leaf's path is written as `jax.tree_util.keystr` writes it, without its leading dot:
    ``rhs.diffusion_u``, ``net.layers[0].weight``, ``['w']``. Its components are the
    attribute names and the bracketed indices and keys. A pattern selects the leaf when it
    matches the whole path or a run of whole consecutive components of it, with ``*``
    standing for any characters (dots and brackets included) and ``?`` for one, everything
    else literal (brackets too); a leading dot in the pattern is ignored. So ``rhs``,
    ``rhs.diffusion*``, ``diffusion_u`` and ``*`` all select ``rhs.diffusion_u`` (also
    inside a wrapper, at ``model.rhs.diffusion_u``), ``diffusion`` and ``hs.diffusion_u``
    do not; ``layers[0]`` selects every leaf of the first layer.

    Raises a `ValueError` (naming the pattern and a few of the parameters' paths) when a
    pattern selects no leaf: when it matches none, or only leaves an earlier pattern took.
    """
    patterns = list(patterns)
    for p in patterns:
        if not isinstance(p, str) or not p.lstrip("."):
            raise ValueError(f"parameter_groups: a pattern must be a non-empty string; got {p!r}")
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    paths = [jax.tree_util.keystr(path).removeprefix(".") for path, _ in flat]
    regexes = [_glob_regex(p) for p in patterns]
    matches = [[r.search(path) is not None for r in regexes] for path in paths]
    labels = [next((i for i, m in enumerate(row) if m), -1) for row in matches]
    for i, pattern in enumerate(patterns):
        if i in labels:
            continue
        matched = [path for path, row in zip(paths, matches, strict=True) if row[i]]
        if matched:
            raise ValueError(
                f"group_learning_rates: the pattern {pattern!r} selects no parameter: the "
                f"ones it matches ({_few(matched)}) all belong to an earlier pattern"
            )
        known = _few(paths) if paths else "none"
        raise ValueError(
            f"group_learning_rates: the pattern {pattern!r} matches no trained parameter; "
            f"the parameters are {known}"
        )
    return jax.tree_util.tree_unflatten(treedef, labels)


def _few(paths: list[str], shown: int = 6) -> str:
    more = f", ... ({len(paths)} in all)" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def _known(kind: str, name: Any, known: Any) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(known))}")


def make_schedule(
    name: str,
    learning_rate: float,
    *,
    steps: int | None = None,
    warmup: int = 0,
    alpha: float = 0.0,
    decay_rate: float = 0.1,
) -> optax.Schedule:
    """The learning rate ``lr(t)`` at step ``t`` (counted from 0).

    With ``W = warmup`` and ``S = steps`` (the total, warmup included), ``lr`` rises linearly
    ``lr(t) = lr0 * t / W`` for ``t < W``; afterwards, with ``u = (t - W) / (S - W)`` clipped
    to [0, 1]:

    - ``constant``: ``lr0`` (``steps`` not needed);
    - ``linear``: ``lr0 * (1 - (1 - alpha) u)``;
    - ``cosine``: ``lr0 * (alpha + (1 - alpha) (1 + cos(pi u)) / 2)``;
    - ``warmup-cosine``: ``cosine`` with a required warmup ``W > 0``;
    - ``exponential``: ``lr0 * decay_rate ** u`` (continuous; keeps decaying past ``S``).
    """
    if not isinstance(name, str) or name.lower() not in SCHEDULES:
        raise _known("schedule", name, SCHEDULES)
    name = name.lower()
    lr0 = float(learning_rate)
    if not lr0 > 0:
        raise ValueError(f"argument 'learning_rate' must be > 0; got {learning_rate!r}")
    warmup = check_int(warmup, "warmup", 0)
    if name == "warmup-cosine" and warmup == 0:
        raise ValueError(
            "schedule 'warmup-cosine' needs argument 'warmup' > 0; got 0 (use 'cosine')"
        )
    if name != "constant":
        if steps is None:
            raise ValueError(f"schedule {name!r} needs argument 'steps' (total steps); got None")
        steps = check_int(steps, "steps", 1)
        if warmup >= steps:
            raise ValueError(
                f"argument 'warmup' must be < steps = {steps} for schedule {name!r}; got {warmup}"
            )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"argument 'alpha' must lie in [0, 1]; got {alpha!r}")
    if not decay_rate > 0:
        raise ValueError(f"argument 'decay_rate' must be > 0; got {decay_rate!r}")

    if name == "constant":
        main = optax.constant_schedule(lr0)
    else:
        n = steps - warmup  # type: ignore[operator]
        if name == "linear":
            main = optax.linear_schedule(lr0, alpha * lr0, n)
        elif name in ("cosine", "warmup-cosine"):
            main = optax.cosine_decay_schedule(lr0, n, alpha=alpha)
        else:
            main = optax.exponential_decay(lr0, n, decay_rate)
    if warmup == 0:
        return main
    ramp = optax.linear_schedule(0.0, lr0, warmup)
    return optax.join_schedules([ramp, main], [warmup])


def make_optimiser(
    name: str,
    learning_rate: float,
    *,
    schedule: str = "constant",
    steps: int | None = None,
    warmup: int = 0,
    clip_norm: float | None = None,
    weight_decay: float = 0.0,
    **kw: Any,
) -> optax.GradientTransformation:
    """An optax optimiser from config values.

    The chain is ``clip_by_global_norm(clip_norm)`` (if given), then weight decay, then
    ``optax.<name>(make_schedule(schedule, learning_rate, ...), **kw)``. Optimisers with a
    ``weight_decay`` argument (adamw, nadamw, lion, lamb, novograd) get it as decoupled decay
    (so ``adamw`` with the default 0 is ``adam``); for the others a non-zero ``weight_decay``
    adds ``weight_decay * p`` to the gradient (coupled L2). ``kw`` may hold ``alpha`` and
    ``decay_rate`` for the schedule; the rest goes to the optax constructor (``b1``,
    ``momentum``, ``nesterov`` ...). Chain `normalise_gradients` in front and
    `non_negative` behind as needed.
    """
    if not isinstance(name, str) or name.lower() not in OPTIMISERS:
        raise _known("optimiser", name, OPTIMISERS)
    factory = OPTIMISERS[name.lower()]
    sched_kw = {k: kw.pop(k) for k in _SCHEDULE_KWARGS if k in kw}
    lr: Any = make_schedule(schedule, learning_rate, steps=steps, warmup=warmup, **sched_kw)
    if schedule.lower() == "constant" and warmup == 0:
        lr = float(learning_rate)

    accepted = [p for p in inspect.signature(factory).parameters if p != "learning_rate"]
    bad = [k for k in kw if k not in accepted or k == "weight_decay"]
    if bad:
        raise TypeError(
            f"make_optimiser: {name!r} does not take {bad}; it accepts "
            f"{[p for p in accepted if p != 'weight_decay'] + list(_SCHEDULE_KWARGS)}"
        )
    if not float(weight_decay) >= 0:
        raise ValueError(f"argument 'weight_decay' must be >= 0; got {weight_decay!r}")
    if clip_norm is not None and not float(clip_norm) > 0:
        raise ValueError(f"argument 'clip_norm' must be > 0 or None; got {clip_norm!r}")

    chain = []
    if clip_norm is not None:
        chain.append(optax.clip_by_global_norm(float(clip_norm)))
    if "weight_decay" in accepted:
        kw["weight_decay"] = float(weight_decay)
    elif weight_decay:
        chain.append(optax.add_decayed_weights(float(weight_decay)))
    chain.append(factory(lr, **kw))
    return chain[0] if len(chain) == 1 else optax.chain(*chain)


def normalise_gradients(eps: float = 1e-8) -> optax.GradientTransformation:
    """Per-block normalisation ``g -> g / (||g||_2 + eps)`` for every leaf of the updates.

    Each array leaf (a weight matrix, a bias vector) is one block, so every block moves by the
    same amount whatever the scale of its gradient (as in neural-CA training). Stateless.
    """

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params

        def scale(g: jax.Array) -> jax.Array:
            return g / (jnp.sqrt(jnp.sum(jnp.square(g))) + eps)

        return jax.tree_util.tree_map(scale, updates), state

    return optax.GradientTransformation(init_fn, update_fn)


def _n_positional(f: Callable[..., Any]) -> int:
    try:
        ps = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
        return 2
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in ps):
        return 2
    return sum(p.kind in kinds and p.default is inspect.Parameter.empty for p in ps)


def _select(where: Any, params: Any) -> Any:
    """A pytree of Python bools with the structure of ``params``."""

    def as_bool(value: Any) -> bool:
        try:
            return bool(value)
        except Exception as e:  # a traced array cannot be made a Python bool
            raise TypeError(
                "non_negative: the selection must give a Python bool per leaf, decided from "
                f"static information (path, shape, dtype); got {value!r}"
            ) from e

    if callable(where) and not isinstance(where, (list, tuple, dict, eqx.Module)):
        if _n_positional(where) == 1:
            return jax.tree_util.tree_map(lambda p: as_bool(where(p)), params)
        return jax.tree_util.tree_map_with_path(lambda path, p: as_bool(where(path, p)), params)

    def broadcast(spec: Any, sub: Any) -> Any:
        if callable(spec):
            return jax.tree_util.tree_map(lambda p: as_bool(spec(p)), sub)
        if not isinstance(spec, bool):
            raise TypeError(
                "non_negative: a filter pytree must have bool (or callable) leaves; got "
                f"{type(spec).__name__}"
            )
        return jax.tree_util.tree_map(lambda _: spec, sub)

    try:
        return jax.tree_util.tree_map(broadcast, where, params)
    except ValueError as e:
        raise ValueError(
            "non_negative: the filter must have the structure of params (or a prefix of it); "
            f"got filter {jax.tree_util.tree_structure(where)} for params "
            f"{jax.tree_util.tree_structure(params)}"
        ) from e


def non_negative(where: Any) -> optax.GradientTransformation:
    """Project chosen parameters onto ``p >= 0``, exactly, through the update.

    For each chosen leaf the update becomes ``u' = max(u, -p)``, so that after
    ``p <- p + u'`` (``optax.apply_updates``) ``p + u' = max(p + u, 0)`` holds exactly in
    floating point: if ``u >= -p`` then ``p + u >= 0`` and rounding keeps it ``>= 0``; else
    ``p + (-p) = 0`` exactly. Updates and params must have the same dtype. It must be the LAST
    element of an ``optax.chain`` (anything after it would rescale ``u'``), and ``update``
    needs ``params``.

    ``where`` selects the leaves: a pytree of bools with the structure of params (or a prefix,
    like an equinox filter spec; callable leaves are applied to the leaves below them), or a
    callable ``where(path, leaf) -> bool`` (``path`` as in ``jax.tree_util.tree_map_with_path``;
    a one-argument callable gets the leaf only). The decision must be static (path, shape,
    dtype), not a traced value.
    """

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        if params is None:
            raise ValueError(
                "non_negative: update(updates, state, params) needs the current params to "
                "project them; got params=None (call optimiser.update(grads, state, params))"
            )
        chosen = _select(where, params)

        def project(u: Any, p: Any, c: bool) -> Any:
            if not c or u is None:
                return u
            return jnp.maximum(u, (-p).astype(u.dtype))

        new = jax.tree_util.tree_map(project, updates, params, chosen)
        return new, state

    return optax.GradientTransformation(init_fn, update_fn)
