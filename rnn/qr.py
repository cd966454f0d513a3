r"""A thin QR factorisation from plain XLA operations, for the Benettin loop on CPU.

On CPU, :func:`jax.numpy.linalg.qr` calls LAPACK (``geqrf`` and ``orgqr`` from the OpenBLAS
that SciPy ships). OpenBLAS runs its own worker threads, and they busy-wait for a while
after each call. In the Lyapunov iteration, which alternates one QR with a few of XLA's own
multithreaded matrix products, those spinning threads take cores away from XLA's: the QR
calls cost several times their own run time, and on a loaded machine far more
(``benchmarks/rnn_lyapunov.py``; the whole iteration was about 1.4x slower than without
them, with 2 cores). :func:`householder_qr` computes the same factorisation as LAPACK
(Householder reflectors as ``dlarfg`` makes them, compact WY blocks as in ``dlarft``, the
thin :math:`Q` accumulated backwards as in ``dorgqr``) from ``jax.numpy`` operations only,
so that XLA runs all of it on its own threads. The updates with a block of reflectors are
matrix products; only the reflectors inside one panel are computed one after the other.

:func:`qr` picks it on CPU, and :func:`jax.numpy.linalg.qr` elsewhere (the GPU solvers are
XLA's own) and for small matrices (for which OpenBLAS stays on one thread). Both are
differentiable, with JAX's forward-mode rule for the thin QR.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, ArrayLike, Float

__all__ = ["householder_qr", "qr"]

#: Columns per Householder panel (reflectors computed one by one) and per block (the
#: panels of a block are applied to each other's columns as compact WY products); tuned on
#: a 2-core CPU for 500 x 500 and 2000 x 50 (``[N, k]`` tangent matrices).
_PANEL = 32
_BLOCK = 32
#: Default number of phases: compiled loop bodies, each with a fixed trailing-matrix shape
#: (more phases: less work on finished rows and columns, longer compilation).
_PHASES = 4


# Everything below works on transposed matrices, one row per column of A: a reflector, a
# column being reduced, a panel are then contiguous rows, which XLA's CPU matrix-vector
# kernels read far faster than the columns of a row-major [m, b] array.


def _factor_panel(
    p: Float[Array, "b m"], row0: Array
) -> tuple[Float[Array, "b m"], Float[Array, "b m"], Float[Array, "b b"]]:
    """Householder QR of the panel whose columns are the rows of ``p``, from entry ``row0``
    on (entries before it are kept): ``p`` with row ``i`` replaced by column ``i`` of ``R``
    (zero after entry ``row0 + i``), the unit reflectors ``V^T`` (row ``i`` is zero before
    ``row0 + i`` and one there) and the upper-triangular ``T`` with
    ``H_1 ... H_b = I - V T V^T``. Rows are assumed scaled to ``max |p| <= 1``.

    Left-looking: column ``i`` gets the reflectors ``1 .. i-1`` just before its own is
    computed (``dlarfg``; ``T`` grows as in ``dlarft``)."""
    b, m = p.shape
    idx = jnp.arange(m)
    cols = jnp.arange(b)

    def column(i, carry):
        p, vt, t = carry
        d = row0 + i  # the diagonal entry
        x = lax.dynamic_index_in_dim(p, i, axis=0, keepdims=False)
        x = x - (t.T @ (vt @ x)) @ vt  # (H_1 ... H_{i-1})^T x; rows i.. of V^T, T are zero
        alpha = lax.dynamic_index_in_dim(x, d, keepdims=False)
        below = jnp.where(idx > d, x, 0.0)
        xnorm = jnp.sqrt(below @ below)
        reflect = xnorm > 0  # dlarfg: H = I if the part below the diagonal is zero
        beta = -jnp.copysign(jnp.hypot(alpha, xnorm), alpha)
        tau = jnp.where(reflect, (beta - alpha) / beta, 0.0)
        v = below / jnp.where(reflect, alpha - beta, 1.0) + (idx == d)
        r = jnp.where(idx < d, x, jnp.where(idx == d, jnp.where(reflect, beta, alpha), 0.0))
        p = lax.dynamic_update_index_in_dim(p, r, i, axis=0)
        vt = lax.dynamic_update_index_in_dim(vt, v, i, axis=0)
        # T[:i, i] = -tau T[:i, :i] V[:, :i]^T v, T[i, i] = tau (T[:, i] is still zero, so
        # the new row i of V^T in the product does not matter)
        tcol = jnp.where(cols == i, tau, -tau * (t @ (vt @ v)))
        t = lax.dynamic_update_index_in_dim(t, tcol, i, axis=1)
        return p, vt, t

    init = (p, jnp.zeros((b, m), p.dtype), jnp.zeros((b, b), p.dtype))
    return lax.fori_loop(0, b, column, init)


def _apply(vt: Array, t: Array, xt: Array, *, transpose: bool) -> Array:
    """Rows of ``(I - V T V^T) X`` or, with ``transpose``, of ``(I - V T^T V^T) X``, for the
    rows ``xt`` of ``X^T`` and ``vt`` of ``V^T``."""
    return xt - ((xt @ vt.T) @ (t if transpose else t.T)) @ vt


def _factor_block(
    own: Float[Array, "w m"], row0: Array, panel: int
) -> tuple[Float[Array, "w m"], Float[Array, "w m"], Float[Array, "w w"]]:
    """Householder QR of a block of ``w`` columns (the rows of ``own``, all earlier
    reflectors already applied) from entry ``row0`` on, in panels of ``panel`` columns,
    left-looking: each panel first gets the block's earlier reflectors, aggregated in one
    compact WY form ``V T V^T`` (zero from the panel on, so one fixed-shape loop body serves
    every panel). Returns ``own`` with its ``R`` columns, ``V^T`` and ``T`` of the block."""
    w, m = own.shape
    before = jnp.arange(w)[:, None]

    def step(j, carry):
        own, vt, t = carry
        d = j * panel
        p = lax.dynamic_slice_in_dim(own, d, panel, axis=0)
        p, pv, pt = _factor_panel(_apply(vt, t, p, transpose=True), row0 + d)
        # T of [V_old, V_panel] is [[T_old, -T_old V_old^T V_panel T_panel], [0, T_panel]]
        tcol = jnp.where(before < d, -(t @ (vt @ pv.T)) @ pt, 0.0)
        tcol = lax.dynamic_update_slice_in_dim(tcol, pt, d, axis=0)
        t = lax.dynamic_update_slice_in_dim(t, tcol, d, axis=1)
        vt = lax.dynamic_update_slice_in_dim(vt, pv, d, axis=0)
        own = lax.dynamic_update_slice_in_dim(own, p, d, axis=0)
        return own, vt, t

    init = (own, jnp.zeros((w, m), own.dtype), jnp.zeros((w, w), own.dtype))
    return lax.fori_loop(0, w // panel, step, init)


def _phases(n_blocks: int, n_phases: int) -> list[tuple[int, int]]:
    """``n_blocks`` blocks split into at most ``n_phases`` consecutive ranges, as even as
    possible (the first ones longest)."""
    n = min(n_blocks, n_phases)
    bounds = [round(i * n_blocks / n) for i in range(n + 1)]
    return [(b0, b1) for b0, b1 in zip(bounds[:-1], bounds[1:], strict=True) if b1 > b0]


def _householder_qr(
    a: Float[Array, "m k"], n_phases: int
) -> tuple[Float[Array, "m k"], Float[Array, "k k"]]:
    m, k = a.shape
    panel = min(_PANEL, k)
    w = min(_BLOCK, panel * -(-k // panel))  # block width, a multiple of the panel width
    n_blocks = -(-k // w)
    pad = n_blocks * w - k
    # exact power-of-two column scaling (undone on R), so that sums of squares cannot overflow
    _, exponent = jnp.frexp(jnp.max(jnp.abs(a), axis=0))
    at = jnp.ldexp(a, -exponent).T
    # pad to whole blocks with an identity block: the QR of diag(A, I) is diag(Q, I) diag(R, I)
    if pad:
        at = jnp.block(
            [
                [at, jnp.zeros((k, pad), a.dtype)],
                [jnp.zeros((pad, m), a.dtype), jnp.eye(pad, dtype=a.dtype)],
            ]
        )
    kk, rows = at.shape
    # Right-looking over blocks of w columns: factorise a block, then apply its reflectors to
    # all the columns right of it (three matrix products). The trailing matrix shrinks; its
    # shape is fixed per phase (a static window at the phase's first block, masked inside),
    # so that there is one compiled loop body per phase, whatever the number of blocks.
    phases = _phases(n_blocks, n_phases)
    stored = []
    for b0, b1 in phases:
        start = b0 * w
        win = at[start:, start:]
        later = jnp.arange(win.shape[0])[:, None]

        def block(j, carry, later=later):
            win, vts, ts = carry
            o = j * w
            own = lax.dynamic_slice_in_dim(win, o, w, axis=0)
            own, vt, t = _factor_block(own, o, panel)
            win = lax.dynamic_update_slice_in_dim(win, own, o, axis=0)
            win = jnp.where(later >= o + w, _apply(vt, t, win, transpose=True), win)
            vts = lax.dynamic_update_index_in_dim(vts, vt, j, axis=0)
            ts = lax.dynamic_update_index_in_dim(ts, t, j, axis=0)
            return win, vts, ts

        n = b1 - b0
        init = (
            win,
            jnp.zeros((n, w, win.shape[1]), a.dtype),
            jnp.zeros((n, w, w), a.dtype),
        )
        win, vts, ts = lax.fori_loop(0, n, block, init)
        at = at.at[start:, start:].set(win)
        stored.append((start, vts, ts))
    r = at[:k, :k].T  # zero below the diagonal
    # Q = H_1 ... H_n [I; 0], accumulated backwards (dorgqr): when block s's reflectors are
    # applied, the columns left of it still hold [I; 0] and are not changed, so each phase
    # works on its trailing window of Q only
    qt = jnp.eye(kk, rows, dtype=a.dtype)
    for start, vts, ts in reversed(stored):
        n = vts.shape[0]

        def back(i, win, vts=vts, ts=ts, n=n):
            return _apply(vts[n - 1 - i], ts[n - 1 - i], win, transpose=False)

        qt = qt.at[start:, start:].set(lax.fori_loop(0, n, back, qt[start:, start:]))
    return qt[:k, :m].T, jnp.ldexp(r, exponent[None, :])


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _qr(a: Array, n_phases: int) -> tuple[Array, Array]:
    return _householder_qr(a, n_phases)


@_qr.defjvp
def _qr_jvp(n_phases, primals, tangents):
    # the thin-QR rule (as in JAX's own qr_jvp_rule): with X = dA R^{-1} and C = Q^T X,
    # dQ = Q (W - C) + X and dR = (C - W) R, W = tril(C, -1) - tril(C, -1)^T
    (a,), (da,) = primals, tangents
    q, r = _qr(a, n_phases)
    x = lax.linalg.triangular_solve(r, da, left_side=False, lower=False)
    c = q.T @ x
    low = jnp.tril(c, -1)
    w = low - low.T
    return (q, r), (q @ (w - c) + x, (c - w) @ r)


def householder_qr(
    a: Float[ArrayLike, "m k"], *, phases: int = _PHASES
) -> tuple[Float[Array, "m k"], Float[Array, "k k"]]:
    """The thin QR factorisation ``a = Q R`` of a real ``[m, k]`` matrix with ``m >= k``
    (``Q``: ``[m, k]`` with orthonormal columns, ``R``: ``[k, k]`` upper triangular, its
    diagonal signs as from LAPACK's ``dgeqrf``), from ``jax.numpy`` operations only (see the
    module docstring). ``phases`` (>= 1) trades compile time against run time for large
    ``k``. Differentiable in forward and reverse mode."""
    a = jnp.asarray(a)
    if a.ndim != 2 or a.shape[0] < a.shape[1]:
        raise ValueError(f"householder_qr needs a tall [m, k] matrix, m >= k; got {a.shape}")
    if not jnp.issubdtype(a.dtype, jnp.floating):
        raise TypeError(f"householder_qr needs a real floating matrix; got {a.dtype}")
    if isinstance(phases, bool) or not isinstance(phases, int) or phases < 1:
        raise ValueError(f"argument 'phases' must be an integer >= 1; got {phases!r}")
    return _qr(a, phases)


#: Below this many entries OpenBLAS keeps LAPACK's QR on one thread: that one is used.
_MIN_SIZE = 4096


def qr(
    a: Float[ArrayLike, "m k"], *, phases: int = _PHASES
) -> tuple[Float[Array, "m k"], Float[Array, "k k"]]:
    """Thin QR ``(Q, R)`` of a real ``[m, k]`` matrix: :func:`householder_qr` (with
    ``phases``) when compiled for CPU; :func:`jax.numpy.linalg.qr` on other platforms, for
    matrices with fewer than ``4096`` entries (OpenBLAS keeps those on one thread) and for
    complex or wide ones. Both are the same Householder algorithm and agree to rounding."""
    a = jnp.asarray(a)
    if (
        a.ndim != 2
        or a.shape[0] < a.shape[1]
        or a.size < _MIN_SIZE
        or not jnp.issubdtype(a.dtype, jnp.floating)
    ):
        return tuple(jnp.linalg.qr(a))
    return lax.platform_dependent(
        a,
        cpu=partial(householder_qr, phases=phases),
        default=lambda a: tuple(jnp.linalg.qr(a)),
    )
