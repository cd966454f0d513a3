r"""Growing an image from one seed cell, with a sample pool and damage (Mordvintsev et al. 2020).

`AbstractPoolTask` is every task trained on states drawn from a sample pool. It minimises,
over a batch of ``B`` states drawn from the pool,

$$
L = \frac{1}{B} \sum_b \frac{1}{O H W} \sum_{c < O,\, h,\, w}
    \big(x_b^{(T)}[c, h, w] - y_b[c, h, w]\big)^2
  + \lambda \frac{1}{B} \sum_b R\big(x_b^{(T)} + f(P(x_b^{(T)}))\big) ,
$$

the per-pixel MSE between the first $O$ channels (premultiplied RGBA, $O = 4$) of the state
after $T$ NCA steps and the sample's target $y_b$. The final states go back into the pool
(persistence); the worst ``reseed`` samples of each batch restart from a fresh seed state (more
reseeds speed up learning to grow, fewer stress persistence), and the best ``damage`` samples
are damaged by erasing a random disk (`RandomErase`), which teaches regeneration. The NCA's
optimiser normalises the gradient of every parameter block before Adam
(``OptimConfig(normalise_gradients=True)``). For an NCA whose `Cells` have a mask, the
second term ($\lambda$ = ``boundary_weight``, 0 by default) is the `boundary_regulariser`
$R$ of the update each final state proposes, before the mask acts: the states themselves are
masked in every step, so it is what the network *tries* to put where the mask forbids it.

`GrowTask` grows one target $y$ from one seed cell. Its held-out check is growth itself:
`GrowTask.evaluate` grows ``samples`` states from the seed cell and scores them against the
target, which is what the pool loss (over states that were grown, persisted and damaged) only
approximates; the trainer keeps the model that grows best. `evaluate_growth` adds persistence
and regeneration after erasing half.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from diffdyn.common import AbstractTask, RandomErase, SamplePool, fixed_field
from diffdyn.common._helpers import check_int, check_number

from ._model import AbstractNCA, boundary_regulariser, rollout_batch, seed_state
from ._targets import to_rgb

__all__ = ["AbstractPoolTask", "GrowTask", "GrowthEvaluation", "erase_half", "evaluate_growth"]


def _mse(x: Float[Array, "C H W"], target: Float[Array, "O H W"]) -> Float[Array, ""]:
    return jnp.mean(jnp.square(x[: target.shape[0]] - target))


def _errors(x: Float[Array, "B C H W"], target: Float[Array, "O H W"]) -> Float[Array, " B"]:
    return jax.vmap(_mse, in_axes=(0, None))(x, target)


def _shape_of(x: Any) -> Any:
    return tuple(x.shape) if hasattr(x, "shape") else type(x).__name__


def _check_target(target: Any) -> Float[Array, "O H W"]:
    if not hasattr(target, "shape") or len(target.shape) != 3:
        raise ValueError(
            f"target must have shape [O, H, W]; got {getattr(target, 'shape', type(target))}"
        )
    return jnp.asarray(target, jnp.float32)


def _seed(channels: int, target: Array) -> Float[Array, "C H W"]:
    if target.shape[0] > channels:
        raise ValueError(
            f"the target has {target.shape[0]} channels but the NCA only {channels}: an NCA "
            f"grows targets [O, H, W] with O <= channels"
        )
    return seed_state(channels, *target.shape[1:], first=min(3, channels - 1))


def erase_half(x: Float[ArrayLike, "*B C H W"]) -> Float[Array, "*B C H W"]:
    """Zero every channel of the right half (columns ``>= W/2``)."""
    x = jnp.asarray(x)
    w = x.shape[-1]
    return x.at[..., w // 2 :].set(0.0)


class _PoolSettings(eqx.Module):
    """The settings that every `AbstractPoolTask` shares, with their defaults, checked once
    (see its docstring)."""

    rollout_steps: int = eqx.field(static=True)
    pool_size: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    damage: int = eqx.field(static=True)
    reseed: int = eqx.field(static=True)
    radius: tuple[float, float] = eqx.field(static=True)
    checkpoint: bool = eqx.field(static=True)
    samples: int = eqx.field(static=True)
    boundary_weight: float = eqx.field(static=True)

    def __init__(
        self,
        rollout_steps: int,
        side: int,
        *,
        least_pool: int = 1,
        pool_size: int = 256,
        batch_size: int = 8,
        damage: int = 2,
        reseed: int = 1,
        radius: tuple[float, float] | None = None,
        checkpoint: bool = False,
        samples: int = 8,
        boundary_weight: float = 0.0,
    ):
        """``side``: the grid's height (the default radii are ``side/10 .. side/5``);
        ``least_pool``: the fewest states the pool may hold; the rest as in
        `AbstractPoolTask`."""
        self.rollout_steps = check_int(rollout_steps, "rollout_steps", 1)
        self.pool_size = check_int(pool_size, "pool_size", least_pool)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        if self.batch_size > self.pool_size:
            raise ValueError(
                f"batch_size must be <= pool_size = {self.pool_size}; got {self.batch_size}"
            )
        self.damage = check_int(damage, "damage", 0)
        self.reseed = check_int(reseed, "reseed", 0)
        for name in ("damage", "reseed"):
            if getattr(self, name) > self.batch_size:
                raise ValueError(
                    f"{name} must be <= batch_size = {self.batch_size}; got {getattr(self, name)}"
                )
        self.radius = (
            (side / 10, side / 5) if radius is None else (float(radius[0]), float(radius[1]))
        )
        self.checkpoint = bool(checkpoint)
        self.samples = check_int(samples, "samples", 1)
        self.boundary_weight = check_number(boundary_weight, "boundary_weight", 0.0)


class AbstractPoolTask(AbstractTask):
    r"""A task trained on states drawn from a sample pool (see the module docstring).

    A final subclass holds its targets and one ``settings`` and gives `seed` (the state or
    states that fill the pool: the data for `Trainer.fit`), ``_batch_errors`` (each final
    state's error against its own target) and ``_pool`` (the pool and its score). This class
    gives the loss, the pool with reseeding and damage, and the check of the data.

    Every subclass takes ``rollout_steps`` and these keyword arguments (its ``settings``,
    defaults in brackets):

    - ``rollout_steps``: the NCA steps $T$ of every rollout (training and evaluation);
    - ``pool_size``: the states in the sample pool (256);
    - ``batch_size``: the states drawn from the pool per training step (8);
    - ``damage``: how many of the best samples of each batch lose a random disk (2; 0 for
      `MorphTask`);
    - ``reseed``: how many of the worst samples of each batch restart from their seed (1);
    - ``radius``: the range of disk radii (default ``H/10 .. H/5``);
    - ``checkpoint``: wrap every NCA step in ``jax.checkpoint`` (memory of long rollouts;
      off);
    - ``samples``: the stochastic rollouts averaged by `evaluate` (8);
    - ``boundary_weight``: the weight $\lambda$ of the boundary regulariser of the proposed
      update (0: off; a positive weight needs an NCA with a mask).
    """

    settings: eqx.AbstractVar[_PoolSettings]

    @property
    def rollout_steps(self) -> int:
        """The NCA steps $T$ of every rollout (the other settings are ``settings.*``)."""
        return self.settings.rollout_steps

    @abc.abstractmethod
    def seed(self, channels: int) -> Float[Array, "*S C H W"]:
        """The state (or states) of a ``channels``-channel NCA that fill the pool."""

    @abc.abstractmethod
    def _batch_errors(self, final: Float[Array, "B C H W"], batch: Any) -> Float[Array, " B"]:
        """The error of every final state of ``batch`` against its own target."""

    @abc.abstractmethod
    def _pool(self) -> tuple[type, Callable[..., Array]]:
        """The pool class (`SamplePool` or a labelled pool) and its score, larger = worse."""

    def _states(self, batch: Any) -> Float[Array, "B C H W"]:
        """The states of a batch the pool hands out."""
        return batch

    def init(self, model: AbstractNCA, data: Any) -> AbstractNCA:
        seed = self.seed(model.channels)
        if not hasattr(data, "shape") or tuple(data.shape) != tuple(seed.shape):
            raise ValueError(
                f"{type(self).__name__} trains from the seeds of task.seed(channels) (shape "
                f"{tuple(seed.shape)}); got data of shape {_shape_of(data)}"
            )
        weight = self.settings.boundary_weight
        if weight > 0 and model.cells.mask is None:
            raise ValueError(
                f"boundary_weight = {weight:g} penalises what the NCA proposes "
                "where its mask forbids it, but this NCA has no mask (Cells(..., mask=...))"
            )
        return model

    def loss(
        self, model: AbstractNCA, batch: Any, key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        """The mean error of the final states (plus $\\lambda$ times the boundary regulariser
        of their proposed updates); ``aux`` holds the final states as ``"prediction"``."""
        s = self.settings
        final = rollout_batch(
            model, self._states(batch), s.rollout_steps, key, checkpoint=s.checkpoint
        )
        loss = jnp.mean(self._batch_errors(final, batch))
        aux = {"prediction": final}
        if s.boundary_weight > 0:
            proposed = final + jax.vmap(model.increment)(final)
            aux["boundary"] = boundary_regulariser(model, proposed)
            loss = loss + s.boundary_weight * aux["boundary"]
        return loss, aux

    def augmenter(self) -> Any:
        """The pool scored by each state's error (worst first): the worst ``reseed`` samples
        restart from their seed, the best ``damage`` lose a random disk."""
        s = self.settings
        pool, score = self._pool()
        return pool(
            s.pool_size,
            s.batch_size,
            reseed=s.reseed,
            score=score,
            transforms=(RandomErase(s.radius),) if s.damage else (),
            n_transformed=s.damage if s.damage else None,
        )


class _AbstractTargetTask(AbstractPoolTask):
    """A pool task that scores every state against one ``target`` (`SamplePool`)."""

    target: eqx.AbstractVar[Float[Array, "O H W"]]

    def errors(self, x: Float[Array, "B C H W"]) -> Float[Array, " B"]:
        """Per-sample MSE of the first ``O`` channels against the target."""
        return _errors(x, jax.lax.stop_gradient(self.target))

    def _batch_errors(self, final: Float[Array, "B C H W"], batch: Any) -> Float[Array, " B"]:
        return self.errors(final)

    def _pool(self) -> tuple[type, Callable[..., Array]]:
        return SamplePool, functools.partial(_mse, target=self.target)


class GrowTask(_AbstractTargetTask):
    """Grow ``target`` from one seed cell (see the module docstring).

    Train with ``Trainer(task, optim, config=...).fit(model, task.seed(model.channels), key)``:
    the data is the seed state, which fills the sample pool.

    Args:
        target: the target ``[O, H, W]`` (premultiplied RGBA for ``O = 4``); it fixes the grid.
        rollout_steps: the NCA steps $T$ of every rollout (training and evaluation).
        **settings: the pool settings of `AbstractPoolTask` (``pool_size``, ``batch_size``,
            ``damage``, ``reseed``, ``radius``, ``checkpoint``, ``samples``: the rollouts
            from the seed cell averaged by `evaluate`, ``boundary_weight``).
    """

    target: Float[Array, "O H W"] = fixed_field()
    settings: _PoolSettings

    def __init__(self, target: Float[ArrayLike, "O H W"], rollout_steps: int = 64, **settings: Any):
        self.target = _check_target(target)
        self.settings = _PoolSettings(rollout_steps, self.target.shape[-2], **settings)

    def seed(self, channels: int) -> Float[Array, "C H W"]:
        """The seed state of a ``channels``-channel NCA on the target's grid (`seed_state`:
        one alive cell at the centre)."""
        return _seed(channels, self.target)

    def evaluate(self, model: AbstractNCA, key: PRNGKeyArray) -> dict[str, Array]:
        """``{"loss": MSE}`` of ``samples`` states grown for ``rollout_steps`` steps from the
        seed cell (the ``mse`` of `evaluate_growth` with the same key)."""
        return {"loss": _grown_error(model, self, key)}

    def visualise(self, model: AbstractNCA, key: PRNGKeyArray) -> dict[str, np.ndarray]:
        """An image of the target, three grown samples, one of them erased and regrown, and a
        video of a rollout from the seed cell over twice ``rollout_steps``."""
        grown, video, regrown = (np.asarray(a) for a in _visual_rollouts(model, self, key))
        tiles = [to_rgb(np.asarray(self.target))] + [to_rgb(g) for g in grown]
        tiles += [to_rgb(np.asarray(erase_half(grown[0]))), to_rgb(regrown)]
        return {"nca/batch": np.concatenate(tiles, axis=-1), "nca/rollout": to_rgb(video)}


@eqx.filter_jit
def _grown_error(model: AbstractNCA, task: GrowTask, key: PRNGKeyArray) -> Array:
    k_grow = jax.random.split(key, 3)[0]  # as evaluate_growth draws its growth
    seed = task.seed(model.channels)
    seeds = jnp.broadcast_to(seed, (task.settings.samples, *seed.shape))
    return jnp.mean(task.errors(rollout_batch(model, seeds, task.rollout_steps, k_grow)))


@eqx.filter_jit
def _visual_rollouts(
    model: AbstractNCA, task: GrowTask, key: PRNGKeyArray, frames: int = 16
) -> tuple[Array, Array, Array]:
    steps = task.rollout_steps
    every = max(1, steps // frames)
    seed = task.seed(model.channels)
    k1, k2, k3 = jax.random.split(key, 3)
    grown = rollout_batch(model, jnp.broadcast_to(seed, (3, *seed.shape)), steps, k1)
    video = model.rollout(seed, 2 * every * frames, k2, every=every)
    regrown = model.rollout(erase_half(grown[0]), steps, k3)
    return grown, video, regrown


@dataclasses.dataclass(frozen=True)
class GrowthEvaluation:
    """What `evaluate_growth` measures (per-pixel MSE of the first ``O`` channels against
    the target, each the mean over the stochastic rollouts).

    Attributes:
        mse: after growing from the seed cell.
        mse_persisted: after as many steps again (does the pattern hold?).
        mse_damaged: right after erasing the right half of the grown states.
        mse_regrown: after regrowing from the erased states.
        grown_frames: the first sample growing from the seed cell, ``[T, C, H, W]`` from the
            seed to the grown state (``None`` unless frames were asked for).
        regrown_frames: the same sample regrowing, from its erased state to the regrown
            state (``None`` unless frames were asked for).
    """

    mse: float
    mse_persisted: float
    mse_damaged: float
    mse_regrown: float
    grown_frames: np.ndarray | None = None
    regrown_frames: np.ndarray | None = None

    @property
    def frames(self) -> np.ndarray | None:
        """``grown_frames`` then ``regrown_frames``: one rollout with its damage."""
        if self.grown_frames is None or self.regrown_frames is None:
            return None
        return np.concatenate([self.grown_frames, self.regrown_frames])

    def metrics(self) -> dict[str, float]:
        """The four errors by name."""
        return {
            "mse": self.mse,
            "mse_persisted": self.mse_persisted,
            "mse_damaged": self.mse_damaged,
            "mse_regrown": self.mse_regrown,
        }


def evaluate_growth(
    model: AbstractNCA,
    target: Float[ArrayLike, "O H W"],
    key: PRNGKeyArray,
    *,
    steps: int = 64,
    regrow_steps: int | None = None,
    samples: int = 8,
    every: int | None = None,
) -> GrowthEvaluation:
    """Grow, persist, damage and regrow: the one evaluation of a growing NCA.

    ``samples`` states grow for ``steps`` steps from the seed cell (`GrowTask.seed`); the
    grown states run ``steps`` more steps (persistence), and, separately, lose their right
    half (`erase_half`) and regrow for ``regrow_steps`` (default ``steps``) steps. With
    ``every``, which must divide ``steps`` and ``regrow_steps``, the frames of the first
    sample are kept every ``every`` steps (growth, then regrowth from the erased state).

    The keys are ``k_grow, k_regrow, k_persist = split(key, 3)``, so ``mse`` equals
    `GrowTask.evaluate`'s loss for the same key, steps and samples.
    """
    target = _check_target(target)
    steps = check_int(steps, "steps", 1)
    regrow_steps = steps if regrow_steps is None else check_int(regrow_steps, "regrow_steps", 0)
    samples = check_int(samples, "samples", 1)
    if every is not None:
        every = check_int(every, "every", 1)
        if steps % every or regrow_steps % every:
            raise ValueError(
                f"every must divide steps = {steps} and regrow_steps = {regrow_steps}; got "
                f"every = {every}"
            )
    seed = _seed(model.channels, target)
    out = _evaluate_growth(model, target, seed, key, steps, regrow_steps, samples, every)
    frames = {name: np.asarray(out.pop(name)) for name in _FRAMES if name in out}
    return GrowthEvaluation(**{name: float(value) for name, value in out.items()}, **frames)


_FRAMES = ("grown_frames", "regrown_frames")


@eqx.filter_jit
def _evaluate_growth(
    model: AbstractNCA,
    target: Array,
    seed: Array,
    key: PRNGKeyArray,
    steps: int,
    regrow_steps: int,
    samples: int,
    every: int | None,
) -> dict[str, Array]:
    k_grow, k_regrow, k_persist = jax.random.split(key, 3)
    seeds = jnp.broadcast_to(seed, (samples, *seed.shape))
    out: dict[str, Array] = {}
    if every is None:
        grown = rollout_batch(model, seeds, steps, k_grow)
        damaged = erase_half(grown)
        regrown = rollout_batch(model, damaged, regrow_steps, k_regrow)
    else:
        growth = rollout_batch(model, seeds, steps, k_grow, every=every)
        grown = growth[:, -1]
        damaged = erase_half(grown)
        regrowth = rollout_batch(model, damaged, regrow_steps, k_regrow, every=every)
        regrown = regrowth[:, -1]
        out["grown_frames"], out["regrown_frames"] = growth[0], regrowth[0]
    persisted = rollout_batch(model, grown, steps, k_persist)
    for name, x in (
        ("mse", grown),
        ("mse_persisted", persisted),
        ("mse_damaged", damaged),
        ("mse_regrown", regrown),
    ):
        out[name] = jnp.mean(_errors(x, target))
    return out
