r"""Neural stochastic differential equations over diffrax Brownian trees.

$$
dy = \mu_\theta(t, y)\,dt + \sigma_\theta(t, y)\,\circ_{?}\, dW_t,
$$

in the Itô (``sde_type="ito"``) or Stratonovich (``"stratonovich"``) sense. With
``noise="diagonal"`` the diffusion returns $\sigma \in \mathbb{R}^D$ and acts
elementwise on $W \in \mathbb{R}^D$; with ``noise="general"`` it returns a matrix
$\sigma \in \mathbb{R}^{D\times M}$ and $W \in \mathbb{R}^M$.

The Brownian motion is a ``diffrax.VirtualBrownianTree`` over $[t_0, t_1]$ built from a
key, so the same key gives the same path at any step size and the reverse pass of an adjoint
re-reads it instead of storing it. The solve is ``diffrax.diffeqsolve`` on
``MultiTerm(ODETerm(drift), ControlTerm(diffusion, brownian))`` with a fixed step ``dt0``.

The solve settings (solver, fixed step, adjoint, step bound, Brownian resolution) are held once,
as an `SDESolveConfig`: the SDE counterpart of `SolveConfig`, with the same field names, since
SDE solvers are not ODE solvers and take no tolerances.

Solvers (`SDE_SOLVERS`) and the calculus they converge to:
Itô: ``euler`` (Euler--Maruyama, strong order 1/2), ``ito-milstein`` (strong order 1 for
diagonal/commutative noise). Stratonovich: ``heun``, ``midpoint``, ``euler-heun``,
``reversible-heun`` (algebraically reversible: exact gradients with ``backsolve``),
``stratonovich-milstein``. ``euler``, ``heun`` and ``midpoint`` are taken from
`get_solver`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from .._helpers import check_int
from .._solve import AdjointName, get_adjoint, get_solver

__all__ = ["NeuralSDE", "SDESolveConfig", "SDE_SOLVERS", "get_sde_solver"]

SDE_SOLVERS: dict[str, str] = {
    "euler": "ito",
    "ito-milstein": "ito",
    "heun": "stratonovich",
    "midpoint": "stratonovich",
    "euler-heun": "stratonovich",
    "reversible-heun": "stratonovich",
    "stratonovich-milstein": "stratonovich",
}
"""SDE solver names and the calculus each converges to."""

_SDE_ONLY = {
    "ito-milstein": diffrax.ItoMilstein,
    "euler-heun": diffrax.EulerHeun,
    "reversible-heun": diffrax.ReversibleHeun,
    "stratonovich-milstein": diffrax.StratonovichMilstein,
}
_DEFAULT = {"ito": "euler", "stratonovich": "heun"}
SDESolverName = Literal[
    "euler",
    "ito-milstein",
    "heun",
    "midpoint",
    "euler-heun",
    "reversible-heun",
    "stratonovich-milstein",
]


def get_sde_solver(name: str, sde_type: str) -> diffrax.AbstractSolver:
    """The diffrax solver ``name`` (one of `SDE_SOLVERS`), checked against ``sde_type``."""
    if sde_type not in _DEFAULT:
        raise ValueError(f"argument 'sde_type' must be 'ito' or 'stratonovich'; got {sde_type!r}")
    if name not in SDE_SOLVERS:
        raise ValueError(
            f"unknown SDE solver {name!r}; known SDE solvers: {', '.join(SDE_SOLVERS)}"
        )
    if SDE_SOLVERS[name] != sde_type:
        valid = [k for k, v in SDE_SOLVERS.items() if v == sde_type]
        raise ValueError(
            f"solver {name!r} converges to the {SDE_SOLVERS[name]} solution, not {sde_type}; "
            f"use one of: {', '.join(valid)}"
        )
    return _SDE_ONLY[name]() if name in _SDE_ONLY else get_solver(name)


@dataclasses.dataclass(frozen=True)
class SDESolveConfig:
    """How to solve an SDE: a fixed step over a virtual Brownian tree (a frozen, hashable config,
    a valid static field of an ``eqx.Module``).

    Every field is checked on construction and raises ``ValueError``/``TypeError`` naming it.

    Attributes:
        solver: the SDE solver (`SDE_SOLVERS`); it must converge to the calculus of the SDE it
            solves. None: ``euler`` for an Itô SDE, ``heun`` for a Stratonovich one.
        dt0: the fixed step.
        adjoint: how gradients are computed: recursive-checkpoint, backsolve (exact gradients
            with the algebraically reversible ``reversible-heun``) or direct.
        max_steps: the most steps one solve may take.
        brownian_tol: the resolution of the virtual Brownian tree (None: ``dt0 / 4``).
    """

    solver: SDESolverName | None = None
    dt0: float = 1e-2
    adjoint: AdjointName = "recursive-checkpoint"
    max_steps: int = 16384
    brownian_tol: float | None = None

    def __post_init__(self) -> None:
        if self.solver is not None and self.solver not in SDE_SOLVERS:
            raise ValueError(
                f"unknown SDE solver {self.solver!r}; known SDE solvers: {', '.join(SDE_SOLVERS)}"
            )
        get_adjoint(self.adjoint)  # validates the name
        for name in ("dt0", "brownian_tol"):
            value = getattr(self, name)
            if value is None and name == "brownian_tol":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"SDESolveConfig.{name} must be a number > 0; got {value!r}")
        check_int(self.max_steps, "max_steps")

    @property
    def tolerance(self) -> float:
        """The Brownian tree's resolution: ``brownian_tol``, or ``dt0 / 4``."""
        return float(self.dt0) / 4 if self.brownian_tol is None else float(self.brownian_tol)


class _Diffusion(eqx.Module):
    sigma: Callable[..., Array]
    diagonal: bool = eqx.field(static=True)

    def __call__(self, t, y, args):
        s = self.sigma(t, y, args)
        return lx.DiagonalLinearOperator(s) if self.diagonal else s


class NeuralSDE(eqx.Module):
    r"""$dy = \mu(t, y, a)\,dt + \sigma(t, y, a)\,dW$ with ``drift = μ`` and
    ``diffusion = σ`` (callables ``(t, y, args)``), solved with a fixed step.

    Args:
        drift: $\mu(t, y, \mathrm{args}) \in \mathbb{R}^D$.
        diffusion: $\sigma(t, y, \mathrm{args})$: ``[D]`` for diagonal noise, ``[D, M]`` for
            general noise.
        dim: $D$.
        noise: ``diagonal`` or ``general``.
        noise_dim: $M$ (general noise only; diagonal noise has $M = D$).
        sde_type: ``ito`` or ``stratonovich``: the calculus, i.e. which SDE this is.
        solve: the solver, step, adjoint and Brownian resolution (`SDESolveConfig`); its
            solver must converge to ``sde_type`` (the default solver of the calculus when
            ``solve.solver`` is None, recorded on the model).

    ``sde(y0, ts, key)`` returns one sample path at the increasing times ``ts`` (``[T, D]``);
    ``vmap`` over keys for an ensemble.
    """

    drift: Callable[..., Array]
    diffusion: Callable[..., Array]
    dim: int = eqx.field(static=True)
    noise_dim: int = eqx.field(static=True)
    noise: str = eqx.field(static=True)
    sde_type: str = eqx.field(static=True)
    solve: SDESolveConfig = eqx.field(static=True)

    def __init__(
        self,
        drift: Callable[..., Array],
        diffusion: Callable[..., Array],
        dim: int,
        *,
        noise: str = "diagonal",
        noise_dim: int | None = None,
        sde_type: str = "ito",
        solve: SDESolveConfig = SDESolveConfig(),
    ):
        for name, fn in (("drift", drift), ("diffusion", diffusion)):
            if not callable(fn):
                raise TypeError(f"argument {name!r} must be callable f(t, y, args); got {fn!r}")
        if noise not in ("diagonal", "general"):
            raise ValueError(f"argument 'noise' must be 'diagonal' or 'general'; got {noise!r}")
        if not isinstance(solve, SDESolveConfig):
            raise TypeError(f"argument 'solve' must be an SDESolveConfig; got {solve!r}")
        self.dim = check_int(dim, "dim")
        if noise == "diagonal":
            if noise_dim not in (None, self.dim):
                raise ValueError(
                    f"argument 'noise_dim' must equal dim = {self.dim} for diagonal noise; got "
                    f"{noise_dim!r}"
                )
            self.noise_dim = self.dim
        else:
            self.noise_dim = check_int(noise_dim, "noise_dim")
        if solve.solver is None:
            solve = dataclasses.replace(solve, solver=_DEFAULT.get(sde_type, "euler"))
        get_sde_solver(solve.solver, sde_type)  # validates the calculus and the pair
        self.drift = drift
        self.diffusion = diffusion
        self.noise = noise
        self.sde_type = sde_type
        self.solve = solve

    def brownian(
        self, t0: Real[ArrayLike, ""], t1: Real[ArrayLike, ""], key: PRNGKeyArray
    ) -> diffrax.VirtualBrownianTree:
        """The Brownian path $W$ on $[t_0, t_1]$ drawn from ``key``."""
        return diffrax.VirtualBrownianTree(
            t0, t1, tol=self.solve.tolerance, shape=(self.noise_dim,), key=key
        )

    def __call__(
        self,
        y0: Float[Array, " d"],
        ts: Real[ArrayLike, " T"],
        key: PRNGKeyArray,
        args: Any = None,
    ) -> Float[Array, "T d"]:
        y0 = jnp.asarray(y0)
        if y0.shape != (self.dim,):
            raise ValueError(
                f"NeuralSDE: argument 'y0' must have shape [{self.dim}]; got {y0.shape}"
            )
        ts = jnp.asarray(ts, dtype=y0.dtype)
        if ts.ndim != 1 or ts.shape[0] < 2:
            raise ValueError(f"NeuralSDE: argument 'ts' must be [T] with T >= 2; got {ts.shape}")
        t0, t1 = ts[0], ts[-1]
        terms = diffrax.MultiTerm(
            diffrax.ODETerm(self.drift),
            diffrax.ControlTerm(
                _Diffusion(self.diffusion, self.noise == "diagonal"), self.brownian(t0, t1, key)
            ),
        )
        sol = diffrax.diffeqsolve(
            terms,
            get_sde_solver(self.solve.solver, self.sde_type),
            t0=t0,
            t1=t1,
            dt0=self.solve.dt0,
            y0=y0,
            args=args,
            saveat=diffrax.SaveAt(ts=ts),
            adjoint=get_adjoint(self.solve.adjoint),
            max_steps=self.solve.max_steps,
        )
        return sol.ys

    def sample(
        self, y0: Float[Array, " d"], ts: Real[ArrayLike, " T"], key: PRNGKeyArray, n: int
    ) -> Float[Array, "n T d"]:
        """``n`` independent paths from the same ``y0`` (a ``vmap`` over split keys)."""
        keys = jax.random.split(key, check_int(n, "n"))
        return jax.vmap(lambda k: self(y0, ts, k))(keys)
