r"""The continuous-time rate RNN and its exact one-step map.

$$
\dot h = -h + (C \circ W)\, \phi(h; g_{\tau(i)}, s_{\tau(i)}) + I,
$$

with a sign matrix $C \in \{-1, 0, 1\}^{N\times N}$ (zero diagonal: no self-connections),
non-negative magnitudes $W$, gains and shifts per cell type $\tau(i)$ (or per
neuron) and a constant input $I$; $J = C \circ W$ is indexed ``J[post, pre]``.
A random network has $J_{ij} \sim \mathcal N(0, g^2/N)$, $J_{ii} = 0$,
$C = \operatorname{sign} J$, $W = |J|$ (Sompolinsky, Crisanti & Sommers 1988).

Time is integrated by diffrax through `diffdyn.common`. The model holds its solve settings
once, as a fixed-step `SolveConfig` (default `STEP_SOLVE`: ``euler`` with ``dt0 = 0.1``,
the setting of FlyStability (Koehn; edouardkoehn/FlyStability)). `RateRNN.step` is one step
of that solver, for Euler
$h_{n+1} = (1-\Delta t) h_n + \Delta t (J \phi(h_n) + I)$: exactly the map
that `RateRNN.simulate` iterates, and the map whose Jacobian the Lyapunov code takes.
"""

from __future__ import annotations

import math
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray, Real

from diffdyn.common import AbstractModel, SolveConfig, fixed_field, get_solver

from ._activations import get_activation

__all__ = ["RateRNN", "STEP_SOLVERS", "STEP_SOLVE", "random_coupling"]

#: Explicit solvers whose single fixed step is a closed-form map (usable by ``step``).
STEP_SOLVERS: tuple[str, ...] = (
    "euler",
    "heun",
    "midpoint",
    "ralston",
    "bosh3",
    "rk4",
    "tsit5",
    "dopri5",
    "dopri8",
)
"""Fixed-step solvers a `RateRNN` can step with."""

STEP_SOLVE = SolveConfig(solver="euler", dt0=0.1, adaptive=False)
r"""The default solve of a `RateRNN`: Euler steps of $\Delta t = 0.1$ (FlyStability's setting)."""

_TOLERANCES = (SolveConfig().rtol, SolveConfig().atol)


def _check_solve(solve: Any) -> SolveConfig:
    """``solve`` if it describes a fixed-step map (see `RateRNN`), else a clear error."""
    if not isinstance(solve, SolveConfig):
        raise TypeError(f"argument 'solve' must be a SolveConfig; got {type(solve).__name__}")
    if solve.adaptive:
        raise ValueError(
            "argument 'solve' must have adaptive=False: a RateRNN steps with the fixed step "
            "dt0 (measure continuous-time exponents with lyapunov_spectrum(..., flow=...))"
        )
    if solve.solver not in STEP_SOLVERS:
        raise ValueError(
            f"argument 'solve': the step map needs an explicit solver, one of "
            f"{', '.join(STEP_SOLVERS)}; got solver {solve.solver!r}"
        )
    if solve.dt0 is None:
        raise ValueError("argument 'solve' must set dt0, the fixed step of the map; got None")
    if (solve.rtol, solve.atol) != _TOLERANCES:
        raise ValueError(
            "argument 'solve': the fixed step of an explicit solver has no tolerances; leave "
            f"rtol and atol at their defaults {_TOLERANCES}; got ({solve.rtol}, {solve.atol})"
        )
    return solve


def refuse_solve_settings(solve: SolveConfig, names: tuple[str, ...], reason: str) -> None:
    """A ``ValueError`` if any of the ``solve`` fields ``names`` differs from its default:
    a workflow that does not use a setting refuses it instead of ignoring it."""
    default = SolveConfig()
    given = [name for name in names if getattr(solve, name) != getattr(default, name)]
    if given:
        names_text = " and ".join(f"solve.{name}" for name in given)
        raise ValueError(f"{names_text} does not apply ({reason}); leave it at its default")


def random_coupling(n: int, g: float, key: PRNGKeyArray) -> Float[Array, "n n"]:
    r"""A Sompolinsky-Crisanti-Sommers matrix: $J_{ij} \sim \mathcal N(0, g^2/N)$,
    zero diagonal."""
    j = jax.random.normal(key, (n, n)) * (g / math.sqrt(n))
    return j * (1.0 - jnp.eye(n, dtype=j.dtype))


def _check_positive_int(value: Any, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"argument {name!r} must be an integer >= 1; got {value!r}")
    return int(value)


def _check_real(value: Any, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"argument {name!r} must be a real number; got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"argument {name!r} must be finite and {bound}; got {value!r}")
    return value


class RateRNN(AbstractModel):
    r"""Rate network $\dot h = -h + (C\circ W)\phi(h) + I$ (see the module docstring).

    Args:
        n: number of neurons $N$.
        g: coupling strength of the random initialisation, $J_{ij}\sim\mathcal N(0,g^2/N)$.
        activation: a name from `ACTIVATIONS`.
        n_types: number of cell types sharing a gain and a shift; ``None``: one per neuron.
            Neuron ``i`` has type ``i % n_types`` until `from_coupling` sets real types.
        solve: how the network is stepped: a fixed-step `SolveConfig` (``adaptive=False``)
            with an explicit solver from `STEP_SOLVERS` and the step ``dt0``, used by `step`
            and by `simulate`. Its ``rtol`` and ``atol`` do not apply and must stay at their
            defaults; ``adjoint`` and ``max_steps`` apply to `simulate`.
        key: PRNG key of the random coupling.

    Trainable leaves: ``weight`` ($W$), ``gain``, ``shift``. Fixed: ``sign``
    ($C$) and ``bias`` ($I$), read through ``jax.lax.stop_gradient`` so that no training
    loop changes them; ``cell_type`` is an integer array.

    Why a fixed-step `SolveConfig`: the step map $F$ is part of the model's definition (the
    Lyapunov exponents measured by `lyapunov_spectrum` are those of $F$), so the solver and
    the step are stored with the model and saved with it.
    """

    n: int = eqx.field(static=True)
    g: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    n_types: int | None = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)

    weight: Float[Array, "n n"]
    sign: Float[Array, "n n"] = fixed_field()
    bias: Float[Array, " n"] = fixed_field()
    gain: Float[Array, " k"]
    shift: Float[Array, " k"]
    cell_type: Int[Array, " n"]

    def __init__(
        self,
        n: int,
        *,
        g: float = 1.0,
        activation: str = "tanh",
        n_types: int | None = None,
        solve: SolveConfig = STEP_SOLVE,
        key: PRNGKeyArray,
    ):
        n = _check_positive_int(n, "n")
        g = _check_real(g, "g")
        get_activation(activation)
        if n_types is not None:
            n_types = _check_positive_int(n_types, "n_types")
            if n_types > n:
                raise ValueError(f"argument 'n_types' must be <= n = {n}; got {n_types}")
        self.n, self.g, self.activation = n, g, activation
        self.n_types, self.solve = n_types, _check_solve(solve)
        j = random_coupling(n, g, key)
        self.sign = jnp.sign(j)
        self.weight = jnp.abs(j)
        self.bias = jnp.zeros(n, j.dtype)
        k = n if n_types is None else n_types
        self.gain = jnp.ones(k, j.dtype)
        self.shift = jnp.zeros(k, j.dtype)
        self.cell_type = jnp.arange(n, dtype=jnp.int32) % k

    @classmethod
    def upgrade_hyperparameters(cls, hyperparameters: dict[str, Any], *, version: str) -> dict:
        """Files of diffdyn 0.1.0 stored the step as flat ``dt`` and ``solver`` arguments;
        they become ``solve = SolveConfig(solver, dt0=dt, adaptive=False)``."""
        hyperparameters = dict(hyperparameters)
        if "solve" not in hyperparameters and {"dt", "solver"} & set(hyperparameters):
            dt = hyperparameters.pop("dt", STEP_SOLVE.dt0)
            solver = hyperparameters.pop("solver", STEP_SOLVE.solver)
            hyperparameters["solve"] = SolveConfig(solver=solver, dt0=dt, adaptive=False)
        return hyperparameters

    @property
    def dt(self) -> float:
        r"""The fixed step $\Delta t$ of `step` (``solve.dt0``)."""
        return float(self.solve.dt0)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_coupling(
        cls,
        coupling: Real[ArrayLike, "n n"] | None = None,
        *,
        sign: Real[ArrayLike, "n n"] | None = None,
        weight: Real[ArrayLike, "n n"] | None = None,
        cell_type: Int[ArrayLike, " n"] | None = None,
        gain: Real[ArrayLike, " k"] | None = None,
        shift: Real[ArrayLike, " k"] | None = None,
        bias: Real[ArrayLike, " n"] | None = None,
        activation: str = "tanh",
        solve: SolveConfig = STEP_SOLVE,
    ) -> RateRNN:
        r"""A network with a given $J = C\circ W$ (``coupling``, split into
        $C=\operatorname{sign}J$, $W=|J|$) or given ``sign`` and ``weight``;
        ``cell_type`` holds type indices ``0..K-1`` (default: one type per neuron). The
        diagonal is removed (no self-connections); ``solve`` is as in `RateRNN`."""
        if coupling is not None:
            if sign is not None or weight is not None:
                raise ValueError("give either 'coupling' or 'sign' and 'weight', not both")
            j = np.asarray(coupling, dtype=float)
            sign, weight = np.sign(j), np.abs(j)
        elif sign is None or weight is None:
            raise ValueError("give 'coupling', or both 'sign' and 'weight'")
        sign, weight = np.asarray(sign, dtype=float), np.asarray(weight, dtype=float)
        if sign.ndim != 2 or sign.shape[0] != sign.shape[1] or weight.shape != sign.shape:
            raise ValueError(
                f"arguments 'sign' and 'weight' must be square [N, N] of one shape; got "
                f"{sign.shape} and {weight.shape}"
            )
        if not np.all(np.isin(sign, (-1.0, 0.0, 1.0))):
            raise ValueError("argument 'sign' must hold only -1, 0 and +1")
        if np.any(weight < 0) or not np.all(np.isfinite(weight)):
            raise ValueError("argument 'weight' must be finite and non-negative")
        n = sign.shape[0]
        off = 1.0 - np.eye(n)
        sign, weight = sign * off, weight * off * (sign != 0)
        if cell_type is None:
            types = np.arange(n)
            n_types = None
        else:
            types = np.asarray(cell_type)
            if types.shape != (n,) or not np.issubdtype(types.dtype, np.integer):
                raise ValueError(
                    f"argument 'cell_type' must be an integer array of shape ({n},); got "
                    f"{types.dtype} {types.shape}"
                )
            if types.min() < 0:
                raise ValueError("argument 'cell_type' must hold indices >= 0")
            n_types = int(types.max()) + 1
        k = n if n_types is None else n_types
        model = cls(n, activation=activation, n_types=n_types, solve=solve, key=jax.random.key(0))
        dtype = model.weight.dtype

        def vec(x: Any, size: int, default: float, name: str) -> Array:
            if x is None:
                return jnp.full(size, default, dtype)
            x = np.asarray(x, dtype=float)
            if x.shape != (size,):
                raise ValueError(f"argument {name!r} must have shape ({size},); got {x.shape}")
            return jnp.asarray(x, dtype)

        return eqx.tree_at(
            lambda m: (m.sign, m.weight, m.cell_type, m.gain, m.shift, m.bias),
            model,
            (
                jnp.asarray(sign, dtype),
                jnp.asarray(weight, dtype),
                jnp.asarray(types, jnp.int32),
                vec(gain, k, 1.0, "gain"),
                vec(shift, k, 0.0, "shift"),
                vec(bias, n, 0.0, "bias"),
            ),
        )

    # ------------------------------------------------------------------ dynamics
    @property
    def coupling(self) -> Float[Array, "n n"]:
        r"""$J = C \circ W$, indexed ``[post, pre]`` (no gradient flows into $C$)."""
        return jax.lax.stop_gradient(self.sign) * self.weight

    def rate(self, h: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$\phi_i(h_i)$ with the gain and shift of neuron ``i``'s type."""
        phi = get_activation(self.activation)
        return phi(h, self.gain[self.cell_type], self.shift[self.cell_type])

    def __call__(self, t: Any, h: Float[Array, " n"], args: Any = None) -> Float[Array, " n"]:
        r"""The vector field $f(h) = -h + J\phi(h) + I$ (diffrax signature)."""
        return -h + self.coupling @ self.rate(h) + jax.lax.stop_gradient(self.bias)

    def step(self, h: Float[Array, " n"], t: Real[ArrayLike, ""] = 0.0) -> Float[Array, " n"]:
        """One ``dt`` step of the model's diffrax solver: the exact map iterated by
        `simulate` with a fixed step (the system is autonomous, so ``t`` is a label)."""
        solver = get_solver(self.solve.solver)
        term = diffrax.ODETerm(self)
        t0 = jnp.asarray(t, h.dtype)
        t1 = t0 + self.dt
        state = solver.init(term, t0, t1, h, None)
        h1, _, _, _, _ = solver.step(term, t0, t1, h, None, state, False)
        return h1

    def variational_field(
        self, t: Any, y: tuple[Float[Array, " n"], Float[Array, "n k"]], args: Any = None
    ) -> tuple[Float[Array, " n"], Float[Array, "n k"]]:
        r"""The vector field and its linearisation on ``k`` tangent columns together,
        $(h, Q) \mapsto (f(h),\ Df(h)\,Q)$ with
        $Df(h)\,Q = -Q + J\,D\phi(h)\,Q$: both coupling products are one
        $J\,[\phi(h),\ D\phi(h)\,Q]$, so $J$ is read once. $D\phi$ comes
        from ``jax.linearize`` of `rate` (nothing hand-differentiated)."""
        h, q = y
        r, rate_tangent = jax.linearize(self.rate, h)
        rq = jax.vmap(rate_tangent, in_axes=1, out_axes=1)(q)
        x = self.coupling @ jnp.concatenate([r[:, None], rq], axis=1)
        return -h + x[:, 0] + jax.lax.stop_gradient(self.bias), -q + x[:, 1:]

    def variational_step(
        self, h: Float[Array, " n"], q: Float[Array, "n k"], t: Real[ArrayLike, ""] = 0.0
    ) -> tuple[Float[Array, " n"], Float[Array, "n k"]]:
        r"""`step` and its tangent map on the columns of ``q`` together:
        ``(step(h), D step(h) @ q)``, as one step of the same solver on the variational system
        (`variational_field`). For the explicit Runge-Kutta solvers of `step` that
        is exactly the derivative of the step (an explicit RK step of the system extended by
        its variational equation is the RK step together with its derivative), up to
        rounding; `lyapunov_spectrum` uses it instead of
        ``jax.linearize(step)``."""
        solver = get_solver(self.solve.solver)
        term = diffrax.ODETerm(self.variational_field)
        t0 = jnp.asarray(t, h.dtype)
        t1 = t0 + self.dt
        y = (h, q)
        state = solver.init(term, t0, t1, y, None)
        y1, _, _, _, _ = solver.step(term, t0, t1, y, None, state, False)
        return y1

    def simulate(
        self,
        h0: Float[ArrayLike, " n"],
        ts: Real[ArrayLike, " T"],
        solve: SolveConfig | None = None,
    ) -> Float[Array, "T n"]:
        """Integrate from ``h(ts[0]) = h0`` and return ``h`` at ``ts`` (``[T, N]``).

        ``solve`` defaults to the model's own fixed-step solve (its ``max_steps`` bounds the
        number of steps); pass e.g. ``SolveConfig(solver="tsit5")`` for an adaptive solve."""
        h0 = self.check_state(h0, "h0")
        if solve is None:
            solve = self.solve
        elif not isinstance(solve, SolveConfig):
            raise TypeError(f"argument 'solve' must be a SolveConfig; got {type(solve).__name__}")
        return solve.solve(self, h0, jnp.asarray(ts, h0.dtype))

    def check_state(self, h: Any, name: str = "h") -> Float[Array, " n"]:
        """``h`` as an array of the model's dtype, after checking its shape ``[N]``."""
        shape = np.shape(h)
        if shape != (self.n,):
            raise ValueError(f"argument {name!r} must have shape ({self.n},); got {shape}")
        return jnp.asarray(h, self.weight.dtype)
