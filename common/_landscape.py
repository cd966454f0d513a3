r"""Loss-landscape tools: Hessian-vector products, top Hessian eigenpairs, 2-D loss surfaces
and PCA of a parameter path.

Every function takes a scalar loss ``loss(params) -> scalar`` of a pytree ``params`` (for a
model, ``params, static = eqx.partition(model, filter)`` and
``loss = lambda p: L(eqx.combine(p, static))``). Vectors are pytrees like ``params``, or flat
arrays where said.

- `hvp`: $H v = \frac{d}{d\epsilon} \nabla L(p + \epsilon v)\big|_0$
  (forward-over-reverse, ``jax.jvp`` of ``jax.grad``; no Hessian is formed). For a loss
  that solves an ODE, solve with ``adjoint="direct"`` (``diffrax.DirectAdjoint`` supports
  forward mode; the default recursive-checkpoint adjoint is reverse-mode only).
- `top_eigenpairs`: the ``k`` algebraically largest eigenpairs of $H$, by Lanczos
  with full reorthogonalisation (Ritz pairs of the tridiagonal $T_m = V^\top H V$) or by
  power iteration with deflation $H - \sum_j \lambda_j v_j v_j^\top$ (largest
  magnitude, as PyHessian).
- `hutchinson_trace`: $\mathrm{tr} H \approx \frac1n \sum_i z_i^\top H z_i$,
  Rademacher $z_i$.
- `loss_surface`: $L(p + a d_1 + b d_2)$ on a grid of ``(a, b)``.
- `pca_path`: principal components of parameter snapshots $p_t - p_\mathrm{ref}$
  and the path's coordinates in the top two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

__all__ = [
    "hvp",
    "flat_hvp",
    "top_eigenpairs",
    "hutchinson_trace",
    "loss_surface",
    "pca_path",
]

Loss = Callable[[PyTree], Float[Array, ""]]


def hvp(loss: Loss, params: PyTree, v: PyTree) -> PyTree:
    """The Hessian-vector product $H(p) v$ (a pytree like ``params``)."""
    return jax.jvp(jax.grad(loss), (params,), (v,))[1]


def flat_hvp(loss: Loss, params: PyTree) -> tuple[Callable[[Array], Array], Array]:
    """``(matvec, flat_params)``: $v \\mapsto H v$ on flat vectors of the size of
    ``params`` (jitted), and the flat parameters."""
    flat, unravel = ravel_pytree(params)

    def flat_loss(x: Array) -> Array:
        return loss(unravel(x))

    @jax.jit
    def matvec(v: Array) -> Array:
        return jax.jvp(jax.grad(flat_loss), (flat,), (v.astype(flat.dtype),))[1]

    return matvec, flat


def _check_k(k: int, n: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n:
        raise ValueError(f"k must be an int in [1, {n}] (the number of parameters), got {k!r}")


def top_eigenpairs(
    loss: Loss,
    params: PyTree,
    k: int = 2,
    *,
    method: Literal["lanczos", "power"] = "lanczos",
    iterations: int = 100,
    tol: float = 1e-3,
    key: PRNGKeyArray,
) -> tuple[np.ndarray, list[PyTree]]:
    """The top ``k`` Hessian eigenvalues (descending, numpy) and eigenvectors (unit-norm
    pytrees like ``params``).

    ``lanczos``: ``iterations`` Lanczos steps (capped at the parameter count) from a random
    start, full reorthogonalisation; the ``k`` largest Ritz values. ``power``: per eigenpair,
    power iteration on the deflated Hessian until the Rayleigh quotient changes by less than
    ``tol`` relative, at most ``iterations`` steps; eigenvalues of largest magnitude.
    """
    matvec, flat = flat_hvp(loss, params)
    n = flat.shape[0]
    _check_k(k, n)
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")
    _, unravel = ravel_pytree(params)
    dtype = np.float64 if flat.dtype == jnp.float64 else np.float32
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    if method == "lanczos":
        values, vectors = _lanczos(matvec, n, k, min(iterations, n), rng, dtype)
    else:
        values, vectors = _power(matvec, n, k, iterations, tol, rng, dtype)
    return values, [unravel(jnp.asarray(v, flat.dtype)) for v in vectors]


def _mv(matvec: Callable, v: np.ndarray) -> np.ndarray:
    return np.array(matvec(jnp.asarray(v)), dtype=v.dtype)


def _lanczos(matvec, n, k, m, rng, dtype):
    basis = np.zeros((m, n), dtype)
    alpha, beta = np.zeros(m, dtype), np.zeros(m, dtype)
    v = rng.standard_normal(n).astype(dtype)
    v /= np.linalg.norm(v)
    size = m
    for j in range(m):
        basis[j] = v
        w = _mv(matvec, v)
        alpha[j] = w @ v
        w -= basis[: j + 1].T @ (basis[: j + 1] @ w)  # full reorthogonalisation, twice
        w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        if j == m - 1:
            break
        beta[j] = np.linalg.norm(w)
        if beta[j] < 1e-10 * max(1.0, abs(alpha[j])):  # invariant subspace found
            size = j + 1
            break
        v = w / beta[j]
    tri = np.diag(alpha[:size]) + np.diag(beta[: size - 1], 1) + np.diag(beta[: size - 1], -1)
    evals, evecs = np.linalg.eigh(tri)
    order = np.argsort(evals)[::-1][:k]
    vectors = [basis[:size].T @ evecs[:, i] for i in order]
    return evals[order], [v / np.linalg.norm(v) for v in vectors]


def _power(matvec, n, k, iterations, tol, rng, dtype):
    values, vectors = [], []
    for _ in range(k):
        v = rng.standard_normal(n).astype(dtype)
        v /= np.linalg.norm(v)
        value = None
        for _ in range(iterations):
            w = _mv(matvec, v)
            for lam, u in zip(values, vectors, strict=True):
                w -= lam * (u @ v) * u
            new = float(w @ v)
            norm = np.linalg.norm(w)
            if norm == 0:
                break
            v = w / norm
            if value is not None and abs(new - value) < tol * (abs(value) + 1e-12):
                value = new
                break
            value = new
        values.append(float(value))
        vectors.append(v)
    return np.asarray(values), vectors


def hutchinson_trace(loss: Loss, params: PyTree, samples: int = 100, *, key: PRNGKeyArray):
    """Hutchinson's estimate of $\\mathrm{tr}\\,H$ with ``samples`` Rademacher probes."""
    matvec, flat = flat_hvp(loss, params)
    z = jax.random.rademacher(key, (samples, flat.shape[0]), dtype=flat.dtype)
    return float(jnp.mean(jax.vmap(lambda v: v @ matvec(v))(z)))


def loss_surface(
    loss: Loss,
    params: PyTree,
    d1: PyTree,
    d2: PyTree,
    a: Float[ArrayLike, " A"],
    b: Float[ArrayLike, " B"],
) -> np.ndarray:
    """$L(p + a_i d_1 + b_j d_2)$ as a numpy array ``[A, B]`` (one jitted loss, a
    Python loop over the grid; failed points give whatever the loss returns)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"a and b must be 1-D grids, got shapes {a.shape} and {b.shape}")
    flat, unravel = ravel_pytree(params)
    u1, u2 = ravel_pytree(d1)[0], ravel_pytree(d2)[0]
    if u1.shape != flat.shape or u2.shape != flat.shape:
        raise ValueError(
            f"d1 and d2 must have the structure and size of params ({flat.shape[0]}), got "
            f"{u1.shape[0]} and {u2.shape[0]}"
        )
    at = jax.jit(lambda x, y: loss(unravel(flat + x * u1 + y * u2)))
    out = np.empty((a.size, b.size))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i, j] = float(at(jnp.asarray(x, flat.dtype), jnp.asarray(y, flat.dtype)))
    return out


def pca_path(
    snapshots: list[PyTree], reference: PyTree | None = None, components: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of a parameter path: ``(coords [T, c], directions [c, n], explained [c])``.

    Rows are $p_t - p_\\mathrm{ref}$ (``reference`` defaults to the last snapshot, e.g.
    the best model); ``directions`` are the top right singular vectors (flat, unit norm),
    ``explained`` the fraction of the total variance of the rows each one explains.
    """
    if len(snapshots) < 2:
        raise ValueError(f"snapshots must hold at least 2 parameter sets, got {len(snapshots)}")
    rows = np.stack([np.asarray(ravel_pytree(p)[0], np.float64) for p in snapshots])
    ref = rows[-1] if reference is None else np.asarray(ravel_pytree(reference)[0], np.float64)
    if ref.shape != rows.shape[1:]:
        raise ValueError(f"reference must match the snapshots' size {rows.shape[1]}")
    centred = rows - ref
    c = min(components, *centred.shape)
    _, s, vt = np.linalg.svd(centred - centred.mean(0), full_matrices=False)
    total = float(np.sum(s**2)) or 1.0
    directions = vt[:c]
    return centred @ directions.T, directions, (s[:c] ** 2) / total
