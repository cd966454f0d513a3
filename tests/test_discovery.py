"""Oscillator systems, discovery models and settings, evaluation, and the discover command."""

import csv
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import SolveConfig, TrainConfig
from diffdyn.common.cli import main
from diffdyn.oscillators import (
    SYSTEMS,
    DoublePendulum,
    LotkaVolterra,
    LotkaVolterraGrayBox,
    MLPField,
    SecondOrderField,
    discovery_settings,
    evaluate_field,
    fit_system,
    make_dataset,
)


@pytest.fixture(scope="module")
def lv():
    return make_dataset("lotka-volterra")


def test_lotka_volterra_data_conserves_its_first_integral(lv):
    f = LotkaVolterra()
    for ys in (lv.clean, lv.ys_extrap):
        x, y = ys[:, 0], ys[:, 1]
        v = f.c * x - f.d * np.log(x) + f.b * y - f.a * np.log(y)
        np.testing.assert_allclose(v, v[0], rtol=1e-8)
    assert lv.ts.shape == (61,) and lv.ts[-1] == pytest.approx(6.0)
    # noise: 5 % of the per-dim temporal mean (std ~ (0.102, 0.081), as in Ko et al. 2023)
    np.testing.assert_allclose(lv.noise_std, 0.05 * lv.clean.mean(0), rtol=1e-12)
    np.testing.assert_allclose(lv.noise_std, [0.102, 0.081], atol=2e-3)
    ratio = (lv.ys - lv.clean).std(0) / lv.noise_std
    assert np.all((ratio > 0.7) & (ratio < 1.3))


def test_double_pendulum_conserves_energy():
    ds = make_dataset("double-pendulum", noise=0.0)
    with jax.enable_x64(True):
        e = np.asarray(
            DoublePendulum().energy(jnp.asarray(np.concatenate([ds.clean, ds.ys_extrap])))
        )
    np.testing.assert_allclose(e, e[0], rtol=1e-8, atol=1e-9)
    np.testing.assert_array_equal(ds.ys, ds.clean)  # noise 0 leaves the data clean


def test_true_field_has_zero_interpolation_and_extrapolation_error(lv):
    with jax.enable_x64(True):
        m = evaluate_field(
            LotkaVolterra(), lv, SolveConfig(solver="dopri5", rtol=1e-10, atol=1e-12)
        )
    assert m["interp_mse_clean"] < 1e-14 and m["extrap_mse"] < 1e-14
    np.testing.assert_allclose(m["interp_mse"], np.mean((lv.ys - lv.clean) ** 2), rtol=1e-6)


def test_models_structure_and_save_load(tmp_path):
    key = jax.random.key(0)
    so = SecondOrderField(4, 8, 1, key=key)
    y = jnp.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(np.asarray(so(0.0, y)[:2]), np.asarray(y[2:]))  # dθ/dt = ω
    gb = LotkaVolterraGrayBox(8, 1, a=1.1, d=1.7, learn_rates=True, inputs="interaction", key=key)
    assert gb.num_parameters() == 2 + (1 * 8 + 8) + (8 * 2 + 2)
    gb.save(tmp_path / "gb.eqx")
    back = LotkaVolterraGrayBox.load(tmp_path / "gb.eqx")
    np.testing.assert_array_equal(np.asarray(back(0.0, y[:2])), np.asarray(gb(0.0, y[:2])))
    fixed = LotkaVolterraGrayBox(8, 1, key=key)
    assert fixed.physics == (1.3, 1.8) and fixed.num_parameters() == 8 * 2 + 8 + 8 * 2 + 2
    assert MLPField(3, 50, 2, key=key).num_parameters() == 3 * 50 + 50 + 50 * 50 + 50 + 50 * 3 + 3


def test_settings_follow_the_published_values_and_overrides():
    s = discovery_settings("lotka-volterra", "blackbox", "homotopy")
    assert (s.width, s.depth, s.k, s.learning_rate, s.alpha) == (32, 1, 6.0, 0.05, 1e-3)
    assert (s.decrements + 1) * s.epochs_per_step == 600
    s = discovery_settings(
        "lorenz", "blackbox", "homotopy", epoch_scale=0.5, k=None, learning_rate=0.1
    )
    assert (s.decrements, s.epochs_per_step, s.k, s.learning_rate) == (7, 150, 6.0, 0.1)
    assert (
        discovery_settings("double-pendulum", "second-order", "multiple-shooting").continuity
        == 2e-3
    )
    with pytest.raises(ValueError, match="graybox"):
        discovery_settings("lorenz", "graybox", "plain")
    with pytest.raises(ValueError, match="method"):
        discovery_settings("lorenz", "blackbox", "adjoint")
    with pytest.raises(ValueError, match="unknown system"):
        make_dataset("pendulum")
    assert set(SYSTEMS) == {"lotka-volterra", "lorenz", "double-pendulum", "van-der-pol"}


def test_command_rejects_bad_input_before_compiling(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert (
        main(["oscillators", "discover", "--out", out, "--system", "lorenz", "--model", "graybox"])
        == 2
    )
    assert "graybox" in capsys.readouterr().err
    assert (
        main(["oscillators", "discover", "--out", out, "--sweep", "true", "--targets", "lorenz"])
        == 2
    )
    assert main(["oscillators", "discover", "--out", out, "--sweep", "true", "--workers", "0"]) == 2


@pytest.mark.heavy
def test_sweep_in_two_worker_processes(tmp_path):
    """A sweep run by two worker processes writes every run in order, and each run equals the
    same fit done here."""
    out = tmp_path / "sweep"
    argv = ["oscillators", "discover", "--out", str(out), "--sweep", "true", "--workers", "2"]
    argv += ["--methods", "plain,homotopy", "--seeds", "10,20", "--epoch_scale", "0.005"]
    argv += ["--rtol", "1e-5", "--atol", "1e-7"]
    code = f"from diffdyn.common.cli import main; raise SystemExit(main({argv!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["seed"]) for r in rows] == [
        ("plain", "10"),
        ("plain", "20"),
        ("homotopy", "10"),
        ("homotopy", "20"),
    ]
    assert "| lotka-volterra | blackbox | homotopy | 2 |" in (out / "results.md").read_text()
    with jax.enable_x64(True):
        _, metrics = fit_system(
            make_dataset("lotka-volterra"),
            "blackbox",
            "plain",
            discovery_settings("lotka-volterra", "blackbox", "plain", epoch_scale=0.005),
            jax.random.key(20),
            solve=SolveConfig(solver="dopri5", rtol=1e-5, atol=1e-7, max_steps=4096),
            train=TrainConfig(log_every=100, progress=False),
        )
    assert int(rows[1]["epochs"]) == metrics["epochs"] == 20
    assert float(rows[1]["interp_mse"]) == pytest.approx(metrics["interp_mse"], rel=1e-9)


@pytest.mark.heavy
def test_graybox_recovers_a_and_d_on_noise_free_data():
    """Gray box (a x, -d y) + MLP(x y) with trainable a, d from 15 % / 11 % off; homotopy."""
    ds = make_dataset("lotka-volterra", noise=0.0)
    s = discovery_settings(
        "lotka-volterra",
        "graybox",
        "homotopy",
        width=8,
        depth=1,
        epochs_per_step=120,
        weight_decay=0.0,
        alpha=0.0,
    )
    with jax.enable_x64(True):
        result, metrics = fit_system(
            ds,
            "graybox",
            "homotopy",
            s,
            jax.random.key(0),
            solve=SolveConfig(solver="dopri5", rtol=1e-7, atol=1e-9),
            model_kwargs={"learn_rates": True, "inputs": "interaction", "a": 1.1, "d": 1.6},
        )
    a, d = (float(v) for v in result.best_field.physics)
    assert abs(a / 1.3 - 1) < 0.05 and abs(d / 1.8 - 1) < 0.05, (a, d)
