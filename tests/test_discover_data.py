"""``diffdyn oscillators discover --data``: a user's trajectory file (.csv, .npy, .npz) read,
split and fitted exactly as the simulated system it came from; every bad file refused in one
line."""

import dataclasses
import json

import equinox as eqx
import jax
import numpy as np
import pytest
import yaml

from diffdyn.common import Plain, SolveConfig, TrainConfig, cli, read_events
from diffdyn.common.cli import main
from diffdyn.oscillators import (
    build_discovery_model,
    check_model_dim,
    discovery_settings,
    fit_system,
    load_trajectory,
    make_dataset,
    trajectory_dataset,
    trajectory_of,
)

SOLVE = SolveConfig(solver="dopri5", rtol=1e-5, atol=1e-7, max_steps=4096)
SOLVE_ARGS = ["--solve.rtol", "1e-5", "--solve.atol", "1e-7"]


def _command():
    cli.load_plugins(("oscillators",))
    return cli.COMMANDS[("oscillators", "discover")]


@pytest.fixture(scope="module")
def lv():
    """Lotka-Volterra without noise (so that its first observation is its initial state)."""
    return make_dataset("lotka-volterra", noise=0.0)


@pytest.fixture(scope="module")
def files(lv, tmp_path_factory):
    """The whole simulated trajectory (training and extrapolation windows) in each format."""
    folder = tmp_path_factory.mktemp("data")
    ts = np.concatenate([lv.ts, lv.ts_extrap])
    ys = np.concatenate([lv.ys, lv.ys_extrap])
    table = np.column_stack([ts, ys])
    paths = {"csv": folder / "lv.csv", "npy": folder / "lv.npy", "npz": folder / "lv.npz"}
    np.savetxt(paths["csv"], table, delimiter=",", header="t,prey,predator", comments="")
    np.savetxt(folder / "exact.csv", table, delimiter=",", fmt="%.17g", header="t,x,y", comments="")
    np.save(paths["npy"], table)
    np.savez(paths["npz"], ts=ts, ys=ys)
    paths["exact_csv"] = folder / "exact.csv"
    return paths


@eqx.filter_jit
def _first_loss(task, field, data):
    return task.loss(field, data, jax.random.key(0))[0]


def test_every_format_reads_the_trajectory_and_splits_it_as_the_simulation(lv, files):
    ts, ys, names = load_trajectory(files["npy"])
    assert names == ("y1", "y2") and ts.dtype == ys.dtype == np.float64
    for kind in ("npz", "exact_csv"):
        other_ts, other_ys, _ = load_trajectory(files[kind])
        np.testing.assert_array_equal(other_ts, ts)
        np.testing.assert_array_equal(other_ys, ys)
    csv_ts, csv_ys, csv_names = load_trajectory(files["csv"])  # numpy's default 18 digits
    assert csv_names == ("prey", "predator")
    np.testing.assert_allclose(csv_ys, ys, rtol=1e-15)
    # the default split is Lotka-Volterra's: 61 training samples of 91, the rest extrapolated
    data = trajectory_dataset(ts, ys)
    assert (len(data.ts), len(data.ts_extrap)) == (len(lv.ts), len(lv.ts_extrap)) == (61, 30)
    for name in ("ts", "ys", "ts_extrap", "ys_extrap", "y0"):
        np.testing.assert_array_equal(getattr(data, name), getattr(lv, name), err_msg=name)
    np.testing.assert_array_equal(data.clean, data.ys)  # a file has no clean version
    assert np.isnan(data.noise_std).all() and data.state_dim == 2
    short = trajectory_dataset(ts, ys, train_points=40)
    assert (len(short.ts), len(short.ts_extrap)) == (40, 51)
    for bad in (1, 91, 2.5, True):
        with pytest.raises(ValueError, match="train_points must be an int in"):
            trajectory_dataset(ts, ys, train_points=bad)


def test_the_model_must_match_the_state_dimension():
    settings = discovery_settings("lotka-volterra", "blackbox", "plain")
    field = build_discovery_model(
        "lotka-volterra", "blackbox", settings, jax.random.key(0), state_dim=3
    )
    assert field(0.0, np.ones(3)).shape == (3,)  # the black box fits any D
    with pytest.raises(ValueError, match="2-D state .* D = 3"):
        check_model_dim("lotka-volterra", "graybox", 3)
    with pytest.raises(ValueError, match="even state dimension .* D = 3"):
        check_model_dim("double-pendulum", "second-order", 3)
    check_model_dim("double-pendulum", "second-order", 2)
    check_model_dim("lotka-volterra", "graybox", 2)


@pytest.mark.heavy
def test_a_data_file_trains_as_the_simulated_system_and_the_fit_learns(lv, files):
    """The same data and model key: the same loss at step 0 whichever way the data came; a
    short plain fit of the black box brings the interpolation MSE far below the variance."""
    ts, ys, _ = load_trajectory(files["exact_csv"])
    data = trajectory_dataset(ts, ys)
    settings = discovery_settings("lotka-volterra", "blackbox", "plain", steps=400, solve=SOLVE)
    train = TrainConfig(steps=400, log_every=50, progress=False)
    with jax.enable_x64(True):
        model_key, train_key = jax.random.split(jax.random.key(1))
        field = build_discovery_model(
            "lotka-volterra", "blackbox", settings, model_key, state_dim=data.state_dim
        )
        task = Plain(solve=SOLVE)
        from_file = float(_first_loss(task, field, trajectory_of(data)))
        simulated = float(_first_loss(task, field, trajectory_of(lv)))
        result, metrics = fit_system(field, data, settings, train_key, train=train)
    assert from_file == simulated == pytest.approx(result.losses[0], rel=1e-12)
    variance = float(np.var(data.ys, axis=0).min())
    assert result.losses[0] > variance  # the untrained model is worse than a constant
    assert metrics["interp_mse"] < variance / 20, (metrics["interp_mse"], variance)
    assert np.isfinite(metrics["extrap_mse"])


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("missing.csv", None, "does not exist"),
        ("words.csv", "t,x\n0,1\n0.1,abc\n0.2,3\n", "row 3 holds 'abc', not a number"),
        ("short.csv", "t,x\n0,1\n0.1,2\n", "has 2 samples; a trajectory needs at least 3"),
        ("back.csv", "t,x\n0,1\n0.2,2\n0.1,3\n", "strictly increasing; sample 2"),
        ("flat.csv", "t,x\n0,1\n0,2\n0.1,3\n", "strictly increasing; sample 1"),
        ("inf.csv", "t,x\n0,1\ninf,2\n0.3,3\n", "time of sample 1 is inf, not a finite"),
        ("nan.csv", "t,x,y\n0,1,2\n0.1,nan,2\n0.2,3,4\n", r"states hold NaN \(sample 1, comp"),
        ("ragged.csv", "t,x\n0,1\n0.1,2,5\n0.2,3\n", "row 3 has 3 columns, the header 2"),
        ("time.csv", "t\n0\n0.1\n0.2\n", "needs the time and at least one state"),
        ("flat.npy", np.arange(5.0), "one array \\[T, 1 \\+ D\\]"),
        ("one.npy", np.arange(5.0)[:, None], "one array \\[T, 1 \\+ D\\]"),
        ("text.npy", np.array([["a", "b"]] * 3), "not real numbers"),
        ("keys.npz", {"t": np.arange(3.0), "y": np.ones((3, 1))}, "exactly the arrays ts"),
        ("shape.npz", {"ts": np.arange(3.0), "ys": np.ones((4, 1))}, "ts must have shape"),
        ("nan.npz", {"ts": np.arange(3.0), "ys": np.array([[1.0], [np.nan], [2]])}, "NaN"),
        ("data.txt", "t,x\n", "unknown format '.txt'"),
    ],
)
def test_a_bad_file_is_one_line_error(tmp_path, capsys, name, make, message):
    path = tmp_path / name
    if isinstance(make, str):
        path.write_text(make)
    elif isinstance(make, dict):
        np.savez(path, **make)
    elif make is not None:
        np.save(path, make)
    with pytest.raises(ValueError, match=message):
        load_trajectory(path)
    # the command: one line on stderr, exit code 2, nothing written
    out = tmp_path / "run"
    assert main(["oscillators", "discover", "--data", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffdyn: error: data file") and len(err.strip().splitlines()) == 1
    assert not (out / "config.yaml").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--noise", "0.1"], "noise is a setting of the simulated data"),
        (["--data_seed", "10"], "data_seed is a setting of the simulated data"),  # the default
        (["--model", "graybox", "--data", "{d3}"], "2-D state"),
        (["--model", "second-order", "--system", "double-pendulum"], None),  # D = 2: even
        (["--sweep"], "a sweep runs the simulated systems"),
        (["--train_points", "91"], "train_points must be an int in [2, 90]"),
        (["--train_points", "1"], "train_points must be >= 2"),
    ],
)
def test_settings_of_simulated_data_are_refused_with_a_data_file(
    tmp_path, capsys, monkeypatch, files, extra, message
):
    d3 = tmp_path / "d3.npz"
    np.savez(d3, ts=np.arange(5.0), ys=np.ones((5, 3)))
    extra = [e.replace("{d3}", str(d3)) for e in extra]
    ran = []
    cmd = _command()
    run = dataclasses.replace(cmd, run=lambda cfg, ctx: ran.append(cfg) or {})
    monkeypatch.setitem(cli.COMMANDS, ("oscillators", "discover"), run)
    argv = ["oscillators", "discover", "--out", str(tmp_path / "run"), "--data", str(files["npy"])]
    code = main([*argv, *extra])
    if message is None:  # accepted: it runs
        assert code == 0 and ran[0].model == "second-order"
        return
    assert code == 2 and not ran
    assert message in capsys.readouterr().err


def test_train_points_needs_a_data_file_and_system_only_chooses_the_settings():
    config = _command().config  # the command's config: DiscoverConfig and the data file
    with pytest.raises(ValueError, match="train_points splits a data file"):
        config(train_points=30)
    assert config(data="x.csv", train_points=30).train_points == 30
    assert config(data="x.csv", system="lorenz").system == "lorenz"


@pytest.mark.heavy
def test_the_command_fits_a_data_file_and_records_it(tmp_path, files, lv):
    out = tmp_path / "run"
    argv = ["oscillators", "discover", "--data", str(files["npy"]), "--out", str(out)]
    argv += ["--method", "plain", "--train.steps", "20", "--train.log_every", "10", "--seed", "3"]
    assert main([*argv, *SOLVE_ARGS]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"] == str(files["npy"]) and metrics["state_dim"] == 2
    assert metrics["steps"] == 20 and "interp_mse_clean" not in metrics
    assert np.isfinite(metrics["interp_mse"]) and np.isfinite(metrics["extrap_mse"])
    ran = yaml.safe_load((out / "config.yaml").read_text())
    assert ran["data"] == str(files["npy"]) and ran["noise"] is None
    assert ran["optim"]["learning_rate"] == 0.02 and ran["width"] == 32  # published values
    assert (out / "best_field.eqx").exists() and (out / "figures" / "fit.png").exists()
    # its first logged loss is the simulated system's for the model of seed 3
    losses = {}
    for path in sorted((out / "tb").glob("events.out.tfevents.*")):
        for event in read_events(path):
            for v in event.summary.value:
                if v.tag == "train/loss":
                    losses[event.step] = v.simple_value
    settings = discovery_settings("lotka-volterra", "blackbox", "plain", solve=SOLVE)
    with jax.enable_x64(True):
        model_key, _ = jax.random.split(jax.random.key(3))
        field = build_discovery_model("lotka-volterra", "blackbox", settings, model_key)
        simulated = float(_first_loss(Plain(solve=SOLVE), field, trajectory_of(lv)))
    assert losses[0] == pytest.approx(simulated, rel=1e-6)  # logged as float32
