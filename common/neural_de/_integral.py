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

Built on it, the tracking problem of ``diffdyn node fit --model integral-node``:

- `TrackingODE`: a neural ODE $\dot y = \mathrm{MLP}_\theta([y, t / t_1])$ on $[0, t_1]$
  (a saveable model);
- `TrackingTask`: the loss $L(\theta) = \int_0^{t_1} \lVert y(t) - r(t) \rVert^2\,dt$
  to a target $r$ (`sinusoid`: $r(t) = \sin t$), accumulated by the solver, with a
  trapezoid-rule check of the same integral on a fine grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Real

from .._helpers import check_int, check_time
from .._model import AbstractModel
from .._solve import SolveConfig
from .._task import AbstractTask
from ._node import _check_solve, get_activation

__all__ = ["RunningCost", "with_cost", "TrackingODE", "TrackingTask", "sinusoid", "TRACK_SOLVE"]


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


# ------------------------------------------------------------------ tracking a target

TRACK_SOLVE = SolveConfig(rtol=1e-5, atol=1e-7, max_steps=1024)
"""The solve settings of a `TrackingODE` unless given: tsit5, adaptive steps with
``rtol=1e-5``, ``atol=1e-7``, the recursive-checkpoint adjoint, at most 1024 steps."""


def sinusoid(t: Real[ArrayLike, ""]) -> Float[Array, " 1"]:
    r"""The target $r(t) = \sin t$ of the ``sinusoid`` tracking problem, as a 1-vector."""
    return jnp.reshape(jnp.sin(t), (1,))


class TrackingODE(AbstractModel):
    r"""A neural ODE that sees the time: $\dot y = \mathrm{MLP}_\theta([y, t / t_1])$ on
    $[0, t_1]$.

    Args:
        dim: the state dimension $D$.
        width: hidden width of the MLP.
        depth: hidden layers of the MLP.
        t1: the end of the time span (the time enters the field as $t / t_1$).
        activation: the MLP's activation (`ACTIVATIONS`).
        solve: how the ODE is solved (default `TRACK_SOLVE`).
        key: initialises the MLP.
    """

    mlp: eqx.nn.MLP
    dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)

    def __init__(
        self,
        dim: int = 1,
        width: int = 32,
        depth: int = 2,
        *,
        t1: float = 1.0,
        activation: str = "tanh",
        solve: SolveConfig = TRACK_SOLVE,
        key: PRNGKeyArray,
    ):
        self.dim = check_int(dim, "dim")
        self.width = check_int(width, "width")
        self.depth = check_int(depth, "depth", 0)
        self.t1 = check_time(t1, "t1", zero=False)
        self.activation = activation
        self.solve = _check_solve(solve)
        self.mlp = eqx.nn.MLP(
            self.dim + 1,
            self.dim,
            self.width,
            self.depth,
            activation=get_activation(activation),
            key=key,
        )

    def vector_field(
        self, t: Real[ArrayLike, ""], y: Float[Array, " d"], args: Any = None
    ) -> Float[Array, " d"]:
        r"""$f_\theta(t, y) = \mathrm{MLP}_\theta([y, t / t_1])$."""
        s = jnp.reshape(jnp.asarray(t, y.dtype) / self.t1, (1,))
        return self.mlp(jnp.concatenate([y, s]))

    def _check_y0(self, y0: Any) -> Array:
        y0 = jnp.asarray(y0)
        if y0.shape != (self.dim,):
            raise ValueError(f"argument 'y0' must have shape [{self.dim}]; got {y0.shape}")
        return y0

    def trajectory(self, y0: Float[Array, " d"], ts: Real[ArrayLike, " T"]) -> Float[Array, "T d"]:
        """The state at the times ``ts`` (in $[0, t_1]$) from $y(0) = $ ``y0``."""
        field = lambda t, y, m: m.vector_field(t, y)  # noqa: E731
        return self.solve.solve(field, self._check_y0(y0), ts, self, t0=0.0)

    def integral(
        self, y0: Float[Array, " d"], cost: Callable[..., Any]
    ) -> tuple[Float[Array, " d"], Float[Array, ""]]:
        r"""$(y(t_1), \int_0^{t_1} c(t, y(t))\,dt)$: the end state and the running cost
        ``cost(t, y)`` integrated by the solver alongside the state (`RunningCost`)."""
        # the model travels as ``args`` so that every adjoint differentiates its parameters
        system = RunningCost(lambda t, y, m: m.vector_field(t, y), lambda t, y, m: cost(t, y))
        y0 = with_cost(self._check_y0(y0))
        y, c = self.solve.solve(system, y0, jnp.array([self.t1]), self, t0=0.0)
        return y[0], c[0]

    def __call__(self, y0: Float[Array, " d"], ts: Real[ArrayLike, " T"]) -> Float[Array, "T d"]:
        return self.trajectory(y0, ts)


class TrackingTask(AbstractTask):
    r"""Track a target: the integral loss
    $L(\theta) = \int_0^{t_1} \lVert y_\theta(t) - r(t) \rVert^2\,dt$ of a `TrackingODE`,
    accumulated by the solver (`TrackingODE.integral`, so every adjoint differentiates it).

    Args:
        target: $r(t)$: ``target(t) -> [D]`` for a scalar time (`sinusoid`: $\sin t$).
        points: the points of the grid on $[0, t_1]$ of the trapezoid-rule check
            (`trapezoid_loss`).

    The data given to `Trainer.fit` is the initial state ``y0 [D]``; every step solves the
    whole span. There is no held-out data: the trainer keeps the model of lowest loss.
    """

    target: Callable[..., Any] = eqx.field(static=True)
    points: int = eqx.field(static=True)

    def __init__(self, target: Callable[..., Any] = sinusoid, *, points: int = 2001):
        if not callable(target):
            raise TypeError(f"argument 'target' must be callable r(t) -> [D]; got {target!r}")
        self.target = target
        self.points = check_int(points, "points", 2)

    def cost(self, t: Real[ArrayLike, ""], y: Float[Array, " d"]) -> Float[Array, ""]:
        r"""The running cost $c(t, y) = \lVert y - r(t) \rVert^2$."""
        return jnp.sum((y - self.target(t)) ** 2)

    def init(self, model: Any, data: Any) -> Any:
        if not isinstance(model, TrackingODE):
            raise TypeError(f"TrackingTask trains a TrackingODE; got {type(model).__name__}")
        model._check_y0(data)
        return model

    def loss(self, model: TrackingODE, batch: Any, key: PRNGKeyArray) -> Float[Array, ""]:
        return model.integral(batch, self.cost)[1]

    def trapezoid_loss(self, model: TrackingODE, y0: Float[Array, " d"]) -> Float[Array, ""]:
        """The same integral by the trapezoid rule over the trajectory solved at ``points``
        equally spaced times of $[0, t_1]$ (a check of the solver's accumulated cost)."""
        ts = jnp.linspace(0.0, model.t1, self.points)
        ys = model.trajectory(y0, ts)
        return jnp.trapezoid(jax.vmap(self.cost)(ts, ys), ts)
