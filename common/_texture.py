r"""A texture loss that needs no pretrained network, and example textures drawn in code:
what texture synthesis trains against, whatever grows the pattern (an NCA, a PDE).

**Features.** A texture is compared through the distribution of per-pixel feature vectors of a
fixed multi-scale filter bank, the à-trous ("with holes") pyramid (Holschneider et al. 1989;
Shensa 1992). For an image $u_0$ with $C$ channels on a periodic $H \times W$ grid and the
scales $s_l = 2^l$, $l = 0, \dots, L-1$,

$$
u_{l+1} = B_{s_l} u_l, \qquad
(B_s u)(i, j) = \tfrac{1}{16} \sum_{a, b \in \{-1, 0, 1\}} (2 - |a|)(2 - |b|)\, u(i + a s, j + b s),
$$

a binomial blur whose taps are $s$ pixels apart, and at every level $l$ four features per
channel,

$$
u_l, \quad
\tfrac12\big(u_l(i, j + s_l) - u_l(i, j - s_l)\big), \quad
\tfrac12\big(u_l(i + s_l, j) - u_l(i - s_l, j)\big), \quad
\textstyle\sum_{\pm} u_l(i \pm s_l, j) + u_l(i, j \pm s_l) - 4 u_l(i, j),
$$

the value, x- and y-differences and the Laplacian at scale $s_l$: $D = 4 C L$ features per
pixel (`texture_features`, computed as products of discrete Fourier transforms). Every
feature is a fixed linear filter of the image evaluated with periodic shifts, so a periodic
roll of the image rolls the feature maps and leaves the set of feature vectors unchanged: the
loss below is invariant to periodic translations (up to rounding).
Comparing joint distributions of these vectors compares the distributions of local
neighbourhoods of growing size ($\approx 2^{L+1}$ pixels), which is what a stationary texture
is. No learned network (VGG in Gatys et al. 2015; Heitz et al. 2021) is used, so nothing is
downloaded.

**Sliced Wasserstein.** For two sets of feature vectors $a_1, \dots, a_N$ and
$b_1, \dots, b_M$ in $\mathbb{R}^D$ and $K$ random unit directions $\theta_k$ (Gaussian
vectors normalised, drawn from ``key``),

$$
\mathrm{SW}_2^2(a, b) = \frac{1}{K} \sum_{k=1}^K \frac{1}{N} \sum_{i=1}^N
\big(\theta_k \cdot a_{(i)} - Q_k\big(\tfrac{i - 1/2}{N}\big)\big)^2 ,
$$

with $\theta_k \cdot a_{(i)}$ the $i$-th smallest projection of $a$ and $Q_k$ the quantile
function of the projections of $b$, linear between its order statistics at
$(j - \tfrac12)/M$ (and constant beyond them): the squared 1-D Wasserstein-2 distance of
every projection, averaged (Rabin et al. 2011; Heitz et al. 2021). For $N = M$, $Q_k$ is just
the sorted projections of $b$. `sliced_wasserstein` computes it, `texture_loss` applies it
to the features of images and of an example. Gram matrices (Gatys et al. 2015) are not added:
they are second moments of the same features, which the projected distributions already
match.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._helpers import check_int, check_pyramid_levels

__all__ = [
    "TEXTURES",
    "texture_image",
    "texture_features",
    "sliced_wasserstein",
    "texture_loss",
]

TEXTURES = ("stripes", "spots", "checker")
"""Example textures drawn in code by `texture_image`."""

_SUPERSAMPLE = 4
_COLOURS = {
    "stripes": ((0.1, 0.2, 0.5), (0.95, 0.8, 0.2)),
    "spots": ((0.95, 0.9, 0.75), (0.7, 0.1, 0.1)),
    "checker": ((0.1, 0.1, 0.1), (0.9, 0.9, 0.9)),
}


def texture_image(name: str, size: int = 32, *, period: int = 8) -> Float[np.ndarray, "3 H W"]:
    """An RGB example texture ``[3, size, size]`` in ``[0, 1]`` (float32), drawn in code.

    With pixel coordinates ``(i, j)`` measured in periods, ``u = (j + 1/2) / period`` and
    ``v = (i + 1/2) / period``:

    - ``"stripes"``: diagonal stripes, gold where ``frac(u + v) < 1/2``, else navy;
    - ``"spots"``: dark red discs of radius ``0.3 period`` centred on a square lattice of
      spacing ``period``, on cream;
    - ``"checker"``: a checkerboard of squares of side ``period / 2``, dark and light grey.

    Each pixel is the mean of ``4 x 4`` sub-pixel samples (anti-aliased edges). When
    ``period`` divides ``size`` the texture is periodic on the grid, so every periodic roll of
    it is the same texture.
    """
    if name not in TEXTURES:
        raise ValueError(f"name must be one of {list(TEXTURES)}; got {name!r}")
    size = check_int(size, "size", 1)
    period = check_int(period, "period", 2)
    n = size * _SUPERSAMPLE
    c = (np.arange(n) + 0.5) / _SUPERSAMPLE / period
    u, v = np.meshgrid(c, c)  # u along columns (x), v along rows (y)
    if name == "stripes":
        inside = np.mod(u + v, 1.0) < 0.5
    elif name == "spots":
        inside = np.hypot(np.mod(u, 1.0) - 0.5, np.mod(v, 1.0) - 0.5) < 0.3
    else:
        inside = (np.floor(2 * u) + np.floor(2 * v)) % 2 == 0
    back, front = (np.asarray(col, np.float64)[:, None, None] for col in _COLOURS[name])
    rgb = np.where(inside[None], front, back)
    s = _SUPERSAMPLE
    return rgb.reshape(3, size, s, size, s).mean(axis=(2, 4)).astype(np.float32)


def _check_image(x: Any, name: str) -> Array:
    if not hasattr(x, "shape") or len(x.shape) < 3:
        raise ValueError(
            f"{name} must have shape [..., C, H, W]; got {getattr(x, 'shape', type(x).__name__)}"
        )
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    return x


def _responses(h: int, w: int, levels: int) -> np.ndarray:
    """The discrete Fourier transfer functions ``[4 levels, H, W // 2 + 1]`` of the features.

    A periodic shift ``u(j + s)`` multiplies mode ``k`` by ``exp(i s ω)``, ``ω = 2π k / W``,
    so the blur is ``(1 + cos(t ω_x)) (1 + cos(t ω_y)) / 4``, the differences
    ``i sin(s ω)`` and the Laplacian ``2 cos(s ω_x) + 2 cos(s ω_y) - 4``.
    """
    wy = 2 * np.pi * np.fft.fftfreq(h)[:, None]
    wx = 2 * np.pi * np.fft.rfftfreq(w)[None, :]
    blur = np.ones((h, w // 2 + 1), np.complex128)
    out = []
    for level in range(levels):
        s = 2**level
        if level:
            t = 2 ** (level - 1)
            blur = blur * (1 + np.cos(t * wx)) * (1 + np.cos(t * wy)) / 4
        lap = 2 * np.cos(s * wx) + 2 * np.cos(s * wy) - 4
        out += [blur, 1j * np.sin(s * wx) * blur, 1j * np.sin(s * wy) * blur, lap * blur]
    return np.stack(out)


def _pyramid_features(u: Float[Array, "*B C H W"], levels: int) -> Float[Array, "*B F H W"]:
    # every feature is a periodic convolution: one FFT, one product per filter, inverse FFTs
    # (equal to the shifted sums of the module docstring up to rounding)
    h, w = u.shape[-2:]
    spectrum = jnp.fft.rfft2(u)
    response = jnp.asarray(_responses(h, w, levels), spectrum.dtype)
    f = jnp.fft.irfft2(spectrum[..., None, :, :, :] * response[:, None], s=(h, w))
    return f.reshape(*u.shape[:-3], -1, h, w).astype(u.dtype)


_pyramid_features_jit = jax.jit(_pyramid_features, static_argnums=1)


def texture_features(
    images: Float[ArrayLike, "*B C H W"], *, levels: int = 3
) -> Float[Array, "*B F H W"]:
    """The à-trous pyramid features of the module docstring, ``F = 4 C levels`` channels.

    Channel block ``4 l + m`` (each of ``C`` channels) is feature ``m`` (value, x-difference,
    y-difference, Laplacian) at level ``l`` (scale ``2**l``). Periodic in ``H`` and ``W``;
    ``2**levels`` must not exceed ``min(H, W)``.
    """
    images = _check_image(images, "images")
    levels = check_pyramid_levels(levels, images.shape, "images")
    return _pyramid_features_jit(images, levels)


def _directions(key: PRNGKeyArray, dim: int, projections: int, dtype: Any) -> Array:
    theta = jax.random.normal(key, (dim, projections), dtype)
    return theta / jnp.linalg.norm(theta, axis=0, keepdims=True)


def _quantiles(sorted_b: Float[Array, "M K"], n: int) -> Float[Array, "N K"]:
    """The quantile functions of the columns of ``sorted_b`` at ``(i + 1/2) / n``."""
    m = sorted_b.shape[0]
    if m == n:
        return sorted_b
    at = (jnp.arange(n, dtype=sorted_b.dtype) + 0.5) / n
    knots = (jnp.arange(m, dtype=sorted_b.dtype) + 0.5) / m
    return jax.vmap(lambda col: jnp.interp(at, knots, col), in_axes=1, out_axes=1)(sorted_b)


def _sliced(
    a: Float[Array, "*B N D"], b: Float[Array, "M D"], theta: Float[Array, "D K"]
) -> Float[Array, "*B"]:
    pa = jnp.sort(a @ theta, axis=-2)
    qb = _quantiles(jnp.sort(b @ theta, axis=0), a.shape[-2])
    return jnp.mean(jnp.square(pa - qb), axis=(-2, -1))


def sliced_wasserstein(
    a: Float[ArrayLike, "N D"],
    b: Float[ArrayLike, "M D"],
    *,
    projections: int = 32,
    key: PRNGKeyArray,
) -> Float[Array, ""]:
    r"""The squared sliced Wasserstein-2 distance $\mathrm{SW}_2^2(a, b)$ between the empirical
    distributions of the rows of ``a`` and of ``b`` (see the module docstring), with
    ``projections`` directions drawn from ``key``.

    In one dimension every direction is $\pm 1$ and this is the squared Wasserstein-2
    distance itself; between $N(\mu_1, \sigma_1^2)$ and $N(\mu_2, \sigma_2^2)$ it is
    $(\mu_1 - \mu_2)^2 + (\sigma_1 - \sigma_2)^2$.
    """
    arrays = []
    for name, x in (("a", a), ("b", b)):
        if not hasattr(x, "shape") or len(x.shape) != 2 or x.shape[0] < 1:
            raise ValueError(
                f"{name} must have shape [N, D] (N >= 1 samples of D features); got "
                f"{getattr(x, 'shape', type(x).__name__)}"
            )
        arrays.append(jnp.asarray(x))
    a, b = arrays
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a and b must have the same number of features; got a {tuple(a.shape)}, "
            f"b {tuple(b.shape)}"
        )
    dtype = jnp.result_type(a.dtype, b.dtype, jnp.float32)
    return _sliced_wasserstein(
        a.astype(dtype), b.astype(dtype), key, check_int(projections, "projections", 1)
    )


@functools.partial(jax.jit, static_argnums=3)
def _sliced_wasserstein(a: Array, b: Array, key: PRNGKeyArray, projections: int) -> Array:
    return _sliced(a, b, _directions(key, a.shape[1], projections, a.dtype))


def _flat_features(x: Float[Array, "*B C H W"], levels: int) -> Float[Array, "*B N F"]:
    f = _pyramid_features(x, levels)
    return jnp.swapaxes(f.reshape(*f.shape[:-2], -1), -1, -2)


def texture_loss(
    images: Float[ArrayLike, "*B C H W"],
    target: Float[ArrayLike, "C H2 W2"],
    *,
    levels: int = 3,
    projections: int = 32,
    key: PRNGKeyArray,
) -> Float[Array, "*B"]:
    r"""$\mathrm{SW}_2^2$ between the per-pixel `texture_features` of every image and those of
    ``target`` (one loss per image; the same ``projections`` directions, drawn from ``key``,
    for all of them).

    The target may have another size than the images (its quantiles are interpolated); both
    need ``2**levels`` pixels per side. Zero for an image that is a periodic roll of the
    target, whatever the key (up to rounding).
    """
    images = _check_image(images, "images")
    target = _check_image(target, "target")
    if target.ndim != 3:
        raise ValueError(f"target must have shape [C, H, W]; got {tuple(target.shape)}")
    if target.shape[0] != images.shape[-3]:
        raise ValueError(
            f"images and target must have the same channels; got images {tuple(images.shape)}, "
            f"target {tuple(target.shape)}"
        )
    levels = check_pyramid_levels(levels, images.shape, "images")
    check_pyramid_levels(levels, target.shape, "target")
    dtype = jnp.result_type(images.dtype, target.dtype)
    projections = check_int(projections, "projections", 1)
    return _texture_loss(images.astype(dtype), target.astype(dtype), key, levels, projections)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _texture_loss(
    images: Array, target: Array, key: PRNGKeyArray, levels: int, projections: int
) -> Array:
    fa = _flat_features(images, levels)
    fb = _flat_features(target, levels)
    return _sliced(fa, fb, _directions(key, fa.shape[-1], projections, images.dtype))
