r"""Irregularly sampled damped oscillators: a toy data set of ragged, padded time series.

Each sample is a damped harmonic oscillator $\ddot q + 2\gamma \dot q + (\omega^2 +
\gamma^2) q = 0$, observed as $x = (q, \dot q)$ with the closed form

$$
q(t) = a\, e^{-\gamma t} \cos(\omega t + \varphi), \qquad
\dot q(t) = -a\, e^{-\gamma t} \big(\gamma \cos(\omega t + \varphi)
+ \omega \sin(\omega t + \varphi)\big),
$$

at its own random times, with its own number of observations; the batch is padded to one
length with masked steps, the layout the recurrent and latent models take.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._helpers import check_int, check_number

__all__ = ["irregular_oscillators"]


def _check_range(
    value: tuple[float, float], name: str, minimum: float = 0.0
) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"argument {name!r} must be a pair (low, high); got {value!r}")
    low = check_number(value[0], f"{name}[0]", minimum)
    high = check_number(value[1], f"{name}[1]", minimum)
    if not (low <= high and math.isfinite(high)):
        raise ValueError(f"argument {name!r} must have finite low <= high; got {value!r}")
    return low, high


def irregular_oscillators(
    n: int,
    *,
    key: PRNGKeyArray,
    max_points: int = 16,
    min_points: int | None = None,
    t1: float = 10.0,
    frequency: tuple[float, float] = (0.5, 1.5),
    damping: tuple[float, float] = (0.05, 0.3),
    amplitude: tuple[float, float] = (0.5, 1.5),
    noise: float = 0.0,
    missing: float = 0.0,
) -> tuple[Float[Array, "n T"], Float[Array, "n T 2"], Bool[Array, "n T 2"]]:
    r"""``n`` damped oscillators observed at random times: ``(ts, xs, mask)``.

    Sample $b$ draws $\omega \sim U(\text{frequency})$, $\gamma \sim U(\text{damping})$,
    $a \sim U(\text{amplitude})$, $\varphi \sim U(0, 2\pi)$ and a number of observations
    $k_b \sim U\{\text{min\_points}, \dots, \text{max\_points}\}$ (``min_points`` None:
    ``max_points``, no padding), at $k_b$ sorted times uniform on $[0, t_1]$. The
    observations $x = (q, \dot q)$ carry Gaussian noise of std ``noise``, and each entry is
    missing with probability ``missing`` (partial observations).

    Returns ``ts [n, T]``, ``xs [n, T, 2]`` and ``mask [n, T, 2]`` (bool) with
    $T$ = ``max_points``: steps past $k_b$ are padding (mask False, ``xs`` 0, time repeated
    from the last real one, so every row of ``ts`` is non-decreasing).
    """
    n = check_int(n, "n")
    max_points = check_int(max_points, "max_points")
    min_points = max_points if min_points is None else check_int(min_points, "min_points")
    if min_points > max_points:
        raise ValueError(
            f"argument 'min_points' must be <= max_points = {max_points}; got {min_points}"
        )
    t1 = check_number(t1, "t1")
    if not (t1 > 0 and math.isfinite(t1)):
        raise ValueError(f"argument 't1' must be a finite number > 0; got {t1!r}")
    frequency = _check_range(frequency, "frequency")
    damping = _check_range(damping, "damping")
    amplitude = _check_range(amplitude, "amplitude")
    noise = check_number(noise, "noise")
    missing = check_number(missing, "missing")
    if missing >= 1:
        raise ValueError(f"argument 'missing' must be in [0, 1); got {missing!r}")

    keys = jax.random.split(key, 8)
    uniform = lambda k, r: jax.random.uniform(k, (n, 1), minval=r[0], maxval=r[1])  # noqa: E731
    omega, gamma, a = (
        uniform(keys[0], frequency),
        uniform(keys[1], damping),
        uniform(keys[2], amplitude),
    )
    phase = uniform(keys[3], (0.0, 2 * math.pi))
    count = jax.random.randint(keys[4], (n, 1), min_points, max_points + 1)
    ts = jnp.sort(jax.random.uniform(keys[5], (n, max_points), maxval=t1), axis=1)
    real = jnp.arange(max_points)[None, :] < count
    last = jnp.take_along_axis(ts, count - 1, axis=1)
    ts = jnp.where(real, ts, last)

    angle = omega * ts + phase
    decay = a * jnp.exp(-gamma * ts)
    q = decay * jnp.cos(angle)
    dq = -decay * (gamma * jnp.cos(angle) + omega * jnp.sin(angle))
    xs = jnp.stack([q, dq], axis=-1)
    xs = xs + noise * jax.random.normal(keys[6], xs.shape, xs.dtype)
    present = jax.random.uniform(keys[7], xs.shape) >= missing
    mask = real[..., None] & present
    xs = jnp.where(mask, xs, 0.0)
    return ts, xs, mask
