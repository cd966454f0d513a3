r"""Fitting a `PDESolver` to observed trajectories on the common trainer.

Data are trajectories ``[B, T, C_obs, H, W]`` saved at times ``ts`` ``[T]``. The model may
have more channels than the data: channels ``C_obs ..`` are *hidden*, start at zero and are
learned along the way (the prediction of each window is written back into the stored
trajectory, so a hidden state persists from one window to the next).

Each training step draws ``batch_size`` windows (trajectory ``b``, start frame ``p``), rolls
the model out from frame ``p`` over ``window`` frames and compares the observed channels,

$$
L = \ell(\hat X, X) + w_\nabla\, \ell(\nabla \hat X, \nabla X)
+ w_\Delta\, \ell(\Delta \hat X, \Delta X),
$$

with $\ell$ a loss of `diffdyn.common` over frames, and the derivatives taken with
the model's own grid. Diffusion coefficients are projected onto $\ge 0$ after every
update (`non_negative`, last in the optax chain). Windowed rollouts are
`fit_pde`; whole-trajectory fitting with the strategies of `diffdyn.common`
(plain, multiple shooting, homotopy) is `fit_pde_strategy`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from diffdyn.common import (
    AbstractAugmenter,
    Logger,
    TrainConfig,
    Trainer,
    TrainResult,
    get_loss,
    make_optimiser,
    non_negative,
)

from ._base import AbstractPDE
from ._neural import NeuralChemotaxis, NeuralRDA, input_normalisation
from ._registry import PDE_MODELS, make_pde
from ._solver import PDESolver

__all__ = [
    "STRATEGIES",
    "PDEFitConfig",
    "fit_pde_strategy",
    "WindowAugmenter",
    "make_loss",
    "make_pde_optimiser",
    "fit_pde",
    "rollout",
    "rollout_error",
    "model_to_fit",
]


STRATEGIES: tuple[str, ...] = ("plain", "multiple-shooting", "homotopy")
"""``plain``: windowed rollouts (`fit_pde`); the others fit one whole trajectory with
`diffdyn.common` (`fit_pde_strategy`)."""


@dataclasses.dataclass(frozen=True)
class PDEFitConfig:
    """How to fit a PDE to trajectories (see the module docstring)."""

    window: int = dataclasses.field(default=4, metadata={"help": "frames per rollout window"})
    batch_size: int = dataclasses.field(default=4, metadata={"help": "windows per step"})
    loss: str = dataclasses.field(
        default="euclidean", metadata={"help": "a loss name of LOSSES in diffdyn.common"}
    )
    gradient_weight: float = dataclasses.field(
        default=0.0, metadata={"help": "weight of the loss on spatial gradients"}
    )
    laplacian_weight: float = dataclasses.field(
        default=0.0, metadata={"help": "weight of the loss on Laplacians"}
    )
    noise: float = dataclasses.field(
        default=0.0, metadata={"help": "std of Gaussian noise on the window's first frame"}
    )
    persist_hidden: bool = dataclasses.field(
        default=True, metadata={"help": "write predicted hidden channels back into the data"}
    )
    optimiser: str = dataclasses.field(default="adam", metadata={"help": "optax optimiser"})
    learning_rate: float = dataclasses.field(default=1e-3, metadata={"help": "learning rate"})
    schedule: str = dataclasses.field(
        default="cosine", metadata={"help": "learning-rate schedule (common.optim)"}
    )
    clip_norm: float | None = dataclasses.field(
        default=None, metadata={"help": "global gradient-norm clip (None: off)"}
    )
    strategy: str = dataclasses.field(
        default="plain",
        metadata={"help": "plain (windowed rollouts), multiple-shooting or homotopy"},
    )
    segments: int = dataclasses.field(
        default=5, metadata={"help": "multiple shooting: number of segments"}
    )
    continuity: float = dataclasses.field(
        default=0.01, metadata={"help": "multiple shooting: continuity weight"}
    )
    coupling: float = dataclasses.field(
        default=1.0, metadata={"help": "homotopy: coupling strength k"}
    )
    homotopy_decrements: int = dataclasses.field(
        default=5, metadata={"help": "homotopy: number of lambda decrements"}
    )

    def __post_init__(self) -> None:
        for name in ("window", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"PDEFitConfig.{name} must be an int >= 1; got {v!r}")
        for name in ("gradient_weight", "laplacian_weight", "noise"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"PDEFitConfig.{name} must be >= 0; got {getattr(self, name)!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"PDEFitConfig.strategy must be one of {list(STRATEGIES)}; got {self.strategy!r}"
            )
        get_loss(self.loss)


class WindowAugmenter(AbstractAugmenter):
    """Random windows of trajectories, with hidden channels that persist.

    ``init({"trajectories": [B, T, C_obs, H, W], "ts": [T]})`` (``C_obs = observed``) pads
    ``channels - C_obs``
    zero hidden channels. ``sample`` draws trajectories ``b`` and start frames
    ``p ∈ [0, T - window - 1]`` and returns ``{"x0": [N, C, H, W], "y": [N, window, C, H, W],
    "ts": [N, window + 1]}`` (``N = batch_size``), with ``noise`` added to the observed
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


def make_loss(cfg: PDEFitConfig, observed: int) -> Callable[..., tuple[Array, dict]]:
    """``loss_fn(model, batch, key) -> (loss, aux)`` for `Trainer`;
    ``aux["prediction"]`` is the rollout ``[N, window, C, H, W]``."""
    base = get_loss(cfg.loss)

    def loss_fn(model: PDESolver, batch: dict, key: PRNGKeyArray) -> tuple[Array, dict]:
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

    return loss_fn


def make_pde_optimiser(
    model: PDESolver, cfg: PDEFitConfig, steps: int
) -> optax.GradientTransformation:
    """``make_optimiser(...)`` followed by the exact projection of the diffusion
    coefficients onto ``>= 0``."""
    base = make_optimiser(
        cfg.optimiser,
        cfg.learning_rate,
        schedule=cfg.schedule,
        steps=steps,
        clip_norm=cfg.clip_norm,
    )
    return optax.chain(base, non_negative(_spec_to_callable(model.non_negative_spec())))


def _spec_to_callable(spec: Any) -> Callable[[Any, Any], bool]:
    """``where(path, leaf)`` that is True on the paths where the bool pytree ``spec`` is True.

    (`non_negative` takes an ``eqx.Module`` spec for a callable, since
    modules are callable; a path predicate avoids the ambiguity.)
    """
    chosen = tuple(
        jax.tree_util.keystr(path)
        for path, leaf in jax.tree_util.tree_flatten_with_path(spec)[0]
        if leaf is True
    )
    # suffix match: the solver may sit inside a strategy's pytree (e.g. ``.field.__self__``)
    return lambda path, leaf: bool(chosen) and jax.tree_util.keystr(path).endswith(chosen)


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


def fit_pde(
    model: PDESolver,
    trajectories: Float[Any, "B T C H W"],
    ts: Float[Any, " T"],
    cfg: PDEFitConfig,
    key: PRNGKeyArray,
    *,
    train: TrainConfig | None = None,
    logger: Logger | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    visualise: Callable[[Any, PRNGKeyArray], dict[str, Any]] | None = None,
) -> TrainResult:
    """Fit ``model`` to ``trajectories`` saved at ``ts`` with `Trainer`."""
    if not isinstance(model, PDESolver):
        raise TypeError(f"model must be a PDESolver; got {type(model).__name__}")
    train = TrainConfig() if train is None else train
    x, t = _check_data(trajectories, ts, model)
    augmenter = WindowAugmenter(
        window=cfg.window,
        batch_size=cfg.batch_size,
        channels=model.rhs.channels,
        observed=x.shape[2],
        noise=cfg.noise,
        persist_hidden=cfg.persist_hidden,
    )
    trainer = Trainer(
        make_loss(cfg, observed=x.shape[2]),
        make_pde_optimiser(model, cfg, train.steps),
        augmenter,
        config=train,
        logger=logger,
        out=out,
        visualise=visualise,
    )
    dtype = jnp.result_type(float)
    data = {"trajectories": jnp.asarray(x, dtype), "ts": jnp.asarray(t, dtype)}
    return trainer.fit(model, data, key, resume=resume)


@eqx.filter_jit
def rollout(model: PDESolver, x0: Float[Array, "B C H W"], ts: Float[Array, " T"]) -> Array:
    """``model`` from every ``x0`` over ``ts``: ``[B, T, C, H, W]`` (jitted)."""
    return jax.vmap(model, in_axes=(0, None))(x0, ts)


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
    c_obs = x.shape[2]
    dtype = jnp.result_type(float)
    x0 = jnp.zeros((x.shape[0], model.rhs.channels, *x.shape[3:]), dtype)
    x0 = x0.at[:, :c_obs].set(jnp.asarray(x[:, start], dtype))
    pred = np.asarray(rollout(model, x0, jnp.asarray(t[start:], dtype)))[:, 1:, :c_obs]
    return np.sqrt(np.mean((pred - x[:, start + 1 :]) ** 2, axis=(0, 2, 3, 4)))


def fit_pde_strategy(
    model: PDESolver,
    trajectory: Float[Any, "T C H W"],
    ts: Float[Any, " T"],
    cfg: PDEFitConfig,
    key: PRNGKeyArray,
    *,
    train: TrainConfig | None = None,
    logger: Logger | None = None,
    out: str | Path | None = None,
) -> tuple[PDESolver, Any]:
    """Fit ``model`` to one whole trajectory ``[T, C, H, W]`` (all channels observed) with a
    strategy of `diffdyn.common` named by ``cfg.strategy``: ``plain`` (one rollout
    from frame 0), ``multiple-shooting`` (``cfg.segments``, ``cfg.continuity``) or
    ``homotopy`` (coupling ``cfg.coupling``, ``cfg.homotopy_decrements`` plateaus of
    ``train.steps / (decrements + 1)`` epochs). The field trained is the solver's projected
    vector field, with the model's solve configuration; diffusion coefficients stay >= 0.
    Returns the best solver (lowest uncoupled MSE) and the strategy's ``FitResult``."""
    from diffdyn.common import (
        Homotopy,
        HomotopySchedule,
        MultipleShooting,
        Plain,
        Trajectory,
    )

    train = TrainConfig() if train is None else train
    x = np.asarray(trajectory)
    if x.ndim != 4 or x.shape[1] != model.rhs.channels:
        raise ValueError(
            f"trajectory must have shape [T, {model.rhs.channels}, H, W]; got {x.shape}"
        )
    dtype = jnp.result_type(float)
    data = Trajectory(jnp.asarray(ts, dtype), jnp.asarray(x, dtype))
    if cfg.strategy == "plain":
        strategy: Any = Plain(solve=model.config)
        steps = train.steps
    elif cfg.strategy == "multiple-shooting":
        strategy = MultipleShooting(
            segments=cfg.segments, continuity=cfg.continuity, solve=model.config
        )
        steps = train.steps
    else:
        per_step = max(1, train.steps // (cfg.homotopy_decrements + 1))
        schedule = HomotopySchedule(decrements=cfg.homotopy_decrements, epochs_per_step=per_step)
        strategy = Homotopy.from_data(data, k=cfg.coupling, schedule=schedule, solve=model.config)
        steps = schedule.total_epochs
    result = strategy.fit(
        model.vector_field,
        data,
        key,
        optimiser=make_pde_optimiser(model, cfg, steps),
        config=train,
        logger=logger,
        out=out,
    )
    return result.best_field.__self__, result


def model_to_fit(
    name: str,
    data: Float[ArrayLike, "B T C H W"],
    *,
    key: PRNGKeyArray,
    hidden: int = 0,
    width: int = 32,
    diffusion: str = "linear",
    advection: bool = False,
    normalise_inputs: bool = True,
    perturb: float = 0.0,
    params: dict[str, float] | None = None,
) -> AbstractPDE:
    """A right-hand side ``name`` (a key of `PDE_MODELS`) ready to be fitted to ``data``.

    - ``neural-rda``: a `NeuralRDA` on the data's channels plus ``hidden`` hidden ones, whose
      networks read each observed channel standardised over ``data``
      (`input_normalisation`) unless ``normalise_inputs`` is false;
    - ``neural-chemotaxis``: one cell density and ``C + hidden - 1`` signals;
    - a fixed model: its literature parameters (or ``params``), each multiplied by
      ``1 ± perturb`` with a random sign drawn from ``key``, so that fitting has something to
      recover.
    """
    data = np.asarray(data)
    if data.ndim != 5:
        raise ValueError(f"data must have shape [B, T, C, H, W]; got {data.shape}")
    channels = data.shape[2]
    if name not in PDE_MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(PDE_MODELS))}")
    cls = PDE_MODELS[name]
    if cls is NeuralRDA:
        norm = input_normalisation(data, channels + hidden) if normalise_inputs else {}
        return NeuralRDA(
            channels + hidden,
            diffusion=diffusion,
            advection=advection,
            width=width,
            key=key,
            **norm,
        )
    if cls is NeuralChemotaxis:
        return NeuralChemotaxis(cells=1, signals=channels + hidden - 1, width=width, key=key)
    base = make_pde(name, **(params or {}))
    if base.channels != channels:
        raise ValueError(f"model {name!r} has {base.channels} channels but the data has {channels}")
    names = [n for n in base.hyperparameters() if eqx.is_array(getattr(base, n))]
    signs = jax.random.rademacher(key, (len(names),))
    perturbed = {
        n: float(getattr(base, n)) * (1 + perturb * float(s))
        for n, s in zip(names, signs, strict=True)
    }
    return type(base)(**{**base.hyperparameters(), **perturbed})
