r"""Natural cubic smoothing splines (Green & Silverman 1994, Reinsch form) in JAX.

Given knots $t_0 < \dots < t_{N-1}$ (uneven steps allowed) and values $y_i$, the
smoothing spline $g$ minimises

$$
\sum_i (y_i - g(t_i))^2 + \alpha \int g''(t)^2\,dt .
$$

The minimiser is a natural cubic spline. With $h_i = t_{i+1} - t_i$, the banded matrices
$Q$ ($N \times (N-2)$, column $j$ holds $1/h_{j-1}$,
$-(1/h_{j-1} + 1/h_j)$, $1/h_j$ in rows $j-1, j, j+1$) and $R$
($(N-2)\times(N-2)$, diagonal $(h_{j-1} + h_j)/3$, off-diagonal $h_j/6$)
give the second derivatives $\gamma$ at the interior knots and the knot values $g$:

$$
(R + \alpha Q^\top Q)\,\gamma = Q^\top y, \qquad g = y - \alpha Q \gamma,
\qquad \gamma_0 = \gamma_{N-1} = 0 .
$$

On $[t_i, t_{i+1}]$, with $a = t - t_i$, $b = t_{i+1} - t$,

$$
g(t) = \frac{a g_{i+1} + b g_i}{h_i}
- \frac{a b}{6}\Big[\Big(1 + \frac{a}{h_i}\Big)\gamma_{i+1}
+ \Big(1 + \frac{b}{h_i}\Big)\gamma_i\Big] .
$$

Outside $[t_0, t_{N-1}]$ the end cubics are extended. $\alpha = 0$ interpolates
(the natural interpolating spline); $\alpha \to \infty$ tends to the least-squares
straight line. The fit is a dense solve (fine for the $N \lesssim 10^3$ of trajectory
fitting); evaluation is a ``searchsorted`` and one cubic, jit- and grad-friendly in ``t``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

__all__ = ["SmoothingSpline", "reinsch_matrices"]


def reinsch_matrices(ts: Float[ArrayLike, " N"]) -> tuple[Array, Array]:
    r"""The Reinsch matrices ``(Q [N, N-2], R [N-2, N-2])`` of the knots ``ts``; the roughness
    of the natural cubic spline with knot values ``g`` is
    $\int g''^2 = g^\top Q R^{-1} Q^\top g$."""
    ts = jnp.asarray(ts)
    n = ts.shape[0]
    h = jnp.diff(ts)
    j = jnp.arange(n - 2)
    inv_left, inv_right = 1.0 / h[:-1], 1.0 / h[1:]
    q = jnp.zeros((n, n - 2), ts.dtype)
    q = q.at[j, j].set(inv_left)
    q = q.at[j + 1, j].set(-(inv_left + inv_right))
    q = q.at[j + 2, j].set(inv_right)
    r = jnp.diag((h[:-1] + h[1:]) / 3.0)
    off = h[1:-1] / 6.0
    r = r + jnp.diag(off, 1) + jnp.diag(off, -1)
    return q, r


class SmoothingSpline(eqx.Module):
    """A natural cubic (smoothing) spline through ``[N, *shape]`` values at knots ``ts [N]``.

    Build it with `fit`; call it at a scalar time to get an array of ``shape``.
    ``knots`` holds the fitted knot values $g_i$, ``second`` the second derivatives
    $\\gamma_i$ (zero at both ends).
    """

    ts: Float[Array, " N"]
    knots: Float[Array, "N ..."]
    second: Float[Array, "N ..."]

    @classmethod
    def fit(
        cls, ts: Float[ArrayLike, " N"], ys: Float[ArrayLike, "N ..."], alpha: float = 0.0
    ) -> SmoothingSpline:
        """The smoothing spline of the values ``ys`` (time on axis 0) with smoothing
        parameter ``alpha >= 0`` (0: interpolation)."""
        ts_np = np.asarray(ts)
        if ts_np.ndim != 1 or ts_np.shape[0] < 3:
            raise ValueError(f"ts must be a 1-D array of at least 3 knots, got shape {ts_np.shape}")
        if not np.all(np.isfinite(ts_np)) or not np.all(np.diff(ts_np) > 0):
            raise ValueError("ts must be finite and strictly increasing")
        ys = jnp.asarray(ys)
        if ys.ndim < 1 or ys.shape[0] != ts_np.shape[0]:
            raise ValueError(
                f"ys must have the time axis first, [N={ts_np.shape[0]}, ...]; got {ys.shape}"
            )
        if not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        dtype = jnp.result_type(ys.dtype, jnp.asarray(ts).dtype, float)
        ts = jnp.asarray(ts, dtype)
        n = ts.shape[0]
        flat = ys.reshape(n, -1).astype(dtype)
        q, r = reinsch_matrices(ts)
        gamma = jnp.linalg.solve(r + alpha * (q.T @ q), q.T @ flat)
        knots = flat - alpha * (q @ gamma)
        zero = jnp.zeros((1, flat.shape[1]), dtype)
        second = jnp.concatenate([zero, gamma, zero], axis=0)
        return cls(ts, knots.reshape(ys.shape), second.reshape(ys.shape))

    def __call__(self, t: Float[ArrayLike, ""]) -> Float[Array, "..."]:
        """$g(t)$, extended by the end cubics outside the knot range."""
        t = jnp.asarray(t, self.ts.dtype)
        n = self.ts.shape[0]
        i = jnp.clip(jnp.searchsorted(self.ts, t, side="right") - 1, 0, n - 2)
        t0, t1 = self.ts[i], self.ts[i + 1]
        h = t1 - t0
        a, b = t - t0, t1 - t
        g0, g1 = self.knots[i], self.knots[i + 1]
        c0, c1 = self.second[i], self.second[i + 1]
        linear = (a * g1 + b * g0) / h
        return linear - (a * b / 6.0) * ((1.0 + a / h) * c1 + (1.0 + b / h) * c0)

    def evaluate(self, ts: Float[ArrayLike, " M"]) -> Float[Array, "M ..."]:
        """$g$ at many times (vmapped ``__call__``)."""
        return jax.vmap(self)(jnp.asarray(ts, self.ts.dtype))

    def derivative(self, t: Float[ArrayLike, ""], order: int = 1) -> Float[Array, "..."]:
        """The ``order``-th time derivative of $g$ at ``t`` (by forward-mode autodiff)."""
        if order not in (0, 1, 2, 3):
            raise ValueError(f"order must be 0, 1, 2 or 3, got {order!r}")
        fn = self.__call__
        for _ in range(order):
            fn = jax.jacfwd(fn)
        return fn(jnp.asarray(t, self.ts.dtype))

    def roughness(self) -> Float[Array, "..."]:
        r"""$\int g''^2\,dt = \gamma^\top R \gamma$ per component."""
        _, r = reinsch_matrices(self.ts)
        n = self.ts.shape[0]
        inner = self.second[1:-1].reshape(n - 2, -1)
        return jnp.einsum("ik,ij,jk->k", inner, r, inner).reshape(self.knots.shape[1:])
