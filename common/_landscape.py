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
- `hessian_eigen_density`: the (Gaussian-smoothed) density of the Hessian's eigenvalues by
  stochastic Lanczos quadrature (`EigenDensity`).
- `loss_surface`: $L(p + a d_1 + b d_2)$ on a grid of ``(a, b)``.
- `pca_path`: principal components of parameter snapshots $p_t - p_\mathrm{ref}$
  and the path's coordinates in the top two.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from ._helpers import check_int

__all__ = [
    "hvp",
    "flat_hvp",
    "top_eigenpairs",
    "hutchinson_trace",
    "EigenDensity",
    "hessian_eigen_density",
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


def _lanczos_basis(
    matvec: Callable, start: np.ndarray, m: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""``m`` Lanczos steps from the unit vector ``start``: ``(basis [m, n], alpha [m],
    beta [m - 1])``, $H V^\top \approx V^\top T$ with $T$ tridiagonal (diagonal
    ``alpha``, off-diagonals ``beta``) and $V$ the orthonormal ``basis``.

    Every new vector is orthogonalised against the whole basis, twice (full
    reorthogonalisation). When the Krylov space of ``start`` is invariant ($\beta_j$ at
    round-off), the recursion restarts from a random unit vector orthogonal to the basis
    with $\beta_j = 0$, so $T$ is block diagonal and its later blocks hold Ritz values of
    the rest of the spectrum (with no weight on ``start``: see `hessian_eigen_density`).
    """
    dtype = start.dtype
    n = start.shape[0]
    basis = np.zeros((m, n), dtype)
    alpha, beta = np.zeros(m, dtype), np.zeros(max(m - 1, 0), dtype)
    v, scale = start, 0.0
    for j in range(m):
        basis[j] = v
        w = _mv(matvec, v)
        alpha[j] = w @ v
        w -= basis[: j + 1].T @ (basis[: j + 1] @ w)  # full reorthogonalisation, twice
        w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        if j == m - 1:
            break
        norm = float(np.linalg.norm(w))
        scale = max(scale, abs(float(alpha[j])), norm)
        if norm > 100 * np.finfo(dtype).eps * max(scale, np.finfo(dtype).tiny):
            beta[j], v = norm, w / norm
            continue
        # invariant subspace: restart orthogonally to it, beta[j] = 0
        while True:
            w = rng.standard_normal(n).astype(dtype)
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
            norm = float(np.linalg.norm(w))
            if norm > 0.5:  # the complement has dimension n - j - 1 >= 1: redraw rarely
                break
        v = w / norm
    return basis, alpha, beta


def _tridiagonal(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)


def _lanczos(matvec, n, k, m, rng, dtype):
    v = rng.standard_normal(n).astype(dtype)
    v /= np.linalg.norm(v)
    basis, alpha, beta = _lanczos_basis(matvec, v, m, rng)
    evals, evecs = np.linalg.eigh(_tridiagonal(alpha, beta))
    order = np.argsort(evals)[::-1][:k]
    vectors = [basis.T @ evecs[:, i] for i in order]
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


class EigenDensity(NamedTuple):
    r"""What `hessian_eigen_density` returns (numpy arrays, float64).

    Attributes:
        grid: the points $t_j$ ``[G]`` where the density is evaluated.
        density: the smoothed density $\hat\phi_\sigma(t_j)$ ``[G]``.
        nodes: the Ritz values $\theta^{(l)}_k$ ``[n_probes, lanczos_steps]`` of each
            probe's Lanczos matrix $T^{(l)}$, ascending in each row.
        weights: their Gauss quadrature weights $\tau^{(l)}_k$ (same shape; each row sums
            to 1).
        sigma: the width $\sigma$ of the Gaussian kernel (given, or derived).
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float


def hessian_eigen_density(
    loss: Loss,
    params: PyTree,
    *,
    n_probes: int = 10,
    lanczos_steps: int = 80,
    grid: int | Float[ArrayLike, " G"] = 1000,
    sigma: float | None = None,
    probe: Literal["rademacher", "gaussian"] = "rademacher",
    key: PRNGKeyArray,
) -> EigenDensity:
    r"""The density of the Hessian's eigenvalues by stochastic Lanczos quadrature
    (Ubaru, Chen & Saad, 2017; as a loss-landscape tool, Ghorbani, Krishnan & Xiao, 2019).

    The spectral density of the $n \times n$ Hessian $H$ with eigenpairs $(\lambda_i, u_i)$,
    smoothed by a Gaussian kernel $g_\sigma(x) = e^{-x^2 / 2\sigma^2} / (\sigma\sqrt{2\pi})$,
    is a normalised trace:

    $$
    \phi_\sigma(t) = \frac1n \sum_{i=1}^n g_\sigma(t - \lambda_i)
        = \frac1n \operatorname{tr} g_\sigma(t I - H)
        = \mathbb E_v\!\left[ v^\top g_\sigma(t I - H)\, v \right]
    $$

    for random unit probes with $\mathbb E[v v^\top] = I/n$: $v = z/\|z\|$ with $z$
    Rademacher ($\|z\| = \sqrt n$) or standard normal (then $v$ is uniform on the sphere).
    Each quadratic form is a Riemann--Stieltjes integral
    $v^\top f(H)\, v = \sum_i (u_i^\top v)^2 f(\lambda_i)$, which $m$ Lanczos steps from $v$
    (with full reorthogonalisation) turn into Gauss quadrature: with
    $T = Q\,\mathrm{diag}(\theta)\,Q^\top$ the $m \times m$ Lanczos tridiagonal matrix,

    $$
    v^\top f(H)\, v \approx \sum_{k=1}^m \tau_k f(\theta_k), \qquad \tau_k = (e_1^\top q_k)^2,
    $$

    exact for polynomials $f$ of degree up to $2m - 1$ (and for every $f$ when $m = n$:
    then the nodes $\theta_k$ are the eigenvalues of $H$). Averaging over ``n_probes``
    probes $v_l$,

    $$
    \hat\phi_\sigma(t) = \frac{1}{n_v} \sum_{l=1}^{n_v} \sum_{k=1}^m
        \tau^{(l)}_k\, g_\sigma\big(t - \theta^{(l)}_k\big),
    $$

    which integrates to 1 ($\sum_k \tau_k = 1$) and whose mean
    $\sum_k \tau_k \theta_k = v^\top H v$ is Hutchinson's estimate of
    $\operatorname{tr} H / n$. The extreme nodes converge to $\lambda_\mathrm{min}$ and
    $\lambda_\mathrm{max}$ first and always lie inside
    $[\lambda_\mathrm{min}, \lambda_\mathrm{max}]$. When a probe's Krylov space is
    invariant before $m$ steps (e.g. repeated eigenvalues) the Lanczos recursion restarts
    orthogonally to it; the extra nodes then carry weight 0.

    Args:
        loss: the scalar loss ``loss(params)``; $H$ is its Hessian at ``params`` (taken by
            Hessian-vector products, `flat_hvp`; the matrix is never formed).
        params: the parameters (a pytree of arrays; $n$ is their total size).
        n_probes: the number of random probes $n_v$ (the stochastic error of
            $\hat\phi_\sigma$ falls as $1/\sqrt{n_v}$).
        lanczos_steps: the Lanczos steps $m$ per probe, at most $n$ (one Hessian-vector
            product each).
        grid: the points where the density is evaluated: a number of points, evenly spaced
            over $[\theta_\mathrm{min} - 5\sigma, \theta_\mathrm{max} + 5\sigma]$ (the
            extreme nodes of all probes), or a 1-D array of points.
        sigma: the kernel width $\sigma > 0$. None: 1 % of the spread of the nodes,
            $(\theta_\mathrm{max} - \theta_\mathrm{min}) / 100$ (a ``ValueError`` if every
            node is the same number up to round-off: then give it).
        probe: ``rademacher`` or ``gaussian`` probes $z$.
        key: the PRNG key of the probes (and of restarts).

    Returns:
        An `EigenDensity`: ``grid``, ``density``, the Ritz ``nodes`` and ``weights``
        ``[n_probes, lanczos_steps]``, and ``sigma``.
    """
    matvec, flat = flat_hvp(loss, params)
    n = flat.shape[0]
    n_probes = check_int(n_probes, "n_probes")
    m = check_int(lanczos_steps, "lanczos_steps")
    if m > n:
        raise ValueError(
            f"lanczos_steps must be at most the number of parameters n = {n} (the Krylov "
            f"space has no more dimensions); got {m}"
        )
    if probe not in ("rademacher", "gaussian"):
        raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {probe!r}")
    if sigma is not None:
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
            raise TypeError(f"sigma must be a number > 0 or None, got {sigma!r}")
        if not (np.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0 or None, got {sigma!r}")
    if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        check_int(grid, "grid (a number of points)", minimum=2)
        points = None
    else:
        points = np.asarray(grid, np.float64)
        if points.ndim != 1 or points.size < 1 or not np.all(np.isfinite(points)):
            raise ValueError(
                "grid must be a number of points >= 2 or a 1-D array of finite points, got "
                f"{grid!r}"
            )

    dtype = np.float64 if flat.dtype == jnp.float64 else np.float32
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    nodes = np.empty((n_probes, m))
    weights = np.empty((n_probes, m))
    for i in range(n_probes):
        if probe == "rademacher":
            z = rng.choice(np.array([-1.0, 1.0], dtype), size=n)
        else:
            z = rng.standard_normal(n).astype(dtype)
        _, alpha, beta = _lanczos_basis(matvec, z / np.linalg.norm(z), m, rng)
        theta, q = np.linalg.eigh(_tridiagonal(alpha.astype(np.float64), beta.astype(np.float64)))
        nodes[i], weights[i] = theta, q[0] ** 2

    low, high = float(nodes.min()), float(nodes.max())
    if sigma is None:
        if high - low <= 100 * np.finfo(dtype).eps * max(abs(low), abs(high)):
            raise ValueError(
                f"every Ritz node is {low} up to round-off, so sigma (1 % of their spread) "
                "would be 0; give sigma > 0"
            )
        sigma = (high - low) / 100
    sigma = float(sigma)
    if points is None:
        points = np.linspace(low - 5 * sigma, high + 5 * sigma, int(grid))
    # (1/n_v) sum_l sum_k tau_k g_sigma(t - theta_k), one probe at a time: [G]
    density = np.zeros(points.shape[0])
    for theta, tau in zip(nodes, weights, strict=True):
        x = (points[:, None] - theta[None, :]) / sigma
        density += np.exp(-0.5 * x**2) @ tau
    density /= n_probes * sigma * np.sqrt(2 * np.pi)
    return EigenDensity(points, density, nodes, weights, sigma)


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
