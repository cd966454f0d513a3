"""The XLA-only Householder QR of rnn.qr: agreement with LAPACK (values, signs, padding,
rank deficiency, graded columns), the platform/size dispatch of qr, and its derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.rnn import householder_qr, qr


def _graded(m, k, seed, spread=3.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, k)) * np.exp(spread * rng.normal(size=k))


@pytest.mark.parametrize(
    "m, k, phases",
    [(5, 5, 4), (7, 3, 4), (100, 37, 4), (130, 130, 1), (130, 130, 3), (300, 70, 2)],
)
def test_matches_lapack(m, k, phases):
    with jax.enable_x64(True):
        a = _graded(m, k, m + k)
        q, r = jax.jit(lambda a: householder_qr(a, phases=phases))(a)
        q, r = np.asarray(q), np.asarray(r)
        q0, r0 = np.linalg.qr(a)
        np.testing.assert_allclose(q @ r, a, atol=1e-14 * np.abs(a).max())
        np.testing.assert_allclose(q.T @ q, np.eye(k), atol=1e-14)
        assert np.all(np.tril(r, -1) == 0)
        # the same reflectors as LAPACK: the same signs and values, to rounding
        np.testing.assert_allclose(r, r0, rtol=1e-12, atol=1e-13 * np.abs(r0).max())
        np.testing.assert_allclose(q, q0, atol=1e-13)


def test_rank_deficient_and_zero_columns():
    with jax.enable_x64(True):
        a = np.random.default_rng(0).normal(size=(90, 50))
        a[:, 7] = 0.0
        a[:, 20] = a[:, 3] - 2 * a[:, 11]
        q, r = householder_qr(a)
        np.testing.assert_allclose(np.asarray(q @ r), a, atol=1e-13)
        np.testing.assert_allclose(np.asarray(q.T @ q), np.eye(50), atol=1e-14)
        assert float(r[7, 7]) == 0.0
        assert abs(float(r[20, 20])) < 1e-13
        # tiny and huge columns: the power-of-two scaling keeps the norms finite and exact
        b = np.random.default_rng(1).normal(size=(70, 65)) * np.logspace(-200, 200, 65)
        q, r = householder_qr(b)
        np.testing.assert_allclose(
            np.abs(np.diag(r)), np.abs(np.diag(np.linalg.qr(b)[1])), rtol=1e-12
        )


def test_dispatch_and_bad_arguments():
    with jax.enable_x64(True):
        small = jnp.asarray(_graded(6, 4, 2))
        big = jnp.asarray(_graded(80, 60, 3))
        for a in (small, big):
            q, r = jax.jit(qr)(a)
            np.testing.assert_allclose(np.asarray(q @ r), a, atol=1e-12 * float(jnp.abs(a).max()))
        # the CPU path is the XLA-only one (no LAPACK custom call) from 4096 entries on
        text = jax.jit(qr).lower(big).as_text()
        assert "lapack" not in text and "geqrf" not in text
        assert "geqrf" in jax.jit(qr).lower(small).as_text()
        with pytest.raises(ValueError, match="tall"):
            householder_qr(jnp.ones((3, 4)))
        with pytest.raises(ValueError, match="'phases'"):
            householder_qr(big, phases=0)


def test_derivatives_match_jax_qr():
    with jax.enable_x64(True):
        a = jnp.asarray(np.random.default_rng(4).normal(size=(80, 60)))

        def loss(qr_fn, a):
            q, r = qr_fn(a)
            return jnp.sum(jnp.log(jnp.abs(jnp.diagonal(r)))) + jnp.sum(q[:, :3] ** 3)

        g = jax.grad(lambda a: loss(householder_qr, a))(a)
        g0 = jax.grad(lambda a: loss(jnp.linalg.qr, a))(a)
        np.testing.assert_allclose(g, g0, rtol=1e-9, atol=1e-12)
        v = jnp.asarray(np.random.default_rng(5).normal(size=a.shape))
        (_, r), (dq, dr) = jax.jvp(qr, (a,), (v,))
        (_, r0), (dq0, dr0) = jax.jvp(jnp.linalg.qr, (a,), (v,))
        np.testing.assert_allclose(dq, dq0, atol=1e-11)
        np.testing.assert_allclose(dr, dr0, atol=1e-11)
