r"""Symplectic fixed-step solvers for separable Hamiltonian systems, as diffrax solvers.

A Hamiltonian system with $H(q, p) = T(p) + V(q)$ is *separable*:

$$
\dot q = G(t, p) = \partial_p T(p), \qquad \dot p = F(t, q) = -\partial_q V(q).
$$

`Leapfrog` (Stormer--Verlet) and `SymplecticEuler` alternate exact flows of the two halves
("kicks" of $p$ with $q$ frozen, "drifts" of $q$ with $p$ frozen), so every step is a
symplectic map. A symplectic method conserves a modified Hamiltonian
$\tilde H = H + O(h^r)$ over exponentially long times, so the energy error of a long run
stays bounded instead of drifting as with a (non-symplectic) Runge--Kutta method (Hairer,
Lubich & Wanner, 2006, "Geometric Numerical Integration", chapters VI and IX).

**State convention.** The state is the tuple ``y = (q, p)``: a Python ``tuple`` of two
arrays (or two pytrees), positions first. The vector field ``f(t, (q, p), args)`` returns the
tuple ``(dq/dt, dp/dt)``; for a separable system the first part may depend on ``p`` (and
$t$) only and the second on ``q`` (and $t$) only. The solvers cannot check this: on a
non-separable field they still run, but are neither symplectic nor of the stated order. A
field of a flat state $y = [q, p] \in \mathbb{R}^{2d}$ (such as
`diffdyn.common.neural_de.HamiltonianField`) is used through `PartitionedField`, with
`PartitionedField.split` for ``y0`` and `PartitionedField.join` for the solution; its
Hamiltonian must then be separable too, e.g. ``lambda y: T(y[d:]) + V(y[:d])``.

**Use.** By name in the solve layer, with a fixed step::

    solve(field, (q0, p0), ts, solver="leapfrog", adaptive=False, dt0=0.01)
    SolveConfig(solver="symplectic-euler", adaptive=False, dt0=0.01)

Neither solver has an error estimate, so ``adaptive=True`` is refused. Values saved at
``ts`` between two steps are linearly interpolated (second-order accurate); save on the step
grid ($t_0 + k\,h$) to get the symplectic iterates themselves. Gradients work with the
``recursive-checkpoint`` and ``direct`` adjoints (the gradient of the discrete solve); the
``backsolve`` adjoint integrates an augmented state that is not a ``(q, p)`` pair and is
refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, ArrayLike, Float, PyTree, Real

__all__ = ["Leapfrog", "SymplecticEuler", "PartitionedField"]


# ----------------------------------------------------------------------------------------
# The partitioned state
# ----------------------------------------------------------------------------------------


def _describe(y: Any) -> str:
    if isinstance(y, (jax.Array, jax.ShapeDtypeStruct)) or hasattr(y, "shape"):
        return f"an array of shape {tuple(y.shape)}"
    if isinstance(y, tuple):
        return f"a tuple of {len(y)} item(s)"
    return f"a {type(y).__name__} with pytree structure {jtu.tree_structure(y)}"


def _partition(y: Any, solver: str) -> tuple[PyTree[Array], PyTree[Array]]:
    """``y`` as ``(q, p)``, or a ValueError naming ``solver`` and the expected structure."""
    if type(y) is not tuple or len(y) != 2:
        raise ValueError(
            f"solver {solver!r} integrates a partitioned state y = (q, p): a tuple of two "
            "arrays (positions, momenta) whose vector field returns (dq/dt, dp/dt), with "
            f"dq/dt depending on p only and dp/dt on q only; got {_describe(y)}. For a field "
            "of a flat state [2d] (e.g. HamiltonianField) solve PartitionedField(field) from "
            "PartitionedField.split(y0). (Gradients: use the 'recursive-checkpoint' or "
            "'direct' adjoint; 'backsolve' integrates an augmented state that is not (q, p).)"
        )
    return y


def _add(x: PyTree[Array], dx: PyTree[Array]) -> PyTree[Array]:
    return jtu.tree_map(jnp.add, x, dx)


def _momentum_rate(terms: diffrax.AbstractTerm, vf: Any, control: Any) -> PyTree[Array]:
    """The ``p`` part of ``terms.prod(vf, control)``: the increment of one kick."""
    return terms.prod(vf, control)[1]


def _position_rate(terms: diffrax.AbstractTerm, vf: Any, control: Any) -> PyTree[Array]:
    """The ``q`` part of ``terms.prod(vf, control)``: the increment of one drift."""
    return terms.prod(vf, control)[0]


class _AbstractSymplectic(diffrax.AbstractSolver):
    """A fixed-step splitting solver of ``y = (q, p)`` with a single ODE term whose vector
    field returns ``(dq/dt, dp/dt)``. No error estimate (not adaptive); linear dense
    output."""

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., diffrax.LocalLinearInterpolation]] = (
        diffrax.LocalLinearInterpolation
    )
    name: eqx.AbstractClassVar[str]  # the registered name, for error messages

    def func(self, terms, t0, y0, args):
        _partition(y0, self.name)
        return terms.vf(t0, y0, args)


class SymplecticEuler(_AbstractSymplectic):
    r"""Symplectic Euler (kick, then drift) for separable $\dot q = G(t, p)$,
    $\dot p = F(t, q)$ on ``y = (q, p)``: with $h = t_1 - t_0$,

    $$
    p_1 = p_0 + h\,F(t_0, q_0), \qquad q_1 = q_0 + h\,G(t_0, p_1).
    $$

    Order 1, symplectic, not symmetric; two evaluations of the vector field per step. Fixed
    step only (no error estimate). Registered as ``"symplectic-euler"``.
    """

    name: ClassVar[str] = "symplectic-euler"

    def order(self, terms):
        del terms
        return 1

    def init(self, terms, t0, t1, y0, args):
        _partition(y0, self.name)
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        q0, p0 = _partition(y0, self.name)
        control = terms.contr(t0, t1)
        p1 = _add(p0, _momentum_rate(terms, terms.vf(t0, y0, args), control))
        q1 = _add(q0, _position_rate(terms, terms.vf(t0, (q0, p1), args), control))
        y1 = (q1, p1)
        return y1, None, dict(y0=y0, y1=y1), None, diffrax.RESULTS.successful


class Leapfrog(_AbstractSymplectic):
    r"""Stormer--Verlet in kick-drift-kick form (velocity Verlet) for separable
    $\dot q = G(t, p)$, $\dot p = F(t, q)$ on ``y = (q, p)``: with $h = t_1 - t_0$ and
    $t_{1/2} = t_0 + h/2$,

    $$
    p_{1/2} = p_0 + \tfrac{h}{2} F(t_0, q_0), \qquad
    q_1 = q_0 + h\,G(t_{1/2}, p_{1/2}), \qquad
    p_1 = p_{1/2} + \tfrac{h}{2} F(t_1, q_1).
    $$

    Order 2, symplectic and symmetric (time-reversible: for an autonomous field with even
    $T$, a step from $(q_1, -p_1)$ lands on $(q_0, -p_0)$). The last kick's force
    $F(t_1, q_1)$ is the next step's first (first same as last), carried as the solver
    state, so a step costs two evaluations of the vector field. Fixed step only (no error
    estimate). Registered as ``"leapfrog"`` (Verlet, 1967; Hairer, Lubich & Wanner, 2003,
    "Geometric numerical integration illustrated by the Stormer--Verlet method").
    """

    name: ClassVar[str] = "leapfrog"

    def order(self, terms):
        del terms
        return 2

    def init(self, terms, t0, t1, y0, args):
        # The vector field at the start; only its dp/dt part, F(t0, q0), is used.
        return terms.vf(t0, _partition(y0, self.name), args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        q0, p0 = _partition(y0, self.name)
        if made_jump is False:
            vf0 = solver_state
        else:
            # after a jump in the field at t0 the carried force is stale: recompute it
            vf0 = jax.lax.cond(made_jump, lambda: terms.vf(t0, y0, args), lambda: solver_state)
        t_half = t0 + 0.5 * (t1 - t0)
        p_half = _add(p0, _momentum_rate(terms, vf0, terms.contr(t0, t_half)))
        vf_half = terms.vf(t_half, (q0, p_half), args)
        q1 = _add(q0, _position_rate(terms, vf_half, terms.contr(t0, t1)))
        vf1 = terms.vf(t1, (q1, p_half), args)
        p1 = _add(p_half, _momentum_rate(terms, vf1, terms.contr(t_half, t1)))
        y1 = (q1, p1)
        return y1, None, dict(y0=y0, y1=y1), vf1, diffrax.RESULTS.successful


SymplecticEuler.__init__.__doc__ = """No arguments."""
Leapfrog.__init__.__doc__ = """No arguments."""


# ----------------------------------------------------------------------------------------
# Flat states [q, p]
# ----------------------------------------------------------------------------------------


def _pair(y: Any, what: str) -> tuple[Array, Array]:
    """``y`` as two arrays ``(q, p)`` of one shape ``[..., d]``, or a ValueError."""
    if type(y) is not tuple or len(y) != 2:
        raise ValueError(f"{what} must be a tuple (q, p) of two arrays; got {_describe(y)}")
    q, p = jnp.asarray(y[0]), jnp.asarray(y[1])
    if q.ndim < 1 or q.shape != p.shape:
        raise ValueError(
            f"{what} must be a tuple (q, p) of two arrays of one shape [..., d]; got shapes "
            f"{q.shape} and {p.shape}"
        )
    return q, p


class PartitionedField(eqx.Module):
    r"""A vector field of a flat state $y = [q, p]$ (positions and momenta concatenated
    along the last axis, e.g. $y \in \mathbb{R}^{2d}$ for
    `diffdyn.common.neural_de.HamiltonianField`) as a field of the partitioned state
    ``(q, p)`` that `Leapfrog` and `SymplecticEuler` integrate:

    $$
    (\dot q, \dot p) = \big(f(t, [q, p])_{:d},\ f(t, [q, p])_{d:}\big).
    $$

    Usage: ``ys = PartitionedField.join(solve(PartitionedField(field),
    PartitionedField.split(y0), ts, solver="leapfrog", adaptive=False, dt0=h))``.
    The wrapped field must be separable ($\dot q$ independent of $q$, $\dot p$ of $p$) for
    the solvers to be symplectic.

    Attributes:
        vector_field: ``f(t, y, args)`` on flat states ``y`` of shape ``[..., 2d]``,
            returning ``dy/dt`` of the same shape.
    """

    vector_field: Callable[..., Array]

    def __init__(self, vector_field: Callable[..., Array]):
        if not callable(vector_field):
            raise TypeError(f"argument 'vector_field' must be callable; got {vector_field!r}")
        self.vector_field = vector_field

    def __call__(
        self,
        t: Real[ArrayLike, ""],
        y: tuple[Float[Array, "*batch d"], Float[Array, "*batch d"]],
        args: Any = None,
    ) -> tuple[Float[Array, "*batch d"], Float[Array, "*batch d"]]:
        q, p = _pair(y, "PartitionedField: y")
        out = self.vector_field(t, jnp.concatenate([q, p], axis=-1), args)
        flat = jnp.shape(q)[:-1] + (2 * jnp.shape(q)[-1],)
        if jnp.shape(out) != flat:
            raise ValueError(
                f"PartitionedField: the wrapped field must return dy/dt of shape {flat}; "
                f"got {jnp.shape(out)}"
            )
        return PartitionedField.split(out)

    @staticmethod
    def split(
        y: Float[ArrayLike, "*batch 2d"],
    ) -> tuple[Float[Array, "*batch d"], Float[Array, "*batch d"]]:
        """The pair ``(q, p) = (y[..., :d], y[..., d:])`` of a flat state ``[..., 2d]``."""
        y = jnp.asarray(y)
        if y.ndim < 1 or y.shape[-1] % 2:
            raise ValueError(
                f"PartitionedField.split: y must have an even last axis [..., 2d]; got {y.shape}"
            )
        d = y.shape[-1] // 2
        return y[..., :d], y[..., d:]

    @staticmethod
    def join(
        y: tuple[Float[ArrayLike, "*batch d"], Float[ArrayLike, "*batch d"]],
    ) -> Float[Array, "*batch 2d"]:
        """The flat state ``[q, p]`` (concatenated along the last axis) of a pair
        ``(q, p)``, e.g. of a solution with a leading ``[T]`` axis."""
        q, p = _pair(y, "PartitionedField.join: y")
        return jnp.concatenate([q, p], axis=-1)
