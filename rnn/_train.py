r"""Training a rate network towards a target Lyapunov spectrum: a task of the common Trainer.

The loss of the first $k$ exponents $\lambda$ against a target $c$ (a
constant, e.g. 0 for the "edge of chaos", or a vector) is either

$$
\mathrm{l2}: \ \|\lambda - c\|_2 \qquad\text{or}\qquad
\mathrm{mse}: \ \tfrac1k \textstyle\sum_i (\lambda_i - c_i)^2 ,
$$

and its gradient flows through the whole Benettin iteration (`lyapunov_spectrum`). What is
trained (`TRAINABLE`): ``"weights"`` (the magnitudes $W$, projected onto $W \ge 0$ after every
update through the task's `SpectrumTask.non_negative`, so signs and Dale's law are kept),
``"gains-shifts"``, ``"gains"`` or ``"shifts"`` (neuronal response modulation; per neuron, or
per population when the model has cell types), or ``"all"``.

`SpectrumTask` is the task: ``Trainer(task, OptimConfig(...), config=TrainConfig(...))
.fit(model, h0, key)`` trains a `RateRNN` from the initial state ``h0``. Given a held-out
initial state it also validates: the spectrum measured over a longer time from that state,
always with the same tangent basis, selects the best model. `SpectrumTrainConfig` and
`fit_spectrum` are the workflow of ``diffdyn rnn train``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from diffdyn.common import (
    AbstractTask,
    OptimConfig,
    SolveConfig,
    TrainConfig,
    Trainer,
    TrainResult,
    fixed_field,
    mse,
)

from ._lyapunov import SpectrumConfig
from ._model import STEP_SOLVE, RateRNN, refuse_solve_settings
from ._network import ActivationName, NetworkConfig

__all__ = [
    "TRAINABLE",
    "SpectrumParams",
    "SpectrumTask",
    "TrainNetworkConfig",
    "SpectrumTrainConfig",
    "SpectrumFit",
    "fit_spectrum",
]

TrainableName = Literal["weights", "gains-shifts", "gains", "shifts", "all"]
LossName = Literal["l2", "mse"]

TRAINABLE: dict[str, tuple[str, ...]] = {
    "weights": ("weight",),
    "gains-shifts": ("gain", "shift"),
    "gains": ("gain",),
    "shifts": ("shift",),
    "all": ("weight", "gain", "shift"),
}
"""Which `RateRNN` parameters each choice of `SpectrumTask`'s ``trainable`` trains."""


def _stop(tree: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda x: jax.lax.stop_gradient(x) if eqx.is_inexact_array(x) else x, tree
    )


class SpectrumParams(eqx.Module):
    """What a `SpectrumTask` trains: the network split in two.

    Attributes:
        trained: the `RateRNN` with only the trained leaves (the others ``None``).
        frozen: the rest of it (a fixed field: never trained, read without gradient).
    """

    trained: RateRNN
    frozen: RateRNN = fixed_field()


class SpectrumTask(AbstractTask):
    """Move the first $k$ Lyapunov exponents of a `RateRNN` towards a target.

    The data given to `Trainer.fit` is the initial state ``h0`` (``[N]``); every step measures
    the spectrum from it with ``spectrum`` and a tangent basis drawn from the step's key.

    Args:
        target: the target exponents: a number (for all $k$) or ``[k]`` values.
        spectrum: how the spectrum is measured at every step; its ``n_exponents`` is $k$.
        trainable: which parameters train, a key of `TRAINABLE`.
        loss: ``"mse"`` or ``"l2"`` (see the module docstring).
        held_out: a held-out initial state ``[N]`` to validate on, or ``None`` (no validation).
        validation_t_sim: the measured time of the validation spectrum (its other settings
            are those of ``spectrum``).
        key: the key of the validation's tangent basis (the same at every validation, so
            that models are compared on one estimate); needed with ``held_out``.
    """

    target: Float[Array, " k"]
    held_out: Float[Array, " n"] | None
    validation_key: PRNGKeyArray | None
    spectrum: SpectrumConfig = eqx.field(static=True)
    trainable: str = eqx.field(static=True)
    loss_type: str = eqx.field(static=True)
    validation_t_sim: float = eqx.field(static=True)

    def __init__(
        self,
        target: float | Float[ArrayLike, " k"],
        spectrum: SpectrumConfig,
        *,
        trainable: TrainableName = "gains-shifts",
        loss: LossName = "mse",
        held_out: Float[ArrayLike, " n"] | None = None,
        validation_t_sim: float = 500.0,
        key: PRNGKeyArray | None = None,
    ):
        if not isinstance(spectrum, SpectrumConfig):
            raise TypeError(
                f"argument 'spectrum' must be a SpectrumConfig; got {type(spectrum).__name__}"
            )
        k = spectrum.n_exponents
        if k is None:
            raise ValueError("argument 'spectrum' must set n_exponents (the k exponents trained)")
        if trainable not in TRAINABLE:
            raise ValueError(
                f"argument 'trainable' must be one of {list(TRAINABLE)}; got {trainable!r}"
            )
        if loss not in ("l2", "mse"):
            raise ValueError(f"argument 'loss' must be 'l2' or 'mse'; got {loss!r}")
        target = jnp.asarray(target, dtype=jnp.result_type(float))
        if target.ndim == 0:
            target = jnp.full((k,), target)
        if target.shape != (k,):
            raise ValueError(
                f"argument 'target' must be a number or have shape ({k},) (spectrum."
                f"n_exponents); got {target.shape}"
            )
        if held_out is not None:
            held_out = jnp.asarray(held_out, dtype=jnp.result_type(float))
            if held_out.ndim != 1:
                raise ValueError(f"argument 'held_out' must be a state [N]; got {held_out.shape}")
            if key is None:
                raise ValueError("argument 'key' (the validation basis) is needed with held_out")
            dataclasses.replace(spectrum, t_sim=validation_t_sim)  # checks validation_t_sim
        self.target, self.spectrum = target, spectrum
        self.trainable, self.loss_type = trainable, loss
        self.held_out, self.validation_key = held_out, key
        self.validation_t_sim = float(validation_t_sim)

    @property
    def n_exponents(self) -> int:
        """$k$, the number of exponents in the loss."""
        return int(self.target.shape[0])

    def distance(self, exponents: Float[Array, " k"]) -> Float[Array, ""]:
        """The loss of measured exponents against the target (``l2`` or ``mse``)."""
        target = self.target.astype(exponents.dtype)
        if self.loss_type == "l2":
            return jnp.sqrt(jnp.sum(jnp.square(exponents - target)))
        return mse(exponents, target)

    # ------------------------------------------------------------------ the task's hooks
    def init(self, model: RateRNN, data: Float[ArrayLike, " n"]) -> SpectrumParams:
        """Split ``model`` into the leaves `TRAINABLE` names and the frozen rest."""
        if not isinstance(model, RateRNN):
            raise TypeError(f"SpectrumTask trains a RateRNN; got {type(model).__name__}")
        model.check_state(data, "h0")
        if self.held_out is not None:
            model.check_state(self.held_out, "held_out")
        if self.n_exponents > model.n:
            raise ValueError(
                f"spectrum.n_exponents must be <= N = {model.n}; got {self.n_exponents}"
            )
        if self.trainable != "weights" and model.activation in ("tanh", "identity"):
            raise ValueError(
                f"argument 'trainable' is {self.trainable!r} but activation "
                f"{model.activation!r} has no gain or shift; use 'tanh-stretched' or "
                "'tanh-positive', or train 'weights'"
            )
        names = TRAINABLE[self.trainable]
        spec = jax.tree_util.tree_map(lambda _: False, model)
        spec = eqx.tree_at(lambda m: [getattr(m, x) for x in names], spec, [True] * len(names))
        trained, frozen = eqx.partition(model, spec)
        return SpectrumParams(trained, frozen)

    def result(self, trained: SpectrumParams) -> RateRNN:
        """The network: the trained leaves and the frozen rest (read without gradient)."""
        return eqx.combine(trained.trained, _stop(trained.frozen))

    def non_negative(self, trained: SpectrumParams) -> Any:
        """The weight magnitudes $W$ when they train (kept $\\ge 0$), else ``None``."""
        if "weight" not in TRAINABLE[self.trainable]:
            return None
        spec = jax.tree_util.tree_map(lambda _: False, trained)
        return eqx.tree_at(lambda p: p.trained.weight, spec, True)

    def loss(
        self, model: SpectrumParams, batch: Float[Array, " n"], key: PRNGKeyArray
    ) -> tuple[Array, dict[str, Array]]:
        """The distance of the spectrum measured from ``batch`` (``h0``) to the target; the
        aux holds ``lambda_max`` and ``lambda_mean``."""
        lam = self.spectrum.measure(self.result(model), batch, key=key).exponents
        return self.distance(lam), {"lambda_max": jnp.max(lam), "lambda_mean": jnp.mean(lam)}

    def evaluate(self, model: RateRNN, key: PRNGKeyArray) -> dict[str, Array]:
        """The validation ``loss`` and ``lambda_max`` of the spectrum measured over
        ``validation_t_sim`` from the held-out state, with the task's fixed basis (``key`` is
        not used, so that every validation measures the same way)."""
        del key
        lam = self.validation_spectrum(model)
        return {"loss": self.distance(lam), "lambda_max": jnp.max(lam)}

    @property
    def validates(self) -> bool:
        """Whether the task holds a held-out state to validate on."""
        return self.held_out is not None

    def validation_spectrum(self, model: RateRNN) -> Float[Array, " k"]:
        """The $k$ exponents of ``model`` measured as `evaluate` measures them."""
        if self.held_out is None:
            raise ValueError("this SpectrumTask has no held-out state (held_out=None)")
        return _validation_spectrum(self, model)


@eqx.filter_jit
def _validation_spectrum(task: SpectrumTask, model: RateRNN) -> Float[Array, " k"]:
    spectrum = dataclasses.replace(task.spectrum, t_sim=task.validation_t_sim)
    return spectrum.measure(
        model, task.held_out, key=task.validation_key, checkpoint=False
    ).exponents


# ---------------------------------------------------------------------- the workflow
@dataclasses.dataclass(frozen=True)
class TrainNetworkConfig(NetworkConfig):
    """A `NetworkConfig` whose defaults are a network worth training: a chaotic one
    (N = 100, g = 3) whose activation (tanh-stretched) has a gain and a shift."""

    n: int = 100
    g: float = 3.0
    activation: ActivationName = "tanh-stretched"


# the options' help (the CLI reads the Attributes section) is that of NetworkConfig
_NETWORK_DOC = NetworkConfig.__doc__ or ""
TrainNetworkConfig.__doc__ = (
    f"{TrainNetworkConfig.__doc__}\n\n{_NETWORK_DOC[_NETWORK_DOC.index('    Attributes:') :]}"
)


@dataclasses.dataclass(frozen=True)
class SpectrumTrainConfig:
    """Training a rate network towards a target Lyapunov spectrum (``diffdyn rnn train``).

    Attributes:
        network: the network to train (by default a chaotic one whose activation has a gain
            and a shift).
        solve: the network's fixed step (an explicit solver and dt0, adaptive off).
        spectrum: how the exponents in the loss are measured at every step (n_exponents is
            the number k of exponents trained; None: all N).
        trainable: which parameters train: the weight magnitudes (kept >= 0, so that signs
            and Dale's law are kept), the gains and shifts of the activation, or all.
        loss: l2 (the norm of the exponents minus the target) or mse (its mean square).
        target: the target of every exponent (0: the edge of chaos).
        target_vector: one target per exponent, instead of target (empty: use target).
        validation_t_sim: the measured time of the validation spectrum, taken from a
            held-out initial state with a fixed basis: it selects the best model and gives
            the spectra before and after training.
        optim: the optimiser.
        train: the length of the run, logging, checkpoints and validation.
    """

    network: TrainNetworkConfig = TrainNetworkConfig()
    solve: SolveConfig = STEP_SOLVE
    spectrum: SpectrumConfig = SpectrumConfig(
        n_exponents=10, t_sim=100.0, t_transient=50.0, t_ons_transient=5.0
    )
    trainable: TrainableName = "gains-shifts"
    loss: LossName = "mse"
    target: float = 0.0
    target_vector: tuple[float, ...] = ()
    validation_t_sim: float = 500.0
    optim: OptimConfig = OptimConfig(learning_rate=0.05)
    train: TrainConfig = TrainConfig(steps=200, log_every=10)

    def __post_init__(self) -> None:
        if self.target_vector and self.target != 0.0:
            raise ValueError(
                f"give target ({self.target}) or target_vector ({list(self.target_vector)}), "
                "not both"
            )
        if self.target_vector and self.spectrum.n_exponents != len(self.target_vector):
            raise ValueError(
                f"target_vector has {len(self.target_vector)} values but spectrum.n_exponents "
                f"is {self.spectrum.n_exponents}"
            )
        refuse_solve_settings(
            self.solve, ("adjoint", "max_steps"), "the step map is iterated, not solved by diffrax"
        )


@dataclasses.dataclass
class SpectrumFit:
    """What `fit_spectrum` returns.

    Attributes:
        result: the trainer's `TrainResult` (final and best model, losses, validation).
        task: the task that was trained.
        before: the validation spectrum of the network before training.
        after: the validation spectrum of the best network.
    """

    result: TrainResult
    task: SpectrumTask
    before: np.ndarray
    after: np.ndarray

    @property
    def target(self) -> np.ndarray:
        """The target exponents."""
        return np.asarray(self.task.target)

    def metrics(self) -> dict[str, Any]:
        """Scalar results: $\\lambda_\\max$ and the validation loss before and after, the
        final and best training losses, how the best model was selected, steps and time."""
        r = self.result
        return {
            "lambda_max_before": float(self.before.max()),
            "lambda_max_after": float(self.after.max()),
            "validation_loss_before": float(self.task.distance(jnp.asarray(self.before))),
            "validation_loss_after": float(self.task.distance(jnp.asarray(self.after))),
            "final_loss": r.final_loss,
            "best_step": r.best_step,
            "selected_by": r.selected_by,
            "steps": r.steps,
            "seconds": r.seconds,
        }


def fit_spectrum(
    cfg: SpectrumTrainConfig,
    *,
    key: PRNGKeyArray,
    logger: Any = None,
    out: Any = None,
    resume: bool = False,
) -> SpectrumFit:
    r"""The workflow of ``diffdyn rnn train``: build the network of ``cfg``, an initial state
    and a held-out one ($\mathcal N(0, I)$), the `SpectrumTask`, and run the `Trainer`
    (``logger``, ``out`` and ``resume`` as there); measure the validation spectrum before and
    after (of the best model)."""
    if not isinstance(cfg, SpectrumTrainConfig):
        raise TypeError(f"argument 'cfg' must be a SpectrumTrainConfig; got {type(cfg).__name__}")
    net_key, h_key, fit_key, eval_key = jax.random.split(key, 4)
    held_key, val_key = jax.random.split(eval_key)
    model = cfg.network.build(cfg.solve, key=net_key)
    spectrum = cfg.spectrum
    if spectrum.n_exponents is None:
        spectrum = dataclasses.replace(spectrum, n_exponents=model.n)
    h0 = jax.random.normal(h_key, (model.n,), model.weight.dtype)
    task = SpectrumTask(
        np.asarray(cfg.target_vector) if cfg.target_vector else cfg.target,
        spectrum,
        trainable=cfg.trainable,
        loss=cfg.loss,
        held_out=jax.random.normal(held_key, (model.n,), model.weight.dtype),
        validation_t_sim=cfg.validation_t_sim,
        key=val_key,
    )
    before = np.asarray(task.validation_spectrum(model))
    trainer = Trainer(task, cfg.optim, config=cfg.train, logger=logger, out=out)
    result = trainer.fit(model, h0, fit_key, resume=resume)
    after = np.asarray(task.validation_spectrum(result.best_model))
    return SpectrumFit(result, task, before, after)
