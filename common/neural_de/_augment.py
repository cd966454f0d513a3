r"""State augmentation and higher-order systems.

The flow of an ODE on $\mathbb{R}^D$ is a homeomorphism, so a neural ODE cannot map
$x=-1 \mapsto 1$ and $x=1 \mapsto -1$ (trajectories would cross). Augmented neural
ODEs (ANODE; Dupont et al., 2019) solve in a larger space $\mathbb{R}^{D+A}$:

- `ZeroAugment`: $x \mapsto [x, 0_A]$ (ANODE);
- `InputLayerAugment`: $x \mapsto W x + b \in \mathbb{R}^{D+A}$, a learned input
  layer (Massaroli et al., 2020, "Dissecting neural ODEs");
- `HigherOrderField`: an order-$n$ system $x^{(n)} = g(t, x, \dot x, \ldots,
  x^{(n-1)})$ written as a first-order system on the stacked state
  $[x, \dot x, \ldots, x^{(n-1)}] \in \mathbb{R}^{nD}$; ``order=2`` gives second-order
  neural ODEs (SONODE).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._helpers import check_int

__all__ = ["zero_augment", "ZeroAugment", "InputLayerAugment", "HigherOrderField"]


def zero_augment(x: Float[Array, "*batch d"], n: int) -> Float[Array, "*batch d+n"]:
    r"""$x \mapsto [x, 0_n]$ along the last axis."""
    n = check_int(n, "n", 0)
    pad = [(0, 0)] * (jnp.ndim(x) - 1) + [(0, n)]
    return jnp.pad(x, pad)


class ZeroAugment(eqx.Module):
    r"""ANODE input map $x \in \mathbb{R}^D \mapsto [x, 0_A] \in \mathbb{R}^{D+A}$."""

    augment_dim: int = eqx.field(static=True)

    def __init__(self, augment_dim: int):
        self.augment_dim = check_int(augment_dim, "augment_dim", 0)

    def __call__(self, x: Float[Array, " d"]) -> Float[Array, " d+a"]:
        return zero_augment(x, self.augment_dim)


class InputLayerAugment(eqx.Module):
    r"""Learned augmentation $x \mapsto W x + b$, $W \in \mathbb{R}^{(D+A)\times D}$."""

    linear: eqx.nn.Linear

    def __init__(self, in_dim: int, out_dim: int, *, key: PRNGKeyArray):
        in_dim = check_int(in_dim, "in_dim")
        out_dim = check_int(out_dim, "out_dim")
        if out_dim < in_dim:
            raise ValueError(
                f"argument 'out_dim' must be >= in_dim = {in_dim} (an augmentation); got {out_dim}"
            )
        self.linear = eqx.nn.Linear(in_dim, out_dim, key=key)

    def __call__(self, x: Float[Array, " d"]) -> Float[Array, " e"]:
        return self.linear(x)


class HigherOrderField(eqx.Module):
    r"""The first-order form of
    $x^{(n)} = g(t, [x, \dot x, \ldots, x^{(n-1)}], \mathrm{args})$.

    The state is $y = [x, \dot x, \ldots, x^{(n-1)}] \in \mathbb{R}^{nD}$ and
    $\dot y = [\dot x, \ldots, x^{(n-1)}, g(t, y, \mathrm{args})]$. ``acceleration`` is a
    field ``g(t, y, args)`` mapping the whole stacked state ``[n*dim]`` to ``[dim]``.
    """

    acceleration: Callable[..., Array]
    dim: int = eqx.field(static=True)
    order: int = eqx.field(static=True)

    def __init__(self, acceleration: Callable[..., Array], dim: int, order: int = 2):
        if not callable(acceleration):
            raise TypeError(f"argument 'acceleration' must be callable; got {acceleration!r}")
        self.acceleration = acceleration
        self.dim = check_int(dim, "dim")
        self.order = check_int(order, "order", 1)

    def __call__(
        self, t: Real[ArrayLike, ""], y: Float[Array, " nd"], args: Any = None
    ) -> Float[Array, " nd"]:
        if y.shape != (self.order * self.dim,):
            raise ValueError(
                f"HigherOrderField: state must have shape [{self.order * self.dim}] "
                f"(order {self.order} x dim {self.dim}); got {y.shape}"
            )
        top = self.acceleration(t, y, args)
        return jnp.concatenate([y[self.dim :], top])
