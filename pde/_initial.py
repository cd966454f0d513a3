"""Initial states ``[C, H, W]`` for the fixed models, as in the literature."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._base import AbstractPDE

__all__ = ["gaussian", "gray_scott_seeds", "perturbed", "smooth_random_field", "initial_state"]


def _check_size(size: Any) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 3 for s in size):
        raise ValueError(f"size must be an int >= 3 or a pair of them; got {size!r}")
    return int(size[0]), int(size[1])


def gaussian(
    size: int | tuple[int, int],
    sigma: float,
    *,
    dx: float = 1.0,
    centre: tuple[float, float] | None = None,
    images: int = 0,
) -> Float[Array, "1 H W"]:
    """``exp(-|r - r0|² / (2 σ²))`` on cell centres ``r = (j dx, i dx)`` (x = column), summed
    over the periodic images ``r0 + (a W dx, b H dx)``, ``|a|, |b| <= images``. The default
    centre is the middle of the domain."""
    h, w = _check_size(size)
    y = jnp.arange(h) * dx
    x = jnp.arange(w) * dx
    cx, cy = (w * dx / 2, h * dx / 2) if centre is None else centre
    out = jnp.zeros((h, w))
    for a in range(-images, images + 1):
        for b in range(-images, images + 1):
            rx = x[None, :] - cx - a * w * dx
            ry = y[:, None] - cy - b * h * dx
            out = out + jnp.exp(-(rx**2 + ry**2) / (2 * sigma**2))
    return out[None]


def gray_scott_seeds(
    key: PRNGKeyArray, size: int | tuple[int, int], seeds: int = 3, width: int = 6
) -> Float[Array, "2 H W"]:
    """``(A, B) = (1, 0)`` with ``seeds`` random ``width``-squares set to ``(0.5, 0.25)`` and
    1% noise (Pearson 1993)."""
    h, w = _check_size(size)
    kpos, knoise = jax.random.split(key)
    corners = jax.random.randint(kpos, (seeds, 2), 0, jnp.array([h - width, w - width]))
    ii, jj = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
    inside = jnp.zeros((h, w), bool)
    for s in range(seeds):
        i0, j0 = corners[s, 0], corners[s, 1]
        inside |= (ii >= i0) & (ii < i0 + width) & (jj >= j0) & (jj < j0 + width)
    a = jnp.where(inside, 0.5, 1.0)
    b = jnp.where(inside, 0.25, 0.0)
    x = jnp.stack([a, b])
    return x + 0.01 * jax.random.uniform(knoise, x.shape, minval=-1.0, maxval=1.0)


def perturbed(
    key: PRNGKeyArray, values: Any, size: int | tuple[int, int], amplitude: float
) -> Float[Array, "C H W"]:
    """``values[c] + amplitude * U(-1, 1)`` per cell (e.g. a fixed point plus noise)."""
    h, w = _check_size(size)
    v = jnp.asarray(values, dtype=float).reshape(-1, 1, 1)
    noise = jax.random.uniform(key, (v.shape[0], h, w), minval=-1.0, maxval=1.0)
    return v + amplitude * noise


def smooth_random_field(
    key: PRNGKeyArray,
    size: int | tuple[int, int],
    channels: int = 1,
    wavenumber: float = 4.0,
) -> Float[Array, "C H W"]:
    r"""A smooth periodic Gaussian random field with zero mean and unit RMS in every channel:
    white noise whose Fourier coefficient at mode numbers $(m_x, m_y)$ (periods per domain
    side) is weighted by $\exp(-(m_x^2 + m_y^2) / (2 m_0^2))$, $m_0$ = ``wavenumber``, so its
    features are about $1/m_0$ of the domain across, whatever the resolution."""
    h, w = _check_size(size)
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int; got {channels!r}")
    if isinstance(wavenumber, bool) or not (
        isinstance(wavenumber, (int, float)) and 0 < wavenumber < float("inf")
    ):
        raise ValueError(f"wavenumber must be a finite number > 0; got {wavenumber!r}")
    my = jnp.fft.fftfreq(h, d=1.0 / h)[:, None]
    mx = jnp.fft.fftfreq(w, d=1.0 / w)[None, :]
    weight = jnp.exp(-(mx**2 + my**2) / (2 * wavenumber**2))
    noise = jax.random.normal(key, (channels, h, w))
    field = jnp.fft.ifft2(jnp.fft.fft2(noise) * weight).real
    field = field - field.mean(axis=(-2, -1), keepdims=True)
    return field / jnp.sqrt(jnp.mean(field**2, axis=(-2, -1), keepdims=True))


def initial_state(
    model: AbstractPDE, key: PRNGKeyArray, size: int | tuple[int, int]
) -> Float[Array, "C H W"]:
    """A literature initial state for ``model`` (by class): Gray-Scott seeded squares, fixed
    points plus noise for Turing models, uniform noise for Cahn-Hilliard (U(-1, 1)) and
    Chhabra (U(0, 0.5)), a Gaussian for advection-diffusion, the steady state (1, 1) plus 1%
    noise for Hillen-Painter chemotaxis, a `smooth_random_field` vorticity (features about a
    quarter of the domain across) for Navier-Stokes, U(0, 1) otherwise."""
    from . import _models as m
    from ._chemotaxis import HillenPainter
    from ._navier_stokes import NavierStokes

    h, w = _check_size(size)
    if isinstance(model, m.GrayScott):
        return gray_scott_seeds(key, (h, w), seeds=max(1, (h * w) // 1024))
    if isinstance(model, m.AdvectionDiffusion):
        g = gaussian((h, w), sigma=min(h, w) * model.dx / 10, dx=model.dx)
        return jnp.repeat(g, model.channels, axis=0)
    if isinstance(model, m.FitzHughNagumo):
        return jax.random.uniform(key, (2, h, w))
    if isinstance(model, m.Brusselator):
        a, b = float(model.a), float(model.b)
        return perturbed(key, [a, b / a], (h, w), 0.1)
    if isinstance(model, m.Schnakenberg):
        a, b = float(model.a), float(model.b)
        return perturbed(key, [a + b, b / (a + b) ** 2], (h, w), 0.05)
    if isinstance(model, m.KellerSegel):
        u = 1.0
        return perturbed(key, [u, u / float(model.decay)], (h, w), 0.1)
    if isinstance(model, m.CahnHilliard):
        return jax.random.uniform(key, (1, h, w), minval=-1.0, maxval=1.0)
    if isinstance(model, m.Chhabra):
        return jax.random.uniform(key, (2, h, w), maxval=0.5)
    if isinstance(model, HillenPainter):
        return perturbed(key, [1.0, 1.0], (h, w), 0.01)
    if isinstance(model, NavierStokes):
        return smooth_random_field(key, (h, w), wavenumber=4.0)
    return jax.random.uniform(key, (model.channels, h, w))
