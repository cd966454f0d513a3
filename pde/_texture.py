r"""Texture PDEs: fit a PDE so that the pattern it forms from noise looks like an example.

The PDE analogue of the texture NCA (Niklasson et al. 2021), trained against
`diffdyn.common.texture_loss` (sliced Wasserstein distances of a fixed multi-scale filter
bank: nothing pretrained, nothing downloaded).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from diffdyn.common import AbstractTask, fixed_field, texture_loss
from diffdyn.common._helpers import check_int, check_number, check_pyramid_levels

from ._solver import PDESolver

__all__ = ["TextureTask"]


class TextureTask(AbstractTask):
    r"""Fit a PDE whose pattern, grown from noise, matches the statistics of an example.

    Every step draws ``batch_size`` initial states $X_b(0) \sim U(a, b)$ (every channel,
    fresh noise) and solves the PDE to $t_1$; with $\phi$ the `texture_features` of the
    first $O$ channels and $y$ the example ``[O, H, W]``,

    $$
    L = \frac1B \sum_b \mathrm{SW}_2^2\big(\phi(X_b(t_1)[:O]),\, \phi(y)\big),
    $$

    the sliced Wasserstein distance of `texture_loss` with fresh random projections each step.
    The state is compared as it is: scale the example to the range the PDE's channels take.
    The data given to `Trainer.fit` is one batch of initial states ``[B, C, H, W]``
    (`TextureTask.seed`); every step replaces it by fresh noise of the same shape.

    Args:
        target: the example texture ``[O, H, W]``.
        t1: the time $t_1$ the pattern grows for.
        batch_size: the initial states per step.
        noise: the range ``(a, b)`` of the uniform initial noise.
        levels: the levels of the feature pyramid (`texture_features`).
        projections: the random directions of the sliced Wasserstein distance.
        samples: the growths from fresh noise scored by `evaluate`.
    """

    target: Float[Array, "O H W"] = fixed_field()
    t1: float = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    noise: tuple[float, float] = eqx.field(static=True)
    levels: int = eqx.field(static=True)
    projections: int = eqx.field(static=True)
    samples: int = eqx.field(static=True)

    def __init__(
        self,
        target: Float[ArrayLike, "O H W"],
        t1: float,
        *,
        batch_size: int = 4,
        noise: tuple[float, float] = (0.0, 1.0),
        levels: int = 3,
        projections: int = 32,
        samples: int = 4,
    ):
        if not hasattr(target, "shape") or len(target.shape) != 3:
            raise ValueError(
                f"target must have shape [O, H, W]; got {getattr(target, 'shape', type(target))}"
            )
        self.target = jnp.asarray(target, jnp.float32)
        if not bool(jnp.all(jnp.isfinite(self.target))):
            raise ValueError("target holds NaN or infinite values")
        self.t1 = check_number(t1, "t1", 0.0)
        if self.t1 <= 0 or not np.isfinite(self.t1):
            raise ValueError(f"t1 must be a finite time > 0; got {t1!r}")
        self.batch_size = check_int(batch_size, "batch_size", 1)
        if isinstance(noise, (int, float, str)) or len(tuple(noise)) != 2:
            raise ValueError(f"noise must be a range (a, b); got {noise!r}")
        low, high = (float(v) for v in noise)
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"noise must be a finite range (a, b) with a < b; got {noise!r}")
        self.noise = (low, high)
        self.levels = check_pyramid_levels(levels, self.target.shape, "target")
        self.projections = check_int(projections, "projections", 1)
        self.samples = check_int(samples, "samples", 1)

    def seed(self, channels: int, *, key: PRNGKeyArray) -> Float[Array, "B C H W"]:
        """A batch of initial states: $U(a, b)$ noise ``[batch_size, channels, H, W]``."""
        channels = check_int(channels, "channels", 1)
        if self.target.shape[0] > channels:
            raise ValueError(
                f"the target has {self.target.shape[0]} channels but the PDE only {channels}: "
                f"its first O channels are compared with a target [O, H, W]"
            )
        return self._noise(key, (self.batch_size, channels, *self.target.shape[1:]))

    def _noise(self, key: PRNGKeyArray, shape: tuple[int, ...]) -> Array:
        low, high = self.noise
        return jax.random.uniform(key, shape, minval=low, maxval=high)

    def grow(self, model: PDESolver, x0: Float[Array, "B C H W"]) -> Float[Array, "B C H W"]:
        """The states $X_b(t_1)$ grown by ``model`` from ``x0``."""
        ts = jnp.asarray([0.0, self.t1], x0.dtype)
        return jax.vmap(lambda x: model(x, ts)[-1])(x0)

    def errors(self, model: PDESolver, x0: Array, key: PRNGKeyArray) -> Float[Array, " B"]:
        """`texture_loss` of every state grown from ``x0`` against the target."""
        grown = self.grow(model, x0)
        target = jax.lax.stop_gradient(self.target)
        return texture_loss(
            grown[:, : target.shape[0]],
            target,
            levels=self.levels,
            projections=self.projections,
            key=key,
        )

    def init(self, model: PDESolver, data: Any) -> PDESolver:
        if not isinstance(model, PDESolver):
            raise TypeError(f"TextureTask trains a PDESolver; got {type(model).__name__}")
        channels = model.rhs.channels
        expected = (self.batch_size, channels, *self.target.shape[1:])
        if not hasattr(data, "shape") or tuple(data.shape) != expected:
            raise ValueError(
                f"TextureTask trains from a batch of initial states {expected} "
                f"(task.seed(channels, key=key)); got {getattr(data, 'shape', type(data))}"
            )
        if self.target.shape[0] > channels:
            raise ValueError(
                f"the target has {self.target.shape[0]} channels but the PDE only {channels}"
            )
        return model

    def loss(
        self, model: PDESolver, batch: Float[Array, "B C H W"], key: PRNGKeyArray
    ) -> Float[Array, ""]:
        k_noise, k_proj = jax.random.split(key)
        x0 = self._noise(k_noise, batch.shape).astype(batch.dtype)
        return jnp.mean(self.errors(model, x0, k_proj))

    def non_negative(self, model: PDESolver) -> PyTree[bool]:
        """The diffusion coefficients of the right-hand side."""
        return model.non_negative_spec()

    def _fixed_draws(self, model: PDESolver) -> tuple[Array, PRNGKeyArray]:
        k_noise, k_proj = jax.random.split(jax.random.key(0))
        shape = (self.samples, model.rhs.channels, *self.target.shape[1:])
        return self._noise(k_noise, shape), k_proj

    def evaluate(self, model: PDESolver, key: PRNGKeyArray) -> dict[str, Any]:
        """``{"loss": mean texture loss}`` of ``samples`` growths from the same noise and
        projections at every evaluation (``key`` is not used), so that scores compare."""
        del key
        x0, k_proj = self._fixed_draws(model)
        return {"loss": float(jnp.mean(_errors(model, self, x0, k_proj)))}

    def visualise(self, model: PDESolver, key: PRNGKeyArray) -> dict[str, np.ndarray]:
        """``texture/target`` and the first ``O`` channels of the states grown from the
        evaluation noise, side by side (``texture/grown``)."""
        del key
        x0, _ = self._fixed_draws(model)
        grown = np.asarray(_grow(model, self, x0))[:, : self.target.shape[0]]
        return {
            "texture/target": np.asarray(self.target),
            "texture/grown": np.concatenate(list(grown), axis=-1),
        }


@eqx.filter_jit
def _grow(model: PDESolver, task: TextureTask, x0: Array) -> Array:
    return task.grow(model, x0)


@eqx.filter_jit
def _errors(model: PDESolver, task: TextureTask, x0: Array, key: PRNGKeyArray) -> Array:
    return task.errors(model, x0, key)
