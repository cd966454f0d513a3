"""Fitting PDEs: windowed sampling with persistent hidden channels, the task's loss against its
closed form, validation selecting the best model, parameter recovery of a fixed model, a neural
RDA model against linear diffusion on held-out frames, the strategies of diffdyn.common, and
the ``pde fit`` workflow and its configs."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffdyn.common import (
    AbstractModel,
    OptimConfig,
    SolveConfig,
    TrainConfig,
    Trainer,
    Trajectory,
    cli,
    gradient_x,
    gradient_y,
    laplacian,
)
from diffdyn.pde import (
    AdvectionDiffusion,
    FitConfig,
    GrayScott,
    Grid,
    NeuralRDA,
    PDEFitConfig,
    PDEFitTask,
    PDESolver,
    WindowAugmenter,
    gaussian,
    gray_scott_seeds,
    input_normalisation,
    make_strategy,
    model_to_fit,
    rollout_error,
    strategy_non_negative,
)

run = eqx.filter_jit(lambda solver, x0, ts: solver(x0, ts))
TRUE = {"diffusion_a": 0.1, "diffusion_b": 0.05, "feed": 0.0623, "kill": 0.06268}


def fixed_step(dt: float, solver: str = "heun", max_steps: int = 2000) -> SolveConfig:
    return SolveConfig(
        solver=solver, dt0=dt, adaptive=False, rtol=1e-3, atol=1e-3, max_steps=max_steps
    )


def windows(trajectories, ts) -> dict:
    return {"trajectories": jnp.asarray(trajectories), "ts": jnp.asarray(ts)}


@pytest.fixture(scope="module")
def gray_scott_data():
    """A Gray-Scott trajectory [1, 31, 2, 24, 24], frames 10 time units apart, after a
    warm-up from two seeded squares (the pattern is still spreading: B covers 25-40 %)."""
    solver = PDESolver(GrayScott(), fixed_step(2.0))
    x0 = gray_scott_seeds(jax.random.key(0), 24, seeds=2, width=6)
    warm = run(solver, x0, jnp.array([0.0, 400.0]))[-1]
    ts = jnp.arange(31) * 10.0
    data = np.asarray(run(solver, warm, ts))[None]
    assert data[0, -1, 1].max() > 0.3 and np.mean(np.abs(data[0, -1] - data[0, 0])) > 0.01
    return data, np.asarray(ts)


def test_window_augmenter_samples_windows_and_persists_hidden_channels():
    b, t, h, w = 2, 7, 4, 5
    x = jnp.arange(b * t * 1 * h * w, dtype=jnp.float32).reshape(b, t, 1, h, w)
    ts = jnp.arange(t) * 0.5
    aug = WindowAugmenter(window=3, batch_size=4, channels=3, observed=1)
    state = aug.init({"trajectories": x, "ts": ts})
    assert state["trajectories"].shape == (b, t, 3, h, w)
    key = jax.random.key(5)
    batch = aug.sample(state, key)
    items, starts = aug._positions(state, jax.random.split(key)[0])
    for n in range(4):
        i, p = int(items[n]), int(starts[n])
        np.testing.assert_array_equal(batch["x0"][n, 0], x[i, p, 0])
        np.testing.assert_array_equal(batch["y"][n, :, 0], x[i, p + 1 : p + 4, 0])
        np.testing.assert_array_equal(batch["ts"][n], ts[p : p + 4])
    prediction = jnp.full((4, 3, 3, h, w), 7.0)
    new = aug.update(state, prediction, key)["trajectories"]
    written = np.zeros((b, t), bool)
    for n in range(4):
        written[int(items[n]), int(starts[n]) + 1 : int(starts[n]) + 4] = True
    # hidden channels are written exactly where windows were predicted; data never changes
    np.testing.assert_array_equal(np.asarray(new[:, :, 1:]).max(axis=(2, 3, 4)) == 7.0, written)
    np.testing.assert_array_equal(new[:, :, :1], x)
    with pytest.raises(ValueError, match="observed"):
        aug.init({"trajectories": jnp.zeros((1, 7, 2, h, w)), "ts": ts})


def test_task_loss_on_states_gradients_and_laplacians_matches_its_closed_form():
    """With D = 0 the model is the identity, so against targets (1 + e) x0 the l2 losses are
    e² mean(x0²), e² mean(|∇x0|²) and e² mean((Δx0)²); the hidden channel does not count."""
    grid_dx, e, wg, wl = 0.5, 0.1, 0.3, 0.02
    model = PDESolver(
        AdvectionDiffusion(diffusion=0.0, channels=2, grid=Grid(dx=grid_dx)), fixed_step(0.1)
    )
    config = PDEFitConfig(window=2, loss="l2", gradient_weight=wg, laplacian_weight=wl)
    task = PDEFitTask(config, channels=2, observed=1)
    x0 = jax.random.normal(jax.random.key(0), (3, 2, 6, 6))
    y = jnp.repeat((1 + e) * x0[:, None], 2, axis=1).at[:, :, 1].set(99.0)
    batch = {"x0": x0, "y": y, "ts": jnp.tile(jnp.array([0.0, 0.1, 0.2]), (3, 1))}
    loss, aux = task.loss(model, batch, jax.random.key(1))
    u = x0[:, :1]
    grads = jnp.concatenate(
        [
            jax.vmap(lambda v: gradient_x(v, dx=grid_dx, padding="periodic"))(u),
            jax.vmap(lambda v: gradient_y(v, dx=grid_dx, padding="periodic"))(u),
        ]
    )
    lap = jax.vmap(lambda v: laplacian(v, dx=grid_dx, padding="periodic"))(u)
    expected = e**2 * (jnp.mean(u**2) + wg * jnp.mean(grads**2) + wl * jnp.mean(lap**2))
    np.testing.assert_allclose(float(aux["state_loss"]), e**2 * float(jnp.mean(u**2)), rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-5)
    assert aux["prediction"].shape == (3, 2, 2, 6, 6)


def heat_data(diffusion, x0, ts):
    solver = PDESolver(AdvectionDiffusion(diffusion=diffusion), fixed_step(0.05, "rk4"))
    return np.asarray(run(solver, x0, jnp.asarray(ts)))


@pytest.mark.heavy  # over 15 s on 2 cores
def test_validation_on_held_out_frames_selects_the_best_model_not_the_last():
    """Training frames come from D = 0.5 and the held-out frames from D = 0.3: training moves
    D from 0.1 towards 0.5 through 0.3, so the model predicting the held-out frames best is an
    intermediate one, and that is the one selected (by validation, not by training loss)."""
    x0 = gaussian(12, 1.5, images=1)
    ts = np.linspace(0.0, 2.0, 6)
    train = heat_data(0.5, x0, ts)[None]
    held_ts = ts[-1] + np.linspace(0.0, 2.0, 5)
    held = heat_data(0.3, train[0, -1], held_ts)[None]
    task = PDEFitTask(
        PDEFitConfig(window=1, batch_size=2, loss="l2"), 1, 1, held_out=held, held_out_ts=held_ts
    )
    model = PDESolver(AdvectionDiffusion(diffusion=0.1), fixed_step(0.05, "rk4"))
    config = TrainConfig(steps=60, log_every=5, progress=False)
    result = Trainer(task, OptimConfig(learning_rate=0.02), config=config).fit(
        model, windows(train, ts), jax.random.key(0)
    )
    history = result.validation
    assert result.selected_by == "validation"
    assert result.best_step == int(history["step"][np.argmin(history["loss"])])
    assert 5 < result.best_step < 60
    assert float(result.model.rhs.diffusion) > 0.45  # the last model fits the training frames
    assert abs(float(result.best_model.rhs.diffusion) - 0.3) < 0.05
    np.testing.assert_allclose(result.best_loss, history["loss"].min(), rtol=1e-6)
    # evaluate is the held-out RMSE of rollout_error from the last training frame
    frames = np.concatenate([train, held[:, 1:]], axis=1)
    err = rollout_error(result.best_model, frames, np.concatenate([ts, held_ts[1:]]), start=5)
    np.testing.assert_allclose(err.mean(), result.best_loss, rtol=1e-5)
    video = task.visualise(result.best_model, jax.random.key(1))["pde/held_out"]
    assert video.shape[:2] == (5, 1) and min(video.shape[2:]) >= 128
    assert 0.0 <= video.min() and video.max() <= 1.0


def test_gray_scott_parameter_recovery(gray_scott_data):
    data, ts = gray_scott_data
    start = GrayScott(diffusion_a=0.12, diffusion_b=0.04, feed=0.07, kill=0.055)
    model = PDESolver(start, fixed_step(2.0))
    task = PDEFitTask(PDEFitConfig(window=2, batch_size=2, loss="l2"), channels=2, observed=2)
    optim = OptimConfig(learning_rate=5e-3, schedule="cosine")
    train = TrainConfig(steps=150, log_every=50, progress=False)
    result = Trainer(task, optim, config=train).fit(
        model, windows(data[:, :21], ts[:21]), jax.random.key(1)
    )
    for name, value in TRUE.items():
        got = float(getattr(result.model.rhs, name))
        assert abs(got - value) / value < 0.05, (name, got, value)
    assert result.losses[-1] < 1e-3 * result.losses[0]
    assert result.selected_by == "loss"  # no held-out frames: the training loss selects


def test_reaction_network_needs_standardised_inputs_to_fit_gray_scott_kinetics(gray_scott_data):
    """Why the neural model below needs ``input_normalisation``: fitted directly to the true
    reaction on the training frames' states (spread ~0.2 around (0.8, 0.1)), the reaction network
    reading raw states stays at the error of the best affine map (its hidden layer barely bends
    over so small a range); reading standardised states it gets well below it."""
    data, _ = gray_scott_data
    x = jnp.asarray(data[0, :21:10]).transpose(1, 0, 2, 3).reshape(2, -1, 1)  # [2, N, 1]
    a, b = x
    feed, kill = TRUE["feed"], TRUE["kill"]
    target = jnp.stack([-a * b * b + feed * (1 - a), a * b * b - (feed + kill) * b])
    design = np.concatenate([np.asarray(x[:, :, 0]).T, np.ones((x.shape[1], 1))], axis=1)
    coefficients = np.linalg.lstsq(design, np.asarray(target[:, :, 0]).T, rcond=None)[0]
    affine = np.sqrt(np.mean((design @ coefficients - np.asarray(target[:, :, 0]).T) ** 2))
    steps = 500
    optimiser = optax.adam(optax.cosine_decay_schedule(3e-3, steps))

    def fit(rhs: NeuralRDA) -> float:
        params, static = eqx.partition(rhs, eqx.is_inexact_array)

        def rmse(params):
            m = eqx.combine(params, static)
            return jnp.sqrt(jnp.mean((m.reaction_net(m.normalise(x)) - target) ** 2))

        def step(carry, _):
            params, state = carry
            updates, state = optimiser.update(jax.grad(rmse)(params), state, params)
            return (optax.apply_updates(params, updates), state), None

        carry = (params, optimiser.init(params))
        params = jax.jit(lambda c: jax.lax.scan(step, c, None, length=steps)[0][0])(carry)
        return float(rmse(params))

    raw = fit(NeuralRDA(2, key=jax.random.key(2)))
    normalised = fit(NeuralRDA(2, key=jax.random.key(2), **input_normalisation(data[:, :21])))
    # measured: raw 1.36e-3 against the affine 1.42e-3; normalised 3.7e-4
    assert raw > 0.9 * affine, (raw, normalised, affine)
    assert normalised < 0.4 * raw, (raw, normalised, affine)


@pytest.mark.heavy
def test_neural_rda_beats_linear_diffusion_on_held_out_frames(gray_scott_data):
    """Both models see frames 0..20 with the same windows, optimiser and steps; frames 21..30
    are rolled out from frame 20. Diffusion alone fits best by switching itself off (it can only
    blur fronts that advance), so the baseline is persistence. The neural model (default size)
    reads standardised states (``input_normalisation`` of the training frames): reading raw
    states it tied the baseline after 300 steps (0.0247 vs 0.0241) and reached only 0.60x after
    6000. ``learning_rate=3e-3`` is too large here (started near the true model, the fit leaves
    it). Measured: held-out RMSE 0.0090 vs 0.0241 (0.37x; 0.31x for two other seeds)."""
    data, ts = gray_scott_data
    n_train = 21
    task = PDEFitTask(PDEFitConfig(window=1, batch_size=2), channels=2, observed=2)
    optim = OptimConfig(learning_rate=1e-3, schedule="cosine")
    train = TrainConfig(steps=4000, log_every=500, progress=False)
    norm = input_normalisation(data[:, :n_train])  # statistics of the training frames only
    errors = {}
    for name, rhs in {
        "neural": NeuralRDA(2, key=jax.random.key(2), **norm),
        "linear": NeuralRDA(2, reaction=False, stability=0.0, key=jax.random.key(2)),
    }.items():
        model = PDESolver(rhs, fixed_step(2.0))
        result = Trainer(task, optim, config=train).fit(
            model, windows(data[:, :n_train], ts[:n_train]), jax.random.key(3)
        )
        errors[name] = rollout_error(result.model, data, ts, start=n_train - 1)
        coefficients = result.model.rhs.diffusion_coefficients
        assert bool(jnp.all(coefficients >= 0))
    persistence = np.sqrt(np.mean((data[0, n_train:] - data[0, n_train - 1]) ** 2, (1, 2, 3)))
    np.testing.assert_allclose(errors["linear"].mean(), persistence.mean(), rtol=0.05)
    # the reaction network must explain what diffusion alone cannot, on frames never seen
    assert np.all(errors["neural"] < 0.6 * errors["linear"]), errors
    assert errors["neural"].mean() < 0.45 * errors["linear"].mean(), errors


@pytest.mark.parametrize("strategy", ["plain", "multiple-shooting", "homotopy"])
def test_common_strategy_recovers_a_diffusion_coefficient(strategy):
    x0 = gaussian(12, 1.5, images=1)
    ts = np.linspace(0.0, 2.0, 9)
    data = heat_data(1.0, x0, ts)
    model = PDESolver(AdvectionDiffusion(diffusion=0.3), fixed_step(0.05, "rk4"))
    config = PDEFitConfig(strategy=strategy, **({"segments": 2} if "shoot" in strategy else {}))
    trajectory = Trajectory(jnp.asarray(ts), jnp.asarray(data))
    steps = 102 if strategy == "homotopy" else 100  # homotopy: 6 plateaus of 17 steps
    task = make_strategy(config, model, trajectory, steps)
    spec = strategy_non_negative(task, model, trajectory)
    optimiser = OptimConfig(learning_rate=0.05).build(steps, non_negative_leaves=spec)
    train = TrainConfig(steps=steps, log_every=10, progress=False)
    result = Trainer(task, optimiser, config=train).fit(
        model.vector_field, trajectory, jax.random.key(0)
    )
    fitted = result.best_model.__self__
    assert abs(float(fitted.rhs.diffusion) - 1.0) < 0.05, float(fitted.rhs.diffusion)
    assert result.best_loss < 1e-3 * float(np.mean((data - data[0]) ** 2))


def test_strategies_keep_diffusion_non_negative_and_check_their_settings():
    x0 = gaussian(8, 1.5, images=1)
    ts = np.linspace(0.0, 1.0, 6)
    trajectory = Trajectory(jnp.asarray(ts), jnp.asarray(heat_data(1.0, x0, ts)))
    model = PDESolver(AdvectionDiffusion(diffusion=1e-3), fixed_step(0.05, "rk4"))
    task = make_strategy(
        PDEFitConfig(strategy="multiple-shooting", segments=2), model, trajectory, 5
    )
    spec = strategy_non_negative(task, model, trajectory)
    trained = task.init(model.vector_field, trajectory)
    opt = OptimConfig(learning_rate=0.5).build(5, non_negative_leaves=spec)
    params = eqx.filter(trained, eqx.is_inexact_array)
    state = opt.init(params)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)  # pushes everything down
    updates, state = opt.update(grads, state, params)
    params = eqx.apply_updates(params, updates)
    assert float(params.field.__self__.rhs.diffusion) == 0.0
    assert float(params.field.__self__.rhs.velocity_x) < -0.4  # not constrained
    assert float(jnp.max(params.corrections)) < -0.4  # nor are the shooting corrections
    with pytest.raises(ValueError, match="multiple of 6"):
        make_strategy(PDEFitConfig(strategy="homotopy"), model, trajectory, 100)
    with pytest.raises(ValueError, match="every channel observed"):
        two = PDESolver(AdvectionDiffusion(channels=2), fixed_step(0.05))
        make_strategy(PDEFitConfig(strategy="plain"), two, trajectory, 10)


def test_settings_that_do_not_apply_are_refused():
    with pytest.raises(ValueError, match="window .*does not apply to strategy 'homotopy'"):
        PDEFitConfig(strategy="homotopy", window=3)
    with pytest.raises(ValueError, match="segments .*does not apply to strategy 'windows'"):
        PDEFitConfig(segments=3)
    PDEFitConfig(strategy="homotopy", coupling=2.0)  # its own settings are fine
    with pytest.raises(ValueError, match="size applies to generated data"):
        FitConfig(data="frames.npy", size=16)
    with pytest.raises(ValueError, match="grid applies to data read from a file"):
        FitConfig(grid=Grid(dx=0.5))
    with pytest.raises(ValueError, match="hidden applies to neural models"):
        FitConfig(model="gray-scott", hidden=1)
    with pytest.raises(ValueError, match="perturb applies to fixed models"):
        FitConfig(model="neural-rda", perturb=0.1)
    with pytest.raises(ValueError, match="advection applies to neural-rda"):
        FitConfig(model="neural-chemotaxis", advection=True)
    with pytest.raises(ValueError, match="PDEFitTask fits windows"):
        PDEFitTask(PDEFitConfig(strategy="plain"), 1, 1)
    with pytest.raises(ValueError, match="image_every needs held-out frames"):
        FitConfig(held_out=0, train=TrainConfig(image_every=5))
    with pytest.raises(ValueError, match="validate_every needs held-out frames"):
        FitConfig(fit=PDEFitConfig(strategy="plain"), train=TrainConfig(validate_every=5))
    with pytest.raises(ValueError, match="multiple of 6"):
        FitConfig(fit=PDEFitConfig(strategy="homotopy"), train=TrainConfig(steps=100))


@pytest.mark.heavy
def test_a_short_pde_fit_never_saves_the_untrained_model_as_best(tmp_path, capsys):
    """``diffdyn pde fit`` with fewer steps than one logging block: the held-out frames still
    score the trained model at the end, and best.eqx is that model, not the one training
    started from (whose parameters are the true ones times 1.2 or 0.8). ``--train.image_every``
    draws the held-out rollout."""
    args = ["pde", "fit", "--out", str(tmp_path), "--size", "12", "--frames", "9"]
    args += ["--held_out", "3", "--warmup", "100", "--no-float64", "--train.steps", "3"]
    args += ["--train.log_every", "20", "--train.image_every", "3", "--no-train.progress"]
    assert cli.main([*args, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("diffdyn pde fit: fit a fixed or neural PDE") and "outputs:" in out[-2]
    metrics = json.loads(out[-1])
    assert (metrics["selected_by"], metrics["best_step"], metrics["steps"]) == ("validation", 3, 3)
    np.testing.assert_allclose(metrics["held_out_rmse"], metrics["best_loss"], rtol=1e-5)
    best = AbstractModel.load(tmp_path / "best.eqx")
    for name, value in TRUE.items():
        got = float(getattr(best.rhs, name))
        assert got == pytest.approx(metrics[name], rel=1e-6)
        assert min(abs(got / value - 1.2), abs(got / value - 0.8)) > 1e-4, (name, got)
    for name in ("model.eqx", "loss.png", "held_out.png", "config.yaml", "metrics.json"):
        assert (tmp_path / name).is_file(), name


def test_the_neural_model_to_fit_reads_standardised_inputs():
    """``model_to_fit("neural-rda", ...)`` (what ``diffdyn pde fit`` fits) builds a NeuralRDA that
    reads each observed channel standardised over the training frames (hidden channels
    untouched)."""
    rng = np.random.default_rng(0)
    data = np.stack([0.5 + 0.1 * rng.standard_normal((1, 6, 8, 8)), rng.random((1, 6, 8, 8))], 2)
    rhs = model_to_fit("neural-rda", data, hidden=1, key=jax.random.key(0))
    np.testing.assert_allclose(rhs.input_offset[:2], data.mean(axis=(0, 1, 3, 4)), rtol=1e-12)
    np.testing.assert_allclose(rhs.input_scale[:2], data.std(axis=(0, 1, 3, 4)), rtol=1e-12)
    assert (rhs.input_offset[2], rhs.input_scale[2]) == (0.0, 1.0)
    raw = model_to_fit("neural-rda", data, normalise_inputs=False, key=jax.random.key(0))
    assert raw.input_offset == (0.0, 0.0) and raw.input_scale == (1.0, 1.0)


def test_a_fixed_model_to_fit_starts_perturbed_on_the_data_grid():
    data = np.zeros((1, 4, 2, 8, 8))
    grid = Grid(dx=0.5)
    rhs = model_to_fit("gray-scott", data, key=jax.random.key(0), perturb=0.2, grid=grid)
    assert rhs.grid == grid
    for name, value in TRUE.items():
        ratio = float(getattr(rhs, name)) / value
        assert min(abs(ratio - 1.2), abs(ratio - 0.8)) < 1e-6, (name, ratio)
