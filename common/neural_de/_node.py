r"""Neural ordinary differential equations: a vector field plus how to solve it.

A `NeuralODE` holds a vector field $f_\theta(t, y, \mathrm{args})$ and a
`SolveConfig` (solver, tolerances, adjoint), and maps an initial state to

$$
y(t_k) = y_0 + \int_{t_0}^{t_k} f_\theta(s, y(s), \mathrm{args})\,ds.
$$

It is a thin layer over `SolveConfig.solve` (which calls
``diffrax.diffeqsolve``): a single sample is solved by ``__call__``; a batch by
`NeuralODE.batch`, a ``vmap`` in which every sample may have its own time span and its
own ``args`` (inputs or controls). Adjoints by name: ``recursive-checkpoint`` (exact gradient
of the discrete solve), ``backsolve`` (continuous adjoint, step size controlled by the seminorm
over $(y, a)$), ``direct``.

`MLPField` is the usual autonomous field $f(t, y, u) = \mathrm{MLP}([y, u])$,
where the optional ``u = args`` is a fixed input (torchdyn's "data control" passes
$u = x_0$).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree, Real

from .._helpers import check_int
from .._model import AbstractModel
from .._solve import SolveConfig

__all__ = [
    "NeuralODE",
    "MLPField",
    "LinearField",
    "ACTIVATIONS",
    "get_activation",
]

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
    "silu": jax.nn.silu,
    "identity": lambda x: x,
}
"""Activations by name, for JSON-able model hyperparameters."""


def get_activation(name: str) -> Callable[[Array], Array]:
    """The activation called ``name`` (one of `ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; known activations: {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]


class MLPField(AbstractModel):
    r"""$f(t, y, u) = \mathrm{MLP}([y, u])$: an autonomous field on $y \in
    \mathbb{R}^D$ (``depth`` hidden layers of ``width`` units, linear output), optionally
    controlled by a fixed input $u = \mathrm{args} \in \mathbb{R}^{U}$
    (``control_dim = U``). The black-box model of dynamics discovery and the field of a
    plain neural ODE; saveable."""

    mlp: eqx.nn.MLP
    dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    control_dim: int = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int = 32,
        depth: int = 2,
        *,
        activation: str = "tanh",
        control_dim: int = 0,
        key: PRNGKeyArray,
    ):
        self.dim = check_int(dim, "dim")
        self.width = check_int(width, "width")
        self.depth = check_int(depth, "depth", 0)
        self.activation = activation
        self.control_dim = check_int(control_dim, "control_dim", 0)
        self.mlp = eqx.nn.MLP(
            self.dim + self.control_dim,
            self.dim,
            self.width,
            self.depth,
            activation=get_activation(activation),
            key=key,
        )

    def __call__(self, t: Real[ArrayLike, ""], y: Float[Array, " d"], args: Any = None):
        if self.control_dim:
            y = jnp.concatenate([y, jnp.broadcast_to(args, (self.control_dim,))])
        return self.mlp(y)


def _check_solve(solve: Any, name: str = "solve") -> SolveConfig:
    """``solve`` if it is a `SolveConfig`, else a ``TypeError`` naming the argument."""
    if not isinstance(solve, SolveConfig):
        raise TypeError(
            f"argument {name!r} must be a SolveConfig (solver, tolerances, adjoint, ...); got "
            f"{type(solve).__name__}: {solve!r}"
        )
    return solve


def _leading(tree: Any) -> set[int]:
    return {jnp.shape(leaf)[0] if jnp.ndim(leaf) else -1 for leaf in jtu.tree_leaves(tree)}


class LinearField(AbstractModel):
    r"""The linear vector field $f(t, y) = A y$ with a trainable matrix $A$ (small random start).

    Its flow is $y(t) = e^{tA} y(0)$, so fitting it to trajectories recovers $A$: the
    smallest system identification problem, and the one ``diffdyn quickstart`` starts with.
    """

    dim: int = eqx.field(static=True)
    matrix: Float[Array, "d d"]

    def __init__(self, dim: int, *, key: PRNGKeyArray):
        self.dim = check_int(dim, "dim")
        self.matrix = 0.1 * jax.random.normal(key, (dim, dim))

    def __call__(self, t: Any, y: Float[Array, " d"], args: Any = None) -> Float[Array, " d"]:
        return self.matrix @ y


class NeuralODE(AbstractModel):
    r"""A vector field ``f(t, y, args)`` and the settings to solve
    $\dot y = f(t, y, \mathrm{args})$.

    Args:
        vector_field: any callable ``f(t, y, args) -> dy/dt`` (usually an ``eqx.Module``,
            whose array leaves are the trained parameters). ``y`` may be a pytree.
        solve: the solver, step-size control, tolerances, adjoint and step bound, as one
            `SolveConfig` (default ``SolveConfig()``, the defaults of `solve`). Adjoints:
            ``recursive-checkpoint``, ``backsolve`` (with the adjoint seminorm), ``direct``,
            or a diffrax adjoint instance.

    ``node(y0, ts)`` returns the trajectory ``[T, ...]`` at the increasing times ``ts``;
    ``node.final(y0, t0, t1)`` the end state; ``node.batch(y0, ts)`` a batch ``[B, T, ...]``.
    It saves and loads like every model (`AbstractModel.save`) when its vector field is an
    `AbstractModel` and its solve names its solver and adjoint.
    """

    vector_field: Callable[..., PyTree[Array]]
    solve: SolveConfig = eqx.field(static=True)

    def __init__(
        self,
        vector_field: Callable[..., PyTree[Array]],
        *,
        solve: SolveConfig = SolveConfig(),  # noqa: B008 (frozen, hashable)
    ):
        if not callable(vector_field):
            raise TypeError(
                f"argument 'vector_field' must be callable as f(t, y, args); got "
                f"{type(vector_field).__name__}"
            )
        self.vector_field = vector_field
        self.solve = _check_solve(solve)

    def __call__(
        self,
        y0: PyTree[Float[Array, "..."]],
        ts: Real[ArrayLike, " T"],
        args: Any = None,
        *,
        t0: Real[ArrayLike, ""] | None = None,
    ) -> PyTree[Float[Array, "T ..."]]:
        """The state at the increasing times ``ts`` (one sample), from ``y(t0) = y0`` with
        ``t0`` defaulting to ``ts[0]``; every leaf gains a leading ``[T]`` axis."""
        return self.solve.solve(self.vector_field, y0, ts, args, t0=t0)

    def solution(
        self, y0: PyTree[Array], ts: Real[ArrayLike, " T"], args: Any = None, *, t0: Any = None
    ) -> diffrax.Solution:
        """The whole ``diffrax.Solution`` (``.ys``, and ``.stats`` with ``num_steps``,
        ``num_accepted_steps``, ``num_rejected_steps``: the number of function evaluations is
        ``num_steps`` times the solver's stages)."""
        return self.solve.solve_full(self.vector_field, y0, ts, args, t0=t0)

    def final(
        self,
        y0: PyTree[Float[Array, "..."]],
        t0: Real[ArrayLike, ""] = 0.0,
        t1: Real[ArrayLike, ""] = 1.0,
        args: Any = None,
    ) -> PyTree[Float[Array, "..."]]:
        """The state at ``t1`` from ``y(t0) = y0`` (one sample)."""
        with jax.numpy_dtype_promotion("standard"):
            ts = jnp.reshape(jnp.asarray(t1, dtype=jnp.result_type(float)), (1,))
        out = self.solve.solve(self.vector_field, y0, ts, args, t0=t0)
        return jtu.tree_map(lambda a: a[0], out)

    def batch(
        self,
        y0: PyTree[Float[Array, "B ..."]],
        ts: Real[ArrayLike, " T"] | Real[ArrayLike, "B T"],
        args: Any = None,
        *,
        t0: Real[ArrayLike, ""] | Real[ArrayLike, " B"] | None = None,
        batched_args: bool = False,
    ) -> PyTree[Float[Array, "B T ..."]]:
        """Solve a batch: ``y0`` leaves ``[B, ...]``; ``ts`` shared ``[T]`` or per sample
        ``[B, T]`` (each row increasing); ``t0`` ``None``, a scalar or ``[B]``; ``args`` shared
        or, with ``batched_args``, with a leading ``[B]`` axis on every leaf. Returns
        ``[B, T, ...]``. Each sample gets its own adaptive step sizes."""
        sizes = _leading(y0)
        if len(sizes) != 1 or -1 in sizes:
            raise ValueError(
                f"argument 'y0' must have leaves sharing a leading batch axis B; got leading "
                f"sizes {sorted(sizes)}"
            )
        (b,) = sizes
        ts = jnp.asarray(ts)
        if ts.ndim not in (1, 2) or (ts.ndim == 2 and ts.shape[0] != b):
            raise ValueError(f"argument 'ts' must have shape [T] or [B={b}, T]; got {ts.shape}")
        if ts.ndim == 2 and not isinstance(ts, jax.core.Tracer):
            values = np.asarray(ts)
            if ts.shape[1] > 1 and not np.all(np.diff(values, axis=1) > 0):
                raise ValueError("argument 'ts' must be strictly increasing along each row")
        if t0 is not None and jnp.ndim(t0) not in (0, 1):
            raise ValueError(f"argument 't0' must be a scalar or [B]; got {jnp.shape(t0)}")
        if t0 is not None and jnp.ndim(t0) == 1 and jnp.shape(t0)[0] != b:
            raise ValueError(f"argument 't0' must have shape [B={b}]; got {jnp.shape(t0)}")
        if batched_args and _leading(args) != {b}:
            raise ValueError(
                f"argument 'args' must have a leading axis B={b} on every leaf when "
                f"batched_args=True; got leading sizes {sorted(_leading(args))}"
            )
        in_axes = (
            0,
            0 if ts.ndim == 2 else None,
            0 if batched_args else None,
            0 if t0 is not None and jnp.ndim(t0) == 1 else None,
        )

        def one(y, t, a, s):
            return self.solve.solve(self.vector_field, y, t, a, t0=s)

        return jax.vmap(one, in_axes=in_axes)(y0, ts, args, t0)
