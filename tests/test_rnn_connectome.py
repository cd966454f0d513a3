"""Connectome folders: orientation, Dale's law, Sinkhorn E/I balance, the plain-pickle reader,
and the network config that builds random or connectome networks."""

import os
import pickle

import jax
import numpy as np
import pytest

from diffdyn.common import SolveConfig
from diffdyn.rnn import (
    NetworkConfig,
    RateRNN,
    load_connectome,
    name_map_to_index,
    read_plain_pickle,
    save_connectome,
    sinkhorn_balance,
)

NAMES = ["acetylcholine", "gaba", "glutamate", "serotonin"]


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    n = 30
    adjacency = rng.integers(1, 20, (n, n)) * (rng.random((n, n)) < 0.6)  # A[pre, post]
    np.fill_diagonal(adjacency, 0)
    nt = rng.integers(0, 4, n)
    nt[:3] = [0, 1, 2]
    types = rng.integers(0, 5, n)
    save_connectome(
        tmp_path / "roi",
        adjacency,
        nt,
        NAMES,
        orientation="pre-post",
        signs={"serotonin": 1},
        cell_type=types,
        cell_type_names=list("ABCDE"),
    )
    return tmp_path / "roi", adjacency, nt


def test_orientation_and_dale_signs(folder):
    path, adjacency, nt = folder
    conn = load_connectome(path)
    expected_sign = np.array([1, -1, -1, 1])[nt]
    np.testing.assert_array_equal(conn.presynaptic_sign, expected_sign)
    # J[post, pre] = sign(pre) * A[pre, post]
    np.testing.assert_array_equal(conn.weight, adjacency.T)
    c = conn.sign_matrix()
    np.testing.assert_array_equal(c, (adjacency.T > 0) * expected_sign[None, :])
    for pre in range(conn.n):  # Dale's law: one sign per presynaptic neuron
        assert len(set(c[:, pre][c[:, pre] != 0].tolist())) <= 1


def test_sinkhorn_balance_reaches_tolerance(folder):
    conn = load_connectome(folder[0])
    c = conn.sign_matrix()
    w, info = sinkhorn_balance(conn.weight * (c != 0), c, row_sum=0.5, tol=1e-10)
    exc, inh = w * (c > 0), w * (c < 0)
    np.testing.assert_allclose(exc.sum(1), 0.5, rtol=1e-10)
    np.testing.assert_allclose(inh.sum(1), 0.5, rtol=1e-10)
    np.testing.assert_allclose((c * w).sum(1), 0.0, atol=1e-9)  # E/I balance per neuron
    for block in (exc, inh):  # equal column sums within each class
        cols = block.sum(0)[block.sum(0) > 0]
        np.testing.assert_allclose(cols, cols.mean(), rtol=1e-8)
    assert set(info["error"]) == {"excitatory", "inhibitory"}
    assert (w > 0).sum() == ((conn.weight > 0) & (c != 0)).sum()  # pattern kept


def test_sinkhorn_reports_failure():
    # an inhibitory block without total support: rows {0,1} only reach column 2
    w = np.array([[0.0, 0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 1, 0]])
    with pytest.raises(ValueError, match="did not reach tol"):
        sinkhorn_balance(w, -np.sign(w), tol=1e-12, max_iter=50)


def test_to_rnn_types(folder):
    with jax.enable_x64(True):
        conn = load_connectome(folder[0])
        m = conn.to_rnn(types="neurotransmitter", tol=1e-10)
        assert m.gain.shape == (4,)
        np.testing.assert_array_equal(m.cell_type, folder[2])
        np.testing.assert_allclose(np.asarray(m.coupling).sum(1), 0.0, atol=1e-9)
        m2 = conn.to_rnn(types="cell-type", balance=False)
        assert m2.gain.shape == (5,)
        np.testing.assert_array_equal(np.asarray(m2.coupling), conn.sign_matrix() * conn.weight)
        with pytest.raises(ValueError, match="'types'"):
            conn.to_rnn(types="region")


def test_network_config_builds_the_connectome_or_a_random_network(folder):
    with jax.enable_x64(True):
        solve = SolveConfig(solver="heun", dt0=0.05, adaptive=False)
        cfg = NetworkConfig(connectome=folder[0], activation="tanh-positive", types="cell-type")
        m = cfg.build(solve, key=jax.random.key(0))
        ref = load_connectome(folder[0]).to_rnn(types="cell-type", solve=solve)
        assert m.solve == solve and m.hyperparameters() == ref.hyperparameters()
        for name in ("weight", "sign", "cell_type", "gain"):
            np.testing.assert_array_equal(getattr(m, name), getattr(ref, name))
        random = NetworkConfig(n=12, g=1.5, n_types=3).build(solve, key=jax.random.key(1))
        same = RateRNN(12, g=1.5, n_types=3, solve=solve, key=jax.random.key(1))
        np.testing.assert_array_equal(random.coupling, same.coupling)
        with pytest.raises(ValueError, match="'g'"):  # a connectome has its own weights
            NetworkConfig(connectome=folder[0], g=3.0)
        with pytest.raises(ValueError, match="'types'"):  # a random network has no such types
            NetworkConfig(types="neuron")


def test_unknown_transmitter_and_bad_files(tmp_path):
    save_connectome(tmp_path / "a", np.ones((3, 3)), [0, 1, 1], ["gaba", "dopamine"])
    with pytest.raises(ValueError, match="dopamine"):
        load_connectome(tmp_path / "a")
    save_connectome(
        tmp_path / "b", np.ones((3, 3)), [0, 1, 1], ["gaba", "dopamine"], default_sign=0
    )
    assert list(load_connectome(tmp_path / "b").presynaptic_sign) == [-1, 0, 0]
    save_connectome(tmp_path / "c", -np.ones((3, 3)), [0, 0, 0], ["gaba"])
    with pytest.raises(ValueError, match="non-negative"):
        load_connectome(tmp_path / "c")
    with pytest.raises(ValueError, match="connectome.json"):
        load_connectome(tmp_path / "missing")


def test_plain_pickle_reader(tmp_path):
    data = {101: "gaba", 102: "acetylcholine", "meta": [1, 2.5, None, True, ("x", 3)]}
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps(data, protocol=4))
    assert read_plain_pickle(tmp_path / "ok.pkl") == data
    idx, names = name_map_to_index(np.array([102, 101, 102]), data)
    assert names == ("acetylcholine", "gaba")
    np.testing.assert_array_equal(idx, [0, 1, 0])

    (tmp_path / "np.pkl").write_bytes(pickle.dumps(np.arange(3)))
    with pytest.raises(ValueError, match="refusing to load global"):
        read_plain_pickle(tmp_path / "np.pkl")

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"a": Evil()}))
    with pytest.raises(ValueError, match="refusing"):
        read_plain_pickle(tmp_path / "evil.pkl")
    assert not marker.exists()
    (tmp_path / "set.pkl").write_bytes(pickle.dumps({1, 2}, protocol=2))
    with pytest.raises(ValueError):
        read_plain_pickle(tmp_path / "set.pkl")
