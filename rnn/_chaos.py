r"""The transition to chaos of random rate networks (Sompolinsky, Crisanti & Sommers 1988).

For $\dot h = -h + J\tanh h$ with $J_{ij}\sim\mathcal N(0, g^2/N)$ the trivial fixed
point loses stability at $g = 1$ (circular law: the eigenvalues of $J$ fill the
disc of radius $g$, so below it $\lambda_\max = g - 1 < 0$), and for large
$N$ the dynamics are chaotic, $\lambda_\max > 0$, for $g > 1$.

`chaos_sweep` measures $\lambda_\max$, the Kaplan-Yorke dimension and the entropy
rate against $g$ for several networks; `chaos_summary` reads off where the median
$\lambda_\max$ turns positive (`plot_sweep` draws it). Network ``s`` is the *same* unit matrix
$J^{(s)}$ at every $g$ (scaled by $g$; quenched disorder), so the curves are
smooth in $g$, and one compiled function serves the whole sweep.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from diffdyn.common import SolveConfig

from ._lyapunov import SpectrumConfig, entropy_rate, kaplan_yorke_dimension
from ._model import STEP_SOLVE, RateRNN, refuse_solve_settings

__all__ = ["ChaosSweepConfig", "chaos_sweep", "chaos_summary", "sample_network"]

_SWEEP_SPECTRUM = SpectrumConfig(n_exponents=1)


@dataclasses.dataclass(frozen=True)
class ChaosSweepConfig:
    """A sweep of random tanh-like networks over the coupling gain g (``diffdyn rnn
    chaos-sweep``); see `chaos_sweep`.

    Attributes:
        gmin: the smallest g.
        gmax: the largest g.
        n_g: the number of g values, evenly spaced from gmin to gmax.
        n_samples: the number of networks per g (each the same unit matrix at every g).
        n: the neurons of each network.
        activation: the transfer function.
        solve: the networks' fixed step (an explicit solver and dt0, adaptive off).
        spectrum: how each spectrum is measured (n_exponents > 1 also gives the Kaplan-Yorke
            dimension).
    """

    gmin: float = 0.5
    gmax: float = 3.0
    n_g: int = 11
    n_samples: int = 3
    n: int = 1000
    activation: Literal["tanh", "tanh-stretched", "tanh-positive", "identity"] = "tanh"
    solve: SolveConfig = STEP_SOLVE
    spectrum: SpectrumConfig = _SWEEP_SPECTRUM

    def __post_init__(self) -> None:
        if not 0 <= self.gmin <= self.gmax < float("inf"):
            raise ValueError(
                f"need 0 <= gmin <= gmax (finite); got gmin = {self.gmin}, gmax = {self.gmax}"
            )
        for name in ("n_g", "n_samples", "n"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"argument {name!r} must be an integer >= 1; got {value!r}")
        if self.n_g > 1 and self.gmin == self.gmax:
            raise ValueError(f"n_g = {self.n_g} values need gmax > gmin; got {self.gmin} twice")
        refuse_solve_settings(
            self.solve, ("adjoint", "max_steps"), "the step map is iterated, not solved by diffrax"
        )

    def gains(self) -> np.ndarray:
        """The swept values of g: ``n_g`` evenly spaced from ``gmin`` to ``gmax``."""
        return np.linspace(self.gmin, self.gmax, self.n_g)


def sample_network(
    key: PRNGKeyArray, sample: int, n: int, **model_kw: Any
) -> tuple[RateRNN, Float[Array, " n"], PRNGKeyArray]:
    r"""Network ``sample`` of a sweep: a unit-gain `RateRNN` (scaled by g later), its
    initial state $h_0 \sim \mathcal N(0, I)$ and the key of its tangent basis."""
    net_key, h_key, q_key = jax.random.split(jax.random.fold_in(key, sample), 3)
    model = RateRNN(n, g=1.0, key=net_key, **model_kw)
    return model, jax.random.normal(h_key, (n,), model.weight.dtype), q_key


@eqx.filter_jit
def _measure(
    model: RateRNN,
    scale: Float[Array, ""],
    h0: Float[Array, " n"],
    key: PRNGKeyArray,
    spectrum: SpectrumConfig,
) -> Float[Array, " k"]:
    scaled = eqx.tree_at(lambda m: m.weight, model, model.weight * scale)
    return spectrum.measure(scaled, h0, key=key, checkpoint=False).exponents


def chaos_sweep(
    gs: Any,
    n: int,
    *,
    key: PRNGKeyArray,
    n_samples: int = 3,
    activation: str = "tanh",
    spectrum: SpectrumConfig = _SWEEP_SPECTRUM,
    solve: SolveConfig = STEP_SOLVE,
    progress: Any = None,
) -> dict[str, np.ndarray]:
    r"""Lyapunov exponents of ``n_samples`` random networks of size ``n`` at every ``g``,
    measured with ``spectrum`` (default: $\lambda_\max$ alone) on the step map ``solve``.

    Returns numpy arrays ``g [G]``, ``exponents [G, S, k]``, ``lambda_max [G, S]``,
    ``dimension [G, S]`` (Kaplan-Yorke; a lower bound when all ``k`` partial sums are
    positive) and ``entropy [G, S]``. ``progress(i, total)`` is called after each network."""
    gs = np.asarray(gs, dtype=float).ravel()
    if gs.size == 0 or np.any(gs < 0) or not np.all(np.isfinite(gs)):
        raise ValueError(f"argument 'gs' must be a non-empty list of finite g >= 0; got {gs}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"argument 'n_samples' must be an integer >= 1; got {n_samples!r}")
    if not isinstance(spectrum, SpectrumConfig):
        raise TypeError(
            f"argument 'spectrum' must be a SpectrumConfig; got {type(spectrum).__name__}"
        )
    n_exponents = n if spectrum.n_exponents is None else spectrum.n_exponents
    out = np.zeros((gs.size, n_samples, n_exponents))
    for s in range(n_samples):
        model, h0, q_key = sample_network(key, s, n, activation=activation, solve=solve)
        for i, g in enumerate(gs):
            scale = jnp.asarray(g, model.weight.dtype)
            out[i, s] = np.asarray(_measure(model, scale, h0, q_key, spectrum))
            if progress is not None:
                progress(s * gs.size + i + 1, gs.size * n_samples)
    lam = jnp.asarray(out)
    return {
        "g": gs,
        "exponents": out,
        "lambda_max": out.max(axis=-1),
        "dimension": np.asarray(jax.vmap(jax.vmap(kaplan_yorke_dimension))(lam)),
        "entropy": np.asarray(jax.vmap(jax.vmap(entropy_rate))(lam)),
    }


def chaos_summary(result: dict[str, np.ndarray]) -> dict[str, float]:
    r"""Where a `chaos_sweep` turns chaotic: ``g_first_positive``, the smallest swept $g$
    whose median $\lambda_\max$ over the networks is $> 0$ (NaN if none), and the median
    $\lambda_\max$ at the smallest and the largest $g$."""
    g = np.asarray(result["g"])
    median = np.median(np.asarray(result["lambda_max"]), axis=1)
    above = np.nonzero(median > 0)[0]
    return {
        "g_first_positive": float(g[above[0]]) if above.size else float("nan"),
        "lambda_max_at_gmin": float(median[0]),
        "lambda_max_at_gmax": float(median[-1]),
    }
