"""Numerical tests of common.losses against hand-computed numpy values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import LOSSES, euclidean, get_loss, l1, l2, mse, spectral

P = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
T = np.array([[1.0, 0.0, 4.0], [4.0, 9.0, 3.0]], np.float32)
# differences: [[0, 2, -1], [0, -4, 3]]


def test_l1_l2_hand_values():
    assert float(l1(P, T)) == pytest.approx((0 + 2 + 1 + 0 + 4 + 3) / 6)
    assert float(l2(P, T)) == pytest.approx((0 + 4 + 1 + 0 + 16 + 9) / 6)
    assert mse is l2
    assert float(jax.jit(l2)(P, T)) == pytest.approx(5.0)


def test_masks_exclude_entries():
    where = np.array([[True, False, True], [False, False, True]])
    assert float(l1(P, T, where=where)) == pytest.approx((0 + 1 + 3) / 3)
    assert float(l2(P, T, where=where)) == pytest.approx((0 + 1 + 9) / 3)
    # masked entries do not count even when they hold NaN
    bad = P.copy()
    bad[0, 1] = np.nan
    assert float(l2(bad, T, where=where)) == pytest.approx(10 / 3)
    # float weights and broadcasting (a per-column mask)
    col = np.array([1.0, 0.0, 0.5], np.float32)
    expected = (1 * (0 + 0) + 0.5 * (1 + 9)) / (2 * 1.0 + 2 * 0.5)
    assert float(l2(P, T, where=col)) == pytest.approx(expected)
    assert float(l2(P, T, where=np.zeros_like(P))) == 0.0
    with pytest.raises(ValueError, match="where"):
        l1(P, T, where=np.ones((3, 2)))


def test_euclidean_per_frame_rmse():
    # frame 0: sqrt((0+4+1)/3), frame 1: sqrt((0+16+9)/3)
    expected = (np.sqrt(5 / 3) + np.sqrt(25 / 3)) / 2
    assert float(euclidean(P, T)) == pytest.approx(expected, rel=1e-6)
    # 3-D frames [T, H, W]
    d = np.array([[[3.0, 4.0]], [[0.0, 0.0]]], np.float32)  # [2, 1, 2]
    assert float(euclidean(d, np.zeros_like(d))) == pytest.approx((np.sqrt(12.5) + 0) / 2)
    # mask: frame 1 fully masked out does not enter the frame mean
    where = np.array([[True, True, False], [False, False, False]])
    assert float(euclidean(P, T, where=where)) == pytest.approx(np.sqrt(4 / 2))
    # finite gradient at zero error
    g = jax.grad(euclidean)(jnp.asarray(T), jnp.asarray(T))
    assert np.isfinite(np.asarray(g)).all()


def test_spectral_shift_invariant_and_positive_otherwise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 16, 16)).astype(np.float32)
    shifted = np.roll(x, (3, -5), axis=(-2, -1))
    assert float(spectral(x, shifted)) < 1e-10
    assert float(spectral(x, x + 0.1 * rng.normal(size=x.shape).astype(np.float32))) > 1e-4
    assert float(spectral(x, np.zeros_like(x))) > 0.5
    # orthonormal DFT: against zero target, sum |F x|^2 = sum x^2, so spectral = mean x^2
    assert float(spectral(x, np.zeros_like(x))) == pytest.approx(float(np.mean(x**2)), rel=1e-5)
    # hand value on a 1 x 2 image: F [a, b] = [a + b, a - b] / sqrt(2)
    a = np.array([[3.0, 1.0]], np.float32)
    b = np.array([[0.0, 0.0]], np.float32)
    assert float(spectral(a, b)) == pytest.approx(
        ((4 / np.sqrt(2)) ** 2 + (2 / np.sqrt(2)) ** 2) / 2
    )
    g = jax.grad(spectral)(jnp.zeros((4, 4)), jnp.ones((4, 4)))
    assert np.isfinite(np.asarray(g)).all()
    with pytest.raises(ValueError, match="2"):
        spectral(np.ones(3), np.ones(3))


def test_registry_and_shape_checks():
    for name in ("l1", "l2", "mse", "euclidean", "spectral"):
        assert get_loss(name) is LOSSES[name]
    with pytest.raises(ValueError, match="known losses: euclidean, l1"):
        get_loss("huber")
    with pytest.raises(ValueError, match="same shape"):
        l2(P, T[:1])
    with pytest.raises(TypeError, match="prediction"):
        l2([1.0], T)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_no_loss_hides_a_nan(name):
    """A NaN or inf in the prediction makes every loss non-finite, so that the trainer's
    divergence guard sees it (a square root that mapped NaN to 0 once hid diverging fits)."""
    loss = get_loss(name)
    for bad in (np.nan, np.inf):
        p = P.copy()
        p[1, 2] = bad
        assert not np.isfinite(float(loss(p, T))), (name, bad)
    assert np.isfinite(float(loss(P, T)))
