r"""Method of lines: integrate a right-hand side ``F(t, X, args)`` on a grid with diffrax.

`PDESolver` turns a semi-discrete PDE $\dot X = F(t, X)$ (an
`AbstractPDE`, ``X`` of shape ``[C, H, W]``) into the map
``(X0, ts) -> X(ts)`` of shape ``[T, C, H, W]``. The boundary of the right-hand side's grid is
imposed on ``X0`` and the vector field is projected onto it,
$\dot X = B(X + F) - B(X)$ (see `diffdyn.pde`), so every saved state satisfies it.
Integration is `SolveConfig.solve` (diffrax), with the solver, step, adaptivity, tolerances
and adjoint of the solver's one `SolveConfig`.
"""

from __future__ import annotations

from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree

from diffdyn.common import AbstractModel, SolveConfig, SplitGrid, model_from_spec

from ._base import AbstractPDE, check_state

__all__ = ["PDESolver", "PDE_SOLVE"]

PDE_SOLVE = SolveConfig(solver="heun", dt0=0.1, adaptive=False, rtol=1e-3, atol=1e-3)
"""The default solve of `PDESolver`: Heun's method with a fixed step 0.1, as many steps as
the time span needs (``max_steps`` None; see `SolveConfig` for times traced under ``jit``)."""


_SPLIT_FAILED = (
    "the split PDE solve stopped before the last time (max_steps reached, or the step size "
    "collapsed); raise SolveConfig.max_steps (--solve.max_steps on the command line) or "
    "lower dt0"
)


class PDESolver(AbstractModel):
    """``X(ts)`` for ``dX/dt = F(t, X, args)``, ``X(ts[0]) = B(X0)``, by diffrax.

    Args:
        rhs: the right-hand side (an `AbstractPDE`).
        solve: how to integrate (a `SolveConfig`: solver, step ``dt0``, adaptivity,
            tolerances, adjoint, ``max_steps``); default `PDE_SOLVE`.

    Call ``solver(x0, ts, args=None)`` with ``x0`` of shape ``[C, H, W]`` and increasing
    ``ts`` ``[T]``; the result is ``[T, C, H, W]`` (``result[0]`` is ``B(x0)``). Batches:
    ``jax.vmap(solver, in_axes=(0, None))``. Saved files hold the right-hand side and the
    `SolveConfig` as nested specs.
    """

    rhs: AbstractPDE
    solve: SolveConfig = eqx.field(static=True)

    def __init__(self, rhs: AbstractPDE, solve: SolveConfig = PDE_SOLVE):
        if not isinstance(rhs, AbstractPDE):
            raise TypeError(f"rhs must be an AbstractPDE; got {type(rhs).__name__}")
        if not isinstance(solve, SolveConfig):
            raise TypeError(
                "solve must be a SolveConfig (e.g. SolveConfig(solver='heun', dt0=1.0, "
                f"adaptive=False)); got {solve!r}"
            )
        self.rhs = rhs
        self.solve = solve

    @classmethod
    def upgrade_hyperparameters(cls, hyperparameters: dict[str, Any], *, version: str) -> dict:
        """Files of diffdyn 0.1.0 held the right-hand side as a plain spec dict and the solve
        settings as flat ``solver``, ``dt``, ``adaptive``, ``rtol``, ``atol``, ``adjoint`` and
        ``max_steps``; they are one `AbstractPDE` and one `SolveConfig` now."""
        h = dict(hyperparameters)
        rhs = h.pop("rhs")
        if isinstance(rhs, dict):  # the right-hand side's leaves are filled in by `load`
            rhs = model_from_spec(rhs, key=jax.random.key(0), base=AbstractPDE, source="rhs")
        if "solve" in h:
            return {"rhs": rhs, **h}
        old = {
            "solver": h.pop("solver", "heun"),
            "dt0": h.pop("dt", 0.1),
            "adaptive": h.pop("adaptive", False),
            "rtol": h.pop("rtol", 1e-3),
            "atol": h.pop("atol", 1e-3),
            "adjoint": h.pop("adjoint", "recursive-checkpoint"),
            "max_steps": h.pop("max_steps", 16384),
        }
        if h:
            raise ValueError(f"a PDESolver file of diffdyn {version} has unknown arguments {h}")
        old["dt0"] = None if old["dt0"] is None else float(old["dt0"])
        return {"rhs": rhs, "solve": SolveConfig(**old)}

    def vector_field(self, t: Float[Array, ""], x: Float[Array, "C H W"], args: Any) -> Array:
        """The projected right-hand side ``B(X + F(t, X)) - B(X)``."""
        return self.rhs.grid.project(x, self.rhs(t, x, args))

    def __call__(
        self,
        x0: Float[ArrayLike, "C H W"],
        ts: Float[ArrayLike, " T"],
        args: Any = None,
        *,
        split: SplitGrid | None = None,
    ) -> Float[Array, "T C H W"]:
        """The states at ``ts``, shape ``[T, C, H, W]``, starting from ``x0`` at ``ts[0]``.

        ``split``: hold the grid split across devices along its rows (`SplitGrid`; periodic
        grids only; ``halo`` at least the reach of the right-hand side's stencils, 1 for a
        5- or 9-point Laplacian). The right-hand side runs band by band with halo exchange;
        the result (split the same way) equals the unsplit solve, gradients included. A
        split solve that fails raises outside ``jit``, and is NaN inside (the trainer's NaN
        guard stops on it).
        """
        check_state(x0, self.rhs.channels, "x0")
        x0 = self.rhs.grid.impose(jax.numpy.asarray(x0))
        if split is None:
            return self.solve.solve(self.vector_field, x0, ts, args)
        if not isinstance(split, SplitGrid):
            raise TypeError(f"split must be a SplitGrid; got {type(split).__name__}")
        if self.rhs.grid.boundary != "periodic":
            raise ValueError(
                f"a split grid needs periodic rows; this PDE's boundary is "
                f"{self.rhs.grid.boundary!r}"
            )
        if not self.rhs.local:
            raise ValueError(
                f"a split grid needs a local right-hand side; {type(self.rhs).__name__} couples "
                "every cell (spectral), so it runs on one device only"
            )
        rhs = split.map(lambda x, rhs, t, args: rhs(t, x, args))

        def field(t: Array, x: Array, args: Any) -> Array:
            return self.rhs.grid.project(x, rhs(x, self.rhs, t, args))

        # diffrax's failure check is a host callback on one device, which would gather the
        # trajectory there (and stall the other devices when it raises): a failed split solve
        # is NaN instead, and raises here when called outside jit
        sol = self.solve.solve_full(field, split.place(x0), ts, args, throw=False)
        failed = sol.result != diffrax.RESULTS.successful
        if not isinstance(failed, jax.core.Tracer) and bool(failed):
            raise RuntimeError(_SPLIT_FAILED)
        return jnp.where(failed, jnp.nan, sol.ys)

    def non_negative_spec(self) -> PyTree[bool]:
        """True on the right-hand side's non-negative parameters (see
        `non_negative`)."""
        spec = jax.tree_util.tree_map(lambda _: False, self)
        return eqx.tree_at(lambda s: s.rhs, spec, self.rhs.non_negative_spec())
