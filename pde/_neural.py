r"""Neural right-hand sides: reaction-diffusion-advection and reaction-diffusion-chemotaxis.

Every network acts pointwise (a stack of 1x1 convolutions, `PointwiseMLP`); spatial
coupling comes only from the finite differences of the grid (`diffdyn.pde`), so the models
are translation-equivariant and their terms keep their physical meaning. Output layers start
at zero (or at a small constant), so an untrained model is close to pure diffusion.

The networks of `NeuralRDA` read the state through a fixed per-channel affine map,
``(X - input_offset) / input_scale`` (`input_normalisation` takes both from data). Raw
states can spread over a range much smaller than the scale of the hidden layer: Gray-Scott
concentrations spread over about 0.2 around (0.8, 0.1), so with LeCun-normal weights the hidden
``tanh`` units barely bend over the data, and the network learns little more than an affine map
(fitted by Adam to the true Gray-Scott reaction for 500 steps: RMS error 1.36e-3, the best
affine map 1.42e-3; with standardised inputs 3.7e-4).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from diffdyn.common._helpers import check_int, check_number

from ._base import AbstractPDE, check_grid
from ._grid import Grid

__all__ = [
    "PointwiseMLP",
    "NeuralRDA",
    "NeuralChemotaxis",
    "input_normalisation",
    "ACTIVATIONS",
    "DIFFUSION_TERMS",
]

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
}
"""Activations of the networks of neural PDEs by name."""
DIFFUSION_TERMS = ("none", "linear", "nonlinear", "both")
"""Diffusion terms of `NeuralRDA`."""


def _inverse_softplus(y: float) -> float:
    """``z`` with ``softplus(z) = y`` (``y > 0``)."""
    return y + math.log(-math.expm1(-y))


def _per_channel(value: Any, name: str, channels: int, positive: bool) -> tuple[float, ...]:
    """``value`` (a number, or one number per channel) as a tuple of ``channels`` floats."""
    values = [value] if isinstance(value, (int, float)) else list(np.ravel(np.asarray(value)))
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise ValueError(
            f"{name} must be a number or {channels} numbers (one per channel); got {value!r}"
        )
    out = []
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
            raise ValueError(f"{name} must hold numbers; got {value!r}")
        v = float(v)
        if not math.isfinite(v) or (positive and v <= 0):
            kind = "positive and finite" if positive else "finite"
            raise ValueError(f"{name} must be {kind}; got {value!r}")
        out.append(v)
    return tuple(out)


def input_normalisation(
    trajectories: Any, channels: int | None = None, channel_axis: int = -3
) -> dict[str, tuple[float, ...]]:
    """``{"input_offset": mean, "input_scale": std}`` per channel of ``trajectories``
    (any array with channels on ``channel_axis``, e.g. ``[B, T, C, H, W]``), to pass to
    `NeuralRDA`. With ``channels`` > C (hidden channels) the extra channels get offset 0
    and scale 1; a channel that never varies gets scale 1. Use the training frames only."""
    x = np.moveaxis(np.asarray(trajectories, dtype=np.float64), channel_axis, 0)
    x = x.reshape(x.shape[0], -1)
    if x.shape[1] == 0 or not np.all(np.isfinite(x)):
        raise ValueError("trajectories must be non-empty and finite")
    mean, std = x.mean(axis=1), x.std(axis=1)
    std = np.where(std > 0, std, 1.0)
    c = x.shape[0] if channels is None else channels
    if c < x.shape[0]:
        raise ValueError(f"channels must be >= the data's {x.shape[0]}; got {channels}")
    pad = c - x.shape[0]
    return {
        "input_offset": tuple(float(v) for v in np.concatenate([mean, np.zeros(pad)])),
        "input_scale": tuple(float(v) for v in np.concatenate([std, np.ones(pad)])),
    }


class PointwiseMLP(eqx.Module):
    r"""An MLP applied at every grid cell: ``[C_in, H, W] -> [C_out, H, W]``.

    $h_0 = x,\ h_{l+1} = \sigma(W_l h_l + b_l),\ y = W_L h_L + b_L$. Hidden layers use
    LeCun-normal weights (variance ``1/fan_in``) and zero biases; the output layer has
    weights ``init_scale * N(0, 1/fan_in)`` (``init_scale = 0``: exactly zero) and bias
    ``bias_init``.
    """

    weights: tuple[Float[Array, "o i"], ...]
    biases: tuple[Float[Array, " o"], ...]
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        depth: int,
        activation: str,
        *,
        key: PRNGKeyArray,
        init_scale: float = 0.0,
        bias_init: float = 0.0,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}; got {activation!r}")
        sizes = [in_channels] + [width] * depth + [out_channels]
        keys = jax.random.split(key, len(sizes) - 1)
        weights, biases = [], []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            w = jax.random.normal(keys[i], (n_out, n_in)) / math.sqrt(n_in)
            b = jnp.zeros((n_out,))
            if i == len(sizes) - 2:
                w = init_scale * w
                b = b + bias_init
            weights.append(w)
            biases.append(b)
        self.weights = tuple(weights)
        self.biases = tuple(biases)
        self.activation = activation

    def __call__(self, x: Float[Array, "C H W"]) -> Float[Array, "O H W"]:
        act = ACTIVATIONS[self.activation]
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = jnp.einsum("oc,chw->ohw", w, h) + b[:, None, None]
            if i < last:
                h = act(h)
        return h


class NeuralRDA(AbstractPDE):
    r"""Neural reaction-diffusion-advection:

    $$
    \partial_t X = \mathcal D(X) - \nabla\cdot\big(V(X) \odot X\big) + \mathcal R(X)
    $$

    with, each term switchable,

    - diffusion ``"linear"``: $\mathcal D = d \odot \Delta X$, one coefficient
      $d_c \ge 0$ per channel (kept non-negative in training by
      `non_negative`); ``"nonlinear"``:
      $\mathcal D = \nabla\cdot(f(X)\nabla X)$ with
      $f = \mathrm{softplus}(\mathrm{MLP}(X)) \ge 0$; ``"both"``: their sum; ``"none"``;
    - advection: $V = \tanh(\mathrm{MLP}(X))$, a velocity ``[2, C]`` per cell
      (per-species flux $V_c X_c$);
    - reaction: $\mathcal R = \mathrm{MLP}(X) - s X^3$, the cubic decay ``s = stability``
      keeping the state bounded.

    Every MLP reads $(X - o) / \sigma$ with fixed per-channel ``input_offset`` $o$
    and ``input_scale`` $\sigma$ (numbers, or one per channel; see
    `input_normalisation`); the terms themselves act on $X$.

    At initialisation the reaction and advection networks output exactly 0, ``d = diffusion_init``
    and ``f = diffusion_init / 10``: the model starts as plain (weak) diffusion plus the cubic
    decay (for states of order 1 a rate of order ``stability``, which can exceed slow dynamics).
    """

    channels: int = eqx.field(static=True)
    diffusion: str = eqx.field(static=True)
    advection: bool = eqx.field(static=True)
    reaction: bool = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    stability: float = eqx.field(static=True)
    diffusion_init: float = eqx.field(static=True)
    input_offset: tuple[float, ...] = eqx.field(static=True)
    input_scale: tuple[float, ...] = eqx.field(static=True)
    diffusion_coefficients: Float[Array, " C"] | None
    diffusion_net: PointwiseMLP | None
    advection_net: PointwiseMLP | None
    reaction_net: PointwiseMLP | None
    grid: Grid = eqx.field(static=True)
    non_negative_fields: ClassVar[tuple[str, ...]] = ("diffusion_coefficients",)

    def __init__(
        self,
        channels: int = 2,
        diffusion: str = "linear",
        advection: bool = False,
        reaction: bool = True,
        width: int = 32,
        depth: int = 2,
        activation: str = "tanh",
        stability: float = 0.01,
        diffusion_init: float = 0.05,
        grid: Grid = Grid(),
        input_offset: float | Any = 0.0,
        input_scale: float | Any = 1.0,
        *,
        key: PRNGKeyArray,
    ):
        self.channels = check_int(channels, "channels", 1)
        self.input_offset = _per_channel(input_offset, "input_offset", self.channels, False)
        self.input_scale = _per_channel(input_scale, "input_scale", self.channels, True)
        if diffusion not in DIFFUSION_TERMS:
            raise ValueError(f"diffusion must be one of {list(DIFFUSION_TERMS)}; got {diffusion!r}")
        self.diffusion = diffusion
        self.advection = bool(advection)
        self.reaction = bool(reaction)
        self.width = check_int(width, "width", 1)
        self.depth = check_int(depth, "depth", 0)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}; got {activation!r}")
        self.activation = activation
        self.stability = check_number(stability, "stability")
        self.diffusion_init = check_number(diffusion_init, "diffusion_init")
        self.grid = check_grid(grid)
        kd, ka, kr = jax.random.split(key, 3)
        c = self.channels

        def mlp(k: PRNGKeyArray, out: int, bias: float = 0.0) -> PointwiseMLP:
            return PointwiseMLP(c, out, width, depth, activation, key=k, bias_init=bias)

        linear = diffusion in ("linear", "both")
        nonlinear = diffusion in ("nonlinear", "both")
        self.diffusion_coefficients = jnp.full((c,), self.diffusion_init) if linear else None
        f0 = max(self.diffusion_init / 10, 1e-6)
        self.diffusion_net = mlp(kd, c, _inverse_softplus(f0)) if nonlinear else None
        self.advection_net = mlp(ka, 2 * c) if self.advection else None
        self.reaction_net = mlp(kr, c) if self.reaction else None

    def normalise(self, x: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        """What the networks read: ``(x - input_offset) / input_scale`` per channel."""
        offset = jnp.asarray(self.input_offset, x.dtype)[:, None, None]
        scale = jnp.asarray(self.input_scale, x.dtype)[:, None, None]
        return (x - offset) / scale

    def terms(self, x: Float[Array, "C H W"]) -> dict[str, Float[Array, "C H W"]]:
        """The separate terms of the right-hand side (those switched on)."""
        g = self.grid
        out: dict[str, Array] = {}
        z = self.normalise(x)
        if self.diffusion_coefficients is not None:
            out["diffusion"] = self.diffusion_coefficients[:, None, None] * g.laplacian(x)
        if self.diffusion_net is not None:
            f = jax.nn.softplus(self.diffusion_net(z))
            nonlinear = g.flux_divergence(f, x)
            out["diffusion"] = out.get("diffusion", 0.0) + nonlinear
        if self.advection_net is not None:
            v = jnp.tanh(self.advection_net(z)).reshape(2, self.channels, *x.shape[1:])
            out["advection"] = -g.divergence(v[0] * x, v[1] * x)
        if self.reaction_net is not None:
            out["reaction"] = self.reaction_net(z)
        out["decay"] = -self.stability * x**3
        return out

    def rhs(self, t: Float[Array, ""], x: Float[Array, "C H W"], args: Any) -> Array:
        return sum(self.terms(x).values())


class NeuralChemotaxis(AbstractPDE):
    r"""Neural reaction-diffusion-chemotaxis for cells ``c`` (``cells`` channels) and signals
    ``s`` (``signals`` channels); the state is ``X = [c; s]``:

    $$
    \begin{aligned}
    \partial_t c &= \nabla\cdot\big(k(X)\nabla c\big)
    - \sum_{s} \nabla\cdot\big(c\,K_\chi[c, s](X)\,\nabla s\big) + R(X) - \varepsilon c^3, \\
    \partial_t s &= D \odot \Delta s + P(X) - s \odot \Lambda(X) - \varepsilon s^3,
    \end{aligned}
    $$

    with cell motility $k = \mathrm{softplus}(\mathrm{MLP}) \ge 0$, chemotactic
    sensitivities $K_\chi = \mathrm{MLP}$ (``cells x signals`` per grid cell; positive:
    attraction), cell reaction $R = \mathrm{MLP}$, signal diffusion $D \ge 0$ per
    signal (projected non-negative in training), production $P \ge 0$ and decay rate
    $\Lambda \ge 0$ (softplus outputs). $K_\chi$ and $R$ start at 0,
    ``k``, ``P`` and ``Λ`` at small constants, ``D`` at ``diffusion_init``.
    """

    cells: int = eqx.field(static=True)
    signals: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    stability: float = eqx.field(static=True)
    diffusion_init: float = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    signal_diffusion: Float[Array, " S"]
    motility_net: PointwiseMLP
    taxis_net: PointwiseMLP
    reaction_net: PointwiseMLP
    production_net: PointwiseMLP
    decay_net: PointwiseMLP
    grid: Grid = eqx.field(static=True)
    non_negative_fields: ClassVar[tuple[str, ...]] = ("signal_diffusion",)

    def __init__(
        self,
        cells: int = 1,
        signals: int = 1,
        width: int = 16,
        depth: int = 1,
        activation: str = "relu",
        stability: float = 0.01,
        diffusion_init: float = 0.1,
        grid: Grid = Grid(),
        *,
        key: PRNGKeyArray,
    ):
        self.cells = check_int(cells, "cells", 1)
        self.signals = check_int(signals, "signals", 1)
        self.width = check_int(width, "width", 1)
        self.depth = check_int(depth, "depth", 0)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}; got {activation!r}")
        self.activation = activation
        self.stability = check_number(stability, "stability")
        self.diffusion_init = check_number(diffusion_init, "diffusion_init")
        self.channels = self.cells + self.signals
        self.grid = check_grid(grid)
        c, s = self.cells, self.signals
        k = jax.random.split(key, 5)
        small = _inverse_softplus(1e-2)

        def mlp(k: PRNGKeyArray, out: int, bias: float = 0.0) -> PointwiseMLP:
            return PointwiseMLP(c + s, out, width, depth, activation, key=k, bias_init=bias)

        self.signal_diffusion = jnp.full((s,), self.diffusion_init)
        self.motility_net = mlp(k[0], c, small)
        self.taxis_net = mlp(k[1], c * s)
        self.reaction_net = mlp(k[2], c)
        self.production_net = mlp(k[3], s, small)
        self.decay_net = mlp(k[4], s, small)

    def rhs(self, t: Float[Array, ""], x: Float[Array, "C H W"], args: Any) -> Array:
        g = self.grid
        c, s = x[: self.cells], x[self.cells :]
        motility = jax.nn.softplus(self.motility_net(x))
        sensitivity = self.taxis_net(x).reshape(self.cells, self.signals, *x.shape[1:])
        sx, sy = g.gradient(s)
        fx = c * jnp.einsum("ishw,shw->ihw", sensitivity, sx)
        fy = c * jnp.einsum("ishw,shw->ihw", sensitivity, sy)
        dc = (
            g.flux_divergence(motility, c)
            - g.divergence(fx, fy)
            + self.reaction_net(x)
            - self.stability * c**3
        )
        production = jax.nn.softplus(self.production_net(x))
        decay = jax.nn.softplus(self.decay_net(x))
        ds = (
            self.signal_diffusion[:, None, None] * g.laplacian(s)
            + production
            - s * decay
            - self.stability * s**3
        )
        return jnp.concatenate([dc, ds])
