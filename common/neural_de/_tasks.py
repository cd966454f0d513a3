r"""Training tasks of neural differential equations on point data, for the common `Trainer`.

- `ClassificationTask`: the mean cross-entropy of logits against integer labels,
  $-\frac1B \sum_b \log \mathrm{softmax}(f(x_b))_{y_b}$ (the accuracy is logged beside it);
- `RegressionTask`: the mean squared error $\frac1B \sum_b \|f(x_b) - y_b\|^2 / O$;
- `DensityTask`: the negative log-likelihood $-\frac1B \sum_b \log p(x_b)$ of a density model
  such as `DensityCNF` or `CNF`.

Each draws minibatches of ``batch_size`` points (the whole data when ``None``) and, given
held-out points, scores the model on them (`AbstractTask.evaluate`): the trainer then keeps
the model with the lowest validation loss. With 2-D inputs the tasks also draw (the decision
boundary, the density) for TensorBoard.

Data are tuples of arrays sharing their leading axis: ``(inputs..., labels)`` for
classification and regression (the model maps one sample's inputs to its output, so a
`NeuralCDE` takes ``(ts, xs, labels)``), the samples ``x [N, D]`` alone for density estimation.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .._augment import ArrayAugmenter, FullBatch
from .._task import AbstractTask
from ._figures import _image, decision_boundary_figure, density_figure

__all__ = ["ClassificationTask", "RegressionTask", "DensityTask"]


def _check_batch_size(batch_size: Any) -> int | None:
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"argument 'batch_size' must be an int >= 1 or None; got {batch_size!r}")
    return batch_size


def _check_tuple(data: Any, name: str, minimum: int = 2) -> tuple[Array, ...] | None:
    """``(inputs..., targets)`` arrays sharing a leading axis, or ``None``."""
    if data is None:
        return None
    if not isinstance(data, (tuple, list)) or len(data) < minimum:
        raise ValueError(
            f"argument {name!r} must be a tuple (inputs..., targets) of arrays sharing their "
            f"leading axis; got {type(data).__name__}"
        )
    arrays = tuple(jnp.asarray(a) for a in data)
    sizes = {a.shape[0] if a.ndim else None for a in arrays}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"argument {name!r}: every array needs the same leading axis; got shapes "
            f"{[a.shape for a in arrays]}"
        )
    return arrays


def _augmenter(batch_size: int | None) -> Any:
    return FullBatch() if batch_size is None else ArrayAugmenter(batch_size)


def _cross_entropy(model: Any, batch: tuple[Array, ...]) -> tuple[Array, dict[str, Array]]:
    *inputs, labels = batch
    logits = jax.vmap(model)(*inputs)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}


def _squared_error(model: Any, batch: tuple[Array, ...]) -> Array:
    *inputs, targets = batch
    return jnp.mean((jax.vmap(model)(*inputs) - targets) ** 2)


def _negative_log_likelihood(model: Any, x: Array, key: PRNGKeyArray) -> Array:
    keys = jax.random.split(key, x.shape[0])
    return -jnp.mean(jax.vmap(model.log_prob)(x, keys))


_jit_cross_entropy = eqx.filter_jit(_cross_entropy)
_jit_squared_error = eqx.filter_jit(_squared_error)
_jit_negative_log_likelihood = eqx.filter_jit(_negative_log_likelihood)


class ClassificationTask(AbstractTask):
    r"""Classify: the mean cross-entropy of the model's logits against integer labels.

    Args:
        validation: held-out ``(inputs..., labels)`` to score the model on (the best model is
            the one with the lowest validation cross-entropy), or ``None``.
        batch_size: points per step, drawn without replacement (``None``: all of them).

    The data given to `Trainer.fit` is ``(inputs..., labels)``: arrays sharing their leading
    axis, ``labels`` integers in $[0, K)$; the model maps one sample's inputs to $K$ logits.
    The accuracy is logged beside the loss and reported by `evaluate`. With a single 2-D
    input and held-out data, `visualise` draws the decision boundary over the held-out points.
    """

    validation: tuple[Array, ...] | None
    batch_size: int | None = eqx.field(static=True)

    def __init__(self, validation: Any = None, *, batch_size: int | None = None):
        validation = _check_tuple(validation, "validation")
        if validation is not None and not jnp.issubdtype(validation[-1].dtype, jnp.integer):
            raise TypeError(
                f"argument 'validation': the labels (last entry) must be integers; got dtype "
                f"{validation[-1].dtype}"
            )
        self.validation = validation
        self.batch_size = _check_batch_size(batch_size)

    def loss(self, model: Any, batch: Any, key: PRNGKeyArray) -> tuple[Array, dict[str, Array]]:
        return _cross_entropy(model, tuple(batch))

    def augmenter(self) -> Any:
        return _augmenter(self.batch_size)

    def evaluate(self, model: Any, key: PRNGKeyArray) -> dict[str, Any]:
        """The cross-entropy (``loss``) and the accuracy on the held-out points."""
        if self.validation is None:
            return super().evaluate(model, key)
        loss, aux = _jit_cross_entropy(model, self.validation)
        return {"loss": loss, "accuracy": aux["accuracy"]}

    def visualise(self, model: Any, key: PRNGKeyArray) -> dict[str, Any]:
        """``{"decision_boundary": image [3, H, W]}`` over the held-out points."""
        if not self.draws:
            return super().visualise(model, key)
        x, y = self.validation
        return {"decision_boundary": _image(decision_boundary_figure(model, x, y))}

    @property
    def validates(self) -> bool:
        return self.validation is not None

    @property
    def draws(self) -> bool:
        v = self.validation
        return v is not None and len(v) == 2 and v[0].ndim == 2 and v[0].shape[1] == 2


class RegressionTask(AbstractTask):
    r"""Regress: the mean squared error between the model's output and the targets.

    Args:
        validation: held-out ``(inputs..., targets)`` to score the model on (the best model is
            the one with the lowest validation error), or ``None``.
        batch_size: points per step, drawn without replacement (``None``: all of them).

    The data given to `Trainer.fit` is ``(inputs..., targets)``: arrays sharing their leading
    axis; the model maps one sample's inputs to an output shaped like one target.
    """

    validation: tuple[Array, ...] | None
    batch_size: int | None = eqx.field(static=True)

    def __init__(self, validation: Any = None, *, batch_size: int | None = None):
        self.validation = _check_tuple(validation, "validation")
        self.batch_size = _check_batch_size(batch_size)

    def loss(self, model: Any, batch: Any, key: PRNGKeyArray) -> Array:
        return _squared_error(model, tuple(batch))

    def augmenter(self) -> Any:
        return _augmenter(self.batch_size)

    def evaluate(self, model: Any, key: PRNGKeyArray) -> dict[str, Any]:
        """The mean squared error (``loss``) on the held-out points."""
        if self.validation is None:
            return super().evaluate(model, key)
        return {"loss": _jit_squared_error(model, self.validation)}

    @property
    def validates(self) -> bool:
        return self.validation is not None


class DensityTask(AbstractTask):
    r"""Estimate a density: the mean negative log-likelihood $-\log p(x)$ of the samples.

    Args:
        validation: held-out samples ``[M, D]`` to score the model on (the best model is the
            one with the lowest validation NLL), or ``None``.
        batch_size: samples per step, drawn without replacement (``None``: all of them).

    The data given to `Trainer.fit` is the samples ``x [N, D]``; the model has
    ``log_prob(x, key)`` for one sample (``key`` draws the noise of a stochastic estimate such
    as Hutchinson's trace, a fresh one per sample and step). The validation NLL uses the same
    noise at every evaluation (common random numbers), so that its changes come from the
    model. With 2-D samples and held-out data, `visualise` draws the learned density.
    """

    validation: Float[Array, "m d"] | None
    batch_size: int | None = eqx.field(static=True)

    def __init__(self, validation: Any = None, *, batch_size: int | None = None):
        if validation is not None:
            validation = jnp.asarray(validation)
            if validation.ndim != 2:
                raise ValueError(
                    f"argument 'validation' must be samples [M, D]; got shape {validation.shape}"
                )
        self.validation = validation
        self.batch_size = _check_batch_size(batch_size)

    def loss(self, model: Any, batch: Any, key: PRNGKeyArray) -> Array:
        return _negative_log_likelihood(model, batch, key)

    def augmenter(self) -> Any:
        return _augmenter(self.batch_size)

    def evaluate(self, model: Any, key: PRNGKeyArray) -> dict[str, Any]:
        """The negative log-likelihood (``loss``) of the held-out samples."""
        if self.validation is None:
            return super().evaluate(model, key)
        key = jax.random.key(0)  # the same noise at every evaluation
        return {"loss": _jit_negative_log_likelihood(model, self.validation, key)}

    def visualise(self, model: Any, key: PRNGKeyArray) -> dict[str, Any]:
        """``{"density": image [3, H, W]}`` over the held-out samples' extent."""
        if not self.draws:
            return super().visualise(model, key)
        return {"density": _image(density_figure(model, np.asarray(self.validation), key=key))}

    @property
    def validates(self) -> bool:
        return self.validation is not None

    @property
    def draws(self) -> bool:
        return self.validation is not None and self.validation.shape[1] == 2
