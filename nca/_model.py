"""Neural cellular automata: the abstract NCA, the plain NCA, rollouts and seeds.

An NCA state is a field ``x`` of ``C`` channels on an ``H x W`` grid (``[C, H, W]``). One step
is

    dx      = f(P(x))                           (P: fixed depthwise perception, f: per-cell net)
    x'      = x + m ⊙ dx,   m[h, w] ~ Bernoulli(fire_rate)      (one draw per cell)
    x'      = x' ⊙ [alive(x) ∧ alive(x')]                       (optional alive masking)
    x_{t+1} = M(B(x'))                                          (boundary, then optional mask)

with ``alive(x)[h, w] = max_{3x3 around (h, w)} x[alive_channel] > alive_threshold``
(Mordvintsev et al. 2020). The last layer of ``f`` starts at zero, so an untrained NCA is
the identity map. Variants (`diffdyn.nca`) only change ``f``.

A mask ``M`` (`FixedMask` or `TrainableMask`) confines the cells to a shape, e.g. a
micropattern (Richardson et al. 2024, Differentiable-Patterning): a hard mask holds the outside
at 0, a soft mask holds the masked cells of its channels at fixed values. `boundary_regulariser`
is the penalty ``mean |x - M(x)|`` on the content a state has where the mask forbids it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from diffdyn.common import (
    PERCEPTION_FILTERS,
    AbstractBoundary,
    AbstractModel,
    FixedMask,
    Perception,
    SplitGrid,
    TrainableMask,
    make_boundary,
    pad,
)
from diffdyn.common._helpers import check_int

from ._layers import PointwiseMLP

__all__ = [
    "BOUNDARIES",
    "DEFAULT_FILTERS",
    "Cells",
    "AbstractNCA",
    "NCA",
    "boundary_regulariser",
    "rollout_batch",
    "seed_state",
]

BOUNDARIES = ("periodic", "dirichlet", "neumann")
"""Boundaries an NCA's `Cells` accept."""
DEFAULT_FILTERS = ("identity", "sobel_x", "sobel_y", "laplacian")
"""The perception of Mordvintsev et al. (2020): the cell itself, Sobel x and y, and the
Laplacian."""


_CELLS_ARGUMENTS = (
    "channels",
    "filters",
    "fire_rate",
    "alive_threshold",
    "alive_channel",
    "boundary",
    "boundary_value",
)


class Cells(AbstractModel):
    """What every NCA shares: perception, stochastic update, alive masking and boundary.

    An NCA takes its `Cells` as its first constructor argument (`NCA(Cells(16), ...)`) and
    saves it as a nested model; its only trainable leaves are the logits of a `TrainableMask`
    (the perception kernel and a `FixedMask` are fixed).

    Args:
        channels: the state channels $C$.
        filters: the perception filters (names from `PERCEPTION_FILTERS`), each applied to
            every channel.
        fire_rate: the probability $p$ that a cell applies its update in a step.
        alive_threshold: alive masking: a cell lives while the 3x3 maximum of channel
            ``alive_channel`` around it exceeds this value (``None``: no masking).
        alive_channel: the channel read by alive masking (3: alpha of RGBA targets).
        boundary: ``"periodic"``, ``"dirichlet"`` (every channel of the edge cells held at
            ``boundary_value``; ``0`` makes the outside empty) or ``"neumann"`` (zero flux),
            built by `make_boundary`; the perception pads with the boundary's padding.
        boundary_value: the value held by a Dirichlet boundary.
        mask: confines the cells to a shape: a `FixedMask` (``mode="hard"``: ``u ← m u``, the
            outside held at 0; ``mode="soft"``: ``u ← m v + (1 - m) u``, the masked cells held
            at ``values``) or a `TrainableMask` (``u ← sigmoid(logits) u``, its logits
            trained with the network; ``mask.coverage()`` is its area, for regularisation),
            applied after the boundary in every step; ``None``: no mask. Its mask is 2-D
            (``[H, W]``, or ``[K, H, W]`` for its ``K`` selected channels) and must match the
            grid of the states it steps. The perception keeps the boundary's padding (the
            mask's ``padding`` is not used). A model is saved with its mask: the file's header
            records the mask's kind, shapes and settings (a dict in ``hyperparameters()``,
            which this argument also accepts: it builds a mask of those shapes filled with
            zeros, whose arrays loading then reads from the file).
    """

    channels: int = eqx.field(static=True)
    filters: tuple[str, ...] = eqx.field(static=True)
    fire_rate: float = eqx.field(static=True)
    alive_threshold: float | None = eqx.field(static=True)
    alive_channel: int = eqx.field(static=True)
    boundary: str = eqx.field(static=True)
    boundary_value: float = eqx.field(static=True)
    perception: Perception
    bc: AbstractBoundary
    mask: FixedMask | TrainableMask | None

    def __init__(
        self,
        channels: int,
        filters: Sequence[str] = DEFAULT_FILTERS,
        fire_rate: float = 0.5,
        alive_threshold: float | None = None,
        alive_channel: int = 3,
        boundary: str = "periodic",
        boundary_value: float = 0.0,
        mask: FixedMask | TrainableMask | dict[str, Any] | None = None,
    ):
        channels = check_int(channels, "channels", 1)
        if isinstance(filters, str):
            raise ValueError(f"filters must be a sequence of names from {PERCEPTION_FILTERS}")
        filters = tuple(filters)
        if not 0.0 <= float(fire_rate) <= 1.0:
            raise ValueError(f"fire_rate must lie in [0, 1]; got {fire_rate!r}")
        if alive_threshold is not None:
            alive_threshold = float(alive_threshold)
            if not -channels <= alive_channel < channels:
                raise ValueError(
                    f"alive_channel must index one of the {channels} channels; got "
                    f"{alive_channel!r}"
                )
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {list(BOUNDARIES)}; got {boundary!r}")
        if boundary != "dirichlet" and float(boundary_value) != 0.0:
            raise ValueError(
                f"boundary_value is the value of a dirichlet boundary; got {boundary_value!r} "
                f"with boundary {boundary!r}"
            )
        kwargs = {"values": float(boundary_value)} if boundary == "dirichlet" else {}
        self.bc = make_boundary(boundary, **kwargs)
        self.perception = Perception(channels, filters, padding=self.bc.padding)
        self.channels = channels
        self.filters = filters
        self.fire_rate = float(fire_rate)
        self.alive_threshold = alive_threshold
        self.alive_channel = int(alive_channel) % channels
        self.boundary = boundary
        self.boundary_value = float(boundary_value)
        self.mask = _check_mask(_mask_from_spec(mask) if isinstance(mask, dict) else mask, channels)

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments. A mask is a dict of its kind (``"fixed"`` or
        ``"trainable"``), settings and array shapes (its arrays are leaves of the model and
        are saved with them); no mask is left out."""
        out = AbstractModel.hyperparameters(eqx.tree_at(lambda c: c.mask, self, None))
        if self.mask is None:
            del out["mask"]
        else:
            out["mask"] = _mask_spec(self.mask)
        return out

    def check(self, x: Any, name: str = "x") -> None:
        """Raise a ValueError unless ``x`` is a ``[channels, H, W]`` array on the mask's grid."""
        if not hasattr(x, "shape"):
            raise TypeError(f"{name} must be an array [C, H, W]; got {type(x).__name__}")
        if len(x.shape) != 3 or x.shape[0] != self.channels:
            hint = "; use rollout_batch or jax.vmap for batches" if len(x.shape) == 4 else ""
            raise ValueError(
                f"{name} must have shape [{self.channels}, H, W]; got {tuple(x.shape)}{hint}"
            )
        if self.mask is not None:
            grid = tuple(_mask_array(self.mask).shape[-2:])
            if tuple(x.shape[1:]) != grid:
                raise ValueError(
                    f"{name} must lie on the mask's grid {list(grid)} (shape "
                    f"[{self.channels}, {grid[0]}, {grid[1]}]); got shape {tuple(x.shape)}"
                )

    def alive(self, x: Float[Array, "C H W"]) -> Bool[Array, "1 H W"]:
        """``max_{3x3} x[alive_channel] > alive_threshold`` (all True without a threshold)."""
        if self.alive_threshold is None:
            return jnp.ones((1, *x.shape[1:]), bool)
        return self._alive_of(x[self.alive_channel])[None]

    def _alive_of(self, a: Float[Array, "H W"]) -> Bool[Array, "H W"]:
        p = pad(a[None], 1, self.bc.padding)
        pooled = jax.lax.reduce_window(p, -jnp.inf, jax.lax.max, (1, 3, 3), (1, 1, 1), "VALID")
        return pooled[0] > self.alive_threshold

    def apply(
        self,
        x: Float[Array, "C H W"],
        dx: Float[Array, "C H W"],
        key: PRNGKeyArray,
        *,
        split: SplitGrid | None = None,
    ) -> Float[Array, "C H W"]:
        """``B(alive-mask(x + m ⊙ dx))`` with one Bernoulli(fire_rate) draw ``m`` per cell
        (drawn for the whole grid, so a split grid draws the same ``m``)."""
        fire = jax.random.bernoulli(key, self.fire_rate, (1, *x.shape[1:]))
        new = x + jnp.where(fire, dx, jnp.zeros((), dx.dtype))
        if self.alive_threshold is not None:

            def alive(x: Array, cells: Cells) -> Array:
                return cells.alive(x)

            alive = alive if split is None else split.map(alive)
            new = new * (alive(x, self) & alive(new, self)).astype(x.dtype)
        new = self.bc(new)
        return new if self.mask is None else self.mask(new)

    def apply_channels_last(
        self, x: Float[Array, "H W C"], dx: Float[Array, "H W C"], key: PRNGKeyArray
    ) -> Float[Array, "H W C"]:
        """`apply` on channels-last fields, with the same random draws (the same result)."""
        fire = jax.random.bernoulli(key, self.fire_rate, (1, *x.shape[:2]))[0, ..., None]
        new = x + jnp.where(fire, dx, jnp.zeros((), dx.dtype))
        if self.alive_threshold is not None:
            c = self.alive_channel
            alive = self._alive_of(x[..., c]) & self._alive_of(new[..., c])
            new = new * alive[..., None].astype(x.dtype)
        if self.boundary == "periodic" and self.mask is None:  # nothing to impose
            return new
        new = jnp.moveaxis(new, -1, 0)
        new = self.bc(new)  # the same elementwise operations as `apply`: the same result
        if self.mask is not None:
            new = self.mask(new)
        return jnp.moveaxis(new, 0, -1)

    def check_split(self, split: SplitGrid | None, x: Any) -> None:
        """Refuse a split of a grid that is not periodic, or of a field too small for it."""
        if split is None:
            return
        if not isinstance(split, SplitGrid):
            raise TypeError(f"split must be a SplitGrid; got {type(split).__name__}")
        if self.boundary != "periodic":
            raise ValueError(
                f"a split grid needs periodic rows; this NCA's boundary is {self.boundary!r}"
            )
        split.check(x)


def _mask_array(mask: FixedMask | TrainableMask) -> Array:
    return mask.mask if isinstance(mask, FixedMask) else mask.logits


def _check_mask(mask: Any, channels: int) -> FixedMask | TrainableMask | None:
    """``mask`` if it is None or a 2-D `FixedMask` / `TrainableMask` fitting ``channels``."""
    if mask is None:
        return None
    if not isinstance(mask, (FixedMask, TrainableMask)):
        raise TypeError(
            f"mask must be a FixedMask, a TrainableMask or None; got {type(mask).__name__}"
        )
    if mask.channels is None:
        k = channels
    else:
        bad = [c for c in mask.channels if not -channels <= c < channels]
        if bad or len({c % channels for c in mask.channels}) != len(mask.channels):
            raise ValueError(
                f"mask.channels must name distinct channels of the {channels} state channels; "
                f"got {list(mask.channels)}"
            )
        k = len(mask.channels)
    array = _mask_array(mask)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[0] != k):
        raise ValueError(
            f"mask: its mask must have shape [H, W] or [{k}, H, W] (one per selected channel); "
            f"got shape {tuple(array.shape)}"
        )
    values = getattr(mask, "values", None)
    if values is not None and not (
        values.ndim == 0
        or tuple(values.shape) == (k,)
        or tuple(values.shape) == (k, *array.shape[-2:])
    ):
        raise ValueError(
            f"mask: its values must be a scalar, [{k}] or [{k}, {array.shape[-2]}, "
            f"{array.shape[-1]}]; got shape {tuple(values.shape)}"
        )
    return mask


def _mask_spec(mask: FixedMask | TrainableMask) -> dict[str, Any]:
    """The JSON description of a mask: its kind, settings and array shapes."""
    channels = None if mask.channels is None else list(mask.channels)
    spec = {"shape": list(_mask_array(mask).shape), "channels": channels, "padding": mask.padding}
    if isinstance(mask, TrainableMask):
        return {"kind": "trainable", **spec}
    values = None if mask.values is None else list(mask.values.shape)
    return {"kind": "fixed", "mode": mask.mode, "values_shape": values, **spec}


def _mask_from_spec(spec: dict[str, Any]) -> FixedMask | TrainableMask:
    """A mask of the kind, settings and shapes `_mask_spec` records, its arrays zero."""
    kinds = ("fixed", "trainable")
    if spec.get("kind") not in kinds or not isinstance(spec.get("shape"), (list, tuple)):
        raise ValueError(
            f"mask: a dict describes a mask as hyperparameters() writes it (kind one of "
            f"{list(kinds)}, shape, channels, padding); got {spec!r}"
        )
    zeros = np.zeros(tuple(spec["shape"]))
    channels, padding = spec.get("channels"), spec.get("padding", "zeros")
    if spec["kind"] == "trainable":
        return TrainableMask(zeros, channels=channels, padding=padding)
    shape = spec.get("values_shape")
    values = None if shape is None else np.zeros(tuple(shape))
    return FixedMask(zeros, spec.get("mode", "hard"), channels, values, padding)


def _check_cells(cells: Any, owner: str) -> Cells:
    """``cells`` if it is a `Cells`, else a TypeError that shows how to make one."""
    if not isinstance(cells, Cells):
        hint = f" (e.g. {owner}(Cells({cells}), ...))" if isinstance(cells, int) else ""
        raise TypeError(
            f"{owner}: argument 'cells' must be a Cells{hint}; got {type(cells).__name__}"
        )
    return cells


class AbstractNCA(AbstractModel):
    """A neural cellular automaton: ``step(x, key)`` and ``rollout(x0, steps, key)``.

    Subclasses hold ``cells`` (`Cells`, their first constructor argument) and give
    ``increment(x) = f(P(x))``, the deterministic proposal of every cell. The shared
    hyperparameters (``channels``, ``filters``, ``fire_rate``, ``alive_threshold``,
    ``alive_channel``, ``boundary``, ``boundary_value``) are read from ``cells``.
    """

    cells: eqx.AbstractVar[Cells]

    @abc.abstractmethod
    def increment(self, x: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        """The proposed update ``dx = f(P(x))`` of every cell."""

    def increment_channels_last(self, x: Float[Array, "H W C"]) -> Float[Array, "H W C"]:
        """`increment` on a channels-last field ``[H, W, C]``.

        The default transposes around `increment`. A variant that overrides it with a
        channels-last computation (`NCA` does) has `rollout` keep its state channels-last
        between steps: on a CPU its per-cell products then run with cells as rows, which is
        faster forwards and backwards; the results are the same up to rounding.
        """
        return jnp.moveaxis(self.increment(jnp.moveaxis(x, -1, 0)), 0, -1)

    def _rolls_channels_last(self) -> bool:
        return type(self).increment_channels_last is not AbstractNCA.increment_channels_last

    def _loop_step(self, x: Array, key: PRNGKeyArray, last: bool) -> Array:
        """One step of a rollout loop: on ``[H, W, C]`` states when ``last`` (a variant with
        a channels-last increment keeps that layout between steps), else `step`."""
        if last:
            return self.cells.apply_channels_last(x, self.increment_channels_last(x), key)
        return self.step(x, key)

    @classmethod
    def upgrade_hyperparameters(cls, hyperparameters: dict[str, Any], *, version: str) -> dict:
        """Files of diffdyn 0.1.0 list the seven `Cells` arguments among the model's own; they
        become one ``cells`` argument."""
        if "cells" in hyperparameters:
            return hyperparameters
        rest = dict(hyperparameters)
        cells = Cells(**{name: rest.pop(name) for name in _CELLS_ARGUMENTS if name in rest})
        return {"cells": cells, **rest}

    # -- hyperparameters shared by every variant (stored once, in ``cells``)
    @property
    def channels(self) -> int:
        return self.cells.channels

    @property
    def filters(self) -> tuple[str, ...]:
        return self.cells.filters

    @property
    def fire_rate(self) -> float:
        return self.cells.fire_rate

    @property
    def alive_threshold(self) -> float | None:
        return self.cells.alive_threshold

    @property
    def alive_channel(self) -> int:
        return self.cells.alive_channel

    @property
    def boundary(self) -> str:
        return self.cells.boundary

    @property
    def boundary_value(self) -> float:
        return self.cells.boundary_value

    @property
    def perception(self) -> Perception:
        return self.cells.perception

    # -- dynamics
    def step(
        self, x: Float[ArrayLike, "C H W"], key: PRNGKeyArray, *, split: SplitGrid | None = None
    ) -> Float[Array, "C H W"]:
        """One stochastic NCA step ``x_t -> x_{t+1}`` (see the module docstring).

        ``split``: compute on a grid split across devices (`SplitGrid`, halo >= 1; periodic
        boundaries only): the perception and alive masking run band by band, the rest on
        the split arrays; the result equals the unsplit step.
        """
        self.cells.check(x)
        self.cells.check_split(split, x)
        x = jnp.asarray(x)
        if split is None:
            dx = self.increment(x)
        else:
            dx = split.map(lambda x, model: model.increment(x))(x, self)
        return self.cells.apply(x, dx, key, split=split)

    def __call__(self, x: Float[ArrayLike, "C H W"], key: PRNGKeyArray) -> Float[Array, "C H W"]:
        """Same as `step`."""
        return self.step(x, key)

    def rollout(
        self,
        x0: Float[ArrayLike, "C H W"],
        steps: int,
        key: PRNGKeyArray,
        *,
        every: int | None = None,
        checkpoint: bool = False,
        split: SplitGrid | None = None,
    ) -> Float[Array, "..."]:
        """Iterate ``x_{t+1} = step(x_t, k_t)``, ``(k_0, ..., k_{n-1}) = split(key, steps)``.

        Returns ``x_steps`` (``[C, H, W]``), or with ``every = e`` (dividing ``steps``) the
        frames ``[x_0, x_e, x_2e, ...]`` (``[steps // e + 1, C, H, W]``). The loop is a
        ``jax.lax.scan``; ``checkpoint=True`` wraps the step in ``jax.checkpoint`` so that
        reverse-mode memory does not grow with the inner activations of every step.
        ``split`` holds the grid split across devices (see `step`).
        """
        self.cells.check(x0, "x0")
        self.cells.check_split(split, x0)
        steps = check_int(steps, "steps", 0)
        x0 = jnp.asarray(x0) if split is None else split.place(x0)
        if every is not None:
            every = check_int(every, "every", 1)
            if steps % every:
                raise ValueError(f"every must divide steps = {steps}; got every = {every}")
        if steps == 0:
            return x0 if every is None else x0[None]
        # a variant with a channels-last increment keeps the state [H, W, C] between steps
        last = split is None and self._rolls_channels_last()

        def body(x: Array, k: PRNGKeyArray) -> tuple[Array, None]:
            if split is not None:
                return self.step(x, k, split=split), None
            return self._loop_step(x, k, last), None

        if checkpoint:
            body = jax.checkpoint(body)
        keys = jax.random.split(key, steps)
        start = jnp.moveaxis(x0, 0, -1) if last else x0
        if every is None:
            end = jax.lax.scan(body, start, keys)[0]
            return jnp.moveaxis(end, -1, 0) if last else end

        def frame(x: Array, ks: PRNGKeyArray) -> tuple[Array, Array]:
            x = jax.lax.scan(body, x, ks)[0]
            return x, x

        # raw uint32 keys (jax.random.PRNGKey) carry a trailing axis of 2
        _, frames = jax.lax.scan(frame, start, keys.reshape(steps // every, every, *keys.shape[1:]))
        if last:
            frames = jnp.moveaxis(frames, -1, 1)
        return jnp.concatenate([x0[None], frames])


def boundary_regulariser(
    model_or_cells: AbstractNCA | Cells, x: Float[ArrayLike, "*B C H W"]
) -> Float[Array, ""]:
    r"""The content of ``x`` where the mask forbids it: $\frac{1}{N} \sum |x - M(x)|$.

    $M$ is the mask of the cells (``model.cells.mask``), $N$ the number of entries of ``x``
    (a state ``[C, H, W]`` or a batch ``[B, C, H, W]``). It is 0 for every state the masked
    dynamics can reach (for a hard mask: zero outside the mask) and grows linearly with the
    forbidden content; for a hard mask $m$ on every channel it is
    $\frac{1}{N} \sum (1 - m) |x|$. The area of a `TrainableMask`, for a penalty of its own,
    is ``model.cells.mask.coverage()``. Cells without a mask are refused.
    """
    cells = model_or_cells.cells if isinstance(model_or_cells, AbstractNCA) else model_or_cells
    if not isinstance(cells, Cells):
        raise TypeError(
            f"model_or_cells must be an NCA or its Cells; got {type(model_or_cells).__name__}"
        )
    if cells.mask is None:
        raise ValueError("boundary_regulariser needs cells with a mask; these cells have none")
    if not hasattr(x, "shape") or len(x.shape) not in (3, 4):
        raise ValueError(
            f"x must have shape [C, H, W] or [B, C, H, W]; got "
            f"{getattr(x, 'shape', type(x).__name__)}"
        )
    cells.check(x[0] if len(x.shape) == 4 else x)
    x = jnp.asarray(x)
    masked = jax.vmap(cells.mask)(x) if x.ndim == 4 else cells.mask(x)
    return jnp.mean(jnp.abs(x - masked))


def rollout_batch(
    model: AbstractNCA,
    x0: Float[ArrayLike, "B C H W"],
    steps: int,
    key: PRNGKeyArray,
    *,
    every: int | None = None,
    checkpoint: bool = False,
) -> Float[Array, "B ..."]:
    """`AbstractNCA.rollout` of every state of a batch (``jax.vmap``, one key each)."""
    if not hasattr(x0, "shape") or len(x0.shape) != 4:
        raise ValueError(
            f"x0 must have shape [B, C, H, W]; got {getattr(x0, 'shape', type(x0).__name__)}"
        )
    keys = jax.random.split(key, x0.shape[0])

    def one(x: Array, k: PRNGKeyArray) -> Array:
        return model.rollout(x, steps, k, every=every, checkpoint=checkpoint)

    return jax.vmap(one)(jnp.asarray(x0), keys)


def seed_state(
    channels: int, height: int, width: int, *, first: int = 3, dtype: Any = jnp.float32
) -> Float[Array, "C H W"]:
    """The single-seed state: zeros, with channels ``first..C-1`` set to 1 at the centre cell.

    With RGBA targets (``first=3``) this seed state is one alive cell with no colour.
    """
    check_int(channels, "channels", 1)
    check_int(height, "height", 1)
    check_int(width, "width", 1)
    if not 0 <= first < channels:
        raise ValueError(f"first must lie in [0, {channels}); got {first!r}")
    x = jnp.zeros((channels, height, width), dtype)
    return x.at[first:, height // 2, width // 2].set(1.0)


class NCA(AbstractNCA):
    """The growing NCA: ``f`` = 1x1 conv (``hidden``) -> ``activation`` -> zero 1x1 conv.

    ``P`` stacks the ``cells.filters`` for every channel, so ``f`` sees
    ``len(filters) * channels`` features per cell.

    Args:
        cells: the shared cell settings (channels, perception, fire rate, alive masking,
            boundary).
        hidden: the hidden width of ``f``.
        activation: the hidden activation (a name from `ACTIVATIONS`).
        key: initialises the first layer.
    """

    cells: Cells
    net: PointwiseMLP
    hidden: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self, cells: Cells, hidden: int = 128, activation: str = "relu", *, key: PRNGKeyArray
    ):
        self.cells = _check_cells(cells, "NCA")
        self.hidden = check_int(hidden, "hidden", 1)
        self.activation = activation
        features = self.cells.perception.out_channels
        self.net = PointwiseMLP(features, hidden, cells.channels, activation=activation, key=key)

    def increment(self, x: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        return self.net(self.perception(x))

    def increment_channels_last(self, x: Float[Array, "H W C"]) -> Float[Array, "H W C"]:
        return self.net.channels_last(self.perception.channels_last(x))
