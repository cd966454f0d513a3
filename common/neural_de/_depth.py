r"""Depth-variant vector fields: fields whose parameters depend on the time ("depth") t.

- `TimeMLPField`: $f(t, y) = \mathrm{MLP}([y, t])$, time as an extra input
  (torchdyn's ``DepthCat``).
- `GalerkinLinear` / `GalerkinMLPField`: Galerkin neural ODEs (Massaroli et
  al., 2020): every weight is a function of depth expanded over a basis,

  $$
  \theta(t) = \sum_{k=1}^{K} c_k\, \varphi_k(\omega t + \phi),
  $$

  with trained coefficients $c_k$ and a trained dilation $\omega$ and shift
  $\phi$. Bases (`BASES`): ``fourier`` ($1, \cos 2\pi j s, \sin 2\pi j s$),
  ``polynomial`` ($s^k$), ``chebyshev`` ($T_k(s)$), ``gaussian`` (radial basis
  functions $e^{-(s - \mu_k)^2 / (2\sigma^2)}$ on $\mu_k \in [0, 1]$).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._helpers import check_int
from ._node import get_activation

__all__ = ["BASES", "basis", "TimeMLPField", "GalerkinLinear", "GalerkinMLPField"]


def _fourier(s: Array, k: int) -> Array:
    j = jnp.arange(1, (k - 1) // 2 + 2)
    waves = jnp.stack([jnp.cos(2 * math.pi * j * s), jnp.sin(2 * math.pi * j * s)], -1)
    return jnp.concatenate([jnp.ones((1,), s.dtype), waves.reshape(-1)])[:k]


def _polynomial(s: Array, k: int) -> Array:
    return s ** jnp.arange(k)


def _chebyshev(s: Array, k: int) -> Array:
    # T_k(s) = cos(k arccos s) on [-1, 1]; the recurrence T_{k+1} = 2 s T_k - T_{k-1} holds
    # everywhere, so use it.
    def step(carry, _):
        prev, cur = carry
        return (cur, 2 * s * cur - prev), prev

    _, out = jax.lax.scan(step, (jnp.ones_like(s), s), None, length=k)
    return out


def _gaussian(s: Array, k: int) -> Array:
    centres = jnp.linspace(0.0, 1.0, k) if k > 1 else jnp.zeros((1,))
    width = 1.0 / max(k - 1, 1)
    return jnp.exp(-0.5 * ((s - centres) / width) ** 2)


BASES: dict[str, Callable[[Array, int], Array]] = {
    "fourier": _fourier,
    "polynomial": _polynomial,
    "chebyshev": _chebyshev,
    "gaussian": _gaussian,
}
"""Depth bases by name: ``basis(s, K) -> [K]``."""


def basis(name: str, s: Real[ArrayLike, ""], k: int) -> Float[Array, " k"]:
    """The first ``k`` functions of the basis ``name`` (one of `BASES`) at ``s``."""
    if name not in BASES:
        raise ValueError(f"unknown basis {name!r}; known bases: {', '.join(BASES)}")
    return BASES[name](jnp.asarray(s), check_int(k, "k"))


class TimeMLPField(eqx.Module):
    r"""$f(t, y) = \mathrm{MLP}([y, t])$ (time concatenated to the input)."""

    mlp: eqx.nn.MLP
    dim: int = eqx.field(static=True)

    def __init__(self, dim: int, width: int = 32, depth: int = 2, *, activation: str = "tanh", key):
        self.dim = check_int(dim, "dim")
        self.mlp = eqx.nn.MLP(
            self.dim + 1,
            self.dim,
            check_int(width, "width"),
            check_int(depth, "depth", 0),
            activation=get_activation(activation),
            key=key,
        )

    def __call__(self, t: Real[ArrayLike, ""], y: Float[Array, " d"], args: Any = None):
        t = jnp.broadcast_to(jnp.asarray(t, y.dtype), (1,))
        return self.mlp(jnp.concatenate([y, t]))


class GalerkinLinear(eqx.Module):
    r"""An affine layer with depth-varying weights $W(t) x + b(t)$,
    $[W, b](t) = \sum_k c_k \varphi_k(\omega t + \phi)$."""

    coefficients: Float[Array, "k out in+1"]
    dilation: Float[Array, ""]
    shift: Float[Array, ""]
    basis: str = eqx.field(static=True)

    def __init__(self, in_dim: int, out_dim: int, *, basis: str = "fourier", n_basis: int = 5, key):
        if basis not in BASES:
            raise ValueError(f"unknown basis {basis!r}; known bases: {', '.join(BASES)}")
        in_dim, out_dim = check_int(in_dim, "in_dim"), check_int(out_dim, "out_dim")
        n_basis = check_int(n_basis, "n_basis")
        bound = 1.0 / math.sqrt(in_dim * n_basis)
        self.coefficients = jax.random.uniform(
            key, (n_basis, out_dim, in_dim + 1), minval=-bound, maxval=bound
        )
        self.dilation = jnp.ones(())
        self.shift = jnp.zeros(())
        self.basis = basis

    def weights(self, t: Real[ArrayLike, ""]) -> Float[Array, "o i"]:
        """$[W(t), b(t)]$."""
        phi = basis(self.basis, self.dilation * t + self.shift, self.coefficients.shape[0])
        return jnp.tensordot(phi.astype(self.coefficients.dtype), self.coefficients, axes=1)

    def __call__(self, t: Real[ArrayLike, ""], x: Float[Array, " in"]) -> Float[Array, " out"]:
        w = self.weights(t)
        return w[:, :-1] @ x + w[:, -1]


class GalerkinMLPField(eqx.Module):
    r"""$f(t, y)$: ``depth`` hidden `GalerkinLinear` layers of size ``width``
    with ``activation``, then a Galerkin output layer."""

    layers: tuple[GalerkinLinear, ...]
    dim: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int = 32,
        depth: int = 1,
        *,
        basis: str = "fourier",
        n_basis: int = 5,
        activation: str = "tanh",
        key: PRNGKeyArray,
    ):
        self.dim = check_int(dim, "dim")
        width, depth = check_int(width, "width"), check_int(depth, "depth", 0)
        get_activation(activation)
        sizes = [self.dim] + [width] * depth + [self.dim]
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            GalerkinLinear(a, b, basis=basis, n_basis=n_basis, key=k)
            for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        )
        self.activation = activation

    def __call__(self, t: Real[ArrayLike, ""], y: Float[Array, " d"], args: Any = None):
        act = get_activation(self.activation)
        for layer in self.layers[:-1]:
            y = act(layer(t, y))
        return self.layers[-1](t, y)
