r"""A thin QR factorisation from plain XLA operations, for the Benettin loop on CPU.

On CPU, `jax.numpy.linalg.qr` calls LAPACK (``geqrf`` and ``orgqr`` from the OpenBLAS
that SciPy ships). OpenBLAS runs its own worker threads, and they busy-wait for a while
after each call. In the Lyapunov iteration, which alternates one QR with a few of XLA's own
multithreaded matrix products, those spinning threads take cores away from XLA's, so each QR
slows the products around it down, more so on a loaded machine (see
``benchmarks/rnn_lyapunov.py``). `householder_qr` computes the same factorisation as LAPACK
(Householder reflectors as ``dlarfg`` makes them, compact WY blocks as in ``dlarft``, the
thin $Q$ accumulated backwards as in ``dorgqr``) from ``jax.numpy`` operations only,
so that XLA runs all of it on its own threads. The updates with a block of reflectors are
matrix products; only the reflectors inside one panel are computed one after the other.

`qr` picks it on CPU, and `jax.numpy.linalg.qr` elsewhere (the GPU solvers are
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
    at = (a * jnp.exp2(-exponent.astype(a.dtype))).T  # exact: powers of two
    # pad to whole blocks with an identity block: the QR of diag(A, I) is diag(Q, I) diag(R, I)
    if pad:
        at = jnp.block(
            [
                [at, jnp.zeros((k, pad), a.dtype)],
                [jnp.zeros((pad, m), a.dtype), jnp.eye(pad, dtype=a.dtype)],
            ]
        )
    kk, rows = at.shape
    # Right-looking over phases of consecutive blocks (w columns each). Inside a phase, a loop
    # over its blocks factorises one and applies its reflectors to the phase's later columns
    # (masked to a fixed shape, so that one compiled body serves all of the phase's blocks);
    # the phase's reflectors, aggregated into one compact WY form, then go to all the columns
    # right of the phase at once (three wide matrix products). Shapes shrink from one phase
    # to the next: each phase is one more compiled body and one more trailing-matrix shape.
    stored = []
    for b0, b1 in _phases(n_blocks, n_phases):
        start, n = b0 * w, b1 - b0
        width = n * w
        win = at[start:, start:]
        own, rest = win[:width], win[width:]
        later = jnp.arange(width)[:, None]

        def block(j, carry, later=later):
            own, vts, ts = carry
            o = j * w
            blk = lax.dynamic_slice_in_dim(own, o, w, axis=0)
            blk, vt, t = _factor_block(blk, o, panel)
            own = lax.dynamic_update_slice_in_dim(own, blk, o, axis=0)
            own = jnp.where(later >= o + w, _apply(vt, t, own, transpose=True), own)
            vts = lax.dynamic_update_index_in_dim(vts, vt, j, axis=0)
            ts = lax.dynamic_update_index_in_dim(ts, t, j, axis=0)
            return own, vts, ts

        init = (own, jnp.zeros((n, w, own.shape[1]), a.dtype), jnp.zeros((n, w, w), a.dtype))
        own, vts, ts = lax.fori_loop(0, n, block, init)
        vt = vts.reshape(width, own.shape[1])
        t = _merge_t(vt, ts)
        if rest.shape[0]:
            rest = _apply(vt, t, rest, transpose=True)
        at = at.at[start:, start:].set(jnp.concatenate([own, rest], axis=0))
        stored.append((start, vt, t))
    r = at[:k, :k].T  # zero below the diagonal
    # Q = H_1 ... H_n [I; 0], accumulated backwards (dorgqr) one phase at a time: when a
    # phase's reflectors are applied, the columns left of it still hold [I; 0] and do not
    # change, so only the trailing window of Q is updated
    qt = (
        lax.broadcasted_iota(jnp.int32, (kk, rows), 0)
        == lax.broadcasted_iota(jnp.int32, (kk, rows), 1)
    ).astype(a.dtype)
    for start, vt, t in reversed(stored):
        qt = qt.at[start:, start:].set(_apply(vt, t, qt[start:, start:], transpose=False))
    return qt[:k, :m].T, r * jnp.exp2(exponent.astype(a.dtype))[None, :]


def _merge_t(vt: Float[Array, "W m"], ts: Float[Array, "n w w"]) -> Float[Array, "W W"]:
    """``T`` of the compact WY form of ``n`` consecutive blocks of reflectors (rows of ``vt``)
    from the blocks' own ``T``: block column ``j`` is ``-T_{<j} V_{<j}^T V_j T_j`` above
    ``T_j``."""
    n, w, _ = ts.shape
    gram = vt @ vt.T
    above = jnp.arange(n * w)[:, None]

    def merge(j, t):
        o = j * w
        g = lax.dynamic_slice_in_dim(gram, o, w, axis=1)
        tcol = jnp.where(above < o, -(t @ g) @ ts[j], 0.0)
        tcol = lax.dynamic_update_slice_in_dim(tcol, ts[j], o, axis=0)
        return lax.dynamic_update_slice_in_dim(t, tcol, o, axis=1)

    return lax.fori_loop(0, n, merge, jnp.zeros((n * w, n * w), vt.dtype))


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
    """Thin QR ``(Q, R)`` of a real ``[m, k]`` matrix: `householder_qr` (with
    ``phases``) when compiled for CPU; `jax.numpy.linalg.qr` on other platforms, for
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
