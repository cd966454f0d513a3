r"""Training a rate network towards a target Lyapunov spectrum, on the common Trainer.

The loss of the first $k$ exponents $\lambda$ against a target $c$ (a
constant, e.g. 0 for the "edge of chaos", or a vector) is either

$$
\mathrm{l2}: \ \|\lambda - c\|_2 \qquad\text{or}\qquad
\mathrm{mse}: \ \tfrac1k \textstyle\sum_i (\lambda_i - c_i)^2 ,
$$

and its gradient flows through the whole Benettin iteration (`diffdyn.rnn`). What is
trained: ``"weights"`` (the magnitudes $W$, projected onto $W \ge 0$ after every
update, so signs and Dale's law are kept), ``"gains-shifts"``, ``"gains"`` or ``"shifts"``
(neuronal response modulation; per neuron, or per population when the model has cell types),
or ``"all"``.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from diffdyn.common import TrainConfig, Trainer, TrainResult, make_optimiser, mse, non_negative

from ._lyapunov import lyapunov_spectrum
from ._model import RateRNN

__all__ = ["SpectrumObjective", "TRAINABLE", "trainable_spec", "spectrum_optimiser", "fit_spectrum"]

TRAINABLE: dict[str, tuple[str, ...]] = {
    "weights": ("weight",),
    "gains-shifts": ("gain", "shift"),
    "gains": ("gain",),
    "shifts": ("shift",),
    "all": ("weight", "gain", "shift"),
}
"""Which `RateRNN` parameters each training mode of `fit_spectrum` trains."""


class SpectrumObjective(eqx.Module):
    """``loss_fn(model, h0, key) -> (loss, aux)`` for `Trainer`.

    The batch is the initial state ``h0``; ``key`` draws the initial tangent basis. ``aux``
    holds ``lambda_max`` and ``lambda_mean`` of the measured exponents."""

    target: Float[Array, " k"]
    loss: str = eqx.field(static=True)
    t_sim: float = eqx.field(static=True)
    t_ons: float = eqx.field(static=True)
    t_transient: float = eqx.field(static=True)
    t_ons_transient: float = eqx.field(static=True)

    def __init__(
        self,
        target: Any,
        n_exponents: int,
        *,
        loss: str = "mse",
        t_sim: float = 100.0,
        t_ons: float = 1.0,
        t_transient: float = 50.0,
        t_ons_transient: float = 5.0,
    ):
        if loss not in ("l2", "mse"):
            raise ValueError(f"argument 'loss' must be 'l2' or 'mse'; got {loss!r}")
        target = jnp.asarray(target, dtype=jnp.result_type(float))
        if target.ndim == 0:
            target = jnp.full((n_exponents,), target)
        if target.shape != (n_exponents,):
            raise ValueError(
                f"argument 'target' must be a number or have shape ({n_exponents},); got "
                f"{target.shape}"
            )
        self.target, self.loss = target, loss
        self.t_sim, self.t_ons = float(t_sim), float(t_ons)
        self.t_transient, self.t_ons_transient = float(t_transient), float(t_ons_transient)

    @property
    def n_exponents(self) -> int:
        return int(self.target.shape[0])

    def spectrum(self, model: RateRNN, h0: Array, key: PRNGKeyArray) -> Float[Array, " k"]:
        return lyapunov_spectrum(
            model,
            h0,
            key=key,
            n_exponents=self.n_exponents,
            t_sim=self.t_sim,
            t_ons=self.t_ons,
            t_transient=self.t_transient,
            t_ons_transient=self.t_ons_transient,
        ).exponents

    def __call__(self, model: RateRNN, h0: Array, key: PRNGKeyArray) -> tuple[Array, dict]:
        lam = self.spectrum(model, h0, key)
        target = self.target.astype(lam.dtype)
        if self.loss == "l2":
            value = jnp.sqrt(jnp.sum(jnp.square(lam - target)))
        else:
            value = mse(lam, target)
        return value, {"lambda_max": jnp.max(lam), "lambda_mean": jnp.mean(lam)}


def trainable_spec(model: RateRNN, train: str) -> Any:
    """The equinox filter spec training only the leaves named by ``train`` (`TRAINABLE`)."""
    if train not in TRAINABLE:
        raise ValueError(f"argument 'train' must be one of {list(TRAINABLE)}; got {train!r}")
    spec = jax.tree_util.tree_map(lambda _: False, model)
    names = TRAINABLE[train]
    return eqx.tree_at(lambda m: [getattr(m, x) for x in names], spec, [True] * len(names))


def spectrum_optimiser(
    name: str = "adam", learning_rate: float = 1e-2, clip_norm: float | None = None, **kw: Any
) -> optax.GradientTransformation:
    """``make_optimiser(...)`` followed by the projection ``W >= 0`` of the weight magnitudes."""
    is_weight = lambda path, leaf: jax.tree_util.keystr(path).endswith(".weight")
    return optax.chain(
        make_optimiser(name, learning_rate, clip_norm=clip_norm, **kw), non_negative(is_weight)
    )


def fit_spectrum(
    model: RateRNN,
    h0: Float[Array, " n"],
    objective: SpectrumObjective,
    *,
    key: PRNGKeyArray,
    train: str = "gains-shifts",
    optimiser: optax.GradientTransformation | None = None,
    config: TrainConfig | None = None,
    logger: Any = None,
    out: Any = None,
    resume: bool = False,
) -> TrainResult:
    """Gradient descent on the ``train`` leaves of ``model`` towards ``objective``'s target,
    by `Trainer` (logging, checkpoints, resume, NaN guard)."""
    h0 = model.check_state(h0, "h0")
    if train != "weights" and model.activation in ("tanh", "identity"):
        raise ValueError(
            f"argument 'train' is {train!r} but activation {model.activation!r} has no gain "
            "or shift; use 'tanh-stretched' or 'tanh-positive', or train 'weights'"
        )
    if config is None:
        config = TrainConfig(steps=100, log_every=10, progress=False)
    trainer = Trainer(
        objective,
        spectrum_optimiser() if optimiser is None else optimiser,
        config=config,
        logger=logger,
        out=out,
        filter_spec=trainable_spec(model, train),
    )
    return trainer.fit(model, h0, key, resume=resume)
