r"""The workflow of ``diffdyn node fit``: a neural ODE classifier or a CNF on a toy dataset.

`fit_node` builds the data (training, validation and test points drawn with separate keys),
the model and the task from a `NodeFitConfig`, and trains with the common `Trainer`:

- the classifiers ``node``, ``anode``, ``input-anode``, ``depth``, ``galerkin`` and ``sonode``
  are `ODEClassifier` models trained by a `ClassificationTask`; on ``crossing`` (the 1-D task
  $x \mapsto -x$) they regress with a `RegressionTask` and ``readout="project"``, so that the
  map stays a pure flow;
- ``cnf`` is a `DensityCNF` trained by a `DensityTask` on the points of a 2-D dataset.

The best model is the one with the lowest loss on the validation points; the test points score
it afterwards.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Literal

import jax
from jaxtyping import PRNGKeyArray

from .._logger import Logger, NullLogger
from .._optim import OptimConfig
from .._solve import SolveConfig
from .._task import AbstractTask
from .._trainer import TrainConfig, Trainer, TrainResult
from ._datasets import make
from ._models import MODEL_SOLVE, DensityCNF, ODEClassifier
from ._tasks import ClassificationTask, DensityTask, RegressionTask

__all__ = ["NodeFitConfig", "NodeFitResult", "fit_node"]

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


@dataclasses.dataclass(frozen=True)
class NodeFitConfig:
    """A neural ODE classifier or a CNF trained on a toy dataset (``diffdyn node fit``).

    Attributes:
        model: node (plain neural ODE), anode (zero augmentation), input-anode (learned input
            layer), depth (time as an input of the field), galerkin (Galerkin weights), sonode
            (second order) or cnf (continuous normalising flow density).
        dataset: the toy dataset; crossing is the 1-D regression x -> -x (classifiers only),
            the others are 2-D (a CNF models their points, ignoring the labels).
        n_samples: training points.
        validation_samples: held-out points that choose the best model.
        test_samples: held-out points that score the best model at the end.
        noise: the standard deviation of the Gaussian noise of the dataset (of each mixture
            component for gaussians). None: the dataset's own (moons 0.1, circles and spirals
            0.05, gaussians 0.2, crossing 0).
        augment_dim: dimensions added by anode and input-anode (None: 2); refused for the
            other models.
        width: hidden width of the vector field.
        depth: hidden layers of the vector field.
        t1: integration time of the flow.
        trace: how a CNF computes the divergence: exact or hutchinson (refused for the other
            models).
        batch_size: points per training step.
        solve: how the ODE is solved.
        optim: the optimiser.
        train: the training run.
    """

    model: Literal["node", "anode", "input-anode", "depth", "galerkin", "sonode", "cnf"] = "anode"
    dataset: Literal["moons", "circles", "spirals", "gaussians", "crossing"] = "moons"
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
        if self.model not in (*_PRESETS, "cnf"):
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(_PRESETS)}, cnf")
        if self.model == "cnf" and self.dataset == "crossing":
            raise ValueError("model 'cnf' needs a 2-D dataset; got dataset 'crossing'")
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
        for name in ("n_samples", "validation_samples", "test_samples"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be >= 2; got {getattr(self, name)}")
        for name, least in (("width", 1), ("depth", 0), ("batch_size", 1)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be >= {least}; got {getattr(self, name)}")
        if self.batch_size > self.n_samples:
            raise ValueError(
                f"batch_size must be <= n_samples = {self.n_samples}; got {self.batch_size}"
            )
        if self.noise is not None and not self.noise >= 0:
            raise ValueError(f"noise must be >= 0 or None; got {self.noise}")
        if not (isinstance(self.t1, (int, float)) and math.isfinite(self.t1) and self.t1 > 0):
            raise ValueError(f"t1 must be a finite number > 0; got {self.t1!r}")


@dataclasses.dataclass
class NodeFitResult:
    """What `fit_node` returns.

    Attributes:
        config: the config that ran.
        model: the best model (by validation loss, see ``train.selected_by``).
        train: the `TrainResult` (final and best model, losses, validation history).
        task: the training task (it holds the validation points).
        data: the training points ``(x, y)``.
        test: the metrics of ``model`` on the test points (``loss``, and ``accuracy`` for
            classification).
    """

    config: NodeFitConfig
    model: Any
    train: TrainResult
    task: AbstractTask
    data: tuple[Any, Any]
    test: dict[str, float]

    def metrics(self) -> dict[str, Any]:
        """The scalar results: test metrics first, then how the model was selected and
        trained."""
        cfg, train = self.config, self.train
        if cfg.model == "cnf":
            name = "test_nll"
        else:
            name = "test_mse" if cfg.dataset == "crossing" else "test_loss"
        out: dict[str, Any] = {"model": cfg.model, "dataset": cfg.dataset}
        if "accuracy" in self.test:
            out["test_accuracy"] = self.test["accuracy"]
        out[name] = self.test["loss"]
        out["validation_loss"] = train.best_loss if train.selected_by == "validation" else None
        out.update(
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


def fit_node(
    cfg: NodeFitConfig,
    key: PRNGKeyArray,
    *,
    logger: Logger | None = None,
    out: str | Path | None = None,
    resume: bool = False,
) -> NodeFitResult:
    """Train the model of ``cfg`` on its dataset, choose the best model on the validation
    points and score it on the test points (logged under ``test/``).

    ``out`` receives the trainer's checkpoints and ``model.eqx`` / ``best.eqx``; ``resume``
    continues from the checkpoint there.
    """
    k_data, k_val, k_test, k_model, k_train, k_eval = jax.random.split(key, 6)
    x, y = _data(cfg, k_data, cfg.n_samples)
    model = _model(cfg, x, y, k_model)
    task = _task(cfg, _data(cfg, k_val, cfg.validation_samples), cfg.batch_size)
    logger = NullLogger() if logger is None else logger
    trainer = Trainer(task, cfg.optim, config=cfg.train, logger=logger, out=out)
    result = trainer.fit(model, x if cfg.model == "cnf" else (x, y), k_train, resume=resume)
    test = _task(cfg, _data(cfg, k_test, cfg.test_samples), None).evaluate(
        result.best_model, k_eval
    )
    test = {name: float(value) for name, value in test.items()}
    for name, value in test.items():
        logger.scalar(f"test/{name}", value, result.steps)
    logger.flush()
    return NodeFitResult(cfg, result.best_model, result, task, (x, y), test)
