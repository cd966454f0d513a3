r"""Texture synthesis with NCAs: `TextureTask` grows a texture like an example image from
noise, trained against `diffdyn.common.texture_loss` (sliced Wasserstein distances of a fixed
multi-scale filter bank: nothing pretrained, nothing downloaded).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from diffdyn.common import AbstractTask, SamplePool, fixed_field, texture_loss
from diffdyn.common._helpers import check_int, check_number, check_pyramid_levels

from ._model import AbstractNCA

__all__ = ["TextureTask"]


class _FreshNoise(eqx.Module):
    """The transform ``(x, key) -> U(0, 1)`` noise of the shape of ``x``: a new seed state."""

    def __call__(self, x: Array, key: PRNGKeyArray) -> Array:
        return jax.random.uniform(key, x.shape, x.dtype)


class TextureTask(AbstractTask):
    r"""Grow a texture like an example image from noise (Niklasson et al. 2021, with the
    pretrained-network loss replaced by `texture_loss`).

    Over a batch of ``B`` states drawn from a `SamplePool`, each run for its own number of
    steps $T_b$ drawn uniformly from ``rollout_steps = (T_min, T_max)``,

    $$
    L = \frac{1}{B} \sum_b \mathrm{SW}_2^2\big(\phi(x_b^{(T_b)}[:O]),\, \phi(y)\big)
      + \lambda \frac{1}{B C H W} \sum_{b, c, h, w}
        \big(x_b^{(T_b)} - \mathrm{clip}(x_b^{(T_b)}, -1, 1)\big)^2 ,
    $$

    with $\phi$ the `texture_features` of the first $O$ channels of the state (RGB, $O = 3$
    for `texture_image` examples), $y$ the example, fresh projections each step, and the
    overflow weight $\lambda$ keeping states in $[-1, 1]$ (Niklasson et al. 2021). The
    final states go back into the pool (persistence); ``reseed`` random samples of each batch
    restart from fresh $U(0, 1)$ noise (every channel), as the seed states do.

    Train with ``Trainer(task, optim, config=...).fit(model, task.seed(model.channels,
    key=k), key)``: the data is one seed state, which fills the pool.

    Args:
        target: the example texture ``[O, H, W]`` (values in ``[0, 1]``).
        rollout_steps: the range ``(T_min, T_max)`` of NCA steps per rollout (both
            included); `evaluate` and `visualise` run ``T_max`` steps.
        grid: the NCA grid ``(H, W)`` (default: the target's); it may differ from the
            target's size.
        pool_size: the states in the sample pool.
        batch_size: the states drawn from the pool per training step.
        reseed: how many random samples of each batch restart from fresh noise.
        levels: the levels of the feature pyramid (`texture_features`).
        projections: the random directions of the sliced Wasserstein distance.
        overflow: the weight $\lambda$ of the overflow penalty.
        checkpoint: wrap every NCA step in ``jax.checkpoint`` (memory of long rollouts).
        samples: the rollouts from fresh noise scored by `evaluate`.
    """

    target: Float[Array, "O H W"] = fixed_field()
    rollout_steps: tuple[int, int] = eqx.field(static=True)
    grid: tuple[int, int] = eqx.field(static=True)
    pool_size: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    reseed: int = eqx.field(static=True)
    levels: int = eqx.field(static=True)
    projections: int = eqx.field(static=True)
    overflow: float = eqx.field(static=True)
    checkpoint: bool = eqx.field(static=True)
    samples: int = eqx.field(static=True)

    def __init__(
        self,
        target: Float[ArrayLike, "O H W"],
        rollout_steps: tuple[int, int] = (32, 64),
        *,
        grid: tuple[int, int] | None = None,
        pool_size: int = 256,
        batch_size: int = 8,
        reseed: int = 1,
        levels: int = 3,
        projections: int = 32,
        overflow: float = 1.0,
        checkpoint: bool = False,
        samples: int = 4,
    ):
        if not hasattr(target, "shape") or len(target.shape) != 3:
            raise ValueError(
                f"target must have shape [O, H, W]; got {getattr(target, 'shape', type(target))}"
            )
        self.target = jnp.asarray(target, jnp.float32)
        if isinstance(rollout_steps, (int, str)) or len(tuple(rollout_steps)) != 2:
            raise ValueError(f"rollout_steps must be a pair (T_min, T_max); got {rollout_steps!r}")
        lo = check_int(rollout_steps[0], "rollout_steps[0]", 1)
        hi = check_int(rollout_steps[1], "rollout_steps[1]", lo)
        self.rollout_steps = (lo, hi)
        if grid is None:
            grid = tuple(self.target.shape[1:])
        if isinstance(grid, (int, str)) or len(tuple(grid)) != 2:
            raise ValueError(f"grid must be a pair (H, W); got {grid!r}")
        self.grid = (check_int(grid[0], "grid[0]", 1), check_int(grid[1], "grid[1]", 1))
        self.pool_size = check_int(pool_size, "pool_size", 1)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        if self.batch_size > self.pool_size:
            raise ValueError(
                f"batch_size must be <= pool_size = {self.pool_size}; got {self.batch_size}"
            )
        self.reseed = check_int(reseed, "reseed", 0)
        if self.reseed > self.batch_size:
            raise ValueError(f"reseed must be <= batch_size = {self.batch_size}; got {reseed}")
        self.levels = check_pyramid_levels(levels, self.target.shape, "target")
        check_pyramid_levels(levels, self.grid, "the grid")
        self.projections = check_int(projections, "projections", 1)
        self.overflow = check_number(overflow, "overflow", 0.0)
        self.checkpoint = bool(checkpoint)
        self.samples = check_int(samples, "samples", 1)

    def seed(self, channels: int, *, key: PRNGKeyArray) -> Float[Array, "C H W"]:
        """A seed state: $U(0, 1)$ noise in every channel on the task's grid."""
        channels = check_int(channels, "channels", 1)
        if self.target.shape[0] > channels:
            raise ValueError(
                f"the target has {self.target.shape[0]} channels but the NCA only {channels}: "
                f"the first O channels of the state are compared with a target [O, H, W]"
            )
        return jax.random.uniform(key, (channels, *self.grid))

    def texture_errors(self, x: Float[Array, "B C H W"], key: PRNGKeyArray) -> Float[Array, " B"]:
        """`texture_loss` of the first ``O`` channels of every state against the target."""
        target = jax.lax.stop_gradient(self.target)
        return texture_loss(
            x[:, : target.shape[0]],
            target,
            levels=self.levels,
            projections=self.projections,
            key=key,
        )

    def init(self, model: AbstractNCA, data: Any) -> AbstractNCA:
        expected = (model.channels, *self.grid)
        if not hasattr(data, "shape") or tuple(data.shape) != expected:
            raise ValueError(
                f"TextureTask trains from one seed state {expected} (task.seed(channels, "
                f"key=key)); got data of shape {getattr(data, 'shape', type(data).__name__)}"
            )
        if self.target.shape[0] > model.channels:
            raise ValueError(
                f"the target has {self.target.shape[0]} channels but the NCA only {model.channels}"
            )
        return model

    def rollout(
        self, model: AbstractNCA, x0: Float[Array, "B C H W"], key: PRNGKeyArray
    ) -> Float[Array, "B C H W"]:
        """Run every state for its own number of steps, uniform in ``rollout_steps``.

        One ``lax.scan`` of ``T_max`` steps in which state ``b`` stops changing after its
        ``T_b`` steps.
        """
        lo, hi = self.rollout_steps
        last = model._rolls_channels_last()  # the rollout's faster layout, as in NCA.rollout

        def one(x: Array, k: PRNGKeyArray) -> Array:
            k_len, k_run = jax.random.split(k)
            length = jax.random.randint(k_len, (), lo, hi + 1)

            def body(x: Array, inputs: tuple[Array, PRNGKeyArray]) -> tuple[Array, None]:
                t, kt = inputs
                return jnp.where(t < length, model._loop_step(x, kt, last), x), None

            if self.checkpoint:
                body = jax.checkpoint(body)
            start = jnp.moveaxis(x, 0, -1) if last else x
            end = jax.lax.scan(body, start, (jnp.arange(hi), jax.random.split(k_run, hi)))[0]
            return jnp.moveaxis(end, -1, 0) if last else end

        return jax.vmap(one)(x0, jax.random.split(key, x0.shape[0]))

    def loss(
        self, model: AbstractNCA, batch: Float[Array, "B C H W"], key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        k_run, k_proj = jax.random.split(key)
        final = self.rollout(model, batch, k_run)
        texture = jnp.mean(self.texture_errors(final, k_proj))
        overflow = jnp.mean(jnp.square(final - jnp.clip(final, -1.0, 1.0)))
        aux = {"prediction": final, "texture": texture, "overflow": overflow}
        return texture + self.overflow * overflow, aux

    def augmenter(self) -> SamplePool:
        """A `SamplePool` (random order); the last ``reseed`` samples of each batch become
        fresh noise."""
        transforms = (_FreshNoise(),) if self.reseed else ()
        return SamplePool(
            self.pool_size,
            self.batch_size,
            reseed=0,
            transforms=transforms,
            n_transformed=self.reseed if self.reseed else None,
        )

    def evaluate(self, model: AbstractNCA, key: PRNGKeyArray) -> dict[str, Array]:
        """``{"loss": texture loss}`` of ``samples`` states grown for ``T_max`` steps from
        fresh noise (the mean of `texture_loss` over them; seeds, rollouts and projections
        drawn from ``key``)."""
        return {"loss": _grown_texture_loss(model, self, key)}

    def visualise(self, model: AbstractNCA, key: PRNGKeyArray) -> dict[str, np.ndarray]:
        """The example, three states grown from noise for ``T_max`` steps, and a video of a
        rollout over twice ``T_max`` steps (first ``O`` channels, clipped to ``[0, 1]``)."""
        grown, video = (np.asarray(a) for a in _visual_rollouts(model, self, key))
        o = self.target.shape[0]
        rgb = lambda x: np.clip(x[..., :o, :, :], 0.0, 1.0)  # noqa: E731
        return {
            "texture/target": np.asarray(self.target),
            "texture/grown": np.concatenate(list(rgb(grown)), axis=-1),
            "texture/rollout": rgb(video),
        }


@eqx.filter_jit
def _grown_texture_loss(model: AbstractNCA, task: TextureTask, key: PRNGKeyArray) -> Array:
    k_seed, k_run, k_proj = jax.random.split(key, 3)
    seeds = jax.vmap(lambda k: task.seed(model.channels, key=k))(
        jax.random.split(k_seed, task.samples)
    )
    hi = task.rollout_steps[1]
    keys = jax.random.split(k_run, task.samples)
    grown = jax.vmap(lambda x, k: model.rollout(x, hi, k))(seeds, keys)
    return jnp.mean(task.texture_errors(grown, k_proj))


@eqx.filter_jit
def _visual_rollouts(
    model: AbstractNCA, task: TextureTask, key: PRNGKeyArray, frames: int = 16
) -> tuple[Array, Array]:
    hi = task.rollout_steps[1]
    every = max(1, math.ceil(hi / frames))
    k_seed, k1, k2 = jax.random.split(key, 3)
    seeds = jax.vmap(lambda k: task.seed(model.channels, key=k))(jax.random.split(k_seed, 3))
    grown = jax.vmap(lambda x, k: model.rollout(x, hi, k))(seeds, jax.random.split(k1, 3))
    video = model.rollout(seeds[0], 2 * every * frames, k2, every=every)
    return grown, video
