r"""Multiple-shooting layers: an initial value problem solved parallel in time.

A `MultipleShootingLayer` returns the states $y(t_0), \dots, y(t_N)$ of
$\dot y = f(t, y, \mathrm{args})$, $y(t_0) = y_0$, at the boundaries of $N$ segments
$[t_n, t_{n+1}]$, without solving the segments one after another. With a *fine* propagator
$F_n(b)$ (the layer's `SolveConfig`, from $t_n$ to $t_{n+1}$) and a cheap *coarse* one
$G_n(b)$ (a few fixed steps), the parareal iteration (Lions, Maday & Turinici 2001; as a
differentiable layer, Massaroli et al. 2021, "Differentiable Multiple Shooting Layers")

$$
B^{k+1}_0 = y_0, \qquad
B^{k+1}_{n+1} = G_n\big(B^{k+1}_n\big) + F_n\big(B^k_n\big) - G_n\big(B^k_n\big)
$$

starts from the coarse sweep $B^0_{n+1} = G_n(B^0_n)$. Every iteration solves the $N$ fine
segments at once (``jax.vmap``); only the coarse sweep is sequential. After $k$ iterations
the first $k$ boundaries equal the sequential fine solve, so $N$ iterations reproduce it
exactly; far fewer suffice when $G$ is close to $F$. ``iterations=0`` is the coarse sweep
alone. Gradients flow through every iteration (discretise, then optimise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Float, PyTree, Real

from .._helpers import check_int
from .._model import AbstractModel
from .._solve import SolveConfig, solve

__all__ = ["MultipleShootingLayer"]


def _propagate(field: Callable, y: Any, ta: Array, tb: Array, args: Any, config: SolveConfig):
    """The state at ``tb`` from ``y`` at ``ta`` under ``config``."""
    ys = config.solve(field, y, jnp.stack([ta, tb]), args, t0=ta)
    return jtu.tree_map(lambda a: a[-1], ys)


class MultipleShootingLayer(AbstractModel):
    r"""$y_0 \mapsto (y(t_0), \dots, y(t_N))$ by ``iterations`` parareal sweeps.

    Args:
        vector_field: ``f(t, y, args) -> dy/dt`` (a model, for a saveable layer).
        iterations: parareal iterations $k \ge 0$ (``N`` reproduce the sequential solve).
        solve: the fine propagator on each segment (default ``SolveConfig()``).
        coarse_steps: fixed steps of the coarse propagator per segment.
        coarse_solver: its fixed-step solver (``euler``, ``heun``, ``rk4``, ...).

    Called as ``layer(y0, ts)`` with the segment boundaries ``ts [N + 1]`` (increasing);
    returns every leaf of ``y0`` with a leading ``[N + 1]`` axis.
    """

    vector_field: Callable[..., PyTree[Array]]
    iterations: int = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)
    coarse_steps: int = eqx.field(static=True)
    coarse_solver: str = eqx.field(static=True)

    def __init__(
        self,
        vector_field: Callable[..., PyTree[Array]],
        iterations: int,
        solve: SolveConfig = SolveConfig(),  # noqa: B008 (frozen, hashable)
        coarse_steps: int = 1,
        coarse_solver: str = "rk4",
    ):
        if not callable(vector_field):
            raise TypeError(
                "argument 'vector_field' must be callable as f(t, y, args); got "
                f"{type(vector_field).__name__}"
            )
        if not isinstance(solve, SolveConfig):
            raise TypeError(f"argument 'solve' must be a SolveConfig; got {type(solve).__name__}")
        self.vector_field = vector_field
        self.iterations = check_int(iterations, "iterations", minimum=0)
        self.solve = solve
        self.coarse_steps = check_int(coarse_steps, "coarse_steps", minimum=1)
        # checks the name: a fixed-step solver that needs no tolerances
        SolveConfig(solver=coarse_solver, adaptive=False)
        self.coarse_solver = coarse_solver

    def _coarse(self, y: Any, ta: Array, tb: Array, args: Any) -> Any:
        """$G$: ``coarse_steps`` fixed steps of ``coarse_solver`` from ``ta`` to ``tb``."""
        dt = (tb - ta) / self.coarse_steps
        ys = solve(
            self.vector_field,
            y,
            jnp.stack([ta, tb]),
            t0=ta,
            solver=self.coarse_solver,
            adaptive=False,
            dt0=dt,
            max_steps=self.coarse_steps + 1,
            args=args,
        )
        return jtu.tree_map(lambda a: a[-1], ys)

    def _sweep(self, y0: Any, starts: Array, ends: Array, args: Any, jump: Any) -> Any:
        r"""Boundaries $B_{n+1} = G_n(B_n) + J_n$ for $n < N$, from $B_0 = y_0$."""

        def step(b, inputs):
            ta, tb, j = inputs
            nxt = jtu.tree_map(jnp.add, self._coarse(b, ta, tb, args), j)
            return nxt, nxt

        _, rest = jax.lax.scan(step, y0, (starts, ends, jump))
        return jtu.tree_map(lambda a, r: jnp.concatenate([a[None], r]), y0, rest)

    def __call__(
        self, y0: PyTree[Float[Array, "..."]], ts: Real[Array, " n"], args: Any = None
    ) -> PyTree[Float[Array, "n ..."]]:
        ts = jnp.asarray(ts)
        if ts.ndim != 1 or ts.shape[0] < 2:
            raise ValueError(
                f"argument 'ts' must be the boundaries [N + 1], N >= 1; got {ts.shape}"
            )
        if not isinstance(ts, jax.core.Tracer) and not np.all(np.diff(np.asarray(ts)) > 0):
            raise ValueError("argument 'ts' must be strictly increasing")
        starts, ends = ts[:-1], ts[1:]
        zero = jtu.tree_map(lambda a: jnp.zeros((starts.shape[0], *jnp.shape(a)), a.dtype), y0)
        boundaries = self._sweep(y0, starts, ends, args, zero)  # B^0: the coarse sweep
        fine = jax.vmap(
            lambda b, ta, tb: _propagate(self.vector_field, b, ta, tb, args, self.solve)
        )
        coarse = jax.vmap(lambda b, ta, tb: self._coarse(b, ta, tb, args))
        for _ in range(self.iterations):
            previous = jtu.tree_map(lambda a: a[:-1], boundaries)
            correction = jtu.tree_map(
                jnp.subtract, fine(previous, starts, ends), coarse(previous, starts, ends)
            )
            boundaries = self._sweep(y0, starts, ends, args, correction)
        return boundaries
