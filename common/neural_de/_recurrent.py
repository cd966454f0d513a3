r"""Recurrent neural ODEs for irregularly sampled time series: ODE-RNN and GRU-ODE-Bayes.

A hidden state $h(t) \in \mathbb{R}^H$ evolves by an ODE between observations and jumps at
each observation $(t_i, x_i)$, $t_0 \le t_1 \le \dots$:

$$
h_i^- = \Phi_{t_{i-1} \to t_i}(h_{i-1}), \qquad h_i = u(h_i^-, x_i, m_i),
$$

where $\Phi$ is the flow of $\dot h = f(h)$ and $u$ is a GRU-style update fed with the
observed entries (mask $m_i \in \{0, 1\}^D$). `ODERNN` (Rubanova, Chen & Duvenaud, 2019)
has a neural field $f$ and a GRU cell $u$; `GRUODEBayes` (De Brouwer, Simm, Arany &
Moreau, 2019) has the continuous GRU field $\dot h = (1 - z) \odot (g - h)$ and a
Bayesian-style update that sees the Gaussian it predicted for the observation. `GRUDelta`
is their discrete baseline: a GRU that sees time only through the input $\Delta t_i$.

**One solve per interval.** ``jax.lax.scan`` walks the observations; step $i$ solves the ODE
once, over $[t_{i-1}, t_i]$, with `SolveConfig.solve`. The interval is mapped onto
$s \in [0, 1]$ with $t = t_{i-1} + s\,\Delta_i$, $\Delta_i = t_i - t_{i-1}$:

$$
\frac{dh}{ds} = \Delta_i\, f\big(h(t_{i-1} + s \Delta_i)\big),
$$

so every solve runs over the same unit interval and a zero-length interval
($\Delta_i = 0$: repeated times, the first observation at $t_0$, padding) is a zero field
that leaves $h$ exactly unchanged, with no degenerate interval and no NaN in values or
gradients. A consequence: a fixed step ``SolveConfig.dt0`` is measured in units of the
interval ($\mathrm{dt0} = 0.25$ takes 4 steps per interval, whatever its length), and
``dt0=None`` with a fixed step takes 100 steps per interval. Tolerances act on $h$ as usual.

**Masks and padding.** ``mask`` is ``[T]`` (per time step) or ``[T, D]`` (per entry), bool
or 0/1; None means everything is observed. Masked values are ignored (they may be NaN).
A step with no observed entry is skipped as a whole: $\Delta = 0$ (no evolution), no
update, no loss, and the clock $t_{i-1}$ stays at the last observed time; its time may be
anything (even NaN). The outputs at such a step repeat the state of the last observed step.
So a sequence padded with masked steps (anywhere) gives exactly the results of the
unpadded one at its observed steps; ragged batches are padded to one length and mapped with
``jax.vmap`` (`ODERNN.batch` does it for the ODE-RNN). Times of observed steps must be
non-decreasing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray, Real

from .._helpers import check_int, check_number
from .._model import AbstractModel
from .._solve import SolveConfig
from ._node import _check_solve, get_activation

__all__ = ["ODERNN", "GRUODEBayes", "GRUDelta"]

Mask = (
    Bool[ArrayLike, " T"]
    | Bool[ArrayLike, "T D"]
    | Float[ArrayLike, " T"]
    | Float[ArrayLike, "T D"]
)


def _is_concrete(*xs: Any) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


# ----------------------------------------------------------------------------------------
# The shared machinery (also used by the latent ODE)
# ----------------------------------------------------------------------------------------


def _flow(
    solve: SolveConfig,
    field: Callable[[Array, Array], Array],
    h: Array,
    t_prev: Array,
    dt: Array,
) -> Array:
    r"""$h(t_{prev} + \Delta)$ from $h(t_{prev}) = h$ under $\dot h = f(t, h)$, solved on the
    unit interval $s \in [0, 1]$ as $dh/ds = \Delta f(t_{prev} + s\Delta, h)$ (a zero
    $\Delta$ leaves $h$ exactly unchanged; a negative one runs backwards in time)."""

    def rescaled(s, y, args):
        return dt * field(t_prev + s * dt, y)

    unit = np.ones((1,), dtype=np.dtype(h.dtype))
    return solve.solve(rescaled, h, unit, t0=np.zeros((), dtype=unit.dtype))[0]


def _prepare(
    owner: str, ts: Any, xs: Any, mask: Any, dim: int
) -> tuple[Array, Array, Array, Array]:
    """Checked ``(ts [T], xs [T, D], mask [T, D] as 0/1 floats, observed [T] bool)``, with
    masked values replaced by 0 and the times of unobserved steps by 0."""
    xs = jnp.asarray(xs)
    if xs.ndim != 2 or xs.shape[1] != dim or xs.shape[0] < 1:
        raise ValueError(f"{owner}: argument 'xs' must have shape [T, D={dim}]; got {xs.shape}")
    if not jnp.issubdtype(xs.dtype, jnp.floating):
        if not jnp.issubdtype(xs.dtype, jnp.integer):
            raise TypeError(f"{owner}: argument 'xs' must hold real numbers; got {xs.dtype}")
        xs = xs.astype(jnp.result_type(float))
    n = xs.shape[0]
    ts = jnp.asarray(ts)
    if ts.shape != (n,):
        raise ValueError(f"{owner}: argument 'ts' must have shape [T={n}]; got {ts.shape}")
    if not jnp.issubdtype(ts.dtype, jnp.floating):
        if not jnp.issubdtype(ts.dtype, jnp.integer):
            raise TypeError(f"{owner}: argument 'ts' must hold real numbers; got {ts.dtype}")
        ts = ts.astype(jnp.result_type(float))
    if mask is None:
        mask = jnp.ones(xs.shape, xs.dtype)
    else:
        mask = jnp.asarray(mask)
        if mask.shape not in ((n,), xs.shape):
            raise ValueError(
                f"{owner}: argument 'mask' must have shape [T={n}] or [T={n}, D={dim}]; got "
                f"{mask.shape}"
            )
        if _is_concrete(mask) and not np.all(np.isin(np.asarray(mask), (0, 1))):
            raise ValueError(f"{owner}: argument 'mask' must hold only 0/1 (or bools)")
        if mask.ndim == 1:
            mask = jnp.broadcast_to(mask[:, None], xs.shape)
        mask = mask.astype(xs.dtype)
    observed = jnp.any(mask > 0, axis=1)
    if _is_concrete(xs, ts, mask):
        seen, values = np.asarray(observed), np.asarray(ts)
        bad = ~np.isfinite(np.asarray(xs)) & (np.asarray(mask) > 0)
        if np.any(bad):
            raise ValueError(
                f"{owner}: argument 'xs' has NaN or inf at {int(bad.sum())} observed entries "
                "(mask them out with 0 in 'mask')"
            )
        if not np.all(np.isfinite(values[seen])):
            raise ValueError(f"{owner}: argument 'ts' must be finite at observed steps")
        if np.any(np.diff(values[seen]) < 0):
            raise ValueError(
                f"{owner}: argument 'ts' must be non-decreasing over the observed steps; got "
                f"{values[seen]}"
            )
    xs = jnp.where(mask > 0, xs, 0.0)
    ts = jnp.where(observed, ts, 0.0)
    return ts, xs, mask, observed


def _first_time(ts: Array, observed: Array, reverse: bool) -> Array:
    """The first observed time in processing order (``ts[0]`` if nothing is observed)."""
    order = observed[::-1] if reverse else observed
    i = jnp.argmax(order)
    return ts[ts.shape[0] - 1 - i] if reverse else ts[i]


def _start(owner: str, t0: Any, ts: Array, observed: Array, reverse: bool) -> Array:
    """The checked start time: ``t0``, or the first observed time in processing order."""
    if t0 is None:
        return _first_time(ts, observed, reverse)
    t0 = jnp.asarray(t0, ts.dtype)
    if t0.ndim != 0:
        raise ValueError(f"{owner}: argument 't0' must be a scalar; got shape {t0.shape}")
    if _is_concrete(t0, ts, observed):
        seen = np.asarray(ts)[np.asarray(observed)]
        value = float(t0)
        if not math.isfinite(value):
            raise ValueError(f"{owner}: argument 't0' must be finite; got {value}")
        if seen.size and (value > seen.min() if not reverse else value < seen.max()):
            where = "<= the first" if not reverse else ">= the last"
            raise ValueError(
                f"{owner}: argument 't0' must be {where} observed time "
                f"({seen.min() if not reverse else seen.max()}); got {value}"
            )
    return t0


def _check_h0(owner: str, h0: Any, size: int, dtype: Any) -> Array:
    if h0 is None:
        return jnp.zeros((size,), dtype)
    h0 = jnp.asarray(h0)
    if h0.shape != (size,):
        raise ValueError(f"{owner}: argument 'h0' must have shape [{size}]; got {h0.shape}")
    return h0.astype(jnp.result_type(h0, dtype))


def _scan(
    solve: SolveConfig,
    field: Callable[[Array, Array], Array],
    update: Callable[[Array, Array, Array], tuple[Array, Any]],
    h0: Array,
    t0: Array,
    ts: Array,
    xs: Array,
    mask: Array,
    observed: Array,
    reverse: bool = False,
    jump: Array | None = None,
) -> tuple[Array, Array, Array, Any]:
    """The scan over observations: returns the final state, and per step the state before
    the update $h_i^-$, after it $h_i$, and the update's extra output. Steps with
    ``observed`` False are skipped; ``jump`` (default ``observed``) says which of the others
    apply the update (False: evolve to that time only)."""
    jump = observed if jump is None else jump

    def step(carry, inputs):
        h, t_prev = carry
        t, x, m, seen, jumps = inputs
        dt = jnp.where(seen, t - t_prev, 0.0)
        pre = _flow(solve, field, h, t_prev, dt)
        new, extra = update(pre, x, m)
        post = jnp.where(jumps, new, pre)
        return (post, jnp.where(seen, t, t_prev)), (pre, post, extra)

    (h, _), (pre, post, extra) = jax.lax.scan(
        step, (h0, t0), (ts, xs, mask, observed, observed & jump), reverse=reverse
    )
    return h, pre, post, extra


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"argument {name!r} must be a bool; got {value!r}")
    return value


# ----------------------------------------------------------------------------------------
# ODE-RNN
# ----------------------------------------------------------------------------------------


class ODERNN(AbstractModel):
    r"""The ODE-RNN of Rubanova, Chen & Duvenaud (2019): a GRU whose hidden state follows a
    neural ODE between observations,

    $$
    h_i^- = \Phi^f_{t_{i-1} \to t_i}(h_{i-1}), \qquad
    h_i = \mathrm{GRU}\big([m_i \odot x_i,\, m_i],\, h_i^-\big), \qquad
    y_i = W h_i + b,
    $$

    with $\dot h = f(h) = \mathrm{MLP}(h)$, $h$ at the start time $t_0$ given (``h0``,
    default 0) and the mask $m_i$ fed to the GRU beside the zero-filled values so that a
    missing entry is told apart from an observed zero. Each interval is one
    `SolveConfig.solve` (see the module docstring: rescaled to $[0, 1]$, zero-length and
    masked steps are exact no-ops).

    Args:
        input_dim: $D$, the dimension of one observation.
        hidden_dim: $H$.
        output_dim: the readout's dimension (None: $D$).
        width: hidden width of the field's MLP.
        depth: hidden layers of the field's MLP (0: the linear field $f(h) = A h + c$).
        activation: the MLP's activation (`ACTIVATIONS`).
        solve: how each interval is solved (`SolveConfig`).
        key: initialises the layers.

    One sequence per call (``ts [T]``, ``xs [T, D]``, ``mask [T]`` or ``[T, D]``); a padded
    batch with `batch` or ``jax.vmap``. ``reverse=True`` runs from the last observation back
    to the first (time running backwards), as the encoder of a latent ODE does.
    """

    field: eqx.nn.MLP
    cell: eqx.nn.GRUCell
    readout: eqx.nn.Linear
    input_dim: int = eqx.field(static=True)
    hidden_dim: int = eqx.field(static=True)
    output_dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int | None = None,
        *,
        width: int = 32,
        depth: int = 1,
        activation: str = "tanh",
        solve: SolveConfig = SolveConfig(),  # noqa: B008 (frozen, hashable)
        key: PRNGKeyArray,
    ):
        self.input_dim = check_int(input_dim, "input_dim")
        self.hidden_dim = check_int(hidden_dim, "hidden_dim")
        self.output_dim = (
            self.input_dim if output_dim is None else check_int(output_dim, "output_dim")
        )
        self.width = check_int(width, "width")
        self.depth = check_int(depth, "depth", 0)
        act = get_activation(activation)
        self.activation = activation
        self.solve = _check_solve(solve)
        k_field, k_cell, k_out = jax.random.split(key, 3)
        h = self.hidden_dim
        self.field = eqx.nn.MLP(h, h, self.width, self.depth, activation=act, key=k_field)
        self.cell = eqx.nn.GRUCell(2 * self.input_dim, h, key=k_cell)
        self.readout = eqx.nn.Linear(h, self.output_dim, key=k_out)

    def vector_field(self, t: Any, h: Float[Array, " H"], args: Any = None) -> Float[Array, " H"]:
        r"""$\dot h = f(h)$ between observations (autonomous: ``t`` is ignored)."""
        return self.field(h)

    def update(
        self, h: Float[Array, " H"], x: Float[Array, " D"], m: Float[Array, " D"]
    ) -> Float[Array, " H"]:
        r"""The jump at an observation: $\mathrm{GRU}([m \odot x, m], h)$ (values where
        ``m`` is 0 are ignored, NaN included)."""
        m = m.astype(x.dtype)
        return self.cell(jnp.concatenate([jnp.where(m > 0, x, 0.0), m]), h)

    def _run(self, ts, xs, mask, t0, h0, reverse):
        owner = type(self).__name__
        _check_bool(reverse, "reverse")
        ts, xs, mask, observed = _prepare(owner, ts, xs, mask, self.input_dim)
        t0 = _start(owner, t0, ts, observed, reverse)
        h0 = _check_h0(owner, h0, self.hidden_dim, xs.dtype)
        field = lambda t, h: self.field(h)  # noqa: E731
        update = lambda h, x, m: (self.update(h, x, m), None)  # noqa: E731
        last, pre, post, _ = _scan(
            self.solve, field, update, h0, t0, ts, xs, mask, observed, reverse
        )
        return last, pre, post

    def states(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T D"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        h0: Float[ArrayLike, " H"] | None = None,
        reverse: bool = False,
    ) -> tuple[Float[Array, "T H"], Float[Array, "T H"]]:
        r"""``(pre, post)``: the states $h_i^-$ just before and $h_i$ just after each
        observation. ``t0`` (default: the first observed time, in processing order) is where
        ``h0`` (default 0) sits; fully masked steps repeat the last observed step's states."""
        _, pre, post = self._run(ts, xs, mask, t0, h0, reverse)
        return pre, post

    def __call__(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T D"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        h0: Float[ArrayLike, " H"] | None = None,
        reverse: bool = False,
    ) -> Float[Array, "T H"]:
        """The hidden states $h_i$ after each observation (``[T, H]``); see `states`."""
        return self._run(ts, xs, mask, t0, h0, reverse)[2]

    def final(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T D"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        h0: Float[ArrayLike, " H"] | None = None,
        reverse: bool = False,
    ) -> Float[Array, " H"]:
        """The state after the last observation processed (the first one when
        ``reverse``)."""
        return self._run(ts, xs, mask, t0, h0, reverse)[0]

    def predict(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T D"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        h0: Float[ArrayLike, " H"] | None = None,
        reverse: bool = False,
    ) -> Float[Array, "T O"]:
        """The readout $y_i = W h_i + b$ of every state after an observation."""
        return jax.vmap(self.readout)(self(ts, xs, mask, t0=t0, h0=h0, reverse=reverse))

    def batch(
        self,
        ts: Real[ArrayLike, "B T"],
        xs: Float[ArrayLike, "B T D"],
        mask: Bool[ArrayLike, "B T"]
        | Bool[ArrayLike, "B T D"]
        | Float[ArrayLike, "B T D"]
        | None = None,
        *,
        t0: Real[ArrayLike, " B"] | None = None,
        reverse: bool = False,
    ) -> Float[Array, "B T H"]:
        """`__call__` over a padded batch (``jax.vmap``): ``ts [B, T]``, ``xs [B, T, D]``,
        ``mask [B, T]`` or ``[B, T, D]`` (ragged sequences padded with masked steps),
        ``t0`` None or ``[B]``. Returns ``[B, T, H]``."""
        ts, xs = jnp.asarray(ts), jnp.asarray(xs)
        if xs.ndim != 3 or ts.shape != xs.shape[:2]:
            raise ValueError(
                f"ODERNN.batch: arguments 'ts' [B, T] and 'xs' [B, T, D] must agree; got "
                f"{ts.shape} and {xs.shape}"
            )
        if mask is not None and jnp.shape(mask)[:2] != xs.shape[:2]:
            raise ValueError(
                f"ODERNN.batch: argument 'mask' must have shape [B, T] or [B, T, D] with "
                f"[B, T] = {xs.shape[:2]}; got {jnp.shape(mask)}"
            )
        if t0 is not None and jnp.shape(t0) != xs.shape[:1]:
            raise ValueError(
                f"ODERNN.batch: argument 't0' must have shape [B={xs.shape[0]}]; got "
                f"{jnp.shape(t0)}"
            )
        # check every sample's values up front (inside vmap the arrays are traced)
        if _is_concrete(ts, xs, mask):
            for b in range(xs.shape[0]):
                m = None if mask is None else mask[b]
                _prepare(f"ODERNN.batch (sample {b})", ts[b], xs[b], m, self.input_dim)
        in_axes = (0, 0, None if mask is None else 0, None if t0 is None else 0)

        def one(t, x, m, s):
            return self(t, x, m, t0=s, reverse=reverse)

        return jax.vmap(one, in_axes=in_axes)(ts, xs, mask, t0)


# ----------------------------------------------------------------------------------------
# GRU-ODE-Bayes
# ----------------------------------------------------------------------------------------


class GRUODEBayes(AbstractModel):
    r"""GRU-ODE-Bayes (De Brouwer, Simm, Arany & Moreau, 2019) for sporadically and
    partially observed series.

    **Between observations**, the GRU-ODE (a GRU in continuous time, without input)

    $$
    \frac{dh}{dt} = (1 - z) \odot (g - h), \quad
    z = \sigma(W_z h + b_z),\ r = \sigma(W_r h + b_r),\ g = \tanh\big(W_g (r \odot h) + b_g\big).
    $$

    With $z, g$ fixed it relaxes as $h(t) = g + (h_0 - g)\,e^{-(1 - z) t}$.

    **The observation model** maps $h$ to a Gaussian over the $D$ observed dimensions,
    $(\mu, v) = \mathrm{MLP}(h)$, mean $\mu$ and log-variance $v$.

    **At an observation** $(x, m)$, GRU-Bayes: each dimension $d$ forms the features
    $\phi_d = [x_d, \mu_d, v_d, (x_d - \mu_d) e^{-v_d/2}]$ from the prediction of
    $h^-$, maps them by its own layer $e_d = m_d\, a(U_d \phi_d + c_d) \in \mathbb{R}^P$
    (zero for an unobserved dimension, so its value never enters) and the GRU cell updates
    $h^+ = \mathrm{GRU}([e_1, \dots, e_D], h^-)$.

    **The loss** of one sequence (sums over observed entries $m_{id} = 1$):

    $$
    \mathcal L = \sum_{i,d} m_{id} \Big[\tfrac12\big(v^-_{id} + (x_{id} - \mu^-_{id})^2
    e^{-v^-_{id}} + \log 2\pi\big)\Big]
    + \lambda \sum_{i,d} m_{id}\, \mathrm{KL}\big(\mathcal N(\mu^+_{id}, e^{v^+_{id}})
    \,\big\|\, \mathcal N(x_{id}, s^2)\big),
    $$

    the negative log-likelihood of each observation under the prediction made before it
    (from $h^-$), plus, weighted by $\lambda$ (``mixing``), the divergence of the
    post-update prediction (from $h^+$) from a narrow Gaussian of width $s$
    (``obs_noise_std``) at the observed value: the update should move the prediction onto
    the data. $\mathrm{KL}(\mathcal N(\mu, \sigma^2) \| \mathcal N(x, s^2)) = \log(s/\sigma)
    + (\sigma^2 + (\mu - x)^2) / (2 s^2) - \tfrac12$. The paper's defaults are
    $\lambda = 10^{-4}$, $s = 10^{-2}$.

    Args:
        input_dim: $D$.
        hidden_dim: $H$.
        prep_dim: $P$, the features per dimension fed to the GRU cell.
        width: hidden width of the observation model's MLP.
        depth: hidden layers of the observation model's MLP.
        activation: the activation $a$ of the MLP and of the per-dimension layers.
        mixing: $\lambda \ge 0$.
        obs_noise_std: $s > 0$.
        solve: how each interval is solved (`SolveConfig`, as in `ODERNN`).
        key: initialises the layers.

    One sequence per call; ``jax.vmap`` over a padded batch (see the module docstring).
    """

    update_gate: eqx.nn.Linear
    reset_gate: eqx.nn.Linear
    candidate: eqx.nn.Linear
    observation_net: eqx.nn.MLP
    prep_weight: Float[Array, "D 4 P"]
    prep_bias: Float[Array, "D P"]
    cell: eqx.nn.GRUCell
    input_dim: int = eqx.field(static=True)
    hidden_dim: int = eqx.field(static=True)
    prep_dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    mixing: float = eqx.field(static=True)
    obs_noise_std: float = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        *,
        prep_dim: int = 4,
        width: int = 32,
        depth: int = 1,
        activation: str = "tanh",
        mixing: float = 1e-4,
        obs_noise_std: float = 1e-2,
        solve: SolveConfig = SolveConfig(),  # noqa: B008 (frozen, hashable)
        key: PRNGKeyArray,
    ):
        self.input_dim = check_int(input_dim, "input_dim")
        self.hidden_dim = check_int(hidden_dim, "hidden_dim")
        self.prep_dim = check_int(prep_dim, "prep_dim")
        self.width = check_int(width, "width")
        self.depth = check_int(depth, "depth", 0)
        act = get_activation(activation)
        self.activation = activation
        self.mixing = check_number(mixing, "mixing")
        if not math.isfinite(self.mixing):
            raise ValueError(f"mixing must be finite; got {mixing!r}")
        self.obs_noise_std = check_number(obs_noise_std, "obs_noise_std")
        if not (self.obs_noise_std > 0 and math.isfinite(self.obs_noise_std)):
            raise ValueError(f"obs_noise_std must be a finite number > 0; got {obs_noise_std!r}")
        self.solve = _check_solve(solve)
        d, h, p = self.input_dim, self.hidden_dim, self.prep_dim
        keys = jax.random.split(key, 7)
        self.update_gate = eqx.nn.Linear(h, h, key=keys[0])
        self.reset_gate = eqx.nn.Linear(h, h, key=keys[1])
        self.candidate = eqx.nn.Linear(h, h, key=keys[2])
        self.observation_net = eqx.nn.MLP(
            h, 2 * d, self.width, self.depth, activation=act, key=keys[3]
        )
        dtype = self.candidate.weight.dtype
        self.prep_weight = jax.random.normal(keys[4], (d, 4, p), dtype) / 2.0
        self.prep_bias = jnp.zeros((d, p), dtype)
        self.cell = eqx.nn.GRUCell(d * p, h, key=keys[5])

    # ------------------------------------------------------------------ the pieces

    def vector_field(self, t: Any, h: Float[Array, " H"], args: Any = None) -> Float[Array, " H"]:
        r"""The GRU-ODE $\dot h = (1 - z) \odot (g - h)$ (autonomous: ``t`` is ignored)."""
        z = jax.nn.sigmoid(self.update_gate(h))
        r = jax.nn.sigmoid(self.reset_gate(h))
        g = jnp.tanh(self.candidate(r * h))
        return (1 - z) * (g - h)

    def observation_model(
        self, h: Float[Array, " H"]
    ) -> tuple[Float[Array, " D"], Float[Array, " D"]]:
        r"""The predicted Gaussian of an observation: mean $\mu$ and log-variance $v$."""
        mean, logvar = jnp.split(self.observation_net(h), 2)
        return mean, logvar

    def update(
        self, h: Float[Array, " H"], x: Float[Array, " D"], m: Float[Array, " D"]
    ) -> Float[Array, " H"]:
        r"""GRU-Bayes: $h^+ = \mathrm{GRU}([e_1, \dots, e_D], h)$ with
        $e_d = m_d\, a(U_d \phi_d + c_d)$, $\phi_d = [x_d, \mu_d, v_d, (x_d - \mu_d)
        e^{-v_d/2}]$ (``m`` zero on unobserved dimensions, whose ``x`` is ignored)."""
        m = m.astype(x.dtype)
        x = jnp.where(m > 0, x, 0.0)
        mean, logvar = self.observation_model(h)
        phi = jnp.stack([x, mean, logvar, (x - mean) * jnp.exp(-0.5 * logvar)], axis=-1)
        act = get_activation(self.activation)
        e = act(jnp.einsum("dk,dkp->dp", phi, self.prep_weight) + self.prep_bias)
        e = m[:, None] * e
        return self.cell(e.reshape(-1), h)

    def _step_update(self, h, x, m):
        mean, logvar = self.observation_model(h)
        post = self.update(h, x, m)
        post_mean, post_logvar = self.observation_model(post)
        nll = 0.5 * (logvar + (x - mean) ** 2 * jnp.exp(-logvar) + math.log(2 * math.pi))
        s = self.obs_noise_std
        kl = (
            math.log(s)
            - 0.5 * post_logvar
            + (jnp.exp(post_logvar) + (post_mean - x) ** 2) / (2 * s**2)
            - 0.5
        )
        return post, (mean, logvar, jnp.sum(m * nll), jnp.sum(m * kl))

    def trajectory(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T D"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        h0: Float[ArrayLike, " H"] | None = None,
    ) -> dict[str, Array]:
        r"""Everything one pass over a sequence gives, per observation step: ``pre`` and
        ``post`` (``[T, H]``, the states $h_i^-$ and $h_i^+$), ``mean`` and ``logvar``
        (``[T, D]``, the prediction made from $h_i^-$), ``nll`` and ``kl`` (``[T]``, the
        two loss terms summed over the observed dimensions), and ``mask`` (``[T, D]``, the
        0/1 mask as used). ``h0`` (default 0) sits at ``t0`` (default: the first observed
        time); fully masked steps repeat the last observed step's states and add 0."""
        owner = type(self).__name__
        ts, xs, mask, observed = _prepare(owner, ts, xs, mask, self.input_dim)
        t0 = _start(owner, t0, ts, observed, False)
        h0 = _check_h0(owner, h0, self.hidden_dim, xs.dtype)
        field = lambda t, h: self.vector_field(t, h)  # noqa: E731
        _, pre, post, (mean, logvar, nll, kl) = _scan(
            self.solve, field, self._step_update, h0, t0, ts, xs, mask, observed
        )
        return {
            "pre": pre,
            "post": post,
            "mean": mean,
            "logvar": logvar,
            "nll": nll,
            "kl": kl,
            "mask": mask,
        }

    def states(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T D"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        h0: Float[ArrayLike, " H"] | None = None,
    ) -> tuple[Float[Array, "T H"], Float[Array, "T H"]]:
        r"""``(pre, post)``: the states $h_i^-$ just before and $h_i^+$ just after each
        observation (see `trajectory`)."""
        out = self.trajectory(ts, xs, mask, t0=t0, h0=h0)
        return out["pre"], out["post"]

    def __call__(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T D"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        h0: Float[ArrayLike, " H"] | None = None,
    ) -> Float[Array, "T H"]:
        """The hidden states $h_i^+$ after each observation (``[T, H]``)."""
        return self.trajectory(ts, xs, mask, t0=t0, h0=h0)["post"]

    def predict(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T D"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        h0: Float[ArrayLike, " H"] | None = None,
    ) -> tuple[Float[Array, "T D"], Float[Array, "T D"]]:
        r"""The one-step-ahead predictions: mean and log-variance of each observation
        made from $h_i^-$, i.e. from the observations strictly before it."""
        out = self.trajectory(ts, xs, mask, t0=t0, h0=h0)
        return out["mean"], out["logvar"]

    def loss_terms(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T D"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        h0: Float[ArrayLike, " H"] | None = None,
    ) -> dict[str, Float[Array, ""]]:
        r"""The loss's parts (sums over the observed entries of one sequence): ``nll``
        (pre-update), ``kl`` (post-update), ``loss`` $=$ ``nll`` $+ \lambda$ ``kl``, and
        ``count``, the number of observed entries (divide by it for a per-entry loss)."""
        return self._terms(self.trajectory(ts, xs, mask, t0=t0, h0=h0))

    def _terms(self, out: dict[str, Array]) -> dict[str, Array]:
        terms = {
            "nll": jnp.sum(out["nll"]),
            "kl": jnp.sum(out["kl"]),
            "count": jnp.sum(out["mask"]),
        }
        terms["loss"] = terms["nll"] + self.mixing * terms["kl"]
        return terms

    def loss(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T D"],
        mask: Mask | None = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
        h0: Float[ArrayLike, " H"] | None = None,
    ) -> Float[Array, ""]:
        r"""$\mathcal L$ of one sequence (`loss_terms` ``["loss"]``)."""
        return self.loss_terms(ts, xs, mask, t0=t0, h0=h0)["loss"]


# ----------------------------------------------------------------------------------------
# The discrete baseline: a GRU fed the time deltas
# ----------------------------------------------------------------------------------------


class GRUDelta(AbstractModel):
    r"""A discrete GRU for irregular series that learns about time only through the input
    $\Delta t_i = t_i - t_{i-1}$ (the baseline the ODE-RNN is measured against): at every
    step it first predicts, then reads the context,

    $$
    \hat x_i = W\,\mathrm{GRU}\big([0, 0, \Delta t_i],\, h_{i-1}\big) + b, \qquad
    h_i = \mathrm{GRU}\big([c_i \odot x_i,\, c_i,\, \Delta t_i],\, h_{i-1}\big),
    $$

    with $h = 0$ at $t_0$ and the context mask $c_i$ fed beside the zero-filled values (a
    step outside the context is still a step: its $\Delta t$ enters).

    Args:
        input_dim: $D$, the dimension of one observation.
        hidden_dim: $H$.
        key: initialises the GRU cell and the readout.

    One sequence per call (``ts [T]``, ``xs [T, D]``, ``context [T, D]``); a padded batch
    with ``jax.vmap``.
    """

    cell: eqx.nn.GRUCell
    readout: eqx.nn.Linear
    input_dim: int = eqx.field(static=True)
    hidden_dim: int = eqx.field(static=True)

    def __init__(self, input_dim: int, hidden_dim: int, *, key: PRNGKeyArray):
        self.input_dim = check_int(input_dim, "input_dim")
        self.hidden_dim = check_int(hidden_dim, "hidden_dim")
        k_cell, k_out = jax.random.split(key)
        self.cell = eqx.nn.GRUCell(2 * self.input_dim + 1, self.hidden_dim, key=k_cell)
        self.readout = eqx.nn.Linear(self.hidden_dim, self.input_dim, key=k_out)

    def __call__(
        self,
        ts: Real[ArrayLike, " T"],
        xs: Float[ArrayLike, "T D"],
        context: Bool[ArrayLike, "T D"],
        *,
        t0: Real[ArrayLike, ""] = 0.0,
    ) -> Float[Array, "T D"]:
        r"""The prediction $\hat x_i$ of every step from the context before it (``[T, D]``;
        values outside ``context`` are never read, NaN included)."""
        ts, xs, context = jnp.asarray(ts), jnp.asarray(xs), jnp.asarray(context)
        if xs.ndim != 2 or xs.shape[1] != self.input_dim or ts.shape != xs.shape[:1]:
            raise ValueError(
                f"GRUDelta: arguments 'ts' [T] and 'xs' [T, {self.input_dim}] must agree; got "
                f"{ts.shape} and {xs.shape}"
            )
        if context.shape != xs.shape:
            raise ValueError(
                f"GRUDelta: argument 'context' must have the shape of 'xs' {xs.shape}; got "
                f"{context.shape}"
            )
        c = context.astype(xs.dtype)
        dts = jnp.diff(ts, prepend=jnp.asarray(t0, ts.dtype))[:, None]

        def step(h, inputs):
            dt, x, m = inputs
            query = self.cell(jnp.concatenate([jnp.zeros_like(x), jnp.zeros_like(m), dt]), h)
            seen = jnp.concatenate([jnp.where(m > 0, x, 0.0), m, dt])
            return self.cell(seen, h), self.readout(query)

        h0 = jnp.zeros(self.hidden_dim, xs.dtype)
        return jax.lax.scan(step, h0, (dts, xs, c))[1]
