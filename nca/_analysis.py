r"""Analysing a trained NCA or PDE: perception sensitivities, fixed points and their stability.

- `perception_sensitivity`: how strongly the update $dx = f(P(x))$ of an NCA responds to each
  perception feature (filter $k$ of channel $c$), from vector-Jacobian products;
- `fixed_point`: a state $x^*$ with $dx(x^*) = 0$ (NCA, deterministic map) or
  $F(x^*) = 0$ (PDE right-hand side), by Newton's method (optimistix) with a dense or a
  matrix-free (GMRES) linear solve, never reporting a failed solve as a fixed point;
- `stability`: the leading eigenvalues of the Jacobian there and the verdict (a flow is
  stable when every $\operatorname{Re}\lambda < 0$, a map when every $|\lambda| < 1$);
- `analyse_nca`: all three for a trained NCA of a ``diffdyn nca train`` folder (the workflow
  of ``diffdyn nca analyse``, configured by `NCAAnalyseConfig`).

**What the functions call a "map" and a "flow".** An NCA is a map: its deterministic update
(fire rate taken as 1) is

$$ T(x) = M\Big(B\big(m \odot (x + dx(x))\big)\Big), $$

$B$ its boundary, $M$ the cells' own shape mask (`Cells` ``mask``; none by default), $m$ a
*fixed* 0/1 mask of cells (``mask``; all ones by default). The
model's own alive masking, which depends on the state, is not applied: pass
``mask = model.cells.alive(x)`` to hold the living cells of a state fixed (the dead ones are
then held at 0). A fixed point is $T(x^*) = x^*$ (on a periodic grid without mask:
$dx(x^*) = 0$), its stability is read from the eigenvalues of $\partial T / \partial x$.
A PDE is a flow $\dot x = F(x)$: the fixed point solves $B(x + F(x)) = x$, i.e. the state
satisfies the boundary ($B(x) = x$) and the projected right-hand side vanishes (on a periodic
grid: $F(x^*) = 0$), and its stability is read from the eigenvalues of $\partial F/\partial x$.
A plain callable is either (``kind="map"``: $x \mapsto T(x)$; ``kind="flow"``:
$x \mapsto F(x)$).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from diffdyn.common._helpers import check_int, check_number, read_array

from ._model import AbstractNCA, seed_state

__all__ = [
    "PerceptionSensitivity",
    "perception_sensitivity",
    "FixedPoint",
    "fixed_point",
    "Stability",
    "stability",
    "NCAAnalyseConfig",
    "NCAAnalysis",
    "analyse_nca",
]

Kind = Literal["map", "flow"]


# ---------------------------------------------------------------------------- sensitivities
@dataclasses.dataclass(frozen=True)
class PerceptionSensitivity:
    r"""What `perception_sensitivity` returns.

    Attributes:
        total: $S_{kc}$, ``[K, C]``: the mean over cells of the Euclidean norm, over the
            output channels, of $\partial dx / \partial P_{kc}$.
        per_output: $S_{okc}$, ``[C, K, C]``: the mean over cells of
            $|\partial dx_o / \partial P_{kc}|$.
        filters: the names of the $K$ perception filters (rows of ``total``).
        cells: the number of cells averaged over.
    """

    total: np.ndarray
    per_output: np.ndarray
    filters: tuple[str, ...]
    cells: int

    def top(self, n: int = 5) -> list[dict[str, Any]]:
        """The ``n`` largest entries of ``total`` as ``{"filter", "channel", "value"}``,
        largest first."""
        n = check_int(n, "n", 1)
        flat = np.argsort(-self.total, axis=None, kind="stable")[:n]
        rows = []
        for i in flat:
            k, c = np.unravel_index(i, self.total.shape)
            rows.append(
                {"filter": self.filters[k], "channel": int(c), "value": float(self.total[k, c])}
            )
        return rows


class _Calls:
    """Counts the calls of a `_Probe` at trace time (hashed by identity, so it can sit in a
    static field)."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []


class _Probe(eqx.Module):
    """Stands in for an NCA's perception: ``P(x) + delta``, recording the shape of every call."""

    perception: Any
    delta: Array
    calls: _Calls = eqx.field(static=True)

    def __call__(self, x: Array) -> Array:
        self.calls.shapes.append(tuple(x.shape))
        p = self.perception(x)
        # another grid (a pooled state): recorded and refused after tracing, not perturbed
        return p + self.delta if p.shape == self.delta.shape else p


def _probed(model: AbstractNCA, delta: Array, calls: _Calls) -> AbstractNCA:
    probe = _Probe(model.cells.perception, delta, calls)
    return eqx.tree_at(lambda m: m.cells.perception, model, probe)


def _check_mask(mask: Any, shape: tuple[int, ...], name: str) -> Array | None:
    """``mask`` as a float ``[1, H, W]`` array of zeros and ones (``None`` stays ``None``)."""
    if mask is None:
        return None
    if not hasattr(mask, "shape"):
        raise TypeError(f"{name} must be an array [H, W] or [1, H, W]; got {type(mask).__name__}")
    m = np.asarray(mask)
    if m.shape == shape[1:]:
        m = m[None]
    if m.shape != (1, *shape[1:]):
        raise ValueError(
            f"{name} must have shape {tuple(shape[1:])} or {(1, *shape[1:])} (the grid); got "
            f"{tuple(m.shape)}"
        )
    if not np.all((m == 0) | (m == 1)):
        raise ValueError(f"{name} must hold only 0/1 (or booleans)")
    return jnp.asarray(m, jnp.result_type(float))


def perception_sensitivity(
    model: AbstractNCA,
    x: Float[ArrayLike, "C H W"],
    *,
    where: Bool[ArrayLike, "H W"] | None = None,
) -> PerceptionSensitivity:
    r"""How strongly the update of every cell depends on each perception feature.

    With $p = P(x) \in \mathbb{R}^{KC}$ at a cell (feature $kC + c$: filter $k$ on channel
    $c$, as `Perception` orders them) and the per-cell network $dx = f(p)$, the Jacobian
    $J_{o,kc}(h, w) = \partial dx_o(h, w) / \partial p_{kc}(h, w)$ is evaluated at every cell
    of $x$ and averaged over the cells $\Omega$ (all, or those where ``where`` is true):

    $$
    S_{okc} = \frac{1}{|\Omega|} \sum_{(h,w) \in \Omega} |J_{o,kc}(h, w)|, \qquad
    S_{kc} = \frac{1}{|\Omega|} \sum_{(h,w) \in \Omega}
        \Big(\sum_o J_{o,kc}(h, w)^2\Big)^{1/2}.
    $$

    $J$ comes from $C$ vector-Jacobian products of $\delta \mapsto f(P(x) + \delta)$ at
    $\delta = 0$, the cotangent of product $o$ being 1 on output channel $o$ of every cell:
    since $f$ acts on each cell alone, product $o$ is row $o$ of every cell's Jacobian. That
    locality is checked with one more product (random signs per cell and channel); a model
    whose update is not $f(P(x))$ with $P$ applied once to the whole state and $f$ per cell
    (`MultiScaleNCA` pools the state first; `PolynomialNCA` perceives monomials) is refused
    with a ValueError. The stochastic update, the alive masking and the boundary play no
    part: this is the sensitivity of the proposal ``model.increment``.

    Args:
        model: the NCA.
        x: the state ``[C, H, W]`` at which the Jacobians are taken (a typical state of the
            model, e.g. a rollout from its seed).
        where: the cells averaged over (``[H, W]`` booleans; default all), e.g. the living
            cells ``model.cells.alive(x)[0]``.

    Returns:
        `PerceptionSensitivity` with ``total`` ``[K, C]`` and ``per_output`` ``[C, K, C]``.
    """
    if not isinstance(model, AbstractNCA):
        raise TypeError(f"model must be an AbstractNCA; got {type(model).__name__}")
    model.cells.check(x)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"x must be a float array; got dtype {x.dtype}")
    weights = _check_mask(where, x.shape, "where")
    if weights is not None and not float(weights.sum()) > 0:
        raise ValueError("where selects no cell")
    c = model.channels
    k = len(model.filters)
    features = jax.eval_shape(model.cells.perception, x).shape
    if features[0] != k * c:
        raise ValueError(
            f"the perception gives {features[0]} features, not filters x channels = {k * c}"
        )
    calls = _Calls()
    jax.eval_shape(lambda d: _probed(model, d, calls).increment(x), jnp.zeros(features, x.dtype))
    name = type(model).__name__
    if len(calls.shapes) != 1 or calls.shapes[0] != tuple(x.shape):
        seen = ", ".join(str(s) for s in calls.shapes) or "never"
        raise ValueError(
            f"perception_sensitivity needs increment(x) = f(P(x)) with the perception applied "
            f"once to the state {tuple(x.shape)}; {name} applies it {seen}"
        )
    jacobian, signs, probe, dx = _jacobian_rows(model, x)
    if not bool(jnp.all(jnp.isfinite(dx))):
        raise ValueError("the update dx = f(P(x)) is not finite at x")
    predicted = jnp.einsum("ofhw,ohw->fhw", jacobian, signs)
    scale = float(jnp.max(jnp.abs(jacobian))) * c + 1e-30
    err = float(jnp.max(jnp.abs(predicted - probe)))
    if err > 1e3 * float(jnp.finfo(x.dtype).eps) * scale:
        raise ValueError(
            f"perception_sensitivity needs an update network that acts on each cell alone; "
            f"{name}'s update of a cell depends on the perception of other cells"
        )
    j = np.asarray(jacobian, np.float64).reshape(c, k, c, *x.shape[1:])  # [o, k, c, H, W]
    w = np.ones(x.shape[1:]) if weights is None else np.asarray(weights[0], np.float64)
    cells = float(w.sum())
    per_output = np.einsum("okchw,hw->okc", np.abs(j), w) / cells
    total = np.einsum("kchw,hw->kc", np.sqrt(np.sum(j * j, axis=0)), w) / cells
    return PerceptionSensitivity(total, per_output, tuple(model.filters), int(round(cells)))


@eqx.filter_jit
def _jacobian_rows(model: AbstractNCA, x: Array) -> tuple[Array, Array, Array, Array]:
    """``(J [O, F, H, W], signs [O, H, W], VJP of signs [F, H, W], dx)``."""
    features = model.cells.perception(x)

    def update(delta: Array) -> Array:
        return _probed(model, delta, _Calls()).increment(x)

    dx, vjp = jax.vjp(update, jnp.zeros_like(features))
    c = dx.shape[0]
    rows = jnp.broadcast_to(jnp.eye(c, dtype=dx.dtype)[:, :, None, None], (c, *dx.shape))
    jacobian = jax.vmap(lambda u: vjp(u)[0])(rows)
    # a fixed sign pattern: a probe of locality, not a random quantity of the result
    signs = jax.random.rademacher(jax.random.key(0), dx.shape, dtype=dx.dtype)
    return jacobian, signs, vjp(signs)[0], dx


# ---------------------------------------------------------------------------- fixed points
def _is_pde(fn: Any) -> bool:
    from diffdyn.pde import AbstractPDE

    return isinstance(fn, AbstractPDE)


def _dynamics(
    fn: Any, x: Array, kind: Kind | None, args: Any, mask: Array | None
) -> tuple[Callable[[Array], Array], Kind]:
    """``(G, kind)``: ``G = T`` for a map, ``G = F`` for a flow (see the module docstring)."""
    if isinstance(fn, AbstractNCA):
        if kind not in (None, "map"):
            raise ValueError(f"kind: an NCA is a map; got kind={kind!r}")
        if args is not None:
            raise ValueError("args: an NCA takes no args")
        fn.cells.check(x)
        model = fn

        def step(y: Array) -> Array:
            new = y + model.increment(y)
            new = model.cells.bc(new if mask is None else mask * new)
            # the cells' own mask (a shape the cells live in) comes after the boundary
            return new if model.cells.mask is None else model.cells.mask(new)

        return step, "map"
    if mask is not None:
        raise ValueError("mask applies to NCAs only")
    if _is_pde(fn):
        if kind not in (None, "flow"):
            raise ValueError(f"kind: a PDE is a flow; got kind={kind!r}")
        from diffdyn.pde import check_state

        check_state(x, fn.channels)
        pde = fn

        def rate(y: Array) -> Array:
            return pde(jnp.zeros((), y.dtype), y, args)

        return rate, "flow"
    if not callable(fn):
        raise TypeError(
            f"fn must be an AbstractNCA, an AbstractPDE or a callable; got {type(fn).__name__}"
        )
    if kind not in ("map", "flow"):
        raise ValueError(f"kind must be 'map' or 'flow' for a callable fn; got {kind!r}")
    if args is not None:
        return (lambda y: fn(y, args)), kind
    return fn, kind


def _residual(fn: Any, g: Callable[[Array], Array], kind: Kind) -> Callable[[Array], Array]:
    """The function whose root is the fixed point (see `fixed_point`)."""
    if kind == "map":
        return lambda y: g(y) - y
    if _is_pde(fn) and fn.grid.boundary != "periodic":
        bc = fn.grid.bc
        return lambda y: bc(y + g(y)) - y
    return g


@dataclasses.dataclass(frozen=True)
class FixedPoint:
    """What `fixed_point` returns.

    Attributes:
        point: the last Newton iterate ``[C, H, W]`` (the fixed point when ``converged``).
        residual: $\\max |r(x)|$ at ``point`` (see `fixed_point` for $r$).
        converged: True only when the Newton solve succeeded and the residual is finite.
        steps: Newton steps taken.
        kind: ``"map"`` or ``"flow"``.
        message: optimistix's verdict on the solve.
    """

    point: Array
    residual: float
    converged: bool
    steps: int
    kind: str
    message: str


def _default_tolerance(dtype: Any) -> float:
    return 1e-10 if jnp.dtype(dtype) == jnp.float64 else 1e-5


def fixed_point(
    fn: Any,
    x0: Float[ArrayLike, "C H W"],
    *,
    kind: Kind | None = None,
    args: Any = None,
    mask: Bool[ArrayLike, "H W"] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 64,
    method: Literal["newton", "levenberg-marquardt"] = "newton",
    linear_solver: Literal["auto", "dense", "gmres"] = "auto",
    dense_limit: int = 4096,
    throw: bool = True,
) -> FixedPoint:
    r"""A fixed point of an NCA's deterministic update or a zero of a PDE's right-hand side.

    Newton's method (optimistix ``Newton``, started at ``x0``) on the residual

    $$
    r(x) = T(x) - x \ \text{(map)}, \qquad r(x) = F(x) \ \text{(flow, periodic)}, \qquad
    r(x) = B(x + F(x)) - x \ \text{(flow with another boundary)},
    $$

    with $T$, $F$, $B$ and ``mask`` as in the module docstring (an NCA with fire rate 1, its
    alive masking replaced by the fixed ``mask``). Each step solves $J \delta = r$ with $J$
    from ``jax.linearize``: densely (LU of the materialised $n \times n$ Jacobian,
    ``"dense"``) or matrix-free from Jacobian-vector products (``"gmres"``, lineax GMRES);
    ``"auto"`` is dense for states of at most ``dense_limit`` numbers.
    ``method="levenberg-marquardt"`` (optimistix ``LevenbergMarquardt``, which minimises
    $\lVert r \rVert^2$ with damped Gauss-Newton steps; QR, or CG on the normal equations
    when matrix-free) tolerates the singular Jacobians Newton fails on (a ReLU network with
    dead units, a continuum of fixed points). The solve stops when successive iterates agree
    within ``atol + rtol |x|`` and $\max|r| <$ ``atol`` (both in the max norm).

    Args:
        fn: an `AbstractNCA` (a map), an `AbstractPDE` (a flow, ``args`` passed to its right-hand
            side) or a callable ``x -> T(x)`` / ``x -> F(x)`` (with ``kind``; called as
            ``fn(x, args)`` when ``args`` is given).
        x0: the initial guess ``[C, H, W]``.
        kind: ``"map"`` or ``"flow"``; required for a callable, implied by a model.
        args: passed to a PDE's right-hand side or to a callable.
        mask: NCAs only: the fixed mask $m$ of updated cells (``[H, W]``, 0/1 or booleans).
        rtol: relative tolerance (default $10^{-5}$ in float32, $10^{-10}$ in float64).
        atol: absolute tolerance (the same defaults).
        max_steps: the most Newton (or Levenberg-Marquardt) steps.
        method: ``"newton"`` or ``"levenberg-marquardt"``.
        linear_solver: ``"auto"``, ``"dense"`` or ``"gmres"``.
        dense_limit: the largest state size that ``"auto"`` solves densely.
        throw: raise a RuntimeError when the solve fails; ``False`` returns the result with
            ``converged=False`` instead.

    Returns:
        `FixedPoint`. A failed solve is never returned with ``converged=True``.
    """
    if not hasattr(x0, "shape") or len(x0.shape) != 3:
        raise ValueError(
            f"x0 must be an array [C, H, W]; got {getattr(x0, 'shape', type(x0).__name__)}"
        )
    x0 = jnp.asarray(x0)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(jnp.result_type(float))
    if not bool(jnp.all(jnp.isfinite(x0))):
        raise ValueError("x0 contains NaN or inf")
    max_steps = check_int(max_steps, "max_steps", 1)
    dense_limit = check_int(dense_limit, "dense_limit", 1)
    if method not in ("newton", "levenberg-marquardt"):
        raise ValueError(f"method must be 'newton' or 'levenberg-marquardt'; got {method!r}")
    if linear_solver not in ("auto", "dense", "gmres"):
        raise ValueError(
            f"linear_solver must be one of ['auto', 'dense', 'gmres']; got {linear_solver!r}"
        )
    tol = _default_tolerance(x0.dtype)
    rtol = tol if rtol is None else check_number(rtol, "rtol", 0.0)
    atol = tol if atol is None else check_number(atol, "atol", 0.0)
    if not atol > 0:
        raise ValueError(f"atol must be > 0; got {atol!r}")
    m = _check_mask(mask, x0.shape, "mask")
    g, kind = _dynamics(fn, x0, kind, args, m)
    residual = _residual(fn, g, kind)
    out = jax.eval_shape(residual, x0)
    if out.shape != x0.shape:
        raise ValueError(f"fn must map a state {tuple(x0.shape)} to one; got {out.shape}")
    if linear_solver == "auto":
        linear_solver = "dense" if x0.size <= dense_limit else "gmres"
    r0 = float(jnp.max(jnp.abs(residual(x0))))
    if r0 < atol:  # x0 is a fixed point already (a step could fail on a singular Jacobian)
        return FixedPoint(x0, r0, True, 0, kind, "successful")
    inner = atol / 10
    if method == "newton":
        lin = lx.LU() if linear_solver == "dense" else lx.GMRES(rtol=inner, atol=inner)
        solver = optx.Newton(rtol=rtol, atol=atol, linear_solver=lin)
    else:
        lin = lx.QR() if linear_solver == "dense" else lx.Normal(lx.CG(rtol=inner, atol=inner))
        solver = optx.LevenbergMarquardt(rtol=rtol, atol=atol, linear_solver=lin)
    sol = optx.root_find(lambda y, _: residual(y), solver, x0, max_steps=max_steps, throw=False)
    point = sol.value
    r = float(jnp.max(jnp.abs(residual(point))))
    success = bool(sol.result == optx.RESULTS.successful)
    converged = success and math.isfinite(r) and bool(jnp.all(jnp.isfinite(point)))
    steps = int(sol.stats["num_steps"])
    message = "successful" if success else optx.RESULTS[sol.result].split(". ")[0].strip()
    if not converged and throw:
        raise RuntimeError(
            f"fixed_point did not converge in {steps} Newton steps ({message}; residual "
            f"{r:.3g}); pass throw=False to get the last iterate"
        )
    return FixedPoint(point, r, converged, steps, kind, message)


# ---------------------------------------------------------------------------- stability
@dataclasses.dataclass(frozen=True)
class Stability:
    r"""What `stability` returns.

    Attributes:
        eigenvalues: the leading eigenvalues, complex ``[k]``: by real part, largest first
            (flow), or by modulus (map).
        kind: ``"map"`` or ``"flow"``.
        leading: the spectral abscissa $\max \operatorname{Re}\lambda$ (flow) or the
            spectral radius $\max |\lambda|$ (map) of the computed eigenvalues.
        verdict: ``"stable"`` (flow: $\max\operatorname{Re}\lambda < -\epsilon$; map:
            $\max|\lambda| < 1 - \epsilon$), ``"unstable"`` (beyond $+\epsilon$) or
            ``"marginal"`` (within $\epsilon$ of the boundary, where rounding decides).
        tolerance: $\epsilon$.
        method: ``"dense"`` (every eigenvalue) or ``"arnoldi"`` (Ritz values, an estimate).
        ritz_residuals: ``"arnoldi"``: the residual bound $|h_{m+1,m}\, e_m^\top y|$ of every
            returned Ritz value (small: accurate); ``None`` for ``"dense"``.
    """

    eigenvalues: np.ndarray
    kind: str
    leading: float
    verdict: str
    tolerance: float
    method: str
    ritz_residuals: np.ndarray | None = None

    @property
    def stable(self) -> bool:
        """``verdict == "stable"``."""
        return self.verdict == "stable"


def _arnoldi(matvec: Callable[[np.ndarray], np.ndarray], n: int, m: int) -> tuple:
    """``m`` steps of Arnoldi (twice-applied Gram-Schmidt) from a fixed start vector:
    ``(Ritz values, residual bounds)``."""
    q = np.zeros((m + 1, n))
    h = np.zeros((m + 1, m))
    start = np.cos(np.arange(n) * 0.7 + 0.3)  # deterministic, not orthogonal to smooth modes
    q[0] = start / np.linalg.norm(start)
    size = m
    for j in range(m):
        v = matvec(q[j])
        for _ in range(2):
            coeff = q[: j + 1] @ v
            v = v - coeff @ q[: j + 1]
            h[: j + 1, j] += coeff
        h[j + 1, j] = np.linalg.norm(v)
        if h[j + 1, j] < 1e-12 * max(1.0, np.abs(h[: j + 2, : j + 1]).max()):
            size = j + 1  # an invariant subspace: the Ritz values are exact
            break
        q[j + 1] = v / h[j + 1, j]
    values, vectors = np.linalg.eig(h[:size, :size])
    return values, np.abs(h[size, size - 1] * vectors[-1])


def stability(
    fn: Any,
    x_star: Float[ArrayLike, "C H W"],
    *,
    k: int | None = None,
    kind: Kind | None = None,
    args: Any = None,
    mask: Bool[ArrayLike, "H W"] | None = None,
    dense_limit: int = 4096,
    krylov: int = 60,
    tolerance: float | None = None,
) -> Stability:
    r"""The leading eigenvalues of the Jacobian at a fixed point, and the verdict.

    For a flow $\dot x = F(x)$ the Jacobian is $A = \partial F/\partial x$ and $x^*$ is
    linearly stable when every $\operatorname{Re}\lambda(A) < 0$; for a map
    $x_{t+1} = T(x_t)$ it is $A = \partial T/\partial x$ (for an NCA $I + \partial dx /
    \partial x$ inside the mask, see the module docstring) and stability needs every
    $|\lambda(A)| < 1$.

    States of at most ``dense_limit`` numbers get the dense Jacobian (``jax.jacfwd``) and
    every eigenvalue (``numpy.linalg.eigvals`` in float64). Larger maps get ``krylov``
    Arnoldi steps on Jacobian-vector products: the Ritz values approximate the eigenvalues of
    largest modulus, which decide a map's stability; the result is an estimate, returned with
    the Ritz residual bounds. A flow larger than ``dense_limit`` is refused (Arnoldi finds
    the eigenvalues of largest modulus, not of largest real part). A PDE on a non-periodic
    grid is refused too: its boundary cells are pinned, so the Jacobian of the projected
    right-hand side has eigenvalue 0 there, which is no property of the dynamics.

    Args:
        fn: an `AbstractNCA`, an `AbstractPDE` or a callable with ``kind`` (as `fixed_point`).
        x_star: the fixed point ``[C, H, W]`` (e.g. ``fixed_point(...).point``).
        k: how many leading eigenvalues to return (default: all that were computed).
        kind: as in `fixed_point`.
        args: as in `fixed_point`.
        mask: as in `fixed_point`.
        dense_limit: the largest state size with a dense Jacobian.
        krylov: Arnoldi steps for larger maps.
        tolerance: $\epsilon$ of the verdict (default $100\,\varepsilon_{\text{mach}}
            \max(1, \max|\lambda|)$ of the state's dtype).

    Returns:
        `Stability`.
    """
    if not hasattr(x_star, "shape") or len(x_star.shape) != 3:
        raise ValueError(
            f"x_star must be an array [C, H, W]; got "
            f"{getattr(x_star, 'shape', type(x_star).__name__)}"
        )
    x = jnp.asarray(x_star)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError("x_star contains NaN or inf")
    if k is not None:
        k = check_int(k, "k", 1)
    dense_limit = check_int(dense_limit, "dense_limit", 1)
    krylov = check_int(krylov, "krylov", 2)
    m = _check_mask(mask, x.shape, "mask")
    g, kind = _dynamics(fn, x, kind, args, m)
    if _is_pde(fn) and fn.grid.boundary != "periodic":
        raise ValueError(
            f"stability of a PDE needs a periodic grid; this one is {fn.grid.boundary!r} "
            "(its pinned boundary cells would add eigenvalues 0)"
        )
    out = jax.eval_shape(g, x)
    if out.shape != x.shape:
        raise ValueError(f"fn must map a state {tuple(x.shape)} to one; got {out.shape}")
    n = x.size
    ritz = None
    if n <= dense_limit:
        jac = jax.jit(jax.jacfwd(lambda v: g(v.reshape(x.shape)).reshape(-1)))(x.reshape(-1))
        values = np.linalg.eigvals(np.asarray(jac, np.float64))
        method = "dense"
    elif kind == "map":
        _, lin = jax.linearize(lambda v: g(v.reshape(x.shape)).reshape(-1), x.reshape(-1))
        lin = jax.jit(lin)

        def matvec(v: np.ndarray) -> np.ndarray:
            return np.asarray(lin(jnp.asarray(v, x.dtype)), np.float64)

        values, ritz = _arnoldi(matvec, n, min(krylov, n))
        method = "arnoldi"
    else:
        raise ValueError(
            f"the state has {n} numbers, more than dense_limit = {dense_limit}; the stability "
            "of a flow needs the dense Jacobian: raise dense_limit or use a smaller grid"
        )
    key = values.real if kind == "flow" else np.abs(values)
    order = np.argsort(-key, kind="stable")
    values = values[order]
    ritz = None if ritz is None else ritz[order]
    if k is not None:
        values = values[:k]
        ritz = None if ritz is None else ritz[:k]
    leading = float(np.max(values.real) if kind == "flow" else np.max(np.abs(values)))
    if tolerance is None:
        eps = float(jnp.finfo(x.dtype).eps)
        tolerance = 100 * eps * max(1.0, float(np.max(np.abs(values))))
    tolerance = check_number(tolerance, "tolerance", 0.0)
    boundary = 0.0 if kind == "flow" else 1.0
    if leading < boundary - tolerance:
        verdict = "stable"
    elif leading > boundary + tolerance:
        verdict = "unstable"
    else:
        verdict = "marginal"
    return Stability(values, kind, leading, verdict, tolerance, method, ritz)


# ---------------------------------------------------------------------------- the workflow
@dataclasses.dataclass(frozen=True)
class NCAAnalyseConfig:
    """``diffdyn nca analyse``: sensitivities, fixed point and stability of a trained NCA.

    Attributes:
        model: a model file (.eqx) or a ``diffdyn nca train`` output folder (its model.eqx).
        state: a .npy/.npz state [C, H, W] to analyse (None: a rollout of the training's
            initial state, see analyse_nca).
        steps: NCA steps rolled out from the initial state (None: task grow the training's
            rollout length, pde the length of a training trajectory, sequence 0).
        top: the largest sensitivities listed in metrics.json.
        eigenvalues: the leading eigenvalues listed in metrics.json.
        method: the fixed-point solver: newton, or levenberg-marquardt (slower, but it
            tolerates singular Jacobians).
        newton_steps: the most solver steps of the fixed-point solve.
        dense_limit: states of at most this many numbers get dense Jacobians (larger: GMRES
            for the fixed point and Arnoldi for the eigenvalues).
    """

    model: str
    state: str | None = None
    steps: int | None = None
    top: int = 5
    eigenvalues: int = 8
    method: Literal["newton", "levenberg-marquardt"] = "newton"
    newton_steps: int = 64
    dense_limit: int = 4096

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must name a model file or a `diffdyn nca train` output folder")
        if self.steps is not None:
            check_int(self.steps, "steps", 0)
        check_int(self.top, "top", 1)
        check_int(self.eigenvalues, "eigenvalues", 1)
        check_int(self.newton_steps, "newton_steps", 1)
        check_int(self.dense_limit, "dense_limit", 1)


@dataclasses.dataclass
class NCAAnalysis:
    """What `analyse_nca` returns.

    Attributes:
        model: the loaded NCA.
        path: the model file.
        state: the analysed state ``[C, H, W]``.
        origin: how ``state`` was obtained, in words.
        mask: the living cells of ``state`` ``[H, W]`` (all True without alive masking).
        sensitivity: `perception_sensitivity` at ``state`` over the living cells.
        fixed_point: `fixed_point` from ``state`` (mask held at ``mask``; may have failed).
        stability: `stability` at the fixed point, ``None`` when there is none.
        spectrum: the eigenvalues to draw: ``stability``'s, or those at the last Newton
            iterate when it is finite but no fixed point (``None`` otherwise).
        metrics: the scalar results (see `analyse_nca`).
    """

    model: AbstractNCA
    path: Path
    state: np.ndarray
    origin: str
    mask: np.ndarray
    sensitivity: PerceptionSensitivity
    fixed_point: FixedPoint
    stability: Stability | None
    spectrum: np.ndarray | None
    metrics: dict[str, Any]


def _typical_state(
    model: AbstractNCA, folder: Path, cfg: NCAAnalyseConfig, key: PRNGKeyArray
) -> tuple[Array, str]:
    """The state to analyse and a description of it (see `analyse_nca`)."""
    from diffdyn.common import load_config_file, load_sequence

    from ._pde_task import _initial, gray_scott_trajectory

    c = model.channels
    if cfg.state is not None:
        x = np.asarray(read_array(cfg.state, "state"), np.float32)
        model.cells.check(x, "state")
        x0, origin, default_steps = jnp.asarray(x), f"the state in {cfg.state}", 0
    else:
        file = folder / "config.yaml"
        if not file.is_file():
            raise ValueError(
                f"{str(folder)!r} holds no training config.yaml to make a state from; give "
                "--state FILE (.npy [C, H, W])"
            )
        trained = load_config_file(file)
        task = trained.get("task", "grow")
        k_init, key = jax.random.split(key)
        if task == "grow":
            g = dict(trained.get("grow", {}))
            side = int(g.get("size", 40)) + 2 * int(g.get("pad", 0))
            first = 3 if c > 3 else 0
            x0 = seed_state(c, side, side, first=first)
            origin, default_steps = "the seed cell", int(g.get("rollout_steps", 0))
        elif task == "pde":
            p = dict(trained.get("pde", {}))
            size, frames = int(p.get("size", 32)), int(p.get("frames", 24))
            trajectory = gray_scott_trajectory(k_init, size, 2, float(p.get("frame_dt", 50.0)))
            x0 = _initial(model, trajectory[0])
            origin = "a Gray-Scott initial condition (hidden channels 0)"
            default_steps = (frames - 1) * int(p.get("steps_per_frame", 8))
        elif task == "sequence":
            if not trained.get("data"):
                raise ValueError(f"{file} names no data; give --state FILE")
            times = dict(trained.get("sequence", {})).get("times")
            data = load_sequence(trained["data"], times=times)
            first = jnp.asarray(data.frames[0, 0])
            x0 = _initial(model, first)
            origin, default_steps = "the first recorded frame (hidden channels 0)", 0
        elif task == "texture":
            t = dict(trained.get("texture", {}))
            side = int(t.get("size", 32))
            x0 = jax.random.uniform(k_init, (c, side, side))
            origin = "uniform noise, as texture training starts"
            default_steps = int(t.get("rollout_max", 64))
        else:
            raise ValueError(f"{file}: unknown task {task!r}")
        model.cells.check(x0, "the initial state")
    steps = default_steps if cfg.steps is None else cfg.steps
    x = eqx.filter_jit(model.rollout)(x0, steps, key) if steps else x0
    if steps:
        origin = f"{origin} after {steps} NCA steps"
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"the state to analyse ({origin}) contains NaN or inf")
    return x, origin


def analyse_nca(cfg: NCAAnalyseConfig, key: PRNGKeyArray) -> NCAAnalysis:
    """Load the NCA of ``cfg.model`` and compute its sensitivities, fixed point and stability.

    The analysed state is ``cfg.state`` if given, else the training's initial state rolled
    out ``cfg.steps`` steps (stochastically, with ``key``): for task grow the seed cell
    (default: the training's rollout length, so the grown pattern); for task pde a fresh
    Gray-Scott initial condition with zero hidden channels (default: the length of a
    training trajectory); for task sequence the first recorded frame of the training's data
    with zero hidden channels (default: 0 steps). With alive masking the living cells $m$ of
    that state are held fixed (see `fixed_point`) and the sensitivities are averaged over them.

    Metrics: ``cells`` (averaged over), ``top_sensitivities`` (filter, channel, value),
    ``max_sensitivity``, ``fixed_point_converged``, ``fixed_point_residual``,
    ``fixed_point_steps``, ``fixed_point_distance`` (RMS distance from the analysed state),
    ``spectral_radius`` (the map's $\\max|\\lambda|$), ``stability`` (the verdict, or
    ``"no fixed point"``), ``stability_method``, ``eigenvalues`` (the leading ones as
    ``[re, im]``) and ``state_size``.
    """
    from ._workflows import _model_folder

    path = Path(cfg.model)
    folder = _model_folder(cfg.model)
    if path.is_dir():
        path = path / "model.eqx"
    if not path.is_file():
        raise ValueError(f"no model: {str(path)!r} does not exist")
    model = AbstractNCA.load(path)
    x, origin = _typical_state(model, folder, cfg, key)
    mask = np.asarray(model.cells.alive(x)[0])
    if not mask.any():
        raise ValueError(f"no cell of the analysed state ({origin}) is alive")
    held = None if model.alive_threshold is None else mask
    sens = perception_sensitivity(model, x, where=held)
    fp = fixed_point(
        model,
        x,
        mask=held,
        max_steps=cfg.newton_steps,
        method=cfg.method,
        dense_limit=cfg.dense_limit,
        throw=False,
    )
    finite = bool(jnp.all(jnp.isfinite(fp.point)))
    stab, spectrum = None, None
    if finite:
        s = stability(model, fp.point, mask=held, dense_limit=cfg.dense_limit)
        spectrum = s.eigenvalues
        stab = s if fp.converged else None
    leading = None if spectrum is None else float(np.max(np.abs(spectrum)))
    distance = float(jnp.sqrt(jnp.mean((fp.point - x) ** 2))) if finite else None
    metrics: dict[str, Any] = {
        "state_size": int(x.size),
        "cells": sens.cells,
        "top_sensitivities": sens.top(cfg.top),
        "max_sensitivity": float(sens.total.max()),
        "fixed_point_converged": fp.converged,
        "fixed_point_residual": fp.residual,
        "fixed_point_steps": fp.steps,
        "fixed_point_distance": distance,
        "spectral_radius": leading if fp.converged else None,
        "stability": stab.verdict if stab is not None else "no fixed point",
        "stability_method": None if stab is None else stab.method,
        "eigenvalues": []
        if stab is None
        else [[float(v.real), float(v.imag)] for v in stab.eigenvalues[: cfg.eigenvalues]],
    }
    return NCAAnalysis(model, path, np.asarray(x), origin, mask, sens, fp, stab, spectrum, metrics)
