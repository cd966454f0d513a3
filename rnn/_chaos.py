r"""The transition to chaos of random rate networks (Sompolinsky, Crisanti & Sommers 1988), and
its counterpart for disordered gains or shifts (Koehn; edouardkoehn/FlyStability).

For $\dot h = -h + J\tanh h$ with $J_{ij}\sim\mathcal N(0, g^2/N)$ the trivial fixed
point loses stability at $g = 1$ (circular law: the eigenvalues of $J$ fill the
disc of radius $g$, so below it $\lambda_\max = g - 1 < 0$), and for large
$N$ the dynamics are chaotic, $\lambda_\max > 0$, for $g > 1$.

`chaos_sweep` measures $\lambda_\max$ (or the first exponents, with the Kaplan-Yorke dimension
and the entropy rate) of several networks at every point of a sweep over one ``parameter``:

- ``"weights"``: the coupling scale $g$ (the values are the $g$);
- ``"gains"`` or ``"shifts"``: the spread $\sigma$ of per-neuron gains or shifts at a fixed
  coupling scale $g$ (FlyStability's ``transition_2_chaos`` and ``spectrum`` workflows):
  $x_i = c_i + \sigma\,\xi_i/\sqrt N$ with $\xi_i \sim \mathcal N(0, 1)$, i.e.
  $x_i \sim \mathcal N(c_i, \sigma^2/N)$, where $c_i$ is the network's own value (gain 1,
  shift 0) or a given ``centre`` (FlyStability drew gains and shifts around 1). Nothing is
  clipped, as in FlyStability: once $\sigma/\sqrt N \gtrsim 1$ some gains are negative, which
  mirrors that neuron's transfer function. Only an activation with a gain and a shift
  (``tanh-stretched``, ``tanh-positive``) can be swept this way.

Network ``s`` is the *same* draw at every point (quenched disorder): the same unit matrix
$J^{(s)}$ (scaled by $g$), initial state, tangent basis and unit disorder $\xi^{(s)}$
(scaled by $\sigma$), so the curves are smooth in the swept value and $\sigma = 0$ is
exactly the plain network. The networks of one point are measured together by ``jax.vmap``
(one compiled function serves the whole sweep). `sweep_statistics` gives the mean and the
standard error over the networks at every point, `chaos_summary` where the median
$\lambda_\max$ turns positive, and `plot_sweep` draws them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from diffdyn.common import SolveConfig

from ._activations import get_activation, identity, tanh
from ._lyapunov import SpectrumConfig, entropy_rate, kaplan_yorke_dimension
from ._model import STEP_SOLVE, RateRNN, refuse_solve_settings

__all__ = [
    "SWEEP_PARAMETERS",
    "ChaosSweepConfig",
    "chaos_sweep",
    "chaos_summary",
    "sample_network",
    "sweep_statistics",
]

SWEEP_PARAMETERS: tuple[str, ...] = ("weights", "gains", "shifts")
"""What `chaos_sweep` can vary: the coupling scale g, or the spread of gains or shifts."""

_SWEEP_SPECTRUM = SpectrumConfig(n_exponents=1)
_WEIGHT_OPTIONS = ("gmin", "gmax", "n_g")
_DISORDER_OPTIONS = ("g", "sigma_min", "sigma_max", "n_sigma", "centre")
_DISORDER_STREAM = 104729  # folded into a network's key to draw its unit disorder


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"argument {name!r} must be an integer >= 1; got {value!r}")
    return int(value)


def _check_disorder_activation(parameter: str, activation: str) -> None:
    """A ``ValueError`` if ``activation`` has no gain or shift to draw."""
    if get_activation(activation) in (tanh, identity):
        raise ValueError(
            f"parameter {parameter!r} needs an activation with a gain and a shift "
            f"(tanh-stretched or tanh-positive); {activation!r} ignores them"
        )


@dataclasses.dataclass(frozen=True)
class ChaosSweepConfig:
    """A sweep of random networks over the coupling scale g, or over the disorder of their
    gains or shifts (``diffdyn rnn chaos-sweep``); see `chaos_sweep`. Options of the other
    kind of sweep are refused, not ignored.

    Attributes:
        parameter: what is swept: weights (the coupling scale g from gmin to gmax), gains or
            shifts (the spread sigma of per-neuron gains or shifts, drawn from N(centre,
            sigma^2/N), from sigma_min to sigma_max, at the coupling scale g).
        gmin: the smallest g (parameter weights only).
        gmax: the largest g (parameter weights only).
        n_g: the number of g values, evenly spaced from gmin to gmax (parameter weights only).
        g: the coupling scale of every network while gains or shifts are swept (parameter
            gains or shifts only).
        sigma_min: the smallest spread sigma, > 0 (parameter gains or shifts only).
        sigma_max: the largest spread sigma (parameter gains or shifts only).
        n_sigma: the number of sigma values, spaced evenly in log sigma from sigma_min to
            sigma_max (parameter gains or shifts only).
        centre: the value the gains or shifts are drawn around; None: the network's own
            (gain 1, shift 0); FlyStability drew both around 1 (parameter gains or shifts
            only).
        n_samples: the number of networks per point (each the same draw at every point).
        n: the neurons of each network.
        activation: the transfer function (sweeps of gains or shifts need tanh-stretched or
            tanh-positive).
        solve: the networks' fixed step (an explicit solver and dt0, adaptive off).
        spectrum: how each spectrum is measured (n_exponents > 1 also gives the Kaplan-Yorke
            dimension).
    """

    parameter: Literal["weights", "gains", "shifts"] = "weights"
    gmin: float = 0.5
    gmax: float = 3.0
    n_g: int = 11
    g: float = 1.0
    sigma_min: float = 1.0
    sigma_max: float = 1024.0
    n_sigma: int = 11
    centre: float | None = None
    n_samples: int = 3
    n: int = 1000
    activation: Literal["tanh", "tanh-stretched", "tanh-positive", "identity"] = "tanh"
    solve: SolveConfig = STEP_SOLVE
    spectrum: SpectrumConfig = _SWEEP_SPECTRUM

    def __post_init__(self) -> None:
        if self.parameter not in SWEEP_PARAMETERS:
            raise ValueError(
                f"argument 'parameter' must be one of {', '.join(SWEEP_PARAMETERS)}; got "
                f"{self.parameter!r}"
            )
        weights = self.parameter == "weights"
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        unused = _DISORDER_OPTIONS if weights else _WEIGHT_OPTIONS
        given = [name for name in unused if getattr(self, name) != defaults[name]]
        if given:
            names = ", ".join(given)
            applies = "gains or shifts" if weights else "weights"
            raise ValueError(
                f"option(s) {names} apply only to parameter {applies}, not to "
                f"{self.parameter!r}; leave them at their defaults"
            )
        if not 0 <= self.gmin <= self.gmax < float("inf"):
            raise ValueError(
                f"need 0 <= gmin <= gmax (finite); got gmin = {self.gmin}, gmax = {self.gmax}"
            )
        for name in ("n_g", "n_sigma", "n_samples", "n"):
            _check_count(getattr(self, name), name)
        if self.n_g > 1 and self.gmin == self.gmax:
            raise ValueError(f"n_g = {self.n_g} values need gmax > gmin; got {self.gmin} twice")
        if not 0 < self.sigma_min <= self.sigma_max < float("inf"):
            raise ValueError(
                f"need 0 < sigma_min <= sigma_max (finite); got sigma_min = {self.sigma_min}, "
                f"sigma_max = {self.sigma_max}"
            )
        if self.n_sigma > 1 and self.sigma_min == self.sigma_max:
            raise ValueError(
                f"n_sigma = {self.n_sigma} values need sigma_max > sigma_min; got "
                f"{self.sigma_min} twice"
            )
        if not 0 <= self.g < float("inf"):
            raise ValueError(f"argument 'g' must be finite and >= 0; got {self.g}")
        if self.centre is not None and not math.isfinite(self.centre):
            raise ValueError(f"argument 'centre' must be finite or None; got {self.centre}")
        if not weights:
            _check_disorder_activation(self.parameter, self.activation)
        refuse_solve_settings(
            self.solve, ("adjoint", "max_steps"), "the step map is iterated, not solved by diffrax"
        )

    def gains(self) -> np.ndarray:
        """The coupling scales of a weights sweep: ``n_g`` evenly spaced from ``gmin`` to
        ``gmax``."""
        return np.linspace(self.gmin, self.gmax, self.n_g)

    def sigmas(self) -> np.ndarray:
        """The spreads of a gains or shifts sweep: ``n_sigma`` spaced evenly in log from
        ``sigma_min`` to ``sigma_max``."""
        logs = np.linspace(np.log2(self.sigma_min), np.log2(self.sigma_max), self.n_sigma)
        return np.exp2(logs)  # exact powers of two between powers of two

    def values(self) -> np.ndarray:
        """The swept values: `gains` for ``parameter = "weights"``, else `sigmas`."""
        return self.gains() if self.parameter == "weights" else self.sigmas()


def sample_network(
    key: PRNGKeyArray, sample: int, n: int, **model_kw: Any
) -> tuple[RateRNN, Float[Array, " n"], PRNGKeyArray]:
    r"""Network ``sample`` of a sweep: a unit-gain `RateRNN` (scaled by g later), its
    initial state $h_0 \sim \mathcal N(0, I)$ and the key of its tangent basis."""
    net_key, h_key, q_key = jax.random.split(jax.random.fold_in(key, sample), 3)
    model = RateRNN(n, g=1.0, key=net_key, **model_kw)
    return model, jax.random.normal(h_key, (n,), model.weight.dtype), q_key


def _unit_disorder(key: PRNGKeyArray, sample: Any, n: int, dtype: Any) -> Float[Array, " n"]:
    r"""$\xi^{(s)} \sim \mathcal N(0, I)$ of network ``sample`` (a stream of its own, so the
    network's coupling, state and basis are those of `sample_network`)."""
    key = jax.random.fold_in(jax.random.fold_in(key, sample), _DISORDER_STREAM)
    return jax.random.normal(key, (n,), dtype)


@eqx.filter_jit
def _measure_networks(
    models: RateRNN,
    scale: Float[Array, ""],
    gain: Float[Array, "s k"],
    shift: Float[Array, "s k"],
    h0: Float[Array, "s n"],
    keys: PRNGKeyArray,
    spectrum: SpectrumConfig,
) -> Float[Array, "s e"]:
    """The exponents of a batch of networks (leading axis ``s``), each with its coupling
    scaled by ``scale`` and the given gains and shifts, measured side by side by vmap."""

    def one(model, gain, shift, h, key):
        model = eqx.tree_at(
            lambda m: (m.weight, m.gain, m.shift), model, (model.weight * scale, gain, shift)
        )
        return spectrum.measure(model, h, key=key, checkpoint=False).exponents

    return eqx.filter_vmap(one)(models, gain, shift, h0, keys)


def chaos_sweep(
    values: Any,
    n: int,
    *,
    key: PRNGKeyArray,
    parameter: str = "weights",
    g: float | None = None,
    centre: float | None = None,
    n_samples: int = 3,
    activation: str = "tanh",
    spectrum: SpectrumConfig = _SWEEP_SPECTRUM,
    solve: SolveConfig = STEP_SOLVE,
    progress: Any = None,
) -> dict[str, Any]:
    r"""Lyapunov exponents of ``n_samples`` random networks of size ``n`` at every value of
    the swept ``parameter`` (see the module docstring), measured with ``spectrum`` (default:
    $\lambda_\max$ alone) on the step map ``solve``.

    ``values`` are the coupling scales $g$ for ``parameter = "weights"``, or the spreads
    $\sigma \ge 0$ of the gains or shifts for ``"gains"`` / ``"shifts"``, which use the
    coupling scale ``g`` (default 1) and draw around ``centre`` (default: the network's own
    value); ``g`` and ``centre`` are refused with ``"weights"``. The networks of a point are
    measured together (``jax.vmap`` over the networks).

    Returns ``parameter``, ``values [P]``, ``exponents [P, S, k]``, ``lambda_max [P, S]``,
    ``dimension [P, S]`` (Kaplan-Yorke; a lower bound when all ``k`` partial sums are
    positive) and ``entropy [P, S]``; ``g`` is the swept ``[P]`` for weights, the fixed scale
    for gains or shifts, which also give ``sigma [P]``, ``centre`` (None: the network's own
    values) and ``drawn [P, S, N]``, the gains or shifts every network ran with.
    ``progress(i, total)`` is called after each point."""
    if parameter not in SWEEP_PARAMETERS:
        raise ValueError(
            f"argument 'parameter' must be one of {', '.join(SWEEP_PARAMETERS)}; got {parameter!r}"
        )
    values = np.asarray(values, dtype=float).ravel()
    what = "g" if parameter == "weights" else "sigma"
    if values.size == 0 or np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError(
            f"argument 'values' must be a non-empty list of finite {what} >= 0; got {values}"
        )
    n = _check_count(n, "n")
    n_samples = _check_count(n_samples, "n_samples")
    if not isinstance(spectrum, SpectrumConfig):
        raise TypeError(
            f"argument 'spectrum' must be a SpectrumConfig; got {type(spectrum).__name__}"
        )
    if parameter == "weights":
        given = [name for name, v in (("g", g), ("centre", centre)) if v is not None]
        if given:
            raise ValueError(
                f"argument(s) {', '.join(given)} apply only to parameter 'gains' or 'shifts'; "
                "a weights sweep scales the coupling by its values"
            )
    else:
        _check_disorder_activation(parameter, activation)
        g = 1.0 if g is None else float(g)
        if not 0 <= g < float("inf"):
            raise ValueError(f"argument 'g' must be finite and >= 0; got {g}")
        if centre is not None and not math.isfinite(centre):
            raise ValueError(f"argument 'centre' must be finite or None; got {centre}")
    samples = jnp.arange(n_samples)
    models, h0, q_keys = eqx.filter_vmap(
        lambda s: sample_network(key, s, n, activation=activation, solve=solve)
    )(samples)
    dtype = models.weight.dtype
    base = {"gains": models.gain, "shifts": models.shift}
    if parameter != "weights":
        unit = jax.vmap(lambda s: _unit_disorder(key, s, n, dtype))(samples) / math.sqrt(n)
        mid = base[parameter] if centre is None else jnp.full_like(base[parameter], centre)
    n_exponents = n if spectrum.n_exponents is None else spectrum.n_exponents
    out = np.zeros((values.size, n_samples, n_exponents))
    drawn = np.zeros((values.size, n_samples, n)) if parameter != "weights" else None
    for i, value in enumerate(values):
        gain, shift, scale = models.gain, models.shift, value
        if drawn is not None:
            x = mid + jnp.asarray(value, dtype) * unit
            gain, shift = (x, shift) if parameter == "gains" else (gain, x)
            scale, drawn[i] = g, np.asarray(x)
        scale = jnp.asarray(scale, dtype)
        out[i] = np.asarray(_measure_networks(models, scale, gain, shift, h0, q_keys, spectrum))
        if progress is not None:
            progress(i + 1, values.size)
    lam = jnp.asarray(out)
    result: dict[str, Any] = {"parameter": parameter, "values": values}
    if parameter == "weights":
        result["g"] = values
    else:
        result.update(g=g, sigma=values, centre=centre, drawn=drawn)
    return result | {
        "exponents": out,
        "lambda_max": out.max(axis=-1),
        "dimension": np.asarray(jax.vmap(jax.vmap(kaplan_yorke_dimension))(lam)),
        "entropy": np.asarray(jax.vmap(jax.vmap(entropy_rate))(lam)),
    }


def _swept(result: dict[str, Any]) -> tuple[str, np.ndarray]:
    """The name (``g`` or ``sigma``) and the values of a sweep's points."""
    parameter = result.get("parameter", "weights")
    if parameter == "weights":
        return "g", np.asarray(result.get("values", result.get("g")))
    return "sigma", np.asarray(result["values"])


def sweep_statistics(result: dict[str, Any]) -> dict[str, Any]:
    r"""The mean and the standard error of the mean over the networks of every point of a
    `chaos_sweep`, for each of ``lambda_max``, ``dimension`` and ``entropy`` it holds:
    ``<q>_mean`` $= \bar x = \frac1S\sum_s x_s$ and ``<q>_se`` $= s/\sqrt S$ with
    $s^2 = \frac{1}{S-1}\sum_s (x_s - \bar x)^2$ (NaN for a single network); also
    ``parameter``, the swept values under ``g`` or ``sigma``, and ``n_samples`` $S$."""
    name, values = _swept(result)
    lam = np.asarray(result["lambda_max"], dtype=float)
    s = lam.shape[1]
    out: dict[str, Any] = {
        "parameter": result.get("parameter", "weights"),
        name: values,
        "n_samples": s,
    }
    for q in ("lambda_max", "dimension", "entropy"):
        if q not in result:
            continue
        x = np.asarray(result[q], dtype=float)
        out[f"{q}_mean"] = x.mean(axis=1)
        se = x.std(axis=1, ddof=1) / math.sqrt(s) if s > 1 else np.full(x.shape[0], np.nan)
        out[f"{q}_se"] = se
    return out


def chaos_summary(result: dict[str, Any]) -> dict[str, float]:
    r"""Where a `chaos_sweep` turns chaotic: ``g_first_positive`` (``sigma_first_positive``
    for a sweep of gains or shifts), the smallest swept value whose median $\lambda_\max$
    over the networks is $> 0$ (NaN if none), and the median $\lambda_\max$ at the smallest
    and the largest value (``lambda_max_at_gmin`` and ``_gmax``, or ``_sigma_min`` and
    ``_sigma_max``)."""
    name, values = _swept(result)
    median = np.median(np.asarray(result["lambda_max"]), axis=1)
    above = np.nonzero(median > 0)[0]
    low, high = ("gmin", "gmax") if name == "g" else ("sigma_min", "sigma_max")
    return {
        f"{name}_first_positive": float(values[above[0]]) if above.size else float("nan"),
        f"lambda_max_at_{low}": float(median[0]),
        f"lambda_max_at_{high}": float(median[-1]),
    }
