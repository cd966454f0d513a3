"""Finite-difference operators on channels-first grids, with explicit padding.

Fields are ``[C, H, W]`` (``H`` = y = rows = axis -2, ``W`` = x = columns = axis -1) or, for the
1-D operators, ``[C, X]``. Every operator acts on each channel independently. Batches are
handled with ``jax.vmap``.

Stencils are written with offsets ``(dy, dx)``: ``u[i+dy, j+dx]``. The value of a stencil at
an edge cell reads the *ghost* cells supplied by ``padding``:

- ``"periodic"``: ghost cells wrap around (numpy ``"wrap"``);
- ``"zeros"``: ghost cells are 0 (numpy ``"constant"``);
- ``"reflect"``: mirror about the edge cell, the edge cell itself not repeated:
  ``[a b c | ...]`` becomes ``[c b | a b c ...]`` (numpy ``"reflect"``; scipy's ``"mirror"``);
- ``"replicate"``: ghost cells repeat the edge cell: ``[a a | a b c ...]`` (numpy ``"edge"``).

Implementation: every stencil is a sum of shifted copies of the field, made by padding one
axis (`jax.numpy.pad`, or for ``"replicate"`` a concatenation of the edge slice) and
slicing; each public function validates its arguments in Python, then calls one jitted kernel.
On XLA:CPU this is far faster, forward and backward, than a depthwise
``lax.conv_general_dilated`` with ``feature_group_count=C``, which XLA:CPU runs slowly. Only
`Perception`, which stacks many filters into one grouped convolution
as accelerators prefer, uses ``conv_general_dilated``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._model import fixed_field

__all__ = [
    "PADDING_MODES",
    "PERCEPTION_FILTERS",
    "LAPLACIAN_STENCILS",
    "Perception",
    "pad",
    "gradient_x",
    "gradient_y",
    "gradient",
    "divergence",
    "laplacian",
    "curl",
    "gradient_norm",
    "gaussian_average",
]

Padding = Literal["periodic", "zeros", "reflect", "replicate"]
PADDING_MODES: tuple[str, ...] = ("periodic", "zeros", "reflect", "replicate")
"""How fields are padded at the edge of the grid: periodic, zeros, reflect (mirror without
repeating the edge), replicate (repeat the edge)."""
LAPLACIAN_STENCILS: tuple[str, ...] = ("5-point", "9-point")
"""Discrete Laplacians: the 5-point cross and the isotropic 9-point stencil."""
_NUMPY_MODE = {"periodic": "wrap", "zeros": "constant", "reflect": "reflect", "replicate": "edge"}


# --------------------------------------------------------------------------------------------
# validation (plain Python, before tracing)


def _check_padding(padding: Any, name: str = "padding") -> str:
    if not isinstance(padding, str) or padding not in PADDING_MODES:
        raise ValueError(f"{name} must be one of {list(PADDING_MODES)}; got {padding!r}")
    return padding


def _check_field(x: Any, name: str, ndims: tuple[int, ...]) -> None:
    if not hasattr(x, "ndim") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array; got {type(x).__name__}")
    if x.ndim not in ndims:
        layouts = {2: "[C, X]", 3: "[C, H, W]"}
        expected = " or ".join(f"{layouts[n]} (ndim {n})" for n in ndims)
        hint = "; use jax.vmap over the batch axis" if x.ndim == max(ndims) + 1 else ""
        raise ValueError(
            f"{name} must have shape {expected}; got shape {tuple(x.shape)} (ndim {x.ndim}){hint}"
        )


def _check_same_shape(a: Any, b: Any, names: tuple[str, str]) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape; got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )


def _check_dx(dx: Any) -> None:
    # Python numbers are checked here; arrays (possibly traced, e.g. a learned spacing) pass.
    if isinstance(dx, bool) or (isinstance(dx, (int, float)) and not dx > 0):
        raise ValueError(f"dx must be a positive number; got {dx!r}")


def _check_stencil(stencil: Any) -> str:
    if stencil not in LAPLACIAN_STENCILS:
        raise ValueError(f"stencil must be one of {list(LAPLACIAN_STENCILS)}; got {stencil!r}")
    return stencil


# --------------------------------------------------------------------------------------------
# padding and shifts


def pad(x: Float[ArrayLike, "C ..."], width: int, mode: Padding) -> Float[Array, "C ..."]:
    """Pad every spatial axis of ``x`` (``[C, H, W]`` or ``[C, X]``) by ``width`` on both sides.

    The channel axis is never padded. ``mode`` is one of:

    - ``"periodic"``: ``p[i] = x[i mod n]`` (numpy ``"wrap"``);
    - ``"zeros"``: ``p[i] = 0`` outside (numpy ``"constant"``);
    - ``"reflect"``: mirror about the edge *cell*, which is not repeated:
      ``p[-k] = x[k]`` (numpy ``"reflect"``, scipy.ndimage ``"mirror"``);
    - ``"replicate"``: ``p[-k] = x[0]`` (numpy ``"edge"``).

    Widths larger than the axis repeat the rule as numpy does.
    """
    _check_field(x, "x", (2, 3))
    _check_padding(mode, "mode")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 0:
        raise ValueError(f"width must be a non-negative int; got {width!r}")
    return _pad(jnp.asarray(x), int(width), mode)


@functools.partial(jax.jit, static_argnames=("width", "mode"))
def _pad(x: Array, width: int, mode: str) -> Array:
    widths = [(0, 0)] + [(width, width)] * (x.ndim - 1)
    return jnp.pad(x, widths, mode=_NUMPY_MODE[mode])


def _pad_axis(x: Array, axis: int, width: int, mode: str) -> Array:
    widths = [(0, 0)] * x.ndim
    widths[axis] = (width, width)
    return jnp.pad(x, widths, mode=_NUMPY_MODE[mode])


def _neighbours(x: Array, axis: int, padding: str) -> tuple[Array, Array]:
    """``(u[i-1], u[i+1])`` along ``axis``, ghost values supplied by ``padding``."""
    n = x.shape[axis]
    if padding == "replicate":
        # jnp.pad's "edge" mode has a slow transpose on XLA:CPU; gluing the edge slice on
        # directly is equivalent and its transpose is just slicing.
        inner_lo = jax.lax.slice_in_dim(x, 0, n - 1, axis=axis)
        inner_hi = jax.lax.slice_in_dim(x, 1, n, axis=axis)
        first = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
        last = jax.lax.slice_in_dim(x, n - 1, n, axis=axis)
        return (
            jnp.concatenate([first, inner_lo], axis=axis),
            jnp.concatenate([inner_hi, last], axis=axis),
        )
    p = _pad_axis(x, axis, 1, padding)
    return (
        jax.lax.slice_in_dim(p, 0, n, axis=axis),
        jax.lax.slice_in_dim(p, 2, n + 2, axis=axis),
    )


def _safe_hypot(a: Array, b: Array) -> Array:
    # sqrt(a² + b²) with a zero (not NaN) derivative where a = b = 0.
    s = a * a + b * b
    positive = s > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, s, 1.0)), 0.0)


# --------------------------------------------------------------------------------------------
# jitted kernels: the public functions validate in Python, then call one of these. A single
# compiled kernel per (shape, padding) makes eager calls cheap (op-by-op dispatch would compile
# every primitive separately); inside a user's jit the nested call is simply inlined.


@functools.partial(jax.jit, static_argnames=("axis", "padding"))
def _derivative(x: Array, dx: Any, axis: int, padding: str) -> Array:
    minus, plus = _neighbours(x, axis, padding)
    return (plus - minus) / (2 * dx)


@functools.partial(jax.jit, static_argnames=("padding",))
def _gradient(x: Array, dx: Any, padding: str) -> Array:
    parts = [_derivative(x, dx, -1, padding)]
    if x.ndim == 3:
        parts.append(_derivative(x, dx, -2, padding))
    return jnp.stack(parts)


@functools.partial(jax.jit, static_argnames=("padding", "sign"))
def _div_or_curl(a: Array, b: Array, dx: Any, padding: str, sign: int) -> Array:
    # sign +1: ∂x a + ∂y b (divergence of (a, b)); sign -1: ∂x b - ∂y a (curl of (a, b)).
    if sign > 0:
        return _derivative(a, dx, -1, padding) + _derivative(b, dx, -2, padding)
    return _derivative(b, dx, -1, padding) - _derivative(a, dx, -2, padding)


@functools.partial(jax.jit, static_argnames=("padding", "stencil"))
def _laplacian(x: Array, dx: Any, padding: str, stencil: str) -> Array:
    xm, xp = _neighbours(x, -1, padding)
    if x.ndim == 2:
        return (xm + xp - 2 * x) / dx**2
    ym, yp = _neighbours(x, -2, padding)
    if stencil == "5-point":
        return (ym + yp + xm + xp - 4 * x) / dx**2
    # The four corners are the x-neighbours of (u[i-1] + u[i+1]); shifting commutes with sums.
    vertical = ym + yp
    cm, cp = _neighbours(vertical, -1, padding)
    return (4 * (vertical + xm + xp) + (cm + cp) - 20 * x) / (6 * dx**2)


@functools.partial(jax.jit, static_argnames=("padding",))
def _gradient_norm(x: Array, dx: Any, padding: str) -> Array:
    g = _gradient(x, dx, padding)
    if g.shape[0] == 1:
        return _safe_hypot(g[0], jnp.zeros_like(g[0]))
    return _safe_hypot(g[0], g[1])


@functools.partial(jax.jit, static_argnames=("weights", "padding"))
def _separable(x: Array, weights: tuple[float, ...], padding: str) -> Array:
    radius = (len(weights) - 1) // 2
    out = x
    for axis in range(1, x.ndim):
        n = out.shape[axis]
        p = _pad_axis(out, axis, radius, padding)
        acc = weights[0] * jax.lax.slice_in_dim(p, 0, n, axis=axis)
        for k in range(1, len(weights)):
            acc = acc + weights[k] * jax.lax.slice_in_dim(p, k, k + n, axis=axis)
        out = acc
    return out


# --------------------------------------------------------------------------------------------
# differential operators


def gradient_x(
    x: Float[ArrayLike, "C ..."], *, dx: float = 1.0, padding: Padding = "periodic"
) -> Float[Array, "C ..."]:
    """∂u/∂x along the last axis by central differences: ``(u[j+1] - u[j-1]) / (2 dx)``.

    Works on ``[C, H, W]`` (x = columns) and on ``[C, X]``. Exact for polynomials of degree ≤ 2
    wherever the stencil reads no ghost cell.
    """
    _check_field(x, "x", (2, 3))
    _check_padding(padding)
    _check_dx(dx)
    return _derivative(jnp.asarray(x), dx, -1, padding)


def gradient_y(
    x: Float[ArrayLike, "C H W"], *, dx: float = 1.0, padding: Padding = "periodic"
) -> Float[Array, "C H W"]:
    """∂u/∂y along the rows (axis -2) by central differences: ``(u[i+1] - u[i-1]) / (2 dx)``."""
    _check_field(x, "x", (3,))
    _check_padding(padding)
    _check_dx(dx)
    return _derivative(jnp.asarray(x), dx, -2, padding)


def gradient(
    x: Float[ArrayLike, "C ..."], *, dx: float = 1.0, padding: Padding = "periodic"
) -> Float[Array, "D C ..."]:
    """The gradient ∇u as one stacked array: ``[∂x u, ∂y u]`` of shape ``[2, C, H, W]``.

    For a 1-D field ``[C, X]`` the result is ``[1, C, X]`` (just ``∂x u``). Component 0 is
    always x (the last axis), so ``divergence(*gradient(u))`` works for 2-D fields.
    """
    _check_field(x, "x", (2, 3))
    _check_padding(padding)
    _check_dx(dx)
    return _gradient(jnp.asarray(x), dx, padding)


def divergence(
    vx: Float[ArrayLike, "C H W"],
    vy: Float[ArrayLike, "C H W"],
    *,
    dx: float = 1.0,
    padding: Padding = "periodic",
) -> Float[Array, "C H W"]:
    """∇·v = ∂vx/∂x + ∂vy/∂y by central differences.

    With periodic padding this is exactly minus the adjoint of `gradient`:
    ``<∇u, v> = -<u, ∇·v>``. Note that ``divergence(*gradient(u))`` is the *wide* Laplacian
    (spacing 2 dx), not `laplacian`.
    """
    _check_field(vx, "vx", (3,))
    _check_field(vy, "vy", (3,))
    _check_same_shape(vx, vy, ("vx", "vy"))
    _check_padding(padding)
    _check_dx(dx)
    return _div_or_curl(jnp.asarray(vx), jnp.asarray(vy), dx, padding, 1)


def curl(
    vx: Float[ArrayLike, "C H W"],
    vy: Float[ArrayLike, "C H W"],
    *,
    dx: float = 1.0,
    padding: Padding = "periodic",
) -> Float[Array, "C H W"]:
    """Scalar curl ∂vy/∂x - ∂vx/∂y by central differences (zero on periodic gradient fields)."""
    _check_field(vx, "vx", (3,))
    _check_field(vy, "vy", (3,))
    _check_same_shape(vx, vy, ("vx", "vy"))
    _check_padding(padding)
    _check_dx(dx)
    return _div_or_curl(jnp.asarray(vx), jnp.asarray(vy), dx, padding, -1)


def laplacian(
    x: Float[ArrayLike, "C ..."],
    *,
    dx: float = 1.0,
    padding: Padding = "periodic",
    stencil: Literal["5-point", "9-point"] = "5-point",
) -> Float[Array, "C ..."]:
    """Δu by a second-order stencil, divided by ``dx²``.

    - 1-D ``[C, X]``: ``[1, -2, 1]`` (only ``stencil="5-point"``, its 1-D analogue, is allowed);
    - ``"5-point"``: ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``;
    - ``"9-point"`` (isotropic, leading error ∝ Δ²u): ``(1/6) [[1, 4, 1], [4, -20, 4], [1, 4, 1]]``.

    Both are exact on quadratics away from ghost cells and second-order accurate.
    """
    _check_field(x, "x", (2, 3))
    _check_padding(padding)
    _check_dx(dx)
    _check_stencil(stencil)
    if x.ndim == 2 and stencil != "5-point":
        raise ValueError(
            f"stencil must be '5-point' (the 3-point [1, -2, 1] stencil) for a 1-D field "
            f"[C, X]; got {stencil!r} for shape {tuple(x.shape)}"
        )
    return _laplacian(jnp.asarray(x), dx, padding, stencil)


def gradient_norm(
    x: Float[ArrayLike, "C ..."], *, dx: float = 1.0, padding: Padding = "periodic"
) -> Float[Array, "C ..."]:
    """|∇u| = sqrt((∂x u)² + (∂y u)²) from central differences (|∂x u| in 1-D).

    Its derivative is defined as 0 where ∇u = 0 (instead of NaN).
    """
    _check_field(x, "x", (2, 3))
    _check_padding(padding)
    _check_dx(dx)
    return _gradient_norm(jnp.asarray(x), dx, padding)


def _gaussian_weights(sigma: float, radius: int) -> np.ndarray:
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (k / sigma) ** 2)
    return w / w.sum()


def gaussian_average(
    x: Float[ArrayLike, "C ..."],
    sigma: float,
    *,
    truncate: float = 4.0,
    padding: Padding = "periodic",
) -> Float[Array, "C ..."]:
    """Gaussian blur with standard deviation ``sigma`` in grid cells, applied per axis.

    The separable kernel is ``w[k] ∝ exp(-k² / (2 sigma²))`` for ``|k| ≤ r`` with
    ``r = int(truncate * sigma + 0.5)``, normalised to sum 1 (scipy.ndimage's convention, so
    ``gaussian_filter(u, sigma, mode="wrap")`` matches ``padding="periodic"``). With
    ``sigma=0.5, truncate=2`` it is the 3x3 average of the NCA literature: centre 0.6193,
    edges 0.0838, corners 0.0113. ``sigma`` must be a Python number (it sets the stencil).
    """
    _check_field(x, "x", (2, 3))
    _check_padding(padding)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating, np.integer)):
        raise ValueError(f"sigma must be a positive Python number; got {sigma!r}")
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a positive number; got {sigma!r}")
    if isinstance(truncate, bool) or not isinstance(truncate, (int, float)) or truncate <= 0:
        raise ValueError(f"truncate must be a positive number; got {truncate!r}")
    radius = int(truncate * float(sigma) + 0.5)
    if radius == 0:
        return jnp.asarray(x)
    weights = tuple(float(w) for w in _gaussian_weights(float(sigma), radius))
    return _separable(jnp.asarray(x), weights, padding)


# --------------------------------------------------------------------------------------------
# perception


PERCEPTION_FILTERS: tuple[str, ...] = (
    "identity",
    "grad_x",
    "grad_y",
    "sobel_x",
    "sobel_y",
    "laplacian",
    "average",
    "grad_norm",
)
"""Names of the 3x3 stencils that `Perception` can stack."""


def _perception_kernel(name: str, dx: float, laplacian_stencil: str) -> np.ndarray:
    """The 3x3 cross-correlation kernel of a linear filter; ``k[1 + dy, 1 + dx]``."""
    k = np.zeros((3, 3))
    if name == "identity":
        k[1, 1] = 1.0
    elif name == "grad_x":
        k[1, 0], k[1, 2] = -1.0, 1.0
        k /= 2 * dx
    elif name == "grad_y":
        k[0, 1], k[2, 1] = -1.0, 1.0
        k /= 2 * dx
    elif name == "sobel_x":
        k = np.outer([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0]) / (8 * dx)
    elif name == "sobel_y":
        k = np.outer([-1.0, 0.0, 1.0], [1.0, 2.0, 1.0]) / (8 * dx)
    elif name == "laplacian":
        if laplacian_stencil == "5-point":
            k = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        else:
            k = np.array([[1.0, 4.0, 1.0], [4.0, -20.0, 4.0], [1.0, 4.0, 1.0]]) / 6
        k /= dx**2
    elif name == "average":
        w = _gaussian_weights(0.5, 1)
        k = np.outer(w, w)
    else:  # pragma: no cover - names are validated before
        raise AssertionError(name)
    return k


class Perception(eqx.Module):
    """Fixed depthwise filters applied to every channel by ONE grouped convolution.

    For ``channels = C`` and ``filters = (f_0, ..., f_{K-1})`` the output has ``K*C`` channels,
    **blocked by filter**: output channel ``k*C + c`` is filter ``f_k`` applied to input channel
    ``c``, so ``y.reshape(K, C, H, W)[k]`` is filter ``f_k`` on all channels. Filters (3x3
    cross-correlation, ``dx`` the grid spacing):

    - ``identity``: u;
    - ``grad_x``, ``grad_y``: central differences ``(u[+1] - u[-1]) / (2 dx)`` along x / y;
    - ``sobel_x``: ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] / (8 dx)``, ``sobel_y`` its transpose
      (the /8 of the growing-NCA literature makes it a smoothed derivative);
    - ``laplacian``: `laplacian` with ``laplacian_stencil`` ("9-point" by default);
    - ``average``: 3x3 Gaussian, sigma 0.5 (`gaussian_average` with ``truncate=2``);
    - ``grad_norm``: ``sqrt(grad_x² + grad_y²)`` from the central differences (nonlinear,
      computed after the convolution; helper grad_x/grad_y kernels are added if absent).

    The kernel ``[C*Kc, 1, 3, 3]`` (``Kc`` linear filters, grouped order ``c*Kc + k`` as
    ``feature_group_count=C`` requires) is a `fixed_field`: never trained.
    The input is padded with ``padding`` and convolved at ``Precision.HIGHEST`` (no TF32).
    On XLA:CPU the grouped convolution is slow (forward and, even more, its VJP), so
    ``impl="auto"`` (the default) computes the same cross-correlation on CPU as weighted sums
    of the shifted views of the padded input, the stencil weights compile-time constants (one
    fused loop), and uses the grouped convolution on GPU/TPU (one cuDNN call). ``impl="conv"``
    or ``"shift"`` forces either; results agree to rounding.
    """

    channels: int = eqx.field(static=True)
    filters: tuple[str, ...] = eqx.field(static=True)
    padding: str = eqx.field(static=True)
    dx: float = eqx.field(static=True)
    laplacian_stencil: str = eqx.field(static=True)
    conv_filters: tuple[str, ...] = eqx.field(static=True)
    impl: str = eqx.field(static=True)
    kernel: Float[Array, "CK 1 3 3"] = fixed_field()

    def __init__(
        self,
        channels: int,
        filters: Sequence[str] = ("identity", "sobel_x", "sobel_y", "laplacian"),
        *,
        padding: Padding = "periodic",
        dx: float = 1.0,
        laplacian_stencil: Literal["5-point", "9-point"] = "9-point",
        impl: Literal["auto", "conv", "shift"] = "auto",
    ):
        if impl not in ("auto", "conv", "shift"):
            raise ValueError(f"impl must be one of ['auto', 'conv', 'shift']; got {impl!r}")
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)):
            raise ValueError(f"channels must be a positive int; got {channels!r}")
        if channels < 1:
            raise ValueError(f"channels must be a positive int; got {channels!r}")
        if isinstance(filters, str):
            raise ValueError(
                f"filters must be a sequence of filter names, e.g. ({filters!r},); got the "
                f"string {filters!r}"
            )
        filters = tuple(filters)
        if not filters:
            raise ValueError(f"filters must name at least one of {list(PERCEPTION_FILTERS)}")
        for f in filters:
            if f not in PERCEPTION_FILTERS:
                raise ValueError(
                    f"filters: unknown filter {f!r}; known filters are {list(PERCEPTION_FILTERS)}"
                )
        if len(set(filters)) != len(filters):
            raise ValueError(f"filters must not repeat a name; got {list(filters)}")
        _check_padding(padding)
        _check_dx(dx)
        if not isinstance(dx, (int, float)):
            raise ValueError(f"dx must be a Python number for Perception; got {dx!r}")
        if laplacian_stencil not in LAPLACIAN_STENCILS:
            raise ValueError(
                f"laplacian_stencil must be one of {list(LAPLACIAN_STENCILS)}; "
                f"got {laplacian_stencil!r}"
            )
        conv = [f for f in filters if f != "grad_norm"]
        if "grad_norm" in filters:
            conv += [f for f in ("grad_x", "grad_y") if f not in conv]
        base = np.stack([_perception_kernel(f, float(dx), laplacian_stencil) for f in conv])
        kernel = np.broadcast_to(base[None], (int(channels), *base.shape))
        self.channels = int(channels)
        self.filters = filters
        self.padding = padding
        self.dx = float(dx)
        self.laplacian_stencil = laplacian_stencil
        self.conv_filters = tuple(conv)
        self.impl = impl
        self.kernel = jnp.asarray(kernel.reshape(int(channels) * len(conv), 1, 3, 3))

    @property
    def out_channels(self) -> int:
        """``channels * len(filters)``."""
        return self.channels * len(self.filters)

    def __call__(self, x: Float[ArrayLike, "C H W"]) -> Float[Array, "KC H W"]:
        """Apply all filters; output channel ``k*C + c`` is ``filters[k]`` on channel ``c``."""
        _check_field(x, "x", (3,))
        if x.shape[0] != self.channels:
            raise ValueError(
                f"x must have {self.channels} channels (shape [{self.channels}, H, W]); got "
                f"shape {tuple(x.shape)}"
            )
        impl = self.impl
        if impl == "auto":
            impl = "shift" if jax.default_backend() == "cpu" else "conv"
        return _perceive(
            jax.lax.stop_gradient(self.kernel),  # fixed: no gradient under any loop
            jnp.asarray(x),
            self.padding,
            self.filters,
            self.conv_filters,
            self.dx,
            self.laplacian_stencil,
            impl,
        )

    def channels_last(self, x: Float[ArrayLike, "H W C"]) -> Float[Array, "H W KC"]:
        """The same features with channels last: ``[H, W, C] -> [H, W, K*C]``, feature
        ``k*C + c`` as in `__call__`. Loops that keep their state channels-last (an NCA's
        rollout) contract the features with the next layer as ``[H W, KC] @ [KC, O]``, whose
        products and their VJPs XLA:CPU runs faster than the channels-first layout's."""
        _check_field(x, "x", (3,))
        if x.shape[-1] != self.channels:
            raise ValueError(
                f"x must have {self.channels} channels last (shape [H, W, {self.channels}]); "
                f"got shape {tuple(x.shape)}"
            )
        impl = self.impl
        if impl == "auto":
            impl = "shift" if jax.default_backend() == "cpu" else "conv"
        return _perceive(
            jax.lax.stop_gradient(self.kernel),
            jnp.asarray(x),
            self.padding,
            self.filters,
            self.conv_filters,
            self.dx,
            self.laplacian_stencil,
            impl,
            channels_last=True,
        )


@functools.partial(
    jax.jit,
    static_argnames=(
        "padding",
        "filters",
        "conv_filters",
        "dx",
        "laplacian_stencil",
        "impl",
        "channels_last",
    ),
)
def _perceive(
    kernel: Array,
    x: Array,
    padding: str,
    filters: tuple[str, ...],
    conv_filters: tuple[str, ...],
    dx: float,
    laplacian_stencil: str,
    impl: str,
    channels_last: bool = False,
) -> Array:
    if channels_last:
        h, w, c = x.shape
        rows, cols = 0, 1
    else:
        c, h, w = x.shape
        rows, cols = 1, 2
    kc = len(conv_filters)
    p = _pad_axis(_pad_axis(x, rows, 1, padding), cols, 1, padding)
    if impl == "conv":
        y = jax.lax.conv_general_dilated(
            p[None],
            (jnp.transpose(kernel, (2, 3, 1, 0)) if channels_last else kernel).astype(x.dtype),
            window_strides=(1, 1),
            padding="VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC")
            if channels_last
            else ("NCHW", "OIHW", "NCHW"),
            feature_group_count=c,
            precision=jax.lax.Precision.HIGHEST,
        )[0]
        if channels_last:
            y = y.reshape(h, w, c, kc)
            linear = {f: y[..., i] for i, f in enumerate(conv_filters)}
        else:
            y = y.reshape(c, kc, h, w)
            linear = {f: y[:, i] for i, f in enumerate(conv_filters)}
    else:
        # every channel shares the stencils: a weighted sum of the shifted views of the padded
        # input, with the weights as compile-time constants (zero taps skipped), which XLA
        # fuses into one loop over the cells
        def view(a: int, b: int) -> Array:
            return p[a : a + h, b : b + w] if channels_last else p[:, a : a + h, b : b + w]

        linear = {}
        for f in conv_filters:
            stencil = _perception_kernel(f, dx, laplacian_stencil)
            taps = [
                float(stencil[a, b]) * view(a, b)
                for a in range(3)
                for b in range(3)
                if stencil[a, b] != 0.0
            ]
            linear[f] = functools.reduce(jnp.add, taps).astype(x.dtype)
    blocks = [
        _safe_hypot(linear["grad_x"], linear["grad_y"]) if f == "grad_norm" else linear[f]
        for f in filters
    ]
    if channels_last:
        return jnp.concatenate(blocks, axis=-1)
    return jnp.stack(blocks).reshape(len(filters) * c, h, w)
