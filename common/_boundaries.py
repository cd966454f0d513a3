"""Boundary conditions and masks applied to a state ``[C, H, W]`` (or ``[C, X]``).

A boundary is an `AbstractBoundary`: calling it on a state returns the state with the
condition imposed (typically after every update step), and its ``padding`` attribute names the
padding mode (see `diffdyn.common`) that stencils should use next to it, so that
``laplacian(u, padding=bc.padding)`` and ``bc(u)`` describe the same physics.

Grids are cell-centred: the *edge cells* are the outermost ring of the array (rows 0 and H-1,
columns 0 and W-1; entries 0 and X-1 in 1-D). Arrays held by boundaries that are not meant to
be trained (Dirichlet values, fixed masks) are `fixed_field`s; the logits of
`TrainableMask` are trainable.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._model import fixed_field
from ._operators import PADDING_MODES

__all__ = [
    "AbstractBoundary",
    "Periodic",
    "Dirichlet",
    "Neumann",
    "FixedMask",
    "TrainableMask",
    "make_boundary",
    "BOUNDARIES",
]


# --------------------------------------------------------------------------------------------
# validation helpers (plain Python, before tracing)


def _check_state(state: Any, name: str = "state") -> None:
    if not hasattr(state, "ndim") or not hasattr(state, "shape"):
        raise TypeError(f"{name} must be an array; got {type(state).__name__}")
    if state.ndim not in (2, 3):
        hint = "; use jax.vmap over the batch axis" if state.ndim == 4 else ""
        raise ValueError(
            f"{name} must have shape [C, H, W] (ndim 3) or [C, X] (ndim 2); got shape "
            f"{tuple(state.shape)} (ndim {state.ndim}){hint}"
        )


def _check_padding(padding: Any) -> str:
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {list(PADDING_MODES)}; got {padding!r}")
    return padding


def _normalise_channels(channels: Any) -> tuple[int, ...] | None:
    if channels is None:
        return None
    if isinstance(channels, (int, np.integer)) and not isinstance(channels, bool):
        channels = (channels,)
    if not isinstance(channels, Sequence) or isinstance(channels, str):
        raise ValueError(f"channels must be None, an int or a sequence of ints; got {channels!r}")
    out = []
    for c in channels:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
            raise ValueError(f"channels must contain ints; got {channels!r}")
        out.append(int(c))
    if not out:
        raise ValueError("channels must name at least one channel (or be None for all)")
    return tuple(out)


def _resolve_channels(channels: tuple[int, ...] | None, n: int) -> np.ndarray:
    """Channel indices in ``[0, n)``; negative indices count from the end, as in numpy."""
    if channels is None:
        return np.arange(n)
    idx = []
    for c in channels:
        if not -n <= c < n:
            raise ValueError(
                f"channels: index {c} is out of range for a state with {n} channels; got "
                f"channels={list(channels)}"
            )
        idx.append(c % n)
    if len(set(idx)) != len(idx):
        raise ValueError(f"channels must not name a channel twice; got {list(channels)}")
    return np.asarray(idx)


def _edge_mask(spatial: tuple[int, ...]) -> np.ndarray:
    edge = np.zeros(spatial, dtype=bool)
    for axis in range(len(spatial)):
        index: list[Any] = [slice(None)] * len(spatial)
        index[axis] = 0
        edge[tuple(index)] = True
        index[axis] = -1
        edge[tuple(index)] = True
    return edge


def _channel_mask(state: Array, mask: Array, idx: np.ndarray, name: str) -> Array:
    """Bring ``mask`` (``[*spatial]`` or ``[K, *spatial]``) to ``[K, *spatial]`` for ``idx``."""
    spatial = tuple(state.shape[1:])
    if mask.ndim == len(spatial) and tuple(mask.shape) == spatial:
        return mask[None]
    if mask.ndim == len(spatial) + 1 and tuple(mask.shape) == (len(idx), *spatial):
        return mask
    raise ValueError(
        f"{name} must have shape {list(spatial)} or {[len(idx), *spatial]} (one per selected "
        f"channel) for a state of shape {tuple(state.shape)}; got shape {tuple(mask.shape)}"
    )


def _select(state: Array, idx: np.ndarray, channels: tuple[int, ...] | None) -> Array:
    return state if channels is None else state[idx]


def _put(state: Array, idx: np.ndarray, channels: tuple[int, ...] | None, new: Array) -> Array:
    return new if channels is None else state.at[idx].set(new)


# --------------------------------------------------------------------------------------------
# boundaries


class AbstractBoundary(eqx.Module):
    """A boundary condition: ``bc(state) -> state`` plus the ``padding`` stencils should use.

    Subclasses give ``padding`` (one of `PADDING_MODES`) and
    ``__call__``, which must keep the shape and dtype of the state.
    """

    padding: eqx.AbstractVar[str]

    @abc.abstractmethod
    def __call__(self, state: Float[Array, "C ..."]) -> Float[Array, "C ..."]:
        """Impose the condition on ``state`` (``[C, H, W]`` or ``[C, X]``)."""


class Periodic(AbstractBoundary):
    """Periodic domain: the state is unchanged; stencils wrap around (``padding="periodic"``)."""

    padding: str = eqx.field(static=True, default="periodic", init=False)

    def __call__(self, state: Float[ArrayLike, "C ..."]) -> Float[Array, "C ..."]:
        _check_state(state)
        return jnp.asarray(state)


class Dirichlet(AbstractBoundary):
    """Fixed values on the edge cells: ``u = v_c`` on the outer ring of each selected channel.

    ``values`` is a scalar (all selected channels) or one value per selected channel;
    ``channels`` selects channels (``None``: all; negative indices count from the end). Other
    channels and all interior cells are untouched.

    Padding is ``"replicate"``: the ghost cell repeats the edge cell, i.e. the prescribed wall
    value once the condition is imposed, so a stencil at the edge sees the wall and nothing
    artificial beyond it. (``"zeros"`` would pull the edge towards 0, which is only consistent
    for ``v = 0``.) Interior cells never read ghost cells, and the edge cells are overwritten
    by this boundary, so updates of the interior do not depend on this choice.
    """

    values: Float[Array, "*K"] = fixed_field()
    channels: tuple[int, ...] | None = eqx.field(static=True)
    padding: str = eqx.field(static=True, default="replicate", init=False)

    def __init__(
        self, values: float | Sequence[float] | ArrayLike = 0.0, channels: Any = None
    ) -> None:
        try:
            v = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):  # tracers raise a TypeError subclass
            raise ValueError(
                f"values must be a number or a sequence of numbers; got {values!r}"
            ) from None
        if v.ndim > 1:
            raise ValueError(
                f"values must be a scalar or one value per channel (ndim 0 or 1); got shape "
                f"{v.shape}"
            )
        self.channels = _normalise_channels(channels)
        if v.ndim == 1 and self.channels is not None and v.shape[0] != len(self.channels):
            raise ValueError(
                f"values must have one entry per selected channel ({len(self.channels)}, from "
                f"channels={list(self.channels)}); got {v.shape[0]} values"
            )
        self.values = jnp.asarray(v, dtype=float)  # float: the default float dtype

    def __call__(self, state: Float[ArrayLike, "C ..."]) -> Float[Array, "C ..."]:
        _check_state(state)
        state = jnp.asarray(state)
        n = state.shape[0]
        idx = _resolve_channels(self.channels, n)
        if self.values.ndim == 1 and self.values.shape[0] != len(idx):
            raise ValueError(
                f"values has {self.values.shape[0]} entries but the boundary applies to "
                f"{len(idx)} channels of a state of shape {tuple(state.shape)}"
            )
        values = jax.lax.stop_gradient(self.values)  # fixed: no gradient under any loop
        full = jnp.zeros((n,), state.dtype).at[idx].set(values.astype(state.dtype))
        chosen = np.zeros((n,), dtype=bool)
        chosen[idx] = True
        spatial = state.shape[1:]
        where = chosen.reshape((n,) + (1,) * len(spatial)) & _edge_mask(tuple(spatial))[None]
        return jnp.where(where, full.reshape((n,) + (1,) * len(spatial)), state)


class Neumann(AbstractBoundary):
    """Zero-flux walls: each edge cell copies its interior neighbour, so ∂u/∂n = 0 there.

    Rows are set first, then columns, so a corner copies its diagonal interior neighbour
    ``u[1, 1]`` and has zero difference to both neighbours. Spatial sizes must be at least 3.

    Padding is ``"replicate"``: the ghost cell equals the edge cell, so the difference across
    the outer face of every edge cell is 0 and no flux crosses the wall. This is the
    cell-centred finite-volume Neumann condition: with it the 5-point Laplacian sums to zero
    over the grid (mass is conserved) even where this boundary is not re-applied, e.g. inside
    the stages of an ODE solver. (``"reflect"`` instead puts the wall *at* the edge-cell centre:
    the central gradient there vanishes, but the plain sum of the Laplacian does not.)
    """

    padding: str = eqx.field(static=True, default="replicate", init=False)

    def __call__(self, state: Float[ArrayLike, "C ..."]) -> Float[Array, "C ..."]:
        _check_state(state)
        if min(state.shape[1:]) < 3:
            raise ValueError(
                f"state must have at least 3 cells along every spatial axis for Neumann "
                f"(an edge and an interior cell on each side); got shape {tuple(state.shape)}"
            )
        state = jnp.asarray(state)
        for axis in range(1, state.ndim):
            n = state.shape[axis]
            state = jnp.concatenate(
                [
                    jax.lax.slice_in_dim(state, 1, 2, axis=axis),
                    jax.lax.slice_in_dim(state, 1, n - 1, axis=axis),
                    jax.lax.slice_in_dim(state, n - 2, n - 1, axis=axis),
                ],
                axis=axis,
            )
        return state


class FixedMask(AbstractBoundary):
    """A fixed spatial mask ``m`` (``[H, W]``, shared, or ``[K, H, W]``, one per channel).

    - ``mode="hard"``: ``u_c ← m · u_c`` for the selected channels (zero outside the domain);
    - ``mode="soft"``: ``u_c ← m · v_c + (1 - m) · u_c``: where ``m = 1`` the selected channels
      are overwritten by ``values`` (scalar, one per channel ``[K]``, or a field ``[K, H, W]``;
      default 0), where ``m = 0`` they are untouched, fractional masks blend.

    ``channels`` selects channels (``None``: all). ``padding`` (default ``"zeros"``: the
    outside of the grid counts as outside the domain) is what stencils should use.
    Works the same on 1-D states ``[C, X]`` with masks ``[X]`` or ``[K, X]``.
    """

    mask: Float[Array, "*K H W"] = fixed_field()
    values: Float[Array, "..."] | None = fixed_field()
    mode: str = eqx.field(static=True)
    channels: tuple[int, ...] | None = eqx.field(static=True)
    padding: str = eqx.field(static=True)

    def __init__(
        self,
        mask: Float[ArrayLike, "*K H W"],
        mode: Literal["hard", "soft"] = "hard",
        channels: Any = None,
        values: float | Sequence[float] | ArrayLike | None = None,
        padding: str = "zeros",
    ) -> None:
        if not hasattr(mask, "ndim"):
            mask = np.asarray(mask)
        if mask.ndim not in (1, 2, 3):
            raise ValueError(
                f"mask must have shape [H, W] or [K, H, W] (or [X] / [K, X]); got shape "
                f"{tuple(mask.shape)}"
            )
        if mode not in ("hard", "soft"):
            raise ValueError(f"mode must be one of ['hard', 'soft']; got {mode!r}")
        if mode == "hard" and values is not None:
            raise ValueError(
                "values is only used with mode='soft' (a hard mask multiplies the state); "
                f"got values={values!r}"
            )
        self.mask = jnp.asarray(mask, dtype=float)
        self.values = None if values is None else jnp.asarray(values, dtype=float)
        self.mode = mode
        self.channels = _normalise_channels(channels)
        self.padding = _check_padding(padding)

    def __call__(self, state: Float[ArrayLike, "C ..."]) -> Float[Array, "C ..."]:
        _check_state(state)
        state = jnp.asarray(state)
        idx = _resolve_channels(self.channels, state.shape[0])
        mask = jax.lax.stop_gradient(self.mask)  # fixed: no gradient under any loop
        m = _channel_mask(state, mask, idx, "mask").astype(state.dtype)
        u = _select(state, idx, self.channels)
        if self.mode == "hard":
            return _put(state, idx, self.channels, m * u)
        v = self._values(state, idx).astype(state.dtype)
        return _put(state, idx, self.channels, m * v + (1 - m) * u)

    def _values(self, state: Array, idx: np.ndarray) -> Array:
        spatial = tuple(state.shape[1:])
        v = None if self.values is None else jax.lax.stop_gradient(self.values)
        if v is None:
            return jnp.zeros((), state.dtype)
        if v.ndim == 0:
            return v
        if v.ndim == 1 and v.shape[0] == len(idx):
            return v.reshape((len(idx),) + (1,) * len(spatial))
        if v.ndim == len(spatial) + 1 and tuple(v.shape) == (len(idx), *spatial):
            return v
        raise ValueError(
            f"values must be a scalar, one value per selected channel ([{len(idx)}]) or a field "
            f"{[len(idx), *spatial]} for a state of shape {tuple(state.shape)}; got shape "
            f"{tuple(v.shape)}"
        )


class TrainableMask(AbstractBoundary):
    """A learned hard mask: ``u_c ← sigmoid(logits) · u_c`` for the selected channels.

    ``logits`` (``[H, W]`` shared or ``[K, H, W]`` per channel) is a trainable leaf;
    ``sigmoid`` keeps the mask in (0, 1). ``coverage()`` is ``Σ sigmoid(logits)``, the area of
    the mask, for regularisation. ``padding`` defaults to ``"zeros"``.
    """

    logits: Float[Array, "*K H W"]
    channels: tuple[int, ...] | None = eqx.field(static=True)
    padding: str = eqx.field(static=True)

    def __init__(
        self,
        logits: Float[ArrayLike, "*K H W"],
        channels: Any = None,
        padding: str = "zeros",
    ) -> None:
        if not hasattr(logits, "ndim"):
            logits = np.asarray(logits)
        if logits.ndim not in (1, 2, 3):
            raise ValueError(
                f"logits must have shape [H, W] or [K, H, W] (or [X] / [K, X]); got shape "
                f"{tuple(logits.shape)}"
            )
        self.logits = jnp.asarray(logits, dtype=float)
        self.channels = _normalise_channels(channels)
        self.padding = _check_padding(padding)

    @property
    def mask(self) -> Float[Array, "*K H W"]:
        """``sigmoid(logits)``."""
        return jax.nn.sigmoid(self.logits)

    def coverage(self) -> Float[Array, ""]:
        """``Σ sigmoid(logits)``."""
        return jnp.sum(self.mask)

    def __call__(self, state: Float[ArrayLike, "C ..."]) -> Float[Array, "C ..."]:
        _check_state(state)
        state = jnp.asarray(state)
        idx = _resolve_channels(self.channels, state.shape[0])
        m = _channel_mask(state, self.mask, idx, "logits").astype(state.dtype)
        return _put(state, idx, self.channels, m * _select(state, idx, self.channels))


BOUNDARIES: dict[str, type[AbstractBoundary]] = {
    "periodic": Periodic,
    "dirichlet": Dirichlet,
    "neumann": Neumann,
}
"""Boundary classes by name, for `make_boundary`."""


def make_boundary(name: str, **kwargs: Any) -> AbstractBoundary:
    """Build a boundary from a config name: ``"periodic"``, ``"dirichlet"`` or ``"neumann"``.

    Keyword arguments go to the constructor, e.g. ``make_boundary("dirichlet", values=1.0)``.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in BOUNDARIES:
        raise ValueError(f"name must be one of {list(BOUNDARIES)}; got {name!r}")
    try:
        return BOUNDARIES[key](**kwargs)
    except TypeError as e:
        raise ValueError(f"make_boundary({name!r}, ...): bad keyword arguments: {e}") from None
