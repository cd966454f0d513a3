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
and ``None``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

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
    """

    weight: np.ndarray
    neurotransmitter: np.ndarray
    neurotransmitter_names: tuple[str, ...]
    presynaptic_sign: np.ndarray
    cell_type: np.ndarray | None = None
    cell_type_names: tuple[str, ...] | None = None

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
    return Connectome(
        weight=weight,
        neurotransmitter=nt,
        neurotransmitter_names=nt_names,
        presynaptic_sign=np.asarray(table, dtype=np.int32)[nt],
        cell_type=ct,
        cell_type_names=ct_names,
    )


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
) -> Path:
    """Write a connectome folder (atomically, file by file) and return its path."""
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
