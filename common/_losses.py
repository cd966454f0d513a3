"""Losses: pure functions ``loss(prediction, target, where=None) -> scalar``.

``prediction`` and ``target`` have the same shape. ``where`` is an optional boolean or float
mask broadcastable to that shape; the loss is then a weighted mean over the masked entries,

    mean_w(e) = sum(w * e) / sum(w),

so entries with ``w = 0`` do not count (even if they hold NaN). An all-zero mask gives 0.
Configs select losses by name through `get_loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = ["l1", "l2", "mse", "euclidean", "spectral", "LOSSES", "get_loss"]

Loss = Callable[..., Float[Array, ""]]


def _check(prediction: Any, target: Any, where: Any, owner: str) -> tuple[Array, Array, Any]:
    for name, x in (("prediction", prediction), ("target", target)):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"{owner}: argument {name!r} must be an array; got {type(x).__name__}")
    prediction, target = jnp.asarray(prediction), jnp.asarray(target)
    if prediction.shape != target.shape:
        raise ValueError(
            f"{owner}: 'prediction' and 'target' must have the same shape; got "
            f"{prediction.shape} and {target.shape}"
        )
    if where is not None:
        where = jnp.asarray(where)
        try:
            shape = np.broadcast_shapes(where.shape, prediction.shape)
        except ValueError:
            shape = None
        if shape != prediction.shape:
            raise ValueError(
                f"{owner}: argument 'where' must be broadcastable to {prediction.shape}; "
                f"got shape {where.shape}"
            )
    return prediction, target, where


def _weighted_mean(values: Array, where: Any, axis: int | tuple[int, ...] | None = None) -> Array:
    """``sum(w * v) / sum(w)`` over ``axis`` (plain mean when ``where`` is None)."""
    if where is None:
        return jnp.mean(values, axis=axis)
    w = jnp.broadcast_to(where, values.shape).astype(values.dtype)
    total = jnp.sum(jnp.where(w != 0, w * values, 0), axis=axis)
    weight = jnp.sum(w, axis=axis)
    return jnp.where(weight > 0, total / jnp.where(weight > 0, weight, 1), 0)


def l1(
    prediction: Float[Array, "..."], target: Float[Array, "..."], where: Any = None
) -> Float[Array, ""]:
    """Mean absolute error ``mean_w |p - t|``."""
    prediction, target, where = _check(prediction, target, where, "l1")
    return _weighted_mean(jnp.abs(prediction - target), where)


def l2(
    prediction: Float[Array, "..."], target: Float[Array, "..."], where: Any = None
) -> Float[Array, ""]:
    """Mean squared error ``mean_w (p - t)^2``."""
    prediction, target, where = _check(prediction, target, where, "l2")
    return _weighted_mean(jnp.square(prediction - target), where)


mse = l2
"""The mean squared error: another name of `l2`."""


def euclidean(
    prediction: Float[Array, "frame ..."], target: Float[Array, "frame ..."], where: Any = None
) -> Float[Array, ""]:
    """Per-frame RMSE averaged over frames.

    Axis 0 indexes frames (time steps, or batch items); for frame ``n``,
    ``e_n = sqrt(mean_w over all other axes of (p - t)^2)``, and the loss is the mean of
    ``e_n`` over the frames that have non-zero mask weight. A 1-D input gives ``mean |p - t|``.
    """
    prediction, target, where = _check(prediction, target, where, "euclidean")
    if prediction.ndim == 0:
        raise ValueError(
            "euclidean: arguments 'prediction' and 'target' need a leading frame axis; got a scalar"
        )
    sq = jnp.square(prediction - target)
    axes = tuple(range(1, sq.ndim))
    if where is None:
        per_frame = jnp.mean(sq, axis=axes)
        return jnp.mean(_safe_sqrt(per_frame))
    w = jnp.broadcast_to(where, sq.shape).astype(sq.dtype)
    per_frame = _weighted_mean(sq, w, axis=axes)
    frame_used = (jnp.sum(w, axis=axes) > 0).astype(sq.dtype)
    return _weighted_mean(_safe_sqrt(per_frame), frame_used)


def _safe_sqrt(x: Array) -> Array:
    """``sqrt(x)`` with a finite (zero) gradient at ``x = 0``; NaN stays NaN, so that a
    diverging loss is seen as one."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1)), jnp.where(jnp.isnan(x), x, 0))


def spectral(
    prediction: Float[Array, "*c h w"], target: Float[Array, "*c h w"], where: Any = None
) -> Float[Array, ""]:
    """Squared difference of Fourier magnitudes over the last two axes.

    With the orthonormal 2-D DFT ``F`` over axes (-2, -1) (``norm="ortho"``, so
    ``sum |F x|^2 = sum |x|^2``), the loss is ``mean_w (|F p| - |F t|)^2`` over all entries;
    it is on the same scale as `l2` and ignores phase, so it is invariant to periodic
    shifts of either argument. ``where`` here masks Fourier coefficients (e.g. to keep low
    frequencies), indexed like the output of ``jnp.fft.fft2``.
    """
    prediction, target, where = _check(prediction, target, where, "spectral")
    if prediction.ndim < 2:
        raise ValueError(
            "spectral: arguments 'prediction' and 'target' need at least 2 (spatial) axes; got "
            f"shape {prediction.shape}"
        )
    mp = _magnitude(jnp.fft.fft2(prediction, axes=(-2, -1), norm="ortho"))
    mt = _magnitude(jnp.fft.fft2(target, axes=(-2, -1), norm="ortho"))
    return _weighted_mean(jnp.square(mp - mt), where)


def _magnitude(z: Array) -> Array:
    """``|z|`` with a finite gradient at ``z = 0``."""
    return _safe_sqrt(jnp.square(z.real) + jnp.square(z.imag))


LOSSES: dict[str, Loss] = {
    "l1": l1,
    "l2": l2,
    "mse": mse,
    "euclidean": euclidean,
    "spectral": spectral,
}
"""Losses by name, for `get_loss`."""


def get_loss(name: str) -> Loss:
    """The loss registered under ``name`` (see ``LOSSES``)."""
    if not isinstance(name, str):
        raise TypeError(f"get_loss: argument 'name' must be a string; got {type(name).__name__}")
    try:
        return LOSSES[name.lower()]
    except KeyError:
        raise ValueError(
            f"get_loss: unknown loss {name!r}; known losses: {', '.join(sorted(LOSSES))}"
        ) from None
