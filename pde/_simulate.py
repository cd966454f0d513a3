"""Simulating a fixed PDE from its literature initial state (``diffdyn pde simulate``)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from diffdyn.common import SolveConfig
from diffdyn.common._helpers import check_int

from ._base import AbstractPDE
from ._initial import initial_state
from ._patterns import connected_components, dominant_wavelength
from ._registry import FIXED_MODELS, FixedModelName, make_pde
from ._solver import PDESolver

__all__ = ["SimulateConfig", "Simulation", "simulate_pde", "pattern_metrics"]


def parse_params(text: str, name: str = "params") -> dict[str, Any]:
    """A JSON object of model arguments (``""``: none), e.g. ``'{"feed": 0.04}'``."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(
            f"{name} must be a JSON object, e.g. '{{\"feed\": 0.04}}'; got {text!r}"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object; got {text!r}")
    return value


@dataclasses.dataclass(frozen=True)
class SimulateConfig:
    """Simulate a fixed PDE model from its literature initial state.

    Attributes:
        model: the fixed model.
        params: a JSON object of model arguments, e.g. '{"feed": 0.0367, "kill": 0.0649}' or
            '{"grid": {"dx": 0.5, "boundary": "neumann"}}' (empty: the literature defaults).
        size: grid cells per side.
        t1: the final time.
        frames: states saved from 0 to t1 (trajectory.npy and the GIF).
        channel: the channel shown in the GIF and measured (negative: from the end).
        float64: switch on float64 (for the whole process).
        solve: how the PDE is integrated.
    """

    model: FixedModelName = "gray-scott"
    params: str = ""
    size: int = 64
    t1: float = 5000.0
    frames: int = 50
    channel: int = -1
    float64: bool = False
    solve: SolveConfig = SolveConfig(solver="heun", dt0=1.0, adaptive=False, rtol=1e-3, atol=1e-3)

    def __post_init__(self) -> None:
        if self.model not in FIXED_MODELS:
            raise ValueError(f"model must be one of {sorted(FIXED_MODELS)}; got {self.model!r}")
        check_int(self.size, "size", 3)
        check_int(self.frames, "frames", 2)
        if not (isinstance(self.t1, (int, float)) and math.isfinite(self.t1) and self.t1 > 0):
            raise ValueError(f"t1 must be a finite number > 0; got {self.t1!r}")
        parse_params(self.params)


def pattern_metrics(state: Any, channel: int, dx: float) -> dict[str, Any]:
    """Statistics of channel ``channel`` of ``state`` ``[C, H, W]``: the connected components
    above the mid-range (periodic), the dominant wavelength (square grids, else ``None``), min
    and max."""
    field = np.asarray(state)[channel]
    threshold = 0.5 * (field.min() + field.max())
    _, n = connected_components(field > threshold)
    return {
        "components": n,
        "wavelength": dominant_wavelength(field, dx) if field.shape[0] == field.shape[1] else None,
        "min": float(field.min()),
        "max": float(field.max()),
    }


@dataclasses.dataclass
class Simulation:
    """What `simulate_pde` returns.

    Attributes:
        frames: the states ``[T, C, H, W]`` at ``ts``.
        ts: the save times ``[T]``.
        model: the solver that ran.
        seconds: wall-clock time of the solve (compilation included).
        metrics: the model name, the time, the number of cells and `pattern_metrics` of the
            final state.
    """

    frames: np.ndarray
    ts: np.ndarray
    model: PDESolver
    seconds: float
    metrics: dict[str, Any]


def simulate_pde(cfg: SimulateConfig, key: PRNGKeyArray) -> Simulation:
    """Simulate ``cfg.model`` from `initial_state` (drawn from ``fold_in(key, 2)``) over
    ``[0, t1]``; a non-finite state is an error. With ``cfg.float64``, float64 is switched on
    for the process."""
    if cfg.float64:
        jax.config.update("jax_enable_x64", True)
    rhs: AbstractPDE = make_pde(cfg.model, **parse_params(cfg.params))
    if not -rhs.channels <= cfg.channel < rhs.channels:
        raise ValueError(
            f"channel must be in [{-rhs.channels}, {rhs.channels - 1}] for {cfg.model!r}; "
            f"got {cfg.channel}"
        )
    solver = PDESolver(rhs, cfg.solve)
    x0 = initial_state(rhs, jax.random.fold_in(key, 2), cfg.size)
    ts = jnp.linspace(0.0, cfg.t1, cfg.frames)
    start = time.perf_counter()
    # the save times are closed over (constants): a fixed step counts its steps up front
    ys = eqx.filter_jit(lambda s, x: s(x, ts))(solver, x0)
    ys = np.asarray(jax.block_until_ready(ys))
    seconds = time.perf_counter() - start
    if not np.all(np.isfinite(ys)):
        raise ValueError(
            f"the simulation of {cfg.model!r} became non-finite; use a smaller solve.dt0 or "
            "--solve.adaptive"
        )
    metrics = {
        "model": cfg.model,
        "seconds": seconds,
        "cells": int(np.prod(ys.shape[1:])),
        **pattern_metrics(ys[-1], cfg.channel, rhs.dx),
    }
    return Simulation(ys, np.asarray(ts), solver, seconds, metrics)
