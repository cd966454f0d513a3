"""Ablations of the discovery sweep: the sampled data (interval, span of the training window),
a sweep over the values of one setting, its report and figure, and a tiny ablation run from
the command line."""

import csv
import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import AbstractModel, SolveConfig, TrainConfig
from diffdyn.common.cli import main
from diffdyn.oscillators import (
    ABLATIONS,
    RESULT_COLUMNS,
    DiscoverConfig,
    discovery_dataset,
    discovery_run,
    make_dataset,
    resolve_discovery,
    summarise_results,
    sweep_runs,
    write_results,
)

#: A looser solve than the published one, for tiny runs (the command line: its tolerances).
SOLVE = SolveConfig(solver="dopri5", rtol=1e-5, atol=1e-7, max_steps=4096)


# ----------------------------------------------------------------------------- the data
def test_another_interval_samples_the_same_trajectory_over_the_same_spans():
    base = make_dataset("lorenz", noise=0.0)
    coarse = make_dataset("lorenz", noise=0.0, dt=0.25)  # the dt of some Lorenz baselines
    # t = 0:0.25:3.0 (13 samples), then 4 more up to t = 4.0, as the system's 31 / 10 at 0.1
    np.testing.assert_allclose(coarse.ts, 0.25 * np.arange(13), rtol=0, atol=1e-15)
    np.testing.assert_allclose(coarse.ts_extrap, 3.0 + 0.25 * np.arange(1, 5), atol=1e-12)
    assert base.ts[-1] == pytest.approx(coarse.ts[-1]) == pytest.approx(3.0)
    # the states at the shared times t = 0, 0.5, ..., 3.0 are one solution of the ODE
    np.testing.assert_allclose(coarse.clean[::2], base.clean[::5], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(coarse.ys_extrap[3], base.ys_extrap[-1], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(coarse.ys, coarse.clean)  # noise 0
    # Lotka-Volterra at 0.3 over [0, 6]: 21 samples, then 10 up to t = 9
    lv = make_dataset("lotka-volterra", dt=0.3)
    assert (len(lv.ts), len(lv.ts_extrap)) == (21, 10)
    assert lv.ts[-1] == pytest.approx(6.0) and lv.ts_extrap[-1] == pytest.approx(9.0)
    # the system's own interval given explicitly is the default data
    same = make_dataset("lotka-volterra", dt=0.1)
    np.testing.assert_array_equal(same.ys, make_dataset("lotka-volterra").ys)


def test_a_shorter_training_span_keeps_the_interval_and_the_extrapolation_span():
    base = make_dataset("lotka-volterra", noise=0.0)
    short = make_dataset("lotka-volterra", noise=0.0, train_span=3.0)
    assert (len(short.ts), len(short.ts_extrap)) == (31, 30)  # t_end 3.1 in Ko et al.'s terms
    np.testing.assert_allclose(short.clean, base.clean[:31], rtol=1e-8)
    np.testing.assert_allclose(short.ys_extrap, base.clean[31:], rtol=1e-8)
    long = make_dataset("lotka-volterra", train_span=9.0)
    assert (len(long.ts), len(long.ts_extrap)) == (91, 30)
    for bad in ({"dt": 0.0}, {"dt": -0.1}, {"train_span": math.inf}, {"train_span": 0.05}):
        with pytest.raises(ValueError, match="dt|train_span|at least 2"):
            make_dataset("lotka-volterra", **bad)


def test_the_run_config_chooses_the_sampled_data():
    data, names = discovery_dataset(DiscoverConfig(system="lorenz", dt=0.25, noise=0.0))
    assert len(data.ts) == 13 and names == ("x", "y", "z")
    ran, _ = resolve_discovery(DiscoverConfig(system="lorenz", dt=0.25))
    assert (ran.dt, ran.train_span, ran.noise) == (0.25, None, 0.25)
    for values, match in (
        ({"dt": 0.0}, "dt must be a finite number > 0"),
        ({"data": "x.csv", "dt": 0.2}, "dt is a setting of the simulated data"),
        ({"data": "x.csv", "train_span": 3.0}, "train_span is a setting of the simulated"),
    ):
        with pytest.raises(ValueError, match=match):
            DiscoverConfig(**values)


# ----------------------------------------------------------------------------- the sweep
def test_an_ablation_runs_every_value_method_and_seed_in_order():
    cfg = DiscoverConfig(
        sweep=True,
        vary="width",
        values=(8.0, 16.0),
        methods=("plain", "homotopy"),
        seeds=(1, 2),
    )
    runs = sweep_runs(cfg)
    assert [name for name, _, _ in runs] == [
        f"lotka-volterra-blackbox/width={w}/{m}/seed{s}"
        for w in (8, 16)
        for m in ("plain", "homotopy")
        for s in (1, 2)
    ]
    for name, one, _ in runs:
        assert not one.sweep and one.vary is None and one.values == ()
        assert one.width == int(name.split("width=")[1].split("/")[0])
        assert isinstance(one.width, int) and resolve_discovery(one)[1].width == one.width
    noise = sweep_runs(dataclasses.replace(cfg, vary="noise", values=(0.0, 0.1)))
    assert sorted({one.noise for _, one, _ in noise}) == [0.0, 0.1]
    assert all(one.width is None for _, one, _ in noise)  # the others keep their values
    assert set(ABLATIONS) == {"train_span", "dt", "noise", "width"}


@pytest.mark.parametrize(
    "values, match",
    [
        ({"vary": "noise"}, "give its values"),
        ({"values": (0.1,)}, "give --vary too"),
        ({"vary": "noise", "values": (0.1,), "noise": 0.2}, "noise is varied by the ablation"),
        ({"vary": "width", "values": (8.5,)}, "whole numbers"),
        ({"vary": "dt", "values": (0.1, 0.0)}, "finite numbers > 0"),
        ({"vary": "noise", "values": (-0.1,)}, "noise must be >= 0"),
        ({"vary": "noise", "values": (0.1, 0.1)}, "distinct"),
    ],
)
def test_a_bad_ablation_is_refused(values, match):
    with pytest.raises(ValueError, match=match):
        DiscoverConfig(sweep=True, **values)
    with pytest.raises(ValueError, match="settings of a sweep"):
        DiscoverConfig(vary="noise", values=(0.1,))


# ----------------------------------------------------------------------------- the report
def _row(value, method, seed, interp, best_step):
    """The metrics of one run of a noise ablation (the MSEs in the ratios 1 : 1/2 : 2)."""
    where = {"system": "lotka-volterra", "model": "blackbox", "vary": "noise", "value": value}
    mses = dict(zip(RESULT_COLUMNS[:3], (interp, interp / 2, 2 * interp), strict=True))
    steps = {"best_step": best_step, "steps": 100, "best_train_mse": interp, "seconds": 1.0}
    return {**where, "method": method, "seed": seed, **mses, **steps}


def test_the_ablation_report_has_a_row_per_value_and_method_and_a_figure(tmp_path):
    rows = [
        _row(
            v,
            m,
            s,
            (1 + 10 * v) * (2 if m == "plain" else 1) * (1 + 0.1 * s),
            (50 if m == "plain" else 20) + s,
        )
        for v in (0.0, 0.1)
        for m in ("plain", "homotopy")
        for s in (1, 2)
    ]
    rows[-1]["best_step"] = 200  # homotopy at noise 0.1: mean best step 110.5 > plain's 51.5
    summary = summarise_results(rows)
    assert [(e["value"], e["method"], e["seeds"]) for e in summary] == [
        (0.0, "plain", 2),
        (0.0, "homotopy", 2),
        (0.1, "plain", 2),
        (0.1, "homotopy", 2),
    ]
    assert summary[2]["interp_mse"] == pytest.approx(2 * 2 * 1.15)
    assert summary[2]["interp_mse_se"] == pytest.approx(np.std([4.4, 4.8], ddof=1) / np.sqrt(2))
    metrics = write_results(rows, tmp_path)
    # lower MSE in fewer steps at noise 0 (21.5 < 51.5), not at noise 0.1 (110.5 > 51.5)
    assert metrics["claim_holds.lotka-volterra:blackbox noise=0"] is True
    assert metrics["claim_holds.lotka-volterra:blackbox noise=0.1"] is False
    assert metrics["runs"] == 8 and metrics["summary"] == summary
    md = (tmp_path / "results.md").read_text().splitlines()
    assert md[0].startswith("| system | model | noise | method | seeds | interp MSE |")
    assert md[1].count("---") == 10
    assert "| lotka-volterra | blackbox | 0.1 | plain | 2 | 4.6 ± 0.2 | 2.3 ± 0.1 |" in md[4]
    with open(tmp_path / "results.csv") as f:
        written = list(csv.DictReader(f))
    assert list(written[0])[:7] == [
        "system",
        "model",
        "vary",
        "value",
        "method",
        "seed",
        "interp_mse",
    ]
    assert [(r["value"], r["method"]) for r in written[::2]] == [
        ("0.0", "plain"),
        ("0.0", "homotopy"),
        ("0.1", "plain"),
        ("0.1", "homotopy"),
    ]
    figure = tmp_path / "figures" / "ablation.png"
    assert metrics["figure"] == str(figure)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- a tiny run
@pytest.mark.heavy
def test_a_tiny_noise_ablation_from_the_command_line(tmp_path):
    """Two noise levels, plain training, one seed, 4 steps: the rows of the table, the MSE
    against the noisy data that of the clean data plus the noise's share, and each entry
    equal to the single run with the same settings."""
    out = tmp_path / "ablation"
    argv = ["oscillators", "discover", "--out", str(out), "--sweep", "--vary", "noise"]
    argv += ["--values", "0,0.5", "--methods", "plain", "--seeds", "10", "--train.steps", "4"]
    argv += ["--train.log_every", "2", "--solve.rtol", "1e-5", "--solve.atol", "1e-7"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["runs"] == 2 and (out / "figures" / "ablation.png").exists()
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["vary"], float(r["value"]), r["method"], r["seed"]) for r in rows] == [
        ("noise", 0.0, "plain", "10"),
        ("noise", 0.5, "plain", "10"),
    ]
    clean, noisy = ({k: float(r[k]) for k in RESULT_COLUMNS[:3]} for r in rows)
    assert clean["interp_mse"] == pytest.approx(clean["interp_mse_clean"], rel=1e-12)
    # |p - y|^2 = |p - c|^2 - 2 (p - c).e + |e|^2 for the data y = c + e at noise 0.5
    data = make_dataset("lotka-volterra", noise=0.5)
    folder = out / "lotka-volterra-blackbox" / "noise=0.5" / "plain" / "seed10"
    with jax.enable_x64(True):
        field = AbstractModel.load(folder / "best_field.eqx")
        pred = np.asarray(SOLVE.solve(field, jnp.asarray(data.y0), jnp.asarray(data.ts)))
    e = data.ys - data.clean
    expected = noisy["interp_mse_clean"] - 2 * np.mean((pred - data.clean) * e) + np.mean(e**2)
    assert noisy["interp_mse"] == pytest.approx(expected, rel=1e-6)
    assert noisy["interp_mse"] > clean["interp_mse"]
    single = discovery_run(
        DiscoverConfig(
            method="plain",
            noise=0.5,
            train=TrainConfig(steps=4, log_every=2, progress=False),
            solve=SOLVE,
        ),
        seed=10,
        given={"train.steps"},
    )
    for name in ("interp_mse", "interp_mse_clean", "extrap_mse"):
        assert noisy[name] == pytest.approx(single[name], rel=1e-9), name
    assert int(rows[1]["best_step"]) == single["best_step"]
