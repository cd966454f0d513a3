"""``diffdyn pde fit --data PATH``: fitting a PDE to a recorded sequence read from a file.

The recordings are advection-diffusion trajectories made with diffdyn itself,
$\\partial_t u = D\\,\\Delta u - \\nabla\\cdot(\\mathbf v u)$ with $D = 0.5$ and
$\\mathbf v = (0.3, 0)$, on a periodic 16 x 16 grid; the fitted model is the same equation
starting from $D = 1 \\pm 0.2$ and $\\mathbf v = 0$, integrated by the same solver, so every
strategy must recover $D$ and $v_x$ to a few per cent from the file alone. The times come
from ``data_dt``, from the .npz file's ``times`` (irregular here, so that spacing them
``data_dt`` apart would fit the wrong coefficients) or from ``--times``."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import AbstractModel, OptimConfig, SolveConfig, TrainConfig, cli
from diffdyn.pde import (
    AdvectionDiffusion,
    FitConfig,
    PDEFitConfig,
    PDESolver,
    fit_pde,
    gaussian,
)

TRUE_D, TRUE_VX = 0.5, 0.3
SOLVE = SolveConfig(solver="heun", dt0=0.25, adaptive=False, rtol=1e-3, atol=1e-3, max_steps=64)
DT = 0.5  # the frame spacing of the regular recordings
IRREGULAR = (0.0, 0.25, 0.75, 1.25, 1.5, 2.25, 3.0, 3.5)  # multiples of SOLVE.dt0


@pytest.fixture(autouse=True)
def _keep_precision():
    """fit_pde switches float64 on for the process (FitConfig.float64): put it back."""
    before = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """``two.npy``: two sequences [2, 8, 1, 16, 16] DT apart (two Gaussians);
    ``one.npz``: one sequence [8, 1, 16, 16] at the IRREGULAR times, stored with them."""
    folder = tmp_path_factory.mktemp("recordings")
    with jax.enable_x64(True):
        solver = PDESolver(AdvectionDiffusion(diffusion=TRUE_D, velocity_x=TRUE_VX), SOLVE)
        starts = [gaussian(16, 1.5, images=1), gaussian(16, 2.0, centre=(5.0, 6.0), images=1)]
        regular = jnp.arange(8) * DT
        two = np.stack([np.asarray(solver(x0, regular)) for x0 in starts])
        one = np.asarray(solver(starts[0], jnp.asarray(IRREGULAR)))
    assert two.shape == (2, 8, 1, 16, 16) and np.ptp(two[:, -1] - two[:, 0]) > 0.1
    np.save(folder / "two.npy", two.astype(np.float32))
    np.save(folder / "one.npy", one.astype(np.float32))
    np.savez(folder / "one.npz", frames=one.astype(np.float32), times=np.asarray(IRREGULAR))
    return folder


def config(data, strategy="windows", steps=60, held_out=2, **kwargs) -> FitConfig:
    fit = {"windows": {"window": 2, "batch_size": 4}, "multiple-shooting": {"segments": 2}}
    return FitConfig(
        model="advection-diffusion",
        data=str(data),
        held_out=held_out,
        fit=PDEFitConfig(strategy=strategy, **fit.get(strategy, {})),
        solve=SOLVE,
        optim=OptimConfig(learning_rate=0.05, schedule="cosine"),
        train=TrainConfig(steps=steps, log_every=10, progress=False),
        **kwargs,
    )


def assert_recovered(run, rtol=0.03):
    d, vx = float(run.model.rhs.diffusion), float(run.model.rhs.velocity_x)
    assert abs(d / TRUE_D - 1) < rtol, d
    assert abs(vx / TRUE_VX - 1) < rtol, vx
    assert abs(float(run.model.rhs.velocity_y)) < 0.01 * TRUE_VX
    assert run.truth is None  # nothing generated: no parameter errors in the metrics
    assert "diffusion_relative_error" not in run.metrics


@pytest.mark.heavy  # over 15 s on 2 cores
def test_windows_recover_the_coefficients_of_two_recorded_sequences(recordings):
    """Windows of both sequences of a .npy file, frames data_dt apart; the last 2 frames of
    each are held out, and the held-out RMSE selects the model."""
    run = fit_pde(config(recordings / "two.npy", data_dt=DT), jax.random.key(0))
    assert_recovered(run)
    np.testing.assert_allclose(run.ts, np.arange(8) * DT)
    assert (run.metrics["sequences"], run.metrics["frames"], run.train_frames) == (2, 8, 6)
    assert run.metrics["selected_by"] == "validation"
    scale = float(np.sqrt(np.mean((run.data[:, 6:] - run.data[:, 5:6]) ** 2)))
    assert run.metrics["held_out_rmse"] < 0.02 * scale  # persistence is 50 times worse


@pytest.mark.heavy
@pytest.mark.parametrize("strategy", ["plain", "multiple-shooting", "homotopy"])
def test_whole_trajectory_strategies_fit_a_npz_with_irregular_times(recordings, strategy):
    """A .npz holding 'frames' and irregular 'times': each strategy of diffdyn.common recovers
    the coefficients on the 6 training frames at those times."""
    steps = 120 if strategy == "multiple-shooting" else 60  # it learns segment starts too
    run = fit_pde(config(recordings / "one.npz", strategy, steps), jax.random.key(1))
    np.testing.assert_array_equal(run.ts, IRREGULAR)
    assert_recovered(run)
    assert (run.metrics["sequences"], run.train_frames) == (1, 6)
    assert run.metrics["held_out_rmse"] < 1e-3


def test_data_settings_are_checked_before_anything_compiles(recordings, tmp_path):
    one, two, npz = (recordings / n for n in ("one.npy", "two.npy", "one.npz"))
    # the generator's settings are refused with --data
    for setting in (
        {"generator": "heat"},
        {"generator_params": '{"feed": 0.04}'},
        {"size": 16},
        {"frames": 8},
        {"warmup": 0.0},
    ):
        (name,) = setting
        with pytest.raises(ValueError, match=f"{name} applies to generated data"):
            FitConfig(data=str(one), **setting)
    with pytest.raises(ValueError, match="times applies to data read from a file"):
        FitConfig(times=(0.0, 1.0))
    with pytest.raises(ValueError, match="times and data_dt both set the frame times"):
        FitConfig(data=str(one), times=tuple(IRREGULAR), data_dt=2.0)
    with pytest.raises(ValueError, match="data must be the path"):
        FitConfig(data="")
    # the channels of a fixed model must be the data's
    with pytest.raises(ValueError, match=r"'gray-scott' has 2 channel\(s\) but .*one.npy' has 1"):
        fit_pde(FitConfig(data=str(one), held_out=2), jax.random.key(0))
    # enough frames must remain for training
    with pytest.raises(ValueError, match="has 8, held_out 6 leaves 2 for training.* = 3"):
        fit_pde(config(one, held_out=6), jax.random.key(0))
    np.save(tmp_path / "three.npy", np.zeros((3, 1, 16, 16), np.float32))
    with pytest.raises(ValueError, match="too few frames: .*three.npy' has 3"):
        fit_pde(config(tmp_path / "three.npy", "plain"), jax.random.key(0))
    # the times: the file's, --times or data_dt, never two of them
    with pytest.raises(ValueError, match="holds its own 'times'; data_dt"):
        fit_pde(config(npz, "plain", data_dt=2.0), jax.random.key(0))
    with pytest.raises(ValueError, match="data: .*holds its own 'times'; do not give times"):
        fit_pde(config(npz, "plain", times=IRREGULAR), jax.random.key(0))
    with pytest.raises(ValueError, match=r"data: .*one time per frame \(8\)"):
        fit_pde(config(one, "plain", times=(0.0, 1.0)), jax.random.key(0))
    with pytest.raises(ValueError, match="data: .*does not exist"):
        fit_pde(config(tmp_path / "missing.npy"), jax.random.key(0))
    # whole-trajectory strategies fit one sequence
    with pytest.raises(ValueError, match=r"fits one trajectory.*two.npy' is \[2, 8, 1, 16, 16\]"):
        fit_pde(config(two, "plain"), jax.random.key(0))


@pytest.mark.heavy
def test_the_command_fits_a_recording_with_given_times(recordings, tmp_path, capsys):
    """``diffdyn pde fit --data one.npy --times ... --quick`` writes metrics.json, the models
    and config.yaml with what ran (3 held-out frames, 20 steps); even these 20 steps move the
    model from its start (D = 1 +- 0.2, v = 0) towards the recording's coefficients."""
    out = tmp_path / "run"
    times = ",".join(str(t) for t in IRREGULAR)
    args = ["pde", "fit", "--data", str(recordings / "one.npy"), "--times", times]
    args += ["--model", "advection-diffusion", "--solve.dt0", "0.25", "--fit.strategy", "plain"]
    args += ["--no-train.progress", "--quick", "--json", "--out", str(out)]
    assert cli.main(args) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == printed
    assert (metrics["frames"], metrics["train_frames"], metrics["steps"]) == (8, 5, 20)
    assert metrics["selected_by"] == "loss" and np.isfinite(metrics["held_out_rmse"])
    best = AbstractModel.load(out / "best.eqx")
    assert isinstance(best.rhs, AdvectionDiffusion) and best.rhs.channels == 1
    d, vx = float(best.rhs.diffusion), float(best.rhs.velocity_x)
    assert 0.01 < vx < TRUE_VX, vx
    assert TRUE_D < d < 1.2 and abs(d - 0.8) > 1e-3, d
    written = (out / "config.yaml").read_text()
    assert "one.npy" in written and "held_out: 3" in written and "3.5" in written
    for name in ("model.eqx", "loss.png", "held_out.png"):
        assert (out / name).is_file(), name
