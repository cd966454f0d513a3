r"""Events and hybrid systems: solving until a condition crosses zero, and flows with jumps.

An **event** of the flow $\dot y = f(t, y, \mathrm{args})$ is the first time $t^\ast > t_0$ at
which a scalar condition $c(t, y(t), \mathrm{args})$ crosses zero (in a chosen direction).
`solve_to_event` integrates until then with ``diffrax.diffeqsolve(..., event=diffrax.Event)``:
a sign change of $c$ across a step flags the step, and a safeguarded Newton iteration on the
solver's dense interpolant $\hat y$ locates the root of $t \mapsto c(t, \hat y(t))$ in it.
The event time is differentiable. Through the root, by the implicit function theorem,

$$
\frac{d t^\ast}{d\theta} = -\left.\frac{\partial_\theta c(t, \hat y(t; \theta))}
{\partial_t c(t, \hat y(t; \theta))}\right|_{t = t^\ast},
$$

where $\theta$ is anything the solve depends on (``y0``, ``args``, the parameters of the
vector field and of the condition); optimistix applies this formula itself
(``optimistix.ImplicitAdjoint``), so the Newton iterations are never differentiated.

A **hybrid system** (`HybridODE`) alternates flows and jumps: from $(t_0, y_0)$ it flows until
an event $\tau_1$, jumps $y(\tau_1^+) = g(\tau_1, y(\tau_1^-), \mathrm{args})$, flows again
from there until $\tau_2$, and so on, at most ``max_events`` times over $[t_0, t_1]$. Gradients
pass through every event time and jump, so impact times, restitution coefficients or reset
maps can be fitted to data. `BouncingBall` is the classic example, with a trainable
coefficient of restitution.

Event location is controlled in time, not in the units of the condition: Newton stops once
its step, or the sign-change bracket it keeps inside the flagged step, is below
$\mathrm{atol} + \mathrm{rtol}\,|t|$ with the tolerances of the `SolveConfig` (so the same
settings serve float32 and float64, and a condition in metres or in volts).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PyTree, Real

from .._helpers import check_int, check_number
from .._model import AbstractModel
from .._solve import (
    SolveConfig,
    _build,
    _check_field_output,
    _check_ts,
    _check_y0,
    _fixed_step_count,
    _is_concrete,
    _step_bound,
)
from ._node import _check_solve

__all__ = [
    "EVENT_DIRECTIONS",
    "EventSolution",
    "solve_to_event",
    "HybridSolution",
    "HybridODE",
    "BouncingBall",
]

EventDirection = Literal["any", "up", "down"]
_DIRECTIONS: dict[str, bool | None] = {"any": None, "up": True, "down": False}
EVENT_DIRECTIONS: tuple[str, ...] = tuple(_DIRECTIONS)
"""Which zero crossings of the condition are events: ``any``, ``up`` (from negative to
positive) or ``down`` (from positive to zero or negative)."""


# ----------------------------------------------------------------------------------------
# Locating the root inside the flagged step
# ----------------------------------------------------------------------------------------


class _BracketState(eqx.Module):
    lower: Array
    upper: Array
    lower_negative: Array
    diff: Array
    f: Array


class _SafeguardedNewton(optx.AbstractRootFinder):
    r"""Newton's method on a scalar function, kept inside a sign-change bracket.

    Needs the options ``lower`` and ``upper`` (diffrax passes the ends of the step on which
    the event was flagged). Each iteration evaluates $c$ and $c'$ at $t$ (one ``jvp``),
    shrinks the bracket to the half-interval whose ends still differ in sign, and takes the
    Newton point $t - c/c'$ if it lies in the bracket, else the bracket's midpoint (as
    ``rtsafe`` of Press et al., 2007, Numerical Recipes). Stops when the last step or the
    bracket is below $\mathrm{atol} + \mathrm{rtol}\,|t|$, or on an exact zero: a criterion
    in time only, so that rounding noise in the value of $c$ cannot keep it from stopping.
    """

    rtol: float
    atol: float
    norm: ClassVar[Callable[[PyTree], Array]] = jnp.abs

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        del aux_struct, tags
        lower = jnp.asarray(options["lower"], jnp.result_type(y))
        upper = jnp.asarray(options["upper"], jnp.result_type(y))
        f_lower, _ = fn(lower, args)
        inf = jnp.array(jnp.inf, jnp.result_type(y))
        return _BracketState(
            lower=lower,
            upper=upper,
            lower_negative=f_lower < 0,
            diff=inf,
            f=jnp.array(jnp.inf, f_struct.dtype),
        )

    def step(self, fn, y, args, options, state, tags):
        del options, tags
        f, df, aux = jax.jvp(lambda t: fn(t, args), (y,), (jnp.ones_like(y),), has_aux=True)
        same_side = (f < 0) == state.lower_negative
        lower = jnp.where(same_side, y, state.lower)
        upper = jnp.where(same_side, state.upper, y)
        with jax.numpy_dtype_promotion("standard"):
            newton = (y - f / df).astype(y.dtype)
        inside = jnp.isfinite(newton) & (newton >= lower) & (newton <= upper)
        new_y = jnp.where(f == 0, y, jnp.where(inside, newton, lower + 0.5 * (upper - lower)))
        new_state = _BracketState(lower, upper, state.lower_negative, new_y - y, f)
        return new_y, new_state, aux

    def terminate(self, fn, y, args, options, state, tags):
        del fn, args, options, tags
        scale = self.atol + self.rtol * jnp.abs(y)
        small = (jnp.abs(state.diff) < scale) | (state.upper - state.lower < scale)
        return small | (state.f == 0), optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        del fn, args, options, state, tags, result
        return y, aux, {}


# ----------------------------------------------------------------------------------------
# Checks and settings
# ----------------------------------------------------------------------------------------


def _check_callable(fn: Any, name: str, signature: str) -> None:
    if not callable(fn):
        raise TypeError(
            f"argument {name!r} must be callable as {signature}; got {type(fn).__name__}: {fn!r}"
        )


def _check_direction(direction: Any) -> bool | None:
    if not isinstance(direction, str) or direction not in _DIRECTIONS:
        raise ValueError(
            f"argument 'direction' must be one of {', '.join(EVENT_DIRECTIONS)}; got {direction!r}"
        )
    return _DIRECTIONS[direction]


def _check_event_solve(solve: Any) -> SolveConfig:
    solve = _check_solve(solve)
    if isinstance(solve.adjoint, diffrax.BacksolveAdjoint) or solve.adjoint == "backsolve":
        raise ValueError(
            "argument 'solve' has adjoint 'backsolve', which diffrax cannot use with events; "
            "use 'recursive-checkpoint' or 'direct'"
        )
    return solve


def _check_span(t0: Any, t1: Any) -> None:
    for name, t in (("t0", t0), ("t1", t1)):
        if np.ndim(t) != 0:
            raise ValueError(f"argument {name!r} must be a scalar; got shape {np.shape(t)}")
        if _is_concrete(t) and not math.isfinite(float(t)):
            raise ValueError(f"argument {name!r} must be finite; got {float(t)}")
    if _is_concrete(t0) and _is_concrete(t1) and not float(t1) > float(t0):
        raise ValueError(
            f"argument 't1' must be > t0 (events are searched forwards in time over [t0, t1]); "
            f"got t0 = {float(t0)}, t1 = {float(t1)}"
        )


def _check_save_times(ts: Any, t0: Any, t1: Any) -> Array:
    """`solve`'s checks of save times (1-D, real, finite, increasing, from ``t0`` on), and
    that they end by ``t1``."""
    ts, _ = _check_ts(ts, t0)
    if _is_concrete(ts) and _is_concrete(t1) and float(ts[-1]) > float(t1):
        raise ValueError(
            f"argument 'ts' must lie in [t0, t1] = [{float(t0)}, {float(t1)}]; got "
            f"ts[-1] = {float(ts[-1])}"
        )
    return ts


class _Condition(eqx.Module):
    """``condition(t, y, args)`` as diffrax calls it, in the default float dtype (diffrax's
    root-finding branch compares it with a Python float, so it must not be narrower)."""

    fn: Callable[..., Array]

    def __call__(self, t, y, args, **kwargs):
        del kwargs
        with jax.numpy_dtype_promotion("standard"):
            return jnp.asarray(self.fn(t, y, args), jnp.result_type(float))


def _check_condition_output(condition: Callable, t0: Any, y0: Any, args: Any) -> None:
    try:
        out = eqx.filter_eval_shape(condition, t0, y0, args)
    except (TypeError, ValueError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"condition(t, y, args) fails on y0: {first}") from e
    if not isinstance(out, jax.ShapeDtypeStruct) or out.shape != ():
        got = out.shape if isinstance(out, jax.ShapeDtypeStruct) else jtu.tree_structure(out)
        raise ValueError(f"condition(t, y, args) must return a scalar; got {got}")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(
            "condition(t, y, args) must return a real (floating-point) scalar whose zero "
            f"crossing is the event; got dtype {out.dtype}"
        )


def _check_jump_output(jump: Callable, t0: Any, y0: Any, args: Any) -> None:
    try:
        out = eqx.filter_eval_shape(jump, t0, y0, args)
    except (TypeError, ValueError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"jump(t, y, args) fails on y0: {first}") from e
    want = [tuple(jnp.shape(y)) for y in jtu.tree_leaves(y0)]
    got = [tuple(getattr(y, "shape", ())) for y in jtu.tree_leaves(out)]
    if jtu.tree_structure(out) != jtu.tree_structure(y0) or got != want:
        raise ValueError(
            f"jump(t, y, args) must return a state shaped like y0 (leaf shapes {want}); got "
            f"{jtu.tree_structure(out)} with leaf shapes {got}"
        )


def _prepare(vector_field, y0, t0, t1, args, ts, dt0):
    """Times, save times and state in one time dtype, as diffrax would cast them."""
    y0 = _check_y0(y0)
    with jax.numpy_dtype_promotion("standard"):
        extra = () if dt0 is None else (dt0,)
        time_dtype = jnp.result_type(t0, t1, *extra, *(() if ts is None else (ts,)))
        if not jnp.issubdtype(time_dtype, jnp.floating):
            time_dtype = jnp.result_type(float)
        t0 = jnp.asarray(t0, time_dtype)
        t1 = jnp.asarray(t1, time_dtype)
        ts = None if ts is None else ts.astype(time_dtype)
        y0 = jtu.tree_map(lambda y: y.astype(jnp.result_type(y, time_dtype)), y0)
    _check_field_output(vector_field, t0, y0, args)
    return y0, t0, t1, ts


class _Segment(eqx.Module):
    """Everything needed to flow from ``(t0, y0)`` until an event or ``t1``."""

    vector_field: Callable[..., PyTree[Array]]
    condition: _Condition
    direction: bool | None = eqx.field(static=True)
    root_finder: optx.AbstractRootFinder | None
    solve: SolveConfig = eqx.field(static=True)

    def __call__(self, y0, t0, t1, ts, args, *, throw: bool):
        solve = self.solve
        solver, controller, adjoint = _build(
            solve.solver, solve.adjoint, solve.adaptive, solve.rtol, solve.atol
        )
        root_finder = self.root_finder
        if root_finder is None:
            root_finder = _SafeguardedNewton(rtol=solve.rtol, atol=solve.atol)
        event = diffrax.Event(self.condition, root_finder, direction=self.direction)
        dt0 = solve.dt0
        count = None  # the steps of a fixed step to t1, when known (bounds max_steps=None)
        if not solve.adaptive:
            if dt0 is None:
                dt0, count = (t1 - t0) / 100, 100
            else:
                count = _fixed_step_count(t0, t1, dt0)
        # The end point and the save times in separate buffers: diffrax writes the end
        # point after the last save time it kept, which an event makes data-dependent.
        subs = [diffrax.SubSaveAt(t1=True)]
        if ts is not None:
            subs.append(diffrax.SubSaveAt(ts=jnp.clip(ts, t0, t1)))
        saveat = diffrax.SaveAt(subs=subs)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(self.vector_field),
            solver,
            t0=t0,
            t1=t1,
            dt0=dt0,
            y0=y0,
            args=args,
            saveat=saveat,
            stepsize_controller=controller,
            adjoint=adjoint,
            event=event,
            max_steps=_step_bound(solve.max_steps, solve.adaptive, count),
            throw=throw,
        )
        time = sol.ts[0][0]
        state = jtu.tree_map(lambda y: y[0], sol.ys[0])
        ys = None if ts is None else sol.ys[1]
        return time, state, jnp.asarray(sol.event_mask), ys, sol.result


# ----------------------------------------------------------------------------------------
# Solving until one event
# ----------------------------------------------------------------------------------------


class EventSolution(eqx.Module):
    r"""The result of `solve_to_event`.

    Attributes:
        time: the event time $t^\ast$ if ``occurred``, else ``t1`` (where the solve stopped).
        state: $y(t^\ast)$ if ``occurred``, else $y(t_1)$.
        occurred: whether the condition crossed zero in ``(t0, t1]``. Always read it before
            trusting ``time``: without an event, ``time`` is the end of the interval, not a
            root of the condition.
        ys: the state at the save times ``ts`` (every leaf gains a leading ``[T]`` axis), or
            None without ``ts``. Save times after the event hold ``inf`` (diffrax's fill value).
        result: diffrax's ``RESULTS`` of the solve (``event_occurred``, ``successful``, ...).
    """

    time: Real[Array, ""]
    state: PyTree[Array]
    occurred: Bool[Array, ""]
    ys: PyTree[Array] | None
    result: diffrax.RESULTS


def solve_to_event(
    vector_field: Callable[..., PyTree[Array]],
    y0: PyTree[ArrayLike],
    t0: Real[ArrayLike, ""],
    t1: Real[ArrayLike, ""],
    condition: Callable[..., Real[Array, ""]],
    *,
    direction: EventDirection = "any",
    solve: SolveConfig = SolveConfig(),  # noqa: B008 (frozen, hashable)
    args: Any = None,
    ts: Real[ArrayLike, " T"] | None = None,
    root_finder: optx.AbstractRootFinder | None = None,
    require_event: bool = False,
) -> EventSolution:
    r"""Solve $\dot y = f(t, y, \mathrm{args})$ from $y(t_0) = y_0$ until the first zero
    crossing $t^\ast \in (t_0, t_1]$ of $c(t, y(t), \mathrm{args})$.

    Args:
        vector_field: $f$, any callable ``f(t, y, args) -> dy/dt`` (an ``eqx.Module`` for
            trained parameters); ``y`` may be a pytree.
        y0: the initial state.
        t0: the start of the search interval (finite).
        t1: its end, ``t1 > t0`` (finite).
        condition: $c$, a callable ``c(t, y, args) -> scalar`` returning a real number (a
            boolean has no root to locate or differentiate, and is refused).
        direction: which crossings count (`EVENT_DIRECTIONS`): ``any``, ``up`` ($c$ from
            negative to positive) or ``down`` ($c$ from positive to zero or negative). A
            crossing is detected from the signs of $c$ at the ends of each solver step, so two
            roots within one step cancel; keep steps (``solve.max_steps``, tolerances, ``dt0``)
            fine enough for the events you expect.
        solve: the solver, step-size control, tolerances, adjoint and step bound (`SolveConfig`);
            its ``rtol`` and ``atol`` also set how closely the event time is located (in
            time). A fixed-step solve without ``dt0`` takes ``(t1 - t0) / 100``. The
            ``backsolve`` adjoint is refused: diffrax cannot combine it with events.
        args: passed to ``vector_field`` and ``condition``.
        ts: optional increasing save times in ``[t0, t1]``.
        root_finder: an optimistix root finder to use instead of the default safeguarded
            Newton iteration (library use); it receives the options ``lower``/``upper``.
        require_event: when True, a solve that reaches ``t1`` without an event raises an
            error (at run time, also under ``jit``) instead of returning ``occurred = False``.

    Returns:
        An `EventSolution`. When no event occurs before ``t1``, ``occurred`` is False and
        ``time``, ``state`` are ``t1`` and $y(t_1)$; nothing about them says "event" then.

    The event time and state are differentiable with respect to ``y0``, ``args``, ``t0``
    and the parameters of ``vector_field`` and ``condition`` (implicit function theorem at
    the root, see the module docstring), with the ``recursive-checkpoint`` or ``direct``
    adjoint.
    """
    _check_callable(vector_field, "vector_field", "f(t, y, args)")
    _check_callable(condition, "condition", "c(t, y, args)")
    diffrax_direction = _check_direction(direction)
    solve = _check_event_solve(solve)
    if not isinstance(require_event, bool):
        raise TypeError(f"argument 'require_event' must be a bool; got {require_event!r}")
    if root_finder is not None and not isinstance(root_finder, optx.AbstractRootFinder):
        raise TypeError(
            f"argument 'root_finder' must be an optimistix.AbstractRootFinder; got "
            f"{type(root_finder).__name__}"
        )
    _check_span(t0, t1)
    if ts is not None:
        ts = _check_save_times(ts, t0, t1)
    y0, t0, t1, ts = _prepare(vector_field, y0, t0, t1, args, ts, solve.dt0)
    _check_condition_output(condition, t0, y0, args)
    segment = _Segment(vector_field, _Condition(condition), diffrax_direction, root_finder, solve)
    time, state, occurred, ys, result = segment(y0, t0, t1, ts, args, throw=True)
    if require_event:
        time = eqx.error_if(
            time, jnp.invert(occurred), "solve_to_event: no event occurred before t1"
        )
    return EventSolution(time=time, state=state, occurred=occurred, ys=ys, result=result)


# ----------------------------------------------------------------------------------------
# Hybrid systems
# ----------------------------------------------------------------------------------------


class HybridSolution(eqx.Module):
    r"""The result of a `HybridODE` run over $[t_0, t_1]$ with at most $K$ = ``max_events``
    jumps.

    Attributes:
        event_times: ``[K]``, the event times $\tau_1 < \tau_2 < \dots$ at which a jump was
            applied, then ``inf`` for the events that did not happen.
        states_before: the states $y(\tau_k^-)$ just before each jump (leaves ``[K, ...]``,
            ``inf`` past ``num_events``).
        states_after: the states $y(\tau_k^+) = g(\tau_k, y(\tau_k^-))$ just after each jump
            (leaves ``[K, ...]``, ``inf`` past ``num_events``).
        num_events: how many jumps were applied (``<= K``).
        truncated: True when a $(K{+}1)$-th event occurred before $t_1$. The run stops
            there, without applying it: ``t_end`` is that event's time, ``y_end`` the state
            just before it, and later save times hold ``inf``. Raise ``max_events`` then.
        t_end: where the solution ends: $t_1$, unless ``truncated``.
        y_end: $y(t_\mathrm{end})$ (the final state $y(t_1)$ unless ``truncated``).
        ys: the state at the save times ``ts`` (leaves ``[T, ...]``) or None without ``ts``.
            The solution is right-continuous: a save time equal to an event time gets the
            state after the jump. Save times after ``t_end`` hold ``inf``.
    """

    event_times: Real[Array, " K"]
    states_before: PyTree[Array]
    states_after: PyTree[Array]
    num_events: Int[Array, ""]
    truncated: Bool[Array, ""]
    t_end: Real[Array, ""]
    y_end: PyTree[Array]
    ys: PyTree[Array] | None

    @property
    def event_mask(self) -> Bool[Array, " K"]:
        """``[K]``: which of the ``max_events`` slots hold an event that happened."""
        return jnp.arange(self.event_times.shape[0]) < self.num_events


def _where(pred: Array, a: PyTree[Array], b: PyTree[Array]) -> PyTree[Array]:
    return jtu.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def _inf_like(tree: PyTree[Array]) -> PyTree[Array]:
    return jtu.tree_map(lambda x: jnp.full_like(x, jnp.inf), tree)


class HybridODE(eqx.Module):
    r"""A hybrid (impulsive) system: flows of $\dot y = f(t, y, \mathrm{args})$ interrupted by
    jumps $y \mapsto g(t, y, \mathrm{args})$ whenever $c(t, y, \mathrm{args})$ crosses zero.

    From $(t_0, y_0)$: flow to the first event $\tau_1$ (see `solve_to_event`), set
    $y(\tau_1^+) = g(\tau_1, y(\tau_1^-), \mathrm{args})$, flow again from $\tau_1$, and so
    on, up to ``max_events`` jumps, until $t_1$. The run is one ``lax.scan`` over
    ``max_events + 1`` flow segments (one compiled solve, whatever $K$); the segments
    after the solution has reached $t_1$ are skipped (under ``vmap``, once every run of the
    batch has).

    The condition is evaluated anew on each segment, starting at the post-jump state, where
    it is (numerically) zero. A sign test from there could see a spurious crossing, so pick
    ``direction`` such that the jump leaves the condition moving away from the crossing that
    is the event: for a ball, ``down`` on the height, which the bounce makes increase.

    Args:
        vector_field: $f$, a callable ``f(t, y, args)``.
        condition: $c$, a callable ``c(t, y, args) -> real scalar``.
        jump: $g$, a callable ``g(t, y, args) -> y``, the state after the event (an
            ``eqx.Module`` for trainable reset parameters).
        max_events: $K$, the most jumps a run applies.
        direction: which crossings of $c$ are events (`EVENT_DIRECTIONS`).
        solve: the solve settings (`SolveConfig`), as for `solve_to_event` (a fixed-step
            solve without ``dt0`` takes a hundredth of what is left of $[t_0, t_1]$ on each
            flow segment).
        root_finder: optional optimistix root finder for the event times (library use).

    ``hybrid(y0, t0, t1, ts=None, args=None)`` returns a `HybridSolution`: event times,
    the states around each jump, the state at ``t1`` and, with ``ts``, the trajectory.
    Everything is differentiable, event times included.
    """

    vector_field: Callable[..., PyTree[Array]]
    condition: Callable[..., Array]
    jump: Callable[..., PyTree[Array]]
    max_events: int = eqx.field(static=True)
    direction: str = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)
    root_finder: optx.AbstractRootFinder | None

    def __init__(
        self,
        vector_field: Callable[..., PyTree[Array]],
        condition: Callable[..., Array],
        jump: Callable[..., PyTree[Array]],
        max_events: int,
        *,
        direction: EventDirection = "any",
        solve: SolveConfig = SolveConfig(),  # noqa: B008 (frozen, hashable)
        root_finder: optx.AbstractRootFinder | None = None,
    ):
        _check_callable(vector_field, "vector_field", "f(t, y, args)")
        _check_callable(condition, "condition", "c(t, y, args)")
        _check_callable(jump, "jump", "g(t, y, args)")
        _check_direction(direction)
        if root_finder is not None and not isinstance(root_finder, optx.AbstractRootFinder):
            raise TypeError(
                f"argument 'root_finder' must be an optimistix.AbstractRootFinder; got "
                f"{type(root_finder).__name__}"
            )
        self.vector_field = vector_field
        self.condition = condition
        self.jump = jump
        self.max_events = check_int(max_events, "max_events")
        self.direction = direction
        self.solve = _check_event_solve(solve)
        self.root_finder = root_finder

    def __call__(
        self,
        y0: PyTree[ArrayLike],
        t0: Real[ArrayLike, ""],
        t1: Real[ArrayLike, ""],
        ts: Real[ArrayLike, " T"] | None = None,
        args: Any = None,
    ) -> HybridSolution:
        """Run from $y(t_0) = y_0$ over $[t_0, t_1]$, saving at ``ts`` (increasing, in
        ``[t0, t1]``) if given."""
        _check_span(t0, t1)
        if ts is not None:
            ts = _check_save_times(ts, t0, t1)
        y0, t0, t1, ts = _prepare(self.vector_field, y0, t0, t1, args, ts, self.solve.dt0)
        _check_condition_output(self.condition, t0, y0, args)
        _check_jump_output(self.jump, t0, y0, args)
        segment = _Segment(
            self.vector_field,
            _Condition(self.condition),
            _DIRECTIONS[self.direction],
            self.root_finder,
            self.solve,
        )
        k_max = self.max_events
        ys0 = (
            None
            if ts is None
            else jtu.tree_map(lambda y: jnp.full(ts.shape + y.shape, jnp.inf, y.dtype), y0)
        )

        def body(carry, k):
            t_k, y_k, done, count, t_end, y_end, ys = carry
            # Once every run is done the segment is skipped. The predicate is taken across a
            # vmapped batch (a batched predicate would turn the cond into a select, which
            # diffrax's checkpointed loop cannot differentiate); a run of the batch that is
            # done while others are not repeats its first segment, harmless and masked out.
            t_start = jnp.where(done, t0, t_k)
            y_start = _where(done, y0, y_k)

            def run(t_start, y_start):
                return segment(y_start, t_start, t1, ts, args, throw=True)[:4]

            def skip(t_start, y_start):
                return t_start, y_start, jnp.array(False), ys0

            time, state, occurred, seg_ys = jax.lax.cond(
                eqxi.unvmap_all(done), skip, run, t_start, y_start
            )
            live = jnp.invert(done)
            event = live & occurred
            apply = event & (k < k_max)
            # the state keeps its dtype across a jump, as diffrax keeps it across a step
            after = jtu.tree_map(
                lambda a, y: jnp.asarray(a).astype(y.dtype), self.jump(time, state, args), state
            )
            out = (
                jnp.where(apply, time, jnp.inf),
                _where(apply, state, _inf_like(state)),
                _where(apply, after, _inf_like(after)),
            )
            ends = live & jnp.invert(apply)
            t_end = jnp.where(ends, time, t_end)
            y_end = _where(ends, state, y_end)
            if ys is not None:
                mine = live & (ts >= t_k) & ((ts < time) | (jnp.invert(occurred) & (ts <= time)))
                ys = jtu.tree_map(
                    lambda new, old: jnp.where(
                        mine.reshape(mine.shape + (1,) * (new.ndim - 1)), new, old
                    ),
                    seg_ys,
                    ys,
                )
            carry = (
                jnp.where(apply, time, t_k),
                _where(apply, after, y_k),
                done | jnp.invert(apply),
                count + apply.astype(count.dtype),
                t_end,
                y_end,
                ys,
            )
            return carry, (out, event & (k == k_max))

        init = (t0, y0, jnp.array(False), jnp.array(0), t1, y0, ys0)
        carry, (out, truncated) = jax.lax.scan(body, init, jnp.arange(k_max + 1))
        _, _, _, count, t_end, y_end, ys = carry
        times, before, after = jtu.tree_map(lambda x: x[:k_max], out)
        return HybridSolution(
            event_times=times,
            states_before=before,
            states_after=after,
            num_events=count,
            truncated=jnp.any(truncated),
            t_end=t_end,
            y_end=y_end,
            ys=ys,
        )


# ----------------------------------------------------------------------------------------
# The bouncing ball
# ----------------------------------------------------------------------------------------


class BouncingBall(AbstractModel):
    r"""A ball in free fall that bounces on the ground $x = 0$, losing speed at each impact.

    State $y = (x, v)$, height and vertical velocity. Flow and jump:

    $$
    \dot x = v, \quad \dot v = -g; \qquad
    x(\tau) = 0,\ v(\tau^-) < 0 \;\Longrightarrow\; v(\tau^+) = -e\, v(\tau^-),
    $$

    with gravity $g$ and the coefficient of restitution $e$, a trainable scalar. The event is
    a downward zero crossing of the height (which at an impact means $v < 0$). Dropped at
    $t_0$ from height $h$ with velocity $v_0$, it first lands at $\tau_1 = t_0 + (v_0 + s)/g$
    with speed $s = \sqrt{v_0^2 + 2 g h}$, and the $k$-th impact, at speed $e^{k-1} s$,
    follows at

    $$
    \tau_k = \tau_1 + \frac{2 s}{g} \sum_{i=1}^{k-1} e^{i}.
    $$

    Args:
        restitution: $e \ge 0$ (trained; 1 is an elastic bounce).
        gravity: $g > 0$.
        max_bounces: the most impacts a run resolves (`HybridODE`'s ``max_events``).
        solve: the solve settings (`SolveConfig`; not ``backsolve``).

    ``ball(y0, t0, t1, ts=None)`` returns a `HybridSolution` (impact times in
    ``event_times``). Saveable like every model.
    """

    restitution: Float[Array, ""]
    gravity: float = eqx.field(static=True)
    max_bounces: int = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)

    def __init__(
        self,
        restitution: float | Float[ArrayLike, ""] = 0.8,
        gravity: float = 9.81,
        max_bounces: int = 8,
        *,
        solve: SolveConfig = SolveConfig(),  # noqa: B008 (frozen, hashable)
    ):
        if np.ndim(restitution) != 0:
            raise ValueError(
                f"argument 'restitution' must be a scalar; got shape {np.shape(restitution)}"
            )
        if _is_concrete(restitution) and not float(restitution) >= 0:
            raise ValueError(f"argument 'restitution' must be >= 0; got {restitution!r}")
        gravity = check_number(gravity, "gravity")
        if not (gravity > 0 and math.isfinite(gravity)):
            raise ValueError(f"argument 'gravity' must be finite and > 0; got {gravity!r}")
        with jax.numpy_dtype_promotion("standard"):
            self.restitution = jnp.asarray(restitution, jnp.result_type(float))
        self.gravity = gravity
        self.max_bounces = check_int(max_bounces, "max_bounces")
        self.solve = _check_event_solve(solve)

    def vector_field(self, t: Any, y: Float[Array, "2"], args: Any = None) -> Float[Array, "2"]:
        r"""$(\dot x, \dot v) = (v, -g)$."""
        return jnp.stack([y[1], jnp.full_like(y[1], -self.gravity)])

    def height(self, t: Any, y: Float[Array, "2"], args: Any = None) -> Float[Array, ""]:
        """The event condition: the height $x$ (an impact is a downward crossing of 0)."""
        return y[0]

    def bounce(self, t: Any, y: Float[Array, "2"], args: Any = None) -> Float[Array, "2"]:
        r"""The jump $(x, v) \mapsto (x, -e v)$."""
        with jax.numpy_dtype_promotion("standard"):
            return jnp.stack([y[0], (-self.restitution * y[1]).astype(y.dtype)])

    @property
    def hybrid(self) -> HybridODE:
        """The ball as a `HybridODE` (its fields are this model's bound methods, so gradients
        reach ``restitution``)."""
        return HybridODE(
            self.vector_field,
            self.height,
            self.bounce,
            self.max_bounces,
            direction="down",
            solve=self.solve,
        )

    def __call__(
        self,
        y0: Float[ArrayLike, "2"],
        t0: Real[ArrayLike, ""],
        t1: Real[ArrayLike, ""],
        ts: Real[ArrayLike, " T"] | None = None,
    ) -> HybridSolution:
        """Run from $(x, v)(t_0) = y_0$ over $[t_0, t_1]$ (see `HybridODE`)."""
        if np.shape(y0) != (2,):
            raise ValueError(
                f"argument 'y0' must be the state (height, velocity) of shape [2]; got "
                f"{np.shape(y0)}"
            )
        return self.hybrid(y0, t0, t1, ts)
