r"""Dynamics discovery with neural ODEs: models, published settings, fitting and evaluation.

Models (called as ``field(t, y, args)``):

- the black box $\dot u = \mathrm{MLP}(u)$ is `diffdyn.common.neural_de.MLPField` with GELU
  hidden layers (``MLPField(dim, width, depth, activation="gelu", key=key)``);
- `LotkaVolterraGrayBox`: $\dot u = (a x, -d y) + \mathrm{MLP}(\cdot)$; $a, d$ known
  constants (Ko et al. 2023) or trainable (``learn_rates``); the MLP sees $(x, y)$ or only the
  interaction $x y$ (``inputs="interaction"``, which makes $a, d$ identifiable);
- `SecondOrderField`: $\dot\theta = \omega$, $\dot\omega = \mathrm{MLP}(\theta, \omega)$.

`DISCOVERY_PRESETS` holds the hyperparameters of Ko et al. 2023 (homotopy training of neural
ODEs) per system, model and method, rebuilt from the authors' scripts; `discovery_settings`
turns them into a `DiscoverySettings` (training length in steps, an `OptimConfig`, a
`SolveConfig`). A fit is "build the task and the model, run the `Trainer`": `discovery_task`
gives the strategy of ``diffdyn.common`` (`Plain`, `MultipleShooting` or `Homotopy`, which are
training tasks), and `fit_system` runs it and scores the selected model with `evaluate_field`:
interpolation MSE on the training window (against the noisy observations and against the clean
trajectory) and extrapolation MSE beyond it (against the clean continuation). The selected model
is the one with the lowest uncoupled training MSE after the first logging block.

A user's own trajectory replaces the simulated data through `load_trajectory` (a ``.csv``,
``.npy`` or ``.npz`` file of times and states) and `trajectory_dataset`, which splits it as
`make_dataset` splits a simulation: a training (interpolation) window of the first samples and
an extrapolation window of the rest.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import zipfile
from pathlib import Path
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from diffdyn.common import (
    AbstractModel,
    EnsembleResult,
    Homotopy,
    HomotopySchedule,
    MultipleShooting,
    OptimConfig,
    Plain,
    SolveConfig,
    TrainConfig,
    Trainer,
    TrainResult,
    Trajectory,
)
from diffdyn.common._helpers import check_int
from diffdyn.common.neural_de import MLPField

from ._systems import SYSTEMS, Dataset

__all__ = [
    "LotkaVolterraGrayBox",
    "SecondOrderField",
    "DISCOVERY_METHODS",
    "DISCOVERY_MODELS",
    "DISCOVERY_PRESETS",
    "PUBLISHED_SOLVE",
    "DiscoverySettings",
    "discovery_settings",
    "build_discovery_model",
    "check_model_dim",
    "discovery_task",
    "evaluate_field",
    "fit_system",
    "fit_systems",
    "trajectory_of",
    "load_trajectory",
    "trajectory_dataset",
]

Method = Literal["plain", "multiple-shooting", "homotopy"]
Model = Literal["blackbox", "graybox", "second-order"]
System = Literal["lotka-volterra", "lorenz", "double-pendulum", "van-der-pol"]

DISCOVERY_METHODS: tuple[str, ...] = ("plain", "multiple-shooting", "homotopy")
"""Training methods: plain, multiple shooting and homotopy."""
DISCOVERY_MODELS: tuple[str, ...] = ("blackbox", "graybox", "second-order")
"""Models: a black-box MLP, the Lotka-Volterra gray box, a second-order field."""


def _mlp(in_size: int, out_size: int, width: int, depth: int, key: PRNGKeyArray) -> eqx.nn.MLP:
    return eqx.nn.MLP(in_size, out_size, width, depth, activation=jax.nn.gelu, key=key)


class LotkaVolterraGrayBox(AbstractModel):
    r"""The Lotka-Volterra gray box $\dot u = (a x, -d y) + \mathrm{MLP}(v)$.

    The MLP ($v = (x, y)$, or $v = x y$ with ``inputs="interaction"``) has ``depth`` hidden
    layers of ``width`` GELU units. $a, d$ are fixed at the given values or, with
    ``learn_rates``, trained from them (the leaf ``rates = [a, d]``).
    """

    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    a: float = eqx.field(static=True)
    d: float = eqx.field(static=True)
    learn_rates: bool = eqx.field(static=True)
    inputs: str = eqx.field(static=True)
    rates: Float[Array, "2"] | None
    mlp: eqx.nn.MLP

    def __init__(
        self,
        width: int = 20,
        depth: int = 2,
        a: float = 1.3,
        d: float = 1.8,
        learn_rates: bool = False,
        inputs: Literal["state", "interaction"] = "state",
        *,
        key: PRNGKeyArray,
    ):
        if inputs not in ("state", "interaction"):
            raise ValueError(f"inputs must be 'state' or 'interaction', got {inputs!r}")
        self.width, self.depth = check_int(width, "width"), check_int(depth, "depth", 0)
        self.inputs = inputs
        self.a, self.d, self.learn_rates = float(a), float(d), bool(learn_rates)
        self.rates = jnp.asarray([a, d], jnp.result_type(float)) if learn_rates else None
        self.mlp = _mlp(2 if inputs == "state" else 1, 2, self.width, self.depth, key)

    @property
    def physics(self) -> tuple[Any, Any]:
        """The (possibly learnt) ``(a, d)``."""
        if self.rates is None:
            return self.a, self.d
        return self.rates[0], self.rates[1]

    def __call__(self, t: Any, y: Float[Array, "2"], args: Any = None) -> Float[Array, "2"]:
        a, d = self.physics
        v = y if self.inputs == "state" else (y[0] * y[1])[None]
        return jnp.stack([a * y[0], -d * y[1]]) + self.mlp(v)


class SecondOrderField(AbstractModel):
    r"""A second-order model on $u = (\theta, \omega)$ (``state_dim = 2n``):
    $\dot\theta = \omega$, $\dot\omega = \mathrm{MLP}(\theta, \omega)$ (``depth`` hidden
    layers of ``width`` GELU units)."""

    state_dim: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    mlp: eqx.nn.MLP

    def __init__(self, state_dim: int, width: int = 50, depth: int = 2, *, key: PRNGKeyArray):
        if not isinstance(state_dim, int) or state_dim < 2 or state_dim % 2:
            raise ValueError(f"state_dim must be an even int >= 2, got {state_dim!r}")
        self.state_dim = state_dim
        self.width, self.depth = check_int(width, "width"), check_int(depth, "depth", 0)
        self.mlp = _mlp(state_dim, state_dim // 2, self.width, self.depth, key)

    def __call__(self, t: Any, y: Float[Array, " D"], args: Any = None) -> Float[Array, " D"]:
        n = self.state_dim // 2
        return jnp.concatenate([y[n:], self.mlp(y)])


# ----------------------------------------------------------------------------------------
# Published settings (NeuralODEHomotopy, Ko et al. 2023)
# ----------------------------------------------------------------------------------------

PUBLISHED_SOLVE = SolveConfig(solver="dopri5", rtol=1e-7, atol=1e-9, max_steps=4096)
"""How every fit of Ko et al. (2023) solves its ODEs: dopri5, rtol 1e-7, atol 1e-9."""


def _adamw(learning_rate: float) -> OptimConfig:
    """AdamW with a constant learning rate and weight decay 0.01 (torch's defaults otherwise)."""
    return OptimConfig("adamw", learning_rate, weight_decay=0.01)


@dataclasses.dataclass(frozen=True)
class DiscoverySettings:
    """Every hyperparameter of one fit by one method.

    Training is full batch, so a step is an epoch. Homotopy runs ``decrements + 1`` plateaus of
    equal length: ``steps`` must be a multiple of ``decrements + 1``, and `schedule` derives the
    plateau length from it (the one place where that happens).

    Attributes:
        method: the training method, one of `DISCOVERY_METHODS`.
        width: hidden width of the model's MLP.
        depth: hidden layers of the model's MLP.
        steps: training steps.
        optim: the optimiser.
        solve: how every ODE is solved.
        segments: multiple shooting: the number of segments.
        continuity: multiple shooting: the weight of the continuity penalty.
        k: homotopy: the coupling strength.
        alpha: homotopy: the parameter of the smoothing spline of the data.
        decrements: homotopy: the decrements $M$ of the coupling ($M + 1$ plateaus).
        ratio: homotopy: the decrement ratio $r$.
    """

    method: Method
    width: int
    depth: int
    steps: int
    optim: OptimConfig
    solve: SolveConfig = PUBLISHED_SOLVE
    segments: int = 5
    continuity: float = 0.01
    k: float = 6.0
    alpha: float = 1e-3
    decrements: int = 5
    ratio: float = 0.6

    def __post_init__(self) -> None:
        if self.method not in DISCOVERY_METHODS:
            raise ValueError(
                f"unknown method {self.method!r}; known methods: {', '.join(DISCOVERY_METHODS)}"
            )
        check_int(self.width, "width")
        check_int(self.depth, "depth", 0)
        check_int(self.steps, "steps")
        if not isinstance(self.optim, OptimConfig):
            raise TypeError(f"optim must be an OptimConfig, got {type(self.optim).__name__}")
        if not isinstance(self.solve, SolveConfig):
            raise TypeError(f"solve must be a SolveConfig, got {type(self.solve).__name__}")
        if self.method == "homotopy":
            plateaus = check_int(self.decrements, "decrements") + 1
            if self.steps % plateaus:
                raise ValueError(
                    f"homotopy runs decrements + 1 = {plateaus} plateaus of equal length: the "
                    f"training steps must be a multiple of {plateaus}; got {self.steps} "
                    f"(e.g. {plateaus * max(1, round(self.steps / plateaus))})"
                )

    @property
    def schedule(self) -> HomotopySchedule:
        """The homotopy schedule: ``decrements``, ``ratio`` and
        ``steps / (decrements + 1)`` steps per plateau."""
        return HomotopySchedule(self.decrements, self.ratio, self.steps // (self.decrements + 1))


_LV = {
    "plain": {"optim": _adamw(0.02), "steps": 4000},
    "multiple-shooting": {"optim": _adamw(0.05), "steps": 4000, "segments": 5, "continuity": 0.01},
    # 6 plateaus of 100 steps
    "homotopy": {"optim": _adamw(0.05), "steps": 600, "k": 6.0, "decrements": 5},
}
DISCOVERY_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("lotka-volterra", "blackbox"): {"width": 32, "depth": 1, "alpha": 1e-3, **_LV},
    ("lotka-volterra", "graybox"): {"width": 20, "depth": 2, "alpha": 1e-3, **_LV},
    ("van-der-pol", "blackbox"): {"width": 32, "depth": 1, "alpha": 1e-3, **_LV},
    ("double-pendulum", "second-order"): {
        "width": 50,
        "depth": 2,
        "alpha": 0.0,
        "plain": {"optim": _adamw(0.02), "steps": 4000},
        "multiple-shooting": {
            "optim": _adamw(0.02),
            "steps": 4000,
            "segments": 5,
            "continuity": 2e-3,
        },
        # 6 plateaus of 300 steps
        "homotopy": {"optim": _adamw(0.05), "steps": 1800, "k": 10.0, "decrements": 5},
    },
    ("double-pendulum", "blackbox"): {
        "width": 50,
        "depth": 2,
        "alpha": 0.0,
        "plain": {"optim": _adamw(0.02), "steps": 4000},
        "multiple-shooting": {
            "optim": _adamw(0.02),
            "steps": 4000,
            "segments": 5,
            "continuity": 1e-3,
        },
        # 7 plateaus of 300 steps
        "homotopy": {"optim": _adamw(0.02), "steps": 2100, "k": 10.0, "decrements": 6},
    },
    ("lorenz", "blackbox"): {
        "width": 50,
        "depth": 2,
        "alpha": 1e-4,
        "plain": {"optim": _adamw(0.02), "steps": 4000},
        "multiple-shooting": {
            "optim": _adamw(0.01),
            "steps": 4000,
            "segments": 5,
            "continuity": 0.5,
        },
        # 8 plateaus of 300 steps
        "homotopy": {"optim": _adamw(0.02), "steps": 2400, "k": 6.0, "decrements": 7},
    },
}
"""Hyperparameters of Ko et al. (2023) by ``(system, model)``: the model's ``width``, ``depth``
and the spline's ``alpha``, then per method the optimiser (AdamW, constant learning rate, weight
decay 0.01), the number of ``steps`` (full-batch epochs) and the method's own settings; the
ratio of every homotopy schedule is 0.6 and every solve is `PUBLISHED_SOLVE`. Van der Pol is
ours (Lotka-Volterra-like settings)."""


def discovery_settings(system: str, model: str, method: str, **overrides: Any) -> DiscoverySettings:
    """The published `DiscoverySettings` of ``model`` fitted to ``system`` by ``method``
    (`DISCOVERY_PRESETS`); ``overrides`` (fields of `DiscoverySettings`) that are not
    ``None`` win."""
    if method not in DISCOVERY_METHODS:
        raise ValueError(
            f"unknown method {method!r}; known methods: {', '.join(DISCOVERY_METHODS)}"
        )
    if (system, model) not in DISCOVERY_PRESETS:
        known = ", ".join(f"{s}:{m}" for s, m in DISCOVERY_PRESETS)
        raise ValueError(f"no settings for system {system!r} with model {model!r}; known: {known}")
    names = {f.name for f in dataclasses.fields(DiscoverySettings)} - {"method"}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown settings {unknown}; known: {', '.join(sorted(names))}")
    preset = DISCOVERY_PRESETS[(system, model)]
    values = {k: v for k, v in preset.items() if k not in DISCOVERY_METHODS}
    values.update(preset[method])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return DiscoverySettings(method=method, **values)  # type: ignore[arg-type]


def build_discovery_model(
    system: str,
    model: str,
    settings: DiscoverySettings,
    key: PRNGKeyArray,
    *,
    learn_rates: bool = False,
    inputs: Literal["state", "interaction"] = "state",
    state_dim: int | None = None,
) -> AbstractModel:
    """The model ``model`` (one of `DISCOVERY_MODELS`) for ``system`` with the width and depth
    of ``settings``, in the current default float dtype. ``learn_rates`` and ``inputs`` are
    settings of the gray box (`LotkaVolterraGrayBox`), refused for the other models.

    ``state_dim`` is the dimension $D$ of the data (default: the system's). The black box takes
    any $D$; the gray box only Lotka-Volterra's $D = 2$; the second-order field an even $D$
    (positions, then velocities)."""
    if model not in DISCOVERY_MODELS:
        raise ValueError(f"unknown model {model!r}; known models: {', '.join(DISCOVERY_MODELS)}")
    if model != "graybox" and (learn_rates or inputs != "state"):
        raise ValueError(
            f"learn_rates and inputs are settings of the gray box, not of model {model!r}"
        )
    dim = len(SYSTEMS[system].y0) if state_dim is None else state_dim
    check_model_dim(system, model, dim)
    if model == "blackbox":
        return MLPField(dim, settings.width, settings.depth, activation="gelu", key=key)
    if model == "graybox":
        return LotkaVolterraGrayBox(
            settings.width, settings.depth, learn_rates=learn_rates, inputs=inputs, key=key
        )
    return SecondOrderField(dim, settings.width, settings.depth, key=key)


def check_model_dim(system: str, model: str, state_dim: int) -> None:
    """Refuse (`ValueError`) a ``model`` of `DISCOVERY_MODELS` that cannot fit ``state_dim``
    state components: the black box fits any, the gray box only ``system`` Lotka-Volterra's
    two, the second-order field an even number (positions, then velocities)."""
    dim = check_int(state_dim, "state_dim")
    if model not in DISCOVERY_MODELS:
        raise ValueError(f"unknown model {model!r}; known models: {', '.join(DISCOVERY_MODELS)}")
    if model == "graybox":
        if system != "lotka-volterra":
            raise ValueError(
                f"model 'graybox' exists for system 'lotka-volterra' only, got {system!r}"
            )
        if dim != 2:
            raise ValueError(
                f"model 'graybox' is the Lotka-Volterra gray box of the 2-D state (x, y); the "
                f"data have D = {dim} state components (the black box fits any D)"
            )
    if model == "second-order" and dim % 2:
        raise ValueError(
            f"model 'second-order' needs an even state dimension (positions, then velocities); "
            f"the data have D = {dim} state components (the black box fits any D)"
        )


def trajectory_of(dataset: Dataset) -> Trajectory:
    """The training `Trajectory` of a dataset (noisy observations, clean initial state)."""
    return Trajectory(jnp.asarray(dataset.ts), jnp.asarray(dataset.ys), jnp.asarray(dataset.y0))


def load_trajectory(
    path: str | os.PathLike,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A user's trajectory from ``path``: times ``ts [T]`` and states ``ys [T, D]`` (float64)
    and the names of the ``D`` state components.

    File formats, by suffix:

    - ``.csv``: a header row of column names, then one row per sample: the time in the first
      column and the ``D`` state components in the others (comma-separated numbers; the names
      are the header's, after its first column).
    - ``.npy``: one numeric array ``[T, 1 + D]``: the time in column 0, the states in columns
      ``1..D`` (names ``y1..yD``).
    - ``.npz``: two arrays, ``ts [T]`` and ``ys [T, D]`` (names ``y1..yD``).

    Nothing is unpickled. The times must be finite and strictly increasing, the states finite,
    with at least 3 samples and ``D >= 1``; every way a file breaks these rules (or is missing,
    or holds text that is not a number) is a one-line `ValueError` naming the file.
    """
    path = Path(path)
    where = f"data file {str(path)!r}"
    if not path.is_file():
        raise ValueError(f"{where} does not exist or is not a file")
    suffix = path.suffix.lower()
    names: tuple[str, ...] | None = None
    if suffix == ".csv":
        ts, ys, names = _read_csv(path, where)
    elif suffix in (".npy", ".npz"):
        ts, ys = _read_numpy(path, where, suffix)
    else:
        raise ValueError(
            f"{where}: unknown format {suffix or '(no suffix)'!r}; use .csv, .npy or .npz"
        )
    _check_trajectory(ts, ys, where)
    if names is None:
        names = tuple(f"y{i + 1}" for i in range(ys.shape[1]))
    return ts, ys, names


def _read_csv(path: Path, where: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{where}: cannot read it as CSV text: {e}") from None
    if not rows:
        raise ValueError(f"{where} is empty; it needs a header row, then time,state... rows")
    header = [c.strip() for c in rows[0]]
    if len(header) < 2:
        raise ValueError(
            f"{where}: the header has {len(header)} column; it needs the time and at least one "
            "state component"
        )
    values = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(
                f"{where}: row {line} has {len(row)} columns, the header {len(header)}"
            )
        try:
            values.append([float(c) for c in row])
        except ValueError:
            bad = next(c for c in row if not _is_float(c))
            raise ValueError(f"{where}: row {line} holds {bad.strip()!r}, not a number") from None
    data = np.asarray(values, np.float64).reshape(-1, len(header))
    return data[:, 0], data[:, 1:], tuple(header[1:])


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_numpy(path: Path, where: str, suffix: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
        if suffix == ".npz":
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError("it is not a .npz archive")
            with loaded:
                if set(loaded.files) != {"ts", "ys"}:
                    raise ValueError(
                        f"a .npz trajectory holds exactly the arrays ts [T] and ys [T, D]; this "
                        f"one holds {sorted(loaded.files)}"
                    )
                ts, ys = loaded["ts"], loaded["ys"]
        else:
            if isinstance(loaded, np.lib.npyio.NpzFile):
                loaded.close()
                raise ValueError("it is a .npz archive, not a .npy array")
            array = np.asarray(loaded)
            _check_numeric(array, where, "the array")
            if array.ndim != 2 or array.shape[1] < 2:
                raise ValueError(
                    f"a .npy trajectory is one array [T, 1 + D] (time in column 0, D >= 1 "
                    f"states); got shape {array.shape}"
                )
            ts, ys = array[:, 0], array[:, 1:]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if text.startswith(where):
            raise ValueError(text) from None
        raise ValueError(f"{where}: {text}") from None
    _check_numeric(np.asarray(ts), where, "ts")
    _check_numeric(np.asarray(ys), where, "ys")
    ts, ys = np.asarray(ts, np.float64), np.asarray(ys, np.float64)
    if ts.ndim != 1 or ys.ndim != 2 or ys.shape[0] != ts.shape[0] or ys.shape[1] < 1:
        raise ValueError(
            f"{where}: ts must have shape [T] and ys [T, D] with D >= 1; got {ts.shape} and "
            f"{ys.shape}"
        )
    return ts, ys


def _check_numeric(array: np.ndarray, where: str, name: str) -> None:
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{where}: {name} holds {array.dtype} values, not real numbers")


def _check_trajectory(ts: np.ndarray, ys: np.ndarray, where: str) -> None:
    """The rules every trajectory obeys (see `load_trajectory`), as one-line errors."""
    if ts.ndim != 1 or ys.ndim != 2 or ys.shape[0] != ts.shape[0] or ys.shape[1] < 1:
        raise ValueError(
            f"{where}: times must have shape [T] and states [T, D] with D >= 1; got "
            f"{ts.shape} and {ys.shape}"
        )
    if len(ts) < 3:
        raise ValueError(
            f"{where} has {len(ts)} samples; a trajectory needs at least 3 (a training window "
            "of 2 and an extrapolation window of 1)"
        )
    if not np.all(np.isfinite(ts)):
        i = int(np.argmin(np.isfinite(ts)))
        raise ValueError(f"{where}: the time of sample {i} is {ts[i]}, not a finite number")
    steps = np.diff(ts)
    if not np.all(steps > 0):
        i = int(np.argmin(steps > 0))
        raise ValueError(
            f"{where}: times must be strictly increasing; sample {i + 1} (t = {ts[i + 1]!r}) "
            f"does not come after sample {i} (t = {ts[i]!r})"
        )
    finite = np.isfinite(ys)
    if not finite.all():
        i, d = (int(v) for v in np.argwhere(~finite)[0])
        kind = "NaN" if np.isnan(ys[i, d]) else "inf"
        raise ValueError(f"{where}: the states hold {kind} (sample {i}, component {d + 1})")


def trajectory_dataset(
    ts: Float[np.ndarray, " T"],
    ys: Float[np.ndarray, "T D"],
    *,
    train_points: int | None = None,
    name: str = "data",
) -> Dataset:
    r"""A `Dataset` of an observed trajectory (e.g. from `load_trajectory`), split as
    `make_dataset` splits a simulation: the first ``train_points`` samples are the training
    (interpolation) window, the rest the extrapolation window.

    ``train_points`` defaults to $T - \lfloor T/3 \rfloor$ (two thirds, rounded up: 61 of 91
    samples, Lotka-Volterra's split) and must leave at least 2 training samples and 1
    extrapolation sample. An observed trajectory has no clean version: ``clean`` holds the
    training observations (so ``interp_mse_clean`` of `evaluate_field` equals ``interp_mse``),
    ``ys_extrap`` the observed continuation, ``y0`` the first observation (the fit integrates
    from it) and ``noise_std`` is NaN (unknown)."""
    ts, ys = np.asarray(ts, np.float64), np.asarray(ys, np.float64)
    _check_trajectory(ts, ys, "the trajectory")
    total = len(ts)
    n = total - total // 3 if train_points is None else train_points
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 2 <= n <= total - 1:
        raise ValueError(
            f"train_points must be an int in [2, {total - 1}] (T = {total} samples: at least 2 "
            f"to train on and 1 to extrapolate to); got {train_points!r}"
        )
    n = int(n)
    return Dataset(
        name=name,
        ts=ts[:n],
        ys=ys[:n],
        clean=ys[:n],
        ts_extrap=ts[n:],
        ys_extrap=ys[n:],
        y0=ys[0].copy(),
        noise_std=np.full(ys.shape[1], np.nan),
    )


def discovery_task(
    settings: DiscoverySettings, data: Trajectory
) -> Plain | MultipleShooting | Homotopy:
    """The training task (a strategy of ``diffdyn.common``) of ``settings.method``; for
    homotopy the smoothing spline of ``data`` is fitted here."""
    if settings.method == "plain":
        return Plain(solve=settings.solve)
    if settings.method == "multiple-shooting":
        return MultipleShooting(
            segments=settings.segments, continuity=settings.continuity, solve=settings.solve
        )
    return Homotopy.from_data(
        data,
        k=settings.k,
        alpha=settings.alpha,
        schedule=settings.schedule,
        solve=settings.solve,
    )


def evaluate_field(field: Any, dataset: Dataset, solve: SolveConfig) -> dict[str, float]:
    """``interp_mse`` (against the noisy training data), ``interp_mse_clean`` (against the
    clean trajectory) and ``extrap_mse`` (against the clean continuation) of ``field``
    integrated from ``y0`` over the training and extrapolation windows; ``inf`` where the solve
    fails."""
    ts = jnp.asarray(np.concatenate([dataset.ts, dataset.ts_extrap]))
    sol = eqx.filter_jit(lambda f: solve.solve_full(f, jnp.asarray(dataset.y0), ts, throw=False))(
        field
    )
    ys = np.asarray(sol.ys, np.float64)
    n = len(dataset.ts)
    out = {
        "interp_mse": float(np.mean((ys[:n] - dataset.ys) ** 2)),
        "interp_mse_clean": float(np.mean((ys[:n] - dataset.clean) ** 2)),
        "extrap_mse": float(np.mean((ys[n:] - dataset.ys_extrap) ** 2)),
    }
    return {k: (v if math.isfinite(v) else math.inf) for k, v in out.items()}


def fit_system(
    field: Any,
    dataset: Dataset,
    settings: DiscoverySettings,
    key: PRNGKeyArray,
    *,
    train: TrainConfig | None = None,
    logger: Any = None,
    out: Any = None,
    resume: bool = False,
) -> tuple[TrainResult, dict[str, Any]]:
    """Train ``field`` on ``dataset`` with `discovery_task` and the `Trainer`, and score the
    selected model with `evaluate_field`.

    Args:
        field: the vector field to train (e.g. from `build_discovery_model`).
        dataset: the observations (`diffdyn.oscillators.make_dataset`).
        settings: the method and its hyperparameters.
        key: the key of the training run.
        train: logging, checkpoints and the like; its ``steps`` must be ``settings.steps``
            (default: ``TrainConfig(steps=settings.steps, progress=False)``).
        logger: where the losses go (default: nowhere).
        out: a folder for checkpoints and ``model.eqx``/``best.eqx`` (default: none).
        resume: continue from the checkpoint in ``out``.

    Returns:
        The `TrainResult` and the metrics: those of `evaluate_field` for the best model, its
        uncoupled training MSE ``best_train_mse`` and ``best_step``, ``steps``, ``seconds``,
        ``steps_per_second``, ``parameters``, ``diverged`` and ``selected_by``.
    """
    train = _checked_train(train, settings)
    data = trajectory_of(dataset)
    trainer = Trainer(
        discovery_task(settings, data), settings.optim, config=train, logger=logger, out=out
    )
    result = trainer.fit(field, data, key, resume=resume)
    return result, _fit_metrics(result, dataset, settings)


def fit_systems(
    fields: list[Any],
    dataset: Dataset,
    settings: DiscoverySettings,
    keys: list[PRNGKeyArray],
    *,
    train: TrainConfig | None = None,
    logger: Any = None,
    out: Any = None,
    resume: bool = False,
) -> tuple[EnsembleResult, list[dict[str, Any]]]:
    """`fit_system` of every field of ``fields`` (one structure, e.g. one model with several
    seeds) with its key of ``keys``, trained together as one ensemble
    (`Trainer.fit_ensemble`): each member is the run ``fit_system(fields[i], ..., keys[i])``
    would make. Returns the `EnsembleResult` and each member's metrics."""
    train = _checked_train(train, settings)
    data = trajectory_of(dataset)
    trainer = Trainer(
        discovery_task(settings, data), settings.optim, config=train, logger=logger, out=out
    )
    ensemble = trainer.fit_ensemble(fields, data, keys, resume=resume)
    return ensemble, [_fit_metrics(r, dataset, settings) for r in ensemble.members]


def _checked_train(train: TrainConfig | None, settings: DiscoverySettings) -> TrainConfig:
    train = TrainConfig(steps=settings.steps, progress=False) if train is None else train
    if train.steps != settings.steps:
        raise ValueError(
            f"train.steps is {train.steps} but the settings are for {settings.steps} steps"
        )
    return train


def _fit_metrics(
    result: TrainResult, dataset: Dataset, settings: DiscoverySettings
) -> dict[str, Any]:
    metrics: dict[str, Any] = evaluate_field(result.best_model, dataset, settings.solve)
    metrics.update(
        best_train_mse=result.best_loss,
        best_step=result.best_step,
        steps=result.steps,
        seconds=result.seconds,
        steps_per_second=result.steps_per_second,
        parameters=result.best_model.num_parameters(),
        diverged=result.diverged_at is not None,
        selected_by=result.selected_by,
    )
    return metrics
