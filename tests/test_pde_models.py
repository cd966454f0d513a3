"""PDE solver, fixed and neural models: analytic solutions, convergence order, conservation laws,
boundary conditions, pattern statistics, gradients, input normalisation, save/load and input
checks."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import yaml

from diffdyn.common import AbstractModel, OptimConfig, SolveConfig, cli
from diffdyn.pde import (
    PDE_MODELS,
    AdvectionDiffusion,
    CahnHilliard,
    GrayScott,
    Grid,
    NeuralRDA,
    PDEFitConfig,
    PDEFitTask,
    PDESolver,
    connected_components,
    dominant_wavelength,
    gaussian,
    gray_scott_seeds,
    input_normalisation,
    make_pde,
)

run = eqx.filter_jit(lambda solver, x0, ts: solver(x0, ts))


def fixed_step(dt: float, solver: str = "heun", max_steps: int = 16384) -> SolveConfig:
    return SolveConfig(
        solver=solver, dt0=dt, adaptive=False, rtol=1e-3, atol=1e-3, max_steps=max_steps
    )


def heat_error(n, length=20.0, sigma0=1.5, diffusion=1.0, velocity=(0.0, 0.0), t=1.0):
    """Max error of the semi-discrete advection-diffusion solution from a Gaussian (float64)."""
    dx = length / n
    model = AdvectionDiffusion(diffusion, *velocity, grid=Grid(dx=dx))
    solver = PDESolver(model, fixed_step(0.01, "rk4", max_steps=200))
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
        model = AdvectionDiffusion(diffusion, grid=Grid(dx, "dirichlet", value))
        solver = PDESolver(model, fixed_step(0.005, "rk4", max_steps=1000))
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
        solve = SolveConfig(solver="tsit5", dt0=0.1, rtol=1e-6, atol=1e-8, max_steps=16384)
        solver = PDESolver(model, solve)
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
    solver = PDESolver(GrayScott(feed=0.0367, kill=0.0649), fixed_step(1.0, max_steps=4000))
    ts = jnp.array([0.0, 3000.0])
    spots = run(solver, gray_scott_seeds(jax.random.key(0), 48, seeds=1, width=6), ts)[-1]
    labyrinth_solver = PDESolver(GrayScott(), fixed_step(1.0, max_steps=4000))
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
        target = PDESolver(GrayScott(), fixed_step(1.0))(x0, ts)

        def loss(feed, kill):
            model = PDESolver(GrayScott(feed=0.05, kill=0.06), fixed_step(1.0))
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
    """The task's ``non_negative`` hook, built into the optimiser by ``OptimConfig.build``."""
    model = PDESolver(GrayScott(diffusion_a=1e-3, diffusion_b=2e-3), fixed_step(1.0))
    params, static = eqx.partition(model, model.trainable_filter())
    task = PDEFitTask(PDEFitConfig(), channels=2, observed=2)
    opt = OptimConfig(learning_rate=0.05).build(20, non_negative_leaves=task.non_negative(model))
    state = opt.init(params)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)  # always pushes every value down
    for _ in range(20):
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        assert float(params.rhs.diffusion_a) >= 0 and float(params.rhs.diffusion_b) >= 0
    assert float(params.rhs.diffusion_a) == 0.0
    assert float(params.rhs.feed) < 0.0623 - 0.5  # unconstrained parameters move freely


@pytest.mark.heavy
def test_grid_and_boundary_stay_fixed_under_a_plain_training_loop():
    """Nothing of the grid is a leaf (the Dirichlet value is a constant of the solve), nor is
    the input normalisation of a neural model: a plain ``eqx.filter_grad`` + adam loop over
    every floating leaf trains the parameters and leaves them, and the boundary, alone."""
    grid = Grid(dx=0.5, boundary="dirichlet", boundary_value=0.3)
    norm = {"input_offset": (0.2,), "input_scale": (0.5,)}
    rhs = NeuralRDA(1, grid=grid, key=jax.random.key(0), **norm)
    model = PDESolver(rhs, fixed_step(0.05, "rk4"))
    x0 = jax.random.uniform(jax.random.key(1), (1, 10, 10))
    ts = jnp.linspace(0.0, 1.0, 3)
    target = 0.5 * x0[None] + 0.1

    def loss(m):
        return jnp.mean((m(x0, ts) - target) ** 2)

    opt = optax.adam(0.05)

    @eqx.filter_jit
    def step(model, state):
        grads = eqx.filter_grad(loss)(model)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), state

    state = opt.init(eqx.filter(model, eqx.is_inexact_array))
    start = model
    for _ in range(5):
        model, state = step(model, state)
    moved = jax.tree_util.tree_map(
        lambda a, b: bool(jnp.any(a != b)),
        eqx.filter(start, eqx.is_inexact_array),
        eqx.filter(model, eqx.is_inexact_array),
    )
    assert any(jax.tree_util.tree_leaves(moved))  # the networks were trained
    assert model.rhs.grid == grid and model.rhs.input_offset == (0.2,)
    assert model.rhs.input_scale == (0.5,)
    frames = run(model, x0, ts)
    edges = np.concatenate([frames[:, 0, 0], frames[:, 0, -1], frames[:, 0, :, 0]], axis=1)
    np.testing.assert_array_equal(np.asarray(edges), np.float32(0.3))


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
    solver = PDESolver(rhs)  # the default solve
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
    solve = SolveConfig(solver="tsit5", dt0=0.5, adjoint="backsolve")
    solver = PDESolver(rhs, solve)
    path = solver.save(tmp_path / "model.eqx")
    loaded = PDESolver.load(path)
    assert type(loaded.rhs) is type(rhs)
    assert loaded.solve == solve and loaded.rhs.grid == rhs.grid
    assert loaded.hyperparameters() == solver.hyperparameters()
    x = jax.random.uniform(jax.random.key(4), (rhs.channels, 8, 8))
    np.testing.assert_array_equal(np.asarray(loaded.rhs(0.0, x)), np.asarray(rhs(0.0, x)))


def test_the_rhs_grid_and_solve_settings_save_as_nested_specs(tmp_path):
    grid = Grid(dx=0.25, boundary="neumann")
    solver = PDESolver(GrayScott(feed=0.04, grid=grid), fixed_step(0.5, "rk4"))
    path = solver.save(tmp_path / "gs.eqx")
    header = json.loads(path.read_bytes().split(b"\n", 1)[0])
    rhs = header["hyperparameters"]["rhs"]["__model__"]
    assert (rhs["module"], rhs["class"]) == ("diffdyn.pde", "GrayScott")
    assert rhs["hyperparameters"]["grid"]["__config__"]["fields"] == {
        "dx": 0.25,
        "boundary": "neumann",
        "boundary_value": 0.0,
    }
    solve = header["hyperparameters"]["solve"]["__config__"]
    assert solve["class"] == "SolveConfig" and solve["fields"]["solver"] == "rk4"
    loaded = AbstractModel.load(path)
    assert loaded.rhs.grid == grid and loaded.solve == solver.solve
    assert float(loaded.rhs.feed) == float(solver.rhs.feed)


def test_a_neural_solver_file_of_0_1_0_loads_with_its_grid_and_solve_settings(tmp_path):
    """0.1.0 wrote the grid as dx/boundary/boundary_value and the solve settings flat, with the
    right-hand side as a plain spec dict: such a file loads as the same model."""
    grid = Grid(dx=0.5, boundary="dirichlet", boundary_value=0.25)
    rhs = NeuralRDA(2, advection=True, grid=grid, key=jax.random.key(5))
    # the old file records its max_steps (4096), which is kept as given
    solve = SolveConfig(
        solver="rk4", dt0=0.05, adaptive=False, rtol=1e-4, atol=1e-5, max_steps=4096
    )
    new = PDESolver(rhs, solve).save(tmp_path / "new.eqx")
    leaves = new.read_bytes().split(b"\n", 1)[1]
    arguments = {
        k: v
        for k, v in json.loads(new.read_bytes().split(b"\n", 1)[0])["hyperparameters"]["rhs"][
            "__model__"
        ]["hyperparameters"].items()
        if k != "grid"
    }
    old = {
        "format": "diffdyn-model/1",
        "module": "pde.solver",
        "class": "PDESolver",
        "hyperparameters": {
            "rhs": {
                "module": "pde.neural",
                "class": "NeuralRDA",
                "hyperparameters": {
                    **arguments,
                    "dx": 0.5,
                    "boundary": "dirichlet",
                    "boundary_value": 0.25,
                },
            },
            "solver": "rk4",
            "dt": 0.05,
            "adaptive": False,
            "rtol": 1e-4,
            "atol": 1e-5,
            "adjoint": "recursive-checkpoint",
            "max_steps": 4096,
        },
    }
    (tmp_path / "old.eqx").write_bytes(json.dumps(old).encode() + b"\n" + leaves)
    loaded = AbstractModel.load(tmp_path / "old.eqx")
    assert isinstance(loaded, PDESolver) and loaded.solve == solve and loaded.rhs.grid == grid
    x0 = jax.random.uniform(jax.random.key(6), (2, 8, 8))
    ts = jnp.linspace(0.0, 0.5, 3)
    np.testing.assert_array_equal(
        np.asarray(loaded(x0, ts)), np.asarray(PDESolver(rhs, solve)(x0, ts))
    )


def test_bad_input_is_rejected_before_compiling():
    with pytest.raises(ValueError, match="boundary"):
        Grid(boundary="mirror")
    with pytest.raises(ValueError, match="dx"):
        Grid(dx=0.0)
    with pytest.raises(ValueError, match="boundary_value applies to the dirichlet"):
        Grid(boundary_value=1.0)
    with pytest.raises(TypeError, match="grid must be a Grid"):
        GrayScott(grid={"dx": 1.0})
    with pytest.raises(TypeError, match="key"):
        GrayScott(key=jax.random.key(0))  # fixed models have no random initialisation
    with pytest.raises(ValueError, match="diffusion_a"):
        GrayScott(diffusion_a=-1.0)
    with pytest.raises(ValueError, match="solver"):
        PDESolver(GrayScott(), SolveConfig(solver="rk45"))
    with pytest.raises(TypeError, match="SolveConfig"):
        PDESolver(GrayScott(), "heun")
    with pytest.raises(ValueError, match=r"x0 must have shape \[2, H, W\]"):
        PDESolver(GrayScott())(jnp.zeros((3, 8, 8)), jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="model must be one of"):
        make_pde("navier-stokes")
    with pytest.raises(ValueError, match="needs a PRNG key"):
        make_pde("neural-rda")
    assert make_pde("chhabra", grid={"dx": 0.25}).grid == Grid(dx=0.25)


def test_pde_simulate_prints_a_summary_and_writes_upscaled_images(tmp_path, capsys):
    from PIL import Image

    args = ["pde", "simulate", "--quick", "--out", str(tmp_path), "--t1", "200"]
    assert cli.main([*args, "--solve.solver", "rk4", "--model", "brusselator"]) == 2
    assert "dt0" in capsys.readouterr().err  # rk4 with dt0 1.0 blows up on Brusselator
    assert cli.main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("diffdyn pde simulate --quick: simulate a fixed PDE")
    assert any(line.split()[0] == "components" for line in lines[1:-1])
    assert lines[-1] == f"outputs: {tmp_path}"
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert (config["size"], config["t1"], config["frames"]) == (32, 200.0, 11)
    assert config["solve"]["solver"] == "heun"
    frames = np.load(tmp_path / "trajectory.npy")
    assert frames.shape == (11, 2, 32, 32)
    np.testing.assert_array_equal(np.load(tmp_path / "final.npy"), frames[-1])
    with Image.open(tmp_path / "trajectory.gif") as gif:
        assert min(gif.size) >= 128  # 32 cells upscaled 4x, nearest neighbour
    assert (tmp_path / "final.png").is_file()
