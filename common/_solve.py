r"""ODE solving over diffrax: solvers and adjoints by name, and one solve function.

Every ODE in diffdyn is solved by `diffrax.diffeqsolve`. This module gives configs a
string vocabulary for it and one call that covers the common case

$$
\dot y(t) = f(t, y(t), \mathrm{args}), \qquad y(t_0) = y_0,
$$

saved at increasing times ``ts``:

- `get_solver` maps names (`SOLVERS`) to diffrax solvers. Only the solvers with an
  embedded error estimate (`ADAPTIVE_SOLVERS`) can step adaptively; ``euler``, ``rk4``
  and the symplectic ``leapfrog`` and ``symplectic-euler`` (for separable Hamiltonian
  systems on a state ``(q, p)``, see `Leapfrog`) need a fixed step.
- `get_adjoint` maps names (`ADJOINTS`) to diffrax adjoints, i.e. to the way
  reverse-mode gradients are taken through the solve.
- `SolveConfig` is a frozen, hashable dataclass of those choices for configs (and for
  static fields of an ``eqx.Module``); `solve` is the same thing as one function call,
  accepting solver and adjoint instances as well as names.

Everything works under ``jax.jit``/``eqx.filter_jit`` and ``jax.grad``/``eqx.filter_grad``,
with respect to ``y0``, ``args`` and the array leaves of an ``eqx.Module`` vector field.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
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
from jaxtyping import Array, ArrayLike, PyTree, Real

from ._symplectic import Leapfrog, SymplecticEuler

__all__ = [
    "RK4",
    "SOLVERS",
    "ADAPTIVE_SOLVERS",
    "ADJOINTS",
    "get_solver",
    "get_adjoint",
    "supports_adaptive",
    "SolveConfig",
    "solve",
]

# ----------------------------------------------------------------------------------------
# Classic fourth-order Runge--Kutta
# ----------------------------------------------------------------------------------------

_RK4_TABLEAU = diffrax.ButcherTableau(
    c=np.array([1 / 2, 1 / 2, 1.0]),
    a_lower=(np.array([1 / 2]), np.array([0.0, 1 / 2]), np.array([0.0, 0.0, 1.0])),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    # diffrax requires an error row summing to zero; RK4 has no embedded method, so the row
    # is zero and RK4.step reports "no error estimate" instead of a meaningless zero.
    b_error=np.zeros(4),
)

# Dense output of RK4 (Hairer, Norsett & Wanner, Solving ODEs I, II.6): on a step of size h,
#   y(t0 + θh) ≈ y0 + Σ_i b_i(θ) k_i,  k_i = h f_i,
#   b_1 = θ - 3θ²/2 + 2θ³/3,  b_2 = b_3 = θ² - 2θ³/3,  b_4 = -θ²/2 + 2θ³/3,
# which is third order locally (O(h⁴) error), so interpolated saves keep global order 4.
# Rows: coefficients of θ³, θ², θ (for jnp.polyval, highest power first); columns: stages.
_RK4_DENSE = np.array(
    [
        [2 / 3, -2 / 3, -2 / 3, 2 / 3],
        [-3 / 2, 1.0, 1.0, -1 / 2],
        [1.0, 0.0, 0.0, 0.0],
    ]
)


class _RK4Interpolation(diffrax.AbstractLocalInterpolation):
    """The cubic continuous extension of RK4 on one step (see ``_RK4_DENSE``)."""

    t0: Real[ArrayLike, ""]
    t1: Real[ArrayLike, ""]
    coeffs: PyTree[Array]

    def __init__(self, *, t0, t1, y0, y1, k):
        del y1  # equal to the cubic at θ = 1 up to round-off

        def _coeffs(_y0, _k):
            with jax.numpy_dtype_promotion("standard"):
                cubic = jnp.tensordot(jnp.asarray(_RK4_DENSE, _k.dtype), _k, axes=1)
                return jnp.concatenate([cubic, _y0[None]], axis=0)

        self.t0 = t0
        self.t1 = t1
        self.coeffs = jtu.tree_map(_coeffs, y0, k)

    def evaluate(self, t0, t1=None, left=True):
        del left
        if t1 is not None:
            return jtu.tree_map(jnp.subtract, self.evaluate(t1), self.evaluate(t0))
        # a step of zero length (a batch of solves ending at different times pads with them)
        # has no interior: theta = 0, not 0 / 0, whose NaN would reach the gradients
        h = self.t1 - self.t0
        zero = h == 0
        theta = jnp.where(zero, 0.0, (t0 - self.t0) / jnp.where(zero, 1.0, h))

        def _eval(_coeffs):
            with jax.numpy_dtype_promotion("standard"):
                return jnp.polyval(_coeffs, theta.astype(_coeffs.dtype))

        return jtu.tree_map(_eval, self.coeffs)


class RK4(diffrax.AbstractERK):
    r"""The classic fourth-order Runge--Kutta method (fixed step only).

    Butcher tableau::

        0   |
        1/2 | 1/2
        1/2 | 0    1/2
        1   | 0    0    1
        ----+--------------------
            | 1/6  1/3  1/3  1/6

    i.e. $y_1 = y_0 + (k_1 + 2k_2 + 2k_3 + k_4)/6$ with $k_i = h f(t_0 + c_i h,
    y_0 + \sum_j a_{ij} k_j)$. Four stages, no FSAL, no embedded error estimate: use it with
    ``diffrax.ConstantStepSize`` (or ``StepTo``). Dense/``ts`` output uses the third-order
    continuous extension of RK4, so saving between steps keeps the global order 4.
    """

    tableau: ClassVar[diffrax.ButcherTableau] = _RK4_TABLEAU
    interpolation_cls: ClassVar[Callable[..., _RK4Interpolation]] = _RK4Interpolation

    def order(self, terms):
        del terms
        return 4

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        y1, _, dense_info, solver_state, result = super().step(
            terms, t0, t1, y0, args, solver_state, made_jump
        )
        # `None` makes diffrax's adaptive controllers refuse this solver instead of
        # accepting every step on a zero error estimate.
        return y1, None, dense_info, solver_state, result


# ----------------------------------------------------------------------------------------
# Registries
# ----------------------------------------------------------------------------------------

_SOLVER_CLASSES: dict[str, type[diffrax.AbstractSolver]] = {
    "euler": diffrax.Euler,  # order 1, fixed step only
    "heun": diffrax.Heun,  # order 2, embedded Euler
    "midpoint": diffrax.Midpoint,  # order 2, embedded Euler
    "ralston": diffrax.Ralston,  # order 2, embedded Euler
    "bosh3": diffrax.Bosh3,  # order 3, embedded order 2
    "rk4": RK4,  # order 4, fixed step only
    "tsit5": diffrax.Tsit5,  # order 5, embedded order 4
    "dopri5": diffrax.Dopri5,  # order 5, embedded order 4
    "dopri8": diffrax.Dopri8,  # order 8, embedded orders 5 and 3
    "implicit-euler": diffrax.ImplicitEuler,  # order 1, L-stable, embedded Heun
    "kvaerno3": diffrax.Kvaerno3,  # order 3, L-stable ESDIRK
    "kvaerno4": diffrax.Kvaerno4,  # order 4, L-stable ESDIRK
    "kvaerno5": diffrax.Kvaerno5,  # order 5, L-stable ESDIRK
    "leapfrog": Leapfrog,  # order 2, symplectic, y = (q, p), fixed step only
    "symplectic-euler": SymplecticEuler,  # order 1, symplectic, y = (q, p), fixed step only
}

SOLVERS: tuple[str, ...] = tuple(_SOLVER_CLASSES)
"""Names accepted by `get_solver` (use as CLI choices)."""


def _class_supports_adaptive(cls: type) -> bool:
    return issubclass(cls, diffrax.AbstractAdaptiveSolver) and not issubclass(cls, RK4)


ADAPTIVE_SOLVERS: tuple[str, ...] = tuple(
    name for name, cls in _SOLVER_CLASSES.items() if _class_supports_adaptive(cls)
)
"""The solvers with an embedded error estimate, i.e. those usable with ``adaptive=True``."""

ADJOINTS: tuple[str, ...] = ("recursive-checkpoint", "backsolve", "direct")
"""Names accepted by `get_adjoint` (use as CLI choices)."""


def _normalise(name: Any, kind: str, known: tuple[str, ...]) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{kind} must be a string name, got {type(name).__name__}: {name!r}")
    key = name.strip().lower().replace("_", "-")
    if key not in known:
        raise ValueError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(known)}")
    return key


def get_solver(name: str) -> diffrax.AbstractSolver:
    """The diffrax solver called ``name`` (one of `SOLVERS`; case and ``_``/``-``
    insensitive). Raises ``ValueError`` listing the known names for anything else."""
    return _SOLVER_CLASSES[_normalise(name, "solver", SOLVERS)]()


def supports_adaptive(solver: str | diffrax.AbstractSolver) -> bool:
    """Whether ``solver`` (a name or an instance) has an embedded error estimate, i.e. can be
    used with an adaptive step-size controller."""
    if isinstance(solver, str):
        return _normalise(solver, "solver", SOLVERS) in ADAPTIVE_SOLVERS
    return _class_supports_adaptive(type(solver))


def get_adjoint(name: str, **kwargs: Any) -> diffrax.AbstractAdjoint:
    r"""The diffrax adjoint called ``name`` (one of `ADJOINTS`).

    - ``"recursive-checkpoint"``: `diffrax.RecursiveCheckpointAdjoint`, differentiate
      through the solver's operations with recursive checkpointing (exact gradients of the
      discrete solve, O(log n) memory in the number of steps). ``kwargs``: ``checkpoints``.
    - ``"direct"``: `diffrax.DirectAdjoint`, differentiate through nested scans and
      checkpoints; supports forward mode (``jax.jvp``) as well as reverse mode, but its cost
      grows with ``max_steps`` whatever the number of steps taken. No ``kwargs``.
    - ``"backsolve"``: `diffrax.BacksolveAdjoint`, "optimise-then-discretise": solve
      the adjoint ODE $\dot a = -a^\top \partial_y f$ backwards in time together with
      $y$ and the parameter cotangents (O(1) memory, gradients exact only up to the
      solver tolerance). ``kwargs``: ``seminorm`` (default ``True``), ``rtol``, ``atol``, and
      any ``BacksolveAdjoint`` keyword (``solver``, ``stepsize_controller``, ...). With
      ``seminorm`` and both tolerances given, the backward solve uses
      ``PIDController(rtol, atol, norm=diffrax.adjoint_rms_seminorm)``: the step size is
      controlled on $y$ and $a$ only, not on the parameter cotangents, which
      usually saves many backward steps (Kidger et al., 2021, "Hey, that's not an ODE").
      Without tolerances the backward solve reuses the forward step-size controller.
      `SolveConfig` and `solve` pass their tolerances for adaptive solves.
    """
    key = _normalise(name, "adjoint", ADJOINTS)
    if key == "recursive-checkpoint":
        return diffrax.RecursiveCheckpointAdjoint(**kwargs)
    if key == "direct":
        return diffrax.DirectAdjoint(**kwargs)
    return _backsolve(**kwargs)


def _backsolve(
    *, seminorm: bool = True, rtol: float | None = None, atol: float | None = None, **kwargs
) -> diffrax.BacksolveAdjoint:
    if seminorm and rtol is not None and atol is not None and "stepsize_controller" not in kwargs:
        kwargs["stepsize_controller"] = diffrax.PIDController(
            rtol=rtol, atol=atol, norm=diffrax.adjoint_rms_seminorm
        )
    return diffrax.BacksolveAdjoint(**kwargs)


# ----------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_tolerances(rtol: Any, atol: Any, adaptive: bool) -> None:
    for argname, value in (("rtol", rtol), ("atol", atol)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(f"{argname} must be a real number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{argname} must be finite and >= 0, got {value!r}")
    if adaptive and rtol == 0 and atol == 0:
        raise ValueError("rtol and atol are both 0; adaptive stepping needs one of them > 0")


def _hash_key(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return (type(value).__qualname__, repr(value))
    return value


def _check_static(solver: Any, adaptive: bool, dt0: Any, rtol: Any, atol: Any, max_steps: Any):
    if isinstance(solver, str):
        _normalise(solver, "solver", SOLVERS)
    elif not isinstance(solver, diffrax.AbstractSolver):
        raise TypeError(f"solver must be a name or a diffrax.AbstractSolver, got {solver!r}")
    if not isinstance(adaptive, bool):
        raise TypeError(f"adaptive must be a bool, got {adaptive!r}")
    _check_tolerances(rtol, atol, adaptive)
    if max_steps is not None and (
        not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1
    ):
        raise ValueError(f"max_steps must be a positive int or None, got {max_steps!r}")
    if dt0 is not None and _is_concrete(dt0):
        if np.ndim(dt0) != 0:
            raise ValueError(f"dt0 must be a scalar, got shape {np.shape(dt0)}")
        if not (float(dt0) > 0 and math.isfinite(float(dt0))):
            raise ValueError(f"dt0 must be a finite number > 0, got {dt0!r}")
    if adaptive and not supports_adaptive(solver):
        label = solver if isinstance(solver, str) else type(solver).__name__
        raise ValueError(
            f"solver {label!r} has no embedded error estimate, so it cannot step adaptively; "
            f"pass adaptive=False (fixed step dt0) or use one of: {', '.join(ADAPTIVE_SOLVERS)}"
        )


def _check_ts(ts: Any, t0: Any) -> tuple[Array, Any]:
    with jax.ensure_compile_time_eval():  # times closed over stay concrete under jit
        ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"ts must be a 1-D array of save times [T] with T >= 1, got {ts.shape}")
    if not jnp.issubdtype(ts.dtype, jnp.floating):
        if not jnp.issubdtype(ts.dtype, jnp.integer):
            raise TypeError(f"ts must hold real numbers, got dtype {ts.dtype}")
        with jax.ensure_compile_time_eval():
            ts = ts.astype(jnp.result_type(float))
    if t0 is None:
        with jax.ensure_compile_time_eval():
            t0 = ts[0]
    elif np.ndim(t0) != 0:
        raise ValueError(f"t0 must be a scalar, got shape {np.shape(t0)}")
    if _is_concrete(ts):
        values = np.asarray(ts)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"ts must be finite, got {values}")
        if values.shape[0] > 1 and not np.all(np.diff(values) > 0):
            raise ValueError(f"ts must be strictly increasing, got {values}")
        if _is_concrete(t0):
            if not math.isfinite(float(t0)) or float(t0) > values[0]:
                raise ValueError(f"t0 must be finite and <= ts[0] = {values[0]}, got {t0}")
            if not values[-1] > float(t0):
                raise ValueError(
                    f"ts[-1] must be > t0 (the solve needs a non-empty interval), got "
                    f"t0 = {float(t0)}, ts[-1] = {values[-1]}"
                )
    return ts, t0


def _check_y0(y0: Any) -> PyTree[Array]:
    y0 = jtu.tree_map(jnp.asarray, y0)
    leaves = jtu.tree_leaves(y0)
    if not leaves:
        raise ValueError("y0 must be a pytree with at least one array leaf, got none")
    for leaf in leaves:
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            raise TypeError(f"y0 leaves must be floating-point arrays, got dtype {leaf.dtype}")
    return y0


# ----------------------------------------------------------------------------------------
# Solving
# ----------------------------------------------------------------------------------------


def _build(
    solver: str | diffrax.AbstractSolver,
    adjoint: str | diffrax.AbstractAdjoint,
    adaptive: bool,
    rtol: float,
    atol: float,
) -> tuple[diffrax.AbstractSolver, diffrax.AbstractStepSizeController, diffrax.AbstractAdjoint]:
    if isinstance(solver, str):
        solver_obj = get_solver(solver)
        if isinstance(solver_obj, diffrax.AbstractImplicitSolver) and not adaptive:
            # diffrax takes Newton tolerances from an adaptive controller by default; with a
            # fixed step we set them here. Kvaerno's default VeryChord reports spurious
            # divergence (e.g. when the predictor is already exact) and relies on step
            # rejection to recover, which a fixed step cannot do; a plain chord method can.
            root_finder = optx.Chord(rtol=rtol, atol=atol, norm=optx.rms_norm)
            solver_obj = eqx.tree_at(lambda s: s.root_finder, solver_obj, root_finder)
    elif isinstance(solver, diffrax.AbstractSolver):
        solver_obj = solver
    else:
        raise TypeError(f"solver must be a name or a diffrax.AbstractSolver, got {solver!r}")

    if adaptive:
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
    else:
        controller = diffrax.ConstantStepSize()

    if isinstance(adjoint, str):
        key = _normalise(adjoint, "adjoint", ADJOINTS)
        adjoint_obj = (
            get_adjoint(key, rtol=rtol, atol=atol)
            if key == "backsolve" and adaptive
            else get_adjoint(key)
        )
    elif isinstance(adjoint, diffrax.AbstractAdjoint):
        adjoint_obj = adjoint
    else:
        raise TypeError(f"adjoint must be a name or a diffrax.AbstractAdjoint, got {adjoint!r}")
    return solver_obj, controller, adjoint_obj


def _check_field_output(vector_field: Callable, t0: Any, y0: Any, args: Any) -> None:
    """Refuse a field whose ``f(t0, y0, args)`` is not shaped like ``y0`` (traced abstractly,
    before anything is compiled), instead of an error from deep inside the solver."""
    try:
        out = eqx.filter_eval_shape(vector_field, t0, y0, args)
    except (TypeError, ValueError, IndexError) as e:
        shapes = [tuple(jnp.shape(y)) for y in jtu.tree_leaves(y0)]
        shape = shapes[0] if len(shapes) == 1 else shapes
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"vector_field(t, y, args) fails on y0 of shape {shape}: {first}."
            f" One solve takes one state; for a batch [B, ...] of initial states "
            "use jax.vmap (or NeuralODE.batch)"
        ) from e
    want, got = jtu.tree_structure(y0), jtu.tree_structure(out)
    if want != got:
        raise ValueError(
            f"vector_field(t, y, args) must return dy/dt with the structure of y0 ({want}); "
            f"got {got}"
        )
    for y, dy in zip(jtu.tree_leaves(y0), jtu.tree_leaves(out), strict=True):
        if tuple(jnp.shape(dy)) != tuple(jnp.shape(y)):
            raise ValueError(
                f"vector_field(t, y, args) must return dy/dt of y0's shape {tuple(jnp.shape(y))}; "
                f"got shape {tuple(jnp.shape(dy))}"
            )


_DEFAULT_MAX_STEPS = 4096
"""The step bound when ``max_steps`` is None and no fixed-step count is known."""


def _fixed_step_count(t0: Any, t1: Any, dt0: Any) -> int | None:
    """The number of steps diffrax's ``ConstantStepSize`` takes from ``t0`` to ``t1`` (in
    the time dtype) with the step ``dt0`` (cast to it), or None when any of them is traced.

    diffrax counts ``ceil((t1 - t0) / nextafter(dt0))``, with ``dt0`` nudged up by one ulp so
    that a span of a whole number of steps up to round-off is not counted one step longer;
    it then steps to ``t0 + (t1 - t0) k / n`` and lands on ``t1`` exactly (a step ending
    within ~100 ulp of ``t1`` is clipped to it, which can only end the solve earlier).
    Computed here with the same operations, eagerly (also under ``jit`` when the values are
    constants).
    """
    if not (_is_concrete(t0) and _is_concrete(t1) and _is_concrete(dt0)):
        return None
    with jax.ensure_compile_time_eval():
        dt0 = jnp.asarray(dt0, jnp.result_type(t1))
        return int(jnp.ceil((t1 - t0) / eqxi.nextafter(dt0)))


def _step_bound(max_steps: int | None, adaptive: bool, count: int | None) -> int:
    r"""The ``max_steps`` handed to diffrax: ``max_steps`` when given; otherwise, for a fixed
    step whose ``count`` is known, the least of `_DEFAULT_MAX_STEPS`, 2 `_DEFAULT_MAX_STEPS`,
    4 `_DEFAULT_MAX_STEPS`, ... that is at least ``count``, and `_DEFAULT_MAX_STEPS` for
    adaptive solves and fixed steps over traced times.

    A fixed step takes exactly ``count`` steps whatever the bound; rounding the bound up to
    a few values keeps diffrax's compiled solve (the bound is static there) shared by spans
    of similar length, and solves of up to 4096 steps as they were before the bound was
    derived. The price is a bound up to twice the count: about $\sqrt 2$ times the
    checkpoints of ``recursive-checkpoint`` and up to twice the work of ``direct``."""
    if max_steps is not None:
        return max_steps
    if not adaptive and count is not None:
        bound = _DEFAULT_MAX_STEPS
        while bound < count:
            bound *= 2
        return bound
    return _DEFAULT_MAX_STEPS


def _max_steps_message(bound: int, max_steps: int | None, adaptive: bool) -> str:
    """What to say when a solve stops at its step bound: which option to raise."""
    option = "SolveConfig.max_steps (--solve.max_steps on the command line)"
    if adaptive:
        origin = "given" if max_steps is not None else "the default of adaptive solves"
        return (
            f"the adaptive solve took max_steps = {bound} steps ({origin}) without reaching "
            f"its end time; raise {option}, loosen rtol/atol, or, if the problem is stiff, "
            "use an implicit solver (kvaerno3/4/5, implicit-euler)"
        )
    origin = "given" if max_steps is not None else "the default bound of traced times"
    return (
        f"the fixed-step solve took max_steps = {bound} steps ({origin}) without reaching its "
        "end time: its times are traced (e.g. arguments of a jitted function), so its step "
        f"count (t1 - t0) / dt0 was not counted up front; set {option} to at least that "
        "count, or pass times that are not traced (closed over, or numpy arrays)"
    )


def _reached(sol: diffrax.Solution, ts: Array) -> str:
    """Where a stopped solve got to: diffrax fills the saves it did not reach with inf, so
    the last save with a finite state (concrete results only)."""
    finite = np.ones(ts.shape[0], bool)
    for leaf in jtu.tree_leaves(sol.ys):
        finite &= np.isfinite(np.asarray(leaf)).reshape(ts.shape[0], -1).all(axis=1)
    k = int(np.argmin(finite)) if not finite.all() else ts.shape[0]
    steps = int(sol.stats["num_steps"])
    if k == 0:
        return f" (it took {steps} steps and reached no save time; ts[0] = {float(ts[0])})"
    return (
        f" (it took {steps} steps; the last save time with a finite state is "
        f"ts[{k - 1}] = {float(ts[k - 1])}, of ts[-1] = {float(ts[-1])})"
    )


def _raise_on_failure(sol: diffrax.Solution, ts: Array, message: str) -> diffrax.Solution:
    """diffrax's ``throw=True``, with ``message`` when the step bound was reached: a
    ``RuntimeError`` that says where the solve stopped when the result is concrete, an
    ``eqx.error_if`` at run time when it is traced; other failures keep diffrax's messages."""
    at_bound = sol.result == diffrax.RESULTS.max_steps_reached
    if _is_concrete(at_bound):
        if bool(at_bound):
            raise RuntimeError(message + _reached(sol, ts))
    else:
        sol = eqx.error_if(sol, at_bound, message)
    return sol.result.error_if(sol, jnp.invert(diffrax.is_okay(sol.result)))


def _diffeqsolve(
    vector_field: Callable[..., PyTree[Array]],
    y0: PyTree[ArrayLike],
    ts: Real[ArrayLike, " T"],
    args: Any,
    *,
    t0: Any,
    solver: str | diffrax.AbstractSolver,
    dt0: Any,
    adaptive: bool,
    rtol: float,
    atol: float,
    adjoint: str | diffrax.AbstractAdjoint,
    max_steps: int | None,
    throw: bool,
) -> diffrax.Solution:
    if not callable(vector_field):
        raise TypeError(f"vector_field must be callable as f(t, y, args), got {vector_field!r}")
    _check_static(solver, adaptive, dt0, rtol, atol, max_steps)
    ts, t0 = _check_ts(ts, t0)
    y0 = _check_y0(y0)
    solver_obj, controller, adjoint_obj = _build(solver, adjoint, adaptive, rtol, atol)

    # Cast times and state to one time dtype up front (as diffrax would), so that the
    # closure conversion below sees exactly the dtypes the solver will call it with.
    with jax.numpy_dtype_promotion("standard"):
        time_dtype = jnp.result_type(ts, t0, *(() if dt0 is None else (dt0,)))
        with jax.ensure_compile_time_eval():
            ts = ts.astype(time_dtype)
            t0 = jnp.asarray(t0, time_dtype)
            t1 = ts[-1]
        y0 = jtu.tree_map(lambda y: y.astype(jnp.result_type(y, time_dtype)), y0)
    _check_field_output(vector_field, t0, y0, args)
    if isinstance(adjoint_obj, diffrax.BacksolveAdjoint):
        # BacksolveAdjoint differentiates only the explicit pytree leaves of the term; turn
        # arrays closed over by a plain function (e.g. `lambda t, y, a: model(y)`) into
        # such leaves so that their gradients are not lost (or rejected by JAX).
        vector_field = eqx.filter_closure_convert(vector_field, t0, y0, args)
    count = None
    if not adaptive:
        if dt0 is None:
            # (t1 - t0) / n takes exactly n steps as diffrax counts them (see _fixed_step_count)
            count = max(100, ts.shape[0] - 1)
            dt0 = (t1 - t0) / count
        else:
            count = _fixed_step_count(t0, t1, dt0)
        limit = np.iinfo(np.int32).max  # diffrax counts steps in int32
        if count is not None and count > (limit if max_steps is None else max_steps):
            step = f"dt0 = {float(dt0)}" if _is_concrete(dt0) else f"(t1 - t0) / {count}"
            where = f" over [{float(t0)}, {float(t1)}]" if _is_concrete(t0) else ""
            raise ValueError(
                f"a fixed step {step}{where} takes {count} steps, more than "
                + (
                    f"diffrax can count ({limit})"
                    if max_steps is None
                    else f"max_steps = {max_steps}; raise SolveConfig.max_steps "
                    f"(--solve.max_steps) to at least {count}, or leave it None to bound "
                    "the solve by its step count"
                )
            )
    bound = _step_bound(max_steps, adaptive, count)
    # The forward solve's failure is reported below (`_raise_on_failure`), but the backward
    # solve of a backsolve adjoint inherits diffrax's `throw`: it must keep raising.
    forward_throw = False
    if (
        throw
        and isinstance(adjoint_obj, diffrax.BacksolveAdjoint)
        and "throw" not in adjoint_obj.kwargs
    ):
        if type(adjoint_obj) is diffrax.BacksolveAdjoint:
            adjoint_obj = diffrax.BacksolveAdjoint(**adjoint_obj.kwargs, throw=True)
        else:  # a subclass cannot be rebuilt: diffrax raises, with its own message
            forward_throw = True
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        solver_obj,
        t0=t0,
        t1=t1,
        dt0=dt0,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        adjoint=adjoint_obj,
        max_steps=bound,
        throw=forward_throw,
    )
    if throw and not forward_throw:
        sol = _raise_on_failure(sol, ts, _max_steps_message(bound, max_steps, adaptive))
    return sol


SolverName = Literal[
    "euler",
    "heun",
    "midpoint",
    "ralston",
    "bosh3",
    "rk4",
    "tsit5",
    "dopri5",
    "dopri8",
    "implicit-euler",
    "kvaerno3",
    "kvaerno4",
    "kvaerno5",
    "leapfrog",
    "symplectic-euler",
]
AdjointName = Literal["recursive-checkpoint", "backsolve", "direct"]


@dataclasses.dataclass(frozen=True)
class SolveConfig:
    """How to solve an ODE: a frozen, hashable config (a valid static field of an eqx.Module).

    Every field is checked on construction and raises ``ValueError``/``TypeError`` naming it;
    `solve` turns the fields into ``diffrax.diffeqsolve`` arguments, the one place where
    that happens.

    Attributes:
        solver: the diffrax solver: a name (`SOLVERS`), or a ``diffrax.AbstractSolver``
            instance for library use (the command line and saved files take names).
        dt0: the initial step (adaptive) or the step (fixed). None: adaptive solves let
            diffrax pick it from an error estimate of the first step; fixed-step solves take
            ``(ts[-1] - t0) / max(100, len(ts) - 1)``, at least 100 steps and at least one per
            save interval.
        adaptive: PID step-size control with rtol and atol (the solver must be one of
            `ADAPTIVE_SOLVERS`); otherwise a constant step dt0. Saves between steps use the
            solver's dense interpolation.
        rtol: relative tolerance of the step-size control (with a fixed step it still sets
            the Newton tolerance of implicit solvers).
        atol: absolute tolerance of the step-size control.
        adjoint: how gradients are computed: recursive-checkpoint (exact gradient of the
            discrete solve), backsolve (continuous adjoint; with an adaptive step it uses the
            adjoint seminorm) or direct; or a ``diffrax.AbstractAdjoint`` instance, used as
            given (library use, as for ``solver``).
        max_steps: the most steps one solve may take. None (the default): for a fixed
            step (``adaptive=False``) as many as it needs, ``ceil((t1 - t0) / dt0)`` counted
            as diffrax counts it (the bound is that count rounded up to 4096 times a power
            of 2), when the times are concrete (also when closed over under ``jit``) or
            ``dt0`` is None (the count then follows from ``len(ts)``), else 4096 (times
            traced, e.g. arguments of a jitted function); for an adaptive solve 4096.
            A fixed step that needs more steps than a given ``max_steps`` is refused up front
            (``ValueError``) when its times are concrete. A solve that reaches its bound
            raises a ``RuntimeError`` naming this option (at run time under ``jit``; outside
            it, saying where the solve stopped), or, with ``throw=False``, returns
            ``diffrax.RESULTS.max_steps_reached`` in ``.result``. With the
            ``recursive-checkpoint`` adjoint the bound also sets the number of checkpoints
            (about ``sqrt(2 max_steps)`` states kept for the backward pass).
    """

    solver: SolverName = "tsit5"
    dt0: float | None = None
    adaptive: bool = True
    rtol: float = 1e-6
    atol: float = 1e-8
    adjoint: AdjointName = "recursive-checkpoint"
    max_steps: int | None = None

    def __post_init__(self):
        if not isinstance(self.solver, diffrax.AbstractSolver):
            object.__setattr__(self, "solver", _normalise(self.solver, "solver", SOLVERS))
        if not isinstance(self.adjoint, diffrax.AbstractAdjoint):
            object.__setattr__(self, "adjoint", _normalise(self.adjoint, "adjoint", ADJOINTS))
        _check_static(self.solver, self.adaptive, self.dt0, self.rtol, self.atol, self.max_steps)

    def __hash__(self) -> int:
        # a static field must hash; a diffrax instance holding a dict (BacksolveAdjoint's
        # solver options) does not, so such a part hashes by its repr, which equal ones share
        return hash(tuple(_hash_key(getattr(self, f.name)) for f in dataclasses.fields(self)))

    def solve_full(
        self,
        vector_field: Callable[..., PyTree[Array]],
        y0: PyTree[ArrayLike],
        ts: Real[ArrayLike, " T"],
        args: Any = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        throw: bool = True,
    ) -> diffrax.Solution:
        """Like `solve`, but return the whole ``diffrax.Solution`` (``.ys``, ``.stats``,
        ``.result``); use with ``throw=False`` to inspect failures."""
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return _diffeqsolve(vector_field, y0, ts, args, t0=t0, throw=throw, **settings)

    def solve(
        self,
        vector_field: Callable[..., PyTree[Array]],
        y0: PyTree[ArrayLike],
        ts: Real[ArrayLike, " T"],
        args: Any = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        throw: bool = True,
    ) -> PyTree[Array]:
        """Solve ``y' = vector_field(t, y, args)`` from ``y(t0) = y0`` (``t0`` defaults to
        ``ts[0]``) and return ``y`` at ``ts``: every leaf of ``y0`` gains a leading ``[T]``
        axis."""
        return self.solve_full(vector_field, y0, ts, args, t0=t0, throw=throw).ys


def solve(
    vector_field: Callable[..., PyTree[Array]],
    y0: PyTree[ArrayLike],
    ts: Real[ArrayLike, " T"],
    *,
    solver: str | diffrax.AbstractSolver = "tsit5",
    t0: Real[ArrayLike, ""] | None = None,
    dt0: Real[ArrayLike, ""] | None = None,
    adaptive: bool = True,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    adjoint: str | diffrax.AbstractAdjoint = "recursive-checkpoint",
    max_steps: int | None = None,
    args: Any = None,
    throw: bool = True,
) -> PyTree[Array]:
    r"""Solve $\dot y = f(t, y, \mathrm{args})$, $y(t_0) = y_0$, and return
    $y$ at the increasing times ``ts`` (shape ``[T]``), with a leading ``[T]`` axis
    on every leaf of the ``y0`` pytree.

    ``vector_field(t, y, args)`` may be any callable or ``eqx.Module``; ``solver`` and
    ``adjoint`` are names (`SOLVERS`, `ADJOINTS`) or diffrax instances.
    ``t0`` defaults to ``ts[0]``. ``dt0``, ``adaptive``, ``rtol``, ``atol``, ``max_steps``
    are as in `SolveConfig` (``max_steps=None``: a fixed step takes as many steps as the
    span needs, an adaptive solve at most 4096). Arguments are checked before anything is
    compiled; ``throw=False`` returns whatever was computed instead of raising when the
    solve fails (use `SolveConfig.solve_full` to see ``.result``).
    """
    sol = _diffeqsolve(
        vector_field,
        y0,
        ts,
        args,
        t0=t0,
        solver=solver,
        dt0=dt0,
        adaptive=adaptive,
        rtol=rtol,
        atol=atol,
        adjoint=adjoint,
        max_steps=max_steps,
        throw=throw,
    )
    return sol.ys
