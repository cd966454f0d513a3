r"""Transfer functions of rate neurons, with a gain $g$ and a shift $s$ per neuron.

$$
\mathrm{tanh}:\ \phi(x) = \tanh x, \qquad
\mathrm{tanh\text{-}stretched}:\ \phi(x) = \tanh\big(g(x - s)\big), \qquad
\mathrm{tanh\text{-}positive}:\ \phi(x) = \tfrac12\big(1 + \tanh(g(x - s))\big),
$$

and ``identity`` $\phi(x) = x$ (linear networks, for exact checks). ``tanh`` and
``identity`` ignore the gain and shift. Derivatives are never hand-coded: the Lyapunov code
differentiates the exact step map with autodiff.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["ACTIVATIONS", "get_activation", "tanh", "tanh_stretched", "tanh_positive", "identity"]

Activation = Callable[..., Float[Array, " n"]]


def tanh(x: Float[Array, " n"], gain: Float[Array, " n"], shift: Float[Array, " n"]):
    r"""$\tanh x$ (gain and shift are ignored)."""
    del gain, shift
    return jnp.tanh(x)


def tanh_stretched(x: Float[Array, " n"], gain: Float[Array, " n"], shift: Float[Array, " n"]):
    r"""$\tanh(g (x - s))$."""
    return jnp.tanh(gain * (x - shift))


def tanh_positive(x: Float[Array, " n"], gain: Float[Array, " n"], shift: Float[Array, " n"]):
    r"""$\tfrac12 (1 + \tanh(g (x - s)))$, with range (0, 1)."""
    return 0.5 * (1.0 + jnp.tanh(gain * (x - shift)))


def identity(x: Float[Array, " n"], gain: Float[Array, " n"], shift: Float[Array, " n"]):
    r"""$x$ (linear network; gain and shift are ignored)."""
    del gain, shift
    return x


ACTIVATIONS: dict[str, Activation] = {
    "tanh": tanh,
    "tanh-stretched": tanh_stretched,
    "tanh-positive": tanh_positive,
    "identity": identity,
}
"""Activations by name: ``tanh``, ``tanh(g (x - s))``, ``(1 + tanh(g (x - s))) / 2`` and the
identity."""


def get_activation(name: str) -> Activation:
    """The activation called ``name`` (one of `ACTIVATIONS`; ``_`` and ``-`` alike)."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a string name; got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[key]
