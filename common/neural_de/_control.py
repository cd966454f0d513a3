r"""Optimal control by an integral loss: a neural controller of a linear plant, beside the
closed-form optimum of the linear-quadratic problem.

The plant $\dot z = A z + B u$ starts at $z(0) = z_0$; a controller $u(t, z)$ is scored by

$$
J(u) = \int_0^T \lVert u(t) \rVert^2\,dt + w\,\lVert z(T) - z^\ast \rVert^2,
$$

the integral accumulated by the solver (`RunningCost`). With $\Phi = e^{AT}$ and the
controllability Gramian $W = \int_0^T e^{A\tau} B B^\top e^{A^\top \tau}\,d\tau$ (invertible
for a controllable pair), an end state $z(T) = \Phi z_0 + d$ is reached with least effort
$d^\top W^{-1} d$, by $u^\ast(t) = B^\top e^{A^\top (T - t)} W^{-1} d$; minimising
$d^\top W^{-1} d + w \lVert \Phi z_0 + d - z^\ast \rVert^2$ over $d$ gives
$(W^{-1} + w I)\,d = w\,(z^\ast - \Phi z_0)$: the optimum of `linear_quadratic_optimum`.

- `double_integrator`: $A = \begin{pmatrix} 0 & 1 \\ 0 & 0 \end{pmatrix}$,
  $B = \begin{pmatrix} 0 \\ 1 \end{pmatrix}$ (position and velocity driven by a force),
  whose Gramian is $\begin{pmatrix} T^3/3 & T^2/2 \\ T^2/2 & T \end{pmatrix}$;
- `NeuralController`: $u_\phi(t, z) = \mathrm{MLP}_\phi([z, t / T])$ (a saveable model);
- `LinearQuadraticTask`: $J$ as a training loss, rollouts and the closed-form optimum.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._helpers import check_int, check_number, check_time
from .._model import AbstractModel
from .._solve import SolveConfig
from .._task import AbstractTask
from ._integral import RunningCost, with_cost
from ._node import _check_solve, get_activation

__all__ = [
    "NeuralController",
    "LinearQuadraticTask",
    "LinearQuadraticOptimum",
    "linear_quadratic_optimum",
    "double_integrator",
    "CONTROL_SOLVE",
]

CONTROL_SOLVE = SolveConfig(rtol=1e-6, atol=1e-8, max_steps=1024)
"""The solve settings of a `LinearQuadraticTask` unless given: tsit5, adaptive steps with
``rtol=1e-6``, ``atol=1e-8``, the recursive-checkpoint adjoint, at most 1024 steps."""


def double_integrator() -> tuple[Float[Array, "2 2"], Float[Array, "2 1"]]:
    r"""$(A, B)$ of the double integrator $\dot x = v$, $\dot v = u$ on $z = (x, v)$."""
    return jnp.array([[0.0, 1.0], [0.0, 0.0]]), jnp.array([[0.0], [1.0]])


def _check_plant(a: Any, b: Any) -> tuple[Array, Array]:
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"argument 'a' must be a square matrix [N, N]; got shape {a.shape}")
    if b.ndim != 2 or b.shape[0] != a.shape[0]:
        raise ValueError(
            f"argument 'b' must be a matrix [N, M] with N = {a.shape[0]} rows; got {b.shape}"
        )
    return a, b


def _check_state(value: Any, name: str, n: int) -> Array:
    value = jnp.asarray(value)
    if value.shape != (n,):
        raise ValueError(f"argument {name!r} must have shape [{n}]; got {value.shape}")
    return value


class LinearQuadraticOptimum(eqx.Module):
    r"""The closed-form optimum of a `LinearQuadraticTask` (`linear_quadratic_optimum`).

    Attributes:
        cost: the least $J = d^\top W^{-1} d + w \lVert z(T) - z^\ast \rVert^2$.
        effort: its integral part $\int_0^T \lVert u^\ast \rVert^2\,dt = d^\top W^{-1} d$.
        final_state: $z(T)$ under the optimal control.
        gramian: the controllability Gramian $W$.
        multiplier: $\lambda = W^{-1} d$, so that $u^\ast(t) = B^\top e^{A^\top (T - t)}
            \lambda$.
        a: the plant's $A$.
        b: the plant's $B$.
        t1: the horizon $T$.
    """

    cost: Float[Array, ""]
    effort: Float[Array, ""]
    final_state: Float[Array, " n"]
    gramian: Float[Array, "n n"]
    multiplier: Float[Array, " n"]
    a: Float[Array, "n n"]
    b: Float[Array, "n m"]
    t1: float = eqx.field(static=True)

    def control(self, t: Real[ArrayLike, ""]) -> Float[Array, " m"]:
        r"""The optimal open-loop control $u^\ast(t) = B^\top e^{A^\top (T - t)} \lambda$."""
        return self.b.T @ jsl.expm(self.a.T * (self.t1 - t)) @ self.multiplier


def linear_quadratic_optimum(
    a: Float[ArrayLike, "n n"],
    b: Float[ArrayLike, "n m"],
    z0: Float[ArrayLike, " n"],
    target: Float[ArrayLike, " n"],
    *,
    t1: float,
    weight: float,
) -> LinearQuadraticOptimum:
    r"""The least $J = \int_0^T \lVert u \rVert^2\,dt + w \lVert z(T) - z^\ast \rVert^2$
    over all controls of $\dot z = A z + B u$, $z(0) = z_0$, in closed form.

    The Gramian $W$ is read off one matrix exponential (Van Loan, 1978):
    $\exp\big(T \begin{pmatrix} -A & B B^\top \\ 0 & A^\top \end{pmatrix}\big) =
    \begin{pmatrix} \cdot & G \\ 0 & F \end{pmatrix}$ gives $W = F^\top G$; then
    $(W^{-1} + w I)\,d = w (z^\ast - e^{AT} z_0)$ and $J = d^\top W^{-1} d +
    w \lVert e^{AT} z_0 + d - z^\ast \rVert^2$.

    Args:
        a: the plant's $A$ ``[N, N]``.
        b: the plant's $B$ ``[N, M]`` (the pair must be controllable).
        z0: the initial state ``[N]``.
        target: the wanted end state $z^\ast$ ``[N]``.
        t1: the horizon $T > 0$.
        weight: the weight $w > 0$ of the end-state penalty.
    """
    a, b = _check_plant(a, b)
    n = a.shape[0]
    z0, target = _check_state(z0, "z0", n), _check_state(target, "target", n)
    t1 = check_time(t1, "t1", zero=False)
    weight = check_number(weight, "weight")
    if weight <= 0:
        raise ValueError(f"argument 'weight' must be > 0; got {weight}")
    block = jnp.block([[-a, b @ b.T], [jnp.zeros_like(a), a.T]]) * t1
    e = jsl.expm(block)
    gramian = e[n:, n:].T @ e[:n, n:]
    gramian = (gramian + gramian.T) / 2
    if not np.all(np.linalg.eigvalsh(np.asarray(gramian, np.float64)) > 0):
        raise ValueError("the pair (a, b) is not controllable: its Gramian is singular")
    free = jsl.expm(a * t1) @ z0
    inverse = jnp.linalg.inv(gramian)
    d = jnp.linalg.solve(inverse + weight * jnp.eye(n, dtype=a.dtype), weight * (target - free))
    multiplier = inverse @ d
    effort = d @ multiplier
    final = free + d
    cost = effort + weight * jnp.sum((final - target) ** 2)
    return LinearQuadraticOptimum(cost, effort, final, gramian, multiplier, a, b, t1)


class NeuralController(AbstractModel):
    r"""A feedback controller that sees the time: $u_\phi(t, z) = \mathrm{MLP}_\phi([z, t /
    T])$.

    Args:
        state_dim: the plant's state dimension $N$.
        control_dim: the control dimension $M$.
        width: hidden width of the MLP.
        depth: hidden layers of the MLP.
        t1: the horizon $T$ (the time enters as $t / T$).
        activation: the MLP's activation (`ACTIVATIONS`).
        key: initialises the MLP.
    """

    mlp: eqx.nn.MLP
    state_dim: int = eqx.field(static=True)
    control_dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        state_dim: int,
        control_dim: int = 1,
        width: int = 32,
        depth: int = 2,
        *,
        t1: float = 1.0,
        activation: str = "tanh",
        key: PRNGKeyArray,
    ):
        self.state_dim = check_int(state_dim, "state_dim")
        self.control_dim = check_int(control_dim, "control_dim")
        self.width = check_int(width, "width")
        self.depth = check_int(depth, "depth", 0)
        self.t1 = check_time(t1, "t1", zero=False)
        self.activation = activation
        self.mlp = eqx.nn.MLP(
            self.state_dim + 1,
            self.control_dim,
            self.width,
            self.depth,
            activation=get_activation(activation),
            key=key,
        )

    def __call__(self, t: Real[ArrayLike, ""], z: Float[Array, " n"]) -> Float[Array, " m"]:
        s = jnp.reshape(jnp.asarray(t, z.dtype) / self.t1, (1,))
        return self.mlp(jnp.concatenate([z, s]))


class _ZeroControl(eqx.Module):
    control_dim: int = eqx.field(static=True)

    def __call__(self, t: Any, z: Float[Array, " n"]) -> Float[Array, " m"]:
        return jnp.zeros(self.control_dim, z.dtype)


class LinearQuadraticTask(AbstractTask):
    r"""Steer the linear plant $\dot z = A z + B u(t, z)$ from $z(0) = z_0$ to $z^\ast$ at
    time $T$: the loss $J = \int_0^T \lVert u \rVert^2\,dt + w \lVert z(T) - z^\ast
    \rVert^2$, its integral accumulated by the solver alongside the state (`RunningCost`).

    Args:
        a: the plant's $A$ ``[N, N]``.
        b: the plant's $B$ ``[N, M]``.
        target: the wanted end state $z^\ast$ ``[N]``.
        t1: the horizon $T$.
        weight: the weight $w > 0$ of the end-state penalty.
        solve: how the plant is solved (default `CONTROL_SOLVE`).

    The data given to `Trainer.fit` is the initial state ``z0 [N]``; the model is a
    controller ``u(t, z) -> [M]`` (a `NeuralController`). The aux of the loss logs the
    ``effort`` and the ``terminal_error`` $\lVert z(T) - z^\ast \rVert$. There is no
    held-out data: the trainer keeps the controller of lowest cost. `optimum` is the
    closed-form optimum to compare with.
    """

    a: Float[Array, "n n"]
    b: Float[Array, "n m"]
    target: Float[Array, " n"]
    t1: float = eqx.field(static=True)
    weight: float = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)

    def __init__(
        self,
        a: Float[ArrayLike, "n n"],
        b: Float[ArrayLike, "n m"],
        target: Float[ArrayLike, " n"],
        *,
        t1: float,
        weight: float,
        solve: SolveConfig = CONTROL_SOLVE,
    ):
        self.a, self.b = _check_plant(a, b)
        self.target = _check_state(target, "target", self.a.shape[0])
        self.t1 = check_time(t1, "t1", zero=False)
        weight = check_number(weight, "weight")
        if weight <= 0:
            raise ValueError(f"argument 'weight' must be > 0; got {weight}")
        self.weight = weight
        self.solve = _check_solve(solve)

    def _check_controller(self, controller: Any) -> None:
        if (
            isinstance(controller, NeuralController)
            and (
                controller.state_dim,
                controller.control_dim,
            )
            != self.b.shape
        ):
            raise ValueError(
                f"the controller maps states [{controller.state_dim}] to controls "
                f"[{controller.control_dim}]; the plant needs [{self.b.shape[0]}] -> "
                f"[{self.b.shape[1]}]"
            )

    def _plant(self, t: Any, z: Array, controller: Any) -> Array:
        return self.a @ z + self.b @ controller(t, z)

    def _costs(self, controller: Any, z0: Array) -> dict[str, Array]:
        effort = lambda t, z, u: jnp.sum(u(t, z) ** 2)  # noqa: E731
        system = RunningCost(self._plant, effort)
        # the controller travels as ``args`` so that every adjoint differentiates it
        z, c = self.solve.solve(system, with_cost(z0), jnp.array([self.t1]), controller, t0=0.0)
        miss = jnp.sum((z[0] - self.target) ** 2)
        return {
            "cost": c[0] + self.weight * miss,
            "effort": c[0],
            "terminal_error": jnp.sqrt(miss),
            "final_state": z[0],
        }

    def init(self, model: Any, data: Any) -> Any:
        self._check_controller(model)
        _check_state(data, "data", self.a.shape[0])
        return model

    def loss(self, model: Any, batch: Any, key: PRNGKeyArray) -> tuple[Array, dict[str, Array]]:
        costs = self._costs(model, batch)
        return costs["cost"], {k: costs[k] for k in ("effort", "terminal_error")}

    def costs(self, controller: Any, z0: Float[ArrayLike, " n"]) -> dict[str, Array]:
        """``cost`` ($J$), ``effort``, ``terminal_error`` and ``final_state`` of a controller
        ``u(t, z) -> [M]`` (any callable) from ``z0``."""
        self._check_controller(controller)
        z0 = _check_state(z0, "z0", self.a.shape[0])
        return _jit_costs(self, controller, z0)

    def zero_control(self) -> Any:
        """The controller $u = 0$ (a baseline: $J = w \\lVert e^{AT} z_0 - z^\\ast \\rVert^2$)."""
        return _ZeroControl(self.b.shape[1])

    def rollout(
        self, controller: Any, z0: Float[ArrayLike, " n"], ts: Real[ArrayLike, " T"]
    ) -> tuple[Float[Array, "T n"], Float[Array, "T m"]]:
        """The states ``[T, N]`` at the times ``ts`` (in $[0, T]$) under ``controller`` from
        ``z0``, and the controls ``[T, M]`` applied there."""
        self._check_controller(controller)
        z0 = _check_state(z0, "z0", self.a.shape[0])
        return _jit_rollout(self, controller, z0, jnp.asarray(ts))

    def optimum(self, z0: Float[ArrayLike, " n"]) -> LinearQuadraticOptimum:
        """The closed-form optimum from ``z0`` (`linear_quadratic_optimum`)."""
        return linear_quadratic_optimum(
            self.a, self.b, z0, self.target, t1=self.t1, weight=self.weight
        )


@eqx.filter_jit
def _jit_costs(task: LinearQuadraticTask, controller: Any, z0: Array) -> dict[str, Array]:
    return task._costs(controller, z0)


@eqx.filter_jit
def _jit_rollout(
    task: LinearQuadraticTask, controller: Any, z0: Array, ts: Array
) -> tuple[Array, Array]:
    zs = task.solve.solve(task._plant, z0, ts, controller, t0=0.0)
    return zs, jax.vmap(controller)(ts, zs)
