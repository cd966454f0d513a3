r"""Physics-structured vector fields: Hamiltonian, Lagrangian and gradient-flow fields.

Each field is built from a scalar function (usually a network) and differentiated with JAX:

- `HamiltonianField` (HNN; Greydanus et al., 2019): on $y = (q, p)$,
  $\dot q = \partial H/\partial p$, $\dot p = -\partial H/\partial q$. The flow
  conserves $H$ exactly, so a learned $H$ gives trajectories that do not drift in
  energy.
- `LagrangianField` (LNN; Cranmer et al., 2020): on $y = (q, \dot q)$, the
  Euler--Lagrange equations solved for the acceleration,
  $\ddot q = (\nabla_{\dot q}\nabla_{\dot q}^\top L)^{-1}
  (\nabla_q L - (\nabla_{\dot q}\nabla_q^\top L)\,\dot q)$.
- `GradientFlowField` (stable neural flows; Massaroli et al., 2020):
  $\dot y = -\nabla E(y)$, so $dE/dt = -\|\nabla E\|^2 \le 0$.

`ScalarMLP` is the scalar network $\mathbb{R}^n \to \mathbb{R}$ they all take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._helpers import check_int
from ._node import get_activation

__all__ = ["ScalarMLP", "HamiltonianField", "LagrangianField", "GradientFlowField"]


class ScalarMLP(eqx.Module):
    r"""A scalar network $\mathbb{R}^n \to \mathbb{R}$ (an ``eqx.nn.MLP`` with a
    smooth activation, so that its second derivatives exist)."""

    mlp: eqx.nn.MLP

    def __init__(
        self,
        in_dim: int,
        width: int = 64,
        depth: int = 2,
        *,
        activation: str = "softplus",
        key: PRNGKeyArray,
    ):
        self.mlp = eqx.nn.MLP(
            check_int(in_dim, "in_dim"),
            "scalar",
            check_int(width, "width"),
            check_int(depth, "depth", 0),
            activation=get_activation(activation),
            key=key,
        )

    def __call__(self, x: Float[Array, " n"]) -> Float[Array, ""]:
        return self.mlp(x)


def _check_state(y: Array, dim: int, owner: str) -> None:
    if y.shape != (2 * dim,):
        raise ValueError(f"{owner}: state must have shape [{2 * dim}] (2 x dim); got {y.shape}")


class HamiltonianField(eqx.Module):
    r"""$(\dot q, \dot p) = (\partial_p H, -\partial_q H)$ for a scalar
    ``hamiltonian(y)`` of the state $y = [q, p] \in \mathbb{R}^{2d}$."""

    hamiltonian: Callable[[Array], Array]
    dim: int = eqx.field(static=True)

    def __init__(self, hamiltonian: Callable[[Array], Array], dim: int):
        if not callable(hamiltonian):
            raise TypeError(f"argument 'hamiltonian' must be callable; got {hamiltonian!r}")
        self.hamiltonian = hamiltonian
        self.dim = check_int(dim, "dim")

    def __call__(
        self, t: Real[ArrayLike, ""], y: Float[Array, " 2d"], args: Any = None
    ) -> Float[Array, " 2d"]:
        _check_state(y, self.dim, "HamiltonianField")
        g = jax.grad(self.hamiltonian)(y)
        return jnp.concatenate([g[self.dim :], -g[: self.dim]])


class LagrangianField(eqx.Module):
    r"""$(\dot q, \ddot q)$ from the Euler--Lagrange equations of a scalar
    ``lagrangian(y)`` of $y = [q, \dot q] \in \mathbb{R}^{2d}$:
    $\ddot q = H_{\dot q\dot q}^{-1}(\nabla_q L - H_{\dot q q}\dot q)$."""

    lagrangian: Callable[[Array], Array]
    dim: int = eqx.field(static=True)

    def __init__(self, lagrangian: Callable[[Array], Array], dim: int):
        if not callable(lagrangian):
            raise TypeError(f"argument 'lagrangian' must be callable; got {lagrangian!r}")
        self.lagrangian = lagrangian
        self.dim = check_int(dim, "dim")

    def __call__(
        self, t: Real[ArrayLike, ""], y: Float[Array, " 2d"], args: Any = None
    ) -> Float[Array, " 2d"]:
        _check_state(y, self.dim, "LagrangianField")
        d = self.dim
        grad = jax.grad(self.lagrangian)(y)
        hess = jax.hessian(self.lagrangian)(y)
        qdot = y[d:]
        rhs = grad[:d] - hess[d:, :d] @ qdot
        qddot = jnp.linalg.solve(hess[d:, d:], rhs)
        return jnp.concatenate([qdot, qddot])


class GradientFlowField(eqx.Module):
    r"""$\dot y = -\nabla E(y)$ for a scalar ``energy(y)``."""

    energy: Callable[[Array], Array]

    def __init__(self, energy: Callable[[Array], Array]):
        if not callable(energy):
            raise TypeError(f"argument 'energy' must be callable; got {energy!r}")
        self.energy = energy

    def __call__(
        self, t: Real[ArrayLike, ""], y: Float[Array, " d"], args: Any = None
    ) -> Float[Array, " d"]:
        return -jax.grad(self.energy)(y)
