r"""Delay differential equations with delays in whole steps: a diffrax solver with a ring buffer.

For $\dot y_i(t) = f_i(t, y(t), \phi(t))$ with $\phi_j(t) = y_j(t - \tau_j h)$,
integer delays $\tau_j \ge 0$ per component and a fixed step $h$, the explicit
Euler method

$$
y^{n+1} = y^n + h\, f(t_n, y^n, \phi^n), \qquad \phi^n_j = y^{n - \tau_j}_j
$$

only needs the last $L = \tau_{\max} + 1$ states. `DelayedEuler` keeps them in
its diffrax *solver state*: a ring buffer ``[L, N]`` and the slot of the current state, so a
delayed solve is an ordinary ``diffrax.diffeqsolve`` (use it with a constant step size; the
step count, not the time, is what the delays count). States before the initial time come
from ``past`` (the $L-1$ states before $y^0$, oldest first) or, by default, equal
$y^0$ (a constant initial function).

Vector fields subclass `AbstractDelayedVectorField`: they give ``delays`` and
``delayed(t, y, y_delayed, args)``; called as ``f(t, y, args)`` they are the undelayed
dynamics ($\tau = 0$).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

__all__ = ["AbstractDelayedVectorField", "DelayedEuler", "gather_delayed"]


class AbstractDelayedVectorField(eqx.Module):
    r"""A vector field $f(t, y, \phi)$ with per-component integer delays ``[N]``."""

    delays: eqx.AbstractVar[Int[Array, " n"]]

    @abc.abstractmethod
    def delayed(
        self,
        t: Float[ArrayLike, ""],
        y: Float[Array, " n"],
        y_delayed: Float[Array, " n"],
        args: object,
    ) -> Float[Array, " n"]:
        r"""$f(t, y, \phi)$ with $\phi_j = y_j(t - \tau_j h)$."""

    def __call__(self, t: Float[ArrayLike, ""], y: Float[Array, " n"], args: object = None):
        """The undelayed dynamics $f(t, y, y)$."""
        return self.delayed(t, y, y, args)


def gather_delayed(
    history: Float[Array, "l n"], index: Int[ArrayLike, ""], delays: Int[Array, " n"]
) -> Float[Array, " n"]:
    r"""$\phi_j = H[(k - \tau_j) \bmod L,\ j]$ from a ring buffer ``H`` whose slot
    ``k`` = ``index`` holds the current state."""
    length = history.shape[0]
    rows = jnp.mod(index - delays, length)
    return history[rows, jnp.arange(history.shape[1])]


class DelayedEuler(diffrax.AbstractSolver):
    r"""Explicit Euler for delays in whole steps, carrying the phase history in its state.

    ``max_delay`` (static) sets the buffer length $L = \tau_{\max} + 1$; every delay
    of the vector field must lie in ``[0, max_delay]`` (`simulate` refuses concrete delays
    outside it; traced ones, which cannot be checked, are clipped to it). ``past``
    (``[max_delay, N]``, oldest first, the state one step before $y^0$ last) gives the
    pre-history; ``None`` repeats $y^0$. Requires a ``diffrax.ODETerm`` whose vector
    field is an `AbstractDelayedVectorField`, a constant step size and an adjoint that
    differentiates through the solver (``recursive-checkpoint`` or ``direct``). Order 1;
    linear interpolation between steps.
    """

    max_delay: int = eqx.field(static=True)
    past: Float[Array, "d n"] | None = None

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., diffrax.LocalLinearInterpolation]] = (
        diffrax.LocalLinearInterpolation
    )

    def __check_init__(self):
        if not isinstance(self.max_delay, int) or self.max_delay < 0:
            raise ValueError(f"max_delay must be an int >= 0; got {self.max_delay!r}")
        if self.past is not None and (self.past.ndim != 2 or self.past.shape[0] != self.max_delay):
            raise ValueError(
                f"past must have shape [max_delay, N] = [{self.max_delay}, N]; "
                f"got {self.past.shape}"
            )

    def order(self, terms):
        return 1

    @staticmethod
    def _field(terms) -> AbstractDelayedVectorField:
        inner = terms
        while not hasattr(inner, "vector_field") and hasattr(inner, "term"):
            inner = inner.term  # diffrax wraps terms (e.g. WrapTerm for the time direction)
        field = getattr(inner, "vector_field", None)
        if not isinstance(field, AbstractDelayedVectorField):
            raise TypeError(
                "DelayedEuler needs a diffrax.ODETerm whose vector field is an "
                f"AbstractDelayedVectorField; got {type(field).__name__} in "
                f"{type(terms).__name__}"
            )
        return field

    def init(self, terms, t0, t1, y0, args):
        self._field(terms)
        if jnp.ndim(y0) != 1:
            raise ValueError(f"DelayedEuler needs a state y0 of shape [N]; got {jnp.shape(y0)}")
        if self.past is None:
            past = jnp.broadcast_to(y0, (self.max_delay, y0.shape[0]))
        else:
            if self.past.shape[1] != y0.shape[0]:
                raise ValueError(
                    f"past must have shape [max_delay, N] = [{self.max_delay}, {y0.shape[0]}];"
                    f" got {self.past.shape}"
                )
            past = self.past.astype(y0.dtype)
        history = jnp.concatenate([past, y0[None]], axis=0)
        return history, jnp.asarray(self.max_delay, jnp.int32)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del made_jump
        field = self._field(terms)
        history, index = solver_state
        delays = jnp.clip(field.delays, 0, self.max_delay)
        y_delayed = gather_delayed(history, index, delays)
        y1 = y0 + (t1 - t0) * field.delayed(t0, y0, y_delayed, args)
        index = jnp.mod(index + 1, self.max_delay + 1)
        history = history.at[index].set(y1)
        return y1, None, dict(y0=y0, y1=y1), (history, index), diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
