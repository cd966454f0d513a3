"""Training tasks: what the trainer minimises, on which batches, under which constraints, and
how it looks at and scores the model while it trains.

Every workflow of diffdyn that trains something is a final subclass of `AbstractTask` run by
the one `Trainer`; a plain loss function is wrapped in a `LossTask`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
from jaxtyping import Array, PRNGKeyArray, PyTree

from ._augment import FullBatch

__all__ = ["AbstractTask", "LossTask"]


class AbstractTask(eqx.Module):
    """A training problem that `Trainer` runs.

    A subclass gives `loss` and, where it has them:

    - `augmenter`: how each step's batch is drawn from the data handed to `Trainer.fit`
      (default: the whole data every step);
    - `non_negative`: the leaves kept $\\ge 0$, projected exactly after every update;
    - `visualise`: images or videos to log every ``TrainConfig.image_every`` steps;
    - `evaluate`: metrics on held-out data, logged every ``TrainConfig.validate_every`` steps;
      its ``"loss"`` entry selects the best model;
    - `init` and `result`: what is trained (for instance a vector field together with
      multiple-shooting corrections) and the model it stands for;
    - `steps`: the run length, for a task scheduled over its steps.

    Data arrays that only `evaluate` reads may live on the task: the training step never
    touches them.
    """

    @abc.abstractmethod
    def loss(self, model: Any, batch: Any, key: PRNGKeyArray) -> Array | tuple[Array, dict]:
        """The scalar to minimise, or ``(scalar, aux)`` with a dict ``aux`` whose scalar entries
        are logged and whose ``"prediction"`` entry goes to the augmenter's ``update``."""

    def augmenter(self) -> Any:
        """The augmenter (``init`` / ``sample`` / ``update``) that draws batches."""
        return FullBatch()

    def non_negative(self, model: Any) -> PyTree[bool] | None:
        """A bool pytree (the structure of ``model``, or a prefix) of the leaves kept
        $\\ge 0$, or ``None``."""
        return None

    def visualise(self, model: Any, key: PRNGKeyArray) -> dict[str, Any]:
        """``{tag: image [C, H, W] or video [T, C, H, W]}`` to log."""
        raise NotImplementedError(f"{type(self).__name__} draws nothing")

    def evaluate(self, model: Any, key: PRNGKeyArray) -> dict[str, Any]:
        """Validation metrics of ``model``; the entry ``"loss"`` (lower is better) selects the
        best model."""
        raise NotImplementedError(f"{type(self).__name__} has no held-out data")

    def init(self, model: Any, data: Any) -> Any:
        """The pytree the trainer trains, built from the model and the data given to
        `Trainer.fit`."""
        return model

    def steps(self) -> int | None:
        """The number of steps the task is built for (a schedule over the run), or ``None``
        when any ``TrainConfig.steps`` will do."""
        return None

    def result(self, trained: Any) -> Any:
        """The model that the trained pytree stands for (what is returned and saved)."""
        return trained

    @property
    def draws(self) -> bool:
        """Whether the task implements `visualise`."""
        return type(self).visualise is not AbstractTask.visualise

    @property
    def validates(self) -> bool:
        """Whether the task implements `evaluate`."""
        return type(self).evaluate is not AbstractTask.evaluate


class LossTask(AbstractTask):
    """A task made of a loss function, an optional augmenter and an optional drawing.

    Args:
        loss_fn: ``(model, batch, key) -> loss`` or ``-> (loss, aux)``.
        batches: the augmenter (default `FullBatch`).
        draw: ``(model, key) -> {tag: image or video}``, or ``None``.
        validation: ``(model, key) -> {"loss": ..., ...}`` on held-out data, or ``None``.
    """

    loss_fn: Callable[..., Any] = eqx.field(static=True)
    batches: Any
    draw: Callable[..., dict[str, Any]] | None = eqx.field(static=True)
    validation: Callable[..., dict[str, Any]] | None = eqx.field(static=True)

    def __init__(
        self,
        loss_fn: Callable[..., Any],
        batches: Any = None,
        draw: Callable[..., dict[str, Any]] | None = None,
        validation: Callable[..., dict[str, Any]] | None = None,
    ):
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable; got {type(loss_fn).__name__}")
        for name, fn in (("draw", draw), ("validation", validation)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable or None; got {type(fn).__name__}")
        self.loss_fn = loss_fn
        self.batches = FullBatch() if batches is None else batches
        self.draw = draw
        self.validation = validation

    def loss(self, model: Any, batch: Any, key: PRNGKeyArray) -> Array | tuple[Array, dict]:
        return self.loss_fn(model, batch, key)

    def augmenter(self) -> Any:
        return self.batches

    def visualise(self, model: Any, key: PRNGKeyArray) -> dict[str, Any]:
        if self.draw is None:
            return super().visualise(model, key)
        return self.draw(model, key)

    def evaluate(self, model: Any, key: PRNGKeyArray) -> dict[str, Any]:
        if self.validation is None:
            return super().evaluate(model, key)
        return self.validation(model, key)

    @property
    def draws(self) -> bool:
        return self.draw is not None

    @property
    def validates(self) -> bool:
        return self.validation is not None
