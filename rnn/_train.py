r"""Training a rate network towards a target Lyapunov spectrum: a task of the common Trainer.

The loss of the first $k$ exponents $\lambda$ against a target $c$ (a
constant, e.g. 0 for the "edge of chaos", or a vector) is one of

$$
\mathrm{l2}: \ \|\lambda - c\|_2, \qquad
\mathrm{mse}: \ \tfrac1k \textstyle\sum_i (\lambda_i - c_i)^2, \qquad
\mathrm{sinai}: \ -\textstyle\sum_i \lambda_i ,
$$

the last one without a target: FlyStability's "Sinai" loss, $\sum_i \mathrm{relu}(\lambda_i) -
\sum_i \mathrm{relu}(-\lambda_i)$, maximised, which is identically $\sum_i \lambda_i$ (the
growth rate of $k$-dimensional volumes, not the Kolmogorov-Sinai entropy
$\sum_i \mathrm{relu}(\lambda_i)$). With ``lyapunov_weight`` $w > 0$ the regulariser
`diffdyn.common.lyapunov_penalty`, $w(\lambda_\max - \lambda^*)^2$, is added. The gradient
flows through the whole Benettin iteration (`lyapunov_spectrum`).

What is trained (`TRAINABLE`): ``"weights"`` (the magnitudes $W$, projected onto $W \ge 0$
after every update through the task's `SpectrumTask.non_negative`, so signs and Dale's law are
kept), ``"gains-shifts"``, ``"gains"`` or ``"shifts"`` (neuronal response modulation; per
neuron, or per population when the model has cell types), ``"all"``, or ``"subset"``: given
numbers of gains, shifts and weights chosen at random (`random_subset`, FlyStability's
parameter-efficiency experiment), the other entries frozen at their initial values by a mask.

`SpectrumTask` is the task: ``Trainer(task, OptimConfig(...), config=TrainConfig(...))
.fit(model, h0, key)`` trains a `RateRNN` from the initial state ``h0`` (with a subset:
``.fit(task.split(model, subset), h0, key)``). Given a held-out initial state it also
validates: the spectrum measured over a longer time from that state, always with the same
tangent basis, selects the best model. `SpectrumTrainConfig`, `fit_spectra` (several
networks trained together, vmapped) and `fit_spectrum` are the workflow of
``diffdyn rnn train``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from diffdyn.common import (
    AbstractTask,
    OptimConfig,
    SolveConfig,
    TrainConfig,
    Trainer,
    TrainResult,
    fixed_field,
    lyapunov_penalty,
    mse,
    non_negative,
)

from ._lyapunov import SpectrumConfig
from ._model import STEP_SOLVE, RateRNN, refuse_solve_settings
from ._network import ActivationName, NetworkConfig

__all__ = [
    "TRAINABLE",
    "ParameterSubset",
    "random_subset",
    "SpectrumParams",
    "SpectrumTask",
    "SubsetConfig",
    "TrainNetworkConfig",
    "SpectrumTrainConfig",
    "SpectrumFit",
    "fit_spectra",
    "fit_spectrum",
]

TrainableName = Literal["weights", "gains-shifts", "gains", "shifts", "all", "subset"]
LossName = Literal["l2", "mse", "sinai"]

TRAINABLE: dict[str, tuple[str, ...]] = {
    "weights": ("weight",),
    "gains-shifts": ("gain", "shift"),
    "gains": ("gain",),
    "shifts": ("shift",),
    "all": ("weight", "gain", "shift"),
    "subset": ("weight", "gain", "shift"),
}
"""Which `RateRNN` parameters each choice of `SpectrumTask`'s ``trainable`` trains (with
``"subset"``: the chosen entries of those a `ParameterSubset` selects)."""

_NO_GAIN = ("tanh", "identity")  # activations without a gain or a shift


def _stop(tree: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda x: jax.lax.stop_gradient(x) if eqx.is_inexact_array(x) else x, tree
    )


# ---------------------------------------------------------------------- random subsets
def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"argument {name!r} must be an integer >= 0; got {value!r}")
    return int(value)


class ParameterSubset(eqx.Module):
    """Which entries of a `RateRNN`'s gains, shifts and weight magnitudes train (``True``);
    the others stay at their initial values. Made by `random_subset`.

    Attributes:
        gain: ``[K]``, one per gain (per cell type).
        shift: ``[K]``, one per shift.
        weight: ``[N, N]``, one per weight magnitude ``[post, pre]`` (only existing
            connections, ``sign != 0``, can be chosen).
    """

    gain: Bool[Array, " k"]
    shift: Bool[Array, " k"]
    weight: Bool[Array, "n n"]

    def counts(self) -> dict[str, int]:
        """How many gains, shifts and weights train."""
        return {name: int(np.sum(np.asarray(getattr(self, name)))) for name in _SUBSET_LEAVES}

    def indices(self) -> dict[str, list]:
        """The trained entries, JSON-ready: ``gain`` and ``shift`` as sorted indices,
        ``weight`` as sorted ``[post, pre]`` pairs."""
        weight = np.argwhere(np.asarray(self.weight))
        return {
            "gain": np.flatnonzero(np.asarray(self.gain)).tolist(),
            "shift": np.flatnonzero(np.asarray(self.shift)).tolist(),
            "weight": weight.tolist(),
        }

    def leaves(self) -> tuple[str, ...]:
        """The `RateRNN` leaves with at least one trained entry."""
        return tuple(name for name, n in self.counts().items() if n > 0)


_SUBSET_LEAVES = ("gain", "shift", "weight")


def random_subset(
    model: RateRNN,
    *,
    gains: int = 0,
    shifts: int = 0,
    weights: int = 0,
    key: PRNGKeyArray,
) -> ParameterSubset:
    """``gains`` gains, ``shifts`` shifts and ``weights`` weight magnitudes of ``model`` drawn
    uniformly at random without replacement (each from its own key split from ``key``, so
    the draw is reproducible); the weights among the existing connections (``sign != 0``).

    Args:
        model: the network whose parameters are chosen.
        gains: how many gains train (at most the number of cell types $K$).
        shifts: how many shifts train (at most $K$).
        weights: how many weights train (at most the number of connections).
        key: the PRNG key of the draw.

    A count that is negative or larger than what exists is refused, and so are gains or
    shifts of an activation that has none (tanh, identity)."""
    if not isinstance(model, RateRNN):
        raise TypeError(f"argument 'model' must be a RateRNN; got {type(model).__name__}")
    counts = {
        "gain": _count(gains, "gains"),
        "shift": _count(shifts, "shifts"),
        "weight": _count(weights, "weights"),
    }
    if sum(counts.values()) == 0:
        raise ValueError("a subset needs at least one gain, shift or weight; got 0, 0 and 0")
    if (counts["gain"] or counts["shift"]) and model.activation in _NO_GAIN:
        raise ValueError(
            f"activation {model.activation!r} has no gain or shift: a subset of it trains "
            "weights only"
        )
    connections = np.flatnonzero(np.asarray(model.sign) != 0)
    available = {"gain": model.gain.size, "shift": model.shift.size, "weight": connections.size}
    plural = {"gain": "gains", "shift": "shifts", "weight": "weights"}
    for name, n in counts.items():
        if n > available[name]:
            what = "connections" if name == "weight" else "cell types"
            raise ValueError(
                f"argument {plural[name]!r} is {n} but the network has {available[name]} "
                f"{what} ({plural[name]} available)"
            )
    masks = {}
    for name, sub in zip(_SUBSET_LEAVES, jax.random.split(key, 3), strict=True):
        chosen = np.asarray(jax.random.permutation(sub, available[name]))[: counts[name]]
        flat = np.zeros(available[name] if name != "weight" else model.n**2, bool)
        flat[connections[chosen] if name == "weight" else chosen] = True
        masks[name] = jnp.asarray(flat.reshape(getattr(model, name).shape))
    return ParameterSubset(**masks)


class SpectrumParams(eqx.Module):
    """What a `SpectrumTask` trains: the network split in two.

    Attributes:
        trained: the `RateRNN` with only the trained leaves (the others ``None``).
        frozen: the rest of it (a fixed field: never trained, read without gradient); with
            a subset, the whole initial network.
        mask: with a subset, ``trained`` with every leaf replaced by its mask (1 where an
            entry trains, 0 where it keeps its value in ``frozen``); else ``None``.
    """

    trained: RateRNN
    frozen: RateRNN = fixed_field()
    mask: RateRNN | None = fixed_field(default=None)


class SpectrumTask(AbstractTask):
    """Move the first $k$ Lyapunov exponents of a `RateRNN` towards a target.

    The data given to `Trainer.fit` is the initial state ``h0`` (``[N]``); every step measures
    the spectrum from it with ``spectrum`` and a tangent basis drawn from the step's key.

    Args:
        target: the target exponents: a number (for all $k$) or ``[k]`` values; ``None``
            with ``loss="sinai"`` (which has none, and refuses one).
        spectrum: how the spectrum is measured at every step; its ``n_exponents`` is $k$.
        trainable: which parameters train, a key of `TRAINABLE` (``"subset"``: give the
            model as ``task.split(model, subset)``).
        loss: ``"mse"``, ``"l2"`` or ``"sinai"`` (see the module docstring).
        held_out: a held-out initial state ``[N]`` to validate on, or ``None`` (no validation).
        validation_t_sim: the measured time of the validation spectrum (its other settings
            are those of ``spectrum``).
        key: the key of the validation's tangent basis (the same at every validation, so
            that models are compared on one estimate); needed with ``held_out``.
        lyapunov_weight: the weight $w \\ge 0$ of the penalty
            $w(\\lambda_\\max - \\lambda^*)^2$ added to the loss (0: none).
        lyapunov_target: $\\lambda^*$ (refused unless ``lyapunov_weight`` > 0).
    """

    target: Float[Array, " k"]
    held_out: Float[Array, " n"] | None
    validation_key: PRNGKeyArray | None
    spectrum: SpectrumConfig = eqx.field(static=True)
    trainable: str = eqx.field(static=True)
    loss_type: str = eqx.field(static=True)
    validation_t_sim: float = eqx.field(static=True)
    lyapunov_weight: float = eqx.field(static=True)
    lyapunov_target: float = eqx.field(static=True)

    def __init__(
        self,
        target: float | Float[ArrayLike, " k"] | None,
        spectrum: SpectrumConfig,
        *,
        trainable: TrainableName = "gains-shifts",
        loss: LossName = "mse",
        held_out: Float[ArrayLike, " n"] | None = None,
        validation_t_sim: float = 500.0,
        key: PRNGKeyArray | None = None,
        lyapunov_weight: float = 0.0,
        lyapunov_target: float = 0.0,
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
        if loss not in ("l2", "mse", "sinai"):
            raise ValueError(f"argument 'loss' must be 'l2', 'mse' or 'sinai'; got {loss!r}")
        if (loss == "sinai") != (target is None):
            raise ValueError(
                "argument 'target' must be None with loss 'sinai' (it maximises the sum of the "
                f"exponents and has no target) and only then; got {target!r} with loss {loss!r}"
            )
        target = jnp.zeros(k) if target is None else jnp.asarray(target)
        target = target.astype(jnp.result_type(float))
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
        weight, lyap_target = _penalty_settings(lyapunov_weight, lyapunov_target)
        self.target, self.spectrum = target, spectrum
        self.trainable, self.loss_type = trainable, loss
        self.held_out, self.validation_key = held_out, key
        self.validation_t_sim = float(validation_t_sim)
        self.lyapunov_weight, self.lyapunov_target = weight, lyap_target

    @property
    def n_exponents(self) -> int:
        """$k$, the number of exponents in the loss."""
        return int(self.target.shape[0])

    @property
    def has_target(self) -> bool:
        """Whether the loss compares the exponents with a target (not for ``sinai``)."""
        return self.loss_type != "sinai"

    def distance(self, exponents: Float[Array, " k"]) -> Float[Array, ""]:
        """The loss of measured exponents without the penalty: their distance to the target
        (``l2`` or ``mse``), or minus their sum (``sinai``)."""
        if self.loss_type == "sinai":
            return -jnp.sum(exponents)
        target = self.target.astype(exponents.dtype)
        if self.loss_type == "l2":
            return jnp.sqrt(jnp.sum(jnp.square(exponents - target)))
        return mse(exponents, target)

    def objective(self, exponents: Float[Array, " k"]) -> Float[Array, ""]:
        r"""`distance` plus the penalty $w(\lambda_\max - \lambda^*)^2$ (if $w > 0$): what
        training minimises and validation scores."""
        value = self.distance(exponents)
        if self.lyapunov_weight > 0:
            penalty = lyapunov_penalty(exponents, self.lyapunov_target)
            value = value + self.lyapunov_weight * penalty
        return value

    # ------------------------------------------------------------------ the task's hooks
    def split(self, model: RateRNN, subset: ParameterSubset | None = None) -> SpectrumParams:
        """``model`` split into the trained leaves and the frozen rest: the leaves `TRAINABLE`
        names, or (``trainable="subset"``) those ``subset`` selects entries of, with the
        subset's mask."""
        if not isinstance(model, RateRNN):
            raise TypeError(f"SpectrumTask trains a RateRNN; got {type(model).__name__}")
        if self.n_exponents > model.n:
            raise ValueError(
                f"spectrum.n_exponents must be <= N = {model.n}; got {self.n_exponents}"
            )
        if (self.trainable == "subset") != (subset is not None):
            raise ValueError(
                "a ParameterSubset (see random_subset) is needed with trainable 'subset', and "
                f"only then; got trainable {self.trainable!r} and subset {subset!r}"
            )
        if subset is None:
            names = TRAINABLE[self.trainable]
            if model.activation in _NO_GAIN and set(names) & {"gain", "shift"}:
                raise ValueError(
                    f"argument 'trainable' is {self.trainable!r} but activation "
                    f"{model.activation!r} has no gain or shift; use 'tanh-stretched' or "
                    "'tanh-positive', or train 'weights'"
                )
            trained, frozen = eqx.partition(model, _leaf_spec(model, names))
            return SpectrumParams(trained, frozen)
        if not isinstance(subset, ParameterSubset):
            raise TypeError(f"argument 'subset' must be a ParameterSubset; got {subset!r}")
        for name in _SUBSET_LEAVES:
            shape = getattr(model, name).shape
            if getattr(subset, name).shape != shape:
                raise ValueError(
                    f"the subset's {name} mask has shape {getattr(subset, name).shape}, the "
                    f"network's {name} {shape}"
                )
        if np.any(np.asarray(subset.weight) & (np.asarray(model.sign) == 0)):
            raise ValueError("the subset chooses weights of absent connections (sign 0)")
        names = subset.leaves()
        if model.activation in _NO_GAIN and set(names) & {"gain", "shift"}:
            raise ValueError(f"activation {model.activation!r} has no gain or shift to train")
        trained, _ = eqx.partition(model, _leaf_spec(model, names))
        dtype = model.weight.dtype
        mask = eqx.tree_at(
            lambda m: [getattr(m, x) for x in names],
            trained,
            [jnp.asarray(getattr(subset, x), dtype) for x in names],
        )
        return SpectrumParams(trained, model, mask)

    def init(self, model: RateRNN | SpectrumParams, data: Float[ArrayLike, " n"]) -> SpectrumParams:
        """`split` of ``model`` (a `RateRNN`), or ``model`` itself when it is split already
        (a `SpectrumParams`, e.g. with a subset), after checking the initial states."""
        params = model if isinstance(model, SpectrumParams) else self.split(model)
        network = self.result(params)
        network.check_state(data, "h0")
        if self.held_out is not None:
            network.check_state(self.held_out, "held_out")
        return params

    def result(self, trained: SpectrumParams) -> RateRNN:
        """The network: the trained leaves and the frozen rest (read without gradient); with
        a subset, the trained leaves keep their frozen values wherever the mask is 0."""
        frozen = _stop(trained.frozen)
        if trained.mask is None:
            return eqx.combine(trained.trained, frozen)
        names = tuple(x for x in _SUBSET_LEAVES if getattr(trained.mask, x) is not None)
        kept = eqx.filter(frozen, _leaf_spec(frozen, names))
        chosen = jax.tree_util.tree_map(
            lambda p, m, f: jnp.where(m > 0, p, f), trained.trained, _stop(trained.mask), kept
        )
        return eqx.combine(chosen, frozen)

    def non_negative(self, trained: SpectrumParams) -> Any:
        """The weight magnitudes $W$ when they train (kept $\\ge 0$), else ``None``."""
        if trained.trained.weight is None:
            return None
        spec = jax.tree_util.tree_map(lambda _: False, trained)
        return eqx.tree_at(lambda p: p.trained.weight, spec, True)

    def loss(
        self, model: SpectrumParams, batch: Float[Array, " n"], key: PRNGKeyArray
    ) -> tuple[Array, dict[str, Array]]:
        """The `objective` of the spectrum measured from ``batch`` (``h0``); the aux holds
        ``lambda_max``, ``lambda_mean`` and (with a penalty) ``distance``."""
        lam = self.spectrum.measure(self.result(model), batch, key=key).exponents
        aux = {"lambda_max": jnp.max(lam), "lambda_mean": jnp.mean(lam)}
        if self.lyapunov_weight > 0:
            aux["distance"] = self.distance(lam)
        return self.objective(lam), aux

    def evaluate(self, model: RateRNN, key: PRNGKeyArray) -> dict[str, Array]:
        """The validation ``loss`` (`objective`) and ``lambda_max`` of the spectrum measured
        over ``validation_t_sim`` from the held-out state, with the task's fixed basis
        (``key`` is not used, so that every validation measures the same way)."""
        del key
        lam = self.validation_spectrum(model)
        return {"loss": self.objective(lam), "lambda_max": jnp.max(lam)}

    @property
    def validates(self) -> bool:
        """Whether the task holds a held-out state to validate on."""
        return self.held_out is not None

    def validation_spectrum(self, model: RateRNN) -> Float[Array, " k"]:
        """The $k$ exponents of ``model`` measured as `evaluate` measures them."""
        if self.held_out is None:
            raise ValueError("this SpectrumTask has no held-out state (held_out=None)")
        return _validation_spectrum(self, model)

    def ensemble_optimiser(
        self, optim: OptimConfig, steps: int, params: SpectrumParams
    ) -> optax.GradientTransformation:
        """The optimiser of an ensemble trained with every floating leaf of the
        `SpectrumParams` in the (stacked) state, ``Trainer(..., filter_spec=
        eqx.is_inexact_array)``: ``optim`` on the trained leaves, ``optax.set_to_zero`` on the
        frozen ones and the masks (``optax.multi_transform``), then the projection of the
        weights onto $W \\ge 0$ when they train."""
        labels = SpectrumParams(
            jax.tree_util.tree_map(lambda _: "trained", params.trained),
            jax.tree_util.tree_map(lambda _: "frozen", params.frozen),
            None
            if params.mask is None
            else jax.tree_util.tree_map(lambda _: "frozen", params.mask),
        )
        labels = eqx.filter(labels, jax.tree_util.tree_map(eqx.is_inexact_array, params))
        chain = [
            optax.multi_transform(
                {"trained": optim.build(steps), "frozen": optax.set_to_zero()}, labels
            )
        ]
        spec = self.non_negative(params)
        if spec is not None:
            chain.append(non_negative(spec))
        return optax.chain(*chain)


def _leaf_spec(model: RateRNN, names: tuple[str, ...]) -> Any:
    spec = jax.tree_util.tree_map(lambda _: False, model)
    return eqx.tree_at(lambda m: [getattr(m, x) for x in names], spec, [True] * len(names))


def _penalty_settings(weight: Any, target: Any) -> tuple[float, float]:
    for name, value in (("lyapunov_weight", weight), ("lyapunov_target", target)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"argument {name!r} must be a real number; got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"argument {name!r} must be finite; got {value!r}")
    if weight < 0:
        raise ValueError(f"argument 'lyapunov_weight' must be >= 0; got {weight!r}")
    if weight == 0 and target != 0:
        raise ValueError(
            f"lyapunov_target is {target} but lyapunov_weight is 0: the penalty is off; give "
            "lyapunov_weight > 0"
        )
    return float(weight), float(target)


@eqx.filter_jit
def _validation_spectrum(task: SpectrumTask, model: RateRNN) -> Float[Array, " k"]:
    spectrum = dataclasses.replace(task.spectrum, t_sim=task.validation_t_sim)
    return spectrum.measure(
        model, task.held_out, key=task.validation_key, checkpoint=False
    ).exponents


@eqx.filter_jit
def _validation_spectra(task: SpectrumTask, models: RateRNN) -> Float[Array, "s k"]:
    """`_validation_spectrum` of stacked networks (a leading sample axis), vmapped."""
    dynamic, static = eqx.partition(models, eqx.is_inexact_array)

    def one(d: Any) -> Array:
        return _validation_spectrum(task, eqx.combine(d, static))

    return jax.vmap(one)(dynamic)


def _stack(models: list[RateRNN]) -> RateRNN:
    """The networks stacked along a new axis 0 (integer leaves, equal in all, kept once)."""
    for m in models[1:]:
        if not np.array_equal(np.asarray(m.cell_type), np.asarray(models[0].cell_type)):
            raise ValueError("networks with different cell types cannot be stacked")
    return jax.tree_util.tree_map(
        lambda *xs: jnp.stack(xs) if eqx.is_inexact_array(xs[0]) else xs[0], *models
    )


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
class SubsetConfig:
    """How many parameters of each kind train with trainable subset, chosen at random per
    network (the others stay at their initial values; the chosen indices are written to
    trained_subset.json).

    Attributes:
        gains: how many gains train (at most the number of cell types).
        shifts: how many shifts train (at most the number of cell types).
        weights: how many weight magnitudes train (at most the number of connections).
    """

    gains: int = 0
    shifts: int = 0
    weights: int = 0

    def __post_init__(self) -> None:
        for name in ("gains", "shifts", "weights"):
            _count(getattr(self, name), f"subset.{name}")

    @property
    def total(self) -> int:
        """The number of trained parameters."""
        return self.gains + self.shifts + self.weights


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
            and Dale's law are kept), the gains and shifts of the activation, all, or a
            random subset of them (see subset).
        subset: with trainable subset, how many gains, shifts and weights train.
        loss: l2 (the norm of the exponents minus the target), mse (its mean square) or sinai
            (minus the sum of the exponents: their sum is maximised; no target).
        target: the target of every exponent (0: the edge of chaos).
        target_vector: one target per exponent, instead of target (empty: use target).
        lyapunov_weight: weight of the penalty (lambda_max - lyapunov_target)^2 added to the
            loss (0: none).
        lyapunov_target: the largest exponent the penalty aims at.
        n_samples: how many networks to train, each with its own coupling, subset and keys
            (trained together, vmapped; they share the initial and held-out states).
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
    subset: SubsetConfig = SubsetConfig()
    loss: LossName = "mse"
    target: float = 0.0
    target_vector: tuple[float, ...] = ()
    lyapunov_weight: float = 0.0
    lyapunov_target: float = 0.0
    n_samples: int = 1
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
        if self.loss == "sinai" and (self.target != 0.0 or self.target_vector):
            raise ValueError("loss sinai maximises the sum of the exponents: it takes no target")
        if self.trainable == "subset" and self.subset.total == 0:
            raise ValueError(
                "trainable subset needs subset.gains, subset.shifts or subset.weights > 0"
            )
        if self.trainable != "subset" and self.subset.total > 0:
            raise ValueError(
                f"subset.gains, subset.shifts and subset.weights apply to trainable subset, not "
                f"to {self.trainable!r}"
            )
        _penalty_settings(self.lyapunov_weight, self.lyapunov_target)
        n = self.n_samples
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n_samples must be an integer >= 1; got {n!r}")
        refuse_solve_settings(
            self.solve, ("adjoint", "max_steps"), "the step map is iterated, not solved by diffrax"
        )


@dataclasses.dataclass
class SpectrumFit:
    """What `fit_spectrum` returns (and `fit_spectra`, one per network).

    Attributes:
        result: the trainer's `TrainResult` (final and best model, losses, validation).
        task: the task that was trained.
        before: the validation spectrum of the network before training.
        after: the validation spectrum of the best network.
        network: the network before training.
        subset: the entries that trained, with trainable subset (else ``None``).
    """

    result: TrainResult
    task: SpectrumTask
    before: np.ndarray
    after: np.ndarray
    network: RateRNN | None = None
    subset: ParameterSubset | None = None

    @property
    def target(self) -> np.ndarray | None:
        """The target exponents (``None`` for the sinai loss, which has none)."""
        return np.asarray(self.task.target) if self.task.has_target else None

    def metrics(self) -> dict[str, Any]:
        """Scalar results: $\\lambda_\\max$ and the validation loss before and after, the
        final and best training losses, how the best model was selected, steps and time."""
        r = self.result
        return {
            "lambda_max_before": float(self.before.max()),
            "lambda_max_after": float(self.after.max()),
            "validation_loss_before": float(self.task.objective(jnp.asarray(self.before))),
            "validation_loss_after": float(self.task.objective(jnp.asarray(self.after))),
            "final_loss": r.final_loss,
            "best_step": r.best_step,
            "selected_by": r.selected_by,
            "steps": r.steps,
            "seconds": r.seconds,
        }


def fit_spectra(
    cfg: SpectrumTrainConfig,
    *,
    key: PRNGKeyArray,
    logger: Any = None,
    out: Any = None,
    resume: bool = False,
) -> list[SpectrumFit]:
    r"""The workflow of ``diffdyn rnn train``: ``cfg.n_samples`` networks trained towards the
    target, one `SpectrumFit` each.

    Sample 0 is built from ``key``, sample $s > 0$ from ``fold_in(key, s)``: its network,
    its subset (with ``trainable="subset"``) and its training keys. The initial state and
    the held-out state ($\mathcal N(0, I)$) and the validation basis are those of sample 0
    for every network (one `SpectrumTask`). One network is trained by `Trainer.fit`;
    several by `Trainer.fit_ensemble` (one vmapped program; models under
    ``out/member_<s>/``) with every floating leaf in the stacked state and
    `SpectrumTask.ensemble_optimiser`. The validation spectra before and after (of the best
    models) are measured vmapped over the networks."""
    if not isinstance(cfg, SpectrumTrainConfig):
        raise TypeError(f"argument 'cfg' must be a SpectrumTrainConfig; got {type(cfg).__name__}")
    keys = [key] + [jax.random.fold_in(key, s) for s in range(1, cfg.n_samples)]
    splits = [jax.random.split(k, 4) for k in keys]  # network, h0, fit, evaluation
    models = [cfg.network.build(cfg.solve, key=net_key) for net_key, _, _, _ in splits]
    model = models[0]
    _, h_key, _, eval_key = splits[0]
    held_key, val_key = jax.random.split(eval_key)
    spectrum = cfg.spectrum
    if spectrum.n_exponents is None:
        spectrum = dataclasses.replace(spectrum, n_exponents=model.n)
    h0 = jax.random.normal(h_key, (model.n,), model.weight.dtype)
    if cfg.loss == "sinai":
        target = None
    else:
        target = np.asarray(cfg.target_vector) if cfg.target_vector else cfg.target
    task = SpectrumTask(
        target,
        spectrum,
        trainable=cfg.trainable,
        loss=cfg.loss,
        held_out=jax.random.normal(held_key, (model.n,), model.weight.dtype),
        validation_t_sim=cfg.validation_t_sim,
        key=val_key,
        lyapunov_weight=cfg.lyapunov_weight,
        lyapunov_target=cfg.lyapunov_target,
    )
    subsets: list[ParameterSubset | None] = [None] * len(models)
    if cfg.trainable == "subset":
        counts = cfg.subset
        subsets = [
            random_subset(
                m,
                gains=counts.gains,
                shifts=counts.shifts,
                weights=counts.weights,
                key=jax.random.fold_in(net_key, 1),
            )
            for m, (net_key, _, _, _) in zip(models, splits, strict=True)
        ]
    params = [task.split(m, s) for m, s in zip(models, subsets, strict=True)]
    for p in params:
        task.init(p, h0)  # checks the states before anything is compiled
    fit_keys = [fit_key for _, _, fit_key, _ in splits]
    if len(models) == 1:
        before = [np.asarray(task.validation_spectrum(model))]
        trainer = Trainer(task, cfg.optim, config=cfg.train, logger=logger, out=out)
        results = [trainer.fit(params[0], h0, fit_keys[0], resume=resume)]
        after = [np.asarray(task.validation_spectrum(results[0].best_model))]
    else:
        before = list(np.asarray(_validation_spectra(task, _stack(models))))
        trainer = Trainer(
            task,
            task.ensemble_optimiser(cfg.optim, cfg.train.steps, params[0]),
            config=cfg.train,
            logger=logger,
            out=out,
            filter_spec=eqx.is_inexact_array,
        )
        results = trainer.fit_ensemble(params, h0, fit_keys, resume=resume).members
        best = _stack([r.best_model for r in results])
        after = list(np.asarray(_validation_spectra(task, best)))
    return [
        SpectrumFit(r, task, b, a, m, s)
        for r, b, a, m, s in zip(results, before, after, models, subsets, strict=True)
    ]


def fit_spectrum(
    cfg: SpectrumTrainConfig,
    *,
    key: PRNGKeyArray,
    logger: Any = None,
    out: Any = None,
    resume: bool = False,
) -> SpectrumFit:
    r"""`fit_spectra` of a config with one network (``n_samples = 1``): build the network of
    ``cfg``, an initial state and a held-out one ($\mathcal N(0, I)$), the `SpectrumTask`, and
    run the `Trainer` (``logger``, ``out`` and ``resume`` as there); measure the validation
    spectrum before and after (of the best model)."""
    if isinstance(cfg, SpectrumTrainConfig) and cfg.n_samples != 1:
        raise ValueError(
            f"fit_spectrum trains one network; cfg.n_samples is {cfg.n_samples} (use fit_spectra)"
        )
    return fit_spectra(cfg, key=key, logger=logger, out=out, resume=resume)[0]
