r"""Method of lines: integrate a right-hand side ``F(t, X, args)`` on a grid with diffrax.

`PDESolver` turns a semi-discrete PDE $\dot X = F(t, X)$ (an
`AbstractPDE`, ``X`` of shape ``[C, H, W]``) into the map
``(X0, ts) -> X(ts)`` of shape ``[T, C, H, W]``. The boundary of the right-hand side's grid is
imposed on ``X0`` and the vector field is projected onto it,
$\dot X = B(X + F) - B(X)$ (see `diffdyn.pde`), so every saved state satisfies it.
Integration is `SolveConfig.solve` (diffrax), with solver, step, adaptivity,
tolerances and adjoint from the constructor.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
from jaxtyping import Array, ArrayLike, Float, PyTree

from diffdyn.common import AbstractModel, SolveConfig, model_from_spec, model_spec

from ._base import AbstractPDE, check_state

__all__ = ["PDESolver"]


class PDESolver(AbstractModel):
    """``X(ts)`` for ``dX/dt = F(t, X, args)``, ``X(ts[0]) = B(X0)``, by diffrax.

    Args:
        rhs: the right-hand side (an `AbstractPDE`), or its `model_spec`.
        solver: a name from `SOLVERS` (default ``"heun"``).
        dt: the (initial) step; ``None`` lets `solve` choose.
        adaptive: PID step-size control with ``rtol``/``atol`` (else a constant step ``dt``).
        adjoint: a name from `ADJOINTS`.
        max_steps: the most steps one call may take.
        key: builds ``rhs`` from a spec (e.g. when loading).

    Call ``solver(x0, ts, args=None)`` with ``x0`` of shape ``[C, H, W]`` and increasing
    ``ts`` ``[T]``; the result is ``[T, C, H, W]`` (``result[0]`` is ``B(x0)``). Batches:
    ``jax.vmap(solver, in_axes=(0, None))``.
    """

    rhs: AbstractPDE
    solver: str = eqx.field(static=True)
    dt: float | None = eqx.field(static=True)
    adaptive: bool = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    adjoint: str = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    config: SolveConfig = eqx.field(static=True)

    def __init__(
        self,
        rhs: AbstractPDE | dict[str, Any],
        solver: str = "heun",
        dt: float | None = 0.1,
        adaptive: bool = False,
        rtol: float = 1e-3,
        atol: float = 1e-3,
        adjoint: str = "recursive-checkpoint",
        max_steps: int = 16384,
        *,
        key: Any = None,
    ):
        if isinstance(rhs, dict):
            key = jax.random.key(0) if key is None else key
            rhs = model_from_spec(rhs, key=key, base=AbstractPDE, source="rhs")
        if not isinstance(rhs, AbstractPDE):
            raise TypeError(f"rhs must be an AbstractPDE; got {type(rhs).__name__}")
        self.config = SolveConfig(
            solver=solver,
            dt0=None if dt is None else float(dt),
            adaptive=adaptive,
            rtol=rtol,
            atol=atol,
            adjoint=adjoint,
            max_steps=max_steps,
        )
        self.rhs = rhs
        self.solver = self.config.solver
        self.dt = self.config.dt0
        self.adaptive = adaptive
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.adjoint = self.config.adjoint
        self.max_steps = int(max_steps)

    def hyperparameters(self) -> dict[str, Any]:
        """Constructor arguments; ``rhs`` as its `model_spec`."""
        return {
            "rhs": model_spec(self.rhs),
            "solver": self.solver,
            "dt": self.dt,
            "adaptive": self.adaptive,
            "rtol": self.rtol,
            "atol": self.atol,
            "adjoint": self.adjoint,
            "max_steps": self.max_steps,
        }

    def vector_field(self, t: Float[Array, ""], x: Float[Array, "C H W"], args: Any) -> Array:
        """The projected right-hand side ``B(X + F(t, X)) - B(X)``."""
        return self.rhs.grid.project(x, self.rhs(t, x, args))

    def __call__(
        self, x0: Float[ArrayLike, "C H W"], ts: Float[ArrayLike, " T"], args: Any = None
    ) -> Float[Array, "T C H W"]:
        """The states at ``ts``, shape ``[T, C, H, W]``, starting from ``x0`` at ``ts[0]``."""
        check_state(x0, self.rhs.channels, "x0")
        x0 = self.rhs.grid.impose(jax.numpy.asarray(x0))
        return self.config.solve(self.vector_field, x0, ts, args)

    def non_negative_spec(self) -> PyTree[bool]:
        """True on the right-hand side's non-negative parameters (see
        `non_negative`)."""
        spec = jax.tree_util.tree_map(lambda _: False, self)
        return eqx.tree_at(lambda s: s.rhs, spec, self.rhs.non_negative_spec())
