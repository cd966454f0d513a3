r"""Integral losses: a running cost integrated alongside the state.

For a loss $L = \int_{t_0}^{t_1} c(t, y(t))\,dt$ (torchdyn's ``integral_loss``), append
the accumulated cost $C$ to the state and solve

$$
\frac{d}{dt}\begin{pmatrix} y \\ C \end{pmatrix} =
\begin{pmatrix} f(t, y) \\ c(t, y) \end{pmatrix}, \qquad C(t_0) = 0,
$$

so that $C(t_1) = L$. Because the cost is part of the state, every adjoint
(recursive checkpointing, backsolve, direct) differentiates it with no special handling; the
backsolve adjoint of this system is exactly torchdyn's "generalised adjoint" with
$\partial c/\partial y$ injected into the adjoint ODE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree, Real

__all__ = ["RunningCost", "with_cost"]


class RunningCost(eqx.Module):
    r"""The augmented field $(y, C) \mapsto (f(t, y, a), c(t, y, a))$ on the state
    ``(y, C)`` (a tuple: ``y`` any pytree, ``C`` a scalar)."""

    vector_field: Callable[..., PyTree[Array]]
    cost: Callable[..., Float[Array, ""]]

    def __init__(self, vector_field: Callable[..., Any], cost: Callable[..., Any]):
        for name, fn in (("vector_field", vector_field), ("cost", cost)):
            if not callable(fn):
                raise TypeError(f"argument {name!r} must be callable f(t, y, args); got {fn!r}")
        self.vector_field = vector_field
        self.cost = cost

    def __call__(
        self, t: Real[ArrayLike, ""], state: tuple[PyTree[Array], Float[Array, ""]], args: Any
    ) -> tuple[PyTree[Array], Float[Array, ""]]:
        y, _ = state
        c = jnp.asarray(self.cost(t, y, args))
        if c.shape != ():
            raise ValueError(f"RunningCost: cost must return a scalar; got shape {c.shape}")
        return self.vector_field(t, y, args), c


def with_cost(y0: PyTree[Array]) -> tuple[PyTree[Array], Float[Array, ""]]:
    """The initial state ``(y0, 0)`` of a `RunningCost` system."""
    leaves = [jnp.asarray(x) for x in jax.tree_util.tree_leaves(y0)]
    if not leaves:
        raise ValueError("argument 'y0' must hold at least one array")
    return y0, jnp.zeros((), leaves[0].dtype)
