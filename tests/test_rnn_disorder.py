"""Sweeps over the disorder of gains or shifts: sigma = 0 is the plain network exactly, the
networks of a point are independent draws measured side by side, the table is their mean and
standard error, options of the other kind of sweep are refused, and the command writes its
table and figure. One small setting throughout (N = 24, float64), so one compilation."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common.cli import main
from diffdyn.rnn import (
    ChaosSweepConfig,
    SpectrumConfig,
    chaos_summary,
    chaos_sweep,
    lyapunov_spectrum,
    sample_network,
    sweep_statistics,
)

N, G, S = 24, 2.0, 3
SPECTRUM = SpectrumConfig(n_exponents=3, t_sim=10.0, t_transient=5.0, t_ons_transient=1.0)
KW = dict(n_samples=S, activation="tanh-positive", spectrum=SPECTRUM)


@pytest.fixture(autouse=True)
def _keep_precision():
    """The command turns float64 on for the process: put the flag back afterwards."""
    before = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.fixture(scope="module")
def sweeps():
    with jax.enable_x64(True):
        key = jax.random.key(7)
        return {
            "weights": chaos_sweep([G, 0.5], N, key=key, **KW),
            "gains": chaos_sweep([0.0, 8.0], N, key=key, parameter="gains", g=G, **KW),
            "shifts": chaos_sweep([0.0, 8.0], N, key=key, parameter="shifts", g=G, **KW),
            "centred": chaos_sweep([0.0], N, key=key, parameter="gains", g=G, centre=1.5, **KW),
        }


def _alone(s, gain=None, shift=None):
    """Network ``s`` of the sweep (key 7), measured on its own, unbatched."""
    model, h0, q_key = sample_network(jax.random.key(7), s, N, activation="tanh-positive")
    model = eqx.tree_at(lambda m: m.weight, model, model.weight * G)
    if gain is not None:
        model = eqx.tree_at(lambda m: m.gain, model, jnp.asarray(gain))
    if shift is not None:
        model = eqx.tree_at(lambda m: m.shift, model, jnp.asarray(shift))
    return np.asarray(_measure(model, h0, q_key)), model


@eqx.filter_jit
def _measure(model, h0, key):
    kw = dict(n_exponents=3, t_sim=10.0, t_transient=5.0, t_ons_transient=1.0)
    return lyapunov_spectrum(model, h0, key=key, checkpoint=False, **kw).exponents


def test_zero_spread_of_gains_or_shifts_is_the_plain_network_exactly(sweeps):
    plain = sweeps["weights"]["exponents"][0]  # g = G: the same networks without disorder
    for parameter in ("gains", "shifts"):
        result = sweeps[parameter]
        np.testing.assert_array_equal(result["exponents"][0], plain)
        base = 1.0 if parameter == "gains" else 0.0
        np.testing.assert_array_equal(result["drawn"][0], base)
        assert np.all(np.abs(result["exponents"][1] - plain) > 1e-6)  # sigma = 8 changes them
    with jax.enable_x64(True):
        for s in range(S):
            np.testing.assert_allclose(plain[s], _alone(s)[0], rtol=1e-12, atol=1e-14)
            # centre = 1.5 at sigma = 0: every gain is 1.5
            gain = np.full(N, 1.5)
            np.testing.assert_allclose(
                sweeps["centred"]["exponents"][0, s], _alone(s, gain=gain)[0], rtol=1e-12
            )


def test_gains_are_normal_around_their_base_with_spread_sigma_over_root_n(sweeps):
    drawn = sweeps["gains"]["drawn"][1]  # sigma = 8: g_i = 1 + 8 xi_i / sqrt(N)
    unit = (drawn - 1.0) * np.sqrt(N) / 8.0
    assert 0.6 < unit.std() < 1.4 and abs(unit.mean()) < 0.5  # 72 draws of N(0, 1)
    assert drawn.min() < 0  # nothing is clipped (sigma / sqrt(N) = 1.6)
    shifts = sweeps["shifts"]["drawn"][1]
    np.testing.assert_allclose(shifts, drawn - 1.0)  # the same unit disorder xi per network
    for a in range(S):  # independent networks: different draws
        for b in range(a):
            assert not np.allclose(drawn[a], drawn[b])


def test_three_networks_are_independent_and_the_table_is_their_mean_and_error(sweeps):
    result = sweeps["gains"]
    with jax.enable_x64(True):
        models = [_alone(s, gain=result["drawn"][1, s]) for s in range(S)]
    for s, (alone, _) in enumerate(models):  # the batch is the networks measured one by one
        np.testing.assert_allclose(result["exponents"][1, s], alone, rtol=1e-12, atol=1e-14)
    weights = [np.asarray(m.weight) for _, m in models]
    assert not np.allclose(weights[0], weights[1]) and not np.allclose(weights[1], weights[2])
    assert len({round(float(x), 10) for x in result["lambda_max"][1]}) == S
    stats = sweep_statistics(result)
    assert stats["parameter"] == "gains" and stats["n_samples"] == S
    np.testing.assert_array_equal(stats["sigma"], [0.0, 8.0])
    for q in ("lambda_max", "dimension", "entropy"):
        x = np.asarray(result[q])
        np.testing.assert_allclose(stats[f"{q}_mean"], np.mean(x, axis=1), rtol=1e-14)
        se = np.std(x, axis=1, ddof=1) / np.sqrt(S)
        np.testing.assert_allclose(stats[f"{q}_se"], se, rtol=1e-12, atol=1e-300)
    summary = chaos_summary(result)
    assert set(summary) == {
        "sigma_first_positive",
        "lambda_max_at_sigma_min",
        "lambda_max_at_sigma_max",
    }
    one = sweep_statistics({**result, "lambda_max": result["lambda_max"][:, :1]})
    assert np.all(np.isnan(one["lambda_max_se"]))  # no error from a single network


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(parameter="gains", activation="tanh-positive", gmin=1.0), "gmin apply only"),
        (dict(parameter="shifts", activation="tanh-positive", n_g=3), "n_g apply only"),
        (dict(parameter="weights", sigma_max=8.0), "sigma_max apply only"),
        (dict(parameter="weights", centre=1.0), "centre apply only"),
        (dict(parameter="weights", g=2.0), "g apply only"),
        (dict(parameter="gains"), "'tanh' ignores them"),  # the default activation
        (dict(parameter="shifts", activation="identity"), "ignores them"),
        (dict(parameter="gains", activation="tanh-positive", sigma_min=0.0), "0 < sigma_min"),
        (dict(parameter="nope"), "must be one of weights, gains, shifts"),
    ],
)
def test_options_of_the_other_sweep_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ChaosSweepConfig(**kwargs)


def test_the_library_refuses_them_too():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="apply only to parameter 'gains' or 'shifts'"):
        chaos_sweep([1.0], 8, key=key, g=2.0)
    with pytest.raises(ValueError, match="apply only to parameter 'gains' or 'shifts'"):
        chaos_sweep([1.0], 8, key=key, centre=1.0)
    with pytest.raises(ValueError, match="ignores them"):
        chaos_sweep([1.0], 8, key=key, parameter="gains", activation="tanh")
    with pytest.raises(ValueError, match="finite sigma >= 0"):
        chaos_sweep([-1.0], 8, key=key, parameter="shifts", activation="tanh-stretched")
    np.testing.assert_allclose(
        ChaosSweepConfig(parameter="gains", activation="tanh-positive").values(),
        2.0 ** np.arange(11),
    )


def test_an_option_given_at_its_default_is_refused_by_the_command(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["rnn", "chaos-sweep", "--parameter", "gains", "--activation", "tanh-positive"]
    assert main([*argv, "--gmin", "0.5", "--out", str(out)]) == 2  # 0.5 is gmin's default
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["diffdyn: error: option(s) gmin apply only to parameter weights, not to 'gains'"]
    assert main(["rnn", "chaos-sweep", "--g", "1", "--out", str(out)]) == 2
    assert "g apply only to parameter gains or shifts" in capsys.readouterr().err
    assert not out.exists()


def test_command_writes_the_table_and_the_figure(tmp_path, capsys):
    out = tmp_path / "shifts"
    argv = [
        "rnn", "chaos-sweep", "--parameter", "shifts", "--activation", "tanh-positive",
        "--n", str(N), "--n_samples", str(S), "--g", str(G), "--sigma_min", "1",
        "--sigma_max", "8", "--n_sigma", "2", "--spectrum.n_exponents", "3",
        "--spectrum.t_sim", "10", "--spectrum.t_transient", "5",
        "--spectrum.t_ons_transient", "1", "--out", str(out), "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["parameter"] == "shifts" and "sigma_first_positive" in metrics
    sweep = json.loads((out / "chaos_sweep.json").read_text())
    assert sweep["parameter"] == "shifts" and sweep["g"] == G
    np.testing.assert_allclose(sweep["sigma"], [1.0, 8.0])
    lam = np.asarray(sweep["lambda_max"])
    assert lam.shape == (2, S) and np.asarray(sweep["drawn"]).shape == (2, S, N)
    stats = sweep["statistics"]
    np.testing.assert_allclose(stats["lambda_max_mean"], lam.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(
        stats["lambda_max_se"], lam.std(axis=1, ddof=1) / np.sqrt(S), rtol=1e-12
    )
    rows = (out / "chaos_sweep.csv").read_text().splitlines()
    assert rows[0].split(",")[:4] == ["sigma", "n_samples", "lambda_max_mean", "lambda_max_se"]
    table = np.array([[float(x) for x in r.split(",")] for r in rows[1:]])
    np.testing.assert_allclose(table[:, 0], [1.0, 8.0])
    np.testing.assert_allclose(table[:, 2], stats["lambda_max_mean"], rtol=1e-15)
    np.testing.assert_allclose(table[:, 3], stats["lambda_max_se"], rtol=1e-15)
    assert (out / "chaos_sweep.png").stat().st_size > 0
    assert metrics["lambda_max_at_sigma_min"] == np.median(lam[0])
