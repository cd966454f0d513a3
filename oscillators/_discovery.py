r"""Dynamics discovery with neural ODEs: models, published settings, fitting and evaluation.

Models (called as ``field(t, y, args)``):

- the black box $\dot u = \mathrm{MLP}(u)$ is `diffdyn.common.neural_de.MLPField` with GELU
  hidden layers (``MLPField(dim, width, depth, activation="gelu", key=key)``);
- `LotkaVolterraGrayBox`: $\dot u = (a x, -d y) + \mathrm{MLP}(\cdot)$; $a, d$ known
  constants (Ko et al. 2023) or trainable (``learn_rates``); the MLP sees $(x, y)$ or only the
  interaction $x y$ (``inputs="interaction"``, which makes $a, d$ identifiable);
- `SecondOrderField`: $\dot\theta = \omega$, $\dot\omega = \mathrm{MLP}(\theta, \omega)$.

`DISCOVERY_PRESETS` holds the hyperparameters of Ko et al. 2023 (homotopy training of neural
ODEs) per system, model and method, rebuilt from the authors' scripts; `discovery_settings`
turns them into a `DiscoverySettings` (training length in steps, an `OptimConfig`, a
`SolveConfig`). A fit is "build the task and the model, run the `Trainer`": `discovery_task`
gives the strategy of ``diffdyn.common`` (`Plain`, `MultipleShooting` or `Homotopy`, which are
training tasks), and `fit_system` runs it and scores the selected model with `evaluate_field`:
interpolation MSE on the training window (against the noisy observations and against the clean
trajectory) and extrapolation MSE beyond it (against the clean continuation). The selected model
is the one with the lowest uncoupled training MSE after the first logging block.
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
    EnsembleResult,
    Homotopy,
    HomotopySchedule,
    MultipleShooting,
    OptimConfig,
    Plain,
    SolveConfig,
    TrainConfig,
    Trainer,
    TrainResult,
    Trajectory,
)
from diffdyn.common._helpers import check_int
from diffdyn.common.neural_de import MLPField

from ._systems import SYSTEMS, Dataset

__all__ = [
    "LotkaVolterraGrayBox",
    "SecondOrderField",
    "DISCOVERY_METHODS",
    "DISCOVERY_MODELS",
    "DISCOVERY_PRESETS",
    "PUBLISHED_SOLVE",
    "DiscoverySettings",
    "discovery_settings",
    "build_discovery_model",
    "discovery_task",
    "evaluate_field",
    "fit_system",
    "fit_systems",
    "trajectory_of",
]

Method = Literal["plain", "multiple-shooting", "homotopy"]
Model = Literal["blackbox", "graybox", "second-order"]
System = Literal["lotka-volterra", "lorenz", "double-pendulum", "van-der-pol"]

DISCOVERY_METHODS: tuple[str, ...] = ("plain", "multiple-shooting", "homotopy")
"""Training methods: plain, multiple shooting and homotopy."""
DISCOVERY_MODELS: tuple[str, ...] = ("blackbox", "graybox", "second-order")
"""Models: a black-box MLP, the Lotka-Volterra gray box, a second-order field."""


def _mlp(in_size: int, out_size: int, width: int, depth: int, key: PRNGKeyArray) -> eqx.nn.MLP:
    return eqx.nn.MLP(in_size, out_size, width, depth, activation=jax.nn.gelu, key=key)


class LotkaVolterraGrayBox(AbstractModel):
    r"""The Lotka-Volterra gray box $\dot u = (a x, -d y) + \mathrm{MLP}(v)$.

    The MLP ($v = (x, y)$, or $v = x y$ with ``inputs="interaction"``) has ``depth`` hidden
    layers of ``width`` GELU units. $a, d$ are fixed at the given values or, with
    ``learn_rates``, trained from them (the leaf ``rates = [a, d]``).
    """

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
        self.width, self.depth = check_int(width, "width"), check_int(depth, "depth", 0)
        self.inputs = inputs
        self.a, self.d, self.learn_rates = float(a), float(d), bool(learn_rates)
        self.rates = jnp.asarray([a, d], jnp.result_type(float)) if learn_rates else None
        self.mlp = _mlp(2 if inputs == "state" else 1, 2, self.width, self.depth, key)

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
    r"""A second-order model on $u = (\theta, \omega)$ (``state_dim = 2n``):
    $\dot\theta = \omega$, $\dot\omega = \mathrm{MLP}(\theta, \omega)$ (``depth`` hidden
    layers of ``width`` GELU units)."""

    state_dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    mlp: eqx.nn.MLP

    def __init__(self, state_dim: int, width: int = 50, depth: int = 2, *, key: PRNGKeyArray):
        if not isinstance(state_dim, int) or state_dim < 2 or state_dim % 2:
            raise ValueError(f"state_dim must be an even int >= 2, got {state_dim!r}")
        self.state_dim = state_dim
        self.width, self.depth = check_int(width, "width"), check_int(depth, "depth", 0)
        self.mlp = _mlp(state_dim, state_dim // 2, self.width, self.depth, key)

    def __call__(self, t: Any, y: Float[Array, " D"], args: Any = None) -> Float[Array, " D"]:
        n = self.state_dim // 2
        return jnp.concatenate([y[n:], self.mlp(y)])


# ----------------------------------------------------------------------------------------
# Published settings (NeuralODEHomotopy, Ko et al. 2023)
# ----------------------------------------------------------------------------------------

PUBLISHED_SOLVE = SolveConfig(solver="dopri5", rtol=1e-7, atol=1e-9, max_steps=4096)
"""How every fit of Ko et al. (2023) solves its ODEs: dopri5, rtol 1e-7, atol 1e-9."""


def _adamw(learning_rate: float) -> OptimConfig:
    """AdamW with a constant learning rate and weight decay 0.01 (torch's defaults otherwise)."""
    return OptimConfig("adamw", learning_rate, weight_decay=0.01)


@dataclasses.dataclass(frozen=True)
class DiscoverySettings:
    """Every hyperparameter of one fit by one method.

    Training is full batch, so a step is an epoch. Homotopy runs ``decrements + 1`` plateaus of
    equal length: ``steps`` must be a multiple of ``decrements + 1``, and `schedule` derives the
    plateau length from it (the one place where that happens).

    Attributes:
        method: the training method, one of `DISCOVERY_METHODS`.
        width: hidden width of the model's MLP.
        depth: hidden layers of the model's MLP.
        steps: training steps.
        optim: the optimiser.
        solve: how every ODE is solved.
        segments: multiple shooting: the number of segments.
        continuity: multiple shooting: the weight of the continuity penalty.
        k: homotopy: the coupling strength.
        alpha: homotopy: the parameter of the smoothing spline of the data.
        decrements: homotopy: the decrements $M$ of the coupling ($M + 1$ plateaus).
        ratio: homotopy: the decrement ratio $r$.
    """

    method: Method
    width: int
    depth: int
    steps: int
    optim: OptimConfig
    solve: SolveConfig = PUBLISHED_SOLVE
    segments: int = 5
    continuity: float = 0.01
    k: float = 6.0
    alpha: float = 1e-3
    decrements: int = 5
    ratio: float = 0.6

    def __post_init__(self) -> None:
        if self.method not in DISCOVERY_METHODS:
            raise ValueError(
                f"unknown method {self.method!r}; known methods: {', '.join(DISCOVERY_METHODS)}"
            )
        check_int(self.width, "width")
        check_int(self.depth, "depth", 0)
        check_int(self.steps, "steps")
        if not isinstance(self.optim, OptimConfig):
            raise TypeError(f"optim must be an OptimConfig, got {type(self.optim).__name__}")
        if not isinstance(self.solve, SolveConfig):
            raise TypeError(f"solve must be a SolveConfig, got {type(self.solve).__name__}")
        if self.method == "homotopy":
            plateaus = check_int(self.decrements, "decrements") + 1
            if self.steps % plateaus:
                raise ValueError(
                    f"homotopy runs decrements + 1 = {plateaus} plateaus of equal length: the "
                    f"training steps must be a multiple of {plateaus}; got {self.steps} "
                    f"(e.g. {plateaus * max(1, round(self.steps / plateaus))})"
                )

    @property
    def schedule(self) -> HomotopySchedule:
        """The homotopy schedule: ``decrements``, ``ratio`` and
        ``steps / (decrements + 1)`` steps per plateau."""
        return HomotopySchedule(self.decrements, self.ratio, self.steps // (self.decrements + 1))


_LV = {
    "plain": {"optim": _adamw(0.02), "steps": 4000},
    "multiple-shooting": {"optim": _adamw(0.05), "steps": 4000, "segments": 5, "continuity": 0.01},
    # 6 plateaus of 100 steps
    "homotopy": {"optim": _adamw(0.05), "steps": 600, "k": 6.0, "decrements": 5},
}
DISCOVERY_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("lotka-volterra", "blackbox"): {"width": 32, "depth": 1, "alpha": 1e-3, **_LV},
    ("lotka-volterra", "graybox"): {"width": 20, "depth": 2, "alpha": 1e-3, **_LV},
    ("van-der-pol", "blackbox"): {"width": 32, "depth": 1, "alpha": 1e-3, **_LV},
    ("double-pendulum", "second-order"): {
        "width": 50,
        "depth": 2,
        "alpha": 0.0,
        "plain": {"optim": _adamw(0.02), "steps": 4000},
        "multiple-shooting": {
            "optim": _adamw(0.02),
            "steps": 4000,
            "segments": 5,
            "continuity": 2e-3,
        },
        # 6 plateaus of 300 steps
        "homotopy": {"optim": _adamw(0.05), "steps": 1800, "k": 10.0, "decrements": 5},
    },
    ("double-pendulum", "blackbox"): {
        "width": 50,
        "depth": 2,
        "alpha": 0.0,
        "plain": {"optim": _adamw(0.02), "steps": 4000},
        "multiple-shooting": {
            "optim": _adamw(0.02),
            "steps": 4000,
            "segments": 5,
            "continuity": 1e-3,
        },
        # 7 plateaus of 300 steps
        "homotopy": {"optim": _adamw(0.02), "steps": 2100, "k": 10.0, "decrements": 6},
    },
    ("lorenz", "blackbox"): {
        "width": 50,
        "depth": 2,
        "alpha": 1e-4,
        "plain": {"optim": _adamw(0.02), "steps": 4000},
        "multiple-shooting": {
            "optim": _adamw(0.01),
            "steps": 4000,
            "segments": 5,
            "continuity": 0.5,
        },
        # 8 plateaus of 300 steps
        "homotopy": {"optim": _adamw(0.02), "steps": 2400, "k": 6.0, "decrements": 7},
    },
}
"""Hyperparameters of Ko et al. (2023) by ``(system, model)``: the model's ``width``, ``depth``
and the spline's ``alpha``, then per method the optimiser (AdamW, constant learning rate, weight
decay 0.01), the number of ``steps`` (full-batch epochs) and the method's own settings; the
ratio of every homotopy schedule is 0.6 and every solve is `PUBLISHED_SOLVE`. Van der Pol is
ours (Lotka-Volterra-like settings)."""


def discovery_settings(system: str, model: str, method: str, **overrides: Any) -> DiscoverySettings:
    """The published `DiscoverySettings` of ``model`` fitted to ``system`` by ``method``
    (`DISCOVERY_PRESETS`); ``overrides`` (fields of `DiscoverySettings`) that are not
    ``None`` win."""
    if method not in DISCOVERY_METHODS:
        raise ValueError(
            f"unknown method {method!r}; known methods: {', '.join(DISCOVERY_METHODS)}"
        )
    if (system, model) not in DISCOVERY_PRESETS:
        known = ", ".join(f"{s}:{m}" for s, m in DISCOVERY_PRESETS)
        raise ValueError(f"no settings for system {system!r} with model {model!r}; known: {known}")
    names = {f.name for f in dataclasses.fields(DiscoverySettings)} - {"method"}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown settings {unknown}; known: {', '.join(sorted(names))}")
    preset = DISCOVERY_PRESETS[(system, model)]
    values = {k: v for k, v in preset.items() if k not in DISCOVERY_METHODS}
    values.update(preset[method])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return DiscoverySettings(method=method, **values)  # type: ignore[arg-type]


def build_discovery_model(
    system: str,
    model: str,
    settings: DiscoverySettings,
    key: PRNGKeyArray,
    *,
    learn_rates: bool = False,
    inputs: Literal["state", "interaction"] = "state",
) -> AbstractModel:
    """The model ``model`` (one of `DISCOVERY_MODELS`) for ``system`` with the width and depth
    of ``settings``, in the current default float dtype. ``learn_rates`` and ``inputs`` are
    settings of the gray box (`LotkaVolterraGrayBox`), refused for the other models."""
    if model not in DISCOVERY_MODELS:
        raise ValueError(f"unknown model {model!r}; known models: {', '.join(DISCOVERY_MODELS)}")
    if model != "graybox" and (learn_rates or inputs != "state"):
        raise ValueError(
            f"learn_rates and inputs are settings of the gray box, not of model {model!r}"
        )
    dim = len(SYSTEMS[system].y0)
    if model == "blackbox":
        return MLPField(dim, settings.width, settings.depth, activation="gelu", key=key)
    if model == "graybox":
        if system != "lotka-volterra":
            raise ValueError(
                f"model 'graybox' exists for system 'lotka-volterra' only, got {system!r}"
            )
        return LotkaVolterraGrayBox(
            settings.width, settings.depth, learn_rates=learn_rates, inputs=inputs, key=key
        )
    return SecondOrderField(dim, settings.width, settings.depth, key=key)


def trajectory_of(dataset: Dataset) -> Trajectory:
    """The training `Trajectory` of a dataset (noisy observations, clean initial state)."""
    return Trajectory(jnp.asarray(dataset.ts), jnp.asarray(dataset.ys), jnp.asarray(dataset.y0))


def discovery_task(
    settings: DiscoverySettings, data: Trajectory
) -> Plain | MultipleShooting | Homotopy:
    """The training task (a strategy of ``diffdyn.common``) of ``settings.method``; for
    homotopy the smoothing spline of ``data`` is fitted here."""
    if settings.method == "plain":
        return Plain(solve=settings.solve)
    if settings.method == "multiple-shooting":
        return MultipleShooting(
            segments=settings.segments, continuity=settings.continuity, solve=settings.solve
        )
    return Homotopy.from_data(
        data,
        k=settings.k,
        alpha=settings.alpha,
        schedule=settings.schedule,
        solve=settings.solve,
    )


def evaluate_field(field: Any, dataset: Dataset, solve: SolveConfig) -> dict[str, float]:
    """``interp_mse`` (against the noisy training data), ``interp_mse_clean`` (against the
    clean trajectory) and ``extrap_mse`` (against the clean continuation) of ``field``
    integrated from ``y0`` over the training and extrapolation windows; ``inf`` where the solve
    fails."""
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
    field: Any,
    dataset: Dataset,
    settings: DiscoverySettings,
    key: PRNGKeyArray,
    *,
    train: TrainConfig | None = None,
    logger: Any = None,
    out: Any = None,
    resume: bool = False,
) -> tuple[TrainResult, dict[str, Any]]:
    """Train ``field`` on ``dataset`` with `discovery_task` and the `Trainer`, and score the
    selected model with `evaluate_field`.

    Args:
        field: the vector field to train (e.g. from `build_discovery_model`).
        dataset: the observations (`diffdyn.oscillators.make_dataset`).
        settings: the method and its hyperparameters.
        key: the key of the training run.
        train: logging, checkpoints and the like; its ``steps`` must be ``settings.steps``
            (default: ``TrainConfig(steps=settings.steps, progress=False)``).
        logger: where the losses go (default: nowhere).
        out: a folder for checkpoints and ``model.eqx``/``best.eqx`` (default: none).
        resume: continue from the checkpoint in ``out``.

    Returns:
        The `TrainResult` and the metrics: those of `evaluate_field` for the best model, its
        uncoupled training MSE ``best_train_mse`` and ``best_step``, ``steps``, ``seconds``,
        ``steps_per_second``, ``parameters``, ``diverged`` and ``selected_by``.
    """
    train = _checked_train(train, settings)
    data = trajectory_of(dataset)
    trainer = Trainer(
        discovery_task(settings, data), settings.optim, config=train, logger=logger, out=out
    )
    result = trainer.fit(field, data, key, resume=resume)
    return result, _fit_metrics(result, dataset, settings)


def fit_systems(
    fields: list[Any],
    dataset: Dataset,
    settings: DiscoverySettings,
    keys: list[PRNGKeyArray],
    *,
    train: TrainConfig | None = None,
    logger: Any = None,
    out: Any = None,
    resume: bool = False,
) -> tuple[EnsembleResult, list[dict[str, Any]]]:
    """`fit_system` of every field of ``fields`` (one structure, e.g. one model with several
    seeds) with its key of ``keys``, trained together as one ensemble
    (`Trainer.fit_ensemble`): each member is the run ``fit_system(fields[i], ..., keys[i])``
    would make. Returns the `EnsembleResult` and each member's metrics."""
    train = _checked_train(train, settings)
    data = trajectory_of(dataset)
    trainer = Trainer(
        discovery_task(settings, data), settings.optim, config=train, logger=logger, out=out
    )
    ensemble = trainer.fit_ensemble(fields, data, keys, resume=resume)
    return ensemble, [_fit_metrics(r, dataset, settings) for r in ensemble.members]


def _checked_train(train: TrainConfig | None, settings: DiscoverySettings) -> TrainConfig:
    train = TrainConfig(steps=settings.steps, progress=False) if train is None else train
    if train.steps != settings.steps:
        raise ValueError(
            f"train.steps is {train.steps} but the settings are for {settings.steps} steps"
        )
    return train


def _fit_metrics(
    result: TrainResult, dataset: Dataset, settings: DiscoverySettings
) -> dict[str, Any]:
    metrics: dict[str, Any] = evaluate_field(result.best_model, dataset, settings.solve)
    metrics.update(
        best_train_mse=result.best_loss,
        best_step=result.best_step,
        steps=result.steps,
        seconds=result.seconds,
        steps_per_second=result.steps_per_second,
        parameters=result.best_model.num_parameters(),
        diverged=result.diverged_at is not None,
        selected_by=result.selected_by,
    )
    return metrics
