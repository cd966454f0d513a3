r"""Training tasks of neural differential equations on point data, graphs and series, for
the common `Trainer`.

- `ClassificationTask`: the mean cross-entropy of logits against integer labels,
  $-\frac1B \sum_b \log \mathrm{softmax}(f(x_b))_{y_b}$ (the accuracy is logged beside it);
- `RegressionTask`: the mean squared error $\frac1B \sum_b \|f(x_b) - y_b\|^2 / O$;
- `DensityTask`: the negative log-likelihood $-\frac1B \sum_b \log p(x_b)$ of a density model
  such as `DensityCNF` or `CNF`;
- `NodeClassificationTask`: the cross-entropy over a mask of the nodes of one graph, whose
  model classifies every node at once;
- `IrregularSeriesTask`: the negative ELBO of a `LatentODE`, or the squared error of the
  predictions of an `ODERNN` (or a `GRUDelta`) from all the observations before each step
  or from random contexts, on padded, irregularly sampled series, scored by interpolation
  and extrapolation errors.

Each draws minibatches of ``batch_size`` samples (the whole data when ``None``; the node
task always sees the whole graph) and, given held-out data, scores the model on them
(`AbstractTask.evaluate`): the trainer then keeps the model with the lowest validation loss.
With 2-D inputs the point tasks also draw (the decision boundary, the density) for
TensorBoard.

Data are tuples of arrays sharing their leading axis: ``(inputs..., labels)`` for
classification and regression (the model maps one sample's inputs to its output, so a
`NeuralCDE` takes ``(ts, xs, labels)``), the samples ``x [N, D]`` alone for density
estimation, ``(X, labels, mask)`` over the nodes of a graph, ``(ts, xs, mask)`` for series.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._augment import ArrayAugmenter, FullBatch
from .._task import AbstractTask
from ._figures import _image, decision_boundary_figure, density_figure
from ._latent import LatentODE
from ._recurrent import ODERNN, GRUDelta, _flow

__all__ = [
    "ClassificationTask",
    "RegressionTask",
    "DensityTask",
    "NodeClassificationTask",
    "IrregularSeriesTask",
    "SERIES_OBJECTIVES",
]


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


# ------------------------------------------------------------------ nodes of one graph


def _check_nodes(data: Any, name: str) -> tuple[Array, Array, Array]:
    """``(x [N, ...], labels [N] integers, mask [N] bool with at least one node)``."""
    arrays = _check_tuple(data, name, 3)
    if len(arrays) != 3:
        raise ValueError(
            f"argument {name!r} must be (x, labels, mask) sharing the node axis; got "
            f"{len(arrays)} arrays"
        )
    x, labels, mask = arrays
    if labels.ndim != 1 or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"argument {name!r}: labels must be integers [N]; got {labels.dtype} {labels.shape}"
        )
    if mask.ndim != 1 or mask.dtype != jnp.bool_:
        raise TypeError(f"argument {name!r}: mask must be bool [N]; got {mask.dtype} {mask.shape}")
    if not isinstance(mask, jax.core.Tracer) and not bool(jnp.any(mask)):
        raise ValueError(f"argument {name!r}: the mask selects no node")
    return x, labels, mask


def _masked_cross_entropy(model: Any, batch: tuple[Array, ...]) -> tuple[Array, dict[str, Array]]:
    x, labels, mask = batch
    logits = model(x)
    count = jnp.sum(mask)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    loss = jnp.sum(jnp.where(mask, losses, 0.0)) / count
    accuracy = jnp.sum(mask & (jnp.argmax(logits, -1) == labels)) / count
    return loss, {"accuracy": accuracy}


_jit_masked_cross_entropy = eqx.filter_jit(_masked_cross_entropy)


class NodeClassificationTask(AbstractTask):
    r"""Classify the nodes of one graph: the cross-entropy over the nodes of a mask $M$,

    $$
    L = -\frac{1}{|M|} \sum_{i \in M} \log \mathrm{softmax}\big(f(X)_i\big)_{y_i},
    $$

    where the model maps the features of every node, ``X [N, F]``, to logits ``[N, C]`` at
    once (its graph is part of the model, e.g. `GraphODEClassifier.with_graph`), so that a
    node's logits may depend on its neighbours while the loss sees only the labels in $M$.

    Args:
        validation: held-out ``(X, labels [N], mask [N] bool)``: the same graph and
            features with the mask of the validation nodes (the best model is the one with
            the lowest cross-entropy there), or ``None``.

    The data given to `Trainer.fit` is ``(X, labels, mask)`` with the mask of the training
    nodes; every step sees the whole graph (full batch). The accuracy over the masked nodes
    is logged beside the loss and reported by `evaluate`.
    """

    validation: tuple[Array, Array, Array] | None

    def __init__(self, validation: Any = None):
        self.validation = None if validation is None else _check_nodes(validation, "validation")

    def init(self, model: Any, data: Any) -> Any:
        _check_nodes(data, "data")
        return model

    def loss(self, model: Any, batch: Any, key: PRNGKeyArray) -> tuple[Array, dict[str, Array]]:
        return _masked_cross_entropy(model, tuple(batch))

    def evaluate(self, model: Any, key: PRNGKeyArray) -> dict[str, Any]:
        """The cross-entropy (``loss``) and the accuracy over the held-out nodes."""
        if self.validation is None:
            return super().evaluate(model, key)
        loss, aux = _jit_masked_cross_entropy(model, self.validation)
        return {"loss": loss, "accuracy": aux["accuracy"]}

    @property
    def validates(self) -> bool:
        return self.validation is not None


# ------------------------------------------------------------------ irregular series

SERIES_OBJECTIVES = ("elbo", "one-step", "context")
"""The objectives of an `IrregularSeriesTask`: ``elbo`` (the negative ELBO of a `LatentODE`),
``one-step`` (the one-step-ahead squared error of an `ODERNN` or a `GRUDelta`) and
``context`` (their squared error from random contexts)."""


def _check_series(data: Any, name: str) -> tuple[Array, Array, Array]:
    """``(ts [B, T], xs [B, T, D], mask [B, T, D] bool)``."""
    arrays = _check_tuple(data, name, 3)
    if len(arrays) != 3:
        raise ValueError(
            f"argument {name!r} must be (ts, xs, mask) sharing the series axis; got "
            f"{len(arrays)} arrays"
        )
    ts, xs, mask = arrays
    if xs.ndim != 3 or ts.shape != xs.shape[:2] or mask.shape != xs.shape:
        raise ValueError(
            f"argument {name!r} must be ts [B, T], xs [B, T, D] and mask [B, T, D]; got shapes "
            f"{ts.shape}, {xs.shape} and {mask.shape}"
        )
    if mask.dtype != jnp.bool_:
        raise TypeError(f"argument {name!r}: the mask must be bool; got {mask.dtype}")
    return ts, xs, mask


def _check_series_model(objective: str, model: Any) -> None:
    wanted = (LatentODE,) if objective == "elbo" else (ODERNN, GRUDelta)
    if not isinstance(model, wanted):
        names = " or ".join(w.__name__ for w in wanted)
        raise TypeError(f"the {objective!r} objective trains a {names}; got {type(model).__name__}")


def _one_step(model: ODERNN, ts: Array, xs: Array, context: Array, t0: float) -> Array:
    r"""$\hat x_i = W \Phi_{s_i \to t_i}(h_{s_i}) + b$ for every step $i$: the state after
    the last context step before $i$ (time $s_i$; $h = 0$ at ``t0`` if none), evolved to
    $t_i$ and read out."""
    post = model(ts, xs, context, t0=t0)  # [T, H]; steps outside the context repeat
    seen = jnp.any(context, -1)
    last = jax.lax.cummax(jnp.where(seen, ts, t0))
    h_before = jnp.concatenate([jnp.zeros_like(post[:1]), post[:-1]])
    t_before = jnp.concatenate([jnp.full((1,), t0, ts.dtype), last[:-1]])
    field = lambda t, h: model.vector_field(t, h)  # noqa: E731
    evolved = jax.vmap(lambda h, s, dt: _flow(model.solve, field, h, s, dt))(
        h_before, t_before, ts - t_before
    )
    return jax.vmap(model.readout)(evolved)


def _series_predict(objective: str, model: Any, ts, xs, context, t0: float) -> Array:
    if objective == "elbo":
        return model.reconstruct(ts, xs, context, ts_out=ts, t0=t0, key=None)[1]
    if isinstance(model, GRUDelta):
        return model(ts, xs, context, t0=t0)
    return _one_step(model, ts, xs, context, t0)


def _masked_mse(predicted: Array, xs: Array, target: Array) -> Array:
    return jnp.sum(jnp.where(target, (predicted - xs) ** 2, 0.0)) / jnp.sum(target)


def _negative_elbo(model: Any, data: tuple[Array, ...], t0: float, key: PRNGKeyArray) -> Array:
    ts, xs, mask = data
    keys = jax.random.split(key, ts.shape[0])
    elbo = lambda t, x, m, k: model.negative_elbo(t, x, m, t0=t0, key=k)  # noqa: E731
    return jnp.sum(jax.vmap(elbo)(ts, xs, mask, keys)) / jnp.sum(mask)


def _predictions(
    objective: str, model: Any, data: tuple[Array, ...], contexts: list[Array], t0: float
) -> list[Array]:
    """The predictions of every series from each of ``contexts`` (one vmapped call)."""
    ts, xs, _ = data
    n = len(contexts)
    repeat = lambda a: jnp.concatenate([a] * n)  # noqa: E731
    predict = lambda t, x, c: _series_predict(objective, model, t, x, c, t0)  # noqa: E731
    predicted = jax.vmap(predict)(repeat(ts), repeat(xs), jnp.concatenate(contexts))
    return jnp.split(predicted, n)


def _random_contexts(key: PRNGKeyArray, mask: Array, held_out: float = 0.3) -> Array:
    r"""One random context ``[B, T, D]`` per series: with probability 1/2 its first $k$
    observed steps, $k$ uniform in $1 \dots$ (observed steps); else every observed step but
    the first held out with probability ``held_out``."""
    seen = jnp.any(mask, -1)
    rank = jnp.cumsum(seen, axis=1)
    count = rank[:, -1:]
    k_kind, k_length, k_held = jax.random.split(key, 3)
    late = jax.random.bernoulli(k_kind, 0.5, count.shape)
    length = 1 + jnp.floor(jax.random.uniform(k_length, count.shape) * count)
    after = seen & (rank > length)
    held = seen & (rank > 1) & (jax.random.uniform(k_held, seen.shape) < held_out)
    return mask & ~jnp.where(late, after, held)[..., None]


def _series_loss(
    objective: str, model: Any, data: tuple[Array, ...], t0: float, key: PRNGKeyArray
) -> Array:
    if objective == "elbo":
        return _negative_elbo(model, data, t0, key)
    context = data[2] if objective == "one-step" else _random_contexts(key, data[2])
    (predicted,) = _predictions(objective, model, data, [context], t0)
    return _masked_mse(predicted, data[1], data[2])


def _series_splits(ts: Array, mask: Array, split_time: float) -> dict[str, tuple[Array, Array]]:
    seen = jnp.any(mask, -1)  # [B, T]
    rank = jnp.cumsum(seen, axis=1)
    count = rank[:, -1:]
    held = seen & (rank % 3 == 0) & (rank < count)
    late = seen & (ts >= split_time)
    return {
        name: (mask & ~target[..., None], mask & target[..., None])
        for name, target in (("interpolation", held), ("extrapolation", late))
    }


@eqx.filter_jit
def _series_scores(
    objective: str, model: Any, data: tuple[Array, ...], t0: float, split_time: float
) -> tuple[dict[str, Array], dict[str, Array]]:
    ts, xs, mask = data
    splits = _series_splits(ts, mask, split_time)
    contexts = [context for context, _ in splits.values()]
    if objective == "elbo":
        out = {"loss": _negative_elbo(model, data, t0, jax.random.key(0))}
    elif objective == "one-step":  # the one-step predictions share the call with the others
        contexts = [mask, *contexts]
    predicted = _predictions(objective, model, data, contexts, t0)
    if objective == "one-step":
        out = {"loss": _masked_mse(predicted.pop(0), xs, mask)}
    scores = {}
    for (name, (_, target)), guess in zip(splits.items(), predicted, strict=True):
        scores[f"{name}_mse"] = _masked_mse(guess, xs, target)
    if objective == "context":
        out = {"loss": (scores["interpolation_mse"] + scores["extrapolation_mse"]) / 2}
    out.update(scores)
    return out, dict(zip(splits, predicted, strict=True))


class IrregularSeriesTask(AbstractTask):
    r"""Learn irregularly sampled, padded time series with a `LatentODE`, an `ODERNN` or a
    `GRUDelta`.

    Args:
        objective: ``elbo`` (a `LatentODE`): the negative ELBO
            (`LatentODE.negative_elbo`) summed over the series of the batch and divided by
            their number of observed entries; ``one-step`` (an `ODERNN` or a `GRUDelta`): the
            one-step-ahead squared error $\sum_{b,i,d} m_{bid} (\hat x_{bid} - x_{bid})^2 /
            \sum m$, where $\hat x_i = W\,\Phi_{t_{i-1} \to t_i}(h_{i-1}) + b$ is read out
            from the state after the observations before $t_i$, evolved by the ODE to $t_i$
            (`predict`); or ``context`` (the same models): the same squared error of
            predictions made from a random context of each series, drawn afresh every step
            (half the series keep their first $k$ observed steps, $k$ uniform; the others
            lose each observed step but the first with probability 0.3), so that the model
            learns to carry its state across gaps; its held-out ``loss`` is the mean of the
            interpolation and extrapolation errors.
        validation: held-out series ``(ts [B, T], xs [B, T, D], mask [B, T, D] bool)``
            (padded steps masked) to score the model on, or ``None``; the best model is the
            one with the lowest objective there (the ELBO's posterior draws use the same key
            at every evaluation).
        batch_size: series per step, drawn without replacement (``None``: all of them).
        t0: where every series starts: the time of the models' initial states (not after
            the first observation).
        split_time: the extrapolation boundary (see `splits`).

    The data given to `Trainer.fit` is ``(ts, xs, mask)`` as for ``validation``. `evaluate`
    reports the objective (``loss``) and the mean squared errors over held-out entries of two
    predictions (`splits`): ``interpolation_mse`` and ``extrapolation_mse``.
    """

    objective: str = eqx.field(static=True)
    validation: tuple[Array, Array, Array] | None
    batch_size: int | None = eqx.field(static=True)
    t0: float = eqx.field(static=True)
    split_time: float = eqx.field(static=True)

    def __init__(
        self,
        objective: str,
        validation: Any = None,
        *,
        batch_size: int | None = None,
        t0: float = 0.0,
        split_time: float,
    ):
        if objective not in SERIES_OBJECTIVES:
            raise ValueError(
                f"argument 'objective' must be one of {SERIES_OBJECTIVES}; got {objective!r}"
            )
        self.objective = objective
        self.validation = None if validation is None else _check_series(validation, "validation")
        self.batch_size = _check_batch_size(batch_size)
        for name, value in (("t0", t0), ("split_time", split_time)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (np.isfinite(value))
            ):
                raise ValueError(f"argument {name!r} must be a finite number; got {value!r}")
        if not split_time > t0:
            raise ValueError(f"argument 'split_time' must be > t0 = {t0}; got {split_time}")
        self.t0, self.split_time = float(t0), float(split_time)

    def init(self, model: Any, data: Any) -> Any:
        _check_series_model(self.objective, model)
        _check_series(data, "data")
        return model

    def loss(self, model: Any, batch: Any, key: PRNGKeyArray) -> Array:
        return _series_loss(self.objective, model, tuple(batch), self.t0, key)

    def augmenter(self) -> Any:
        return _augmenter(self.batch_size)

    def splits(
        self, ts: Float[Array, "b t"], mask: Bool[Array, "b t d"]
    ) -> dict[str, tuple[Bool[Array, "b t d"], Bool[Array, "b t d"]]]:
        r"""``{"interpolation": (context, targets), "extrapolation": (context, targets)}``:
        masks ``[B, T, D]`` that split the observed entries of each series. Interpolation
        holds out every third observed step (the 3rd, 6th, ..., never the last one);
        extrapolation holds out the steps at $t \ge$ ``split_time``. The context is the rest
        of the observed entries."""
        ts, mask = jnp.asarray(ts), jnp.asarray(mask)
        if ts.ndim != 2 or mask.ndim != 3 or mask.shape[:2] != ts.shape:
            raise ValueError(
                f"arguments 'ts' [B, T] and 'mask' [B, T, D] must agree; got {ts.shape} and "
                f"{mask.shape}"
            )
        return _series_splits(ts, mask.astype(bool), self.split_time)

    def predict(
        self,
        model: Any,
        ts: Float[Array, " t"],
        xs: Float[Array, "t d"],
        context: Bool[Array, "t d"],
    ) -> Float[Array, "t d"]:
        r"""The model's prediction of every step of one series from the entries in
        ``context``: the mean path $g(z(t_i))$ of `LatentODE.reconstruct` (``elbo``), the
        ODE-RNN's state after the context steps before $t_i$, evolved to $t_i$ and read out,
        or the `GRUDelta`'s prediction (``one-step``, ``context``)."""
        _check_series_model(self.objective, model)
        return _series_predict(self.objective, model, ts, xs, context, self.t0)

    def evaluate(self, model: Any, key: PRNGKeyArray) -> dict[str, Any]:
        """The objective (``loss``), ``interpolation_mse`` and ``extrapolation_mse`` on the
        held-out series."""
        return self.evaluate_predictions(model)[0]

    def evaluate_predictions(
        self, model: Any
    ) -> tuple[dict[str, Array], dict[str, Float[Array, "b t d"]]]:
        """`evaluate`'s metrics and the predictions they score: ``{"interpolation": [B, T,
        D], "extrapolation": [B, T, D]}``, every held-out series predicted from the context
        of that split (`splits`, `predict`)."""
        if self.validation is None:
            return super().evaluate(model, None), {}
        _check_series_model(self.objective, model)
        return _series_scores(self.objective, model, self.validation, self.t0, self.split_time)

    @property
    def validates(self) -> bool:
        return self.validation is not None
