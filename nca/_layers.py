"""Per-cell layers of NCA update networks: 1x1 convolutions and Gaussian-basis KAN layers.

Every layer maps a field ``[I, H, W]`` to ``[O, H, W]`` and acts on each cell independently
(a 1x1 convolution is a matrix product over the channel axis at every cell).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from diffdyn.common import fixed_field
from diffdyn.common._helpers import check_int

__all__ = ["Pointwise", "PointwiseMLP", "GaussianKAN", "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "elu": jax.nn.elu,
}
"""Activations of NCA update networks by name."""


class Pointwise(eqx.Module):
    """A 1x1 convolution ``y[o, h, w] = sum_i W[o, i] x[i, h, w] + b[o]``.

    Weights start uniform in ``±1/sqrt(I)`` (the usual convolution default) or exactly zero
    with ``zero=True`` (the last layer of an NCA, so the untrained automaton is the identity).
    """

    weight: Float[Array, "O I"]
    bias: Float[Array, " O"] | None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        use_bias: bool = True,
        zero: bool = False,
        key: PRNGKeyArray,
    ):
        check_int(in_channels, "in_channels")
        check_int(out_channels, "out_channels")
        if zero:
            self.weight = jnp.zeros((out_channels, in_channels))
        else:
            bound = 1.0 / math.sqrt(in_channels)
            self.weight = jax.random.uniform(
                key, (out_channels, in_channels), minval=-bound, maxval=bound
            )
        self.bias = jnp.zeros((out_channels,)) if use_bias else None

    def __call__(self, x: Float[Array, "I H W"]) -> Float[Array, "O H W"]:
        y = jnp.einsum("oi,ihw->ohw", self.weight.astype(x.dtype), x)
        if self.bias is not None:
            y = y + self.bias.astype(x.dtype)[:, None, None]
        return y

    def channels_last(self, x: Float[Array, "H W I"]) -> Float[Array, "H W O"]:
        """The same layer on a channels-last field: ``y = x W^T + b`` (cells as rows)."""
        y = x @ self.weight.astype(x.dtype).T
        if self.bias is not None:
            y = y + self.bias.astype(x.dtype)
        return y


class PointwiseMLP(eqx.Module):
    """``y = W_2 σ(W_1 x + b_1) + b_2`` at every cell; ``W_2, b_2`` start at zero."""

    hidden_layer: Pointwise
    output_layer: Pointwise
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        out_channels: int,
        *,
        activation: str = "relu",
        key: PRNGKeyArray,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}; got {activation!r}")
        k1, k2 = jax.random.split(key)
        self.hidden_layer = Pointwise(in_channels, hidden, key=k1)
        self.output_layer = Pointwise(hidden, out_channels, zero=True, key=k2)
        self.activation = activation

    def __call__(self, x: Float[Array, "I H W"]) -> Float[Array, "O H W"]:
        return self.output_layer(ACTIVATIONS[self.activation](self.hidden_layer(x)))

    def channels_last(self, x: Float[Array, "H W I"]) -> Float[Array, "H W O"]:
        """The same network on a channels-last field ``[H, W, I] -> [H, W, O]``."""
        hidden = ACTIVATIONS[self.activation](self.hidden_layer.channels_last(x))
        return self.output_layer.channels_last(hidden)


class GaussianKAN(eqx.Module):
    """A Kolmogorov-Arnold layer with Gaussian radial bases, at every cell.

    ``y_o = sum_i phi_oi(x_i)`` with learned edge functions
    ``phi_oi(x) = sum_k W[o, i, k] g_k(x)``, ``g_k(x) = N(x; m_k, s²)``, centres ``m_k``
    evenly spaced on ``[-bound, bound]`` and ``s = width / K``. ``W`` starts as
    ``init_scale * N(0, 1)`` (``init_scale=0``: the zero layer).
    """

    weight: Float[Array, "O I K"]
    centres: Float[Array, " K"] = fixed_field()
    sigma: float = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        basis: int = 8,
        width: float = 4.0,
        bound: float = 3.0,
        init_scale: float = 0.1,
        key: PRNGKeyArray,
    ):
        check_int(in_channels, "in_channels")
        check_int(out_channels, "out_channels")
        check_int(basis, "basis")
        if not width > 0 or not bound > 0:
            raise ValueError(f"width and bound must be > 0; got width={width}, bound={bound}")
        shape = (out_channels, in_channels, basis)
        self.weight = init_scale * jax.random.normal(key, shape) / math.sqrt(in_channels)
        self.centres = jnp.linspace(-bound, bound, basis)
        self.sigma = float(width) / basis

    def __call__(self, x: Float[Array, "I H W"]) -> Float[Array, "O H W"]:
        centres = jax.lax.stop_gradient(self.centres).astype(x.dtype)  # fixed under any loop
        z = (x[:, None] - centres[None, :, None, None]) / self.sigma
        g = jnp.exp(-0.5 * z * z) / (self.sigma * math.sqrt(2 * math.pi))
        return jnp.einsum("oik,ikhw->ohw", self.weight.astype(x.dtype), g)
