"""Hillen-Painter volume-filling chemotaxis: mass conservation of the face-flux scheme, the
homogeneous steady state, second-order consistency with the continuum operator, the linear
growth rate of a Fourier mode against the dispersion relation, and input checks."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import SolveConfig
from diffdyn.pde import (
    FIXED_MODELS,
    Grid,
    HillenPainter,
    PDESolver,
    SimulateConfig,
    initial_state,
    make_pde,
    perturbed,
    simulate_pde,
)

run = eqx.filter_jit(lambda solver, x0, ts: solver(x0, ts))
rhs = eqx.filter_jit(lambda model, x: model(0.0, x))


def fixed_step(dt: float, solver: str = "rk4", max_steps: int = 4096) -> SolveConfig:
    return SolveConfig(solver=solver, dt0=dt, adaptive=False, max_steps=max_steps)


def test_without_growth_the_cell_mass_is_conserved_to_round_off():
    with jax.enable_x64(True):
        model = HillenPainter(growth=0.0)
        x0 = perturbed(jax.random.key(0), [1.0, 1.0], (20, 24), 0.3)
        # one right-hand side: the face fluxes telescope
        assert abs(float(jnp.sum(rhs(model, x0)[0]))) < 1e-11
        ys = run(PDESolver(model, fixed_step(0.01, "heun")), x0, jnp.linspace(0.0, 2.0, 5))
        mass = np.asarray(jnp.sum(ys[:, 0], axis=(1, 2)))
        np.testing.assert_allclose(mass, mass[0], rtol=1e-13)
        # ... while the cells did move (chemotactic aggregation)
        assert float(jnp.max(jnp.abs(ys[-1, 0] - x0[0]))) > 0.1
        # with growth, the mass changes
        grown = run(PDESolver(HillenPainter(), fixed_step(0.01, "heun")), x0, jnp.array([0.0, 1.0]))
        assert abs(float(jnp.sum(grown[-1, 0])) - mass[0]) > 1e-3 * mass[0]


@pytest.mark.parametrize("boundary", ["periodic", "neumann"])
def test_the_homogeneous_state_is_a_fixed_point(boundary):
    grid = Grid(dx=0.25, boundary=boundary)
    ones = jnp.ones((2, 8, 12))
    np.testing.assert_array_equal(np.asarray(rhs(HillenPainter(grid=grid), ones)), 0.0)
    # without growth, every (ū, ū) is steady
    flat = 0.37 * ones
    np.testing.assert_allclose(
        np.asarray(rhs(HillenPainter(growth=0.0, grid=grid), flat)), 0.0, atol=1e-7
    )


def continuum_rhs(x, y, p):
    """The exact right-hand side for u = 1 + 0.3 sin x cos 2y, v = cos x + 0.5 sin y."""
    du, dv, chi, gamma, r = p
    u = 1 + 0.3 * np.sin(x) * np.cos(2 * y)
    ux, uy = 0.3 * np.cos(x) * np.cos(2 * y), -0.6 * np.sin(x) * np.sin(2 * y)
    lap_u = -1.5 * np.sin(x) * np.cos(2 * y)
    v = np.cos(x) + 0.5 * np.sin(y)
    vx, vy = -np.sin(x), 0.5 * np.cos(y)
    lap_v = -np.cos(x) - 0.5 * np.sin(y)
    f, df = u * (1 - u / gamma), 1 - 2 * u / gamma
    taxis = df * (ux * vx + uy * vy) + f * lap_v
    return np.stack([du * lap_u - chi * taxis + r * u * (1 - u), dv * lap_v + u - v]), (u, v)


def rhs_errors(p, sizes):
    """Mean and max |discrete - continuum| of the cell equation's right-hand side."""
    mean, worst = [], []
    with jax.enable_x64(True):
        for n in sizes:
            dx = 2 * np.pi / n
            y, x = np.meshgrid(np.arange(n) * dx, np.arange(n) * dx, indexing="ij")
            exact, (u, v) = continuum_rhs(x, y, p)
            model = HillenPainter(*p, grid=Grid(dx=dx))
            got = np.asarray(rhs(model, jnp.asarray(np.stack([u, v]))))
            np.testing.assert_allclose(got[1], exact[1], atol=2 * dx**2)  # 5-point Laplacian
            error = np.abs(got[0] - exact[0])
            mean.append(error.mean())
            worst.append(error.max())
    return _orders(mean), _orders(worst), worst


def _orders(errors):
    return np.log2(np.array(errors[:-1]) / np.array(errors[1:]))


def test_the_rhs_converges_to_the_continuum_operator():
    """Second order in the mean; first order at the extrema of u, where the minmod limiter
    flattens the reconstruction; second order everywhere without the (limited) drift."""
    mean, worst, errors = rhs_errors((0.3, 0.7, 2.0, 3.0, 0.4), (16, 32, 64, 128))
    assert np.all(np.diff(mean) > 0) and mean[-1] > 1.75, mean
    assert np.all(np.abs(worst[1:] - 1) < 0.1), worst
    assert errors[-1] < 0.03
    _, worst, errors = rhs_errors((0.3, 0.7, 0.0, 3.0, 0.4), (16, 32, 64))
    assert np.all(np.abs(worst - 2) < 0.05), worst


def discrete_matrix(p, symbol, density):
    """The linearised 2x2 matrix at (ū, ū), written out independently of the model."""
    du, dv, chi, gamma, r = p
    return np.array(
        [
            [-du * symbol + r * (1 - 2 * density), chi * density * (1 - density / gamma) * symbol],
            [1.0, -dv * symbol - 1.0],
        ]
    )


@pytest.mark.parametrize(
    ("growth", "density", "modes"),
    [(0.1, 1.0, (2, 1)), (0.1, 1.0, (8, 4)), (0.0, 0.5, (3, 1))],
)
def test_a_fourier_mode_grows_at_the_rate_of_the_dispersion_relation(growth, density, modes):
    """Small mode cos(k_x x) cos(k_y y) along the leading eigenvector: its amplitude grows at the
    larger eigenvalue of A(K), K = (4/dx²)(sin²(k_x dx/2) + sin²(k_y dx/2)). Seen errors:
    2e-8 .. 2e-7 relative, from the limiter's non-smooth O(ε) nonlinearity and O(1e-16/ε)
    round-off (RK4's error at dt = 0.005 is ~1e-11)."""
    p = (0.1, 1.0, 5.0, 10.0, growth)
    h, w, dx, eps, t = 16, 32, 0.25, 1e-7, 1.0
    kx, ky = 2 * np.pi * modes[0] / (w * dx), 2 * np.pi * modes[1] / (h * dx)
    symbol = 4 / dx**2 * (np.sin(kx * dx / 2) ** 2 + np.sin(ky * dx / 2) ** 2)
    eigenvalues, eigenvectors = np.linalg.eig(discrete_matrix(p, symbol, density))
    lead = int(np.argmax(eigenvalues.real))
    rate, vector = eigenvalues[lead].real, eigenvectors[:, lead].real
    y, x = np.meshgrid(np.arange(h) * dx, np.arange(w) * dx, indexing="ij")
    mode = np.cos(kx * x) * np.cos(ky * y)
    with jax.enable_x64(True):
        model = HillenPainter(*p, grid=Grid(dx=dx))
        np.testing.assert_allclose(float(model.growth_rate(symbol, density)), rate, rtol=1e-12)
        np.testing.assert_allclose(
            np.asarray(model.linearisation(symbol, density)),
            discrete_matrix(p, symbol, density),
            rtol=1e-14,
        )
        x0 = density + eps * vector[:, None, None] * mode
        ys = run(PDESolver(model, fixed_step(0.005)), jnp.asarray(x0), jnp.array([0.0, t]))
    amplitude = np.sum((np.asarray(ys[-1]) - density) * mode, axis=(1, 2)) / np.sum(mode**2)
    measured = np.log(amplitude / (eps * vector)) / t
    np.testing.assert_allclose(measured, rate, rtol=1e-6, atol=1e-8)
    if modes == (2, 1):
        assert rate > 1.0  # an unstable mode: chemotactic aggregation
    if modes == (8, 4):
        assert rate < 0  # short waves are stabilised by diffusion


def test_the_default_is_chemotactically_unstable_at_a_few_cells_wavelength():
    model = HillenPainter()
    symbols = jnp.linspace(0.0, 40.0, 4001)
    rates = np.asarray(model.growth_rate(symbols))
    fastest = float(symbols[int(np.argmax(rates))])
    assert 8.0 < fastest < 10.0 and 2.2 < rates.max() < 2.4
    assert rates[0] < 0  # the kinetics alone (K = 0) are stable


def test_the_registry_and_simulate_run_it():
    assert FIXED_MODELS["hillen-painter"] is HillenPainter
    assert isinstance(make_pde("hillen-painter", grid={"dx": 0.5}), HillenPainter)
    x0 = initial_state(HillenPainter(), jax.random.key(0), 12)
    assert x0.shape == (2, 12, 12) and float(jnp.max(jnp.abs(x0 - 1))) <= 0.01
    cfg = SimulateConfig(
        model="hillen-painter", size=16, t1=20.0, frames=3, solve=fixed_step(0.01, "heun")
    )
    sim = simulate_pde(cfg, jax.random.key(1))
    assert sim.frames.shape == (3, 2, 16, 16) and np.all(np.isfinite(sim.frames))
    assert sim.frames[-1, 0].max() > 1.5  # aggregates formed from 1 % noise


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="capacity"):
        HillenPainter(capacity=0.0)
    with pytest.raises(ValueError, match="diffusion_u"):
        HillenPainter(diffusion_u=-1.0)
    with pytest.raises(TypeError, match="grid"):
        HillenPainter(grid=0.5)
    with pytest.raises(ValueError, match=r"\[2, H, W\]"):
        HillenPainter()(0.0, jnp.ones((1, 8, 8)))
