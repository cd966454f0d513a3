r"""Fitting a `PDESolver` to observed trajectories: the training task and its settings.

Data are trajectories ``[B, T, C_obs, H, W]`` saved at times ``ts`` ``[T]``. The model may
have more channels than the data: channels ``C_obs ..`` are *hidden*, start at zero and are
learned along the way (the prediction of each window is written back into the stored
trajectory, so a hidden state persists from one window to the next).

`PDEFitTask` (strategy ``windows``): each training step draws ``batch_size`` windows
(trajectory ``b``, start frame ``p``), rolls the model out from frame ``p`` over ``window``
frames and compares the observed channels,

$$
L = \ell(\hat X, X) + w_\nabla\, \ell(\nabla \hat X, \nabla X)
+ w_\Delta\, \ell(\Delta \hat X, \Delta X),
$$

with $\ell$ a loss of `diffdyn.common` over frames, and the derivatives taken with the
model's own grid. Diffusion coefficients are projected onto $\ge 0$ after every update (the
task's `non_negative` hook, built into the optimiser by `OptimConfig.build`). With held-out
frames the task validates: the model is rolled out from the last training frame and scored by
its RMSE on the held-out frames, and that score selects the best model.

Whole-trajectory fitting with the strategies of `diffdyn.common` (``plain``,
``multiple-shooting``, ``homotopy``) is `make_strategy`, with the diffusion coefficients'
constraint given by `strategy_non_negative`.

Usage::

    task = PDEFitTask(PDEFitConfig(window=2, loss="l2"), channels=2, observed=2)
    optim = OptimConfig(learning_rate=5e-3, schedule="cosine")
    data = {"trajectories": trajectories, "ts": ts}   # [B, T, C_obs, H, W], [T]
    result = Trainer(task, optim, config=TrainConfig(steps=150)).fit(solver, data, key)
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from diffdyn.common import (
    AbstractAugmenter,
    AbstractStrategy,
    AbstractTask,
    Homotopy,
    HomotopySchedule,
    MultipleShooting,
    Plain,
    Trajectory,
    get_loss,
)
from diffdyn.common._helpers import check_int

from ._figures import comparison_video
from ._solver import PDESolver

__all__ = [
    "STRATEGIES",
    "PDEFitConfig",
    "WindowAugmenter",
    "PDEFitTask",
    "make_strategy",
    "strategy_non_negative",
    "rollout",
    "rollout_error",
]

StrategyName = Literal["windows", "plain", "multiple-shooting", "homotopy"]
STRATEGIES: tuple[str, ...] = typing.get_args(StrategyName)
"""``windows``: windowed rollouts (`PDEFitTask`); the others fit one whole trajectory with
the strategies of `diffdyn.common` (`make_strategy`)."""
LossName = Literal["l1", "l2", "mse", "euclidean", "spectral"]

_WINDOW_FIELDS = (
    "window",
    "batch_size",
    "loss",
    "gradient_weight",
    "laplacian_weight",
    "noise",
    "persist_hidden",
)
_ONLY_FOR = {
    "segments": "multiple-shooting",
    "continuity": "multiple-shooting",
    "coupling": "homotopy",
    "homotopy_decrements": "homotopy",
}


@dataclasses.dataclass(frozen=True)
class PDEFitConfig:
    """How a PDE is fitted to trajectories.

    A setting of one strategy must keep its default under the others (it would be ignored).

    Attributes:
        strategy: windows: random windows of every trajectory, each rolled out from its first
            frame (hidden channels, noise, losses on gradients and Laplacians); plain,
            multiple-shooting, homotopy: one whole trajectory, every channel observed, by the
            strategies of diffdyn.common (mean squared error on states).
        window: frames per rollout window (windows).
        batch_size: windows per step (windows).
        loss: the loss on states (windows).
        gradient_weight: weight of the loss on spatial gradients (windows).
        laplacian_weight: weight of the loss on Laplacians (windows).
        noise: standard deviation of the Gaussian noise added to the observed channels of each
            window's first frame (windows).
        persist_hidden: write the predicted hidden channels back into the stored trajectory,
            so that a hidden state carries over from one window to the next (windows).
        segments: number of shooting segments (multiple-shooting).
        continuity: weight of the continuity penalty between segments (multiple-shooting).
        coupling: coupling strength k of the synchronised system (homotopy).
        homotopy_decrements: decrements of lambda from 1 to 0; the run's steps are split
            evenly over the decrements + 1 plateaus (homotopy).
    """

    strategy: StrategyName = "windows"
    window: int = 2
    batch_size: int = 2
    loss: LossName = "euclidean"
    gradient_weight: float = 0.0
    laplacian_weight: float = 0.0
    noise: float = 0.0
    persist_hidden: bool = True
    segments: int = 5
    continuity: float = 0.01
    coupling: float = 1.0
    homotopy_decrements: int = 5

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"PDEFitConfig.strategy must be one of {list(STRATEGIES)}; got {self.strategy!r}"
            )
        for name in ("window", "batch_size", "segments", "homotopy_decrements"):
            check_int(getattr(self, name), f"PDEFitConfig.{name}", 1)
        for name in ("gradient_weight", "laplacian_weight", "noise", "continuity", "coupling"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"PDEFitConfig.{name} must be a number >= 0; got {v!r}")
            if not math.isfinite(v):
                raise ValueError(f"PDEFitConfig.{name} must be finite; got {v!r}")
        get_loss(self.loss)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        if self.strategy == "windows":
            unused = [n for n in _ONLY_FOR if getattr(self, n) != defaults[n]]
        else:
            unused = [
                n
                for n in (*_WINDOW_FIELDS, *_ONLY_FOR)
                if getattr(self, n) != defaults[n] and _ONLY_FOR.get(n) != self.strategy
            ]
        if unused:
            where = {n: _ONLY_FOR.get(n, "windows") for n in unused}
            raise ValueError(
                f"PDEFitConfig: {', '.join(f'{n} (a setting of {s})' for n, s in where.items())} "
                f"does not apply to strategy {self.strategy!r}; leave it at its default"
            )


class WindowAugmenter(AbstractAugmenter):
    """Random windows of trajectories, with hidden channels that persist.

    ``init({"trajectories": [B, T, C_obs, H, W], "ts": [T]})`` (``C_obs = observed``) pads
    ``channels - C_obs`` zero hidden channels. ``sample`` draws trajectories ``b`` and start
    frames ``p ∈ [0, T - window - 1]`` and returns ``{"x0": [N, C, H, W], "y": [N, window, C, H,
    W], "ts": [N, window + 1]}`` (``N = batch_size``), with ``noise`` added to the observed
    channels of ``x0``. ``update`` re-derives ``(b, p)`` from the same key and writes the
    predicted hidden channels ``[N, window, C - C_obs, H, W]`` into frames ``p+1 .. p+window``.
    """

    window: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    observed: int = eqx.field(static=True)
    noise: float = eqx.field(static=True, default=0.0)
    persist_hidden: bool = eqx.field(static=True, default=True)

    def init(self, data: Any, key: PRNGKeyArray | None = None) -> dict[str, Array]:
        if not isinstance(data, dict) or set(data) != {"trajectories", "ts"}:
            raise TypeError("data must be a dict with keys 'trajectories' and 'ts'")
        x = jnp.asarray(data["trajectories"])
        ts = jnp.asarray(data["ts"])
        if x.ndim != 5:
            raise ValueError(
                f"trajectories must have shape [B, T, C, H, W]; got shape {tuple(x.shape)}"
            )
        b, t, c_obs = x.shape[:3]
        if ts.shape != (t,):
            raise ValueError(f"ts must have shape [T] = [{t}]; got shape {tuple(ts.shape)}")
        if t < self.window + 1:
            raise ValueError(
                f"trajectories need at least window + 1 = {self.window + 1} frames; got T = {t}"
            )
        if c_obs != self.observed:
            raise ValueError(
                f"trajectories must have observed = {self.observed} channels; got {c_obs}"
            )
        if not bool(jnp.all(jnp.isfinite(x))):
            raise ValueError("trajectories contain NaN or inf")
        hidden = jnp.zeros((b, t, self.channels - c_obs, *x.shape[3:]), x.dtype)
        return {"trajectories": jnp.concatenate([x, hidden], axis=2), "ts": ts}

    def _positions(self, state: dict, key: PRNGKeyArray) -> tuple[Int[Array, " N"], Array]:
        b, t = state["trajectories"].shape[:2]
        k_item, k_start = jax.random.split(key)
        items = jax.random.randint(k_item, (self.batch_size,), 0, b)
        starts = jax.random.randint(k_start, (self.batch_size,), 0, t - self.window)
        return items, starts

    def sample(self, state: dict, key: PRNGKeyArray) -> dict[str, Array]:
        k_pos, k_noise = jax.random.split(key)
        items, starts = self._positions(state, k_pos)
        data, ts, n = state["trajectories"], state["ts"], self.window + 1

        def one(i: Array, p: Array) -> tuple[Array, Array]:
            frames = jax.lax.dynamic_slice_in_dim(data[i], p, n, axis=0)
            return frames, jax.lax.dynamic_slice_in_dim(ts, p, n)

        frames, times = jax.vmap(one)(items, starts)
        x0 = frames[:, 0]
        if self.noise > 0:
            observed = (jnp.arange(self.channels) < self.observed)[:, None, None]
            x0 = x0 + self.noise * observed * jax.random.normal(k_noise, x0.shape, x0.dtype)
        return {"x0": x0, "y": frames[:, 1:], "ts": times}

    def update(self, state: dict, prediction: Any, key: PRNGKeyArray) -> dict:
        if prediction is None or not self.persist_hidden or self.observed == self.channels:
            return state
        k_pos, _ = jax.random.split(key)
        items, starts = self._positions(state, k_pos)
        frames = starts[:, None] + 1 + jnp.arange(self.window)[None, :]
        data = state["trajectories"]
        hidden = jnp.arange(self.channels) >= self.observed
        old = data[items[:, None], frames]
        new = jnp.where(hidden[:, None, None], jax.lax.stop_gradient(prediction), old)
        data = data.at[items[:, None], frames].set(new.astype(data.dtype))
        return {**state, "trajectories": data}


def _frames(x: Float[Array, "N L C H W"]) -> Float[Array, "NL C H W"]:
    return x.reshape(-1, *x.shape[2:])


def _with_hidden(x: Float[Array, "B O H W"], channels: int) -> Float[Array, "B C H W"]:
    """Observed states with zero hidden channels appended."""
    hidden = jnp.zeros((x.shape[0], channels - x.shape[1], *x.shape[2:]), x.dtype)
    return jnp.concatenate([x, hidden], axis=1)


@eqx.filter_jit
def rollout(model: PDESolver, x0: Float[Array, "B C H W"], ts: Float[Array, " T"]) -> Array:
    """``model`` from every ``x0`` over ``ts``: ``[B, T, C, H, W]`` (jitted)."""
    return jax.vmap(model, in_axes=(0, None))(x0, ts)


@eqx.filter_jit
def _held_out_rmse(
    model: PDESolver, frames: Float[Array, "B V O H W"], ts: Float[Array, " V"]
) -> tuple[Float[Array, " V1"], Float[Array, "B V O H W"]]:
    """RMSE per held-out frame (frames ``1 ..``, observed channels) of the rollout from frame 0
    with zero hidden channels, and the rollout's observed channels (frame 0 included)."""
    observed = frames.shape[2]
    x0 = _with_hidden(frames[:, 0], model.rhs.channels)
    pred = jax.vmap(model, in_axes=(0, None))(x0, ts)[:, :, :observed]
    sq = (pred[:, 1:] - frames[:, 1:]) ** 2
    return jnp.sqrt(jnp.mean(sq, axis=(0, 2, 3, 4))), pred


class PDEFitTask(AbstractTask):
    """Fit a `PDESolver` to trajectories by windowed rollouts (see the module docstring).

    Args:
        config: the fitting settings (strategy ``windows``).
        channels: the model's channels (observed and hidden).
        observed: the channels of the data (the first ``observed`` of the model's).
        held_out: optional validation frames ``[B, V, observed, H, W]`` (``V >= 2``): the
            first is the start of the validation rollout (typically the last training frame),
            the others are predicted from it with zero hidden channels.
        held_out_ts: the times ``[V]`` of ``held_out``.

    The data given to ``Trainer.fit`` is ``{"trajectories": [B, T, observed, H, W], "ts":
    [T]}``. `evaluate` returns ``{"loss": mean RMSE over the held-out frames, "final_rmse":
    RMSE on the last one}``; `visualise` the video ``pde/held_out`` (data | model, last observed
    channel). Without held-out frames the task neither validates nor draws.
    """

    config: PDEFitConfig = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    observed: int = eqx.field(static=True)
    held_out: Float[Array, "B V O H W"] | None
    held_out_ts: Float[Array, " V"] | None

    def __init__(
        self,
        config: PDEFitConfig,
        channels: int,
        observed: int,
        held_out: Float[Any, "B V O H W"] | None = None,
        held_out_ts: Float[Any, " V"] | None = None,
    ):
        if not isinstance(config, PDEFitConfig):
            raise TypeError(f"config must be a PDEFitConfig; got {type(config).__name__}")
        if config.strategy != "windows":
            raise ValueError(
                f"PDEFitTask fits windows; strategy {config.strategy!r} is make_strategy's"
            )
        self.config = config
        self.channels = check_int(channels, "channels", 1)
        self.observed = check_int(observed, "observed", 1)
        if self.observed > self.channels:
            raise ValueError(f"observed must be <= channels = {channels}; got {observed}")
        if (held_out is None) != (held_out_ts is None):
            raise ValueError("give held_out and held_out_ts together")
        if held_out is None:
            self.held_out = self.held_out_ts = None
            return
        frames, ts = np.asarray(held_out), np.asarray(held_out_ts)
        if frames.ndim != 5 or frames.shape[1] < 2 or frames.shape[2] != self.observed:
            raise ValueError(
                f"held_out must have shape [B, V >= 2, observed = {self.observed}, H, W]; got "
                f"{frames.shape}"
            )
        if ts.shape != (frames.shape[1],) or not np.all(np.diff(ts) > 0):
            raise ValueError(
                f"held_out_ts must be [{frames.shape[1]}] strictly increasing times; got {ts}"
            )
        if not np.all(np.isfinite(frames)):
            raise ValueError("held_out contains NaN or inf")
        dtype = jnp.result_type(float)
        self.held_out = jnp.asarray(frames, dtype)
        self.held_out_ts = jnp.asarray(ts, dtype)

    def augmenter(self) -> WindowAugmenter:
        cfg = self.config
        return WindowAugmenter(
            window=cfg.window,
            batch_size=cfg.batch_size,
            channels=self.channels,
            observed=self.observed,
            noise=cfg.noise,
            persist_hidden=cfg.persist_hidden,
        )

    def init(self, model: Any, data: Any) -> PDESolver:
        if not isinstance(model, PDESolver):
            raise TypeError(f"model must be a PDESolver; got {type(model).__name__}")
        if model.rhs.channels != self.channels:
            raise ValueError(
                f"the model has {model.rhs.channels} channels; the task was built for "
                f"{self.channels}"
            )
        return model

    def loss(self, model: PDESolver, batch: dict, key: PRNGKeyArray) -> tuple[Array, dict]:
        """The loss on the observed channels of ``batch["x0"]``'s rollouts; ``aux`` has the
        separate terms and the rollout ``[N, window, C, H, W]`` as ``"prediction"``."""
        cfg, observed = self.config, self.observed
        base = get_loss(cfg.loss)
        pred = jax.vmap(lambda x0, ts: model(x0, ts)[1:])(batch["x0"], batch["ts"])
        p = _frames(pred[:, :, :observed])
        y = _frames(batch["y"][:, :, :observed])
        state_loss = base(p, y)
        aux: dict[str, Any] = {"state_loss": state_loss, "prediction": pred}
        loss = state_loss
        grid = model.rhs.grid
        if cfg.gradient_weight > 0:
            grad = jax.vmap(lambda u: jnp.concatenate(grid.gradient(u)))
            aux["gradient_loss"] = base(grad(p), grad(y))
            loss = loss + cfg.gradient_weight * aux["gradient_loss"]
        if cfg.laplacian_weight > 0:
            lap = jax.vmap(grid.laplacian)
            aux["laplacian_loss"] = base(lap(p), lap(y))
            loss = loss + cfg.laplacian_weight * aux["laplacian_loss"]
        return loss, aux

    def non_negative(self, model: PDESolver) -> PyTree[bool]:
        """The diffusion coefficients of the right-hand side."""
        return model.non_negative_spec()

    def evaluate(self, model: PDESolver, key: PRNGKeyArray) -> dict[str, Any]:
        """``{"loss": mean RMSE over the held-out frames, "final_rmse": ...}``."""
        if self.held_out is None:
            return super().evaluate(model, key)
        rmse, _ = _held_out_rmse(model, self.held_out, self.held_out_ts)
        return {"loss": jnp.mean(rmse), "final_rmse": rmse[-1]}

    def visualise(self, model: PDESolver, key: PRNGKeyArray) -> dict[str, Any]:
        """The held-out frames of the first trajectory beside the model's rollout."""
        if self.held_out is None:
            return super().visualise(model, key)
        _, pred = _held_out_rmse(model, self.held_out, self.held_out_ts)
        truth = np.asarray(self.held_out[0])
        return {"pde/held_out": comparison_video(truth, np.asarray(pred[0]), self.observed - 1)}

    @property
    def draws(self) -> bool:
        return self.held_out is not None

    @property
    def validates(self) -> bool:
        return self.held_out is not None


def rollout_error(
    model: PDESolver,
    trajectories: Float[Any, "B T C H W"],
    ts: Float[Any, " T"],
    start: int = 0,
) -> np.ndarray:
    """RMSE per frame (over batch, observed channels and space) of the model rolled out from
    frame ``start`` against frames ``start+1 ..``; hidden channels start at zero."""
    x, t = _check_data(trajectories, ts, model)
    if not 0 <= start < x.shape[1] - 1:
        raise ValueError(f"start must be in [0, {x.shape[1] - 2}]; got {start}")
    dtype = jnp.result_type(float)
    rmse, _ = _held_out_rmse(model, jnp.asarray(x[:, start:], dtype), jnp.asarray(t[start:], dtype))
    return np.asarray(rmse)


def _check_data(trajectories: Any, ts: Any, model: PDESolver) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(trajectories)
    if x.ndim == 4:
        x = x[None]
    if x.ndim != 5:
        raise ValueError(
            f"trajectories must have shape [B, T, C, H, W] (or [T, C, H, W]); got {x.shape}"
        )
    if x.shape[2] > model.rhs.channels:
        raise ValueError(
            f"trajectories have {x.shape[2]} channels, more than the model's {model.rhs.channels}"
        )
    t = np.asarray(ts)
    if t.shape != (x.shape[1],):
        raise ValueError(f"ts must have shape [{x.shape[1]}]; got {t.shape}")
    if not np.all(np.diff(t) > 0):
        raise ValueError("ts must be strictly increasing")
    return x, t


def make_strategy(
    config: PDEFitConfig, model: PDESolver, trajectory: Trajectory, steps: int
) -> AbstractStrategy:
    """The strategy of `diffdyn.common` that ``config.strategy`` names, for fitting
    ``model.vector_field`` to one whole ``trajectory`` (every channel observed) in ``steps``
    steps, with the model's `SolveConfig`.

    ``plain`` is `Plain`; ``multiple-shooting`` is `MultipleShooting` with ``segments`` and
    ``continuity``; ``homotopy`` is `Homotopy` with coupling ``coupling`` and
    ``homotopy_decrements`` plateaus of ``steps / (homotopy_decrements + 1)`` steps (``steps``
    must be a multiple of ``homotopy_decrements + 1``). Train with
    ``Trainer(strategy, optim.build(steps, non_negative_leaves=strategy_non_negative(...)),
    config=TrainConfig(steps=steps)).fit(model.vector_field, trajectory, key)``.
    """
    if not isinstance(model, PDESolver):
        raise TypeError(f"model must be a PDESolver; got {type(model).__name__}")
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a Trajectory; got {type(trajectory).__name__}")
    shape = tuple(trajectory.ys.shape[1:])
    if len(shape) != 3 or shape[0] != model.rhs.channels:
        raise ValueError(
            f"strategy {config.strategy!r} needs every channel observed: states "
            f"[{model.rhs.channels}, H, W]; got {shape}"
        )
    steps = check_int(steps, "steps", 1)
    solve = model.solve
    if config.strategy == "plain":
        return Plain(solve=solve)
    if config.strategy == "multiple-shooting":
        return MultipleShooting(segments=config.segments, continuity=config.continuity, solve=solve)
    if config.strategy == "homotopy":
        plateaus = config.homotopy_decrements + 1
        if steps % plateaus:
            raise ValueError(
                f"homotopy runs homotopy_decrements + 1 = {plateaus} plateaus of equal length: "
                f"steps must be a multiple of {plateaus}; got {steps}"
            )
        schedule = HomotopySchedule(
            decrements=config.homotopy_decrements, steps_per_plateau=steps // plateaus
        )
        return Homotopy.from_data(trajectory, k=config.coupling, schedule=schedule, solve=solve)
    raise ValueError(f"strategy {config.strategy!r} is PDEFitTask's (windows), not a strategy's")


def strategy_non_negative(
    strategy: AbstractStrategy, model: PDESolver, trajectory: Trajectory
) -> PyTree[bool]:
    """The non-negative leaves (diffusion coefficients) of what ``strategy`` trains when it
    fits ``model.vector_field`` to ``trajectory``: a bool pytree for
    ``OptimConfig.build(steps, non_negative_leaves=...)``."""
    field = model.vector_field
    field_spec = eqx.tree_at(
        lambda f: f.__self__,
        jax.tree_util.tree_map(lambda _: False, field),
        model.non_negative_spec(),
    )
    trained = strategy.init(field, trajectory)
    if strategy.result(trained) is trained:
        return field_spec
    spec = jax.tree_util.tree_map(lambda _: False, trained)
    return eqx.tree_at(strategy.result, spec, field_spec)
