r"""The workflow of ``diffdyn node fit``: a neural ODE model trained on a toy dataset.

`fit_node` builds the data (training, validation and test data drawn with separate keys,
or the fixed split of a dataset), the model and the task from a `NodeFitConfig`, and trains
with the common `Trainer`:

- the classifiers ``node``, ``anode``, ``input-anode``, ``depth``, ``galerkin`` and ``sonode``
  are `ODEClassifier` models trained by a `ClassificationTask`; on ``crossing`` (the 1-D task
  $x \mapsto -x$) they regress with a `RegressionTask` and ``readout="project"``, so that the
  map stays a pure flow;
- ``cnf`` is a `DensityCNF` trained by a `DensityTask` on the points of a 2-D dataset;
- ``conv-node`` is a `ConvODEClassifier` of the 8x8 ``digits`` (a `ClassificationTask` on
  minibatches of images);
- ``graph-node`` is a `GraphODEClassifier` of the nodes of one `block_model` graph, trained
  by a `NodeClassificationTask` on its training nodes; a per-node MLP of the same width and
  depth, trained and selected alike, is the baseline that sees no edges;
- ``odernn`` (an `ODERNN`, the squared error of its predictions from random contexts) and
  ``latent-ode`` (a `LatentODE`, negative ELBO) learn ``irregular_oscillators`` with an
  `IrregularSeriesTask`; the test scores interpolation (every third observation held out)
  and extrapolation (the observations at $t \ge 5$ predicted from those before), beside
  predicting zeros and, for odernn, a `GRUDelta` (a GRU fed the time deltas) trained and
  selected alike;
- ``integral-node`` is a `TrackingODE` that tracks the ``sinusoid`` $\sin t$ on
  $[0, t_1]$ from $y(0) = 0$, trained by a `TrackingTask` on the integral loss
  $\int_0^{t_1} (y - \sin t)^2\,dt$ that the solver accumulates; the trapezoid rule on a
  fine grid checks the integral, and the untrained model is the reference;
- ``controller`` is a `NeuralController` of the ``double-integrator`` $\dot x = v$,
  $\dot v = u$ (from rest at 0 to rest at 1 at $t_1$), trained by a `LinearQuadraticTask`
  on $\int_0^{t_1} u^2\,dt + 100\,\lVert z(t_1) - (1, 0) \rVert^2$ and compared with the
  closed-form optimum (`linear_quadratic_optimum`), the untrained controller and $u = 0$.

The best model is the one with the lowest loss on the validation data; the test data
score it afterwards (integral-node and controller solve one problem, with no held-out data:
the best model is the one of lowest training loss).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._logger import Logger, NullLogger
from .._optim import OptimConfig
from .._solve import SolveConfig
from .._task import AbstractTask
from .._trainer import TrainConfig, Trainer, TrainResult
from ._control import CONTROL_SOLVE, LinearQuadraticTask, NeuralController, double_integrator
from ._datasets import make
from ._graph_data import GraphODEClassifier, block_model
from ._images import ConvODEClassifier, digits
from ._integral import TRACK_SOLVE, TrackingODE, TrackingTask, sinusoid
from ._irregular import irregular_oscillators
from ._latent import LatentODE
from ._models import MODEL_SOLVE, DensityCNF, ODEClassifier
from ._recurrent import ODERNN, GRUDelta
from ._tasks import (
    ClassificationTask,
    DensityTask,
    IrregularSeriesTask,
    NodeClassificationTask,
    RegressionTask,
)

__all__ = ["NodeFitConfig", "NodeFitResult", "fit_node", "node_fit_preset"]

#: classifier name -> (augment, field) of the `ODEClassifier`
_PRESETS = {
    "node": ("none", "mlp"),
    "anode": ("zero", "mlp"),
    "input-anode": ("input", "mlp"),
    "depth": ("none", "time"),
    "galerkin": ("none", "galerkin"),
    "sonode": ("none", "second-order"),
}
_AUGMENTED = ("anode", "input-anode")
_PLANE = ("moons", "circles", "spirals", "gaussians")
_SERIES_MODELS = ("odernn", "latent-ode")
#: model -> the datasets it takes
_DATASETS_OF = {
    **{name: (*_PLANE, "crossing") for name in _PRESETS},
    "cnf": _PLANE,
    "conv-node": ("digits",),
    "graph-node": ("block-model",),
    "odernn": ("irregular-oscillators",),
    "latent-ode": ("irregular-oscillators",),
    "integral-node": ("sinusoid",),
    "controller": ("double-integrator",),
}
_MODELS = tuple(_DATASETS_OF)
_DATASETS = (
    *_PLANE,
    "crossing",
    "digits",
    "block-model",
    "irregular-oscillators",
    "sinusoid",
    "double-integrator",
)
#: the control problems: one trajectory each, no samples
_PROBLEMS = ("sinusoid", "double-integrator")
#: the double integrator: from rest at 0 to rest at 1, the end-state penalty's weight
_DOUBLE_INTEGRATOR = {"z0": (0.0, 0.0), "target": (1.0, 0.0), "weight": 100.0}
#: fixed splits: digits (scikit-learn's 1,797 images, `digits` with its default fractions)
#: and the block model's nodes (`block_model` with its default size and fractions)
_DIGITS_SPLIT = (1259, 179, 359)
_GRAPH = {"nodes": 300, "classes": 3, "features": 8}
_GRAPH_SPLIT = (60, 60, 180)
#: the irregular oscillators: observations per series and the span of their times
_SERIES = {"max_points": 32, "min_points": 16, "missing": 0.2, "t1": 10.0}
#: the sizes of the conv-node, odernn and latent-ode models that no option sets
_CONV_CHANNELS = 8
_SERIES_HIDDEN, _LATENT_DIM, _OBS_STD = 16, 4, 0.05
#: the hidden size of the GRU-dt baseline of odernn (about the ODE-RNN's parameter count)
_GRU_HIDDEN = 24
#: the default noise of each dataset (``noise=None``)
_NOISE = {"block-model": 2.0, "irregular-oscillators": 0.02}


@dataclasses.dataclass(frozen=True)
class NodeFitConfig:
    """A neural ODE model trained on a toy dataset (``diffdyn node fit``).

    Each model takes its own datasets (any other pair is refused): the classifiers node,
    anode, input-anode, depth, galerkin and sonode take moons, circles, spirals, gaussians or
    crossing; cnf the four 2-D ones; conv-node takes digits; graph-node block-model; odernn
    and latent-ode irregular-oscillators; integral-node sinusoid; controller
    double-integrator. `node_fit_preset` gives the defaults that suit each model
    (``diffdyn node fit --model M`` starts from them).

    Attributes:
        model: node (plain neural ODE), anode (zero augmentation), input-anode (learned input
            layer), depth (time as an input of the field), galerkin (Galerkin weights), sonode
            (second order), cnf (continuous normalising flow density), conv-node
            (convolutional neural ODE classifier of images), graph-node (graph neural ODE
            node classifier), odernn (ODE-RNN predictor trained from random contexts) or
            latent-ode (latent ODE variational autoencoder) of irregular series,
            integral-node (a neural ODE trained on an integral loss to track a target) or
            controller (a neural feedback controller trained on an integral cost).
        dataset: the dataset; crossing is the 1-D regression x -> -x (classifiers only),
            moons, circles, spirals and gaussians are 2-D (a CNF models their points, ignoring
            the labels); digits are scikit-learn's 8x8 digit images (10 classes);
            block-model is one stochastic block-model graph of 300 nodes in 3 classes with 8
            noisy features each; irregular-oscillators are damped oscillators observed at
            16 to 32 random times in [0, 10], each entry missing with probability 0.2;
            sinusoid is the target sin t of y(t) on [0, t1] from y(0) = 0 (the loss is the
            integral of (y - sin t)^2); double-integrator is x' = v, v' = u from rest at 0
            to rest at 1 at t1 (the cost is the integral of u^2 plus 100 times the squared
            miss of the end state). sinusoid and double-integrator are one trajectory each:
            they refuse n_samples, validation_samples, test_samples, noise and batch_size.
        n_samples: training points (training series for irregular-oscillators). digits and
            block-model have fixed splits (digits: 1259 training, 179 validation and 359 test
            images drawn at random from the 1797; block-model: 60, 60 and 180 of the 300
            nodes): the three sizes must stay at their defaults there.
        validation_samples: held-out points (series) that choose the best model.
        test_samples: held-out points (series) that score the best model at the end.
        noise: the standard deviation of the Gaussian noise of the dataset (of each mixture
            component for gaussians; of the node features around their class means for
            block-model; of the observations for irregular-oscillators). None: the
            dataset's own (moons 0.1, circles and spirals 0.05, gaussians 0.2, crossing 0,
            block-model 2, irregular-oscillators 0.02). Refused for digits.
        augment_dim: dimensions added by anode and input-anode (None: 2); refused for the
            other models.
        width: hidden width of the vector field (conv-node: its hidden feature maps, the
            flow carrying 8 channels; graph-node: the state channels per node; odernn and
            latent-ode: the width of their MLPs, whose hidden state is 16 and latent
            state 4; integral-node and controller: the width of their MLPs).
        depth: hidden layers of the vector field (graph-node: hidden graph convolutions);
            refused for conv-node, whose field is two 3x3 convolutions.
        t1: integration time of the flow; refused for odernn and latent-ode, whose flows run
            between the observation times (integral-node and controller: the horizon).
        trace: how a CNF computes the divergence: exact or hutchinson (refused for the other
            models).
        batch_size: points (images, series) per training step; refused for block-model,
            whose every step sees the whole graph.
        solve: how the ODE is solved.
        optim: the optimiser.
        train: the training run.
    """

    model: Literal[
        "node",
        "anode",
        "input-anode",
        "depth",
        "galerkin",
        "sonode",
        "cnf",
        "conv-node",
        "graph-node",
        "odernn",
        "latent-ode",
        "integral-node",
        "controller",
    ] = "anode"
    dataset: Literal[
        "moons",
        "circles",
        "spirals",
        "gaussians",
        "crossing",
        "digits",
        "block-model",
        "irregular-oscillators",
        "sinusoid",
        "double-integrator",
    ] = "moons"
    n_samples: int = 1024
    validation_samples: int = 256
    test_samples: int = 1024
    noise: float | None = None
    augment_dim: int | None = None
    width: int = 32
    depth: int = 2
    t1: float = 1.0
    trace: Literal["exact", "hutchinson"] = "exact"
    batch_size: int = 256
    solve: SolveConfig = MODEL_SOLVE
    optim: OptimConfig = OptimConfig(learning_rate=1e-2)
    train: TrainConfig = TrainConfig(steps=1000, log_every=50)

    def __post_init__(self) -> None:
        if self.model not in _MODELS:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(_MODELS)}")
        if self.dataset not in _DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; known: {', '.join(_DATASETS)}")
        takes = _DATASETS_OF[self.model]
        if self.dataset not in takes:
            what = "a 2-D dataset" if self.model == "cnf" else "the dataset"
            raise ValueError(
                f"model {self.model!r} does not apply to dataset {self.dataset!r}: "
                f"{self.model} takes {what} {' or '.join(takes)}"
            )
        if self.trace != "exact" and self.model != "cnf":
            raise ValueError(
                f"trace={self.trace!r} is a setting of the cnf model; got model {self.model!r}"
            )
        if self.augment_dim is not None:
            if self.model not in _AUGMENTED:
                raise ValueError(
                    f"augment_dim is a setting of {' and '.join(_AUGMENTED)}; got model "
                    f"{self.model!r}"
                )
            if self.augment_dim < 1:
                raise ValueError(f"augment_dim must be >= 1; got {self.augment_dim}")
        fixed = {
            "digits": f"the fixed split of digits ({', '.join(map(str, _DIGITS_SPLIT))} images)",
            "block-model": "the fixed split of the graph's 300 nodes (60, 60, 180)",
        }
        if self.dataset in fixed:
            self._keep_defaults(
                ("n_samples", "validation_samples", "test_samples"), fixed[self.dataset]
            )
        if self.dataset == "digits":
            self._keep_defaults(("noise",), "dataset 'digits', whose images carry no noise")
        if self.model == "conv-node":
            self._keep_defaults(("depth",), "model 'conv-node', whose field is two convolutions")
        if self.dataset == "block-model":
            self._keep_defaults(("batch_size",), "block-model: every step sees the whole graph")
        if self.dataset in _PROBLEMS:
            self._keep_defaults(
                ("n_samples", "validation_samples", "test_samples", "noise", "batch_size"),
                f"dataset {self.dataset!r}, one trajectory from a fixed start (no samples, "
                "noise or batches)",
            )
        if self.model in _SERIES_MODELS:
            self._keep_defaults(
                ("t1",), f"model {self.model!r}, whose flows run between observation times"
            )
        for name in ("n_samples", "validation_samples", "test_samples"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be >= 2; got {getattr(self, name)}")
        for name, least in (("width", 1), ("depth", 0), ("batch_size", 1)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be >= {least}; got {getattr(self, name)}")
        if self.dataset == "digits":
            if self.batch_size > _DIGITS_SPLIT[0]:
                raise ValueError(
                    f"batch_size must be <= {_DIGITS_SPLIT[0]}, the training images of digits; "
                    f"got {self.batch_size}"
                )
        elif self.batch_size > self.n_samples:
            raise ValueError(
                f"batch_size must be <= n_samples = {self.n_samples}; got {self.batch_size}"
            )
        if self.noise is not None and not self.noise >= 0:
            raise ValueError(f"noise must be >= 0 or None; got {self.noise}")
        if not (isinstance(self.t1, (int, float)) and math.isfinite(self.t1) and self.t1 > 0):
            raise ValueError(f"t1 must be a finite number > 0; got {self.t1!r}")

    def _keep_defaults(self, names: tuple[str, ...], why: str) -> None:
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in names:
            if getattr(self, name) != defaults[name]:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} means nothing for {why}; leave {name} at "
                    f"its default {defaults[name]!r}"
                )


def node_fit_preset(model: str) -> NodeFitConfig:
    r"""The config whose values are the defaults of ``diffdyn node fit --model MODEL``.

    The toy classifiers and cnf start from the `NodeFitConfig` defaults (moons). The others
    take their dataset and the settings that train them well in a few minutes on a CPU:

    - conv-node: digits; width 16; 4 fixed rk4 steps; AdamW (learning rate 1e-2, cosine
      schedule, weight decay 0.01); 600 steps of 64 images (about 97% test accuracy);
    - graph-node: block-model; width 16, depth 1; Adam 3e-2; 150 full-graph steps,
      validated every 10;
    - odernn and latent-ode: irregular-oscillators; width 32, depth 1; 2 fixed Heun steps
      per interval between observations; Adam 1e-2 with a cosine schedule down to 10%;
      1000 steps of 16 series;
    - integral-node: sinusoid over $t_1 = 2\pi$; width 32, depth 2; adaptive tsit5 at
      ``rtol=1e-5``, ``atol=1e-7`` (`TRACK_SOLVE`); Adam 3e-2; 1000 steps;
    - controller: double-integrator over $t_1 = 1$; width 32, depth 2; adaptive tsit5 at
      ``rtol=1e-6``, ``atol=1e-8`` (`CONTROL_SOLVE`); Adam 1e-2; 1500 steps.
    """
    if model not in _MODELS:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(_MODELS)}")
    base = NodeFitConfig()
    if model == "conv-node":
        return dataclasses.replace(
            base,
            model=model,
            dataset="digits",
            width=16,
            batch_size=64,
            solve=SolveConfig(solver="rk4", adaptive=False, dt0=0.25, max_steps=8),
            optim=OptimConfig("adamw", learning_rate=1e-2, schedule="cosine", weight_decay=0.01),
            train=TrainConfig(steps=600, log_every=50),
        )
    if model == "graph-node":
        return dataclasses.replace(
            base,
            model=model,
            dataset="block-model",
            width=16,
            depth=1,
            optim=OptimConfig(learning_rate=3e-2),
            train=TrainConfig(steps=150, log_every=10),
        )
    if model in _SERIES_MODELS:
        return dataclasses.replace(
            base,
            model=model,
            dataset="irregular-oscillators",
            width=32,
            depth=1,
            batch_size=16,
            solve=SolveConfig(solver="heun", adaptive=False, dt0=0.5),
            optim=OptimConfig(learning_rate=1e-2, schedule="cosine", alpha=0.1),
            train=TrainConfig(steps=1000, log_every=50),
        )
    if model == "integral-node":
        return dataclasses.replace(
            base,
            model=model,
            dataset="sinusoid",
            t1=2 * math.pi,
            solve=TRACK_SOLVE,
            optim=OptimConfig(learning_rate=3e-2),
            train=TrainConfig(steps=1000, log_every=50),
        )
    if model == "controller":
        return dataclasses.replace(
            base,
            model=model,
            dataset="double-integrator",
            solve=CONTROL_SOLVE,
            optim=OptimConfig(learning_rate=1e-2),
            train=TrainConfig(steps=1500, log_every=50),
        )
    return dataclasses.replace(base, model=model)


@dataclasses.dataclass
class NodeFitResult:
    """What `fit_node` returns.

    Attributes:
        config: the config that ran.
        model: the best model (by validation loss, see ``train.selected_by``).
        train: the `TrainResult` (final and best model, losses, validation history).
        task: the training task (it holds the validation data).
        data: the training data given to the trainer: points ``(x, y)``, images
            ``(x, labels)``, the graph's ``(features, labels, training-node mask)``, the
            series ``(ts, xs, mask)`` or the initial state ``(y0,)`` of sinusoid and
            double-integrator.
        test: the metrics of ``model`` on the test data (``loss``; ``accuracy`` for
            classification; ``interpolation_mse`` and ``extrapolation_mse`` for series); for
            sinusoid the integral loss by the solver and by the trapezoid rule
            (``integral_loss``, ``trapezoid_loss``), for double-integrator the cost
            against the closed-form optimum (``cost``, ``effort``, ``terminal_error``,
            ``optimal_cost``, ``optimal_effort``, ``cost_ratio``).
        test_data: the data scored by ``test``, laid out as ``data`` (for block-model the
            test-node mask).
        baseline: the same test metrics of a reference predictor, where there is one
            (block-model: a per-node MLP trained alike, ``accuracy``; irregular-oscillators:
            predicting zeros, ``interpolation_mse`` and ``extrapolation_mse``, and for odernn
            a `GRUDelta` trained alike, ``gru_dt_interpolation_mse`` and
            ``gru_dt_extrapolation_mse``; sinusoid: the
            untrained model, ``start_integral_loss`` and ``start_trapezoid_loss``;
            double-integrator: the untrained controller's ``start_cost`` and
            ``zero_control_cost``, that of $u = 0$).
        baseline_model: the per-node MLP of block-model, the untrained model of sinusoid
            and double-integrator (else None).
        predictions: irregular-oscillators: the model's predictions of the test series from
            the context of each split, ``{"interpolation": xs [B, T, D], "extrapolation":
            ...}`` (`IrregularSeriesTask.evaluate_predictions`); else empty.
    """

    config: NodeFitConfig
    model: Any
    train: TrainResult
    task: AbstractTask
    data: tuple[Any, ...]
    test: dict[str, float]
    test_data: tuple[Any, ...] | None = None
    baseline: dict[str, float] = dataclasses.field(default_factory=dict)
    baseline_model: Any = None
    predictions: dict[str, Any] = dataclasses.field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """The scalar results: test metrics first (and the baseline's), then how the model
        was selected and trained."""
        cfg, train = self.config, self.train
        if cfg.dataset in _PROBLEMS:
            return self._problem_metrics()
        if cfg.model == "cnf":
            name = "test_nll"
        else:
            name = "test_mse" if cfg.dataset == "crossing" else "test_loss"
        out: dict[str, Any] = {"model": cfg.model, "dataset": cfg.dataset}
        for metric in ("accuracy", "interpolation_mse", "extrapolation_mse"):
            if metric in self.test:
                out[f"test_{metric}"] = self.test[metric]
        out[name] = self.test["loss"]
        if self.baseline:
            out["baseline"] = "per-node MLP" if cfg.dataset == "block-model" else "zeros"
            out.update({f"baseline_{k}": v for k, v in self.baseline.items()})
        out["validation_loss"] = train.best_loss if train.selected_by == "validation" else None
        return out | self._training_metrics()

    def _training_metrics(self) -> dict[str, Any]:
        """What every choice reports of its training: selection, steps, size and speed."""
        train = self.train
        out = dict(
            selected_by=train.selected_by,
            best_step=train.best_step,
            final_loss=train.final_loss,
            steps=train.steps,
            parameters=self.model.num_parameters(),
            seconds=train.seconds,
            steps_per_second=train.steps_per_second,
        )
        if train.diverged_at is not None:
            out["diverged_at"] = train.diverged_at
        return out

    def _problem_metrics(self) -> dict[str, Any]:
        cfg = self.config
        out: dict[str, Any] = {"model": cfg.model, "dataset": cfg.dataset}
        out.update(self.test)
        out.update(self.baseline)
        return out | self._training_metrics()


class _NodeMLP(eqx.Module):
    """The per-node baseline of block-model: one MLP applied to every node's features."""

    mlp: eqx.nn.MLP

    def __call__(self, x: Float[Array, "n f"]) -> Float[Array, "n c"]:
        return jax.vmap(self.mlp)(x)


def _data(cfg: NodeFitConfig, key: PRNGKeyArray, n: int) -> tuple[Any, Any]:
    if cfg.noise is None:
        return make(cfg.dataset, key, n)
    return make(
        cfg.dataset, key, n, **{"std" if cfg.dataset == "gaussians" else "noise": cfg.noise}
    )


def _model(cfg: NodeFitConfig, x: Any, y: Any, key: PRNGKeyArray) -> Any:
    if cfg.model == "cnf":
        return DensityCNF(
            x.shape[1], cfg.width, cfg.depth, trace=cfg.trace, t1=cfg.t1, solve=cfg.solve, key=key
        )
    augment, field = _PRESETS[cfg.model]
    regression = cfg.dataset == "crossing"
    return ODEClassifier(
        x.shape[1],
        y.shape[1] if regression else int(y.max()) + 1,
        augment=augment,
        augment_dim=(2 if cfg.augment_dim is None else cfg.augment_dim) if augment != "none" else 0,
        field=field,
        width=cfg.width,
        depth=cfg.depth,
        readout="project" if regression else "linear",
        t1=cfg.t1,
        solve=cfg.solve,
        key=key,
    )


def _task(cfg: NodeFitConfig, held_out: tuple[Any, Any], batch_size: int | None) -> AbstractTask:
    if cfg.model == "cnf":
        return DensityTask(held_out[0], batch_size=batch_size)
    if cfg.dataset == "crossing":
        return RegressionTask(held_out, batch_size=batch_size)
    return ClassificationTask(held_out, batch_size=batch_size)


def _finish(
    cfg: NodeFitConfig,
    trainer: Trainer,
    model: Any,
    data: tuple[Any, ...],
    test_task: AbstractTask,
    test_data: tuple[Any, ...],
    keys: tuple[PRNGKeyArray, PRNGKeyArray],
    logger: Logger,
    resume: bool,
) -> NodeFitResult:
    """Train, score the best model on the test data and log the test metrics."""
    k_train, k_eval = keys
    result = trainer.fit(model, data, k_train, resume=resume)
    test = test_task.evaluate(result.best_model, k_eval)
    test = {name: float(value) for name, value in test.items()}
    for name, value in test.items():
        logger.scalar(f"test/{name}", value, result.steps)
    return NodeFitResult(cfg, result.best_model, result, trainer.task, data, test, test_data)


def _fit_points(cfg, key, logger, out, resume) -> NodeFitResult:
    k_data, k_val, k_test, k_model, k_train, k_eval = jax.random.split(key, 6)
    x, y = _data(cfg, k_data, cfg.n_samples)
    model = _model(cfg, x, y, k_model)
    task = _task(cfg, _data(cfg, k_val, cfg.validation_samples), cfg.batch_size)
    trainer = Trainer(task, cfg.optim, config=cfg.train, logger=logger, out=out)
    test_data = _data(cfg, k_test, cfg.test_samples)
    data = x if cfg.model == "cnf" else (x, y)
    fit = _finish(
        cfg,
        trainer,
        model,
        data,
        _task(cfg, test_data, None),
        test_data,
        (k_train, k_eval),
        logger,
        resume,
    )
    fit.data = (x, y)
    return fit


def _fit_digits(cfg, key, logger, out, resume) -> NodeFitResult:
    k_data, k_model, k_train, k_eval = jax.random.split(key, 4)
    splits = digits(key=k_data)
    x, y = splits.train
    model = ConvODEClassifier(
        x.shape[1],
        x.shape[2:],
        10,
        channels=_CONV_CHANNELS,
        width=cfg.width,
        t1=cfg.t1,
        solve=cfg.solve,
        key=k_model,
    )
    task = ClassificationTask(splits.validation, batch_size=cfg.batch_size)
    trainer = Trainer(task, cfg.optim, config=cfg.train, logger=logger, out=out)
    test_task = ClassificationTask(splits.test)
    return _finish(
        cfg, trainer, model, (x, y), test_task, splits.test, (k_train, k_eval), logger, resume
    )


def _fit_graph(cfg, key, logger, out, resume) -> NodeFitResult:
    k_data, k_model, k_train, k_eval, k_base = jax.random.split(key, 5)
    noise = _NOISE[cfg.dataset] if cfg.noise is None else cfg.noise
    g = block_model(**_GRAPH, noise=noise, key=k_data)
    model = GraphODEClassifier(
        _GRAPH["nodes"],
        _GRAPH["features"],
        _GRAPH["classes"],
        width=cfg.width,
        depth=cfg.depth,
        t1=cfg.t1,
        solve=cfg.solve,
        key=k_model,
    ).with_graph(g.adjacency)
    data = (g.features, g.labels, g.train)
    task = NodeClassificationTask((g.features, g.labels, g.validation))
    trainer = Trainer(task, cfg.optim, config=cfg.train, logger=logger, out=out)
    test_data = (g.features, g.labels, g.test)
    test_task = NodeClassificationTask(test_data)
    fit = _finish(
        cfg, trainer, model, data, test_task, test_data, (k_train, k_eval), logger, resume
    )
    # the baseline: a per-node MLP of the same width and depth, trained and selected alike
    k_mlp, k_fit = jax.random.split(k_base)
    mlp = _NodeMLP(
        eqx.nn.MLP(_GRAPH["features"], _GRAPH["classes"], cfg.width, cfg.depth, key=k_mlp)
    )
    quiet = dataclasses.replace(cfg.train, progress=False, image_every=0, histogram_every=0)
    base = Trainer(task, cfg.optim, config=quiet).fit(mlp, data, k_fit).best_model
    fit.baseline = {"accuracy": float(test_task.evaluate(base, k_eval)["accuracy"])}
    fit.baseline_model = base
    logger.scalar("test/baseline_accuracy", fit.baseline["accuracy"], fit.train.steps)
    return fit


def _fit_series(cfg, key, logger, out, resume) -> NodeFitResult:
    k_data, k_model, k_train = jax.random.split(key, 3)
    sizes = (cfg.n_samples, cfg.validation_samples, cfg.test_samples)
    noise = _NOISE[cfg.dataset] if cfg.noise is None else cfg.noise
    series = irregular_oscillators(sum(sizes), key=k_data, noise=noise, **_SERIES)
    ends = (sizes[0], sizes[0] + sizes[1])
    data, held_out, test_data = zip(*(jnp.split(a, ends) for a in series), strict=True)
    if cfg.model == "latent-ode":
        model = LatentODE(
            2,
            _LATENT_DIM,
            hidden_dim=_SERIES_HIDDEN,
            width=cfg.width,
            depth=cfg.depth,
            obs_std=_OBS_STD,
            solve=cfg.solve,
            key=k_model,
        )
        objective = "elbo"
    else:
        model = ODERNN(
            2, _SERIES_HIDDEN, width=cfg.width, depth=cfg.depth, solve=cfg.solve, key=k_model
        )
        objective = "context"
    split_time = _SERIES["t1"] / 2
    task = IrregularSeriesTask(
        objective, held_out, batch_size=cfg.batch_size, split_time=split_time
    )
    trainer = Trainer(task, cfg.optim, config=cfg.train, logger=logger, out=out)
    result = trainer.fit(model, data, k_train, resume=resume)
    test_task = IrregularSeriesTask(objective, test_data, split_time=split_time)
    scores, predictions = test_task.evaluate_predictions(result.best_model)
    test = {name: float(value) for name, value in scores.items()}
    ts, xs, mask = test_data
    baseline = {}
    for name, (_, target) in test_task.splits(ts, mask).items():
        baseline[f"{name}_mse"] = float(jnp.sum(jnp.where(target, xs**2, 0.0)) / jnp.sum(target))
    if cfg.model == "odernn":  # a GRU fed the time deltas, trained and selected alike
        k_gru, k_fit = jax.random.split(jax.random.fold_in(key, 1))
        gru = GRUDelta(2, _GRU_HIDDEN, key=k_gru)
        quiet = dataclasses.replace(cfg.train, progress=False, image_every=0, histogram_every=0)
        gru = Trainer(task, cfg.optim, config=quiet).fit(gru, data, k_fit).best_model
        scores = test_task.evaluate_predictions(gru)[0]
        for name in ("interpolation_mse", "extrapolation_mse"):
            baseline[f"gru_dt_{name}"] = float(scores[name])
    for prefix, values in (("test/", test), ("test/baseline_", baseline)):
        for name, value in values.items():
            logger.scalar(f"{prefix}{name}", value, result.steps)
    return NodeFitResult(
        cfg,
        result.best_model,
        result,
        task,
        data,
        test,
        test_data,
        baseline,
        predictions=predictions,
    )


@eqx.filter_jit
def _tracking_scores(task: TrackingTask, model: TrackingODE, y0: Array) -> dict[str, Array]:
    return {
        "integral_loss": model.integral(y0, task.cost)[1],
        "trapezoid_loss": task.trapezoid_loss(model, y0),
    }


def _fit_tracking(cfg, key, logger, out, resume) -> NodeFitResult:
    k_model, k_train = jax.random.split(key)
    model = TrackingODE(1, cfg.width, cfg.depth, t1=cfg.t1, solve=cfg.solve, key=k_model)
    task = TrackingTask(sinusoid)
    y0 = jnp.zeros(1)
    trainer = Trainer(task, cfg.optim, config=cfg.train, logger=logger, out=out)
    result = trainer.fit(model, y0, k_train, resume=resume)
    test = {k: float(v) for k, v in _tracking_scores(task, result.best_model, y0).items()}
    start = _tracking_scores(task, model, y0)
    baseline = {f"start_{k}": float(v) for k, v in start.items()}
    for name, value in {**test, **baseline}.items():
        logger.scalar(f"test/{name}", value, result.steps)
    return NodeFitResult(
        cfg, result.best_model, result, task, (y0,), test, None, baseline, baseline_model=model
    )


def _fit_control(cfg, key, logger, out, resume) -> NodeFitResult:
    k_model, k_train = jax.random.split(key)
    a, b = double_integrator()
    problem = _DOUBLE_INTEGRATOR
    task = LinearQuadraticTask(
        a, b, jnp.array(problem["target"]), t1=cfg.t1, weight=problem["weight"], solve=cfg.solve
    )
    z0 = jnp.array(problem["z0"])
    model = NeuralController(2, 1, cfg.width, cfg.depth, t1=cfg.t1, key=k_model)
    trainer = Trainer(task, cfg.optim, config=cfg.train, logger=logger, out=out)
    result = trainer.fit(model, z0, k_train, resume=resume)
    costs = task.costs(result.best_model, z0)
    optimum = task.optimum(z0)
    test = {k: float(costs[k]) for k in ("cost", "effort", "terminal_error")}
    test.update(
        optimal_cost=float(optimum.cost),
        optimal_effort=float(optimum.effort),
        cost_ratio=test["cost"] / float(optimum.cost),
    )
    baseline = {
        "start_cost": float(task.costs(model, z0)["cost"]),
        "zero_control_cost": float(task.costs(task.zero_control(), z0)["cost"]),
    }
    for name, value in {**test, **baseline}.items():
        logger.scalar(f"test/{name}", value, result.steps)
    return NodeFitResult(
        cfg, result.best_model, result, task, (z0,), test, None, baseline, baseline_model=model
    )


def fit_node(
    cfg: NodeFitConfig,
    key: PRNGKeyArray,
    *,
    logger: Logger | None = None,
    out: str | Path | None = None,
    resume: bool = False,
) -> NodeFitResult:
    """Train the model of ``cfg`` on its dataset, choose the best model on the validation
    data and score it on the test data (logged under ``test/``, with the baseline of
    block-model and irregular-oscillators); sinusoid and double-integrator keep the model of
    lowest training loss and score it against the untrained model (and the closed-form
    optimum of the double integrator).

    ``out`` receives the trainer's checkpoints and ``model.eqx`` / ``best.eqx``; ``resume``
    continues from the checkpoint there.
    """
    logger = NullLogger() if logger is None else logger
    if cfg.dataset == "digits":
        fit = _fit_digits(cfg, key, logger, out, resume)
    elif cfg.dataset == "block-model":
        fit = _fit_graph(cfg, key, logger, out, resume)
    elif cfg.dataset == "irregular-oscillators":
        fit = _fit_series(cfg, key, logger, out, resume)
    elif cfg.dataset == "sinusoid":
        fit = _fit_tracking(cfg, key, logger, out, resume)
    elif cfg.dataset == "double-integrator":
        fit = _fit_control(cfg, key, logger, out, resume)
    else:
        fit = _fit_points(cfg, key, logger, out, resume)
    logger.flush()
    return fit
