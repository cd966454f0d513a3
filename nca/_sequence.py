r"""Learning a recorded sequence of frames with an NCA (Richardson et al. 2024).

**Data.** ``B`` sequences $y^{(b)}_0, \dots, y^{(b)}_{T-1}$ of $O$ observed channels
(``[B, T, O, H, W]``, e.g. from `load_sequence`), recorded at times
$t_0 < t_1 < \dots < t_{T-1}$ shared by every sequence. The last ``held_out`` frames of every
sequence are held out; the first $N = T - \text{held\_out}$ are the training frames. The NCA
state $x = [u; h]$ has $C \ge O$ channels: the observed ones $u$ and $C - O$ hidden ones $h$.

**Steps.** Interval $n$ ($t_n \to t_{n+1}$) stands for

$$
s_n = s \, \frac{t_{n+1} - t_n}{\min_m (t_{m+1} - t_m)}
$$

NCA steps, $s$ = ``steps_per_frame`` (`interval_steps`); an $s_n$ that is not a whole number is
refused.

**Training** (teacher forcing with intermediate-state propagation, the regime of the paper's
Fig. 2). Every interval of every sequence is a training sample, and all samples of a batch
run in parallel: each step draws ``batch_size`` distinct pairs $(b, n)$, $n < N - 1$ (default:
all of them). A pair's start state is

- teacher-forced: the observed frame with zero hidden channels, $x = [y^{(b)}_n; 0]$;
- propagated, for the first $\operatorname{round}(f \cdot \text{batch\_size})$ pairs of the
  (randomly ordered) batch, $f$ = ``propagate_fraction`` (reference default $1/2$): the
  NCA's own state $p^{(b)}_n$ at the end of interval $n - 1$, hidden channels included.

The end state of every pair $(b, n)$ is written back as $p^{(b)}_{n+1}$ (gradients stopped).
This pool starts at $p^{(b)}_n = [y^{(b)}_n; 0]$, and $p^{(b)}_0$ stays there (interval 0
has no predecessor). The pool is kept, rather than re-rolling interval $n - 1$ from its
observed frame at every step, because (i) it is the reference's regime, (ii) it costs one
rollout per sample instead of two, and (iii) a pool state is the end of a chain of
propagations over many intervals, so the NCA learns to continue from states it carried over
long stretches, with hidden channels that hold memory beyond one interval, which is what a
free rollout over the held-out frames asks of it. The price is staleness: a pool state was
made by the parameters of the step that last visited its interval, and no gradient flows
into the interval before.

**Loss.** For pair $i$ with end state $x_i = \mathrm{NCA}^{s_n}(\text{start})$, intermediate
states $x_i^{(1)}, \dots, x_i^{(s_n)}$ and target $y_i = y^{(b)}_{n+1}$, over the loss
channels $\mathcal C$ (``loss_channels``, default all $O$) and the perception filters
$\mathcal F$ of the model other than ``identity``:

$$
e_i = \operatorname{mean}_{c \in \mathcal C, h, w} (x_i - y_i)^2, \quad
P_i = \operatorname{mean}_{f \in \mathcal F, c \in \mathcal C, h, w}
      \big(K_f * x_i - K_f * y_i\big)^2, \quad
R_i = \frac{1}{s_n} \sum_{j=1}^{s_n} \operatorname{mean}_{c, h, w}\,
      \rho\big(x_i^{(j)}\big),
$$

$$
L = \frac{\sum_i m_i (e_i + \lambda_P P_i)}{\sum_i m_i}
    + \lambda_R \operatorname{mean}_i R_i ,
$$

with $m_i = 1$ when frame $n + 1$ is among ``loss_frames`` (default: every training frame;
a batch without such a frame contributes 0), $K_f$ the model's fixed perception stencils
(Sobel gradients and Laplacian for the default filters) with its padding, and the state
regulariser $\rho$ of `state_regulariser` on every channel, hidden ones included (zero inside
``state_range``). Reference defaults: $\lambda_R = 1$ on $[0, 1]$; the reference scales the
derivative features by $0.1$ inside a squared error, i.e. $\lambda_P = 0.01$. A masked frame
is still rolled through and propagated: the NCA learns to pass it, not to match it.

**Validation.** From the first held-out frame $y^{(b)}_N$ (hidden channels zero), the NCA rolls
freely over the held-out intervals; `SequenceTask.evaluate` compares frames $N + 1, \dots,
T - 1$ over the loss channels (``"loss"``) with persistence, $y_k \approx y_N$
(``"mse_persistence"``). The trainer keeps the model that does best.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from diffdyn.common import AbstractAugmenter, AbstractTask, Perception, fixed_field
from diffdyn.common._helpers import check_int

from ._model import AbstractNCA

__all__ = ["interval_steps", "state_regulariser", "SequenceTask"]


def interval_steps(times: Sequence[float] | ArrayLike, steps_per_frame: int) -> tuple[int, ...]:
    r"""The NCA steps of every interval: $s_n = s\,(t_{n+1} - t_n) / \min_m (t_{m+1} - t_m)$.

    Raises a ValueError for times that are not strictly increasing or a gap whose $s_n$ is
    not a whole number (to a relative ``1e-6``).
    """
    steps_per_frame = check_int(steps_per_frame, "steps_per_frame", 1)
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or t.shape[0] < 2 or not np.all(np.isfinite(t)):
        raise ValueError(f"times must be at least 2 finite numbers; got {t.tolist()}")
    gaps = np.diff(t)
    if np.any(gaps <= 0):
        raise ValueError(f"times must be strictly increasing; got {t.tolist()}")
    exact = steps_per_frame * gaps / gaps.min()
    steps = np.rint(exact)
    bad = np.abs(exact - steps) > 1e-6 * exact
    if np.any(bad):
        n = int(np.argmax(bad))
        raise ValueError(
            f"the gap t[{n + 1}] - t[{n}] = {gaps[n]:g} is {gaps[n] / gaps.min():g} times the "
            f"shortest gap {gaps.min():g}, which makes {exact[n]:g} NCA steps at "
            f"steps_per_frame = {steps_per_frame}: every gap must give a whole number of steps "
            "(choose steps_per_frame so that it does, or resample the frames)"
        )
    return tuple(int(v) for v in steps)


def state_regulariser(
    x: Float[ArrayLike, "..."], low: float = 0.0, high: float = 1.0
) -> Float[Array, ""]:
    r"""$\operatorname{mean} \rho(x)$ with
    $\rho(x) = |x - a| + |x - b| - (b - a) = 2 \max(a - x, 0, x - b)$ for the range
    $[a, b]$ = ``[low, high]``: zero inside, growing linearly outside (the reference's
    intermediate-state penalty, there with $[0, 1]$)."""
    x = jnp.asarray(x)
    return jnp.mean(jnp.abs(x - low) + jnp.abs(x - high) - (high - low))


def _indices(values: Any, name: str, low: int, high: int, what: str) -> tuple[int, ...] | None:
    """``values`` as sorted distinct ints in ``[low, high]`` (None stays None)."""
    if values is None:
        return None
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must name at least one {what} (None: all of them)")
    bad = [
        v
        for v in values
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not low <= v <= high
    ]
    if bad:
        raise ValueError(f"{name} must be {what}s in [{low}, {high}]; got {list(values)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat a {what}; got {list(values)}")
    return tuple(sorted(int(v) for v in values))


class _IntervalPool(AbstractAugmenter):
    """The batches of `SequenceTask`: pairs (sequence, interval) with their start states.

    State: ``{"frames": [B, N, O, H, W], "pool": [B, N - 1, C, H, W]}``; ``pool[b, n]`` is the
    propagated start state of interval ``n``. ``sample`` and ``update`` re-derive the pairs
    from the same key.
    """

    sequences: int = eqx.field(static=True)
    intervals: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    propagated: int = eqx.field(static=True)
    steps: tuple[int, ...] = eqx.field(static=True)
    weights: tuple[float, ...] = eqx.field(static=True)

    def init(self, data: Any, key: PRNGKeyArray | None = None) -> dict[str, Array]:
        if not isinstance(data, dict) or set(data) != {"frames", "pool"}:
            raise ValueError(
                "SequenceTask trains on task.training_data(model.channels), a dict with "
                f"'frames' and 'pool'; got {type(data).__name__}"
            )
        frames, pool = jnp.asarray(data["frames"]), jnp.asarray(data["pool"])
        b, n = self.sequences, self.intervals
        if frames.ndim != 5 or frames.shape[:2] != (b, n + 1):
            raise ValueError(
                f"data['frames'] must be [B, N, O, H, W] with B = {b}, N = {n + 1}; got "
                f"{tuple(frames.shape)}"
            )
        if pool.ndim != 5 or pool.shape[:2] != (b, n) or pool.shape[3:] != frames.shape[3:]:
            raise ValueError(
                f"data['pool'] must be [B, N - 1, C, H, W] = [{b}, {n}, C, "
                f"{frames.shape[3]}, {frames.shape[4]}]; got {tuple(pool.shape)}"
            )
        return {"frames": frames, "pool": pool.astype(frames.dtype)}

    def pairs(self, key: PRNGKeyArray) -> tuple[Int[Array, " b"], Int[Array, " b"]]:
        """The (sequence, interval) pairs of the batch drawn with ``key``, in batch order."""
        total = self.sequences * self.intervals
        idx = jax.random.choice(key, total, (self.batch_size,), replace=False)
        return idx // self.intervals, idx % self.intervals

    def sample(self, state: dict[str, Array], key: PRNGKeyArray) -> dict[str, Array]:
        frames, pool = state["frames"], state["pool"]
        b, n = self.pairs(key)
        observed = frames[b, n]
        hidden = jnp.zeros((self.batch_size, pool.shape[2] - frames.shape[2], *frames.shape[3:]))
        teacher = jnp.concatenate([observed, hidden.astype(observed.dtype)], axis=1)
        propagated = jnp.arange(self.batch_size) < self.propagated
        start = jnp.where(propagated[:, None, None, None], pool[b, n], teacher)
        return {
            "start": start,
            "target": frames[b, n + 1],
            "sequence": b,
            "interval": n,
            "steps": jnp.asarray(self.steps, jnp.int32)[n],
            "weight": jnp.asarray(self.weights, frames.dtype)[n],
            "propagated": propagated,
        }

    def update(self, state: dict[str, Array], prediction: Any, key: PRNGKeyArray) -> Any:
        """``pool[b, n + 1] = stop_gradient(end state of (b, n))``; the last interval's end
        has no slot and is dropped."""
        if prediction is None:
            return state
        pool = state["pool"]
        expected = (self.batch_size, *pool.shape[2:])
        if not hasattr(prediction, "shape") or tuple(prediction.shape) != expected:
            raise ValueError(
                f"the prediction must be the end states {expected}; got "
                f"{getattr(prediction, 'shape', type(prediction).__name__)}"
            )
        b, n = self.pairs(key)
        new = jax.lax.stop_gradient(prediction).astype(pool.dtype)
        return {**state, "pool": pool.at[b, n + 1].set(new, mode="drop")}


class SequenceTask(AbstractTask):
    """Learn recorded frame sequences (see the module docstring).

    Train with ``Trainer(task, optim, config=...).fit(model, task.training_data(
    model.channels), key)``.

    Args:
        frames: ``[B, T, O, H, W]`` (or one sequence ``[T, O, H, W]``).
        times: the ``T`` frame times shared by the sequences (default ``0, 1, ..., T-1``).
        steps_per_frame: NCA steps $s$ of the shortest interval (longer intervals take
            proportionally more; `interval_steps`).
        held_out: the last frames of every sequence kept for validation (at least 2: the
            rollout starts from the first and is scored on the rest).
        batch_size: the (sequence, interval) pairs drawn per step (``None``: all of them).
        propagate_fraction: the fraction $f$ of each batch that starts from propagated states.
        loss_channels: the observed channels in the loss and the validation (``None``: all).
        loss_frames: the training frames (``1 .. N-1``) whose prediction enters the loss
            (``None``: all).
        state_range: $[a, b]$ of the state regulariser.
        regulariser_weight: $\\lambda_R$; with $\\lambda_R > 0$ the frames must lie in
            ``state_range``.
        perception_weight: $\\lambda_P$ of the perception-feature loss.
        checkpoint: wrap every NCA step in ``jax.checkpoint`` (memory of long rollouts).
    """

    frames: Float[Array, "B T O H W"] = fixed_field()
    times: tuple[float, ...] = eqx.field(static=True)
    steps_per_interval: tuple[int, ...] = eqx.field(static=True)
    steps_per_frame: int = eqx.field(static=True)
    held_out: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    propagate_fraction: float = eqx.field(static=True)
    loss_channels: tuple[int, ...] = eqx.field(static=True)
    loss_frames: tuple[int, ...] = eqx.field(static=True)
    state_range: tuple[float, float] = eqx.field(static=True)
    regulariser_weight: float = eqx.field(static=True)
    perception_weight: float = eqx.field(static=True)
    checkpoint: bool = eqx.field(static=True)

    def __init__(
        self,
        frames: Float[ArrayLike, "B T O H W"],
        times: Sequence[float] | ArrayLike | None = None,
        *,
        steps_per_frame: int = 8,
        held_out: int = 2,
        batch_size: int | None = None,
        propagate_fraction: float = 0.5,
        loss_channels: Sequence[int] | None = None,
        loss_frames: Sequence[int] | None = None,
        state_range: tuple[float, float] = (0.0, 1.0),
        regulariser_weight: float = 1.0,
        perception_weight: float = 0.01,
        checkpoint: bool = False,
    ):
        if not hasattr(frames, "shape") or len(frames.shape) not in (4, 5):
            raise ValueError(
                "frames must be [B, T, O, H, W] or [T, O, H, W]; got "
                f"{getattr(frames, 'shape', type(frames).__name__)}"
            )
        frames = jnp.asarray(frames, jnp.result_type(float))
        if frames.ndim == 4:
            frames = frames[None]
        if not bool(jnp.all(jnp.isfinite(frames))):
            raise ValueError("frames contain NaN or inf")
        b, t, o = frames.shape[:3]
        self.held_out = check_int(held_out, "held_out", 2)
        if t - self.held_out < 2:
            raise ValueError(
                f"held_out = {self.held_out} of {t} frames leaves {t - self.held_out} training "
                "frames; at least 2 are needed (one interval)"
            )
        n = t - self.held_out
        times = np.arange(t, dtype=np.float64) if times is None else np.asarray(times, float)
        if times.shape != (t,):
            raise ValueError(f"times must hold one time per frame ({t}); got {times.shape}")
        self.steps_per_interval = interval_steps(times, steps_per_frame)
        self.times = tuple(float(v) for v in times)
        self.steps_per_frame = int(steps_per_frame)
        self.frames = frames
        intervals = b * (n - 1)
        if batch_size is None:
            batch_size = intervals
        batch_size = check_int(batch_size, "batch_size", 1)
        if batch_size > intervals:
            raise ValueError(
                f"batch_size = {batch_size} pairs (sequence, interval) are drawn without "
                f"replacement from the {intervals} training intervals ({b} sequences x "
                f"{n - 1}); lower it (None: all)"
            )
        self.batch_size = batch_size
        fraction = float(propagate_fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"propagate_fraction must lie in [0, 1]; got {propagate_fraction!r}")
        self.propagate_fraction = fraction
        channels = _indices(loss_channels, "loss_channels", 0, o - 1, "channel")
        self.loss_channels = tuple(range(o)) if channels is None else channels
        frames_in_loss = _indices(loss_frames, "loss_frames", 1, n - 1, "training frame")
        self.loss_frames = tuple(range(1, n)) if frames_in_loss is None else frames_in_loss
        low, high = (float(v) for v in state_range)
        if not low < high:
            raise ValueError(f"state_range must be (low, high) with low < high; got {state_range}")
        self.state_range = (low, high)
        for name, value in (
            ("regulariser_weight", regulariser_weight),
            ("perception_weight", perception_weight),
        ):
            if not float(value) >= 0 or not math.isfinite(float(value)):
                raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
        self.regulariser_weight = float(regulariser_weight)
        self.perception_weight = float(perception_weight)
        if self.regulariser_weight > 0:
            lo, hi = float(frames.min()), float(frames.max())
            if lo < low or hi > high:
                raise ValueError(
                    f"the frames lie in [{lo:g}, {hi:g}], outside the state regulariser's range "
                    f"[{low:g}, {high:g}], which would penalise the data itself: widen "
                    "state_range to hold the data (and 0, where hidden channels start), or set "
                    "regulariser_weight to 0"
                )
        self.checkpoint = bool(checkpoint)

    # ---------------------------------------------------------------- sizes
    @property
    def training_frames(self) -> int:
        """$N$, the training frames of every sequence."""
        return self.frames.shape[1] - self.held_out

    @property
    def observed(self) -> int:
        """$O$, the observed channels."""
        return self.frames.shape[2]

    @property
    def propagated(self) -> int:
        """How many pairs of each batch start from propagated states."""
        return int(math.floor(self.propagate_fraction * self.batch_size + 0.5))

    def training_data(self, channels: int) -> dict[str, Float[Array, "..."]]:
        """``{"frames": the training frames [B, N, O, H, W], "pool": [B, N-1, C, H, W]}``
        with every pool state its observed frame and zero hidden channels: the data of
        ``Trainer.fit`` for a ``channels``-channel NCA."""
        channels = check_int(channels, "channels", 1)
        if channels < self.observed:
            raise ValueError(
                f"the NCA has {channels} channels, fewer than the {self.observed} observed "
                "channels of the frames"
            )
        frames = self.frames[:, : self.training_frames]
        pool = _with_hidden(frames[:, :-1], channels)
        return {"frames": frames, "pool": pool}

    # ---------------------------------------------------------------- training
    def init(self, model: AbstractNCA, data: Any) -> AbstractNCA:
        if not isinstance(data, dict) or "pool" not in data or "frames" not in data:
            raise ValueError(
                "SequenceTask trains on task.training_data(model.channels); got "
                f"{type(data).__name__}"
            )
        if data["pool"].shape[2] != model.channels:
            raise ValueError(
                f"the training data holds {data['pool'].shape[2]}-channel states but the NCA "
                f"has {model.channels} channels: use task.training_data(model.channels)"
            )
        if self.perception_weight > 0 and not self._feature_filters(model):
            raise ValueError(
                f"the perception-feature loss compares the model's perception filters other "
                f"than identity, and this model has only {list(model.filters)}: set "
                "perception_weight to 0 or give the model more filters"
            )
        return model

    def augmenter(self) -> _IntervalPool:
        """The (sequence, interval) pairs with teacher-forced or propagated start states."""
        n = self.training_frames
        weights = tuple(1.0 if k + 1 in self.loss_frames else 0.0 for k in range(n - 1))
        return _IntervalPool(
            sequences=self.frames.shape[0],
            intervals=n - 1,
            batch_size=self.batch_size,
            propagated=self.propagated,
            steps=self.steps_per_interval[: n - 1],
            weights=weights,
        )

    @staticmethod
    def _feature_filters(model: AbstractNCA) -> tuple[str, ...]:
        return tuple(f for f in model.filters if f != "identity")

    def advance(
        self,
        model: AbstractNCA,
        x: Float[Array, "C H W"],
        steps: Int[ArrayLike, ""],
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, "C H W"], Float[Array, ""]]:
        """``(x_s, R)``: ``steps`` NCA steps from ``x`` (at most the longest training interval),
        and the state regulariser averaged over the states after each step."""
        longest = max(self.steps_per_interval[: self.training_frames - 1])
        low, high = self.state_range
        last = model._rolls_channels_last()  # the rollout's faster layout, as in NCA.rollout

        def body(carry: tuple[Array, Array], inputs: tuple[Array, Array]) -> tuple[Any, None]:
            state, reg = carry
            i, k = inputs
            new = model._loop_step(state, k, last)
            active = i < steps
            state = jnp.where(active, new, state)
            reg = reg + jnp.where(active, state_regulariser(new, low, high), 0.0)
            return (state, reg), None

        if self.checkpoint:
            body = jax.checkpoint(body)
        keys = jax.random.split(key, longest)
        zero = jnp.zeros((), x.dtype)
        start = jnp.moveaxis(x, 0, -1) if last else x
        (final, reg), _ = jax.lax.scan(body, (start, zero), (jnp.arange(longest), keys))
        return (jnp.moveaxis(final, -1, 0) if last else final), reg / steps

    def loss(
        self, model: AbstractNCA, batch: dict[str, Array], key: PRNGKeyArray
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        start = batch["start"]
        if start.ndim != 4 or start.shape[1] != model.channels:
            raise ValueError(
                f"batch['start'] must be [B, {model.channels}, H, W]; got {tuple(start.shape)}"
            )
        keys = jax.random.split(key, start.shape[0])
        final, reg = jax.vmap(lambda x, s, k: self.advance(model, x, s, k))(
            start, batch["steps"], keys
        )
        lc = jnp.asarray(self.loss_channels)
        pred, target = final[:, lc], batch["target"][:, lc]
        err = jnp.mean(jnp.square(pred - target), axis=(1, 2, 3))
        per_sample = err
        features = jnp.zeros_like(err)
        if self.perception_weight > 0:
            perceive = Perception(
                len(self.loss_channels),
                self._feature_filters(model),
                padding=model.perception.padding,
                dx=model.perception.dx,
                laplacian_stencil=model.perception.laplacian_stencil,
            )
            diff = jax.vmap(perceive)(pred) - jax.vmap(perceive)(target)
            features = jnp.mean(jnp.square(diff), axis=(1, 2, 3))
            per_sample = err + self.perception_weight * features
        w = batch["weight"]
        count = jnp.sum(w)
        safe = jnp.maximum(count, 1.0)

        def masked(v: Array) -> Array:
            return jnp.where(count > 0, jnp.sum(w * v) / safe, 0.0)

        regulariser = jnp.mean(reg)
        total = masked(per_sample) + self.regulariser_weight * regulariser
        aux = {
            "prediction": final,
            "mse": masked(err),
            "perception_mse": masked(features),
            "state_regulariser": regulariser,
        }
        return total, aux

    # ---------------------------------------------------------------- validation
    def held_out_rollout(self, model: AbstractNCA, key: PRNGKeyArray) -> Float[Array, "B K C H W"]:
        """The free rollout over the held-out frames of every sequence, every channel: frame
        0 is the first held-out frame with zero hidden channels, frame ``k`` the state at
        the time of held-out frame ``k``."""
        return _held_out_rollout(model, self, key)

    def evaluate(self, model: AbstractNCA, key: PRNGKeyArray) -> dict[str, Array]:
        """``{"loss": MSE of the rollout over held-out frames 1.., "mse_last": at the last
        one, "mse_persistence": of repeating the first held-out frame}``, over the loss
        channels and every sequence."""
        return _held_out_errors(model, self, key)

    def visualise(self, model: AbstractNCA, key: PRNGKeyArray) -> dict[str, np.ndarray]:
        """A video of the held-out frames of sequence 0 (left) beside the NCA's rollout from
        the first of them (right): RGB for 3 or 4 observed channels, else the first loss
        channel, in grey scaled by the data's range."""
        truth = np.asarray(self.frames[0, self.training_frames :])
        pred = np.asarray(self.held_out_rollout(model, key)[0, :, : self.observed])
        lo, hi = float(self.frames.min()), float(self.frames.max())
        if self.observed in (3, 4):
            chans = slice(0, 3)
            lo, hi = min(lo, 0.0), max(hi, 1.0)
        else:
            c = self.loss_channels[0]
            chans = slice(c, c + 1)
        both = np.concatenate([truth[:, chans], pred[:, chans]], axis=-1)
        return {"nca/held_out": np.clip((both - lo) / max(hi - lo, 1e-12), 0.0, 1.0)}


def _with_hidden(frames: Array, channels: int) -> Array:
    """``[..., O, H, W]`` frames padded with zero hidden channels to ``channels``."""
    o = frames.shape[-3]
    hidden = jnp.zeros((*frames.shape[:-3], channels - o, *frames.shape[-2:]), frames.dtype)
    return jnp.concatenate([frames, hidden], axis=-3)


@eqx.filter_jit
def _held_out_rollout(model: AbstractNCA, task: SequenceTask, key: PRNGKeyArray) -> Array:
    n = task.training_frames
    steps = task.steps_per_interval[n:]
    x0 = _with_hidden(task.frames[:, n], model.channels)

    def one(x: Array, k: PRNGKeyArray) -> Array:
        if len(set(steps)) == 1:
            return model.rollout(x, steps[0] * len(steps), k, every=steps[0])
        out = [x]
        for s, kk in zip(steps, jax.random.split(k, len(steps)), strict=True):
            x = model.rollout(x, s, kk)
            out.append(x)
        return jnp.stack(out)

    return jax.vmap(one)(x0, jax.random.split(key, x0.shape[0]))


@eqx.filter_jit
def _held_out_errors(model: AbstractNCA, task: SequenceTask, key: PRNGKeyArray) -> dict:
    lc = jnp.asarray(task.loss_channels)
    truth = task.frames[:, task.training_frames :][:, :, lc]
    pred = _held_out_rollout(model, task, key)[:, :, lc]
    persistence = jnp.broadcast_to(truth[:, :1], truth.shape)
    return {
        "loss": jnp.mean(jnp.square(pred[:, 1:] - truth[:, 1:])),
        "mse_last": jnp.mean(jnp.square(pred[:, -1] - truth[:, -1])),
        "mse_persistence": jnp.mean(jnp.square(persistence[:, 1:] - truth[:, 1:])),
    }
