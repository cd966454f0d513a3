"""Growing an image from one seed cell, with a sample pool and damage (Mordvintsev et al. 2020).

Training minimises, over a batch drawn from a `SamplePool`,

    L = mean_b mean_{c < O, h, w} (x_b^{(T)}[c, h, w] - y[c, h, w])²,

the per-pixel MSE between the first ``O`` channels (premultiplied RGBA, ``O = 4``) of the
state after ``T`` NCA steps and the target ``y``. The final states go back into the pool
(persistence); the worst ``reseed`` samples of each batch restart from a fresh seed state (more
reseeds speed up learning to grow, fewer stress persistence), and the best ``damage``
samples are damaged by erasing a random disk (`RandomErase`), which
teaches regeneration. Gradients are normalised per parameter block
(`normalise_gradients`) before Adam.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from diffdyn.common import (
    Logger,
    RandomErase,
    SamplePool,
    TrainConfig,
    Trainer,
    TrainResult,
    fixed_field,
    make_optimiser,
    normalise_gradients,
)

from ._model import AbstractNCA, rollout_batch, seed_state
from ._targets import to_rgb

__all__ = [
    "GrowLoss",
    "nca_optimiser",
    "make_pool",
    "grow_visualiser",
    "train_grow",
    "erase_half",
    "evaluate_growth",
]


def _mse(x: Float[Array, "C H W"], target: Float[Array, "O H W"]) -> Float[Array, ""]:
    return jnp.mean(jnp.square(x[: target.shape[0]] - target))


class GrowLoss(eqx.Module):
    """``(model, batch, key) -> (L, {"prediction": x^(T)})`` for the growing task."""

    target: Float[Array, "O H W"] = fixed_field()
    steps: int = eqx.field(static=True)
    checkpoint: bool = eqx.field(static=True)

    def __init__(self, target: Float[ArrayLike, "O H W"], steps: int, checkpoint: bool = False):
        if not hasattr(target, "shape") or len(target.shape) != 3:
            raise ValueError(
                f"target must have shape [O, H, W]; got {getattr(target, 'shape', target)}"
            )
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1; got {steps!r}")
        self.target = jnp.asarray(target, jnp.float32)
        self.steps = steps
        self.checkpoint = bool(checkpoint)

    def errors(self, x: Float[Array, "B C H W"]) -> Float[Array, " B"]:
        """Per-sample MSE of the first ``O`` channels against the target."""
        return jax.vmap(_mse, in_axes=(0, None))(x, self.target)

    def __call__(
        self, model: AbstractNCA, batch: Float[Array, "B C H W"], key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        final = rollout_batch(model, batch, self.steps, key, checkpoint=self.checkpoint)
        return jnp.mean(self.errors(final)), {"prediction": final}


def nca_optimiser(
    learning_rate: float = 2e-3,
    steps: int | None = None,
    *,
    name: str = "adam",
    schedule: str = "exponential",
    decay_rate: float = 0.1,
    normalise: bool = True,
) -> optax.GradientTransformation:
    """``normalise_gradients -> <name>(lr schedule)``; the schedule decays by ``decay_rate``
    over ``steps`` (``"constant"`` ignores both)."""
    kw: dict[str, Any] = {}
    if schedule == "exponential":
        kw["decay_rate"] = decay_rate
    opt = make_optimiser(name, learning_rate, schedule=schedule, steps=steps, **kw)
    return optax.chain(normalise_gradients(), opt) if normalise else opt


def make_pool(
    target: Float[ArrayLike, "O H W"],
    *,
    pool_size: int = 256,
    batch_size: int = 8,
    damage: int = 2,
    reseed: int = 1,
    radius: tuple[float, float] | None = None,
) -> SamplePool:
    """A sample pool scored by MSE to ``target`` (worst first): the worst ``reseed`` samples
    restart from a fresh seed state, the best ``damage`` are damaged by a random disk of radius
    ``radius`` (default ``H/10 .. H/5``). ``reseed = batch_size`` trains growth only."""
    target = jnp.asarray(target, jnp.float32)
    h = target.shape[-2]
    if radius is None:
        radius = (h / 10, h / 5)
    score = functools.partial(_mse, target=target)
    transforms = (RandomErase(radius),) if damage else ()
    return SamplePool(
        pool_size,
        batch_size,
        reseed=reseed,
        score=score,
        transforms=transforms,
        n_transformed=damage if damage else None,
    )


def erase_half(x: Float[ArrayLike, "*B C H W"]) -> Float[Array, "*B C H W"]:
    """Zero every channel of the right half (columns ``>= W/2``)."""
    x = jnp.asarray(x)
    w = x.shape[-1]
    return x.at[..., w // 2 :].set(0.0)


def grow_visualiser(
    target: Float[ArrayLike, "O H W"], seed: Float[ArrayLike, "C H W"], steps: int, frames: int = 16
) -> Callable[[AbstractNCA, PRNGKeyArray], dict[str, np.ndarray]]:
    """The Trainer's ``visualise`` hook: an image of a batch (target, three grown samples,
    one damaged and regrown) and a video of one rollout from ``seed``."""
    target = np.asarray(target)
    seed = jnp.asarray(seed)
    every = max(1, steps // frames)
    total = every * frames

    @eqx.filter_jit
    def run(model: AbstractNCA, key: PRNGKeyArray) -> tuple[Array, Array, Array]:
        k1, k2, k3 = jax.random.split(key, 3)
        batch = jnp.broadcast_to(seed, (3, *seed.shape))
        grown = rollout_batch(model, batch, steps, k1)
        video = model.rollout(seed, 2 * total, k2, every=every)
        regrown = model.rollout(erase_half(grown[0]), steps, k3)
        return grown, video, regrown

    def visualise(model: AbstractNCA, key: PRNGKeyArray) -> dict[str, np.ndarray]:
        grown, video, regrown = (np.asarray(a) for a in run(model, key))
        tiles = [to_rgb(target)] + [to_rgb(g) for g in grown]
        tiles += [to_rgb(np.asarray(erase_half(grown[0]))), to_rgb(regrown)]
        return {"nca/batch": np.concatenate(tiles, axis=-1), "nca/rollout": to_rgb(video)}

    return visualise


def train_grow(
    model: AbstractNCA,
    target: Float[ArrayLike, "O H W"],
    key: PRNGKeyArray,
    *,
    steps: int = 64,
    pool_size: int = 256,
    batch_size: int = 8,
    damage: int = 2,
    reseed: int = 1,
    optimiser: optax.GradientTransformation | None = None,
    config: TrainConfig | None = None,
    logger: Logger | None = None,
    out: Any = None,
    checkpoint: bool = False,
    resume: bool = False,
) -> TrainResult:
    """Train ``model`` to grow ``target`` from `seed_state` with the common
    `Trainer` (``config.steps`` optimisation steps of ``steps`` NCA
    steps each)."""
    target = jnp.asarray(target, jnp.float32)
    if target.ndim != 3 or target.shape[0] > model.channels:
        raise ValueError(
            f"target must have shape [O, H, W] with O <= channels = {model.channels}; got "
            f"{tuple(target.shape)}"
        )
    seed = seed_state(model.channels, *target.shape[1:], first=min(3, model.channels - 1))
    loss = GrowLoss(target, steps, checkpoint)
    pool = make_pool(
        target, pool_size=pool_size, batch_size=batch_size, damage=damage, reseed=reseed
    )
    config = TrainConfig(steps=1000) if config is None else config
    if optimiser is None:
        optimiser = nca_optimiser(steps=config.steps)
    trainer = Trainer(
        loss,
        optimiser,
        pool,
        config=config,
        logger=logger,
        out=out,
        visualise=grow_visualiser(target, seed, steps),
    )
    return trainer.fit(model, seed, key, resume=resume)


def evaluate_growth(
    model: AbstractNCA,
    target: Float[ArrayLike, "O H W"],
    key: PRNGKeyArray,
    *,
    steps: int = 64,
    regrow_steps: int | None = None,
    samples: int = 8,
) -> dict[str, float]:
    """Per-pixel MSE of the first ``O`` channels after growing ``steps`` steps from a seed cell
    (``mse``, mean over ``samples`` stochastic rollouts), after ``steps`` more steps
    (``mse_persisted``: does the pattern hold?), right after erasing the right half of the
    grown state, and after ``regrow_steps`` (default ``steps``) further steps."""
    target = jnp.asarray(target, jnp.float32)
    regrow_steps = steps if regrow_steps is None else regrow_steps
    seed = seed_state(model.channels, *target.shape[1:], first=min(3, model.channels - 1))
    k1, k2, k3 = jax.random.split(key, 3)

    @eqx.filter_jit
    def run(model: AbstractNCA) -> dict[str, Array]:
        grown = rollout_batch(model, jnp.broadcast_to(seed, (samples, *seed.shape)), steps, k1)
        damaged = erase_half(grown)
        states = {
            "mse": grown,
            "mse_persisted": rollout_batch(model, grown, steps, k3),
            "mse_damaged": damaged,
            "mse_regrown": rollout_batch(model, damaged, regrow_steps, k2),
        }
        return {
            name: jnp.mean(jax.vmap(_mse, in_axes=(0, None))(x, target))
            for name, x in states.items()
        }

    return {name: float(value) for name, value in run(model).items()}
