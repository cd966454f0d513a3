"""PDE solver, fixed and neural models: analytic solutions, convergence order, conservation laws,
boundary conditions, pattern statistics, gradients, input normalisation, save/load and input
checks."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffdyn.pde import (
    PDE_MODELS,
    AdvectionDiffusion,
    CahnHilliard,
    GrayScott,
    NeuralRDA,
    PDEFitConfig,
    PDESolver,
    connected_components,
    dominant_wavelength,
    gaussian,
    gray_scott_seeds,
    input_normalisation,
    make_pde,
    make_pde_optimiser,
)

run = eqx.filter_jit(lambda solver, x0, ts: solver(x0, ts))


def heat_error(n, length=20.0, sigma0=1.5, diffusion=1.0, velocity=(0.0, 0.0), t=1.0):
    """Max error of the semi-discrete advection-diffusion solution from a Gaussian (float64)."""
    dx = length / n
    model = AdvectionDiffusion(diffusion, *velocity, dx=dx)
    solver = PDESolver(model, solver="rk4", dt=0.01, max_steps=200)
    centre = (length / 2, length / 2)
    x0 = gaussian(n, sigma0, dx=dx, centre=centre, images=2)
    y = run(solver, x0, jnp.array([0.0, t]))[-1]
    var = sigma0**2 + 2 * diffusion * t
    moved = (centre[0] + velocity[0] * t, centre[1] + velocity[1] * t)
    exact = sigma0**2 / var * gaussian(n, float(np.sqrt(var)), dx=dx, centre=moved, images=2)
    return float(jnp.max(jnp.abs(y - exact))), float(jnp.max(exact))


def test_heat_gaussian_matches_analytic_with_second_order_convergence():
    with jax.enable_x64(True):
        errors = [heat_error(n)[0] for n in (16, 32, 64)]
        orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
        # the 5-point Laplacian is second order in dx; the time error (rk4, dt=0.01) is tiny
        assert np.all(np.abs(orders - 2.0) < 0.2), (errors, orders)
        peak = heat_error(64)[1]
        assert errors[-1] < 2e-3 * peak / 0.53  # within 0.2 % of the peak on the finest grid


def test_advection_diffusion_moves_the_gaussian():
    with jax.enable_x64(True):
        err, peak = heat_error(64, velocity=(2.0, -1.0))
        still, _ = heat_error(64)
        # moved by v t = (2, -1): the analytic moved Gaussian is matched to O(dx²)
        assert err < 0.01 * peak
        assert err < 5 * still


def test_dirichlet_mode_decays_at_the_discrete_eigenvalue():
    with jax.enable_x64(True):
        n, dx, diffusion, value, t = 18, 0.5, 0.7, 1.0, 2.0
        model = AdvectionDiffusion(diffusion, dx=dx, boundary="dirichlet", boundary_value=value)
        solver = PDESolver(model, solver="rk4", dt=0.005, max_steps=1000)
        i = np.arange(n)
        mode = np.sin(np.pi * i / (n - 1))
        x0 = jnp.asarray(value + np.outer(mode, mode))[None]
        ys = run(solver, x0, jnp.linspace(0.0, t, 5))
        edges = np.concatenate([ys[:, 0, 0], ys[:, 0, -1], ys[:, 0, :, 0], ys[:, 0, :, -1]], axis=1)
        np.testing.assert_array_equal(np.asarray(edges), value)
        rate = 2 * 4 * diffusion / dx**2 * np.sin(np.pi / (2 * (n - 1))) ** 2
        expected = value + np.exp(-rate * t) * np.outer(mode, mode)
        np.testing.assert_allclose(np.asarray(ys[-1, 0]), expected, atol=1e-9)


def test_cahn_hilliard_conserves_mass_and_decreases_free_energy():
    with jax.enable_x64(True):
        model = CahnHilliard()
        solver = PDESolver(model, solver="tsit5", dt=0.1, adaptive=True, rtol=1e-6, atol=1e-8)
        x0 = 0.1 * jax.random.uniform(jax.random.key(0), (1, 24, 24), minval=-1.0, maxval=1.0)
        ys = run(solver, x0, jnp.linspace(0.0, 400.0, 9))
        mass = np.asarray(jnp.sum(ys, axis=(1, 2, 3)))
        np.testing.assert_allclose(mass, mass[0], atol=1e-9)

        def energy(phi):  # the discrete Lyapunov function whose gradient is mu
            lap = model.grid.laplacian(phi)
            return jnp.sum(phi**4 / 4 - phi**2 / 2 - model.gamma / 2 * phi * lap)

        e = np.asarray(jax.vmap(energy)(ys))
        assert np.all(np.diff(e) <= 1e-9), e
        assert e[-1] < e[0] - 1.0  # phase separation happened
        assert float(jnp.std(ys[-1])) > 0.5  # towards phases near ±1


@pytest.fixture(scope="module")
def gray_scott_runs():
    solver = PDESolver(GrayScott(feed=0.0367, kill=0.0649), dt=1.0, max_steps=4000)
    ts = jnp.array([0.0, 3000.0])
    spots = run(solver, gray_scott_seeds(jax.random.key(0), 48, seeds=1, width=6), ts)[-1]
    labyrinth_solver = PDESolver(GrayScott(), dt=1.0, max_steps=4000)
    seeds = gray_scott_seeds(jax.random.key(0), 48, seeds=6, width=6)
    labyrinth = run(labyrinth_solver, seeds, ts)[-1]
    rest = run(labyrinth_solver, jnp.stack([jnp.ones((48, 48)), jnp.zeros((48, 48))]), ts)[-1]
    return np.asarray(spots), np.asarray(labyrinth), np.asarray(rest)


def test_gray_scott_seed_replicates_into_spots(gray_scott_runs):
    spots, _, _ = gray_scott_runs
    labels, n = connected_components(spots[1] > 0.2)
    sizes = np.bincount(labels[labels >= 0])
    # one seeded square has split into many small, separate spots
    assert n >= 5, n
    assert sizes.max() < 0.03 * spots[1].size, sizes


def test_gray_scott_default_forms_stripes_with_intrinsic_wavelength(gray_scott_runs):
    _, labyrinth, rest = gray_scott_runs
    covered = np.mean(labyrinth[1] > 0.2)
    wavelength = dominant_wavelength(labyrinth[1])
    assert covered > 0.3
    assert 8 <= wavelength <= 16, wavelength  # set by D and the rates, not by the domain
    # the homogeneous state (A, B) = (1, 0) is a fixed point: nothing forms without a seed
    np.testing.assert_allclose(rest, np.stack([np.ones((48, 48)), np.zeros((48, 48))]))
    assert connected_components(rest[1] > 0.2)[1] == 0


@pytest.mark.slow
def test_gradient_through_rollout_matches_finite_differences():
    with jax.enable_x64(True):
        x0 = gray_scott_seeds(jax.random.key(1), 12, seeds=2, width=4)
        ts = jnp.linspace(0.0, 20.0, 5)
        target = PDESolver(GrayScott(), dt=1.0)(x0, ts)

        def loss(feed, kill):
            model = PDESolver(GrayScott(feed=0.05, kill=0.06), dt=1.0)
            model = eqx.tree_at(lambda m: (m.rhs.feed, m.rhs.kill), model, (feed, kill))
            return jnp.mean((model(x0, ts) - target) ** 2)

        p = (jnp.asarray(0.05), jnp.asarray(0.06))
        grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(*p)
        f = jax.jit(loss)
        h = 1e-6
        fd = [
            (f(p[0] + h, p[1]) - f(p[0] - h, p[1])) / (2 * h),
            (f(p[0], p[1] + h) - f(p[0], p[1] - h)) / (2 * h),
        ]
        np.testing.assert_allclose(np.asarray(grads), np.asarray(fd), rtol=1e-5)


def test_non_negative_projection_holds_after_every_update():
    model = PDESolver(GrayScott(diffusion_a=1e-3, diffusion_b=2e-3), dt=1.0)
    params, static = eqx.partition(model, model.trainable_filter())
    cfg = PDEFitConfig(learning_rate=0.05, schedule="constant")
    opt = make_pde_optimiser(model, cfg, steps=20)
    state = opt.init(params)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)  # always pushes every value down
    for _ in range(20):
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        assert float(params.rhs.diffusion_a) >= 0 and float(params.rhs.diffusion_b) >= 0
    assert float(params.rhs.diffusion_a) == 0.0
    assert float(params.rhs.feed) < 0.0623 - 0.5  # unconstrained parameters move freely


def test_input_normalisation_gives_per_channel_mean_and_std_of_the_data():
    x = np.random.default_rng(0).normal(size=(2, 5, 3, 4, 4)) * [[[[2.0]], [[0.5]], [[1.0]]]]
    x[:, :, 2] = 7.0  # a channel that never varies keeps scale 1
    norm = input_normalisation(x, channels=4)  # one hidden channel: offset 0, scale 1
    axes = (0, 1, 3, 4)
    np.testing.assert_allclose(norm["input_offset"][:2], x[:, :, :2].mean(axes), atol=1e-12)
    np.testing.assert_allclose(norm["input_scale"][:2], x[:, :, :2].std(axes), atol=1e-12)
    assert norm["input_offset"][2:] == (7.0, 0.0) and norm["input_scale"][2:] == (1.0, 1.0)
    with pytest.raises(ValueError, match="channels"):
        input_normalisation(x, channels=2)


def test_neural_rda_networks_read_normalised_states_and_the_terms_act_on_raw_ones(tmp_path):
    offset, scale = (0.8, 0.1), (0.25, 0.15)
    rhs = NeuralRDA(
        2,
        advection=True,
        diffusion="both",
        input_offset=offset,
        input_scale=scale,
        key=jax.random.key(0),
    )
    # give the zero-initialised output layers weights, so that every network matters
    rhs = eqx.tree_at(
        lambda m: [n.weights[-1] for n in (m.reaction_net, m.advection_net, m.diffusion_net)],
        rhs,
        [
            0.1 * jnp.ones_like(n.weights[-1])
            for n in (rhs.reaction_net, rhs.advection_net, rhs.diffusion_net)
        ],
    )
    x = jax.random.uniform(jax.random.key(1), (2, 6, 6))
    z = (x - jnp.array(offset)[:, None, None]) / jnp.array(scale)[:, None, None]
    np.testing.assert_allclose(rhs.normalise(x), z, rtol=1e-6)
    terms = rhs.terms(x)
    np.testing.assert_allclose(terms["reaction"], rhs.reaction_net(z), rtol=1e-6)
    np.testing.assert_allclose(terms["decay"], -rhs.stability * x**3, rtol=1e-6)
    g = rhs.grid
    v = jnp.tanh(rhs.advection_net(z)).reshape(2, 2, 6, 6)
    np.testing.assert_allclose(terms["advection"], -g.divergence(v[0] * x, v[1] * x), rtol=1e-5)
    f = jax.nn.softplus(rhs.diffusion_net(z))
    linear = rhs.diffusion_coefficients[:, None, None] * g.laplacian(x)
    np.testing.assert_allclose(terms["diffusion"], linear + g.flux_divergence(f, x), rtol=1e-5)
    solver = PDESolver(rhs)
    loaded = PDESolver.load(solver.save(tmp_path / "rda.eqx"))
    assert loaded.rhs.input_offset == offset and loaded.rhs.input_scale == scale
    np.testing.assert_array_equal(loaded.rhs(0.0, x), rhs(0.0, x))
    assert NeuralRDA(3, input_scale=2.0, key=jax.random.key(0)).input_scale == (2.0,) * 3
    for bad, match in (
        ({"input_scale": 0.0}, "input_scale"),
        ({"input_scale": (1.0, -1.0)}, "input_scale"),
        ({"input_offset": (0.0, 0.0, 0.0)}, "input_offset"),
        ({"input_offset": float("nan")}, "input_offset"),
    ):
        with pytest.raises(ValueError, match=match):
            NeuralRDA(2, key=jax.random.key(0), **bad)


@pytest.mark.parametrize("name", sorted(PDE_MODELS))
def test_every_model_saves_and_loads(name, tmp_path):
    rhs = make_pde(name, key=jax.random.key(3))
    solver = PDESolver(rhs, solver="tsit5", dt=0.5, adaptive=True, adjoint="backsolve")
    path = solver.save(tmp_path / "model.eqx")
    loaded = PDESolver.load(path)
    assert type(loaded.rhs) is type(rhs)
    assert loaded.hyperparameters() == solver.hyperparameters()
    x = jax.random.uniform(jax.random.key(4), (rhs.channels, 8, 8))
    np.testing.assert_array_equal(np.asarray(loaded.rhs(0.0, x)), np.asarray(rhs(0.0, x)))


def test_bad_input_is_rejected_before_compiling():
    with pytest.raises(ValueError, match="boundary"):
        GrayScott(boundary="mirror")
    with pytest.raises(ValueError, match="dx"):
        GrayScott(dx=0.0)
    with pytest.raises(ValueError, match="diffusion_a"):
        GrayScott(diffusion_a=-1.0)
    with pytest.raises(ValueError, match="solver"):
        PDESolver(GrayScott(), solver="rk45")
    with pytest.raises(ValueError, match=r"x0 must have shape \[2, H, W\]"):
        PDESolver(GrayScott())(jnp.zeros((3, 8, 8)), jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="model must be one of"):
        make_pde("navier-stokes")
    with pytest.raises(ValueError, match="needs a PRNG key"):
        make_pde("neural-rda")
