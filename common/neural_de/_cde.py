r"""Neural controlled differential equations (Kidger et al., 2020).

Irregularly sampled data $(t_k, x_k)$ is turned into a continuous control path
$X(t)$ (``interpolation="cubic"``: Hermite cubic splines with backward differences;
``"linear"``: piecewise linear), and a hidden state evolves by the Riemann--Stieltjes equation

$$
z(t) = z(t_0) + \int_{t_0}^{t} f_\theta(z(s))\,dX(s)
= z(t_0) + \int_{t_0}^{t} f_\theta(z(s))\,\frac{dX}{ds}(s)\,ds,
$$

with $f_\theta(z) \in \mathbb{R}^{H\times C}$. The second form is an ODE, solved by
`SolveConfig.solve` like every other ODE here. `cde_solve` is the
functional core; `NeuralCDE` the usual model: $z(t_0) = \ell_{in}(x_0)$,
output $\ell_{out}(z(t_N))$.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._helpers import check_int
from .._solve import SolveConfig
from ._node import _check_solve, get_activation

__all__ = ["INTERPOLATIONS", "interpolate", "cde_solve", "CDEField", "NeuralCDE"]

INTERPOLATIONS = ("cubic", "linear")
"""Interpolations of a neural CDE's control path."""


def interpolate(
    ts: Real[ArrayLike, " T"], xs: Float[Array, "T C"], kind: str = "cubic"
) -> diffrax.AbstractPath:
    """The control path $X(t)$ through the points ``(ts[k], xs[k])``."""
    if kind not in INTERPOLATIONS:
        raise ValueError(f"argument 'kind' must be one of {INTERPOLATIONS}; got {kind!r}")
    ts, xs = jnp.asarray(ts), jnp.asarray(xs)
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"argument 'ts' must be [T] with T >= 2; got {ts.shape}")
    if xs.ndim != 2 or xs.shape[0] != ts.shape[0]:
        raise ValueError(f"argument 'xs' must be [T={ts.shape[0]}, C]; got {xs.shape}")
    if kind == "linear":
        return diffrax.LinearInterpolation(ts, xs)
    return diffrax.CubicInterpolation(ts, diffrax.backward_hermite_coefficients(ts, xs))


class _Controlled(eqx.Module):
    """$f(t, z) \\dot X(t)$, the CDE as an ODE; ``args = (control, inner args)``."""

    field: Callable[..., Array]

    def __call__(self, t, z, args):
        control, inner = args
        return self.field(t, z, inner) @ control.derivative(t)


def cde_solve(
    field: Callable[..., Float[Array, "h c"]],
    z0: Float[Array, " h"],
    control: diffrax.AbstractPath,
    ts: Real[ArrayLike, " T"],
    solve: SolveConfig = SolveConfig(),  # noqa: B008 (frozen, hashable)
    args: Any = None,
) -> Float[Array, "T h"]:
    r"""Solve $dz = f(t, z, \mathrm{args})\,dX(t)$ from ``z(ts[0]) = z0`` and return
    $z$ at ``ts`` (which must lie in the control's time range), with the settings ``solve``
    (default ``SolveConfig()``)."""
    return _check_solve(solve).solve(_Controlled(field), z0, ts, (control, args))


class CDEField(eqx.Module):
    r"""$f(z) = \tanh(\mathrm{MLP}(z))$ reshaped to $[H, C]$."""

    mlp: eqx.nn.MLP
    hidden: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)

    def __init__(
        self,
        hidden: int,
        channels: int,
        width: int = 32,
        depth: int = 2,
        *,
        activation: str = "softplus",
        key: PRNGKeyArray,
    ):
        self.hidden = check_int(hidden, "hidden")
        self.channels = check_int(channels, "channels")
        self.mlp = eqx.nn.MLP(
            self.hidden,
            self.hidden * self.channels,
            check_int(width, "width"),
            check_int(depth, "depth", 0),
            activation=get_activation(activation),
            final_activation=jnp.tanh,
            key=key,
        )

    def __call__(self, t: Any, z: Float[Array, " h"], args: Any = None) -> Float[Array, "h c"]:
        return self.mlp(z).reshape(self.hidden, self.channels)


class NeuralCDE(eqx.Module):
    r"""Neural CDE: $z_0 = W_{in} x_0 + b$, $dz = f(z)\,dX$, output
    $W_{out} z(t_N) + b$. ``cde(ts, xs)`` maps one series ``[T, C]`` to ``[out]``.

    Args:
        channels: $C$, the channels of the series (include time as a channel to make the
            model sensitive to the sampling times).
        hidden: $H$, the size of the hidden state $z$.
        out: the size of the output.
        width: hidden width of the `CDEField` MLP.
        depth: hidden layers of the `CDEField` MLP.
        interpolation: the control path through the observations (`INTERPOLATIONS`).
        solve: how the CDE is solved (default ``SolveConfig()``).
        key: initialises the three layers.
    """

    initial: eqx.nn.Linear
    field: CDEField
    readout: eqx.nn.Linear
    interpolation: str = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)

    def __init__(
        self,
        channels: int,
        hidden: int,
        out: int,
        width: int = 32,
        depth: int = 2,
        *,
        interpolation: str = "cubic",
        solve: SolveConfig = SolveConfig(),  # noqa: B008 (frozen, hashable)
        key: PRNGKeyArray,
    ):
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"argument 'interpolation' must be one of {INTERPOLATIONS}; got {interpolation!r}"
            )
        k1, k2, k3 = jax.random.split(key, 3)
        self.initial = eqx.nn.Linear(check_int(channels, "channels"), hidden, key=k1)
        self.field = CDEField(hidden, channels, width, depth, key=k2)
        self.readout = eqx.nn.Linear(hidden, check_int(out, "out"), key=k3)
        self.interpolation = interpolation
        self.solve = _check_solve(solve)

    def hidden_path(
        self, ts: Real[ArrayLike, " T"], xs: Float[Array, "T C"]
    ) -> Float[Array, "T h"]:
        """$z$ at every observation time."""
        control = interpolate(ts, xs, self.interpolation)
        return cde_solve(self.field, self.initial(xs[0]), control, ts, self.solve)

    def __call__(self, ts: Real[ArrayLike, " T"], xs: Float[Array, "T C"]) -> Float[Array, " o"]:
        return self.readout(self.hidden_path(ts, xs)[-1])
