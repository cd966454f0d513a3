r"""Connectome-constrained networks: a documented folder format, Dale's law, E/I balancing.

Folder format (``diffdyn-connectome/1``; nothing is ever unpickled)::

    connectome.json          {"format": "diffdyn-connectome/1",
                              "orientation": "pre-post" | "post-pre",
                              "signs": {"acetylcholine": 1, "gaba": -1, ...},   (optional)
                              "default_sign": 1 | -1 | 0}                       (optional)
    adjacency.npy            [N, N] non-negative synapse weights. "pre-post": A[i, j] is the
                             weight of the synapse from neuron i onto neuron j; "post-pre":
                             A[i, j] is the synapse from j onto i.
    neurotransmitter.npy     [N] integer index of each neuron's (presynaptic) transmitter
    neurotransmitter_names.json   list of transmitter names, indexed by those integers
    cell_type.npy            [N] integer cell-type index            (optional)
    cell_type_names.json     list of cell-type names                (optional)
    neuron_id.npy            [N] distinct integer neuron ids        (optional)

The network coupling is indexed ``J[post, pre]`` and obeys Dale's law: every synapse of a
neuron carries that neuron's sign, $J_{ij} = s_j\, w_{j\to i}$, with $s_j$ looked up
from the presynaptic transmitter (defaults: acetylcholine +1; GABA and glutamate -1, glutamate
being inhibitory through GluCl in *Drosophila*; anything else must be named in ``signs`` or
covered by ``default_sign``).

E/I balancing (`sinkhorn_balance`): the excitatory and the inhibitory magnitude matrices
are each scaled by Sinkhorn-Knopp, $W \to D_1 W D_2$, until every neuron receives total
excitation and total inhibition ``row_sum`` (to a relative tolerance ``tol``) and every
presynaptic neuron of a class sends the same total; each row of $J$ then sums to 0.

The ``.pkl`` name maps (neuron id -> class name) of FlyStability (Koehn;
edouardkoehn/FlyStability) can be read with `read_plain_pickle`, which refuses every global
(so no code can run) and accepts only plain dicts, lists, tuples, strings, numbers, booleans
and ``None``. `import_reference_connectome` (``diffdyn rnn import-connectome``) converts a
whole region-of-interest folder of FlyStability (hemibrain data, Hulse et al. 2021) into this
format.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import secrets
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np

from diffdyn.common import SolveConfig
from diffdyn.common._helpers import atomic_write, read_array

from ._model import STEP_SOLVE, RateRNN

__all__ = [
    "CONNECTOME_FORMAT",
    "DEFAULT_SIGNS",
    "Connectome",
    "load_connectome",
    "save_connectome",
    "sinkhorn_balance",
    "read_plain_pickle",
    "name_map_to_index",
    "REFERENCE_FILES",
    "ImportConnectomeConfig",
    "import_reference_connectome",
]

CONNECTOME_FORMAT = "diffdyn-connectome/1"
"""The ``format`` value of a connectome folder's manifest."""
DEFAULT_SIGNS: dict[str, int] = {"acetylcholine": 1, "gaba": -1, "glutamate": -1}
"""The sign of each neurotransmitter's synapses when a connectome does not say."""


@dataclasses.dataclass(frozen=True)
class Connectome:
    """A connectome in network orientation.

    Attributes:
        weight: ``[N, N]`` non-negative magnitudes, ``weight[post, pre]``.
        neurotransmitter: ``[N]`` transmitter index per neuron.
        neurotransmitter_names: names of those indices.
        presynaptic_sign: ``[N]`` sign (+1, -1, 0) of each neuron's outgoing synapses.
        cell_type: ``[N]`` cell-type index per neuron, or ``None``.
        cell_type_names: names of the cell types, or ``None``.
        neuron_id: ``[N]`` distinct integer id of each neuron, or ``None``.
    """

    weight: np.ndarray
    neurotransmitter: np.ndarray
    neurotransmitter_names: tuple[str, ...]
    presynaptic_sign: np.ndarray
    cell_type: np.ndarray | None = None
    cell_type_names: tuple[str, ...] | None = None
    neuron_id: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.weight.shape[0])

    def sign_matrix(self) -> np.ndarray:
        r"""Dale's law: $C_{ij} = s_j [w_{j\to i} > 0]$, zero diagonal."""
        c = (self.weight > 0) * self.presynaptic_sign[None, :].astype(float)
        np.fill_diagonal(c, 0.0)
        return c

    def to_rnn(
        self,
        *,
        types: str = "neurotransmitter",
        balance: bool = True,
        row_sum: float = 0.5,
        tol: float = 1e-6,
        activation: str = "tanh-positive",
        solve: SolveConfig = STEP_SOLVE,
    ) -> RateRNN:
        """A `RateRNN` with this connectome's signs and (balanced) weights; gains and
        shifts shared per ``types``: ``"neurotransmitter"``, ``"cell-type"`` or ``"neuron"``;
        ``solve`` is the network's fixed step (see `RateRNN`)."""
        if types == "neurotransmitter":
            cell_type = _compact(self.neurotransmitter)
        elif types == "cell-type":
            if self.cell_type is None:
                raise ValueError("types='cell-type' needs a connectome with cell_type.npy")
            cell_type = _compact(self.cell_type)
        elif types == "neuron":
            cell_type = None
        else:
            raise ValueError(
                f"argument 'types' must be 'neurotransmitter', 'cell-type' or 'neuron'; "
                f"got {types!r}"
            )
        sign = self.sign_matrix()
        weight = self.weight * (sign != 0)
        if balance:
            weight, _ = sinkhorn_balance(weight, sign, row_sum=row_sum, tol=tol)
        return RateRNN.from_coupling(
            sign=sign,
            weight=weight,
            cell_type=cell_type,
            activation=activation,
            solve=solve,
        )


def _compact(index: np.ndarray) -> np.ndarray:
    """Renumber the used indices to 0..K-1 in increasing order."""
    _, inverse = np.unique(index, return_inverse=True)
    return inverse.astype(np.int32)


# ---------------------------------------------------------------------- balancing
def _sinkhorn_block(m: np.ndarray, row_sum: float, tol: float, max_iter: int):
    """Scale ``m`` (>= 0) to row sums ``row_sum`` on its non-empty rows and equal column sums
    on its non-empty columns; returns the scaled matrix, the iterations and the error."""
    rows, cols = m.sum(1) > 0, m.sum(0) > 0
    if not rows.any():
        return m.copy(), 0, 0.0
    sub = m[np.ix_(rows, cols)]
    col_sum = row_sum * rows.sum() / cols.sum()
    err, it = np.inf, 0
    while it < max_iter:
        it += 1
        sub = sub * (col_sum / sub.sum(0))[None, :]
        r = sub.sum(1)
        err = float(np.max(np.abs(r - row_sum)) / row_sum)
        if err <= tol:
            break
        sub = sub * (row_sum / r)[:, None]
    out = np.zeros_like(m)
    out[np.ix_(rows, cols)] = sub
    return out, it, err


def sinkhorn_balance(
    weight: np.ndarray,
    sign: np.ndarray,
    *,
    row_sum: float = 0.5,
    tol: float = 1e-6,
    max_iter: int = 10_000,
) -> tuple[np.ndarray, dict[str, Any]]:
    r"""E/I balance by Sinkhorn-Knopp: scale the excitatory magnitudes (``sign > 0``) and the
    inhibitory ones (``sign < 0``) separately, $W_\pm \to D_1 W_\pm D_2$, so that each
    neuron's total excitatory and total inhibitory input equal ``row_sum`` (relative error
    ``<= tol``) and the column sums are equal within each class; then
    $\sum_j (C\circ W)_{ij} = 0$ for every neuron with both kinds of input.

    Returns the balanced magnitudes and ``{"iterations": {...}, "error": {...}}``. Raises a
    ``ValueError`` if a block does not reach ``tol`` in ``max_iter`` iterations (its pattern
    of non-zeros then has no scaling with those sums)."""
    weight = np.asarray(weight, dtype=np.float64)
    sign = np.asarray(sign)
    if weight.shape != sign.shape or weight.ndim != 2:
        raise ValueError(
            f"arguments 'weight' and 'sign' must be [N, N] of one shape; got {weight.shape} "
            f"and {sign.shape}"
        )
    if np.any(weight < 0):
        raise ValueError("argument 'weight' must be non-negative")
    if not (row_sum > 0 and tol > 0):
        raise ValueError(f"'row_sum' and 'tol' must be > 0; got {row_sum}, {tol}")
    out = np.zeros_like(weight)
    info: dict[str, Any] = {"iterations": {}, "error": {}}
    for name, mask in (("excitatory", sign > 0), ("inhibitory", sign < 0)):
        block, its, err = _sinkhorn_block(weight * mask, row_sum, tol, max_iter)
        if err > tol:
            raise ValueError(
                f"Sinkhorn balancing of the {name} weights did not reach tol = {tol} in "
                f"{max_iter} iterations (relative row-sum error {err:.3g})"
            )
        out += block
        info["iterations"][name], info["error"][name] = its, err
    return out, info


# ---------------------------------------------------------------------- folder format
def _read_names(path: Path) -> tuple[str, ...]:
    names = json.loads(path.read_text())
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise ValueError(f"{path} must hold a JSON list of strings")
    return tuple(names)


def _read_index(path: Path, n: int, n_names: int) -> np.ndarray:
    index = read_array(path, path.name, finite=False)
    if index.shape != (n,) or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(
            f"{path} must hold an integer array of shape ({n},); got {index.dtype} {index.shape}"
        )
    if index.size and (index.min() < 0 or index.max() >= n_names):
        raise ValueError(f"{path} holds indices outside [0, {n_names}) of its names file")
    return index.astype(np.int32)


def load_connectome(folder: str | os.PathLike) -> Connectome:
    """Read a connectome folder (see the module docstring); checks every file."""
    folder = Path(folder)
    manifest_path = folder / "connectome.json"
    if not manifest_path.is_file():
        raise ValueError(f"argument 'folder': {str(folder)!r} has no connectome.json")
    manifest = json.loads(manifest_path.read_text())
    if not isinstance(manifest, dict) or manifest.get("format") != CONNECTOME_FORMAT:
        raise ValueError(f'{manifest_path} must have "format": {CONNECTOME_FORMAT!r}')
    orientation = manifest.get("orientation")
    if orientation not in ("pre-post", "post-pre"):
        raise ValueError(
            f"{manifest_path}: 'orientation' must be 'pre-post' or 'post-pre'; got {orientation!r}"
        )
    adjacency = read_array(folder / "adjacency.npy", "connectome", finite=False)
    if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError(f"adjacency.npy must be square [N, N]; got {adjacency.shape}")
    if not np.all(np.isfinite(adjacency)) or np.any(adjacency < 0):
        raise ValueError("adjacency.npy must hold finite non-negative weights")
    weight = adjacency.T if orientation == "pre-post" else adjacency
    weight = np.array(weight, dtype=np.float64)
    n = weight.shape[0]
    nt_names = _read_names(folder / "neurotransmitter_names.json")
    nt = _read_index(folder / "neurotransmitter.npy", n, len(nt_names))
    signs = {k.lower(): v for k, v in DEFAULT_SIGNS.items()}
    for k, v in dict(manifest.get("signs", {})).items():
        if v not in (-1, 0, 1):
            raise ValueError(f"{manifest_path}: sign of {k!r} must be -1, 0 or 1; got {v!r}")
        signs[k.lower()] = v
    default = manifest.get("default_sign")
    table = []
    for name in nt_names:
        if name.lower() in signs:
            table.append(signs[name.lower()])
        elif default in (-1, 0, 1):
            table.append(default)
        else:
            raise ValueError(
                f"{manifest_path}: no sign for neurotransmitter {name!r}; add it to 'signs' "
                "or set 'default_sign'"
            )
    ct, ct_names = None, None
    if (folder / "cell_type.npy").exists():
        ct_names = _read_names(folder / "cell_type_names.json")
        ct = _read_index(folder / "cell_type.npy", n, len(ct_names))
    ids = None
    if (folder / "neuron_id.npy").exists():
        ids = _check_ids(read_array(folder / "neuron_id.npy", "neuron ids"), n, "neuron_id.npy")
    return Connectome(
        weight=weight,
        neurotransmitter=nt,
        neurotransmitter_names=nt_names,
        presynaptic_sign=np.asarray(table, dtype=np.int32)[nt],
        cell_type=ct,
        cell_type_names=ct_names,
        neuron_id=ids,
    )


def _check_ids(ids: np.ndarray, n: int, name: str) -> np.ndarray:
    """``ids`` as int64 after checking: ``n`` distinct integers."""
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"{name} must hold {n} integer neuron ids (one per neuron); got {ids.dtype} {ids.shape}"
        )
    unique, counts = np.unique(ids, return_counts=True)
    if unique.size != n:
        raise ValueError(f"{name} repeats neuron ids {unique[counts > 1][:5].tolist()}")
    return ids.astype(np.int64)


def save_connectome(
    folder: str | os.PathLike,
    adjacency: np.ndarray,
    neurotransmitter: np.ndarray,
    neurotransmitter_names: list[str] | tuple[str, ...],
    *,
    orientation: str = "pre-post",
    signs: dict[str, int] | None = None,
    default_sign: int | None = None,
    cell_type: np.ndarray | None = None,
    cell_type_names: list[str] | tuple[str, ...] | None = None,
    neuron_id: np.ndarray | None = None,
) -> Path:
    """Write a connectome folder (atomically, file by file) and return its path;
    ``neuron_id`` (optional) holds each neuron's integer id."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"format": CONNECTOME_FORMAT, "orientation": orientation}
    if signs:
        manifest["signs"] = dict(signs)
    if default_sign is not None:
        manifest["default_sign"] = int(default_sign)

    def npy(name: str, array: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(array), allow_pickle=False)
        atomic_write(folder / name, lambda f: f.write(buf.getvalue()))

    def js(name: str, obj: Any) -> None:
        atomic_write(folder / name, lambda f: f.write(json.dumps(obj, indent=1).encode()))

    npy("adjacency.npy", adjacency)
    npy("neurotransmitter.npy", np.asarray(neurotransmitter, dtype=np.int32))
    js("neurotransmitter_names.json", list(neurotransmitter_names))
    if cell_type is not None:
        npy("cell_type.npy", np.asarray(cell_type, dtype=np.int32))
        js("cell_type_names.json", list(cell_type_names or []))
    if neuron_id is not None:
        npy("neuron_id.npy", np.asarray(neuron_id, dtype=np.int64))
    js("connectome.json", manifest)
    return folder


# ---------------------------------------------------------------- FlyStability's pickles
class _PlainUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global, so only built-in plain data can be built."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: only plain dicts, lists, strings and "
            "numbers are accepted"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing persistent ids")


_PLAIN = (dict, list, tuple, str, int, float, bool, type(None))


def _check_plain(obj: Any, depth: int = 0) -> None:
    if depth > 64:
        raise ValueError("pickled data is nested too deeply")
    if not isinstance(obj, _PLAIN):
        raise ValueError(f"pickled data holds a {type(obj).__name__}; only plain data allowed")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, depth + 1)
            _check_plain(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check_plain(v, depth + 1)


def read_plain_pickle(path: str | os.PathLike) -> Any:
    """Read a pickle holding only plain dicts, lists, tuples, strings, numbers, booleans and
    ``None``. Any global (a class, a function, a numpy scalar or array) is refused with a
    ``ValueError`` before it could be imported or called."""
    data = Path(path).read_bytes()
    try:
        obj = _PlainUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: {e}") from None
    except Exception as e:  # truncated or corrupt streams
        raise ValueError(f"{path} is not a readable plain pickle: {e}") from None
    _check_plain(obj)
    return obj


def name_map_to_index(
    ids: np.ndarray, mapping: dict[Any, str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Turn an ``id -> name`` map (e.g. from `read_plain_pickle`) and the neuron ids in
    network order into an index array and its sorted list of names."""
    ids = np.asarray(ids)
    missing = [i for i in ids.tolist() if i not in mapping and str(i) not in mapping]
    if missing:
        raise ValueError(f"argument 'mapping' has no name for neuron ids {missing[:5]}")
    labels = [mapping[i] if i in mapping else mapping[str(i)] for i in ids.tolist()]
    names = tuple(sorted(set(labels)))
    lookup = {name: k for k, name in enumerate(names)}
    return np.asarray([lookup[x] for x in labels], dtype=np.int32), names


# ------------------------------------------------------- FlyStability's ROI folders
REFERENCE_FILES: dict[str, str] = {
    "adjacency": "adjacency_scc.npy",
    "neuron_id": "nid_scc.npy",
    "excitatory": "ei_neuron_types.npy",
    "neurotransmitter": "neurotransmitter_assignments.pkl",
    "cell_type": "cell_body_fiber_assignments.pkl",
}
"""The files of a FlyStability region-of-interest folder, by role (see
`import_reference_connectome`)."""


@dataclasses.dataclass(frozen=True)
class ImportConnectomeConfig:
    """Convert a FlyStability region-of-interest folder into a connectome folder (``diffdyn rnn
    import-connectome``); see `import_reference_connectome`.

    Attributes:
        src: the region-of-interest folder: adjacency_scc.npy, nid_scc.npy,
            ei_neuron_types.npy, neurotransmitter_assignments.pkl and
            cell_body_fiber_assignments.pkl.
        dst: the connectome folder to write (format diffdyn-connectome/1).
        orientation: how adjacency_scc.npy is indexed: pre-post (A[pre, post], FlyStability's
            reading) or post-pre (A[post, pre]).
        split_mixed: split a neurotransmitter class whose neurons carry both E/I labels into
            'NAME (excitatory)' and 'NAME (inhibitory)' (default: refuse such a class).
        force: replace an existing dst (only a connectome folder or an empty folder).
    """

    src: Path
    dst: Path
    orientation: Literal["pre-post", "post-pre"] = "pre-post"
    split_mixed: bool = False
    force: bool = False


@dataclasses.dataclass(frozen=True)
class _Reference:
    """A FlyStability folder read and checked, in diffdyn's terms."""

    adjacency: np.ndarray
    neuron_id: np.ndarray
    neurotransmitter: np.ndarray
    neurotransmitter_names: tuple[str, ...]
    signs: dict[str, int]
    cell_type: np.ndarray
    cell_type_names: tuple[str, ...]


def _reference_file(src: Path, role: str) -> Path:
    path = src / REFERENCE_FILES[role]
    if not path.is_file():
        raise ValueError(f"argument 'src': {str(src)!r} has no {REFERENCE_FILES[role]}")
    return path


def _class_index(path: Path, ids: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """The class index of every neuron from the ``id -> name`` map pickled at ``path``."""
    mapping = read_plain_pickle(path)
    if not isinstance(mapping, dict):
        raise ValueError(
            f"{path.name} must hold a dict of neuron id -> name; got a {type(mapping).__name__}"
        )
    try:
        index, names = name_map_to_index(ids, mapping)
    except ValueError as e:
        raise ValueError(str(e).replace("argument 'mapping'", path.name)) from None
    except TypeError:  # names of mixed types cannot be sorted
        names = ()
    if not names or not all(isinstance(x, str) and x for x in names):
        raise ValueError(f"{path.name} must map every neuron id to a non-empty name (a string)")
    return index, names


def _read_reference(src: str | os.PathLike, orientation: str, split_mixed: bool) -> _Reference:
    """Read and check every file of a FlyStability folder; nothing is written."""
    if orientation not in ("pre-post", "post-pre"):
        raise ValueError(
            f"argument 'orientation' must be 'pre-post' or 'post-pre'; got {orientation!r}"
        )
    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"argument 'src': {str(src)!r} is not a folder")
    paths = {role: _reference_file(src, role) for role in REFERENCE_FILES}
    adjacency = read_array(paths["adjacency"], REFERENCE_FILES["adjacency"])
    if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1] or adjacency.size == 0:
        raise ValueError(
            f"{REFERENCE_FILES['adjacency']} must be a square [N, N] matrix; got shape "
            f"{adjacency.shape}"
        )
    if np.any(adjacency < 0):
        raise ValueError(f"{REFERENCE_FILES['adjacency']} must hold non-negative synapse weights")
    n = adjacency.shape[0]
    ids = read_array(paths["neuron_id"], REFERENCE_FILES["neuron_id"])
    ids = _check_ids(ids, n, f"{REFERENCE_FILES['neuron_id']} (N = {n} from the adjacency)")
    ei = read_array(paths["excitatory"], REFERENCE_FILES["excitatory"])
    if ei.shape != (n,):
        raise ValueError(
            f"{REFERENCE_FILES['excitatory']} must hold one label per neuron, shape ({n},); "
            f"got {ei.shape}"
        )
    unknown = sorted(set(np.unique(ei).tolist()) - {0, 1})
    if unknown:
        raise ValueError(
            f"{REFERENCE_FILES['excitatory']} must label every neuron 0 (inhibitory) or 1 "
            f"(excitatory); found {unknown[:5]}"
        )
    excitatory = ei.astype(bool)
    nt, nt_names = _class_index(paths["neurotransmitter"], ids)
    split: set[int] = set()
    signs: dict[str, int] = {}
    for k, name in enumerate(nt_names):
        members = excitatory[nt == k]
        if members.all() or not members.any():
            signs[name] = 1 if members.all() else -1
        elif not split_mixed:
            raise ValueError(
                f"neurotransmitter class {name!r} holds {int(members.sum())} excitatory and "
                f"{int((~members).sum())} inhibitory neurons in {REFERENCE_FILES['excitatory']}, "
                "but a connectome folder gives each class one sign; pass split_mixed=True "
                "(--split_mixed) to split it"
            )
        else:
            split.add(k)  # replaced by its two halves
            for label, sign in ((f"{name} (excitatory)", 1), (f"{name} (inhibitory)", -1)):
                if label in nt_names:
                    raise ValueError(f"cannot split class {name!r}: {label!r} exists already")
                signs[label] = sign
    names = tuple(sorted(signs))
    lookup = {name: i for i, name in enumerate(names)}
    per_neuron = [
        f"{nt_names[k]} ({'excitatory' if e else 'inhibitory'})" if k in split else nt_names[k]
        for k, e in zip(nt.tolist(), excitatory.tolist(), strict=True)
    ]
    nt = np.asarray([lookup[x] for x in per_neuron], dtype=np.int32)
    if len({x.lower() for x in names}) != len(names):
        raise ValueError(
            f"{REFERENCE_FILES['neurotransmitter']} has class names that differ only in case "
            f"({', '.join(names)}); connectome signs are looked up case-insensitively"
        )
    ct, ct_names = _class_index(paths["cell_type"], ids)
    return _Reference(
        adjacency=np.asarray(adjacency, dtype=np.float64),
        neuron_id=ids,
        neurotransmitter=nt,
        neurotransmitter_names=names,
        signs=signs,
        cell_type=ct,
        cell_type_names=ct_names,
    )


def _check_destination(dst: str | os.PathLike, force: bool) -> Path:
    """``dst`` if it may be written: absent, or (with ``force``) a connectome folder or an
    empty folder, which is then replaced."""
    dst = Path(dst)
    if not dst.exists():
        return dst
    if not force:
        raise ValueError(
            f"argument 'dst': {str(dst)!r} exists; pass force=True (--force) to replace it"
        )
    if not dst.is_dir():
        raise ValueError(f"argument 'dst': {str(dst)!r} is a file, not a connectome folder")
    if any(dst.iterdir()) and not (dst / "connectome.json").is_file():
        raise ValueError(
            f"argument 'dst': {str(dst)!r} is neither empty nor a connectome folder (it has "
            "no connectome.json); force replaces only those"
        )
    return dst


def import_reference_connectome(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    orientation: Literal["pre-post", "post-pre"] = "pre-post",
    split_mixed: bool = False,
    force: bool = False,
) -> Connectome:
    r"""Convert a FlyStability region-of-interest folder ``src`` (Koehn; hemibrain data of
    Hulse et al. 2021) into the connectome folder ``dst`` and return it as loaded back by
    `load_connectome`.

    ``src`` holds (`REFERENCE_FILES`):

    - ``adjacency_scc.npy``: ``[N, N]`` non-negative synapse weights; with ``orientation =
      "pre-post"`` (FlyStability's reading, which builds $W = A^\top$) $A_{ij}$ is the weight
      of the synapse from neuron $i$ onto neuron $j$; ``"post-pre"`` for the transpose.
    - ``nid_scc.npy``: ``[N]`` distinct integer neuron ids, in matrix order.
    - ``ei_neuron_types.npy``: ``[N]`` labels, 0 inhibitory and 1 excitatory.
    - ``neurotransmitter_assignments.pkl`` and ``cell_body_fiber_assignments.pkl``: maps
      neuron id -> class name, read by `read_plain_pickle` (nothing but plain data is
      unpickled).

    The E/I labels give the signs, by the *presynaptic* neuron (Dale's law):
    $J_{ij} = s_j\,w_{j\to i}$ with $s_j = 2\,\mathrm{ei}_j - 1$. (FlyStability multiplied the
    rows of $W = A^\top$, i.e. signed synapses by their postsynaptic neuron.) A connectome
    folder gives each neurotransmitter class one sign, so every class is written with the
    sign of its neurons in ``signs``; a class whose neurons carry both labels is refused, or
    with ``split_mixed`` split into ``"NAME (excitatory)"`` and ``"NAME (inhibitory)"``. The
    cell-body-fibre classes become the cell types and the ids ``neuron_id.npy``; weights are
    copied unscaled (balancing is `Connectome.to_rnn`'s).

    Every file is checked before anything is written (a missing file, a shape that does not
    match $N$, a label other than 0/1, repeated ids, an id without a name: a ``ValueError``).
    ``dst`` must not exist unless ``force``, which replaces a connectome folder or an empty
    folder (never anything else); the folder is written beside ``dst`` and renamed into
    place."""
    reference = _read_reference(src, orientation, split_mixed)
    dst = _check_destination(dst, force)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir(mode=0o777)  # the umask applies, as for any folder the user creates
    old = None
    try:
        save_connectome(
            tmp,
            reference.adjacency,
            reference.neurotransmitter,
            reference.neurotransmitter_names,
            orientation=orientation,
            signs=reference.signs,
            cell_type=reference.cell_type,
            cell_type_names=reference.cell_type_names,
            neuron_id=reference.neuron_id,
        )
        if dst.exists():
            old = dst.with_name(f"{tmp.name}.old")
            os.replace(dst, old)
        try:
            os.replace(tmp, dst)
        except BaseException:
            if old is not None:  # put the previous folder back
                os.replace(old, dst)
                old = None
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return load_connectome(dst)
