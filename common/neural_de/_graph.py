r"""Graph neural ODEs (Poli et al., 2019): a vector field that is a message-passing network.

Node features are channels-first, $H \in \mathbb{R}^{F\times N}$ (features x nodes).
With the symmetrically normalised adjacency with self loops
$\hat A = D^{-1/2}(A + I)D^{-1/2}$ (Kipf & Welling, 2017), a graph convolution is
$H \mapsto W H \hat A + b\,\mathbf{1}^\top$, and `GraphODEField` stacks them:

$$
\dot H = W_L\,\sigma(\cdots\sigma(W_1 H \hat A + b_1)\cdots)\,\hat A + b_L.
$$

The adjacency is a fixed (non-trained) array of the field. Relabelling the nodes by a
permutation $P$ maps the solution $H(t)$ to $H(t)P$ (equivariance).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._helpers import check_int
from .._model import fixed_field
from ._node import get_activation

__all__ = ["normalised_adjacency", "GraphConv", "GraphODEField"]


def normalised_adjacency(
    adjacency: Float[ArrayLike, "n n"], self_loops: bool = True
) -> Float[Array, "n n"]:
    r"""$D^{-1/2}(A + I)D^{-1/2}$ (without ``+ I`` when ``self_loops`` is false; isolated
    nodes get zero rows)."""
    a = jnp.asarray(adjacency)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"argument 'adjacency' must be a square [N, N] matrix; got {a.shape}")
    a = a.astype(jnp.result_type(float))
    if self_loops:
        a = a + jnp.eye(a.shape[0], dtype=a.dtype)
    deg = jnp.sum(a, axis=1)
    inv = jnp.where(deg > 0, 1.0 / jnp.sqrt(jnp.where(deg > 0, deg, 1.0)), 0.0)
    return inv[:, None] * a * inv[None, :]


class GraphConv(eqx.Module):
    r"""$H \mapsto W H \hat A + b\,\mathbf{1}^\top$ for
    $H \in \mathbb{R}^{F\times N}$."""

    weight: Float[Array, "out in"]
    bias: Float[Array, " out"]

    def __init__(self, in_features: int, out_features: int, *, key: PRNGKeyArray):
        lin = eqx.nn.Linear(
            check_int(in_features, "in_features"),
            check_int(out_features, "out_features"),
            key=key,
        )
        self.weight, self.bias = lin.weight, lin.bias

    def __call__(self, h: Float[Array, "f n"], a_hat: Float[Array, "n n"]) -> Float[Array, "o n"]:
        return self.weight @ h @ a_hat + self.bias[:, None]


class GraphODEField(eqx.Module):
    r"""$f(t, H) = \mathrm{GCN}(H)$ over a fixed graph; the state is ``[F, N]``."""

    adjacency: Float[Array, "n n"] = fixed_field()
    layers: tuple[GraphConv, ...]
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        adjacency: Float[ArrayLike, "n n"],
        features: int,
        width: int = 32,
        depth: int = 1,
        *,
        activation: str = "tanh",
        normalise: bool = True,
        key: PRNGKeyArray,
    ):
        features = check_int(features, "features")
        get_activation(activation)
        a = jnp.asarray(adjacency)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"argument 'adjacency' must be a square [N, N] matrix; got {a.shape}")
        self.adjacency = normalised_adjacency(a) if normalise else a.astype(jnp.result_type(float))
        sizes = [features] + [check_int(width, "width")] * check_int(depth, "depth", 0)
        sizes.append(features)
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            GraphConv(i, o, key=k) for i, o, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        )
        self.activation = activation

    def __call__(
        self, t: Real[ArrayLike, ""], h: Float[Array, "f n"], args: Any = None
    ) -> Float[Array, "f n"]:
        adjacency = jax.lax.stop_gradient(self.adjacency)  # fixed under any training loop
        n = adjacency.shape[0]
        if h.ndim != 2 or h.shape != (self.layers[0].weight.shape[1], n):
            raise ValueError(
                f"GraphODEField: state must be [F={self.layers[0].weight.shape[1]}, N={n}]; "
                f"got {h.shape}"
            )
        act = get_activation(self.activation)
        for layer in self.layers[:-1]:
            h = act(layer(h, adjacency))
        return self.layers[-1](h, adjacency)
