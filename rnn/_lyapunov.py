r"""Lyapunov spectra by the Benettin / QR method, differentiable end to end.

The algorithm follows Engelken, Wolf & Abbott (RNN-LyapunovSpectra), as used for rate RNNs by
FlyStability (Koehn; edouardkoehn/FlyStability).

For a map $h_{n+1} = F(h_n)$ (here: one fixed step of a diffrax solver, see
`RateRNN.step`) the first $k$ exponents are

$$
\lambda_i = \lim_{T\to\infty} \frac{1}{T} \sum_{b=1}^{B} \log |R^{(b)}_{ii}|,
\qquad Q^{(b)} R^{(b)} = \Big(\prod_{n \in \text{block } b} DF(h_n)\Big) Q^{(b-1)},
$$

with $Q^{(0)}$ a random orthonormal $N\times k$ basis, one QR factorisation every
$t_\mathrm{ons}$ and $T = B\,t_\mathrm{ons}$ the *measured* time only. Tangent
vectors are pushed by ``jax.linearize`` of the exact step map, or, for a model with a
``variational_step`` (`RateRNN`), by that step of the variational system,
which is the same map with the state and tangent products stacked into one (never a
hand-written Jacobian; FlyStability's Jacobian had the wrong slope and was evaluated at
$h_{n+1}$ instead of $h_n$). The QR is `qr`: on CPU a Householder QR
in XLA operations, since LAPACK's threads slow the surrounding matrix products down. A state
transient (``t_transient``) runs before tangent propagation starts, and an
orthonormalisation transient (``t_ons_transient``) propagates and re-orthonormalises
without accumulating. The loops are ``lax.scan`` s over checkpointed blocks, so the
spectrum can be differentiated with respect to the model (the QR has JAX's JVP rule for
tall matrices); use float64 (``jax.enable_x64``) for accurate spectra.

The *flow* mode (``flow=SolveConfig(...)``) measures the continuous-time exponents instead:
the variational system $\dot h = f(h),\ \dot Q = Df(h)\,Q$ is solved by diffrax (any
solver, adaptive included) over each $t_\mathrm{ons}$ interval.

Derived quantities: `max_exponent`, `kaplan_yorke_dimension`,
`entropy_rate` (Pesin: the sum of positive exponents bounds the Kolmogorov-Sinai
entropy), `convergence_diagnostics`, and all of them at once as `spectrum_summary`.

The measurement settings of configs and commands are one `SpectrumConfig`.

The model-agnostic machinery (the result type, the propagators of step maps and flows, the
Benettin loop, the derived quantities, `diffdyn.common.lyapunov_exponents` for any vector
field or step map) lives in `diffdyn.common` and is re-exported here; this module adds what
is particular to `RateRNN`: the fused `VariationalStepPropagator`, the CPU-friendly QR
`qr` in `benettin` and `random_basis`, `lyapunov_spectrum` and `SpectrumConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from diffdyn.common import (
    AbstractTangentPropagator,
    FlowPropagator,
    LyapunovSpectrum,
    SolveConfig,
    StepMapPropagator,
    convergence_diagnostics,
    entropy_rate,
    kaplan_yorke_dimension,
    max_exponent,
    running_exponents,
    spectrum_summary,
)
from diffdyn.common import benettin as _benettin
from diffdyn.common import random_basis as _random_basis
from diffdyn.common._helpers import check_time, steps_of

from ._qr import qr as _thin_qr

__all__ = [
    "SpectrumConfig",
    "LyapunovSpectrum",
    "AbstractTangentPropagator",
    "StepMapPropagator",
    "VariationalStepPropagator",
    "FlowPropagator",
    "benettin",
    "lyapunov_spectrum",
    "random_basis",
    "max_exponent",
    "kaplan_yorke_dimension",
    "entropy_rate",
    "running_exponents",
    "convergence_diagnostics",
    "spectrum_summary",
]


@dataclasses.dataclass(frozen=True)
class SpectrumConfig:
    """How a Lyapunov spectrum is measured (times in units of the membrane time constant).

    Attributes:
        n_exponents: how many exponents, the largest first (None: all N).
        t_sim: the measured time over which the exponents are averaged (rounded up to whole
            t_ons blocks).
        t_ons: the time between two QR re-orthonormalisations (a multiple of the step dt0).
        t_transient: the time the state runs before tangent vectors are propagated (a
            multiple of dt0).
        t_ons_transient: the time the tangent basis is propagated and re-orthonormalised
            before exponents are accumulated (rounded up to whole t_ons blocks).
    """

    n_exponents: int | None = None
    t_sim: float = 200.0
    t_ons: float = 1.0
    t_transient: float = 100.0
    t_ons_transient: float = 10.0

    def __post_init__(self) -> None:
        k = self.n_exponents
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"argument 'n_exponents' must be an integer >= 1 or None; got {k!r}")
        check_time(self.t_sim, "t_sim", zero=False)
        check_time(self.t_ons, "t_ons", zero=False)
        check_time(self.t_transient, "t_transient", zero=True)
        check_time(self.t_ons_transient, "t_ons_transient", zero=True)

    def measure(
        self,
        model: Any,
        h0: Float[ArrayLike, " n"],
        *,
        key: PRNGKeyArray,
        flow: SolveConfig | None = None,
        checkpoint: bool = True,
    ) -> LyapunovSpectrum:
        """`lyapunov_spectrum` of ``model`` from ``h0`` with these settings (``flow`` and
        ``checkpoint`` as there; ``checkpoint=False`` when nothing is differentiated)."""
        return lyapunov_spectrum(
            model,
            h0,
            key=key,
            n_exponents=self.n_exponents,
            t_sim=self.t_sim,
            t_ons=self.t_ons,
            t_transient=self.t_transient,
            t_ons_transient=self.t_ons_transient,
            flow=flow,
            checkpoint=checkpoint,
        )


class VariationalStepPropagator(AbstractTangentPropagator):
    r"""The same iteration as `StepMapPropagator`, for a model that advances its state
    and tangent columns together: ``variational_step(h, Q) -> (F(h), DF(h) Q)``.

    The result is the same (up to rounding: the tests compare both); what differs is the
    work. With ``jax.linearize`` the state and the tangents are pushed by separate products;
    for `RateRNN` (see `RateRNN.variational_step`) that is a
    matrix-vector product $J\phi(h)$ and a matrix product $J\,D\phi(h)\,Q$,
    each reading all of $J$ from memory, while the variational step stacks them into
    one $[N, N] \times [N, k+1]$ product that reads $J$ once. `lyapunov_spectrum` uses this
    propagator whenever the model has a ``variational_step`` method."""

    step: Callable[[Float[Array, " n"]], Float[Array, " n"]]
    variational_step: Callable[..., tuple[Float[Array, " n"], Float[Array, "n k"]]]
    n_steps: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    t_ons: float = eqx.field(static=True)

    def __init__(
        self,
        step: Callable[..., Any],
        variational_step: Callable[..., Any],
        n_steps: int,
        dt: float,
    ):
        self.step, self.variational_step = step, variational_step
        self.n_steps, self.dt = int(n_steps), float(dt)
        self.t_ons = self.n_steps * self.dt

    def __call__(self, h, q):
        def one(carry, _):
            return self.variational_step(*carry), None

        (h, q), _ = jax.lax.scan(one, (h, q), length=self.n_steps)
        return h, q

    def advance(self, h, time):
        return StepMapPropagator(self.step, self.n_steps, self.dt).advance(h, time)


def random_basis(key: PRNGKeyArray, n: int, k: int, dtype: Any = None) -> Float[Array, "n k"]:
    """A random orthonormal ``[n, k]`` basis (QR of a Gaussian matrix, by `qr`)."""
    # one QR: the version that compiles fastest (see rnn.qr)
    return _random_basis(key, n, k, dtype, qr=partial(_thin_qr, phases=1))


def benettin(
    propagator: AbstractTangentPropagator,
    h: Float[Array, " n"],
    q: Float[Array, "n k"],
    *,
    n_blocks: int,
    n_transient_blocks: int = 0,
    checkpoint: bool = True,
    qr: Callable[[Array], tuple[Array, Array]] | None = None,
) -> LyapunovSpectrum:
    """The Benettin / QR iteration from state ``h`` and orthonormal basis ``q``:
    `diffdyn.common.benettin` with the thin QR ``qr`` (default `qr`: Householder in XLA
    operations on CPU).

    ``n_transient_blocks`` blocks are propagated and re-orthonormalised without being
    counted; the next ``n_blocks`` blocks are accumulated and divided by their duration
    ``n_blocks * t_ons``. With ``checkpoint`` each block is recomputed on the backward pass
    instead of stored (memory O(blocks * N * k))."""
    return _benettin(
        propagator,
        h,
        q,
        n_blocks=n_blocks,
        n_transient_blocks=n_transient_blocks,
        checkpoint=checkpoint,
        qr=_thin_qr if qr is None else qr,
    )


def lyapunov_spectrum(
    model: Any,
    h0: Float[ArrayLike, " n"],
    *,
    key: PRNGKeyArray,
    n_exponents: int | None = None,
    t_sim: float = 200.0,
    t_ons: float = 1.0,
    t_transient: float = 100.0,
    t_ons_transient: float = 10.0,
    flow: SolveConfig | None = None,
    detach_transient: bool = True,
    checkpoint: bool = True,
    fused: bool = True,
    qr: Callable[[Array], tuple[Array, Array]] | None = None,
) -> LyapunovSpectrum:
    """The first ``n_exponents`` (default all) Lyapunov exponents of a model.

    ``model`` needs ``n``, ``dt``, ``step(h)`` and the vector field ``model(t, h, args)``
    (e.g. `RateRNN`). Without ``flow`` the exponents are those of the
    exact step map ``model.step`` (time unit: ``dt`` per step); with ``flow`` those of the
    continuous-time flow solved by that config. ``t_ons`` and ``t_transient`` must be
    multiples of ``dt`` in map mode; ``t_sim`` and ``t_ons_transient`` are rounded up to
    whole ``t_ons`` blocks. ``detach_transient`` stops gradients through the state transient.
    In map mode a model with a ``variational_step(h, Q)`` method (such as
    `RateRNN`) has its tangents pushed by it
    (`VariationalStepPropagator`, faster); ``fused=False`` uses ``jax.linearize`` of
    ``model.step`` instead (`StepMapPropagator`; the same exponents up to rounding).
    ``qr`` re-orthonormalises the tangents: a function ``a -> (Q, R)`` giving the thin QR
    of an ``[n, k]`` matrix (default `qr`; ``jax.numpy.linalg.qr`` calls LAPACK on CPU).
    """
    n = int(model.n)
    h0 = model.check_state(h0, "h0")
    k = n if n_exponents is None else n_exponents
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"argument 'n_exponents' must be an integer in [1, {n}]; got {k!r}")
    for name, value in (("t_sim", t_sim), ("t_ons", t_ons)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"argument {name!r} must be a finite number > 0; got {value!r}")
    for name, value in (("t_transient", t_transient), ("t_ons_transient", t_ons_transient)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"argument {name!r} must be a finite number >= 0; got {value!r}")
    if flow is None:
        n_ons = steps_of(t_ons, model.dt, "t_ons")
        variational = getattr(model, "variational_step", None) if fused else None
        propagator: AbstractTangentPropagator = (
            StepMapPropagator(model.step, n_ons, float(model.dt))
            if variational is None
            else VariationalStepPropagator(model.step, variational, n_ons, float(model.dt))
        )
        steps_of(t_transient, model.dt, "t_transient", allow_zero=True)
    elif isinstance(flow, SolveConfig):
        propagator = FlowPropagator(vector_field=model, t_ons=float(t_ons), solve=flow)
    else:
        raise TypeError(f"argument 'flow' must be a SolveConfig or None; got {flow!r}")
    n_blocks = max(1, math.ceil(t_sim / t_ons - 1e-9))
    n_transient_blocks = math.ceil(t_ons_transient / t_ons - 1e-9)
    h = propagator.advance(h0, float(t_transient))
    if detach_transient:
        h = jax.lax.stop_gradient(h)
    q0 = random_basis(key, n, int(k), h.dtype)
    return benettin(
        propagator,
        h,
        q0,
        n_blocks=n_blocks,
        n_transient_blocks=n_transient_blocks,
        checkpoint=checkpoint,
        qr=qr,
    )
