"""Learning a PDE trajectory with an NCA: Gray-Scott frames reproduced frame to frame.

Data: a Gray-Scott trajectory ``y_0, ..., y_{N-1}`` (``[N, 2, H, W]``, frames ``Δt`` apart)
made by `PDESolver` on `GrayScott` (the ``pde`` package).
The NCA state is ``[y; h]`` with ``C - 2`` hidden channels ``h`` (zero at a window's start);
``s`` NCA steps stand for one frame interval. Training draws windows of ``K + 1`` consecutive
frames (randomly rolled: the domain is periodic) and minimises

    L = mean_{k=1..K} mean (NCA^{k s}([y_n; 0])[:2] - y_{n+k})²,

a ``K``-frame free rollout (``K = 1`` is pure teacher forcing). Testing rolls the NCA out
from the first frame of a trajectory with an unseen initial condition and compares every
frame; the baseline is persistence (``y_n ≈ y_0``).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from diffdyn.common import ArrayAugmenter, Logger, RandomRoll, TrainConfig, Trainer, TrainResult, l2

from ._grow import nca_optimiser
from ._model import AbstractNCA

__all__ = [
    "gray_scott_trajectory",
    "trajectory_windows",
    "TrajectoryLoss",
    "trajectory_visualiser",
    "train_trajectory",
    "evaluate_trajectory",
]


def gray_scott_trajectory(
    key: PRNGKeyArray,
    size: int = 32,
    frames: int = 32,
    frame_dt: float = 50.0,
    *,
    seeds: int = 2,
    dt: float = 1.0,
) -> Float[Array, "N 2 H W"]:
    """Gray-Scott (``pde.models.GrayScott`` defaults) from ``seeds`` random seeded squares
    (``pde.initial.gray_scott_seeds``), saved every ``frame_dt`` (Heun, step ``dt``)."""
    from diffdyn.pde import GrayScott, PDESolver, gray_scott_seeds

    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an int >= 2; got {frames!r}")
    if not frame_dt > 0:
        raise ValueError(f"frame_dt must be > 0; got {frame_dt!r}")
    solver = PDESolver(GrayScott(), solver="heun", dt=dt)
    x0 = gray_scott_seeds(key, size, seeds=seeds, width=max(2, size // 5))
    ts = jnp.arange(frames) * frame_dt
    return eqx.filter_jit(solver.__call__)(x0, ts)


def trajectory_windows(
    trajectory: Float[ArrayLike, "N C H W"], length: int
) -> Float[Array, "M L C H W"]:
    """All ``M = N - L + 1`` windows of ``L`` consecutive frames."""
    trajectory = jnp.asarray(trajectory)
    n = trajectory.shape[0]
    if isinstance(length, bool) or not isinstance(length, int) or not 2 <= length <= n:
        raise ValueError(f"length must be an int in [2, {n}]; got {length!r}")
    return jnp.stack([trajectory[i : i + length] for i in range(n - length + 1)])


def _initial(model: AbstractNCA, frame: Float[Array, "O H W"]) -> Float[Array, "C H W"]:
    hidden = jnp.zeros((model.channels - frame.shape[0], *frame.shape[1:]), frame.dtype)
    return jnp.concatenate([frame, hidden])


class TrajectoryLoss(eqx.Module):
    """``(model, windows [B, K+1, O, H, W], key) -> L`` (see the module docstring)."""

    steps_per_frame: int = eqx.field(static=True)
    checkpoint: bool = eqx.field(static=True)

    def __init__(self, steps_per_frame: int, checkpoint: bool = False):
        if isinstance(steps_per_frame, bool) or not isinstance(steps_per_frame, int):
            raise ValueError(f"steps_per_frame must be an int >= 1; got {steps_per_frame!r}")
        if steps_per_frame < 1:
            raise ValueError(f"steps_per_frame must be an int >= 1; got {steps_per_frame!r}")
        self.steps_per_frame = steps_per_frame
        self.checkpoint = bool(checkpoint)

    def predict(
        self, model: AbstractNCA, first: Float[Array, "O H W"], frames: int, key: PRNGKeyArray
    ) -> Float[Array, "K O H W"]:
        """The observed channels of frames ``1..frames`` rolled out from ``first``."""
        s = self.steps_per_frame
        out = model.rollout(
            _initial(model, first), frames * s, key, every=s, checkpoint=self.checkpoint
        )
        return out[1:, : first.shape[0]]

    def __call__(
        self, model: AbstractNCA, batch: Float[Array, "B L O H W"], key: PRNGKeyArray
    ) -> Float[Array, ""]:
        if batch.ndim != 5 or batch.shape[2] > model.channels:
            raise ValueError(
                f"batch must be windows [B, K+1, O, H, W] with O <= {model.channels}; got "
                f"{tuple(batch.shape)}"
            )
        k = batch.shape[1] - 1
        keys = jax.random.split(key, batch.shape[0])
        pred = jax.vmap(lambda w, kk: self.predict(model, w[0], k, kk))(batch, keys)
        return l2(pred, batch[:, 1:])


def trajectory_visualiser(test: Float[ArrayLike, "N O H W"], steps_per_frame: int) -> Any:
    """The Trainer's ``visualise`` hook: a video of true frames (left) beside the NCA's free
    rollout from the first frame (right), channel ``B`` of Gray-Scott shown in grey."""
    test = jnp.asarray(test)
    loss = TrajectoryLoss(steps_per_frame)

    @eqx.filter_jit
    def run(model: AbstractNCA, key: PRNGKeyArray) -> Array:
        pred = loss.predict(model, test[0], test.shape[0] - 1, key)
        return jnp.concatenate([test[0][None], pred])

    def visualise(model: AbstractNCA, key: PRNGKeyArray) -> dict[str, np.ndarray]:
        pred = np.asarray(run(model, key))
        truth = np.asarray(test)
        b = np.concatenate([truth[:, 1:2], pred[:, 1:2]], axis=-1)
        b = np.clip(b / max(float(truth[:, 1].max()), 1e-6), 0.0, 1.0)
        return {"nca/trajectory": b}

    return visualise


def train_trajectory(
    model: AbstractNCA,
    trajectories: Float[ArrayLike, "R N O H W"],
    key: PRNGKeyArray,
    *,
    steps_per_frame: int = 8,
    window: int = 2,
    batch_size: int = 8,
    optimiser: Any = None,
    config: TrainConfig | None = None,
    logger: Logger | None = None,
    out: Any = None,
    checkpoint: bool = False,
    resume: bool = False,
) -> TrainResult:
    """Fit ``model`` to windows of ``window + 1`` frames of the ``R`` training trajectories
    with the common `Trainer` (random periodic rolls as augmentation)."""
    trajectories = jnp.asarray(trajectories, jnp.float32)
    if trajectories.ndim != 5:
        raise ValueError(
            f"trajectories must have shape [R, N, O, H, W]; got {tuple(trajectories.shape)}"
        )
    data = jnp.concatenate([trajectory_windows(t, window + 1) for t in trajectories])
    loss = TrajectoryLoss(steps_per_frame, checkpoint)
    augmenter = ArrayAugmenter(min(batch_size, data.shape[0]), (RandomRoll(),))
    config = TrainConfig(steps=500) if config is None else config
    if optimiser is None:
        optimiser = nca_optimiser(1e-3, config.steps)
    trainer = Trainer(
        loss,
        optimiser,
        augmenter,
        config=config,
        logger=logger,
        out=out,
        visualise=trajectory_visualiser(trajectories[0], steps_per_frame),
    )
    return trainer.fit(model, data, key, resume=resume)


def evaluate_trajectory(
    model: AbstractNCA,
    trajectory: Float[ArrayLike, "N O H W"],
    key: PRNGKeyArray,
    steps_per_frame: int,
) -> dict[str, float]:
    """Free rollout from frame 0 over the whole trajectory: MSE over frames ``1..N-1``,
    at the last frame, and the persistence baseline ``mean_n (y_0 - y_n)²``."""
    trajectory = jnp.asarray(trajectory, jnp.float32)
    loss = TrajectoryLoss(steps_per_frame)
    n = trajectory.shape[0] - 1
    pred = eqx.filter_jit(loss.predict)(model, trajectory[0], n, key)
    truth = trajectory[1:]
    return {
        "mse": float(l2(pred, truth)),
        "mse_last": float(l2(pred[-1], truth[-1])),
        "mse_persistence": float(l2(jnp.broadcast_to(trajectory[0], truth.shape), truth)),
    }
