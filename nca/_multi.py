r"""One NCA, several targets: multi-species growth and morphing (Mordvintsev et al. 2020;
Richardson et al. 2024, Differentiable-Patterning).

**Multi-species growth.** `MultiTargetTask` trains one NCA to grow $S$ targets
$y_0, \dots, y_{S-1}$ (premultiplied RGBA ``[4, H, W]``), each from its own seed. The seed of
species $s$ is the single-seed state of `seed_state` (one cell at the centre with channels
$3, \dots, C-1$ at 1) except in the $S$ dedicated hidden *species channels*
$k_0, \dots, k_{S-1}$ (default $k_i = 4 + i$, the first hidden channels after RGBA), which hold
the one-hot code of $s$ at the centre cell:

$$
x_s^{(0)}[k_i, h_c, w_c] = \delta_{is}, \qquad x_s^{(0)}[c, h_c, w_c] = 1 \text{ for the other }
c \ge 3 ,
$$

and zero elsewhere. As in Differentiable-Patterning, where a species is only its initial
condition, the code channels are ordinary state: the NCA reads *and updates* them like every
other hidden channel (nothing holds them fixed), so the code is what the seed whispers to the
first cells, and the NCA learns to spread it. A batch of $B$ pool states $x_b$ with species
labels $s_b$ is scored by

$$
L = \frac{1}{B} \sum_b \frac{1}{4 H W} \sum_{c < 4,\, h,\, w}
    \big(x_b^{(T)}[c, h, w] - y_{s_b}[c, h, w]\big)^2 ,
$$

each sample against its own target. One `SpeciesPool` holds the states of all species, each
slot labelled with the species it belongs to (slot $p$ with species $p \bmod S$), so batches
mix species; the worst samples of a batch restart from the seed of their own species and the
best are damaged, as in `GrowTask`.

**Morphing.** `MorphTask` trains an NCA to turn a source pattern $u$ into a target $y$ in $T$
steps: the initial state is $u$ in the RGBA channels, zero in the hidden channels except the
*code channels*, which are 1 on every cell the source occupies ($u[3] > 0$) and mark the
state as "to be morphed". The loss is the RGBA MSE after $T$ steps,
$\frac{1}{4HW}\|x^{(T)}_{:4} - y\|^2$, over states from a `SamplePool` (persisted states learn
to hold the target).

Both are `AbstractPoolTask`s, like `GrowTask`: the loss, the pool with reseeding and damage
and the optional boundary regulariser of a masked NCA are that base's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from diffdyn.common import AbstractAugmenter, fixed_field
from diffdyn.common._helpers import check_int

from ._grow import (
    AbstractPoolTask,
    _AbstractTargetTask,
    _mse,
    _PoolSettings,
    _shape_of,
)
from ._model import AbstractNCA, rollout_batch, seed_state
from ._targets import to_rgb

__all__ = ["MorphTask", "MultiTargetTask", "SpeciesPool"]

_RGBA = 4
_FRAMES = 16
"""Frames of the rollout videos that `visualise` logs."""


def _check_rgba(x: Any, name: str, ndim: int) -> Float[Array, "..."]:
    """``x`` as a float32 array of ``ndim`` axes whose channel axis (-3) has 4 entries."""
    if not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array; got {type(x).__name__}")
    layout = "[S, 4, H, W]" if ndim == 4 else "[4, H, W]"
    if len(x.shape) != ndim or x.shape[-3] != _RGBA:
        raise ValueError(
            f"{name} must have shape {layout} (premultiplied RGBA); got {tuple(x.shape)}"
        )
    x = jnp.asarray(x, jnp.float32)
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"{name} must be finite; it holds NaN or inf")
    return x


def _check_hidden_channels(channels: Any, name: str) -> tuple[int, ...]:
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence):
        raise TypeError(f"{name} must be a sequence of channel indices; got {channels!r}")
    out = tuple(check_int(c, name, _RGBA) for c in channels)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must be distinct channels; got {out}")
    return out


def _check_channels(channels: Any, code: tuple[int, ...], code_name: str) -> int:
    channels = check_int(channels, "channels", 1)
    need = max((*code, _RGBA - 1)) + 1
    if channels < need:
        raise ValueError(
            f"channels must be >= {need} to hold RGBA and the {code_name} {code}; got {channels}"
        )
    return channels


def _every(steps: int) -> int:
    """The largest divisor of ``steps`` that is at most ``steps // _FRAMES`` (at least 1)."""
    every = max(1, steps // _FRAMES)
    while steps % every:
        every -= 1
    return every


class SpeciesPool(AbstractAugmenter):
    """A sample pool of ``P`` states of ``S`` species (a `SamplePool` with species labels).

    ``init(seeds, key)`` takes the seeds ``[S, *shape]`` and fills slot $p$ with the seed of
    species $p \\bmod S$; a slot keeps its species for good. Each step, ``sample`` draws
    ``batch_size`` distinct slots ``idx`` from ``key``; with ``score`` (a function of a state
    and its species, larger = worse) they are ordered worst first. The first ``reseed``
    samples restart from the seed of *their own* species, and ``transforms`` (e.g.
    `RandomErase`) are applied to the last ``n_transformed`` samples (None = all). The batch
    is ``{"x": [B, *shape], "species": [B]}``.

    ``update(state, prediction, key)`` writes ``pool[idx[b]] = prediction[b]`` (gradients
    stopped), re-deriving ``idx`` from the same ``(state, key)`` as ``sample``.
    """

    pool_size: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    reseed: int = eqx.field(static=True)
    score: Callable[[Array, Array], Array] | None = eqx.field(static=True)
    transforms: tuple[Any, ...] = eqx.field(static=True)
    n_transformed: int | None = eqx.field(static=True)

    def __init__(
        self,
        pool_size: int,
        batch_size: int,
        *,
        reseed: int = 1,
        score: Callable[[Array, Array], Array] | None = None,
        transforms: Sequence[Any] = (),
        n_transformed: int | None = None,
    ):
        self.pool_size = check_int(pool_size, "pool_size", 1)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        if self.batch_size > self.pool_size:
            raise ValueError(
                f"batch_size must be <= pool_size = {self.pool_size}; got {self.batch_size}"
            )
        self.reseed = check_int(reseed, "reseed", 0)
        if self.reseed > self.batch_size:
            raise ValueError(f"reseed must be <= batch_size = {self.batch_size}; got {reseed}")
        if n_transformed is not None:
            n_transformed = check_int(n_transformed, "n_transformed", 0)
            if n_transformed > self.batch_size:
                raise ValueError(
                    f"n_transformed must be <= batch_size = {self.batch_size}; got {n_transformed}"
                )
        if score is not None and not callable(score):
            raise TypeError(f"score must be callable or None; got {type(score).__name__}")
        for t in transforms:
            if not callable(t):
                raise TypeError(f"transforms must be callables (x, key) -> x; got {t!r}")
        self.score = score
        self.transforms = tuple(transforms)
        self.n_transformed = n_transformed

    def init(self, data: Any, key: PRNGKeyArray | None = None) -> dict[str, Array]:
        """``{"pool": [P, *shape], "species": [P] (p mod S), "seeds": [S, *shape]}``."""
        if not isinstance(data, (jax.Array, np.ndarray)) or data.ndim < 2:
            raise ValueError(
                f"SpeciesPool.init: data must be the seeds [S, *state shape]; got {_shape_of(data)}"
            )
        seeds = jnp.asarray(data)
        n = seeds.shape[0]
        if n > self.pool_size:
            raise ValueError(
                f"SpeciesPool: pool_size = {self.pool_size} cannot hold one slot for each of "
                f"the {n} species"
            )
        species = jnp.arange(self.pool_size, dtype=jnp.int32) % n
        return {"pool": seeds[species], "species": species, "seeds": seeds}

    def slots(self, state: dict[str, Array], key: PRNGKeyArray) -> Int[Array, " b"]:
        """The pool slots that ``sample(state, key)`` hands out, in batch order."""
        k_idx = jax.random.split(key)[0]
        idx = jax.random.choice(k_idx, self.pool_size, (self.batch_size,), replace=False)
        if self.score is not None:
            s = jax.vmap(self.score)(state["pool"][idx], state["species"][idx])
            idx = idx[jnp.argsort(-s)]
        return idx

    def sample(self, state: dict[str, Array], key: PRNGKeyArray) -> dict[str, Array]:
        """``{"x": pool[idx], "species": species[idx]}``, the first ``reseed`` states
        replaced by their species' seeds and the last ``n_transformed`` transformed."""
        idx = self.slots(state, key)
        x, species = state["pool"][idx], state["species"][idx]
        if self.reseed:
            x = x.at[: self.reseed].set(state["seeds"][species[: self.reseed]])
        n = self.batch_size if self.n_transformed is None else self.n_transformed
        if self.transforms and n:
            keys = jax.random.split(jax.random.split(key)[1], n)

            def transform(x: Array, k: PRNGKeyArray) -> Array:
                for t, kt in zip(
                    self.transforms, jax.random.split(k, len(self.transforms)), strict=True
                ):
                    x = t(x, kt)
                return x

            tail = jax.vmap(transform)(x[self.batch_size - n :], keys)
            x = jnp.concatenate([x[: self.batch_size - n], tail], axis=0)
        return {"x": x, "species": species}

    def update(self, state: dict[str, Array], prediction: Any, key: PRNGKeyArray) -> Any:
        """``pool[idx[b]] = stop_gradient(prediction[b])`` for the slots of ``sample``."""
        if prediction is None:
            return state
        pool = state["pool"]
        expected = (self.batch_size, *pool.shape[1:])
        if not hasattr(prediction, "shape") or tuple(prediction.shape) != expected:
            raise ValueError(
                f"SpeciesPool.update: prediction must have shape {expected}; got "
                f"{_shape_of(prediction)}"
            )
        idx = self.slots(state, key)
        new = jax.lax.stop_gradient(prediction).astype(pool.dtype)
        return {**state, "pool": pool.at[idx].set(new)}


def _species_score(x: Array, species: Array, targets: Array) -> Array:
    return _mse(x, targets[species])


class MultiTargetTask(AbstractPoolTask):
    """Grow each of ``S`` targets from its own coded seed (see the module docstring).

    Train with ``Trainer(task, optim, config=...).fit(model, task.seed(model.channels), key)``:
    the data is the ``S`` seeds, which fill the `SpeciesPool`.

    Args:
        targets: ``[S, 4, H, W]`` premultiplied RGBA, ``S >= 2``, all on one grid.
        rollout_steps: the NCA steps $T$ of every rollout (training and evaluation).
        species_channels: the ``S`` hidden channels (each ``>= 4``) that carry the one-hot
            species code in the seeds; default ``(4, ..., 3 + S)``. Updated by the NCA like
            every channel.
        **settings: the pool settings of `AbstractPoolTask`; ``pool_size >= S`` (slot $p$
            belongs to species $p \\bmod S$), the reseeded samples restart from the seed of
            their own species, and `evaluate` averages ``samples`` rollouts per species.
    """

    targets: Float[Array, "S 4 H W"] = fixed_field()
    species_channels: tuple[int, ...] = eqx.field(static=True)
    settings: _PoolSettings

    def __init__(
        self,
        targets: Float[ArrayLike, "S 4 H W"],
        rollout_steps: int = 64,
        *,
        species_channels: Sequence[int] | None = None,
        **settings: Any,
    ):
        if isinstance(targets, (list, tuple)):
            shapes = [_shape_of(t) for t in targets]
            if len(set(shapes)) > 1:
                raise ValueError(f"targets must all have one shape [4, H, W]; got {shapes}")
            targets = np.stack([np.asarray(t) for t in targets]) if targets else np.zeros(0)
        self.targets = _check_rgba(targets, "targets", 4)
        s = self.targets.shape[0]
        if s < 2:
            raise ValueError(
                f"targets must hold S >= 2 species (use GrowTask for one); got S = {s}"
            )
        if species_channels is None:
            species_channels = tuple(range(_RGBA, _RGBA + s))
        self.species_channels = _check_hidden_channels(species_channels, "species_channels")
        if len(self.species_channels) != s:
            raise ValueError(
                f"species_channels must name one channel per species ({s}); got "
                f"{self.species_channels}"
            )
        side = self.targets.shape[-2]
        self.settings = _PoolSettings(rollout_steps, side, least_pool=s, **settings)

    @property
    def species(self) -> int:
        """The number of species $S$."""
        return self.targets.shape[0]

    def seed(self, channels: int) -> Float[Array, "S C H W"]:
        """The ``S`` seeds of a ``channels``-channel NCA: `seed_state` (one cell at the centre
        with channels ``3..C-1`` at 1) with the species channels set to the one-hot code of
        each species at that cell."""
        channels = _check_channels(channels, self.species_channels, "species_channels")
        _, _, h, w = self.targets.shape
        base = seed_state(channels, h, w)
        code = jnp.eye(self.species, dtype=base.dtype)
        seeds = jnp.broadcast_to(base, (self.species, *base.shape))
        return seeds.at[:, jnp.array(self.species_channels), h // 2, w // 2].set(code)

    def errors(self, x: Float[Array, "B C H W"], species: Int[Array, " B"]) -> Float[Array, " B"]:
        """Per-sample MSE of the RGBA channels against each sample's own target."""
        targets = jax.lax.stop_gradient(self.targets)
        return jax.vmap(_mse)(x, targets[species])

    def _states(self, batch: dict[str, Array]) -> Float[Array, "B C H W"]:
        return batch["x"]

    def _batch_errors(self, final: Float[Array, "B C H W"], batch: Any) -> Float[Array, " B"]:
        return self.errors(final, batch["species"])

    def _pool(self) -> tuple[type, Callable[..., Array]]:
        return SpeciesPool, functools.partial(_species_score, targets=self.targets)

    def evaluate(self, model: AbstractNCA, key: PRNGKeyArray) -> dict[str, Array]:
        """``{"loss": mean over species, "species_s": growth MSE of species s}``: ``samples``
        states per species grown for ``rollout_steps`` steps from its seed."""
        errors = _species_errors(model, self, key)
        out = {"loss": jnp.mean(errors)}
        out.update({f"species_{s}": errors[s] for s in range(self.species)})
        return out

    def visualise(self, model: AbstractNCA, key: PRNGKeyArray) -> dict[str, np.ndarray]:
        """``"nca/species"``: the targets (top row) over one grown state per species (bottom
        row), ``[3, 2H, S W]`` RGB on white; ``"nca/species_rollout"``: a video of every
        species growing side by side over ``rollout_steps``."""
        k_grow, k_video = jax.random.split(key)
        grown = np.asarray(_grow_each(model, self, k_grow, 1)[:, 0])
        top = np.concatenate(list(to_rgb(np.asarray(self.targets))), axis=-1)
        bottom = np.concatenate(list(to_rgb(grown)), axis=-1)
        frames = np.asarray(_species_video(model, self, k_video))  # [S, F, C, H, W]
        video = np.concatenate(list(to_rgb(frames)), axis=-1)
        return {"nca/species": np.concatenate([top, bottom], axis=-2), "nca/species_rollout": video}


@eqx.filter_jit
def _grow_each(
    model: AbstractNCA, task: MultiTargetTask, key: PRNGKeyArray, samples: int
) -> Float[Array, "S N C H W"]:
    seeds = task.seed(model.channels)
    x0 = jnp.repeat(seeds, samples, axis=0)
    final = rollout_batch(model, x0, task.rollout_steps, key)
    return final.reshape(task.species, samples, *final.shape[1:])


@eqx.filter_jit
def _species_video(model: AbstractNCA, task: MultiTargetTask, key: PRNGKeyArray) -> Array:
    steps = task.rollout_steps
    return rollout_batch(model, task.seed(model.channels), steps, key, every=_every(steps))


@eqx.filter_jit
def _species_errors(model: AbstractNCA, task: MultiTargetTask, key: PRNGKeyArray) -> Array:
    grown = _grow_each(model, task, key, task.settings.samples)
    targets = jax.lax.stop_gradient(task.targets)
    per = jax.vmap(lambda xs, y: jax.vmap(_mse, in_axes=(0, None))(xs, y))(grown, targets)
    return jnp.mean(per, axis=1)


class MorphTask(_AbstractTargetTask):
    """Turn ``source`` into ``target`` in ``rollout_steps`` NCA steps (see the module
    docstring).

    Train with ``Trainer(task, optim, config=...).fit(model, task.seed(model.channels), key)``:
    the data is the initial state, which fills a `SamplePool`.

    Args:
        source: the pattern to start from, ``[4, H, W]`` premultiplied RGBA.
        target: the pattern to reach, ``[4, H, W]`` on the same grid.
        rollout_steps: the NCA steps $T$ of every rollout (training and evaluation).
        code_channels: the hidden channels (each ``>= 4``) set to 1 on the cells the source
            occupies (``source[3] > 0``); every other hidden channel starts at 0. ``()`` gives
            no code.
        **settings: the pool settings of `AbstractPoolTask` (``damage`` defaults to 0 here;
            the reseeded samples restart from the source state).
    """

    source: Float[Array, "4 H W"] = fixed_field()
    target: Float[Array, "4 H W"] = fixed_field()
    code_channels: tuple[int, ...] = eqx.field(static=True)
    settings: _PoolSettings

    def __init__(
        self,
        source: Float[ArrayLike, "4 H W"],
        target: Float[ArrayLike, "4 H W"],
        rollout_steps: int = 64,
        *,
        code_channels: Sequence[int] = (4,),
        **settings: Any,
    ):
        self.source = _check_rgba(source, "source", 3)
        self.target = _check_rgba(target, "target", 3)
        if self.source.shape != self.target.shape:
            raise ValueError(
                f"source and target must have one shape; got source {tuple(self.source.shape)} "
                f"and target {tuple(self.target.shape)}"
            )
        self.code_channels = _check_hidden_channels(code_channels, "code_channels")
        settings = {"damage": 0, **settings}  # the morph itself is the task: no damage
        self.settings = _PoolSettings(rollout_steps, self.target.shape[-2], **settings)

    def seed(self, channels: int) -> Float[Array, "C H W"]:
        """The initial state of a ``channels``-channel NCA: the source in channels 0-3, the
        code channels 1 where ``source[3] > 0``, the other hidden channels 0."""
        channels = _check_channels(channels, self.code_channels, "code_channels")
        _, h, w = self.source.shape
        x = jnp.zeros((channels, h, w), jnp.float32).at[:_RGBA].set(self.source)
        if self.code_channels:
            occupied = (self.source[3] > 0).astype(jnp.float32)
            x = x.at[jnp.array(self.code_channels)].set(occupied)
        return x

    def evaluate(self, model: AbstractNCA, key: PRNGKeyArray) -> dict[str, Array]:
        """``{"loss": MSE}`` to the target of ``samples`` states after ``rollout_steps``
        steps from the source state."""
        return {"loss": jnp.mean(self.errors(_morph(model, self, key, self.settings.samples)))}

    def visualise(self, model: AbstractNCA, key: PRNGKeyArray) -> dict[str, np.ndarray]:
        """``"nca/morph"``: source, two morphed states and target side by side (RGB on
        white); ``"nca/morph_rollout"``: a video of the morph over twice ``rollout_steps``
        beside the target."""
        k_morph, k_video = jax.random.split(key)
        morphed = np.asarray(_morph(model, self, k_morph, 2))
        tiles = [np.asarray(self.source), *morphed[:, :_RGBA], np.asarray(self.target)]
        frames = to_rgb(np.asarray(_morph_video(model, self, k_video)))
        target = np.broadcast_to(to_rgb(np.asarray(self.target)), frames.shape)
        return {
            "nca/morph": np.concatenate([to_rgb(t) for t in tiles], axis=-1),
            "nca/morph_rollout": np.concatenate([frames, target], axis=-1),
        }


@eqx.filter_jit
def _morph(model: AbstractNCA, task: MorphTask, key: PRNGKeyArray, samples: int) -> Array:
    x0 = task.seed(model.channels)
    return rollout_batch(model, jnp.broadcast_to(x0, (samples, *x0.shape)), task.rollout_steps, key)


@eqx.filter_jit
def _morph_video(model: AbstractNCA, task: MorphTask, key: PRNGKeyArray) -> Array:
    steps = 2 * task.rollout_steps
    return model.rollout(task.seed(model.channels), steps, key, every=_every(steps))
