r"""Low-dimensional dynamical systems and their observed trajectories (datasets).

Vector fields (``f(t, y, args)``, ``eqx.Module``):

- `LotkaVolterra`: $\dot x = a x - b x y,\ \dot y = c x y - d y$
  ($a, b, c, d = 1.3, 0.9, 0.8, 1.8$).
- `Lorenz63`: $\dot x = \sigma (y - x),\ \dot y = x (\rho - z) - y,\
  \dot z = x y - \beta z$ ($\sigma, \rho, \beta = 10, 28, 8/3$).
- `DoublePendulum`: two point masses on massless rods, state
  $(\theta_1, \theta_2, \omega_1, \omega_2)$, angles from the downward vertical
  (Lagrangian equations of motion, below).
- `VanDerPol`: $\dot x = y,\ \dot y = \mu (1 - x^2) y - x$.

`make_dataset` simulates a system in float64 (dopri5, rtol 1e-10, atol 1e-12) on the
training grid and an extrapolation grid beyond it and adds Gaussian measurement noise to the
training observations; training integrates from the clean initial state, as NeuralODEHomotopy
(Ko et al. 2023) does. Settings (`SYSTEMS`), from that homotopy study where it defines them:

================  ==========================  ===================  ======================
system            u0                          train / extrapolate  noise (std)
================  ==========================  ===================  ======================
lotka-volterra    (0.44249296, 4.6280594)     t = 0:0.1:6.0 / →9.0 5 % of per-dim mean
lorenz            (1.2, 2.1, 1.7)             t = 0:0.1:3.0 / →4.0 0.25 absolute
double-pendulum   (1.0, 1.5, 0, 0) (ours)     100 / 100 samples,   0.01 absolute (ours)
                                              dt = 0.01
van-der-pol       (2, 0) (ours)               t = 0:0.1:10 / →15   5 % of per-dim std
================  ==========================  ===================  ======================

Ko et al.'s double pendulum is a real measurement (Schmidt & Lipson 2009), which we cannot
ship; we simulate one with arms of 0.1 m (so that one second spans a few swings, like the
measured one) and add small absolute noise instead.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from diffdyn.common import SolveConfig

__all__ = [
    "LotkaVolterra",
    "Lorenz63",
    "DoublePendulum",
    "VanDerPol",
    "SystemSpec",
    "SYSTEMS",
    "Dataset",
    "make_dataset",
    "DATA_SOLVE",
]


class LotkaVolterra(eqx.Module):
    r"""Predator-prey: $\dot x = a x - b x y$, $\dot y = c x y - d y$."""

    a: float = 1.3
    b: float = 0.9
    c: float = 0.8
    d: float = 1.8

    def __call__(self, t, y: Float[Array, "2"], args=None) -> Float[Array, "2"]:
        x, z = y[0], y[1]
        return jnp.stack([self.a * x - self.b * x * z, self.c * x * z - self.d * z])


class Lorenz63(eqx.Module):
    r"""Lorenz-63: $(\sigma(y-x),\ x(\rho - z) - y,\ x y - \beta z)$."""

    sigma: float = 10.0
    rho: float = 28.0
    beta: float = 8.0 / 3.0

    def __call__(self, t, y: Float[Array, "3"], args=None) -> Float[Array, "3"]:
        x, v, z = y[0], y[1], y[2]
        return jnp.stack([self.sigma * (v - x), x * (self.rho - z) - v, x * v - self.beta * z])


class DoublePendulum(eqx.Module):
    r"""Double pendulum of point masses $m_1, m_2$ on rods $l_1, l_2$.

    With $\Delta = \theta_1 - \theta_2$ and $D = 2 m_1 + m_2 - m_2 \cos 2\Delta$:

    $$
    \dot\omega_1 &= \frac{-g(2m_1 + m_2)\sin\theta_1 - m_2 g \sin(\theta_1 - 2\theta_2)
    - 2 \sin\Delta\, m_2 (\omega_2^2 l_2 + \omega_1^2 l_1 \cos\Delta)}{l_1 D}, \\
    \dot\omega_2 &= \frac{2 \sin\Delta\,(\omega_1^2 l_1 (m_1 + m_2)
    + g (m_1 + m_2) \cos\theta_1 + \omega_2^2 l_2 m_2 \cos\Delta)}{l_2 D}.
    $$

    The energy $E = \tfrac12 (m_1+m_2) l_1^2\omega_1^2 + \tfrac12 m_2 l_2^2 \omega_2^2 +
    m_2 l_1 l_2 \omega_1\omega_2\cos\Delta - (m_1+m_2) g l_1\cos\theta_1 - m_2 g l_2
    \cos\theta_2$ is conserved (`energy`).
    """

    m1: float = 1.0
    m2: float = 1.0
    l1: float = 0.1
    l2: float = 0.1
    g: float = 9.81

    def __call__(self, t, y: Float[Array, "4"], args=None) -> Float[Array, "4"]:
        th1, th2, w1, w2 = y[0], y[1], y[2], y[3]
        m1, m2, l1, l2, g = self.m1, self.m2, self.l1, self.l2, self.g
        delta = th1 - th2
        den = 2 * m1 + m2 - m2 * jnp.cos(2 * delta)
        a1 = (
            -g * (2 * m1 + m2) * jnp.sin(th1)
            - m2 * g * jnp.sin(th1 - 2 * th2)
            - 2 * jnp.sin(delta) * m2 * (w2**2 * l2 + w1**2 * l1 * jnp.cos(delta))
        ) / (l1 * den)
        a2 = (
            2
            * jnp.sin(delta)
            * (
                w1**2 * l1 * (m1 + m2)
                + g * (m1 + m2) * jnp.cos(th1)
                + w2**2 * l2 * m2 * jnp.cos(delta)
            )
        ) / (l2 * den)
        return jnp.stack([w1, w2, a1, a2])

    def energy(self, y: Float[Array, "... 4"]) -> Float[Array, "..."]:
        th1, th2, w1, w2 = y[..., 0], y[..., 1], y[..., 2], y[..., 3]
        m1, m2, l1, l2, g = self.m1, self.m2, self.l1, self.l2, self.g
        kinetic = (
            0.5 * (m1 + m2) * l1**2 * w1**2
            + 0.5 * m2 * l2**2 * w2**2
            + m2 * l1 * l2 * w1 * w2 * jnp.cos(th1 - th2)
        )
        potential = -(m1 + m2) * g * l1 * jnp.cos(th1) - m2 * g * l2 * jnp.cos(th2)
        return kinetic + potential


class VanDerPol(eqx.Module):
    r"""Van der Pol oscillator: $\dot x = y$, $\dot y = \mu(1 - x^2) y - x$."""

    mu: float = 1.0

    def __call__(self, t, y: Float[Array, "2"], args=None) -> Float[Array, "2"]:
        return jnp.stack([y[1], self.mu * (1 - y[0] ** 2) * y[1] - y[0]])


@dataclasses.dataclass(frozen=True)
class SystemSpec:
    """A system and how it is observed: ``n_train`` samples every ``dt`` from ``t = 0``, then
    ``n_extrap`` more for extrapolation; noise ``std = noise * scale`` per dimension with
    ``scale`` the per-dim temporal ``mean`` of the clean training trajectory, its ``std``,
    or 1 (``absolute``)."""

    name: str
    field: eqx.Module
    y0: tuple[float, ...]
    dt: float
    n_train: int
    n_extrap: int
    noise: float
    noise_scale: Literal["mean", "std", "absolute"]
    state_names: tuple[str, ...]


SYSTEMS: dict[str, SystemSpec] = {
    "lotka-volterra": SystemSpec(
        "lotka-volterra",
        LotkaVolterra(),
        (0.44249296, 4.6280594),
        0.1,
        61,
        30,
        0.05,
        "mean",
        ("x", "y"),
    ),
    "lorenz": SystemSpec(
        "lorenz", Lorenz63(), (1.2, 2.1, 1.7), 0.1, 31, 10, 0.25, "absolute", ("x", "y", "z")
    ),
    "double-pendulum": SystemSpec(
        "double-pendulum",
        DoublePendulum(),
        (1.0, 1.5, 0.0, 0.0),
        0.01,
        100,
        100,
        0.01,
        "absolute",
        ("theta1", "theta2", "omega1", "omega2"),
    ),
    "van-der-pol": SystemSpec(
        "van-der-pol", VanDerPol(), (2.0, 0.0), 0.1, 101, 50, 0.05, "std", ("x", "y")
    ),
}
"""The systems that `make_dataset` simulates, by name, with their parameters and noise."""


DATA_SOLVE = SolveConfig(solver="dopri5", rtol=1e-10, atol=1e-12, max_steps=100_000)
"""How `make_dataset` simulates the systems: dopri5 at rtol 1e-10, atol 1e-12, in float64."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Float64 numpy arrays: training times ``ts [N]``, noisy observations ``ys [N, D]``,
    the clean trajectory ``clean [N, D]``, extrapolation times ``ts_extrap [M]`` and clean
    states ``ys_extrap [M, D]``, the clean initial state ``y0 [D]`` and the noise std
    ``noise_std [D]``."""

    name: str
    ts: np.ndarray
    ys: np.ndarray
    clean: np.ndarray
    ts_extrap: np.ndarray
    ys_extrap: np.ndarray
    y0: np.ndarray
    noise_std: np.ndarray

    @property
    def state_dim(self) -> int:
        return int(self.ys.shape[1])


def make_dataset(
    name: str,
    *,
    seed: int = 10,
    noise: float | None = None,
    dt: float | None = None,
    train_span: float | None = None,
) -> Dataset:
    r"""Simulate system ``name`` (a key of `SYSTEMS`) in float64 and observe it with
    Gaussian noise drawn from ``jax.random.key(seed)``.

    The training window holds the $\lfloor T / \Delta t \rfloor + 1$ samples at
    $t = 0, \Delta t, \dots$ up to its span $T$, the extrapolation window the
    $\lfloor T_e / \Delta t \rfloor$ samples after it (at least 1), where $T_e$ is the span of
    the system's extrapolation window (e.g. Lotka-Volterra at $\Delta t = 0.3$: 21 samples
    over $[0, 6]$, then 10 up to $t = 9$).

    Args:
        name: the system, a key of `SYSTEMS`.
        seed: the seed of the measurement noise.
        noise: the noise level (None: the system's).
        dt: the sampling interval $\Delta t$ (None: the system's).
        train_span: the span $T$ of the training window (None: the system's, e.g. 6.0 for
            Lotka-Volterra).
    """
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; known systems: {', '.join(SYSTEMS)}")
    spec = SYSTEMS[name]
    level = spec.noise if noise is None else float(noise)
    if not level >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    n_train, n_extrap, step = _grid(spec, dt, train_span)
    ts_all = np.arange(n_train + n_extrap, dtype=np.float64) * step
    with jax.enable_x64(True):
        y0 = jnp.asarray(spec.y0, jnp.float64)
        ys_all = DATA_SOLVE.solve(spec.field, y0, jnp.asarray(ts_all))
        ys_all = np.asarray(ys_all, np.float64)
        clean = ys_all[:n_train]
        if spec.noise_scale == "mean":
            scale = np.abs(clean.mean(0))
        elif spec.noise_scale == "std":
            scale = clean.std(0)
        else:
            scale = np.ones(clean.shape[1])
        std = level * scale
        eps = np.asarray(jax.random.normal(jax.random.key(seed), clean.shape, jnp.float64))
    ys = clean + std * eps
    return Dataset(
        name=name,
        ts=ts_all[:n_train],
        ys=ys,
        clean=clean,
        ts_extrap=ts_all[n_train:],
        ys_extrap=ys_all[n_train:],
        y0=np.asarray(spec.y0, np.float64),
        noise_std=std,
    )


def _grid(spec: SystemSpec, dt: float | None, train_span: float | None) -> tuple[int, int, float]:
    """The training samples, the extrapolation samples and the interval of `make_dataset`."""
    for name, value in (("dt", dt), ("train_span", train_span)):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value < math.inf
        ):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if dt is None and train_span is None:
        return spec.n_train, spec.n_extrap, spec.dt
    step = spec.dt if dt is None else float(dt)
    span = (spec.n_train - 1) * spec.dt if train_span is None else float(train_span)
    # the tolerance keeps 6.0 / 0.3 at 20 intervals, not 19
    n_train = int(math.floor(span / step + 1e-9)) + 1
    n_extrap = max(1, int(math.floor(spec.n_extrap * spec.dt / step + 1e-9)))
    if n_train < 2:
        raise ValueError(
            f"a training window of span {span:g} sampled every {step:g} has {n_train} sample; "
            "it needs at least 2"
        )
    return n_train, n_extrap, step
