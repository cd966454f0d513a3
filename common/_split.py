r"""Grids larger than one device: a field split along its rows, with halo exchange.

A `SplitGrid` cuts fields ``[..., H, W]`` into ``P`` bands of ``H / P`` rows, one per device
(``jax.sharding``: a one-axis mesh named ``"space"``), so that a grid too big for one device's
memory is held by several. Everything that acts cell by cell runs on the split arrays as it
is. Stencils (the finite differences of `diffdyn.common`, perception, alive masking) need the
rows of the neighbouring bands: `SplitGrid.map` runs a stencil function under ``shard_map``
on each band extended by ``halo`` rows from each neighbour (exchanged with
``jax.lax.ppermute``, periodically), and keeps the band's own rows of the result.

For a function whose stencil reaches at most ``halo`` rows (1 for 3x3 and 5-point stencils;
the sum of the radii for stencils applied one after another), every kept row sees exactly
the rows it would see on one device, so the split computation equals the unsplit one, and
so do its gradients (``ppermute`` is its own transpose, with the permutation reversed).
Rows are periodic across the bands: grids split this way must have periodic boundaries
along the split axis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._helpers import check_int

__all__ = ["SPACE_AXIS", "SplitGrid"]

SPACE_AXIS = "space"
"""Name of the device-mesh axis along which a `SplitGrid` cuts the rows of a field."""


@dataclasses.dataclass(frozen=True)
class SplitGrid:
    """Fields ``[..., H, W]`` split into equal bands of rows across devices.

    Attributes:
        mesh: a one-axis mesh named ``"space"`` (see `SplitGrid.over`).
        halo: rows exchanged with each neighbour band before a stencil function runs; at
            least the stencil's reach (see the module docstring).
    """

    mesh: Mesh
    halo: int

    def __post_init__(self) -> None:
        if tuple(self.mesh.axis_names) != (SPACE_AXIS,):
            raise ValueError(
                f"a SplitGrid needs a one-axis mesh named {SPACE_AXIS!r}; got axes "
                f"{tuple(self.mesh.axis_names)} (use SplitGrid.over)"
            )
        check_int(self.halo, "halo", 1)

    @classmethod
    def over(cls, devices: Any = None, *, halo: int) -> SplitGrid:
        """A split over ``devices`` (default: every device) with ``halo`` rows of overlap."""
        devices = jax.devices() if devices is None else list(devices)
        if not devices:
            raise ValueError("devices must name at least one device")
        return cls(Mesh(np.asarray(devices), (SPACE_AXIS,)), halo)

    @property
    def parts(self) -> int:
        """The number of bands (devices)."""
        return self.mesh.size

    def sharding(self, ndim: int) -> NamedSharding:
        """The sharding of an ``ndim``-dimensional field ``[..., H, W]``: rows split."""
        if ndim < 2:
            raise ValueError(f"a split field has at least the axes [H, W]; got {ndim} axes")
        return NamedSharding(self.mesh, self._spec(ndim))

    def _spec(self, ndim: int) -> PartitionSpec:
        return PartitionSpec(*([None] * (ndim - 2)), SPACE_AXIS, None)

    def check(self, x: Any, name: str = "x") -> None:
        """Refuse a field whose rows do not split into bands of at least ``halo`` rows."""
        shape = tuple(np.shape(x))
        if len(shape) < 2:
            raise ValueError(f"{name} must be a field [..., H, W]; got shape {shape}")
        rows = shape[-2]
        if rows % self.parts or rows // self.parts < self.halo:
            raise ValueError(
                f"{name} has {rows} rows, which do not split into {self.parts} bands of at "
                f"least halo = {self.halo} rows each"
            )

    def place(self, x: Any) -> jax.Array:
        """``x`` on the mesh, its rows split into bands (checked with `check`)."""
        self.check(x)
        return jax.device_put(jnp.asarray(x), self.sharding(np.ndim(x)))

    def map(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn(x, *rest) -> y`` computed band by band: ``x`` and every array of ``y`` are
        fields ``[..., H, W]`` with the same rows; ``rest`` (numbers, arrays, modules) is the
        same for every band. ``fn`` must act on rows only through stencils of reach at most
        ``halo`` (and pad periodically along the rows, as on one device)."""
        halo, parts = self.halo, self.parts
        forward = [(i, (i + 1) % parts) for i in range(parts)]
        backward = [(i, (i - 1) % parts) for i in range(parts)]

        def band(x: jax.Array, dynamic: Any, static: Any) -> Any:
            above = jax.lax.ppermute(x[..., -halo:, :], SPACE_AXIS, forward)
            below = jax.lax.ppermute(x[..., :halo, :], SPACE_AXIS, backward)
            extended = jnp.concatenate([above, x, below], axis=-2)
            out = fn(extended, *eqx.combine(dynamic, static))
            return jax.tree_util.tree_map(lambda y: y[..., halo:-halo, :], out)

        def mapped(x: Any, *rest: Any) -> Any:
            x = jnp.asarray(x)
            self.check(x)
            dynamic, static = eqx.partition(rest, eqx.is_array)
            out_shape = jax.eval_shape(lambda x, d: fn(x, *eqx.combine(d, static)), x, dynamic)
            for leaf in jax.tree_util.tree_leaves(out_shape):
                if leaf.ndim < 2 or leaf.shape[-2] != x.shape[-2]:
                    raise ValueError(
                        f"a split function must return fields with the rows of its input "
                        f"({x.shape[-2]}); got shape {leaf.shape}"
                    )
            out_specs = jax.tree_util.tree_map(lambda s: self._spec(len(s.shape)), out_shape)
            replicated = jax.tree_util.tree_map(lambda _: PartitionSpec(), dynamic)
            run = jax.shard_map(
                lambda x, d: band(x, d, static),
                mesh=self.mesh,
                in_specs=(self._spec(x.ndim), replicated),
                out_specs=out_specs,
            )
            return run(x, dynamic)

        return mapped
