"""Importing a FlyStability region-of-interest folder: orientation (A[pre, post] becomes
J[post, pre]), Dale's law (signs by the presynaptic neuron's E/I label), names and ids
round-trip through the connectome folder, and every bad folder is one clear error."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from diffdyn.common.cli import main
from diffdyn.rnn import (
    REFERENCE_FILES,
    import_reference_connectome,
    load_connectome,
)

IDS = np.array([1001, 1002, 1003, 1004, 1005, 1006], dtype=np.int64)
# neuron id -> transmitter; E/I labels below are consistent within each transmitter
NT = {1001: "acetylcholine", 1002: "gaba", 1003: "acetylcholine", 1004: "glutamate",
      1005: "gaba", 1006: "serotonin"}  # fmt: skip
EI = np.array([1, 0, 1, 0, 0, 1])  # 0 inhibitory, 1 excitatory
CBF = {int(i): f"CBF{int(i) % 3}" for i in IDS} | {9999: "unused"}


def _adjacency():
    """A[pre, post]: an asymmetric pattern whose transpose is easy to tell apart."""
    a = np.zeros((6, 6))
    a[0, 1], a[0, 3], a[1, 0], a[1, 2] = 5, 2, 3, 1  # 0 -> 1 (5 synapses), ...
    a[2, 4], a[3, 5], a[4, 0], a[5, 2], a[5, 3] = 7, 4, 6, 2, 8
    return a


def _write_reference(folder: Path, **override):
    """A FlyStability ROI folder; ``override`` replaces a file's content by role."""
    folder.mkdir(parents=True, exist_ok=True)
    content = {
        "adjacency": _adjacency(),
        "neuron_id": IDS,
        "excitatory": EI,
        "neurotransmitter": NT,
        "cell_type": CBF,
    } | override
    for role, name in REFERENCE_FILES.items():
        if content[role] is None:
            continue
        if name.endswith(".npy"):
            np.save(folder / name, np.asarray(content[role]))
        else:
            (folder / name).write_bytes(pickle.dumps(content[role]))
    return folder


def test_orientation_dale_signs_names_and_ids_round_trip(tmp_path):
    src = _write_reference(tmp_path / "EB")
    conn = import_reference_connectome(src, tmp_path / "eb")
    again = load_connectome(tmp_path / "eb")  # what any later run reads
    for c in (conn, again):
        # weight[post, pre] = A[pre, post]: neuron 0 sends 5 synapses to neuron 1
        np.testing.assert_array_equal(c.weight, _adjacency().T)
        assert c.weight[1, 0] == 5 and c.weight[0, 1] == 3
        # Dale's law: every synapse of neuron j carries j's sign, 2 * ei_j - 1
        np.testing.assert_array_equal(c.presynaptic_sign, 2 * EI - 1)
        expected = (_adjacency().T > 0) * (2 * EI - 1)[None, :]
        np.testing.assert_array_equal(c.sign_matrix(), expected)
        # names and ids round-trip
        np.testing.assert_array_equal(c.neuron_id, IDS)
        names = [c.neurotransmitter_names[k] for k in c.neurotransmitter]
        assert names == [NT[int(i)] for i in IDS]
        types = [c.cell_type_names[k] for k in c.cell_type]
        assert types == [CBF[int(i)] for i in IDS]
        assert "unused" not in c.cell_type_names
    # the E/I labels, not diffdyn's defaults, give each transmitter its sign
    manifest = json.loads((tmp_path / "eb" / "connectome.json").read_text())
    assert manifest["orientation"] == "pre-post"
    assert manifest["signs"] == {"acetylcholine": 1, "gaba": -1, "glutamate": -1, "serotonin": 1}
    # the network built from it: J[post, pre] = sign(pre) * A[pre, post], no self-coupling
    j = np.asarray(conn.to_rnn(balance=False).coupling)
    np.testing.assert_allclose(j, _adjacency().T * (2 * EI - 1)[None, :])


def test_post_pre_orientation_and_mixed_classes(tmp_path):
    src = _write_reference(tmp_path / "roi", excitatory=np.array([1, 0, 0, 0, 0, 1]))
    # neurons 1001 and 1003 (acetylcholine) now disagree: refused, naming the class
    with pytest.raises(ValueError, match="'acetylcholine' holds 1 excitatory and 1 inhib"):
        import_reference_connectome(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    conn = import_reference_connectome(
        src, tmp_path / "out", orientation="post-pre", split_mixed=True
    )
    np.testing.assert_array_equal(conn.weight, _adjacency())  # already weight[post, pre]
    names = [conn.neurotransmitter_names[k] for k in conn.neurotransmitter]
    assert names[:3] == ["acetylcholine (excitatory)", "gaba", "acetylcholine (inhibitory)"]
    np.testing.assert_array_equal(conn.presynaptic_sign, [1, -1, -1, -1, -1, 1])


def test_existing_destination_needs_force_and_is_replaced_whole(tmp_path):
    src = _write_reference(tmp_path / "roi")
    dst = tmp_path / "out"
    import_reference_connectome(src, dst)
    (dst / "stale.npy").write_bytes(b"left over")
    with pytest.raises(ValueError, match="exists; pass force=True"):
        import_reference_connectome(src, dst)
    import_reference_connectome(src, dst, force=True)
    assert not (dst / "stale.npy").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(ValueError, match="neither empty nor a connectome folder"):
        import_reference_connectome(src, other, force=True)
    assert (other / "thesis.tex").read_text() == "keep me"


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "override, message",
    [
        ({"adjacency": None}, "has no adjacency_scc.npy"),
        ({"cell_type": None}, "has no cell_body_fiber_assignments.pkl"),
        ({"adjacency": np.ones((6, 5))}, "must be a square [N, N] matrix"),
        ({"adjacency": -_adjacency()}, "non-negative"),
        ({"neuron_id": IDS[:5]}, "must hold 6 integer neuron ids"),
        ({"neuron_id": np.array([1, 1, 2, 3, 4, 5])}, "repeats neuron ids [1]"),
        ({"excitatory": EI[:4]}, "shape (6,); got (4,)"),
        ({"excitatory": np.array([1, 0, 2, 0, 0, -1])}, "found [-1, 2]"),
        ({"neurotransmitter": {1001: "gaba"}}, "has no name for neuron ids [1002"),
        ({"neurotransmitter": [1, 2]}, "must hold a dict"),
        ({"cell_type": {int(i): 3 for i in IDS}}, "to a non-empty name"),
        ({"neurotransmitter": {"x": _Evil()}}, "refusing to load global"),
    ],
)
def test_bad_folders_are_refused_before_anything_is_written(tmp_path, override, message):
    src = _write_reference(tmp_path / "roi", **override)
    with pytest.raises(ValueError) as err:
        import_reference_connectome(src, tmp_path / "out")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_import_connectome_command(tmp_path, capsys):
    src = _write_reference(tmp_path / "roi")
    dst, out = tmp_path / "eb", tmp_path / "run"
    args = ["rnn", "import-connectome", "--src", str(src), "--dst", str(dst)]
    assert main([*args, "--out", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["n"] == 6 and metrics["connections"] == 9
    assert metrics["excitatory"] == 3 and metrics["inhibitory"] == 3
    np.testing.assert_array_equal(load_connectome(dst).weight, _adjacency().T)
    # a second import into the same dst: one line, exit 2, no new run folder
    assert main([*args, "--out", str(tmp_path / "run2")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"diffdyn: error: argument 'dst': {str(dst)!r} exists; pass force=True (--force) to "
        "replace it"
    ]
    assert not (tmp_path / "run2").exists()
    assert main([*args, "--force", "--out", str(tmp_path / "run3")]) == 0
    (src / "nid_scc.npy").unlink()
    capsys.readouterr()
    assert main([*args, "--force", "--out", str(tmp_path / "run4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no nid_scc.npy" in err[0]
    assert not (tmp_path / "run4").exists()
    # the run record may not go into the connectome folder
    assert main([*args[:-1], str(tmp_path / "new"), "--out", str(tmp_path / "new")]) == 2
    assert "lies in --dst" in capsys.readouterr().err
