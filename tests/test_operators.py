"""Spatial operators of diffdyn.common: stencils against closed forms and numpy references."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import diffdyn.common as common
from diffdyn.common import num_parameters, trainable_filter

NUMPY_MODE = {"periodic": "wrap", "zeros": "constant", "reflect": "reflect", "replicate": "edge"}
SCIPY_MODE = {"periodic": "wrap", "zeros": "constant", "reflect": "mirror", "replicate": "nearest"}
MODES = list(NUMPY_MODE)
SHAPE = (2, 6, 7)  # one shape for most tests, so compiled kernels are reused across tests

LAP5 = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
LAP9 = np.array([[1.0, 4.0, 1.0], [4.0, -20.0, 4.0], [1.0, 4.0, 1.0]]) / 6
GRAD_X = np.array([[0.0, 0.0, 0.0], [-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]])
SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8


def correlate3x3(u: np.ndarray, kernel: np.ndarray, mode: str) -> np.ndarray:
    """Reference: pad with numpy, then the plain 3x3 cross-correlation sum."""
    p = np.pad(u, ((0, 0), (1, 1), (1, 1)), mode=NUMPY_MODE[mode])
    h, w = u.shape[1:]
    return sum(kernel[a, b] * p[:, a : a + h, b : b + w] for a in range(3) for b in range(3))


def grid(h: int, w: int, dx: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell coordinates: y along rows (axis -2), x along columns (axis -1)."""
    y, x = np.meshgrid(np.arange(h) * dx, np.arange(w) * dx, indexing="ij")
    return x, y


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------------------------ padding


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("width", [1, 2, 7])
def test_pad_matches_numpy(mode, width):
    u2 = random((2, 5, 6))
    u1 = random((3, 5))
    got2 = common.pad(jnp.asarray(u2, jnp.float32), width, mode)
    want2 = np.pad(u2, ((0, 0), (width, width), (width, width)), mode=NUMPY_MODE[mode])
    np.testing.assert_allclose(got2, want2, rtol=1e-6, atol=1e-6)
    got1 = common.pad(jnp.asarray(u1, jnp.float32), width, mode)
    want1 = np.pad(u1, ((0, 0), (width, width)), mode=NUMPY_MODE[mode])
    np.testing.assert_allclose(got1, want1, rtol=1e-6, atol=1e-6)


def test_pad_reflect_excludes_edge_and_replicate_repeats_it():
    u = jnp.arange(1.0, 5.0)[None]  # [[1, 2, 3, 4]]
    np.testing.assert_array_equal(common.pad(u, 2, "reflect"), [[3, 2, 1, 2, 3, 4, 3, 2]])
    np.testing.assert_array_equal(common.pad(u, 2, "replicate"), [[1, 1, 1, 2, 3, 4, 4, 4]])
    np.testing.assert_array_equal(common.pad(u, 2, "periodic"), [[3, 4, 1, 2, 3, 4, 1, 2]])
    np.testing.assert_array_equal(common.pad(u, 2, "zeros"), [[0, 0, 1, 2, 3, 4, 0, 0]])


def test_pad_bad_input():
    u = jnp.zeros((1, 4, 4))
    with pytest.raises(ValueError, match=r"mode must be one of \['periodic', 'zeros'"):
        common.pad(u, 1, "circular")
    with pytest.raises(ValueError, match="width"):
        common.pad(u, -1, "zeros")
    with pytest.raises(ValueError, match="width"):
        common.pad(u, 1.5, "zeros")
    with pytest.raises(ValueError, match=r"x must have shape .*got shape \(2, 1, 4, 4\)"):
        common.pad(jnp.zeros((2, 1, 4, 4)), 1, "zeros")


# ------------------------------------------------------------------ stencils vs numpy reference


@pytest.mark.parametrize("mode", MODES)
def test_stencils_match_numpy_correlation(mode):
    with jax.enable_x64(True):
        u = random(SHAPE, seed=1)
        x = jnp.asarray(u)
        dx = 0.3
        cases = [
            (common.gradient_x(x, dx=dx, padding=mode), GRAD_X / dx),
            (common.gradient_y(x, dx=dx, padding=mode), GRAD_X.T / dx),
            (common.laplacian(x, dx=dx, padding=mode), LAP5 / dx**2),
            (common.laplacian(x, dx=dx, padding=mode, stencil="9-point"), LAP9 / dx**2),
        ]
        for got, kernel in cases:
            np.testing.assert_allclose(got, correlate3x3(u, kernel, mode), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_1d_stencils_match_numpy(mode):
    with jax.enable_x64(True):
        u = random((3, 9), seed=2)
        p = np.pad(u, ((0, 0), (1, 1)), mode=NUMPY_MODE[mode])
        dx = 0.5
        got_g = common.gradient_x(jnp.asarray(u), dx=dx, padding=mode)
        got_l = common.laplacian(jnp.asarray(u), dx=dx, padding=mode)
        np.testing.assert_allclose(got_g, (p[:, 2:] - p[:, :-2]) / (2 * dx), atol=1e-12)
        np.testing.assert_allclose(
            got_l, (p[:, 2:] - 2 * p[:, 1:-1] + p[:, :-2]) / dx**2, atol=1e-12
        )
        g = common.gradient(jnp.asarray(u), dx=dx, padding=mode)
        assert g.shape == (1, 3, 9)
        np.testing.assert_allclose(np.asarray(g)[0], got_g, atol=0)


# -------------------------------------------------------------------- exactness on polynomials


@pytest.mark.parametrize("mode", MODES)
def test_exact_on_linear_and_quadratic_fields_2d(mode):
    with jax.enable_x64(True):
        dx = 0.1
        x, y = grid(*SHAPE[1:], dx)
        # channel 0 linear, channel 1 quadratic
        u = jnp.asarray(np.stack([2.0 * x - 3.0 * y + 1.0, x**2 + 3.0 * x * y - 2.0 * y**2 + x]))
        inner = (slice(1, -1), slice(1, -1))
        g = np.asarray(common.gradient(u, dx=dx, padding=mode))
        assert g.shape == (2, *SHAPE)
        np.testing.assert_allclose(g[0, 0][inner], 2.0, atol=1e-10)
        np.testing.assert_allclose(g[1, 0][inner], -3.0, atol=1e-10)
        np.testing.assert_allclose(g[0, 1][inner], (2 * x + 3 * y + 1)[inner], atol=1e-10)
        np.testing.assert_allclose(g[1, 1][inner], (3 * x - 4 * y)[inner], atol=1e-10)
        np.testing.assert_allclose(np.asarray(common.gradient_x(u, dx=dx, padding=mode)), g[0])
        np.testing.assert_allclose(np.asarray(common.gradient_y(u, dx=dx, padding=mode)), g[1])
        for stencil in ("5-point", "9-point"):
            lap = np.asarray(common.laplacian(u, dx=dx, padding=mode, stencil=stencil))
            np.testing.assert_allclose(lap[0][inner], 0.0, atol=1e-9)
            np.testing.assert_allclose(lap[1][inner], 2.0 - 4.0, atol=1e-9)
        # the literature's check: grad_x of the column index is exactly 1, grad_y is 0
        cols = jnp.asarray(np.broadcast_to(np.arange(SHAPE[2], dtype=float), SHAPE))
        np.testing.assert_allclose(
            np.asarray(common.gradient_x(cols, padding=mode))[:, :, 1:-1], 1.0
        )
        np.testing.assert_allclose(np.asarray(common.gradient_y(cols, padding=mode))[:, 1:-1], 0.0)


def test_exact_on_linear_and_quadratic_fields_1d():
    with jax.enable_x64(True):
        dx = 0.25
        s = np.arange(10) * dx
        u = jnp.asarray(np.stack([3.0 * s - 1.0, 0.5 * s**2 - s]))
        g = common.gradient_x(u, dx=dx, padding="zeros")
        lap = common.laplacian(u, dx=dx, padding="zeros")
        np.testing.assert_allclose(g[0, 1:-1], 3.0, atol=1e-12)
        np.testing.assert_allclose(g[1, 1:-1], s[1:-1] - 1.0, atol=1e-12)
        np.testing.assert_allclose(lap[0, 1:-1], 0.0, atol=1e-10)
        np.testing.assert_allclose(lap[1, 1:-1], 1.0, atol=1e-10)


def test_replicate_and_reflect_edges_on_linear_field():
    # replicate: one-sided half difference at the edge; reflect: even extension gives 0.
    u = jnp.asarray(np.arange(6.0)[None])
    np.testing.assert_allclose(common.gradient_x(u, padding="replicate")[0, [0, -1]], [0.5, 0.5])
    np.testing.assert_allclose(common.gradient_x(u, padding="reflect")[0, [0, -1]], [0.0, 0.0])


# ------------------------------------------------------------------------- Fourier closed forms


def test_fourier_modes_have_discrete_eigenvalues():
    # On a periodic grid: D_x e^{ikx} = i sin(k dx)/dx e^{ikx};
    # 5-point Δ e^{i(kx+ly)} = -(4/dx²)(sin²(k dx/2) + sin²(l dx/2)) e^{i(kx+ly)}.
    with jax.enable_x64(True):
        (_, h, w), dx = SHAPE, 0.2
        x, y = grid(h, w, dx)
        k, l_ = 2 * np.pi * 2 / (w * dx), 2 * np.pi * 1 / (h * dx)
        u = np.sin(k * x) * np.cos(l_ * y)
        field = jnp.asarray(np.stack([u, -u]))
        g = np.asarray(common.gradient(field, dx=dx))
        lap = np.asarray(common.laplacian(field, dx=dx))
        gx = np.sin(k * dx) / dx * np.cos(k * x) * np.cos(l_ * y)
        gy = -np.sin(l_ * dx) / dx * np.sin(k * x) * np.sin(l_ * y)
        eig = -4 / dx**2 * (np.sin(k * dx / 2) ** 2 + np.sin(l_ * dx / 2) ** 2)
        np.testing.assert_allclose(g[0], np.stack([gx, -gx]), atol=1e-12)
        np.testing.assert_allclose(g[1], np.stack([gy, -gy]), atol=1e-12)
        np.testing.assert_allclose(lap, eig * np.stack([u, -u]), atol=1e-11)


@pytest.mark.parametrize("stencil", ["5-point", "9-point"])
def test_laplacian_second_order_convergence(stencil):
    with jax.enable_x64(True):
        errors = []
        for n in (16, 32, 64):
            dx = 1.0 / n
            x, y = grid(n, n, dx)
            u = np.sin(2 * np.pi * x) * np.cos(4 * np.pi * y)
            exact = -(4 + 16) * np.pi**2 * u
            lap = common.laplacian(jnp.asarray(u[None]), dx=dx, stencil=stencil)
            errors.append(np.max(np.abs(np.asarray(lap[0]) - exact)))
        orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
        np.testing.assert_allclose(orders, 2.0, atol=0.1)


def test_gradient_second_order_convergence_1d():
    with jax.enable_x64(True):
        errors = []
        for n in (16, 32, 64):
            dx = 1.0 / n
            s = np.arange(n) * dx
            g = common.gradient_x(jnp.asarray(np.sin(2 * np.pi * s)[None]), dx=dx)
            errors.append(np.max(np.abs(np.asarray(g[0]) - 2 * np.pi * np.cos(2 * np.pi * s))))
        orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
        np.testing.assert_allclose(orders, 2.0, atol=0.1)


# ------------------------------------------------------------------------ vector-calculus laws


def test_gradient_divergence_adjoint_periodic():
    with jax.enable_x64(True):
        u = jnp.asarray(random(SHAPE, seed=3))
        vx = jnp.asarray(random(SHAPE, seed=4))
        vy = jnp.asarray(random(SHAPE, seed=5))
        dx = 0.7
        g = common.gradient(u, dx=dx)
        lhs = jnp.sum(g[0] * vx + g[1] * vy)
        rhs = -jnp.sum(u * common.divergence(vx, vy, dx=dx))
        np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)
        assert abs(float(lhs)) > 1.0  # not trivially zero


def test_curl_of_gradient_and_divergence_of_rotated_gradient_vanish():
    with jax.enable_x64(True):
        u = jnp.asarray(random(SHAPE, seed=6))
        gx, gy = np.asarray(common.gradient(u, dx=0.3))
        np.testing.assert_allclose(np.asarray(common.curl(gx, gy, dx=0.3)), 0.0, atol=1e-12)
        np.testing.assert_allclose(np.asarray(common.divergence(-gy, gx, dx=0.3)), 0.0, atol=1e-12)
        # and the curl sees rotation: v = (-y, x) has curl 2 in the interior
        x, y = grid(*SHAPE[1:], 0.5)
        vx, vy = jnp.asarray(np.stack([-y, -y])), jnp.asarray(np.stack([x, x]))
        c = np.asarray(common.curl(vx, vy, dx=0.5, padding="zeros"))
        np.testing.assert_allclose(c[:, 1:-1, 1:-1], 2.0, atol=1e-12)


def test_gradient_norm_and_its_derivative_at_zero():
    with jax.enable_x64(True):
        u = jnp.asarray(random(SHAPE, seed=7))
        gx, gy = np.asarray(common.gradient(u, padding="reflect"))
        np.testing.assert_allclose(
            common.gradient_norm(u, padding="reflect"), np.sqrt(gx**2 + gy**2), atol=1e-12
        )
        u1 = jnp.asarray(random((2, 7), seed=8))
        np.testing.assert_allclose(
            common.gradient_norm(u1), np.abs(common.gradient_x(u1)), atol=1e-12
        )
    grad = jax.jit(jax.grad(lambda v: jnp.sum(common.gradient_norm(v))))(jnp.zeros(SHAPE))
    assert bool(jnp.all(jnp.isfinite(grad)))


# ------------------------------------------------------------------------------- averaging


@pytest.mark.parametrize("mode", MODES)
def test_gaussian_average_matches_scipy(mode):
    sigma = 1.3  # radius int(4 * 1.3 + 0.5) = 5, nearly the 6-row axis: a stiff padding test
    with jax.enable_x64(True):
        u = random(SHAPE, seed=9)
        got = common.gaussian_average(jnp.asarray(u), sigma, padding=mode)
        want = ndimage.gaussian_filter(u, sigma=(0, sigma, sigma), mode=SCIPY_MODE[mode])
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        u1 = random((2, 15), seed=10)
        got1 = common.gaussian_average(jnp.asarray(u1), sigma, padding=mode)
        want1 = ndimage.gaussian_filter(u1, sigma=(0, sigma), mode=SCIPY_MODE[mode])
        np.testing.assert_allclose(got1, want1, rtol=1e-10, atol=1e-12)


def test_gaussian_average_3x3_literature_kernel():
    delta = np.zeros(SHAPE, np.float32)
    delta[0, 2, 2] = 1.0
    k = np.asarray(common.gaussian_average(jnp.asarray(delta), 0.5, truncate=2.0))[0, 1:4, 1:4]
    np.testing.assert_allclose(k[1, 1], 0.6193, atol=1e-4)
    np.testing.assert_allclose(k[0, 1], 0.0838, atol=1e-4)
    np.testing.assert_allclose(k[0, 0], 0.0113, atol=1e-4)
    np.testing.assert_allclose(np.sum(k), 1.0, rtol=1e-6)


# ---------------------------------------------------------------------------- dtype and jit


def test_float32_default_and_jit_agrees_with_eager():
    u = jnp.asarray(random(SHAPE, seed=11), jnp.float32)
    f = functools.partial(common.laplacian, padding="reflect", stencil="9-point")
    eager = f(u)
    assert eager.dtype == jnp.float32
    np.testing.assert_allclose(jax.jit(f)(u), eager, rtol=1e-5, atol=1e-5)
    assert common.gradient(u, padding="reflect").dtype == jnp.float32


# ------------------------------------------------------------------------------- bad inputs


def test_operator_bad_inputs():
    u = jnp.zeros((2, 4, 4))
    with pytest.raises(ValueError, match=r"padding must be one of .*'replicate'.*got 'wrap'"):
        common.laplacian(u, padding="wrap")
    with pytest.raises(ValueError, match=r"x must have shape .*\(3, 2, 4, 4\).*vmap"):
        common.gradient_x(jnp.zeros((3, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"x must have shape \[C, H, W\].*got shape \(2, 4\)"):
        common.gradient_y(jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"vx and vy must have the same shape"):
        common.divergence(u, jnp.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match=r"vy must have shape"):
        common.curl(u, jnp.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"stencil must be one of \['5-point', '9-point'\]"):
        common.laplacian(u, stencil="7-point")
    with pytest.raises(ValueError, match=r"stencil must be '5-point'.*1-D"):
        common.laplacian(jnp.zeros((2, 4)), stencil="9-point")
    with pytest.raises(ValueError, match=r"dx must be a positive number; got 0"):
        common.gradient(u, dx=0.0)
    with pytest.raises(ValueError, match="sigma"):
        common.gaussian_average(u, -1.0)
    with pytest.raises(ValueError, match="sigma"):
        common.gaussian_average(u, jnp.asarray(1.0))
    with pytest.raises(TypeError, match="x must be an array"):
        common.laplacian([[1.0, 2.0]])


# ------------------------------------------------------------------------------- perception


ALL_LINEAR = ("identity", "grad_x", "grad_y", "sobel_x", "sobel_y", "laplacian", "average")


@pytest.mark.parametrize("mode", MODES)
def test_perception_equals_operators_channel_by_channel(mode):
    with jax.enable_x64(True):
        (c, h, w), dx = SHAPE, 0.5
        u = random(SHAPE, seed=12)
        x = jnp.asarray(u)
        filters = ("grad_norm", *ALL_LINEAR)
        p = common.Perception(c, filters, padding=mode, dx=dx)
        y = np.asarray(p(x))
        assert y.shape == (len(filters) * c, h, w) == (p.out_channels, h, w)
        expected = {
            "identity": u,
            "grad_x": common.gradient_x(x, dx=dx, padding=mode),
            "grad_y": common.gradient_y(x, dx=dx, padding=mode),
            "sobel_x": correlate3x3(u, SOBEL_X / dx, mode),
            "sobel_y": correlate3x3(u, SOBEL_X.T / dx, mode),
            "laplacian": common.laplacian(x, dx=dx, padding=mode, stencil="9-point"),
            "average": common.gaussian_average(x, 0.5, truncate=2.0, padding=mode),
            "grad_norm": common.gradient_norm(x, dx=dx, padding=mode),
        }
        # documented order: output channel k*C + c is filters[k] applied to channel c
        for k, name in enumerate(filters):
            for ch in range(c):
                np.testing.assert_allclose(
                    y[k * c + ch], expected[name][ch], rtol=1e-12, atol=1e-12, err_msg=name
                )


def test_perception_order_follows_filters_and_5_point_option():
    u = jnp.asarray(random(SHAPE, seed=13), jnp.float32)
    a = common.Perception(2, ("laplacian", "identity"), laplacian_stencil="5-point")
    b = common.Perception(2, ("identity", "laplacian"), laplacian_stencil="5-point")
    ya, yb = np.asarray(a(u)), np.asarray(b(u))
    np.testing.assert_allclose(ya[:2], np.asarray(common.laplacian(u)), atol=1e-5)
    np.testing.assert_allclose(ya[2:], np.asarray(u), atol=0)
    np.testing.assert_allclose(yb, np.concatenate([ya[2:], ya[:2]]), atol=0)


def test_sobel_is_exact_derivative_of_linear_field():
    x, y = grid(*SHAPE[1:], 1.0)
    u = jnp.asarray(np.stack([1.5 * x - 0.5 * y, y]), jnp.float32)
    out = np.asarray(common.Perception(2, ("sobel_x", "sobel_y"), padding="zeros")(u))
    means = out[:, 1:-1, 1:-1].reshape(4, -1).mean(1)
    np.testing.assert_allclose(means, [1.5, 0.0, -0.5, 1.0], atol=1e-5)  # filter-major order
    np.testing.assert_allclose(out[0, 1:-1, 1:-1], 1.5, atol=1e-5)
    np.testing.assert_allclose(out[2, 1:-1, 1:-1], -0.5, atol=1e-5)


def test_perception_kernel_is_fixed_and_grouped():
    p = common.Perception(2, ("identity", "grad_norm", "laplacian"))
    # grad_norm adds hidden grad_x / grad_y kernels: 4 linear filters per channel
    assert p.kernel.shape == (2 * 4, 1, 3, 3)
    assert p.conv_filters == ("identity", "laplacian", "grad_x", "grad_y")
    np.testing.assert_allclose(p.kernel[4 * 1 + 1, 0], LAP9)  # channel 1, filter 'laplacian'
    assert trainable_filter(p).kernel is False
    assert num_parameters(p) == 0

    class Net(eqx.Module):
        perception: common.Perception
        weight: jax.Array

    net = Net(p, jnp.ones((3, 6)))
    params, _ = eqx.partition(net, trainable_filter(net))
    assert params.perception.kernel is None
    assert num_parameters(net) == 18

    grad = jax.grad(lambda v: jnp.sum(eqx.filter_jit(p)(v) ** 2))(jnp.zeros(SHAPE))
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_perception_bad_inputs():
    with pytest.raises(ValueError, match=r"filters: unknown filter 'sobel'.*'sobel_x'"):
        common.Perception(2, ("identity", "sobel"))
    with pytest.raises(ValueError, match="filters must be a sequence"):
        common.Perception(2, "identity")
    with pytest.raises(ValueError, match="filters must not repeat"):
        common.Perception(2, ("identity", "identity"))
    with pytest.raises(ValueError, match="channels must be a positive int"):
        common.Perception(0)
    with pytest.raises(ValueError, match="padding must be one of"):
        common.Perception(2, padding="circular")
    with pytest.raises(ValueError, match="laplacian_stencil"):
        common.Perception(2, laplacian_stencil="3-point")
    p = common.Perception(2)
    with pytest.raises(ValueError, match=r"x must have 2 channels.*got shape \(3, 4, 4\)"):
        p(jnp.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match=r"x must have shape \[C, H, W\]"):
        p(jnp.zeros((2, 4)))


@pytest.mark.parametrize("padding", ["periodic", "zeros", "reflect", "replicate"])
def test_perception_shift_and_conv_implementations_agree(padding):
    filters = ("identity", "sobel_x", "sobel_y", "laplacian", "average", "grad_norm")
    x = jax.random.normal(jax.random.key(5), (3, 9, 11))
    conv = common.Perception(3, filters, padding=padding, impl="conv")
    shift = common.Perception(3, filters, padding=padding, impl="shift")
    np.testing.assert_allclose(shift(x), conv(x), rtol=1e-5, atol=1e-5)
    auto = common.Perception(3, filters, padding=padding)
    np.testing.assert_allclose(auto(x), conv(x), rtol=1e-5, atol=1e-5)
    # channels last: the same features, feature k*C + c on the last axis
    last = jnp.transpose(x, (1, 2, 0))
    for p in (conv, shift):
        np.testing.assert_allclose(
            jnp.transpose(p.channels_last(last), (2, 0, 1)), conv(x), rtol=1e-5, atol=1e-5
        )
    with pytest.raises(ValueError, match="channels last"):
        shift.channels_last(x)
    with pytest.raises(ValueError, match="impl"):
        common.Perception(3, filters, impl="fft")
