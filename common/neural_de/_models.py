r"""Saveable model assemblies (``AbstractModel``) used by the ``diffdyn node`` commands.

- `ODEClassifier`: input map (identity, zero augmentation or a learned input layer),
  a neural ODE on $[0, t_1]$, then a readout (a linear layer, or the first ``out_dim``
  coordinates of the end state: ``readout="project"``, which keeps the map a pure flow).
  ``field``: ``mlp`` (autonomous), ``time`` (time as input), ``galerkin`` (Galerkin weights),
  ``second-order`` ($\ddot x = g(x, \dot x)$, $\dot x(0) = 0$).
- `DensityCNF`: a CNF with an MLP field (time as input) and a standard normal base.

Both take their solve settings as one `SolveConfig` (default `MODEL_SOLVE`). Its
``max_steps`` bounds the solver steps; it also sets the size of the recursive-checkpoint
adjoint's checkpoint schedule, so a tight bound makes gradients cheaper.

Every constructor argument is JSON-able or a `SolveConfig` (saved as a nested spec), so
``model.save(path)`` / ``AbstractModel.load`` round-trip with hyperparameters. Files of diffdyn
0.1.0, which recorded flat ``solver``, ``rtol``, ``atol``, ``adjoint`` and ``max_steps``
arguments, load through `ODEClassifier.upgrade_hyperparameters`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._helpers import check_int
from .._model import AbstractModel
from .._solve import SolveConfig, supports_adaptive
from ._augment import HigherOrderField, InputLayerAugment, zero_augment
from ._cnf import CNF
from ._depth import GalerkinMLPField, TimeMLPField
from ._node import MLPField, NeuralODE, _check_solve

__all__ = ["ODEClassifier", "DensityCNF", "MODEL_SOLVE", "AUGMENTS", "FIELDS", "READOUTS"]

MODEL_SOLVE = SolveConfig(rtol=1e-3, atol=1e-5, max_steps=256)
"""The solve settings of an `ODEClassifier` and a `DensityCNF` unless given: tsit5, adaptive
steps with ``rtol=1e-3``, ``atol=1e-5``, the recursive-checkpoint adjoint, at most 256 steps
(a small checkpoint schedule: cheap gradients for models trained on toy data)."""

AUGMENTS = ("none", "zero", "input")
"""Augmentations an `ODEClassifier` accepts."""
FIELDS = ("mlp", "time", "galerkin", "second-order")
"""Vector fields an `ODEClassifier` accepts."""
READOUTS = ("linear", "project")
"""Readouts an `ODEClassifier` accepts."""


def _upgrade_solve(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Flat 0.1.0 solve arguments -> one ``solve`` config (the solver chose adaptive steps
    when it had an error estimate, as ``NeuralODE`` did then)."""
    old = dict(hyperparameters)
    if "solve" in old:
        return old
    flat = {k: old.pop(k) for k in ("solver", "rtol", "atol", "adjoint", "max_steps") if k in old}
    settings = {**dataclasses.asdict(MODEL_SOLVE), **flat}
    settings["adaptive"] = supports_adaptive(settings["solver"])
    return {**old, "solve": SolveConfig(**settings)}


def _choice(value: Any, name: str, known: tuple[str, ...]) -> str:
    if value not in known:
        raise ValueError(f"argument {name!r} must be one of {known}; got {value!r}")
    return value


class ODEClassifier(AbstractModel):
    """Input map -> neural ODE on $[0, t_1]$ -> readout.

    Args:
        in_dim: the input dimension $D$.
        out_dim: the output dimension (classes, or regression targets).
        augment: the input map (`AUGMENTS`): ``none`` (identity), ``zero`` (ANODE: append
            ``augment_dim`` zeros) or ``input`` (a learned linear layer to $D$ +
            ``augment_dim``).
        augment_dim: the added dimensions (>= 1 with an augmentation, else 0).
        field: the vector field (`FIELDS`): ``mlp``, ``time``, ``galerkin`` or
            ``second-order``.
        width: hidden width of the field.
        depth: hidden layers of the field.
        readout: ``linear`` (a linear layer of the end state) or ``project`` (its first
            ``out_dim`` coordinates).
        t1: the integration time.
        activation: the field's activation (`ACTIVATIONS`).
        solve: how the neural ODE is solved (default `MODEL_SOLVE`).
        key: initialises the layers.
    """

    input_layer: InputLayerAugment | None
    node: NeuralODE
    readout_layer: eqx.nn.Linear | None
    in_dim: int = eqx.field(static=True)
    out_dim: int = eqx.field(static=True)
    augment: str = eqx.field(static=True)
    augment_dim: int = eqx.field(static=True)
    field: str = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    readout: str = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        augment: str = "none",
        augment_dim: int = 0,
        field: str = "mlp",
        width: int = 32,
        depth: int = 2,
        readout: str = "linear",
        t1: float = 1.0,
        activation: str = "tanh",
        solve: SolveConfig = MODEL_SOLVE,
        key: PRNGKeyArray,
    ):
        self.in_dim = check_int(in_dim, "in_dim")
        self.out_dim = check_int(out_dim, "out_dim")
        self.augment = _choice(augment, "augment", AUGMENTS)
        self.augment_dim = check_int(augment_dim, "augment_dim", 0)
        if self.augment != "none" and self.augment_dim == 0:
            raise ValueError(f"augment={augment!r} needs augment_dim >= 1; got 0")
        self.field = _choice(field, "field", FIELDS)
        self.readout = _choice(readout, "readout", READOUTS)
        self.width, self.depth = check_int(width, "width"), check_int(depth, "depth", 0)
        if not (isinstance(t1, (int, float)) and t1 > 0):
            raise ValueError(f"argument 't1' must be a number > 0; got {t1!r}")
        self.t1 = float(t1)
        self.activation = activation
        self.solve = _check_solve(solve)
        k_in, k_field, k_out = jax.random.split(key, 3)
        dim = self.in_dim + (0 if self.augment == "none" else self.augment_dim)
        self.input_layer = (
            InputLayerAugment(self.in_dim, dim, key=k_in) if self.augment == "input" else None
        )
        kw = dict(activation=activation, key=k_field)
        if self.field == "mlp":
            vf: Any = MLPField(dim, width, depth, **kw)
        elif self.field == "time":
            vf = TimeMLPField(dim, width, depth, **kw)
        elif self.field == "galerkin":
            vf = GalerkinMLPField(dim, width, max(depth - 1, 0), **kw)
        else:
            vf = HigherOrderField(
                _Acceleration(dim, width, depth, activation, k_field), dim, order=2
            )
        state_dim = 2 * dim if self.field == "second-order" else dim
        if self.readout == "project" and self.out_dim > state_dim:
            raise ValueError(
                f"readout='project' needs out_dim <= state dimension {state_dim}; got {out_dim}"
            )
        self.readout_layer = (
            eqx.nn.Linear(state_dim, self.out_dim, key=k_out) if self.readout == "linear" else None
        )
        self.node = NeuralODE(vf, solve=self.solve)

    @classmethod
    def upgrade_hyperparameters(cls, hyperparameters: dict[str, Any], *, version: str) -> dict:
        """0.1.0 recorded flat ``solver``, ``rtol``, ``atol``, ``adjoint`` and ``max_steps``;
        they become one ``solve`` config."""
        return _upgrade_solve(hyperparameters)

    @property
    def state_dim(self) -> int:
        """The dimension of the ODE state (twice the input map's for ``second-order``)."""
        dim = self.in_dim + (0 if self.augment == "none" else self.augment_dim)
        return 2 * dim if self.field == "second-order" else dim

    def initial_state(self, x: Float[Array, " d"]) -> Float[Array, " s"]:
        """The ODE's initial state for input ``x``."""
        if self.augment == "zero":
            x = zero_augment(x, self.augment_dim)
        elif self.augment == "input":
            x = self.input_layer(x)
        if self.field == "second-order":
            x = zero_augment(x, x.shape[-1])  # zero initial velocity
        return x

    def trajectory(self, x: Float[Array, " d"], ts: Real[ArrayLike, " T"]) -> Float[Array, "T s"]:
        """The ODE state at the times ``ts`` (``0 <= ts <= t1``)."""
        return self.node(self.initial_state(x), ts, t0=0.0)

    def features(self, x: Float[Array, " d"]) -> Float[Array, " s"]:
        """The end state $y(t_1)$."""
        return self.node.final(self.initial_state(x), 0.0, self.t1)

    def __call__(self, x: Float[Array, " d"]) -> Float[Array, " o"]:
        if x.shape != (self.in_dim,):
            raise ValueError(f"ODEClassifier: input must have shape [{self.in_dim}]; got {x.shape}")
        y = self.features(x)
        return self.readout_layer(y) if self.readout == "linear" else y[: self.out_dim]


class _Acceleration(eqx.Module):
    """$g(t, [x, v]) = \\mathrm{MLP}([x, v])$ for second-order fields."""

    mlp: eqx.nn.MLP

    def __init__(self, dim: int, width: int, depth: int, activation: str, key: PRNGKeyArray):
        from ._node import get_activation

        self.mlp = eqx.nn.MLP(
            2 * dim, dim, width, depth, activation=get_activation(activation), key=key
        )

    def __call__(self, t: Any, y: Float[Array, " s"], args: Any = None) -> Float[Array, " d"]:
        return self.mlp(y)


class DensityCNF(AbstractModel):
    r"""A CNF density model on $\mathbb{R}^D$: the field $\mathrm{MLP}([z, t])$ and a
    standard normal base.

    Args:
        dim: $D$.
        width: hidden width of the field.
        depth: hidden layers of the field.
        trace: ``exact`` or ``hutchinson`` (`TRACE_ESTIMATORS`).
        t1: the end of the flow's time span.
        solve: how the flow is solved (default `MODEL_SOLVE`).
        key: initialises the field.
    """

    cnf: CNF
    dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    trace: str = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)

    def __init__(
        self,
        dim: int = 2,
        width: int = 64,
        depth: int = 2,
        *,
        trace: str = "exact",
        t1: float = 1.0,
        solve: SolveConfig = MODEL_SOLVE,
        key: PRNGKeyArray,
    ):
        self.dim = check_int(dim, "dim")
        self.width = check_int(width, "width")
        self.depth = check_int(depth, "depth", 0)
        self.trace, self.t1 = trace, t1
        self.solve = _check_solve(solve)
        field = TimeMLPField(dim, width, depth, key=key)
        self.cnf = CNF(field, dim, trace=trace, t1=t1, solve=self.solve)

    @classmethod
    def upgrade_hyperparameters(cls, hyperparameters: dict[str, Any], *, version: str) -> dict:
        """0.1.0 recorded flat ``solver``, ``rtol``, ``atol``, ``adjoint`` and ``max_steps``;
        they become one ``solve`` config."""
        return _upgrade_solve(hyperparameters)

    def log_prob(self, x: Float[Array, " d"], key: PRNGKeyArray | None = None) -> Float[Array, ""]:
        """$\\log p(x)$ of one sample."""
        return self.cnf.log_prob(x, key)

    def sample(self, key: PRNGKeyArray) -> Float[Array, " d"]:
        """One sample $x = z(0)$, $z(t_1) \\sim N(0, I)$."""
        k1, k2 = jax.random.split(key)
        return self.cnf.sample(k1, trace_key=k2)[0]

    def __call__(self, x: Float[Array, " d"], key: PRNGKeyArray | None = None) -> Float[Array, ""]:
        return self.log_prob(x, key)
