r"""Learning a PDE trajectory with an NCA: Gray-Scott frames reproduced frame to frame.

Data: Gray-Scott trajectories $y_0, \dots, y_{N-1}$ (``[N, 2, H, W]``, frames $\Delta t$
apart) made by `PDESolver` on `GrayScott` (the ``pde`` package). The NCA state is
$[y; h]$ with $C - 2$ hidden channels $h$ (zero at a window's start); $s$ NCA steps stand for
one frame interval. `TrajectoryTask` draws windows of $K + 1$ consecutive frames (randomly
rolled: the domain is periodic) and minimises

$$
L = \frac{1}{K} \sum_{k=1}^{K} \operatorname{mean}
    \big(\mathrm{NCA}^{k s}([y_n; 0])_{:2} - y_{n+k}\big)^2 ,
$$

a $K$-frame free rollout ($K = 1$ is pure teacher forcing). Its held-out data is a
trajectory from an initial condition the training never saw: `TrajectoryTask.evaluate` rolls
the NCA out from its first frame and compares every later frame, and the trainer keeps the
model that does this best. `evaluate_trajectory` adds the persistence baseline
($y_n \approx y_0$).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from diffdyn.common import AbstractTask, ArrayAugmenter, RandomRoll, SolveConfig, l2
from diffdyn.common._helpers import check_int

from ._model import AbstractNCA

__all__ = [
    "gray_scott_trajectory",
    "trajectory_windows",
    "TrajectoryTask",
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
    """Gray-Scott (`GrayScott` defaults, from ``diffdyn.pde``) from ``seeds`` random seeded
    squares (`gray_scott_seeds`), saved every ``frame_dt`` (Heun, step ``dt``)."""
    from diffdyn.pde import GrayScott, PDESolver, gray_scott_seeds

    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an int >= 2; got {frames!r}")
    if not frame_dt > 0:
        raise ValueError(f"frame_dt must be > 0; got {frame_dt!r}")
    solve = SolveConfig(
        solver="heun", dt0=float(dt), adaptive=False, rtol=1e-3, atol=1e-3, max_steps=16384
    )
    solver = PDESolver(GrayScott(), solve)
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


def _predict(
    model: AbstractNCA,
    first: Float[Array, "O H W"],
    frames: int,
    steps_per_frame: int,
    key: PRNGKeyArray,
    checkpoint: bool = False,
) -> Float[Array, "K O H W"]:
    s = steps_per_frame
    out = model.rollout(_initial(model, first), frames * s, key, every=s, checkpoint=checkpoint)
    return out[1:, : first.shape[0]]


def _check_trajectory(trajectory: Any, name: str) -> Float[Array, "N O H W"]:
    if not hasattr(trajectory, "shape") or len(trajectory.shape) != 4 or trajectory.shape[0] < 2:
        raise ValueError(
            f"{name} must be frames [N, O, H, W] with N >= 2; got "
            f"{getattr(trajectory, 'shape', type(trajectory).__name__)}"
        )
    return jnp.asarray(trajectory, jnp.float32)


class TrajectoryTask(AbstractTask):
    """Learn to advance a trajectory frame by frame (see the module docstring).

    Train with ``Trainer(task, optim, config=...).fit(model, windows, key)``, ``windows``
    ``[M, K + 1, O, H, W]`` from `trajectory_windows` (several trajectories concatenated).

    Args:
        validation: a held-out trajectory ``[N, O, H, W]`` (another initial condition).
        steps_per_frame: the NCA steps $s$ per frame interval.
        batch_size: the windows per training step (drawn without replacement).
        checkpoint: wrap every NCA step in ``jax.checkpoint`` (memory of long rollouts).
    """

    validation: Float[Array, "N O H W"]
    steps_per_frame: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    checkpoint: bool = eqx.field(static=True)

    def __init__(
        self,
        validation: Float[ArrayLike, "N O H W"],
        steps_per_frame: int = 8,
        *,
        batch_size: int = 8,
        checkpoint: bool = False,
    ):
        self.validation = _check_trajectory(validation, "validation")
        self.steps_per_frame = check_int(steps_per_frame, "steps_per_frame", 1)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.checkpoint = bool(checkpoint)

    def predict(
        self, model: AbstractNCA, first: Float[Array, "O H W"], frames: int, key: PRNGKeyArray
    ) -> Float[Array, "K O H W"]:
        """The observed channels of frames ``1..frames`` rolled out from ``first``."""
        return _predict(model, first, frames, self.steps_per_frame, key, self.checkpoint)

    def init(self, model: AbstractNCA, data: Any) -> AbstractNCA:
        if not hasattr(data, "shape") or len(data.shape) != 5:
            raise ValueError(
                "TrajectoryTask trains on windows [M, K+1, O, H, W] (trajectory_windows); got "
                f"data of shape {getattr(data, 'shape', type(data).__name__)}"
            )
        if data.shape[2] > model.channels or data.shape[2:] != self.validation.shape[1:]:
            raise ValueError(
                f"windows of frames {tuple(data.shape[2:])} must match the validation frames "
                f"{tuple(self.validation.shape[1:])} and have at most channels = "
                f"{model.channels} channels"
            )
        if data.shape[0] < self.batch_size:
            raise ValueError(
                f"batch_size = {self.batch_size} windows are drawn without replacement from "
                f"{data.shape[0]} windows; lower batch_size or add frames or trajectories"
            )
        return model

    def loss(
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

    def augmenter(self) -> ArrayAugmenter:
        """``batch_size`` windows per step, each rolled by a random periodic shift."""
        return ArrayAugmenter(self.batch_size, (RandomRoll(),))

    def evaluate(self, model: AbstractNCA, key: PRNGKeyArray) -> dict[str, Array]:
        """``{"loss": MSE over frames 1..N-1, "mse_last": MSE of the last frame}`` of the
        free rollout from the validation trajectory's first frame."""
        pred = _rollout(model, self.validation[0], self.validation.shape[0] - 1, self, key)
        truth = self.validation[1:]
        return {"loss": l2(pred, truth), "mse_last": l2(pred[-1], truth[-1])}

    def visualise(self, model: AbstractNCA, key: PRNGKeyArray) -> dict[str, np.ndarray]:
        """A video of the validation frames (left) beside the NCA's free rollout from its
        first frame (right), channel ``B`` of Gray-Scott in grey."""
        truth = np.asarray(self.validation)
        pred = np.asarray(_rollout(model, self.validation[0], truth.shape[0] - 1, self, key))
        pred = np.concatenate([truth[:1], pred])
        b = np.concatenate([truth[:, 1:2], pred[:, 1:2]], axis=-1)
        return {"nca/trajectory": np.clip(b / max(float(truth[:, 1].max()), 1e-6), 0.0, 1.0)}


@eqx.filter_jit
def _rollout(
    model: AbstractNCA, first: Array, frames: int, task: TrajectoryTask, key: PRNGKeyArray
) -> Array:
    return _predict(model, first, frames, task.steps_per_frame, key)


def evaluate_trajectory(
    model: AbstractNCA,
    trajectory: Float[ArrayLike, "N O H W"],
    key: PRNGKeyArray,
    steps_per_frame: int,
    *,
    keep_frames: bool = False,
) -> dict[str, Any]:
    """Free rollout from frame 0 over the whole trajectory: MSE over frames ``1..N-1``
    (``mse``), at the last frame (``mse_last``), and the persistence baseline
    ``mse_persistence`` $= \\operatorname{mean}_n (y_0 - y_n)^2$. With ``keep_frames=True`` the
    predicted frames ``[N, C, H, W]`` (every channel, frame 0 included) come back as
    ``"frames"``."""
    trajectory = _check_trajectory(trajectory, "trajectory")
    steps_per_frame = check_int(steps_per_frame, "steps_per_frame", 1)
    n = trajectory.shape[0] - 1
    states = _full_rollout(model, trajectory[0], n, steps_per_frame, key)
    pred = states[1:, : trajectory.shape[1]]
    truth = trajectory[1:]
    out: dict[str, Any] = {
        "mse": float(l2(pred, truth)),
        "mse_last": float(l2(pred[-1], truth[-1])),
        "mse_persistence": float(l2(jnp.broadcast_to(trajectory[0], truth.shape), truth)),
    }
    if keep_frames:
        out["frames"] = np.asarray(states)
    return out


@eqx.filter_jit
def _full_rollout(
    model: AbstractNCA, first: Array, frames: int, steps_per_frame: int, key: PRNGKeyArray
) -> Array:
    s = steps_per_frame
    return model.rollout(_initial(model, first), frames * s, key, every=s)
