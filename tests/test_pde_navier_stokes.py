"""2-D incompressible Navier-Stokes (vorticity form, pseudo-spectral): Taylor-Green decay,
the advection term and Kolmogorov flow against closed forms, the Poisson solve and the velocity,
energy and enstrophy conservation without viscosity, the viscous energy budget, input checks."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import SolveConfig, SplitGrid
from diffdyn.pde import (
    FIXED_MODELS,
    Grid,
    NavierStokes,
    PDESolver,
    SimulateConfig,
    initial_state,
    make_pde,
    simulate_pde,
    smooth_random_field,
)

run = eqx.filter_jit(lambda solver, x0, ts: solver(x0, ts))
rhs = eqx.filter_jit(lambda model, x: model(0.0, x))
velocity = eqx.filter_jit(lambda model, x: model.velocity(x))


def coordinates(h, w, dx):
    """``(x, y)`` at the cell centres, each ``[H, W]`` (x = columns, y = rows)."""
    y, x = np.meshgrid(np.arange(h) * dx, np.arange(w) * dx, indexing="ij")
    return x, y


def band_limited(seed, h, w, modes):
    """A random real field made of the Fourier modes with |m_x|, |m_y| <= ``modes``."""
    rng = np.random.default_rng(seed)
    my = np.fft.fftfreq(h, 1.0 / h)[:, None]
    mx = np.fft.fftfreq(w, 1.0 / w)[None, :]
    noise = np.fft.fft2(rng.standard_normal((h, w)))
    keep = (np.abs(my) <= modes) & (np.abs(mx) <= modes) & ((my != 0) | (mx != 0))
    return np.fft.ifft2(noise * keep).real[None]


def spectral_derivatives(f, dx):
    """``(∂x f, ∂y f)`` of a periodic ``[H, W]`` field by numpy FFTs (Nyquist modes dropped)."""
    h, w = f.shape
    ky = 2 * np.pi * np.fft.fftfreq(h, dx)[:, None] * (np.arange(h)[:, None] * 2 != h)
    kx = 2 * np.pi * np.fft.fftfreq(w, dx)[None, :] * (np.arange(w)[None, :] * 2 != w)
    g = np.fft.fft2(f)
    return np.fft.ifft2(1j * kx * g).real, np.fft.ifft2(1j * ky * g).real


@pytest.mark.parametrize(("h", "w", "a", "b"), [(32, 32, 2, 2), (16, 32, 3, 2)])
def test_taylor_green_vortex_decays_at_exactly_nu_k_squared(h, w, a, b):
    """ω = cos(a x) cos(b y) is a steady Euler flow (ω ∝ ψ): it decays as e^{-ν(a²+b²)t};
    a = b = k is the Taylor-Green vortex 2k cos(kx) cos(ky) e^{-2νk²t} (up to its amplitude).
    The grid is [0, 2π) along x and [0, 2π h/w) along y."""
    nu, t1 = 0.05, 1.0
    dx = 2 * np.pi / w
    x, y = coordinates(h, w, dx)
    omega0 = (2 * a * np.cos(a * x) * np.cos(b * y))[None]
    with jax.enable_x64(True):
        model = NavierStokes(viscosity=nu, grid=Grid(dx=dx))
        np.testing.assert_allclose(np.asarray(model.advection(jnp.asarray(omega0))), 0, atol=1e-12)
        solve = SolveConfig(solver="rk4", dt0=0.01, adaptive=False, max_steps=200)
        ys = run(PDESolver(model, solve), jnp.asarray(omega0), jnp.array([0.0, 0.5, t1]))
    for t, y_t in zip((0.0, 0.5, t1), np.asarray(ys), strict=True):
        exact = omega0 * np.exp(-nu * (a**2 + b**2) * t)
        np.testing.assert_allclose(y_t, exact, rtol=0, atol=1e-9 * np.abs(omega0).max())
    # the decay really happened (a 1e-6 relative test of the rate)
    rate = -np.log(np.abs(ys[-1]).max() / np.abs(omega0).max()) / t1
    np.testing.assert_allclose(rate, nu * (a**2 + b**2), rtol=1e-6)


def test_the_advection_term_and_velocity_match_a_closed_form():
    """ψ = sin x + sin 2y: ω = sin x + 4 sin 2y, u = (2 cos 2y, -cos x) and
    u·∇ω = 2 cos 2y cos x - cos x · 8 cos 2y = -6 cos x cos 2y."""
    n = 32
    dx = 2 * np.pi / n
    x, y = coordinates(n, n, dx)
    with jax.enable_x64(True):
        omega = jnp.asarray((np.sin(x) + 4 * np.sin(2 * y))[None])
        model = NavierStokes(viscosity=0.0, grid=Grid(dx=dx))
        np.testing.assert_allclose(
            np.asarray(model.streamfunction(omega))[0], np.sin(x) + np.sin(2 * y), atol=1e-13
        )
        u, v = velocity(model, omega)
        np.testing.assert_allclose(np.asarray(u)[0], 2 * np.cos(2 * y), atol=1e-13)
        np.testing.assert_allclose(np.asarray(v)[0], -np.cos(x), atol=1e-13)
        advection = -6 * np.cos(x) * np.cos(2 * y)
        np.testing.assert_allclose(np.asarray(model.advection(omega))[0], advection, atol=1e-12)
        np.testing.assert_allclose(np.asarray(rhs(model, omega))[0], -advection, atol=1e-12)
        # viscosity and drag add ν Δω - α ω = -ν (sin x + 16 sin 2y) - α ω
        damped = NavierStokes(viscosity=0.1, drag=0.3, grid=Grid(dx=dx))
        expected = -advection - 0.1 * (np.sin(x) + 16 * np.sin(2 * y)) - 0.3 * np.asarray(omega)[0]
        np.testing.assert_allclose(np.asarray(rhs(damped, omega))[0], expected, atol=1e-12)


def test_laminar_kolmogorov_flow_is_a_fixed_point():
    """f = F sin(nκy) x̂ balances viscosity and drag in ω = -F nκ cos(nκy) / (ν (nκ)² + α)."""
    h, w, dx = 24, 16, 0.3
    forcing, n, nu, drag = 1.5, 2, 0.05, 0.1
    kappa = 2 * np.pi / (h * dx)
    _, y = coordinates(h, w, dx)
    with jax.enable_x64(True):
        model = NavierStokes(nu, forcing, n, drag, grid=Grid(dx=dx))
        zero = jnp.zeros((1, h, w))
        force = -forcing * n * kappa * np.cos(n * kappa * y)
        np.testing.assert_allclose(np.asarray(rhs(model, zero))[0], force, atol=1e-12)
        laminar = force / (nu * (n * kappa) ** 2 + drag)
        np.testing.assert_allclose(
            np.asarray(rhs(model, jnp.asarray(laminar[None]))), 0, atol=1e-12
        )
        # the velocity of that flow is along x: u = F sin(nκy) / (ν (nκ)² + α)
        u, v = velocity(model, jnp.asarray(laminar[None]))
        expected = forcing * np.sin(n * kappa * y) / (nu * (n * kappa) ** 2 + drag)
        np.testing.assert_allclose(np.asarray(u)[0], expected, atol=1e-12)
        np.testing.assert_allclose(np.asarray(v), 0, atol=1e-12)


def test_the_velocity_is_divergence_free_and_its_curl_is_the_vorticity():
    h, w, dx = 24, 32, 0.2
    omega = band_limited(0, h, w, 6)
    with jax.enable_x64(True):
        model = NavierStokes(grid=Grid(dx=dx))
        u, v = (np.asarray(c)[0] for c in velocity(model, jnp.asarray(omega)))
        psi = np.asarray(model.streamfunction(jnp.asarray(omega)))[0]
    ux, _ = spectral_derivatives(u, dx)
    vx, vy = spectral_derivatives(v, dx)
    _, uy = spectral_derivatives(u, dx)
    scale = np.abs(omega).max()
    np.testing.assert_allclose(ux + vy, 0, atol=1e-13 * scale)
    np.testing.assert_allclose(vx - uy, omega[0], atol=1e-12 * scale)
    psi_x, psi_y = spectral_derivatives(psi, dx)
    np.testing.assert_allclose(u, psi_y, atol=1e-13 * scale)
    assert abs(psi.mean()) < 1e-14 * scale
    # in float32 too, to its round-off
    model32 = NavierStokes(grid=Grid(dx=dx))
    u32, v32 = (np.asarray(c)[0] for c in velocity(model32, jnp.asarray(omega, jnp.float32)))
    assert u32.dtype == np.float32
    div32 = spectral_derivatives(u32.astype(float), dx)[0] + spectral_derivatives(v32, dx)[1]
    assert np.abs(div32).max() < 1e-5 * scale


def energy_and_enstrophy(model, omega):
    u, v = velocity(model, omega)
    return 0.5 * float(jnp.mean(u**2 + v**2)), 0.5 * float(jnp.mean(omega**2))


def test_inviscid_flow_conserves_energy_and_enstrophy():
    """With ν = 0 the dealiased semi-discrete flow conserves E and Z exactly; the adaptive
    solve (rtol = atol = 1e-10) keeps them to 1e-9 (2e-11 seen) while the field changes by O(1)."""
    n = 32
    dx = 2 * np.pi / n
    with jax.enable_x64(True):
        omega0 = jnp.asarray(band_limited(1, n, n, 4))
        model = NavierStokes(viscosity=0.0, grid=Grid(dx=dx))
        solve = SolveConfig(solver="tsit5", dt0=0.01, rtol=1e-10, atol=1e-10, max_steps=4096)
        ys = run(PDESolver(model, solve), omega0, jnp.linspace(0.0, 4.0, 5))
        budgets = np.array([energy_and_enstrophy(model, y) for y in ys])
    np.testing.assert_allclose(budgets / budgets[0], 1, rtol=0, atol=1e-9)
    ys, omega0 = np.asarray(ys), np.asarray(omega0)
    change = np.linalg.norm(ys[-1] - omega0) / np.linalg.norm(omega0)
    assert change > 0.5, change  # the flow evolved: conservation is not trivial


def test_viscous_energy_budget_is_exact_for_the_rhs():
    """dE/dt = <ψ ∂tω> = -2ν Z - 2α E for any zero-mean field (no forcing)."""
    h, w, dx = 32, 24, 0.25
    omega = smooth_random_field(jax.random.key(0), (h, w), wavenumber=6.0)
    with jax.enable_x64(True):
        omega = jnp.asarray(omega, jnp.float64)
        model = NavierStokes(viscosity=0.02, drag=0.3, grid=Grid(dx=dx))
        psi = model.streamfunction(omega)
        rate = float(jnp.mean(psi * rhs(model, omega)))
        energy = 0.5 * float(jnp.mean(psi * omega))
        enstrophy = 0.5 * float(jnp.mean(omega**2))
    np.testing.assert_allclose(rate, -2 * 0.02 * enstrophy - 2 * 0.3 * energy, rtol=1e-11)


def test_the_registry_initial_state_and_simulate_run_it():
    assert FIXED_MODELS["navier-stokes-2d"] is NavierStokes
    assert make_pde("navier-stokes-2d", grid={"dx": 0.1}).dx == 0.1
    x0 = initial_state(NavierStokes(), jax.random.key(0), (12, 16))
    assert x0.shape == (1, 12, 16)
    np.testing.assert_allclose(float(jnp.mean(x0)), 0, atol=1e-6)
    np.testing.assert_allclose(float(jnp.sqrt(jnp.mean(x0**2))), 1, rtol=1e-5)
    cfg = SimulateConfig(
        model="navier-stokes-2d",
        size=16,
        t1=2.0,
        frames=3,
        solve=SolveConfig(solver="rk4", dt0=0.05, adaptive=False),
    )
    sim = simulate_pde(cfg, jax.random.key(1))
    assert sim.frames.shape == (3, 1, 16, 16) and np.all(np.isfinite(sim.frames))
    assert not np.allclose(sim.frames[-1], sim.frames[0], atol=1e-2)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="periodic"):
        NavierStokes(grid=Grid(boundary="neumann"))
    with pytest.raises(ValueError, match="forcing_wavenumber"):
        NavierStokes(forcing_wavenumber=0)
    with pytest.raises(ValueError, match="forcing_wavenumber"):
        NavierStokes(forcing_wavenumber=2.0)
    with pytest.raises(ValueError, match="viscosity"):
        NavierStokes(viscosity=-1.0)
    with pytest.raises(ValueError, match=r"\[1, H, W\]"):
        NavierStokes()(0.0, jnp.ones((2, 8, 8)))
    with pytest.raises(ValueError, match="wavenumber"):
        smooth_random_field(jax.random.key(0), 8, wavenumber=0.0)
    assert math.isclose(NavierStokes().dx, 2 * math.pi / 64)


def test_a_split_grid_is_refused_because_the_fft_couples_every_cell():
    solver = PDESolver(NavierStokes(), SolveConfig(solver="rk4", dt0=0.05, adaptive=False))
    x0 = jnp.zeros((1, 64, 64))
    with pytest.raises(ValueError, match="couples every cell"):
        solver(x0, jnp.array([0.0, 0.1]), split=SplitGrid.over(jax.devices()[:1], halo=1))
