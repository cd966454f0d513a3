r"""Which network a workflow runs on, and the Lyapunov spectrum of one network.

`NetworkConfig` describes a random network ($J_{ij} \sim \mathcal N(0, g^2/N)$, Sompolinsky,
Crisanti & Sommers 1988) or one read from a connectome folder (`load_connectome`);
`LyapunovConfig` and `network_spectrum` are the workflow of ``diffdyn rnn lyapunov``: build the
network, draw its initial state and measure its spectrum, on the exact step map or on the
continuous-time flow.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import equinox as eqx
import jax
from jaxtyping import PRNGKeyArray

from diffdyn.common import SolveConfig

from ._connectome import load_connectome
from ._lyapunov import LyapunovSpectrum, SpectrumConfig
from ._model import STEP_SOLVE, RateRNN, refuse_solve_settings

__all__ = ["NetworkConfig", "LyapunovConfig", "network_spectrum"]

ActivationName = Literal["tanh", "tanh-stretched", "tanh-positive", "identity"]
TypesName = Literal["neurotransmitter", "cell-type", "neuron"]


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    r"""Which network: a random one ($J_{ij} \sim \mathcal N(0, g^2/N)$) or a connectome.

    Attributes:
        n: neurons of a random network (refused with a connectome, which has its own size).
        g: coupling gain of a random network (refused with a connectome).
        activation: the transfer function; tanh and identity have no gain or shift.
        n_types: cell types sharing a gain and a shift in a random network (None: one per
            neuron; refused with a connectome, see types).
        connectome: a connectome folder (format diffdyn-connectome/1); None: a random network.
        types: with a connectome, what shares a gain and a shift (refused without one).
        balance: with a connectome, balance excitation and inhibition by Sinkhorn scaling
            (refused without one).
    """

    n: int = 200
    g: float = 2.0
    activation: ActivationName = "tanh"
    n_types: int | None = None
    connectome: Path | None = None
    types: TypesName = "neurotransmitter"
    balance: bool = True

    def __post_init__(self) -> None:
        random = self.connectome is None
        unused = ("types", "balance") if random else ("n", "g", "n_types")
        given = [f.name for f in dataclasses.fields(self) if f.name in unused and _set(self, f)]
        if given:
            names = " and ".join(repr(name) for name in given)
            owner = "a connectome network" if random else "a random network"
            raise ValueError(
                f"network option {names} applies only to {owner} (connectome is "
                f"{'None' if random else str(self.connectome)!r}); leave it at its default"
            )

    def build(self, solve: SolveConfig = STEP_SOLVE, *, key: PRNGKeyArray) -> RateRNN:
        """The `RateRNN` this config describes, stepped by ``solve``; ``key`` draws a random
        coupling (a connectome network does not use it)."""
        if self.connectome is not None:
            return load_connectome(self.connectome).to_rnn(
                types=self.types, balance=self.balance, activation=self.activation, solve=solve
            )
        return RateRNN(
            self.n,
            g=self.g,
            activation=self.activation,
            n_types=self.n_types,
            solve=solve,
            key=key,
        )


def _set(cfg: Any, field: dataclasses.Field) -> bool:
    """Whether ``field`` of ``cfg`` differs from its class default."""
    return getattr(cfg, field.name) != field.default


@dataclasses.dataclass(frozen=True)
class LyapunovConfig:
    """The Lyapunov spectrum of one network (``diffdyn rnn lyapunov``).

    Attributes:
        network: which network.
        solve: the network's fixed step (an explicit solver and dt0, adaptive off); with flow,
            the solve of the variational system over each t_ons (adaptive allowed).
        spectrum: how the spectrum is measured.
        flow: measure the exponents of the continuous-time flow, the variational system
            solved with solve, instead of those of the exact step map.
    """

    network: NetworkConfig = NetworkConfig()
    solve: SolveConfig = STEP_SOLVE
    spectrum: SpectrumConfig = SpectrumConfig()
    flow: bool = False

    def __post_init__(self) -> None:
        if self.flow:
            refuse_solve_settings(self.solve, ("adjoint",), "nothing is differentiated")
        else:
            refuse_solve_settings(
                self.solve,
                ("adjoint", "max_steps"),
                "the step map is iterated, not solved by diffrax",
            )


def network_spectrum(cfg: LyapunovConfig, *, key: PRNGKeyArray) -> tuple[RateRNN, LyapunovSpectrum]:
    r"""The network of ``cfg`` and its spectrum from a random state $h_0 \sim \mathcal N(0, I)$
    (compiled once, without checkpoints: nothing is differentiated). With ``cfg.flow`` the
    network keeps the default step `STEP_SOLVE` and ``cfg.solve`` solves the flow."""
    if not isinstance(cfg, LyapunovConfig):
        raise TypeError(f"argument 'cfg' must be a LyapunovConfig; got {type(cfg).__name__}")
    net_key, h_key, q_key = jax.random.split(key, 3)
    model = cfg.network.build(STEP_SOLVE if cfg.flow else cfg.solve, key=net_key)
    h0 = jax.random.normal(h_key, (model.n,), model.weight.dtype)
    flow = cfg.solve if cfg.flow else None
    measure = eqx.filter_jit(
        lambda m, h: cfg.spectrum.measure(m, h, key=q_key, flow=flow, checkpoint=False)
    )
    return model, measure(model, h0)
