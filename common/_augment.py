"""Data augmentation: pure, jittable augmenters and per-sample transforms.

An *augmenter* turns training data into one batch per step. It is a pure object: its state is
a pytree of arrays that the trainer threads through the jitted step,

    state = augmenter.init(data, key)                    # once, outside jit
    batch = augmenter.sample(state, k)                   # every step, inside jit
    state = augmenter.update(state, prediction, k)       # every step, same key k

A *transform* acts on one sample, ``(x, key) -> x``. Samples are channels-first images
``[C, H, W]`` or image sequences ``[T, C, H, W]``; every transform acts on the last two
(spatial) axes, and a channel selection refers to axis ``-3``. One key draws one set of random
parameters per sample, so all frames of a ``[T, C, H, W]`` sequence are transformed alike. The
same key always gives the same result.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree, Shaped

__all__ = [
    "AbstractAugmenter",
    "FullBatch",
    "ArrayAugmenter",
    "TreeAugmenter",
    "SamplePool",
    "AbstractTransform",
    "RandomRoll",
    "RandomFlip",
    "RandomRot90",
    "GaussianNoise",
    "RandomErase",
    "ZeroPad",
    "Compose",
    "duplicate",
]

Transform = Callable[[Array, PRNGKeyArray], Array]


# --------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------


def _check_spatial(x: Any, owner: str, min_ndim: int = 2) -> None:
    if not hasattr(x, "shape") or len(x.shape) < min_ndim:
        shape = getattr(x, "shape", type(x).__name__)
        raise ValueError(
            f"{owner}: argument 'x' must be an array with at least {min_ndim} axes "
            f"([..., C, H, W] or [..., H, W]); got shape {shape}"
        )


def _channel_mask(channels: tuple[int, ...] | None, x: Array, owner: str) -> Array:
    """Boolean mask broadcastable to ``x`` that selects ``channels`` along axis -3."""
    if channels is None:
        return jnp.array(True)
    _check_spatial(x, owner, min_ndim=3)
    n = x.shape[-3]
    bad = [c for c in channels if not -n <= c < n]
    if bad:
        raise ValueError(
            f"{owner}: argument 'channels' must index the {n} channels of axis -3; got {bad}"
        )
    mask = np.zeros((n, 1, 1), dtype=bool)
    mask[list(channels)] = True
    return jnp.asarray(mask)


def _as_channels(channels: Any) -> tuple[int, ...] | None:
    if channels is None:
        return None
    if isinstance(channels, int):
        return (channels,)
    return tuple(int(c) for c in channels)


class AbstractTransform(eqx.Module):
    """A per-sample transform ``(x, key) -> x`` acting on the last two axes of ``x``."""

    @abc.abstractmethod
    def __call__(self, x: Shaped[Array, "*c h w"], key: PRNGKeyArray) -> Shaped[Array, "*c h w"]:
        """Transform one sample with randomness drawn from ``key``."""


class RandomRoll(AbstractTransform):
    """Periodic shift: ``y[..., i, j] = x[..., (i - s_h) mod H, (j - s_w) mod W]``.

    The shift ``(s_h, s_w)`` is drawn uniformly from ``{-m_h, ..., m_h} x {-m_w, ..., m_w}``
    for ``max_shift = (m_h, m_w)`` (an int means the same bound on both axes), or from
    ``{0, ..., H-1} x {0, ..., W-1}`` when ``max_shift`` is None. Equals ``jnp.roll`` by
    `shift`.
    """

    max_shift: tuple[int, int] | None = eqx.field(static=True, default=None)

    def __init__(self, max_shift: int | tuple[int, int] | None = None):
        if max_shift is not None:
            pair = (max_shift, max_shift) if isinstance(max_shift, int) else tuple(max_shift)
            if len(pair) != 2 or any(int(m) != m or m < 0 for m in pair):
                raise ValueError(
                    "RandomRoll: argument 'max_shift' must be a non-negative int or a pair of "
                    f"them; got {max_shift!r}"
                )
            max_shift = (int(pair[0]), int(pair[1]))
        self.max_shift = max_shift

    def shift(self, key: PRNGKeyArray, shape: tuple[int, ...]) -> Int[Array, "2"]:
        """The shift ``(s_h, s_w)`` that ``key`` draws for a sample of ``shape``."""
        h, w = shape[-2:]
        if self.max_shift is None:
            return jax.random.randint(key, (2,), 0, jnp.array([h, w]))
        m = jnp.array(self.max_shift)
        return jax.random.randint(key, (2,), -m, m + 1)

    def __call__(self, x: Shaped[Array, "*c h w"], key: PRNGKeyArray) -> Shaped[Array, "*c h w"]:
        _check_spatial(x, "RandomRoll")
        s = self.shift(key, x.shape)
        return jnp.roll(x, (s[0], s[1]), axis=(-2, -1))


class RandomFlip(AbstractTransform):
    """Mirror with probability ``p``: ``"horizontal"`` reverses axis -1 (W), ``"vertical"``
    reverses axis -2 (H)."""

    axis: str = eqx.field(static=True, default="horizontal")
    p: float = eqx.field(static=True, default=0.5)

    def __check_init__(self):
        if self.axis not in ("horizontal", "vertical"):
            raise ValueError(
                f"RandomFlip: argument 'axis' must be 'horizontal' or 'vertical'; got {self.axis!r}"
            )
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"RandomFlip: argument 'p' must lie in [0, 1]; got {self.p!r}")

    def flips(self, key: PRNGKeyArray) -> Bool[Array, ""]:
        """Whether ``key`` flips the sample."""
        return jax.random.bernoulli(key, self.p)

    def __call__(self, x: Shaped[Array, "*c h w"], key: PRNGKeyArray) -> Shaped[Array, "*c h w"]:
        _check_spatial(x, "RandomFlip")
        ax = -1 if self.axis == "horizontal" else -2
        return jnp.where(self.flips(key), jnp.flip(x, axis=ax), x)


class RandomRot90(AbstractTransform):
    """Rotation by ``k * 90`` degrees in the (H, W) plane, ``k`` uniform in ``{0, 1, 2, 3}``.

    ``k = 1`` is ``jnp.rot90(x, 1, axes=(-2, -1))``. Square samples only (``H == W``), so the
    shape is unchanged and stays static under jit.
    """

    def turns(self, key: PRNGKeyArray) -> Int[Array, ""]:
        """The number of quarter turns ``k`` that ``key`` draws."""
        return jax.random.randint(key, (), 0, 4)

    def __call__(self, x: Shaped[Array, "*c h w"], key: PRNGKeyArray) -> Shaped[Array, "*c h w"]:
        _check_spatial(x, "RandomRot90")
        if x.shape[-2] != x.shape[-1]:
            raise ValueError(
                "RandomRot90: argument 'x' must be square in its last two axes (H == W); "
                f"got shape {tuple(x.shape)}"
            )
        branches = [lambda y, k=k: jnp.rot90(y, k, axes=(-2, -1)) for k in range(4)]
        return jax.lax.switch(self.turns(key), branches, x)


class GaussianNoise(AbstractTransform):
    """Additive noise ``y = x + std * eps``, ``eps ~ N(0, 1)`` i.i.d., on the selected
    ``channels`` (axis -3; all entries when None)."""

    std: float = eqx.field(static=True)
    channels: tuple[int, ...] | None = eqx.field(static=True, default=None)

    def __init__(self, std: float, channels: int | Sequence[int] | None = None):
        if not float(std) >= 0.0:
            raise ValueError(f"GaussianNoise: argument 'std' must be >= 0; got {std!r}")
        self.std = float(std)
        self.channels = _as_channels(channels)

    def __call__(self, x: Float[Array, "*c h w"], key: PRNGKeyArray) -> Float[Array, "*c h w"]:
        _check_spatial(x, "GaussianNoise")
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            raise TypeError(
                f"GaussianNoise: argument 'x' must be floating point; got dtype {x.dtype}"
            )
        mask = _channel_mask(self.channels, x, "GaussianNoise")
        # drawn flat and reshaped: same values, but XLA:CPU compiles a multi-axis draw slowly
        noise = self.std * jax.random.normal(key, (x.size,), dtype=x.dtype).reshape(x.shape)
        return jnp.where(mask, x + noise, x)


class RandomErase(AbstractTransform):
    """Zero a random disk: ``y = 0`` where ``(i - c_h)^2 + (j - c_w)^2 <= r^2``, else ``x``.

    The centre ``(c_h, c_w)`` is a pixel drawn uniformly from the grid, the radius ``r``
    uniformly from ``[r_min, r_max]`` (``radius = (r_min, r_max)``; a number fixes it). Only the
    selected ``channels`` (axis -3) are erased; None erases every channel. For a sequence
    ``[T, C, H, W]`` the same disk is erased in every frame (damage for regeneration training).
    """

    radius: tuple[float, float] = eqx.field(static=True)
    channels: tuple[int, ...] | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        radius: float | tuple[float, float],
        channels: int | Sequence[int] | None = None,
    ):
        pair = (radius, radius) if isinstance(radius, (int, float)) else tuple(radius)
        if len(pair) != 2 or not 0.0 <= float(pair[0]) <= float(pair[1]):
            raise ValueError(
                "RandomErase: argument 'radius' must be a number >= 0 or a pair "
                f"(r_min, r_max) with 0 <= r_min <= r_max; got {radius!r}"
            )
        self.radius = (float(pair[0]), float(pair[1]))
        self.channels = _as_channels(channels)

    def disk(
        self, key: PRNGKeyArray, shape: tuple[int, ...]
    ) -> tuple[Int[Array, "2"], Float[Array, ""]]:
        """The centre ``(c_h, c_w)`` and radius ``r`` that ``key`` draws for ``shape``."""
        h, w = shape[-2:]
        kc, kr = jax.random.split(key)
        centre = jax.random.randint(kc, (2,), 0, jnp.array([h, w]))
        r = jax.random.uniform(kr, (), minval=self.radius[0], maxval=self.radius[1])
        return centre, r

    @staticmethod
    def disk_mask(
        centre: Int[Array, "2"], radius: Float[Array, ""], shape: tuple[int, ...]
    ) -> Bool[Array, "h w"]:
        """``True`` on pixels with ``(i - c_h)^2 + (j - c_w)^2 <= r^2``."""
        h, w = shape[-2:]
        i = jnp.arange(h)[:, None] - centre[0]
        j = jnp.arange(w)[None, :] - centre[1]
        return (i * i + j * j).astype(jnp.float32) <= radius * radius

    def __call__(self, x: Shaped[Array, "*c h w"], key: PRNGKeyArray) -> Shaped[Array, "*c h w"]:
        _check_spatial(x, "RandomErase")
        channel = _channel_mask(self.channels, x, "RandomErase")
        centre, r = self.disk(key, x.shape)
        erase = self.disk_mask(centre, r, x.shape) & channel
        return jnp.where(erase, jnp.zeros((), x.dtype), x)


class ZeroPad(AbstractTransform):
    """Zero padding of the last two axes; deterministic (the key is ignored).

    ``width`` is ``p`` (all four sides), ``(p_h, p_w)`` or ``(top, bottom, left, right)``:
    ``[..., H, W] -> [..., H + top + bottom, W + left + right]``.
    """

    width: tuple[int, int, int, int] = eqx.field(static=True)

    def __init__(self, width: int | tuple[int, ...]):
        w = (width,) if isinstance(width, int) else tuple(width)
        if len(w) == 1:
            w = w * 4
        elif len(w) == 2:
            w = (w[0], w[0], w[1], w[1])
        if len(w) != 4 or any(int(v) != v or v < 0 for v in w):
            raise ValueError(
                "ZeroPad: argument 'width' must be a non-negative int, (p_h, p_w) or "
                f"(top, bottom, left, right); got {width!r}"
            )
        self.width = tuple(int(v) for v in w)  # type: ignore[assignment]

    def __call__(
        self, x: Shaped[Array, "*c h w"], key: PRNGKeyArray | None = None
    ) -> Shaped[Array, "*c hp wp"]:
        _check_spatial(x, "ZeroPad")
        t, b, left, right = self.width
        pad = [(0, 0)] * (x.ndim - 2) + [(t, b), (left, right)]
        return jnp.pad(x, pad)


class Compose(AbstractTransform):
    """Apply ``transforms`` in order, ``f_n(... f_1(x, k_1) ..., k_n)``, with
    ``(k_1, ..., k_n) = split(key, n)``."""

    transforms: tuple[Transform, ...] = eqx.field(static=True)

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = _as_transforms(transforms, "Compose")

    def __call__(self, x: Shaped[Array, "*c h w"], key: PRNGKeyArray) -> Shaped[Array, "..."]:
        if not self.transforms:
            return x
        for f, k in zip(self.transforms, jax.random.split(key, len(self.transforms)), strict=True):
            x = f(x, k)
        return x


def _as_transforms(transforms: Any, owner: str) -> tuple[Transform, ...]:
    if transforms is None:
        return ()
    if callable(transforms):
        transforms = (transforms,)
    try:
        out = tuple(transforms)
    except TypeError:
        raise TypeError(
            f"{owner}: argument 'transforms' must be a sequence of callables (x, key) -> x; "
            f"got {type(transforms).__name__}"
        ) from None
    bad = [type(f).__name__ for f in out if not callable(f)]
    if bad:
        raise TypeError(
            f"{owner}: argument 'transforms' must hold callables (x, key) -> x; got {bad}"
        )
    return out


def duplicate(batch: PyTree[Shaped[Array, "b ..."]], n: int) -> PyTree[Shaped[Array, "bn ..."]]:
    """Repeat each sample ``n`` times along axis 0: ``[b0, b1] -> [b0, b0, b1, b1]`` (n = 2).

    Applies to every array leaf of ``batch``; the batch size becomes ``B * n``.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"duplicate: argument 'n' must be an int >= 1; got {n!r}")
    return jax.tree_util.tree_map(lambda a: jnp.repeat(a, int(n), axis=0), batch)


# --------------------------------------------------------------------------------------------
# Augmenters
# --------------------------------------------------------------------------------------------


class AbstractAugmenter(eqx.Module):
    """Protocol between data and the trainer; every method is pure.

    - ``init(data, key) -> state``: called once, outside jit; validates ``data`` and builds the
      state, a pytree of arrays.
    - ``sample(state, key) -> batch``: called inside the jitted step; ``batch`` is a pytree
      whose array leaves share a leading batch axis ``B``.
    - ``update(state, prediction, key) -> state``: called after the loss, with what the model
      produced for the batch (or None); the default returns ``state`` unchanged.

    Key rule: in one step the trainer calls ``sample(state, k)`` and
    ``update(state, prediction, k)`` with the SAME key ``k`` and the SAME ``state``, so an
    augmenter (e.g. a `SamplePool`) can re-derive from ``(state, k)`` which slots it
    handed out instead of storing indices.
    """

    @abc.abstractmethod
    def init(self, data: Any, key: PRNGKeyArray) -> PyTree[Array]:
        """Validate ``data`` and build the initial state."""

    @abc.abstractmethod
    def sample(self, state: PyTree[Array], key: PRNGKeyArray) -> PyTree[Array]:
        """Draw one batch (leading axis B) from ``state``."""

    def update(self, state: PyTree[Array], prediction: Any, key: PRNGKeyArray) -> PyTree[Array]:
        """Fold the model's ``prediction`` back into the state (default: unchanged)."""
        return state


def _check_batch_size(value: Any, name: str, owner: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: argument {name!r} must be an int >= 1; got {value!r}")


def _to_array(x: Any, name: str, owner: str) -> Array:
    if not isinstance(x, (jax.Array, np.ndarray)):
        raise TypeError(f"{owner}: {name} must be an array; got {type(x).__name__}")
    return jnp.asarray(x)


def _draw_indices(key: PRNGKeyArray, n: int, b: int, replace: bool) -> Int[Array, " b"]:
    if replace:
        return jax.random.randint(key, (b,), 0, n)
    return jax.random.choice(key, n, (b,), replace=False)


class FullBatch(AbstractAugmenter):
    """The trivial augmenter: every step sees the whole data pytree as its batch."""

    def init(self, data: Any, key: PRNGKeyArray) -> Any:
        return data

    def sample(self, state: Any, key: PRNGKeyArray) -> Any:
        return state


class ArrayAugmenter(AbstractAugmenter):
    """Minibatches from data that share a leading axis ``N``.

    ``data`` is one array ``[N, ...]`` or a dict/tuple of arrays sharing axis 0 (e.g. inputs and
    targets). Each step draws ``batch_size`` indices (``replace`` chooses with/without
    replacement), repeats every drawn item ``repeats`` times (`duplicate`, so each copy
    gets its own augmentation) and applies ``transforms`` in order to every item, giving a batch
    of ``B = batch_size * repeats``. For dict/tuple data, ``apply_to`` names the entries
    (keys/indices) that are transformed (default all); within one item every selected entry
    gets the same key, so a random flip or roll moves inputs and targets together.

    The state is the data itself (an array or dict/tuple of arrays), so the trainer can shard
    it along axis 0.
    """

    batch_size: int = eqx.field(static=True)
    transforms: tuple[Transform, ...] = eqx.field(static=True, default=())
    replace: bool = eqx.field(static=True, default=False)
    repeats: int = eqx.field(static=True, default=1)
    apply_to: tuple[Any, ...] | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        batch_size: int,
        transforms: Sequence[Transform] = (),
        *,
        replace: bool = False,
        repeats: int = 1,
        apply_to: Sequence[Any] | None = None,
    ):
        _check_batch_size(batch_size, "batch_size", "ArrayAugmenter")
        _check_batch_size(repeats, "repeats", "ArrayAugmenter")
        self.batch_size = int(batch_size)
        self.transforms = _as_transforms(transforms, "ArrayAugmenter")
        self.replace = bool(replace)
        self.repeats = int(repeats)
        self.apply_to = None if apply_to is None else tuple(apply_to)

    def init(self, data: Any, key: PRNGKeyArray | None = None) -> Any:
        """Check ``data`` (arrays sharing axis 0, enough items) and return it as the state."""
        owner = "ArrayAugmenter.init"
        if isinstance(data, Mapping):
            state: Any = {k: _to_array(v, f"data[{k!r}]", owner) for k, v in data.items()}
            names = list(state)
        elif isinstance(data, (tuple, list)):
            state = tuple(_to_array(v, f"data[{i}]", owner) for i, v in enumerate(data))
            names = list(range(len(state)))
        else:
            state = _to_array(data, "argument 'data'", owner)
            names = []
        leaves = jax.tree_util.tree_leaves(state)
        if not leaves:
            raise ValueError(f"{owner}: argument 'data' holds no arrays")
        if any(a.ndim == 0 for a in leaves):
            raise ValueError(f"{owner}: every array in 'data' needs a leading axis N")
        sizes = {a.shape[0] for a in leaves}
        if len(sizes) != 1:
            raise ValueError(
                f"{owner}: arrays in 'data' must share axis 0; got sizes "
                f"{[a.shape[0] for a in leaves]}"
            )
        (n,) = sizes
        if not self.replace and n < self.batch_size:
            raise ValueError(
                f"{owner}: sampling without replacement needs N >= batch_size = "
                f"{self.batch_size}; got N = {n}"
            )
        if self.apply_to is not None:
            if not names:
                raise ValueError(
                    f"{owner}: 'apply_to' needs dict or tuple data; got a single array"
                )
            missing = [a for a in self.apply_to if a not in names]
            if missing:
                raise ValueError(
                    f"{owner}: 'apply_to' entries {missing} are not in data; known {names}"
                )
        return state

    def _transform_item(self, item: Any, key: PRNGKeyArray) -> Any:
        f = Compose(self.transforms)
        if isinstance(item, dict):
            return {
                k: f(v, key) if self.apply_to is None or k in self.apply_to else v
                for k, v in item.items()
            }
        if isinstance(item, tuple):
            return tuple(
                f(v, key) if self.apply_to is None or i in self.apply_to else v
                for i, v in enumerate(item)
            )
        return f(item, key)

    def sample(self, state: Any, key: PRNGKeyArray) -> Any:
        """``batch = T(duplicate(data[idx], repeats))`` with ``idx`` drawn from ``key``."""
        k_idx, k_tf = jax.random.split(key)
        n = jax.tree_util.tree_leaves(state)[0].shape[0]
        idx = _draw_indices(k_idx, n, self.batch_size, self.replace)
        batch = jax.tree_util.tree_map(lambda a: a[idx], state)
        if self.repeats > 1:
            batch = duplicate(batch, self.repeats)
        if self.transforms:
            keys = jax.random.split(k_tf, self.batch_size * self.repeats)
            batch = jax.vmap(self._transform_item)(batch, keys)
        return batch


class TreeAugmenter(AbstractAugmenter):
    """Fixed-size windows from a list of arrays of different sizes.

    ``data`` is a list of ``L`` arrays with the same number of axes, e.g. trajectories
    ``[T_i, D]`` of different lengths or images ``[C, H_i, W_i]`` of different shapes.
    ``window`` gives, per axis, the window length (int) or None to keep the whole axis (which
    must then have the same length in every item). Each step draws ``batch_size`` items
    (``replace`` chooses with/without replacement; ``batch_size=None`` takes every item once, in
    order) and one window from each, at an offset drawn uniformly from the valid positions
    ``0 <= s <= size - window``, then applies ``transforms``.

    Static shapes under jit: ``init`` pads every item with zeros to the largest size and stacks
    them into ``data [L, *max_shape]``, with their true sizes in ``sizes [L, k]`` (one column
    per windowed axis). ``sample`` then only needs a traced item index and traced offsets for
    ``lax.dynamic_slice`` of a window whose size is static; the offsets are bounded by the true
    sizes, so padding is never read. Memory is ``L * prod(max_shape)``.

    The batch is the windows ``[B, *window_shape]``, or with ``return_positions=True`` a dict
    ``{"x": windows, "item": [B] item indices, "start": [B, ndim] window offsets}`` (e.g. to
    recover the time of the first frame).
    """

    window: tuple[int | None, ...] = eqx.field(static=True)
    batch_size: int | None = eqx.field(static=True, default=None)
    transforms: tuple[Transform, ...] = eqx.field(static=True, default=())
    replace: bool = eqx.field(static=True, default=True)
    return_positions: bool = eqx.field(static=True, default=False)

    def __init__(
        self,
        window: Sequence[int | None],
        batch_size: int | None = None,
        transforms: Sequence[Transform] = (),
        *,
        replace: bool = True,
        return_positions: bool = False,
    ):
        w = tuple(window)
        if any(v is not None and (not isinstance(v, (int, np.integer)) or v < 1) for v in w):
            raise ValueError(
                "TreeAugmenter: argument 'window' must hold ints >= 1 or None per axis; "
                f"got {window!r}"
            )
        _check_batch_size(batch_size, "batch_size", "TreeAugmenter", allow_none=True)
        self.window = tuple(None if v is None else int(v) for v in w)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.transforms = _as_transforms(transforms, "TreeAugmenter")
        self.replace = bool(replace)
        self.return_positions = bool(return_positions)

    @property
    def _cropped(self) -> tuple[int, ...]:
        return tuple(i for i, v in enumerate(self.window) if v is not None)

    def init(self, data: Any, key: PRNGKeyArray | None = None) -> dict[str, Array]:
        """Pad the items to a common shape: ``{"data": [L, *max_shape], "sizes": [L, k]}``."""
        owner = "TreeAugmenter.init"
        if isinstance(data, (jax.Array, np.ndarray)):
            data = list(data)
        if not isinstance(data, (list, tuple)) or not data:
            raise TypeError(
                f"{owner}: argument 'data' must be a non-empty list of arrays; "
                f"got {type(data).__name__}"
            )
        items = [_to_array(x, f"data[{i}]", owner) for i, x in enumerate(data)]
        nd = len(self.window)
        for i, x in enumerate(items):
            if x.ndim != nd:
                raise ValueError(
                    f"{owner}: data[{i}] must have {nd} axes to match 'window' "
                    f"{self.window}; got shape {tuple(x.shape)}"
                )
        shapes = np.array([x.shape for x in items])
        for a, v in enumerate(self.window):
            if v is None and len(set(shapes[:, a])) != 1:
                raise ValueError(
                    f"{owner}: axis {a} has window None, so every item needs the same length "
                    f"there; got {sorted(set(shapes[:, a].tolist()))}"
                )
            if v is not None and shapes[:, a].min() < v:
                raise ValueError(
                    f"{owner}: window {v} on axis {a} is longer than the shortest item "
                    f"(length {int(shapes[:, a].min())})"
                )
        if self.batch_size is not None and not self.replace and len(items) < self.batch_size:
            raise ValueError(
                f"{owner}: sampling without replacement needs len(data) >= batch_size = "
                f"{self.batch_size}; got {len(items)}"
            )
        dtype = jnp.result_type(*items)
        top = shapes.max(axis=0)
        padded = jnp.stack(
            [
                jnp.pad(
                    x.astype(dtype), [(0, int(m - s)) for m, s in zip(top, x.shape, strict=True)]
                )
                for x in items
            ]
        )
        sizes = jnp.asarray(shapes[:, list(self._cropped)], dtype=jnp.int32)
        return {"data": padded, "sizes": sizes}

    def _window_of(
        self, data: Array, item: Int[Array, ""], sizes: Int[Array, " k"], key: PRNGKeyArray
    ) -> tuple[Array, Int[Array, " nd"]]:
        w = jnp.array([self.window[a] for a in self._cropped], dtype=jnp.int32)
        offsets = jax.random.randint(key, w.shape, 0, sizes - w + 1)
        start = jnp.zeros(len(self.window), jnp.int32).at[jnp.array(self._cropped)].set(offsets)
        full = data.shape[1:]
        slice_sizes = tuple(full[a] if v is None else v for a, v in enumerate(self.window))
        x = jax.lax.dynamic_slice(data[item], tuple(start), slice_sizes)
        return x, start

    def sample(self, state: dict[str, Array], key: PRNGKeyArray) -> Any:
        """One window per drawn item, transformed; see the class docstring for the layout."""
        k_idx, k_win, k_tf = jax.random.split(key, 3)
        n = state["data"].shape[0]
        if self.batch_size is None:
            items = jnp.arange(n)
        else:
            items = _draw_indices(k_idx, n, self.batch_size, self.replace)
        b = items.shape[0]
        if self._cropped:
            x, start = jax.vmap(
                lambda i, k: self._window_of(state["data"], i, state["sizes"][i], k)
            )(items, jax.random.split(k_win, b))
        else:
            x = state["data"][items]
            start = jnp.zeros((b, len(self.window)), jnp.int32)
        if self.transforms:
            x = jax.vmap(Compose(self.transforms))(x, jax.random.split(k_tf, b))
        if self.return_positions:
            return {"x": x, "item": items, "start": start}
        return x


class SamplePool(AbstractAugmenter):
    """A pool of ``P`` states for persistent training (growing neural cellular automata).

    ``init(seed, key)`` fills the pool with ``P`` copies of ``seed`` (one state, any shape).
    Each step, ``sample`` draws ``batch_size`` distinct slots ``idx`` from ``key``. If ``score``
    is given (a function of one state, larger = worse, e.g. its loss against the target), the
    slots are ordered worst first; otherwise they stay in random order. The first ``reseed``
    samples are replaced by ``seed``, and ``transforms`` (e.g. `RandomErase` damage) are
    applied to the last ``n_transformed`` samples (the best ones when scored; None = all).

    ``update(state, prediction, key)`` writes ``pool[idx[b]] = prediction[b]`` (gradients
    stopped). It re-derives ``idx`` from the same ``(state, key)`` that ``sample`` saw, which
    is why the trainer must pass the same key to both. ``prediction`` must be the final states
    ``[B, *seed.shape]``; None leaves the pool as it is.
    """

    pool_size: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    reseed: int = eqx.field(static=True, default=1)
    score: Callable[[Array], Array] | None = eqx.field(static=True, default=None)
    transforms: tuple[Transform, ...] = eqx.field(static=True, default=())
    n_transformed: int | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        pool_size: int,
        batch_size: int,
        *,
        reseed: int = 1,
        score: Callable[[Array], Array] | None = None,
        transforms: Sequence[Transform] = (),
        n_transformed: int | None = None,
    ):
        _check_batch_size(pool_size, "pool_size", "SamplePool")
        _check_batch_size(batch_size, "batch_size", "SamplePool")
        if batch_size > pool_size:
            raise ValueError(
                f"SamplePool: argument 'batch_size' must be <= pool_size = {pool_size}; "
                f"got {batch_size}"
            )
        for name, v in (("reseed", reseed), ("n_transformed", n_transformed)):
            if name == "n_transformed" and v is None:
                continue
            if not isinstance(v, (int, np.integer)) or not 0 <= v <= batch_size:
                raise ValueError(
                    f"SamplePool: argument {name!r} must be an int in [0, batch_size = "
                    f"{batch_size}]; got {v!r}"
                )
        if score is not None and not callable(score):
            raise TypeError(f"SamplePool: argument 'score' must be callable; got {score!r}")
        self.pool_size = int(pool_size)
        self.batch_size = int(batch_size)
        self.reseed = int(reseed)
        self.score = score
        self.transforms = _as_transforms(transforms, "SamplePool")
        self.n_transformed = None if n_transformed is None else int(n_transformed)

    def init(self, data: Any, key: PRNGKeyArray | None = None) -> dict[str, Array]:
        """``{"pool": [P, *seed.shape] copies of seed, "seed": seed}``."""
        seed = _to_array(data, "argument 'data' (a seed state)", "SamplePool.init")
        pool = jnp.broadcast_to(seed, (self.pool_size, *seed.shape))
        return {"pool": jnp.array(pool), "seed": seed}

    def slots(self, state: dict[str, Array], key: PRNGKeyArray) -> Int[Array, " b"]:
        """The pool slots that ``sample(state, key)`` hands out, in batch order."""
        k_idx = jax.random.split(key)[0]
        idx = _draw_indices(k_idx, self.pool_size, self.batch_size, replace=False)
        if self.score is not None:
            s = jax.vmap(self.score)(state["pool"][idx])
            idx = idx[jnp.argsort(-s)]
        return idx

    def sample(self, state: dict[str, Array], key: PRNGKeyArray) -> Array:
        """``pool[idx]`` with the first ``reseed`` replaced by ``seed`` and the last
        ``n_transformed`` transformed."""
        idx = self.slots(state, key)
        x = state["pool"][idx]
        if self.reseed:
            x = x.at[: self.reseed].set(state["seed"])
        if self.transforms:
            n = self.batch_size if self.n_transformed is None else self.n_transformed
            if n:
                k_tf = jax.random.split(key)[1]
                head, tail = x[: self.batch_size - n], x[self.batch_size - n :]
                tail = jax.vmap(Compose(self.transforms))(tail, jax.random.split(k_tf, n))
                x = jnp.concatenate([head, tail], axis=0)
        return x

    def update(self, state: dict[str, Array], prediction: Any, key: PRNGKeyArray) -> Any:
        """``pool[idx[b]] = stop_gradient(prediction[b])`` for the slots of ``sample``."""
        if prediction is None:
            return state
        pool = state["pool"]
        expected = (self.batch_size, *pool.shape[1:])
        if not hasattr(prediction, "shape") or tuple(prediction.shape) != expected:
            got = getattr(prediction, "shape", type(prediction).__name__)
            raise ValueError(
                f"SamplePool.update: argument 'prediction' must have shape {expected}; got {got}"
            )
        idx = self.slots(state, key)
        new = jax.lax.stop_gradient(prediction).astype(pool.dtype)
        return {**state, "pool": pool.at[idx].set(new)}
