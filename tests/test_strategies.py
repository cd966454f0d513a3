"""Trajectory-fitting strategies: schedule, segments, equivalences and a small fit."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffdyn.common import (
    Homotopy,
    HomotopySchedule,
    MultipleShooting,
    Plain,
    SolveConfig,
    TrainConfig,
    Trainer,
    Trajectory,
    segment_bounds,
)

W_TRUE = np.array([-0.5, 0.3])
SOLVE = SolveConfig(solver="dopri5", rtol=1e-10, atol=1e-12)


class Decay(eqx.Module):
    """dy/dt = w * y, elementwise (exact solution y0 exp(w t))."""

    w: jax.Array

    def __call__(self, t, y, args):
        return self.w * y


@pytest.fixture(scope="module")
def data():
    with jax.enable_x64(True):
        ts = np.linspace(0.0, 2.0, 21)
        y0 = np.array([1.0, 0.5])
        ys = y0 * np.exp(W_TRUE * ts[:, None])
        yield Trajectory(jnp.asarray(ts), jnp.asarray(ys), jnp.asarray(y0))


@pytest.mark.parametrize(
    "m, expected",
    [
        (5, [1, 0.5663, 0.3060, 0.1499, 0.0562, 0]),
        (6, [1, 0.5804, 0.3287, 0.1776, 0.0870, 0.0326, 0]),
        (7, [1, 0.5885, 0.3416, 0.1934, 0.1045, 0.0512, 0.0192, 0]),
    ],
)
def test_schedule_matches_reference_table(m, expected):
    sched = HomotopySchedule(decrements=m, ratio=0.6, steps_per_plateau=10)
    np.testing.assert_allclose(sched.values, expected, atol=5e-5)
    assert sched.total_steps == 10 * (m + 1)
    lam = np.asarray([sched(e) for e in (0, 9, 10, 10 * m, 10 * (m + 1) + 5)])
    np.testing.assert_allclose(lam, [1, 1, sched.values[1], 0, 0])


@pytest.mark.parametrize("t, s", [(61, 5), (31, 6), (10, 1), (11, 3)])
def test_segments_follow_array_split_and_share_boundaries(t, s):
    bounds = segment_bounds(t, s)
    starts = [c[0] for c in np.array_split(np.arange(t), s)]
    assert [lo for lo, _ in bounds] == starts
    assert [hi for _, hi in bounds] == starts[1:] + [t - 1]
    # joined prediction length: every segment but the last drops its end point
    assert sum(hi - lo for lo, hi in bounds) + 1 == t


def test_segments_reject_too_many():
    with pytest.raises(ValueError, match="segments"):
        segment_bounds(10, 6)


def test_lambda_zero_homotopy_and_one_segment_shooting_equal_plain(data):
    with jax.enable_x64(True):
        field = Decay(jnp.array([-0.2, 0.1]))
        key = jax.random.key(0)
        plain, _ = Plain(solve=SOLVE).loss(field, data, key)
        homotopy = Homotopy.from_data(data, k=4.0, solve=SOLVE)
        coupled = homotopy.objective(field, data, 0.0)
        shoot = MultipleShooting(segments=1, continuity=1.0, solve=SOLVE)
        shot, aux = shoot.loss(shoot.init(field, data), data, key)
        assert float(plain) > 1e-3  # a wrong field: the loss is not trivially zero
        assert float(coupled) == float(plain)
        assert float(aux["objective"]) == float(plain)
        assert float(shot) == float(plain)
        assert float(aux["continuity"]) == 0.0
        # strong coupling synchronises the model with the data: error shrinks like 1/k
        errs = [
            float(Homotopy.from_data(data, k=k, solve=SOLVE).objective(field, data, 1.0))
            for k in (10.0, 100.0)
        ]
        assert errs[1] < errs[0] < float(plain)
        assert errs[1] < 2e-2 * errs[0] * 10  # ~ (1/k)^2 scaling of the squared error


def test_shooting_on_exact_data_has_zero_loss(data):
    with jax.enable_x64(True):
        shoot = MultipleShooting(segments=3, continuity=1.0, solve=SOLVE)
        params = shoot.init(Decay(jnp.asarray(W_TRUE)), data)
        assert params.corrections.shape == (2, 2)
        loss, aux = shoot.objective(params, data)
        assert float(aux["data_mse"]) < 1e-18
        assert float(aux["continuity"]) < 1e-18
        # a correction e on segment 1's start opens a gap e at its start and, carried by the
        # exact flow, e * exp(w dt) at its end: continuity = (e^2 + (e exp(w dt))^2) / 4
        moved = eqx.tree_at(lambda p: p.corrections, params, params.corrections.at[0, 1].set(0.1))
        _, aux = shoot.objective(moved, data)
        carried = 0.1 * np.exp(W_TRUE[1] * 0.7)
        np.testing.assert_allclose(float(aux["continuity"]), (0.1**2 + carried**2) / 4, rtol=1e-6)


def test_selection_score_survives_a_huge_objective(data):
    """The loss's value is the uncoupled score even when the coupled objective is huge, and
    its gradient is the objective's: far-off segment starts must not make a zero loss."""
    shoot = MultipleShooting(segments=3, continuity=1.0, solve=SOLVE, select_uncoupled=True)
    small = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), data)
    params = shoot.init(Decay(jnp.asarray(W_TRUE, jnp.float32)), small)
    params = eqx.tree_at(lambda p: p.corrections, params, params.corrections + 1e8)
    loss, aux = shoot.loss(params, small, jax.random.key(0))
    assert float(aux["objective"]) > 1e15
    assert float(loss) == float(aux["mse"]) < 1e-6  # the exact field: its score is ~0
    grads = jax.grad(lambda p: shoot.loss(p, small, jax.random.key(0))[0])(params)
    objective_grads = jax.grad(lambda p: shoot.objective(p, small)[0])(params)
    np.testing.assert_allclose(grads.corrections, objective_grads.corrections, rtol=1e-6)


def test_homotopy_gradient_matches_finite_differences(data):
    with jax.enable_x64(True):
        homotopy = Homotopy.from_data(data, k=3.0, solve=SOLVE)
        field = Decay(jnp.array([-0.2, 0.1]))

        def f(w):
            return homotopy.objective(Decay(w), data, 0.5)

        grad = np.asarray(jax.grad(f)(field.w))
        h = 1e-6
        for i in range(2):
            e = np.zeros(2)
            e[i] = h
            fd = (float(f(field.w + e)) - float(f(field.w - e))) / (2 * h)
            np.testing.assert_allclose(grad[i], fd, rtol=1e-5)


def test_homotopy_fit_runs_the_schedule_and_selects_by_uncoupled_mse(data):
    with jax.enable_x64(True):
        schedule = HomotopySchedule(decrements=2, ratio=0.6, steps_per_plateau=40)
        homotopy = Homotopy.from_data(data, k=2.0, schedule=schedule, solve=SOLVE)
        with pytest.raises(ValueError, match="scheduled over 120 steps"):
            Trainer(homotopy, optax.adam(0.05), config=TrainConfig(steps=100))
        config = TrainConfig(steps=homotopy.steps(), log_every=40, progress=False)
        result = Trainer(homotopy, optax.adam(0.05), config=config).fit(
            Decay(jnp.array([-0.1, 0.0])), data, jax.random.key(0)
        )
        assert result.steps == schedule.total_steps == len(result.losses) == 120
        # selected by the uncoupled MSE, after the first logging block
        after = result.losses[40:]
        assert result.selected_by == "loss"
        assert result.best_loss == pytest.approx(float(np.min(after)), rel=1e-6)
        assert result.best_step == 40 + int(np.argmin(after))
        # the selected field's uncoupled MSE is the recorded best
        score, mse = homotopy.uncoupled_mse(result.best_model, data)
        np.testing.assert_allclose(float(mse), result.best_loss, rtol=1e-6)
        assert result.best_loss < 1e-2 * float(result.losses[0])
        np.testing.assert_allclose(np.asarray(result.best_model.w), W_TRUE, atol=0.05)


def test_bad_input_is_rejected(data):
    with pytest.raises(ValueError, match="ys"):
        Trajectory(jnp.linspace(0, 1, 5), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="segments"):
        MultipleShooting(segments=0)
    with pytest.raises(ValueError, match="decrements"):
        HomotopySchedule(decrements=0)
    with pytest.raises(TypeError, match="Trajectory"):
        Homotopy.from_data({"ts": 1}, k=1.0)
