"""Boundary conditions of diffdyn.common: values imposed, paddings, masks, gradients, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffdyn.common as common
from diffdyn.common import num_parameters, trainable_filter

SHAPE = (3, 5, 6)


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def edge_mask(spatial):
    m = np.zeros(spatial, bool)
    m[0], m[-1] = True, True
    if len(spatial) == 2:
        m[:, 0], m[:, -1] = True, True
    return m


def test_abstract_boundary_cannot_be_instantiated():
    with pytest.raises(TypeError):
        common.AbstractBoundary()


def test_periodic_is_identity_with_periodic_padding():
    u = random(SHAPE)
    b = common.Periodic()
    assert b.padding == "periodic"
    np.testing.assert_array_equal(np.asarray(b(jnp.asarray(u))), u)
    np.testing.assert_array_equal(np.asarray(b(jnp.asarray(u[:, 0]))), u[:, 0])


# ------------------------------------------------------------------------------- Dirichlet


def test_dirichlet_scalar_sets_every_edge_cell():
    u = random(SHAPE, 1)
    b = common.Dirichlet(2.5)
    assert b.padding == "replicate"
    out = np.asarray(b(jnp.asarray(u)))
    edge = edge_mask(SHAPE[1:])
    assert np.all(out[:, edge] == 2.5)
    np.testing.assert_array_equal(out[:, ~edge], u[:, ~edge])
    assert out.dtype == np.float32


def test_dirichlet_per_channel_values_and_channel_selection():
    u = random(SHAPE, 2)
    edge = edge_mask(SHAPE[1:])
    out = np.asarray(common.Dirichlet([1.0, -1.0], channels=(0, -1))(jnp.asarray(u)))
    assert np.all(out[0, edge] == 1.0)
    assert np.all(out[2, edge] == -1.0)
    np.testing.assert_array_equal(out[1], u[1])  # unselected channel untouched
    np.testing.assert_array_equal(out[:, ~edge], u[:, ~edge])
    full = np.asarray(common.Dirichlet([1.0, 2.0, 3.0])(jnp.asarray(u)))
    for c in range(3):
        assert np.all(full[c, edge] == c + 1.0)


def test_dirichlet_1d():
    u = random((2, 7), 3)
    out = np.asarray(common.Dirichlet(0.0)(jnp.asarray(u)))
    np.testing.assert_array_equal(out[:, [0, -1]], 0.0)
    np.testing.assert_array_equal(out[:, 1:-1], u[:, 1:-1])


def test_dirichlet_values_are_fixed_and_work_under_jit():
    b = common.Dirichlet([1.0, 2.0], channels=(1, 2))
    assert trainable_filter(b).values is False
    assert num_parameters(b) == 0
    u = jnp.asarray(random(SHAPE, 4))
    np.testing.assert_array_equal(np.asarray(eqx.filter_jit(b)(u)), np.asarray(b(u)))


def test_dirichlet_bad_input():
    with pytest.raises(ValueError, match=r"values must have one entry per selected channel \(1"):
        common.Dirichlet([1.0, 2.0], channels=0)
    with pytest.raises(ValueError, match=r"values must be a scalar or one value per channel"):
        common.Dirichlet(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="values must be a number"):
        common.Dirichlet("hot")
    with pytest.raises(ValueError, match="channels must contain ints"):
        common.Dirichlet(1.0, channels=(0.5,))
    u = jnp.zeros(SHAPE)
    with pytest.raises(ValueError, match=r"channels: index 3 is out of range .* 3 channels"):
        common.Dirichlet(1.0, channels=3)(u)
    with pytest.raises(ValueError, match="channels must not name a channel twice"):
        common.Dirichlet(1.0, channels=(0, -3))(u)
    with pytest.raises(ValueError, match=r"values has 2 entries .* 3 channels"):
        common.Dirichlet([1.0, 2.0])(u)
    with pytest.raises(ValueError, match=r"state must have shape \[C, H, W\].*\(1, 3, 5, 6\)"):
        common.Dirichlet(1.0)(jnp.zeros((1, *SHAPE)))


# --------------------------------------------------------------------------------- Neumann


def test_neumann_zero_normal_difference_on_every_wall():
    u = random(SHAPE, 5)
    b = common.Neumann()
    assert b.padding == "replicate"
    out = np.asarray(b(jnp.asarray(u)))
    np.testing.assert_array_equal(out[:, 0, :], out[:, 1, :])
    np.testing.assert_array_equal(out[:, -1, :], out[:, -2, :])
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 1])
    np.testing.assert_array_equal(out[:, :, -1], out[:, :, -2])
    np.testing.assert_array_equal(out[:, 1:-1, 1:-1], u[:, 1:-1, 1:-1])
    # corners copy the diagonal interior neighbour
    np.testing.assert_array_equal(out[:, 0, 0], u[:, 1, 1])
    np.testing.assert_array_equal(out[:, -1, -1], u[:, -2, -2])
    # one-sided normal differences vanish, so the edge gradient with the padding is zero
    g = np.asarray(common.gradient(jnp.asarray(out), padding=b.padding))
    np.testing.assert_allclose(g[0][:, :, [0, -1]], 0.0, atol=1e-6)
    np.testing.assert_allclose(g[1][:, [0, -1], :], 0.0, atol=1e-6)


def test_neumann_1d():
    u = random((2, 6), 6)
    out = np.asarray(common.Neumann()(jnp.asarray(u)))
    np.testing.assert_array_equal(out[:, 0], u[:, 1])
    np.testing.assert_array_equal(out[:, -1], u[:, -2])
    np.testing.assert_array_equal(out[:, 1:-1], u[:, 1:-1])


def test_neumann_padding_conserves_mass():
    # replicate padding = no flux through the outer faces: the Laplacian sums to zero
    with jax.enable_x64(True):
        u = jnp.asarray(random(SHAPE, 7).astype(np.float64))
        lap = np.asarray(common.laplacian(u, padding=common.Neumann().padding, dx=0.1))
        np.testing.assert_allclose(lap.sum(axis=(1, 2)), 0.0, atol=1e-9)
        assert np.abs(lap).max() > 1.0


def test_neumann_bad_input():
    with pytest.raises(ValueError, match=r"at least 3 cells .* got shape \(1, 2, 5\)"):
        common.Neumann()(jnp.zeros((1, 2, 5)))
    with pytest.raises(TypeError, match="state must be an array"):
        common.Neumann()([[0.0, 1.0, 2.0]])


# ---------------------------------------------------------------------------------- masks


def binary_mask(spatial, seed=8):
    return (np.random.default_rng(seed).random(spatial) > 0.5).astype(np.float32)


def test_fixed_mask_hard_shared_and_per_channel():
    u = random(SHAPE, 9)
    m = binary_mask(SHAPE[1:])
    out = np.asarray(common.FixedMask(m)(jnp.asarray(u)))
    np.testing.assert_array_equal(out, u * m)
    mc = binary_mask(SHAPE, 10)
    np.testing.assert_array_equal(np.asarray(common.FixedMask(mc)(jnp.asarray(u))), u * mc)
    # only selected channels
    out = np.asarray(common.FixedMask(m, channels=(1,))(jnp.asarray(u)))
    np.testing.assert_array_equal(out[1], u[1] * m)
    np.testing.assert_array_equal(out[[0, 2]], u[[0, 2]])


def test_fixed_mask_soft_overwrites_where_mask_is_one():
    u = random(SHAPE, 11)
    m = binary_mask(SHAPE[1:], 12)
    inside = m == 1
    b = common.FixedMask(m, mode="soft", channels=(-1,), values=4.0)
    out = np.asarray(b(jnp.asarray(u)))
    assert np.all(out[2][inside] == 4.0)
    np.testing.assert_array_equal(out[2][~inside], u[2][~inside])
    np.testing.assert_array_equal(out[:2], u[:2])
    # per-channel values, all channels; default values 0
    out = np.asarray(common.FixedMask(m, mode="soft", values=[1.0, 2.0, 3.0])(jnp.asarray(u)))
    for c in range(3):
        assert np.all(out[c][inside] == c + 1.0)
        np.testing.assert_array_equal(out[c][~inside], u[c][~inside])
    out = np.asarray(common.FixedMask(m, mode="soft")(jnp.asarray(u)))
    assert np.all(out[:, inside] == 0.0)
    # a field of values and a fractional mask blend: m v + (1 - m) u
    v = random((2, *SHAPE[1:]), 13)
    frac = np.full(SHAPE[1:], 0.25, np.float32)
    out = np.asarray(common.FixedMask(frac, "soft", channels=(0, 1), values=v)(jnp.asarray(u)))
    np.testing.assert_allclose(out[:2], 0.25 * v + 0.75 * u[:2], rtol=1e-6)
    np.testing.assert_array_equal(out[2], u[2])


def test_fixed_mask_1d_and_fixed_field():
    u = random((2, 6), 14)
    m = np.array([0, 1, 1, 1, 1, 0], np.float32)
    b = common.FixedMask(m)
    np.testing.assert_array_equal(np.asarray(b(jnp.asarray(u))), u * m)
    assert b.padding == "zeros"
    assert trainable_filter(b).mask is False
    assert num_parameters(common.FixedMask(m, "soft", values=[1.0, 2.0])) == 0


def test_fixed_mask_bad_input():
    m = np.ones(SHAPE[1:], np.float32)
    with pytest.raises(ValueError, match=r"mode must be one of \['hard', 'soft'\]; got 'sharp'"):
        common.FixedMask(m, mode="sharp")
    with pytest.raises(ValueError, match="values is only used with mode='soft'"):
        common.FixedMask(m, values=1.0)
    with pytest.raises(ValueError, match=r"mask must have shape .*got shape \(1, 1, 5, 6\)"):
        common.FixedMask(np.ones((1, 1, 5, 6)))
    with pytest.raises(ValueError, match="padding must be one of"):
        common.FixedMask(m, padding="wrap")
    u = jnp.zeros(SHAPE)
    with pytest.raises(ValueError, match=r"mask must have shape \[5, 6\] or \[1, 5, 6\]"):
        common.FixedMask(np.ones((4, 4)), channels=0)(u)
    with pytest.raises(ValueError, match=r"mask must have shape \[5, 6\] or \[3, 5, 6\]"):
        common.FixedMask(np.ones((2, 5, 6)))(u)
    with pytest.raises(ValueError, match=r"values must be a scalar, one value per selected"):
        common.FixedMask(m, "soft", values=[1.0, 2.0])(u)


def test_trainable_mask_multiplies_and_has_gradients():
    u = random(SHAPE, 15)
    logits = random(SHAPE[1:], 16)
    b = common.TrainableMask(logits)
    sig = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(np.asarray(b(jnp.asarray(u))), u * sig, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(b.coverage()), sig.sum(), rtol=1e-5)
    assert trainable_filter(b).logits is True
    assert num_parameters(b) == logits.size

    w = random(SHAPE, 17)

    def loss(model):
        return jnp.sum(jnp.asarray(w) * model(jnp.asarray(u)))

    grads = eqx.filter_grad(loss)(b)
    # d/dlogits Σ w m u = Σ_c w_c u_c σ (1 - σ)
    expected = (w * u).sum(0) * sig * (1 - sig)
    np.testing.assert_allclose(np.asarray(grads.logits), expected, rtol=1e-4, atol=1e-6)
    # per-channel logits restricted to chosen channels
    b2 = common.TrainableMask(np.zeros((2, *SHAPE[1:])), channels=(0, 2))
    out = np.asarray(b2(jnp.asarray(u)))
    np.testing.assert_allclose(out[[0, 2]], 0.5 * u[[0, 2]], rtol=1e-6)
    np.testing.assert_array_equal(out[1], u[1])


def test_trainable_mask_bad_input():
    with pytest.raises(ValueError, match=r"logits must have shape"):
        common.TrainableMask(np.zeros((1, 1, 5, 6)))
    with pytest.raises(ValueError, match=r"logits must have shape \[5, 6\] or \[3, 5, 6\]"):
        common.TrainableMask(np.zeros((4, 4)))(jnp.zeros(SHAPE))


# ---------------------------------------------------------------------------- make_boundary


def test_make_boundary():
    assert isinstance(common.make_boundary("periodic"), common.Periodic)
    assert isinstance(common.make_boundary("Neumann"), common.Neumann)
    d = common.make_boundary("dirichlet", values=2.0, channels=[0])
    assert isinstance(d, common.Dirichlet) and d.channels == (0,)
    assert float(d.values) == 2.0
    with pytest.raises(ValueError, match=r"name must be one of \['periodic', 'dirichlet', 'neu"):
        common.make_boundary("robin")
    with pytest.raises(ValueError, match="bad keyword arguments"):
        common.make_boundary("neumann", values=1.0)


def test_fixed_arrays_stay_fixed_under_a_plain_optax_loop_over_every_leaf():
    """Stencils, masks and boundary values get an exactly zero gradient, so even a loop that
    trains every floating leaf (``eqx.filter(model, eqx.is_inexact_array)``) leaves them."""
    import optax

    class Net(eqx.Module):
        perception: common.Perception
        mask: common.FixedMask
        wall: common.Dirichlet
        w: jax.Array

        def __call__(self, x):
            y = self.perception(self.mask(self.wall(x)))
            return jnp.mean((self.w * y - 1.0) ** 2)

    mask = jnp.ones((6, 6)).at[2:4, 2:4].set(0.0)
    net = Net(
        common.Perception(1, padding="zeros"),
        common.FixedMask(mask, mode="soft", values=0.5),
        common.Dirichlet(0.25),
        jnp.asarray(0.3),
    )
    x = jax.random.normal(jax.random.key(0), (1, 6, 6))
    params = eqx.filter(net, eqx.is_inexact_array)
    opt = optax.adam(0.1)
    state = opt.init(params)
    for _ in range(3):
        grads = eqx.filter_grad(lambda m: m(x))(net)
        updates, state = opt.update(eqx.filter(grads, eqx.is_inexact_array), state)
        net = eqx.apply_updates(net, updates)
    np.testing.assert_array_equal(net.mask.mask, mask)
    assert float(net.mask.values) == 0.5 and float(net.wall.values) == 0.25
    fresh = common.Perception(1, padding="zeros")
    np.testing.assert_array_equal(net.perception.kernel, fresh.kernel)
    assert float(net.w) != 0.3  # the trainable leaf did move
