r"""Dynamics discovery with neural ODEs: models, published settings, fitting and evaluation.

Models (all `AbstractModel`, called as ``field(t, y, args)``):

- `MLPField` (black box): $\dot u = \mathrm{MLP}(u)$, GELU hidden layers.
- `LotkaVolterraGrayBox`: $\dot u = (a x, -d y) + \mathrm{MLP}(\cdot)$; ``a, d``
  known constants (Ko et al. 2023) or trainable (``learn_rates``); the MLP sees ``(x, y)`` or
  only the interaction ``x y`` (``inputs="interaction"``, which makes ``a, d`` identifiable).
- `SecondOrderField`: $\dot\theta = \omega$, $\dot\omega =
  \mathrm{MLP}(\theta, \omega)$.

`DISCOVERY_PRESETS` holds the hyperparameters of Ko et al. 2023 (homotopy training of
neural ODEs) per system, model and method, rebuilt from the authors' scripts; `fit_system`
trains one (system, model, method, seed) with a strategy from `diffdyn.common` and
`evaluate_field` scores the selected
model (lowest uncoupled training MSE): interpolation MSE on the training window (against the
noisy observations and against the clean trajectory) and extrapolation MSE beyond it (against
the clean continuation).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from diffdyn.common import (
    AbstractModel,
    FitResult,
    Homotopy,
    HomotopySchedule,
    MultipleShooting,
    Plain,
    SolveConfig,
    TrainConfig,
    Trajectory,
    make_optimiser,
)

from ._systems import SYSTEMS, Dataset

__all__ = [
    "MLPField",
    "LotkaVolterraGrayBox",
    "SecondOrderField",
    "DISCOVERY_METHODS",
    "DISCOVERY_MODELS",
    "DISCOVERY_PRESETS",
    "DiscoverySettings",
    "discovery_settings",
    "build_discovery_model",
    "discovery_strategy",
    "evaluate_field",
    "fit_system",
    "trajectory_of",
]

DISCOVERY_METHODS = ("plain", "multiple-shooting", "homotopy")
"""Training methods of `fit_system`."""
DISCOVERY_MODELS = ("blackbox", "graybox", "second-order")
"""Models of `fit_system`: a black-box MLP, the Lotka-Volterra gray box, a second-order field."""


def _mlp(in_size: int, out_size: int, width: int, depth: int, key: PRNGKeyArray) -> eqx.nn.MLP:
    return eqx.nn.MLP(in_size, out_size, width, depth, activation=jax.nn.gelu, key=key)


class MLPField(AbstractModel):
    r"""Black-box vector field $\dot u = \mathrm{MLP}(u)$ (``depth`` hidden layers of
    ``width`` GELU units, linear output)."""

    state_dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    mlp: eqx.nn.MLP

    def __init__(self, state_dim: int, width: int = 32, depth: int = 1, *, key: PRNGKeyArray):
        for name, v in (("state_dim", state_dim), ("width", width), ("depth", depth)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        self.state_dim, self.width, self.depth = state_dim, width, depth
        self.mlp = _mlp(state_dim, state_dim, width, depth, key)

    def __call__(self, t: Any, y: Float[Array, " D"], args: Any = None) -> Float[Array, " D"]:
        return self.mlp(y)


class LotkaVolterraGrayBox(AbstractModel):
    r"""$\dot u = (a x, -d y) + \mathrm{MLP}(v)$ with $v = (x, y)$ or
    $v = x y$ (``inputs``); ``a, d`` fixed at the given values or, with
    ``learn_rates``, trained from them (``rates = [a, d]``)."""

    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    a: float = eqx.field(static=True)
    d: float = eqx.field(static=True)
    learn_rates: bool = eqx.field(static=True)
    inputs: str = eqx.field(static=True)
    rates: Float[Array, "2"] | None
    mlp: eqx.nn.MLP

    def __init__(
        self,
        width: int = 20,
        depth: int = 2,
        a: float = 1.3,
        d: float = 1.8,
        learn_rates: bool = False,
        inputs: Literal["state", "interaction"] = "state",
        *,
        key: PRNGKeyArray,
    ):
        if inputs not in ("state", "interaction"):
            raise ValueError(f"inputs must be 'state' or 'interaction', got {inputs!r}")
        self.width, self.depth, self.inputs = width, depth, inputs
        self.a, self.d, self.learn_rates = float(a), float(d), bool(learn_rates)
        self.rates = jnp.asarray([a, d], jnp.result_type(float)) if learn_rates else None
        self.mlp = _mlp(2 if inputs == "state" else 1, 2, width, depth, key)

    @property
    def physics(self) -> tuple[Any, Any]:
        """The (possibly learnt) ``(a, d)``."""
        if self.rates is None:
            return self.a, self.d
        return self.rates[0], self.rates[1]

    def __call__(self, t: Any, y: Float[Array, "2"], args: Any = None) -> Float[Array, "2"]:
        a, d = self.physics
        v = y if self.inputs == "state" else (y[0] * y[1])[None]
        return jnp.stack([a * y[0], -d * y[1]]) + self.mlp(v)


class SecondOrderField(AbstractModel):
    r"""Second-order model on $u = (\theta, \omega)$ (``state_dim = 2n``):
    $\dot\theta = \omega$, $\dot\omega = \mathrm{MLP}(\theta, \omega)$."""

    state_dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    mlp: eqx.nn.MLP

    def __init__(self, state_dim: int, width: int = 50, depth: int = 2, *, key: PRNGKeyArray):
        if not isinstance(state_dim, int) or state_dim < 2 or state_dim % 2:
            raise ValueError(f"state_dim must be an even int >= 2, got {state_dim!r}")
        self.state_dim, self.width, self.depth = state_dim, width, depth
        self.mlp = _mlp(state_dim, state_dim // 2, width, depth, key)

    def __call__(self, t: Any, y: Float[Array, " D"], args: Any = None) -> Float[Array, " D"]:
        n = self.state_dim // 2
        return jnp.concatenate([y[n:], self.mlp(y)])


# ----------------------------------------------------------------------------------------
# Published settings (NeuralODEHomotopy, Ko et al. 2023)
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DiscoverySettings:
    """Every hyperparameter of one fit. ``epochs`` is for plain and multiple shooting;
    homotopy runs ``(decrements + 1) * epochs_per_step`` epochs."""

    width: int
    depth: int
    learning_rate: float
    epochs: int = 4000
    segments: int = 5
    continuity: float = 0.01
    k: float = 6.0
    alpha: float = 1e-3
    decrements: int = 5
    ratio: float = 0.6
    epochs_per_step: int = 100
    weight_decay: float = 0.01


_LV = {
    "plain": {"learning_rate": 0.02, "epochs": 4000},
    "multiple-shooting": {"learning_rate": 0.05, "segments": 5, "continuity": 0.01},
    "homotopy": {"learning_rate": 0.05, "k": 6.0, "decrements": 5, "epochs_per_step": 100},
}
#: (system, model) -> {"width", "depth", "alpha", method -> overrides}; from the scripts of
#: NeuralODEHomotopy (Ko et al. 2023). Van der Pol is ours (LV-like settings).
DISCOVERY_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("lotka-volterra", "blackbox"): {"width": 32, "depth": 1, "alpha": 1e-3, **_LV},
    ("lotka-volterra", "graybox"): {"width": 20, "depth": 2, "alpha": 1e-3, **_LV},
    ("van-der-pol", "blackbox"): {"width": 32, "depth": 1, "alpha": 1e-3, **_LV},
    ("double-pendulum", "second-order"): {
        "width": 50,
        "depth": 2,
        "alpha": 0.0,
        "plain": {"learning_rate": 0.02},
        "multiple-shooting": {"learning_rate": 0.02, "segments": 5, "continuity": 2e-3},
        "homotopy": {"learning_rate": 0.05, "k": 10.0, "decrements": 5, "epochs_per_step": 300},
    },
    ("double-pendulum", "blackbox"): {
        "width": 50,
        "depth": 2,
        "alpha": 0.0,
        "plain": {"learning_rate": 0.02},
        "multiple-shooting": {"learning_rate": 0.02, "segments": 5, "continuity": 1e-3},
        "homotopy": {"learning_rate": 0.02, "k": 10.0, "decrements": 6, "epochs_per_step": 300},
    },
    ("lorenz", "blackbox"): {
        "width": 50,
        "depth": 2,
        "alpha": 1e-4,
        "plain": {"learning_rate": 0.02},
        "multiple-shooting": {"learning_rate": 0.01, "segments": 5, "continuity": 0.5},
        "homotopy": {"learning_rate": 0.02, "k": 6.0, "decrements": 7, "epochs_per_step": 300},
    },
}
"""Hyperparameters of Ko et al. (2023) by ``(system, model)`` and method."""


def discovery_settings(
    system: str, model: str, method: str, epoch_scale: float = 1.0, **overrides: Any
) -> DiscoverySettings:
    """The published `DiscoverySettings` for ``(system, model, method)``; ``overrides``
    that are not ``None`` win; every epoch count is multiplied by ``epoch_scale`` (at least 1)."""
    if method not in DISCOVERY_METHODS:
        raise ValueError(
            f"unknown method {method!r}; known methods: {', '.join(DISCOVERY_METHODS)}"
        )
    if (system, model) not in DISCOVERY_PRESETS:
        known = ", ".join(f"{s}:{m}" for s, m in DISCOVERY_PRESETS)
        raise ValueError(f"no settings for system {system!r} with model {model!r}; known: {known}")
    if not epoch_scale > 0:
        raise ValueError(f"epoch_scale must be > 0, got {epoch_scale!r}")
    preset = DISCOVERY_PRESETS[(system, model)]
    values = {k: v for k, v in preset.items() if k not in DISCOVERY_METHODS}
    values.update(preset[method])
    values.update({k: v for k, v in overrides.items() if v is not None})
    s = DiscoverySettings(**values)
    scaled = {
        "epochs": max(1, round(s.epochs * epoch_scale)),
        "epochs_per_step": max(1, round(s.epochs_per_step * epoch_scale)),
    }
    return dataclasses.replace(s, **scaled)


def build_discovery_model(
    system: str, model: str, settings: DiscoverySettings, key: PRNGKeyArray, **kwargs: Any
) -> AbstractModel:
    """The model ``model`` (one of `DISCOVERY_MODELS`) for ``system``, in the current default
    float dtype."""
    dim = len(SYSTEMS[system].y0)
    if model == "blackbox":
        return MLPField(dim, settings.width, settings.depth, key=key)
    if model == "graybox":
        if system != "lotka-volterra":
            raise ValueError(
                f"model 'graybox' exists for system 'lotka-volterra' only, got {system!r}"
            )
        return LotkaVolterraGrayBox(settings.width, settings.depth, key=key, **kwargs)
    if model == "second-order":
        return SecondOrderField(dim, settings.width, settings.depth, key=key)
    raise ValueError(f"unknown model {model!r}; known models: {', '.join(DISCOVERY_MODELS)}")


def trajectory_of(dataset: Dataset) -> Trajectory:
    """The training `Trajectory` (noisy observations, clean initial state)."""
    return Trajectory(jnp.asarray(dataset.ts), jnp.asarray(dataset.ys), jnp.asarray(dataset.y0))


def discovery_strategy(
    method: str, settings: DiscoverySettings, data: Trajectory, solve: SolveConfig
) -> Plain | MultipleShooting | Homotopy:
    """The `diffdyn.common` object of ``method`` with ``settings``."""
    if method == "plain":
        return Plain(solve=solve)
    if method == "multiple-shooting":
        return MultipleShooting(
            segments=settings.segments, continuity=settings.continuity, solve=solve
        )
    if method == "homotopy":
        schedule = HomotopySchedule(settings.decrements, settings.ratio, settings.epochs_per_step)
        return Homotopy.from_data(
            data, k=settings.k, alpha=settings.alpha, schedule=schedule, solve=solve
        )
    raise ValueError(f"unknown method {method!r}; known methods: {', '.join(DISCOVERY_METHODS)}")


def evaluate_field(field: Any, dataset: Dataset, solve: SolveConfig) -> dict[str, float]:
    """``interp_mse`` (vs the noisy training data), ``interp_mse_clean`` (vs the clean
    trajectory) and ``extrap_mse`` (vs the clean continuation) of ``field`` integrated from
    ``y0`` over the training and extrapolation windows; ``inf`` where the solve fails."""
    ts = jnp.asarray(np.concatenate([dataset.ts, dataset.ts_extrap]))
    sol = eqx.filter_jit(lambda f: solve.solve_full(f, jnp.asarray(dataset.y0), ts, throw=False))(
        field
    )
    ys = np.asarray(sol.ys, np.float64)
    n = len(dataset.ts)
    out = {
        "interp_mse": float(np.mean((ys[:n] - dataset.ys) ** 2)),
        "interp_mse_clean": float(np.mean((ys[:n] - dataset.clean) ** 2)),
        "extrap_mse": float(np.mean((ys[n:] - dataset.ys_extrap) ** 2)),
    }
    return {k: (v if math.isfinite(v) else math.inf) for k, v in out.items()}


def fit_system(
    dataset: Dataset,
    model: str,
    method: str,
    settings: DiscoverySettings,
    key: PRNGKeyArray,
    *,
    solve: SolveConfig,
    train: TrainConfig | None = None,
    logger: Any = None,
    out: Any = None,
    resume: bool = False,
    model_kwargs: dict[str, Any] | None = None,
) -> tuple[FitResult, dict[str, float]]:
    """Build the model, train it with ``method`` (AdamW, constant learning rate) and evaluate
    the selected model. Returns the `FitResult` and the metrics."""
    model_key, train_key = jax.random.split(key)
    field = build_discovery_model(dataset.name, model, settings, model_key, **(model_kwargs or {}))
    data = trajectory_of(dataset)
    strategy = discovery_strategy(method, settings, data, solve)
    optimiser = make_optimiser(
        "adamw",
        settings.learning_rate,
        weight_decay=settings.weight_decay,
        b1=0.9,
        b2=0.999,
        eps=1e-8,
    )
    train = TrainConfig(progress=False) if train is None else train
    train = dataclasses.replace(train, steps=settings.epochs)
    result = strategy.fit(
        field,
        data,
        train_key,
        optimiser=optimiser,
        config=train,
        logger=logger,
        out=out,
        resume=resume,
    )
    metrics = evaluate_field(result.best_field, dataset, solve)
    metrics.update(
        best_train_mse=result.best_mse,
        epochs_to_best=result.epochs_to_best,
        epochs=result.epochs,
        seconds=result.seconds,
        epochs_per_second=result.epochs_per_second,
        parameters=result.best_field.num_parameters(),
        diverged=result.diverged_at is not None,
    )
    return result, metrics
