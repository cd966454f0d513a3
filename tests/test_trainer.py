"""The common trainer: convergence, exact resume, NaN guard, best model, logging."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffdyn.common import (
    AbstractModel,
    AbstractTask,
    BackgroundCheckpointer,
    OptimConfig,
    TrainConfig,
    Trainer,
    load_checkpoint,
    read_checkpoint_header,
)


class Recorder:
    """A Logger that remembers what it was given."""

    def __init__(self):
        self.logged, self.histograms, self.images, self.videos, self.texts = {}, [], [], [], []
        self.starts = []

    def start(self, step):
        self.starts.append(step)

    def scalar(self, tag, value, step):
        self.logged.setdefault(tag, {})[step] = value

    def scalars(self, tag, values, steps):
        for value, step in zip(values, steps, strict=True):
            self.scalar(tag, float(value), int(step))

    def histogram(self, tag, values, step):
        self.histograms.append((tag, step))

    def image(self, tag, image, step):
        self.images.append((tag, step, np.asarray(image).shape))

    def video(self, tag, frames, step, fps=10):
        self.videos.append((tag, step, np.asarray(frames).shape))

    def text(self, tag, text, step):
        self.texts.append((tag, text, step))

    def hparams(self, hparams, metrics):
        pass

    def flush(self):
        pass

    def close(self):
        pass


class Scalar(eqx.Module):
    w: jax.Array


def regression_data():
    x = jax.random.normal(jax.random.key(1), (32, 2))
    return x, jnp.sin(x[:, :1]) + 0.5 * x[:, 1:]


def mse(model, batch, key):
    x, y = batch
    pred = jax.vmap(model)(x)
    return jnp.mean((pred - y) ** 2), {"mae": jnp.mean(jnp.abs(pred - y))}


def small_mlp():
    return eqx.nn.MLP(2, 1, 16, 2, key=jax.random.key(0))


def params_of(model):
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    return np.concatenate([np.asarray(leaf).ravel() for leaf in leaves])


def test_training_lowers_loss_and_logs_every_step():
    log = Recorder()
    images = []

    def visualise(model, key):
        images.append(1)
        return {"field": jnp.zeros((1, 4, 5)), "movie": jnp.zeros((3, 1, 4, 5))}

    cfg = TrainConfig(steps=200, log_every=64, histogram_every=100, image_every=100, progress=False)
    trainer = Trainer(mse, optax.adam(1e-2), config=cfg, logger=log, visualise=visualise)
    result = trainer.fit(small_mlp(), regression_data(), jax.random.key(0))
    assert result.steps == 200 and len(result.losses) == 200
    assert result.losses[-1] < 0.05 * result.losses[0]
    # every step's loss reaches the logger, with the right step numbers and values
    assert sorted(log.logged["train/loss"]) == list(range(200))
    assert log.starts == [0]  # the run marks its first step once
    np.testing.assert_allclose([log.logged["train/loss"][s] for s in range(200)], result.losses)
    assert set(log.logged) >= {"train/loss", "train/mae", "train/grad_norm"}
    assert {s for _, s in log.histograms} == {100, 200}
    # images at 100, 200 and at the end (200 again): 4-D arrays become videos
    assert [s for _, s, _ in log.images] == [100, 200, 200]
    assert [shape for _, _, shape in log.videos] == [(3, 1, 4, 5)] * 3


def test_best_model_is_the_lowest_training_loss_after_the_first_logging_block():
    # SGD with step 1.1 on (w - 3)^2 overshoots: the error is multiplied by -1.2 every step,
    # so the loss 1.44^t grows and the best state after the first block (steps 0, 1) is step 2.
    def loss(model, batch, key):
        return (model.w - 3.0) ** 2

    config = TrainConfig(steps=10, log_every=2, progress=False)
    result = Trainer(loss, optax.sgd(1.1), config=config).fit(
        Scalar(jnp.asarray(2.0)), None, jax.random.key(0)
    )
    assert result.selected_by == "loss" and result.best_step == 2
    assert result.best_loss == pytest.approx(1.44**2, rel=1e-5)
    assert float(result.best_model.w) == pytest.approx(3.0 - 1.44, rel=1e-5)
    assert abs(float(result.model.w) - 3.0) > 1.0
    # a run no longer than one logging block selects nothing: the best model is the final one
    short = TrainConfig(steps=10, log_every=50, progress=False)
    result = Trainer(loss, optax.sgd(1.1), config=short).fit(
        Scalar(jnp.asarray(2.0)), None, jax.random.key(0)
    )
    assert result.selected_by == "final" and result.best_model is result.model


class HeldOut(AbstractTask):
    """Fit w to the mean of noisy training targets; validation measures the distance to 1."""

    def loss(self, model, batch, key):
        return jnp.mean((model.w - batch) ** 2)

    def evaluate(self, model, key):
        return {"loss": (model.w - 1.0) ** 2, "w": model.w}


def test_the_best_model_is_chosen_by_validation_where_there_is_held_out_data():
    # training pulls w from 0 towards 2 (the training targets); validation prefers w = 1,
    # which plain SGD passes halfway: the best model by validation is the one nearest 1, not
    # the final one, which is the best by training loss
    data = jnp.full((4,), 2.0)
    config = TrainConfig(steps=40, log_every=5, validate_every=1, progress=False)
    log = Recorder()
    result = Trainer(HeldOut(), optax.sgd(0.05), config=config, logger=log).fit(
        Scalar(jnp.asarray(0.0)), data, jax.random.key(0)
    )
    ws = result.validation["w"]
    assert result.selected_by == "validation"
    assert list(result.validation["step"]) == list(range(1, 41))
    best = int(np.argmin(np.abs(ws - 1.0)))
    assert result.best_step == best + 1
    assert float(result.best_model.w) == pytest.approx(ws[best])
    assert abs(float(result.best_model.w) - 1.0) < 0.06 < abs(float(result.model.w) - 1.0)
    assert sorted(log.logged["validation/loss"]) == list(range(1, 41))


def test_options_the_task_cannot_use_are_refused():
    def loss(model, batch, key):
        return model.w**2

    with pytest.raises(ValueError, match="image_every"):
        Trainer(loss, optax.sgd(0.1), config=TrainConfig(image_every=5))
    with pytest.raises(ValueError, match="validate_every"):
        Trainer(loss, optax.sgd(0.1), config=TrainConfig(validate_every=5))
    with pytest.raises(TypeError, match="belong to the task"):
        Trainer(HeldOut(), optax.sgd(0.1), visualise=lambda m, k: {})


def test_an_optim_config_is_built_for_the_run_with_the_task_constraints():
    class Negative(AbstractTask):
        def loss(self, model, batch, key):
            return (model.w + 1.0) ** 2  # pulls w below zero

        def non_negative(self, model):
            return Scalar(True)

    optim = OptimConfig(optimiser="sgd", learning_rate=0.3, schedule="linear", alpha=0.5)
    config = TrainConfig(steps=20, log_every=5, progress=False)
    result = Trainer(Negative(), optim, config=config).fit(
        Scalar(jnp.asarray(1.0)), None, jax.random.key(0)
    )
    assert float(result.model.w) == 0.0  # projected exactly


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path):
    key = jax.random.key(7)

    def noisy_mse(model, batch, key):
        x, y = batch
        idx = jax.random.choice(key, x.shape[0], (8,), replace=False)
        return jnp.mean((jax.vmap(model)(x[idx]) - y[idx]) ** 2)

    def trainer(steps, out):
        cfg = TrainConfig(steps=steps, log_every=4, checkpoint_every=5, progress=False)
        return Trainer(noisy_mse, optax.adam(1e-2), config=cfg, out=out)

    full = trainer(20, tmp_path / "full").fit(small_mlp(), regression_data(), key)
    first = trainer(10, tmp_path / "split").fit(small_mlp(), regression_data(), key)
    assert read_checkpoint_header(tmp_path / "split/checkpoints/latest.ckpt")["step"] == 10
    second = trainer(20, tmp_path / "split").fit(small_mlp(), regression_data(), key, resume=True)
    assert first.steps == 10 and second.steps == 20
    np.testing.assert_array_equal(params_of(second.model), params_of(full.model))
    # every loss from step 0: the first ten come from the checkpoint
    np.testing.assert_array_equal(second.losses, full.losses)
    assert second.best_step == full.best_step
    assert not np.array_equal(params_of(first.model), params_of(full.model))


def test_nan_guard_stops_reports_and_keeps_last_good_checkpoint(tmp_path):
    # loss = w + 0*sqrt(w): gradient 1, so SGD(lr=1) walks w = 5.5, 4.5, ...; at step 6
    # w = -0.5 and the loss becomes NaN.
    def loss(model, batch, key):
        return model.w + 0.0 * jnp.sqrt(model.w)

    log = Recorder()
    cfg = TrainConfig(steps=50, log_every=1, checkpoint_every=1, progress=False)
    trainer = Trainer(loss, optax.sgd(1.0), config=cfg, logger=log, out=tmp_path)
    result = trainer.fit(Scalar(jnp.asarray(5.5)), None, jax.random.key(0))
    assert result.diverged_at == 6
    np.testing.assert_allclose(result.losses, [5.5, 4.5, 3.5, 2.5, 1.5, 0.5])
    assert float(result.model.w) == pytest.approx(-0.5)
    assert any("step 6" in text for _, text, _ in log.texts)
    ckpt, header = load_checkpoint(
        tmp_path / "checkpoints/latest.ckpt",
        trainer.init_state(Scalar(jnp.asarray(0.0)), None, jax.random.key(0))[0],
    )
    assert header["step"] == 6
    assert float(ckpt.params.w) == pytest.approx(-0.5)


def test_nan_guard_with_coarse_logging_returns_the_last_verified_state():
    def loss(model, batch, key):
        return model.w + 0.0 * jnp.sqrt(model.w)

    cfg = TrainConfig(steps=50, log_every=4, progress=False)
    result = Trainer(loss, optax.sgd(1.0), config=cfg).fit(
        Scalar(jnp.asarray(5.5)), None, jax.random.key(0)
    )
    assert result.diverged_at == 6
    # losses of steps 0..3 were verified in the first block; the state after step 3 is kept
    assert float(result.model.w) == pytest.approx(1.5)
    assert np.all(np.isfinite(result.losses))


class Weight(AbstractModel):
    w: jax.Array

    def __init__(self, w=0.0):
        self.w = jnp.asarray(w)


def test_non_finite_parameters_after_a_finite_block_are_never_kept(tmp_path):
    """At w = 2.5 the loss is finite but its gradient is infinite, so the update of the last
    step of a finite block makes w = -inf; the final model falls back to the best state,
    and no model file holds a non-finite parameter."""

    def loss(model, batch, key):
        return model.w + 1e-30 * jnp.sqrt(jnp.maximum(model.w - 2.5, 0.0))

    log = Recorder()
    cfg = TrainConfig(steps=50, log_every=2, progress=False)
    trainer = Trainer(loss, optax.sgd(1.0), config=cfg, logger=log, out=tmp_path)
    result = trainer.fit(Weight(5.5), None, jax.random.key(0))
    assert result.diverged_at == 4
    np.testing.assert_allclose(result.losses, [5.5, 4.5, 3.5, 2.5])
    assert float(result.model.w) == float(result.best_model.w) == 2.5
    assert float(Weight.load(tmp_path / "model.eqx").w) == 2.5
    assert any("best state (step 3)" in text for _, text, _ in log.texts)
    with pytest.raises(ValueError, match="NaN or inf"):
        Weight(float("nan")).save(tmp_path / "bad.eqx")
    assert not (tmp_path / "bad.eqx").exists()
    # without a tracked best state there is nothing finite to keep: a clear error
    cfg = TrainConfig(steps=50, log_every=2, progress=False, track_best=False)
    with pytest.raises(FloatingPointError, match="non-finite after step 4"):
        Trainer(loss, optax.sgd(1.0), config=cfg).fit(Weight(5.5), None, jax.random.key(0))


def test_fixed_leaves_are_not_trained():
    from diffdyn.common import fixed_field

    class WithKernel(eqx.Module):
        w: jax.Array
        kernel: jax.Array = fixed_field()

    def loss(model, batch, key):
        return jnp.sum((model.w * model.kernel - 1.0) ** 2)

    model = WithKernel(jnp.ones(3), jnp.asarray([1.0, 2.0, 3.0]))
    result = Trainer(loss, optax.adam(0.1), config=TrainConfig(steps=20, progress=False)).fit(
        model, None, jax.random.key(0)
    )
    np.testing.assert_array_equal(result.model.kernel, model.kernel)
    assert not np.allclose(result.model.w, model.w)


def test_max_seconds_stops_early_and_checkpoints(tmp_path):
    cfg = TrainConfig(steps=10**6, log_every=10, max_seconds=1.0, progress=False)
    trainer = Trainer(mse, optax.adam(1e-2), config=cfg, out=tmp_path)
    result = trainer.fit(small_mlp(), regression_data(), jax.random.key(0))
    assert 0 < result.steps < 10**6 and len(result.losses) == result.steps
    assert read_checkpoint_header(tmp_path / "checkpoints/latest.ckpt")["step"] == result.steps


def test_weakly_typed_parameters_compile_once():
    traces = []

    def loss(model, batch, key):
        traces.append(1)  # runs once per trace, not per step
        return (model.w - 3.0) ** 2

    trainer = Trainer(loss, optax.adam(0.1), config=TrainConfig(steps=3, progress=False))
    state, static = trainer.init_state(Scalar(jnp.asarray(2.0)), None, jax.random.key(0))
    assert not state.params.w.weak_type
    traces.clear()  # init_state traced the loss once to learn the names of the metrics
    step = trainer.make_step(static)
    for _ in range(3):
        state, _ = step(state)
    assert len(traces) == 1


def test_bad_arguments_are_reported():
    with pytest.raises(TypeError, match="AbstractTask or a loss function"):
        Trainer(3, optax.sgd(0.1))
    with pytest.raises(TypeError, match="optimiser"):
        Trainer(mse, "adam")
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)


def test_background_checkpointer_fixes_contents_at_save_and_reports_errors(tmp_path):
    tree = {"w": jnp.arange(3.0), "step": jnp.asarray(4)}
    writer = BackgroundCheckpointer()
    writer.save(tmp_path / "a.ckpt", tree, {"step": 4})
    tree = {"w": tree["w"] + 1.0, "step": jnp.asarray(5)}  # later updates do not leak in
    writer.save(tmp_path / "b.ckpt", tree, {"step": 5})
    writer.wait()
    a, header = load_checkpoint(tmp_path / "a.ckpt", tree)
    assert header["step"] == 4 and np.array_equal(a["w"], np.arange(3.0)) and a["step"] == 4
    b, _ = load_checkpoint(tmp_path / "b.ckpt", tree)
    assert np.array_equal(b["w"], np.arange(3.0) + 1.0)
    (tmp_path / "file").write_text("not a directory")
    writer.save(tmp_path / "file" / "c.ckpt", tree, {"step": 6})
    with pytest.raises(OSError):
        writer.close()


def test_compiled_step_on_leaves_matches_the_pytree_call():
    def loss(model, batch, key):
        return (model.w - 3.0) ** 2, {"half": 0.5 * model.w}

    trainer = Trainer(loss, optax.sgd(0.1), config=TrainConfig(log_every=4, progress=False))
    state, static = trainer.init_state(Scalar(jnp.asarray(2.0)), None, jax.random.key(0))
    step = trainer.make_step(static)
    leaves = step.flatten(state)
    for _ in range(3):
        state, _ = step(state)
        leaves, metrics = step.step_leaves(leaves)
    rebuilt = step.unflatten(leaves)
    assert bool(eqx.tree_equal(rebuilt, state))
    # w_{k+1} = w_k - 0.1 * 2 (w_k - 3): the distance to 3 shrinks by 0.8 per step
    np.testing.assert_allclose(step.field(leaves, "params").w, 3.0 - 0.8**3, rtol=1e-6)
    recent = step.field(leaves, "recent_metrics")
    np.testing.assert_allclose(recent["loss"][:3], [1.0, 0.64, 0.4096], rtol=1e-6)
    np.testing.assert_allclose(recent["half"][2], 0.5 * (3.0 - 0.8**2), rtol=1e-6)
    assert float(metrics["loss"]) == pytest.approx(0.4096)
    other, _ = Trainer(loss, optax.adam(0.1)).init_state(Scalar(jnp.asarray(2.0)), None, state.key)
    with pytest.raises(ValueError, match="structure"):
        step.flatten(other)


@pytest.fixture(scope="module")
def fused_runs():
    """The same noisy run under three call lengths, with images and histograms on odd
    intervals so that calls have to stop at each of them."""

    def noisy_mse(model, batch, key):
        x, y = batch
        idx = jax.random.choice(key, x.shape[0], (8,), replace=False)
        return jnp.mean((jax.vmap(model)(x[idx]) - y[idx]) ** 2)

    def visualise(model, key):
        return {"field": jnp.zeros((1, 2, 2))}

    runs = {}
    for per_call in (1, 7, None):
        log = Recorder()
        cfg = TrainConfig(
            steps=40,
            log_every=6,
            image_every=9,
            histogram_every=11,
            steps_per_call=per_call,
            progress=False,
        )
        trainer = Trainer(noisy_mse, optax.adam(1e-2), config=cfg, logger=log, visualise=visualise)
        runs[per_call] = (trainer.fit(small_mlp(), regression_data(), jax.random.key(3)), log)
    return runs


def test_fused_calls_give_the_same_run_whatever_their_length(fused_runs):
    (one, log_one), (seven, log_seven), (auto, log_auto) = fused_runs.values()
    for result, log in ((seven, log_seven), (auto, log_auto)):
        np.testing.assert_array_equal(params_of(result.model), params_of(one.model))
        np.testing.assert_array_equal(result.losses, one.losses)
        assert log.logged == log_one.logged
    assert len(one.losses) == 40 and sorted(log_one.logged["train/loss"]) == list(range(40))
    assert one.losses[-1] < 0.5 * one.losses[0]


def test_fused_calls_stop_at_every_image_and_histogram_step(fused_runs):
    for _, log in fused_runs.values():
        # every 9 steps and at the end; histograms (one tag per leaf) every 11
        assert [step for _, step, _ in log.images] == [9, 18, 27, 36, 40]
        assert sorted({step for _, step in log.histograms}) == [11, 22, 33]


def test_fused_steps_match_single_compiled_steps():
    trainer = Trainer(mse, optax.adam(1e-2), config=TrainConfig(log_every=4, progress=False))
    state, static = trainer.init_state(small_mlp(), regression_data(), jax.random.key(0))
    step = trainer.make_step(static)
    single = step.flatten(state)
    for _ in range(5):
        single, _ = step.step_leaves(single)
    fused = step.run(step.flatten(state), 5)
    assert int(step.field(fused, "step")) == 5
    for a, b in zip(fused, single, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_call_length_is_validated():
    with pytest.raises(ValueError, match="steps_per_call"):
        TrainConfig(steps_per_call=0)
    with pytest.raises(ValueError, match="call_seconds"):
        TrainConfig(call_seconds=-1.0)


def test_checkpoints_by_wall_clock_whatever_checkpoint_every_is(tmp_path, monkeypatch):
    written = []
    original = Trainer._checkpoint

    def record(self, writer, state, step, *args):
        written.append(step)
        return original(self, writer, state, step, *args)

    monkeypatch.setattr(Trainer, "_checkpoint", record)
    cfg = TrainConfig(steps=20, log_every=5, checkpoint_seconds=1e-9, progress=False)
    Trainer(mse, optax.adam(1e-2), config=cfg, out=tmp_path).fit(
        small_mlp(), regression_data(), jax.random.key(0)
    )
    assert written == [5, 10, 15, 20]  # at every logging boundary once the time has passed
    written.clear()
    cfg = TrainConfig(steps=20, log_every=5, checkpoint_seconds=0, progress=False)
    Trainer(mse, optax.adam(1e-2), config=cfg, out=tmp_path / "b").fit(
        small_mlp(), regression_data(), jax.random.key(0)
    )
    assert written == [20]
    with pytest.raises(ValueError, match="checkpoint_seconds"):
        TrainConfig(checkpoint_seconds=float("nan"))


def test_line_search_optimisers_get_value_grad_and_value_fn():
    """optax.lbfgs needs the loss, the gradient and the loss function at each update; on
    the quadratic 0.5 x'Ax - b'x it reaches the exact minimiser A^-1 b in a few steps."""
    a = jnp.asarray([[3.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.0]])
    b = jnp.asarray([1.0, -2.0, 0.5])

    def loss(x, batch, key):
        return 0.5 * x @ a @ x - b @ x

    cfg = TrainConfig(steps=20, log_every=5, progress=False)
    result = Trainer(loss, optax.lbfgs(), config=cfg).fit(jnp.zeros(3), None, jax.random.key(0))
    np.testing.assert_allclose(result.model, np.linalg.solve(a, b), rtol=1e-5, atol=1e-6)
    # an optimiser without extra arguments still works as before
    plain = Trainer(loss, optax.sgd(0.1), config=cfg).fit(jnp.zeros(3), None, jax.random.key(0))
    assert float(loss(plain.model, None, None)) < 0


def test_a_second_stage_logs_after_the_first_with_first_step():
    recorder, config = Recorder(), TrainConfig(steps=12, log_every=4, progress=False)
    first = Trainer(mse, optax.adam(1e-2), config=config, logger=recorder)
    stage1 = first.fit(small_mlp(), regression_data(), jax.random.key(0))
    second = Trainer(mse, optax.sgd(1e-3), config=config, logger=recorder, first_step=12)
    stage2 = second.fit(stage1.model, regression_data(), jax.random.key(1))
    assert recorder.starts == [0, 12]
    assert sorted(recorder.logged["train/loss"]) == list(range(24))  # no step logged twice
    np.testing.assert_allclose(
        [recorder.logged["train/loss"][12 + s] for s in range(12)], stage2.losses, rtol=1e-6
    )
    assert len(stage2.losses) == 12  # the result counts the stage's own steps
    with pytest.raises(ValueError, match="first_step must be an int >= 0"):
        Trainer(mse, optax.sgd(1e-3), config=config, first_step=-1)


def test_a_resume_names_the_settings_it_changes(tmp_path, capsys):
    def trainer(steps, rate):
        cfg = TrainConfig(steps=steps, log_every=4, progress=False)
        return Trainer(mse, OptimConfig(learning_rate=rate), config=cfg, out=tmp_path)

    trainer(8, 1e-2).fit(small_mlp(), regression_data(), jax.random.key(0))
    settings = read_checkpoint_header(tmp_path / "checkpoints/latest.ckpt")["settings"]
    assert settings["train"]["steps"] == 8 and settings["optim"]["learning_rate"] == 1e-2
    capsys.readouterr()
    trainer(8, 1e-2).fit(small_mlp(), regression_data(), jax.random.key(0), resume=True)
    assert "changed settings" not in capsys.readouterr().out
    trainer(12, 2e-2).fit(small_mlp(), regression_data(), jax.random.key(0), resume=True)
    assert (
        "with changed settings: optim.learning_rate (0.01 -> 0.02), train.steps (8 -> 12)"
        in capsys.readouterr().out
    )
