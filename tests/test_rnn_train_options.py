"""Training options of ``rnn train``: random parameter subsets (FlyStability's
parameter-efficiency experiment), the sinai loss (minus the sum of the exponents), the
Lyapunov penalty and several networks per run (vmapped)."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from diffdyn.common import OptimConfig, TrainConfig, Trainer
from diffdyn.rnn import (
    RateRNN,
    SpectrumConfig,
    SpectrumTask,
    SpectrumTrainConfig,
    SubsetConfig,
    fit_spectra,
    random_subset,
)

ROOT = Path(__file__).resolve().parents[1]
SHORT = SpectrumConfig(n_exponents=2, t_sim=5.0, t_transient=2.0, t_ons_transient=1.0)


def _masks(subset):
    return {name: np.asarray(getattr(subset, name)) for name in ("gain", "shift", "weight")}


def test_random_subsets_honour_the_counts_and_are_reproducible_from_the_key():
    model = RateRNN(10, g=2.0, activation="tanh-stretched", n_types=4, key=jax.random.key(0))
    subset = random_subset(model, gains=3, shifts=1, weights=7, key=jax.random.key(1))
    assert subset.counts() == {"gain": 3, "shift": 1, "weight": 7}
    again = random_subset(model, gains=3, shifts=1, weights=7, key=jax.random.key(1))
    for name, mask in _masks(subset).items():
        np.testing.assert_array_equal(mask, _masks(again)[name])
    other = random_subset(model, gains=3, shifts=1, weights=7, key=jax.random.key(2))
    assert not np.array_equal(_masks(other)["weight"], _masks(subset)["weight"])
    indices = subset.indices()
    assert len(indices["gain"]) == 3 and len(indices["shift"]) == 1
    pairs = np.asarray(indices["weight"])
    assert pairs.shape == (7, 2)
    assert np.all(pairs[:, 0] != pairs[:, 1])  # only existing connections: no self-coupling
    assert np.all(np.asarray(model.sign)[pairs[:, 0], pairs[:, 1]] != 0)
    # every connection can be chosen, and no more
    full = random_subset(model, weights=90, key=jax.random.key(3))
    np.testing.assert_array_equal(_masks(full)["weight"], np.asarray(model.sign) != 0)


def test_bad_counts_are_refused():
    model = RateRNN(10, g=2.0, activation="tanh-stretched", n_types=4, key=jax.random.key(0))
    key = jax.random.key(1)
    with pytest.raises(ValueError, match="'gains' is 5 but the network has 4 cell types"):
        random_subset(model, gains=5, key=key)
    with pytest.raises(ValueError, match="'weights' is 91 but the network has 90 connections"):
        random_subset(model, weights=91, key=key)
    with pytest.raises(ValueError, match="'shifts' must be an integer >= 0"):
        random_subset(model, shifts=-1, key=key)
    with pytest.raises(ValueError, match="at least one"):
        random_subset(model, key=key)
    with pytest.raises(ValueError, match="no gain or shift"):
        random_subset(RateRNN(4, key=key), gains=1, key=key)  # plain tanh has no gain
    with pytest.raises(ValueError, match="subset.gains"):
        SubsetConfig(gains=-2)
    with pytest.raises(ValueError, match="trainable subset needs"):
        SpectrumTrainConfig(trainable="subset")
    with pytest.raises(ValueError, match="apply to trainable subset"):
        SpectrumTrainConfig(subset=SubsetConfig(gains=2))
    task = SpectrumTask(0.0, SHORT, trainable="subset")
    with pytest.raises(ValueError, match="ParameterSubset"):
        task.split(model)  # a subset task needs the subset
    with pytest.raises(ValueError, match="ParameterSubset"):
        SpectrumTask(0.0, SHORT).split(model, random_subset(model, gains=1, key=key))


def _assert_only_the_subset_moved(new, old, subset):
    for name, mask in _masks(subset).items():
        before, after = np.asarray(getattr(old, name)), np.asarray(getattr(new, name))
        np.testing.assert_array_equal(after[~mask], before[~mask])  # bit-identical
        assert np.all(after[mask] != before[mask]), name  # every chosen entry moved
    for name in ("sign", "bias", "cell_type"):
        np.testing.assert_array_equal(getattr(new, name), getattr(old, name))
    assert float(jnp.min(new.weight)) >= 0.0


def test_a_subset_trains_its_entries_and_leaves_the_others_bit_identical():
    """Even under decoupled weight decay (which moves every stored value) the frozen entries
    keep their initial values exactly: the mask picks them from the initial network."""
    with jax.enable_x64(True):
        model = RateRNN(8, g=3.0, activation="tanh-stretched", key=jax.random.key(3))
        subset = random_subset(model, gains=2, shifts=3, weights=6, key=jax.random.key(4))
        task = SpectrumTask(-0.5, SHORT, trainable="subset")
        params = task.split(model, subset)
        # the trainer sees whole leaves; the gradient of a frozen entry is exactly zero
        grads = eqx.filter_grad(lambda p: task.loss(p, jnp.ones(8), jax.random.key(0))[0])(params)
        for name, mask in _masks(subset).items():
            g = np.asarray(getattr(grads.trained, name))
            assert np.all(g[~mask] == 0.0) and np.all(g[mask] != 0.0)
        result = Trainer(
            task,
            OptimConfig(optimiser="adamw", learning_rate=0.05, weight_decay=0.5),
            config=TrainConfig(steps=4, log_every=2, progress=False),
        ).fit(params, jax.random.normal(jax.random.key(5), (8,)), jax.random.key(6))
        _assert_only_the_subset_moved(result.model, model, subset)


def _small_config(**kw):
    settings = {
        "network": dataclasses.replace(SpectrumTrainConfig().network, n=10),
        "spectrum": SHORT,
        "validation_t_sim": 10.0,
        "train": TrainConfig(steps=3, log_every=3, progress=False),
    }
    return SpectrumTrainConfig(**{**settings, **kw})


def test_several_networks_train_together_each_with_its_own_subset():
    with jax.enable_x64(True):
        cfg = _small_config(
            trainable="subset", subset=SubsetConfig(gains=2, weights=4), n_samples=3
        )
        fits = fit_spectra(cfg, key=jax.random.key(0))
        assert len(fits) == 3
        assert not np.array_equal(fits[0].network.weight, fits[1].network.weight)
        assert not np.array_equal(_masks(fits[0].subset)["gain"], _masks(fits[1].subset)["gain"])
        for fit in fits:
            assert fit.subset.counts() == {"gain": 2, "shift": 0, "weight": 4}
            _assert_only_the_subset_moved(fit.result.model, fit.network, fit.subset)
            # the vmapped validation spectra are those of each network measured alone
            np.testing.assert_allclose(
                fit.before, fit.task.validation_spectrum(fit.network), rtol=1e-9
            )
            np.testing.assert_allclose(
                fit.after, fit.task.validation_spectrum(fit.result.best_model), rtol=1e-9
            )
        # sample 0 is the run of the key alone: the same network, subset and training
        alone = fit_spectra(dataclasses.replace(cfg, n_samples=1), key=jax.random.key(0))[0]
        np.testing.assert_array_equal(alone.network.weight, fits[0].network.weight)
        for name, mask in _masks(alone.subset).items():
            np.testing.assert_array_equal(mask, _masks(fits[0].subset)[name])
        np.testing.assert_allclose(alone.result.model.gain, fits[0].result.model.gain, rtol=1e-9)
        np.testing.assert_allclose(alone.result.losses, fits[0].result.losses, rtol=1e-9)


def _linear(n=5, seed=0):
    j = np.asarray(RateRNN(n, g=1.4, key=jax.random.key(seed)).coupling, dtype=np.float64)
    j = (j + j.T) / 2  # a symmetric coupling: an aligned basis converges at once
    return RateRNN.from_coupling(j, activation="identity"), j


def test_the_sinai_loss_is_minus_the_sum_of_the_exact_linear_spectrum():
    """A linear network's exponents are log|eig((1 - dt) I + dt J)| / dt: the sinai loss
    is minus the sum of the first k, and the penalty adds w (lambda_1 - target)^2."""
    with jax.enable_x64(True):
        model, j = _linear()
        dt = model.dt
        exact = np.sort(np.log(np.abs(np.linalg.eigvals((1 - dt) * np.eye(5) + dt * j))))[::-1]
        exact = exact[:3] / dt
        spectrum = SpectrumConfig(n_exponents=3, t_sim=200.0, t_transient=0.0, t_ons_transient=100)
        h0 = jnp.full(5, 0.1)
        task = SpectrumTask(None, spectrum, trainable="weights", loss="sinai")
        assert not task.has_target
        value, _ = eqx.filter_jit(task.loss)(task.init(model, h0), h0, jax.random.key(1))
        np.testing.assert_allclose(value, -exact.sum(), rtol=1e-8)
        penalised = SpectrumTask(
            None,
            spectrum,
            trainable="weights",
            loss="sinai",
            lyapunov_weight=2.0,
            lyapunov_target=-0.1,
        )
        value, aux = eqx.filter_jit(penalised.loss)(
            penalised.init(model, h0), h0, jax.random.key(1)
        )
        np.testing.assert_allclose(value, -exact.sum() + 2.0 * (exact[0] + 0.1) ** 2, rtol=1e-8)
        np.testing.assert_allclose(aux["distance"], -exact.sum(), rtol=1e-8)
    with pytest.raises(ValueError, match="'target' must be None with loss 'sinai'"):
        SpectrumTask(0.0, spectrum, loss="sinai")
    with pytest.raises(ValueError, match="'target' must be None"):
        SpectrumTask(None, spectrum, loss="mse")
    with pytest.raises(ValueError, match="lyapunov_weight is 0"):
        SpectrumTask(0.0, spectrum, lyapunov_target=0.5)
    with pytest.raises(ValueError, match="takes no target"):
        SpectrumTrainConfig(loss="sinai", target=0.5)
    with pytest.raises(ValueError, match="lyapunov_weight' must be >= 0"):
        SpectrumTrainConfig(lyapunov_weight=-1.0)


@pytest.mark.heavy
def test_the_penalty_keeps_lambda_max_closer_to_its_target():
    """The sinai loss drives the exponents up (here from a fixed point towards 0); with the
    penalty towards -0.2 the largest one ends closer to -0.2."""
    with jax.enable_x64(True):
        base = _small_config(
            loss="sinai",
            network=dataclasses.replace(SpectrumTrainConfig().network, n=16, g=1.5),
            spectrum=SpectrumConfig(
                n_exponents=2, t_sim=20.0, t_transient=10.0, t_ons_transient=2.0
            ),
            validation_t_sim=100.0,
            optim=OptimConfig(learning_rate=0.1),
            train=TrainConfig(steps=15, log_every=5, progress=False),
        )
        free = fit_spectra(base, key=jax.random.key(0))[0]
        held = fit_spectra(
            dataclasses.replace(base, lyapunov_weight=20.0, lyapunov_target=-0.2),
            key=jax.random.key(0),
        )[0]
        lam_free = float(np.max(free.task.validation_spectrum(free.result.model)))
        lam_held = float(np.max(held.task.validation_spectrum(held.result.model)))
        assert lam_free > free.before.max() + 0.05  # the loss alone raises lambda_max
        assert abs(lam_held + 0.2) < abs(lam_free + 0.2), (lam_held, lam_free)


def _diffdyn(*args, cwd=ROOT):
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from diffdyn.common.cli import main; sys.exit(main())",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--trainable", "subset", "--subset.gains", "1000"], "'gains' is 1000"),
        (["--trainable", "subset", "--subset.weights", "-1"], "subset.weights"),
        (["--subset.shifts", "3"], "apply to trainable subset"),
        (["--loss", "sinai", "--target", "0.5"], "takes no target"),
    ],
)
def test_bad_train_options_are_one_line_and_exit_2(tmp_path, args, message):
    proc = _diffdyn("rnn", "train", "--out", str(tmp_path / "run"), "--network.n", "10", *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffdyn: error:") and message in lines[0]


@pytest.mark.heavy
def test_train_records_the_trained_subset_of_every_network(tmp_path):
    out = tmp_path / "subset"
    proc = _diffdyn(
        "rnn",
        "train",
        "--json",
        "--out",
        str(out),
        "--trainable",
        "subset",
        "--subset.gains",
        "3",
        "--subset.weights",
        "5",
        "--n_samples",
        "2",
        "network.n=12",
        "spectrum.n_exponents=2",
        "spectrum.t_sim=5",
        "spectrum.t_transient=2",
        "spectrum.t_ons_transient=1",
        "validation_t_sim=10",
        "train.steps=2",
        "train.log_every=2",
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert metrics["n_samples"] == 2 and metrics["steps"] == 2
    ran = yaml.safe_load((out / "config.yaml").read_text())
    assert ran["subset"] == {"gains": 3, "shifts": 0, "weights": 5} and ran["n_samples"] == 2
    record = json.loads((out / "trained_subset.json").read_text())
    assert record["counts"] == {"gain": 3, "shift": 0, "weight": 5}
    assert len(record["samples"]) == 2
    for sample in record["samples"]:
        assert len(sample["gain"]) == 3 and sample["shift"] == [] and len(sample["weight"]) == 5
    spectra = json.loads((out / "spectra.json").read_text())
    assert np.shape(spectra["before"]) == np.shape(spectra["after"]) == (2, 2)
    lam = np.max(np.asarray(spectra["after"]), axis=1)
    np.testing.assert_allclose(metrics["lambda_max_after_mean"], lam.mean())
    for s in range(2):
        assert (out / f"member_{s}" / "best.eqx").stat().st_size > 0
