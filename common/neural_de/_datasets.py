r"""Toy datasets for neural differential equations, generated in JAX from a key.

Every generator takes a PRNG key and a sample count ``n`` and returns ``(x, y)``: inputs
``x [n, D]`` (float32 unless float64 is on) and labels or targets ``y``. Noise is Gaussian
and independent per coordinate (torchdyn's ToyDataset adds one uniform draw to both
coordinates; that quirk is not reproduced).

- `moons`: two interleaved half circles, $(\cos\theta, \sin\theta)$ and
  $(1 - \cos\theta, \tfrac12 - \sin\theta)$, $\theta \sim U[0, \pi]$.
- `circles`: two concentric circles of radii 1 and ``factor``.
- `spirals`: two interleaved Archimedean spirals $r = \theta$, the second rotated by
  $\pi$.
- `gaussian_mixture`: ``components`` isotropic Gaussians on a circle of ``radius``.
- `crossing`: the 1-D task $x \mapsto -x$ on $x = \pm 1$, whose trajectories
  must cross, which no 1-D ODE flow can do (Dupont et al., 2019).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

__all__ = ["moons", "circles", "spirals", "gaussian_mixture", "crossing", "DATASETS", "make"]


def _check_n(n: int, minimum: int = 2) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < minimum:
        raise ValueError(f"argument 'n' must be an int >= {minimum}; got {n!r}")
    return n


def _check_noise(noise: float) -> float:
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not noise >= 0:
        raise ValueError(f"argument 'noise' must be a number >= 0; got {noise!r}")
    return float(noise)


def _labels(n: int) -> Int[Array, " n"]:
    return (jnp.arange(n) >= n // 2).astype(jnp.int32)


def moons(
    key: PRNGKeyArray, n: int = 512, noise: float = 0.1
) -> tuple[Float[Array, "n 2"], Int[Array, " n"]]:
    r"""Two moons: class 0 at $(\cos\theta, \sin\theta)$, class 1 at
    $(1 - \cos\theta, \tfrac12 - \sin\theta)$, $\theta \sim U[0,\pi]$, plus
    $N(0, \mathrm{noise}^2)$ per coordinate."""
    n, noise = _check_n(n), _check_noise(noise)
    k_theta, k_noise = jax.random.split(key)
    y = _labels(n)
    theta = jax.random.uniform(k_theta, (n,), maxval=math.pi)
    upper = jnp.stack([jnp.cos(theta), jnp.sin(theta)], -1)
    lower = jnp.stack([1.0 - jnp.cos(theta), 0.5 - jnp.sin(theta)], -1)
    x = jnp.where(y[:, None] == 0, upper, lower)
    return x + noise * jax.random.normal(k_noise, x.shape), y


def circles(
    key: PRNGKeyArray, n: int = 512, noise: float = 0.05, factor: float = 0.5
) -> tuple[Float[Array, "n 2"], Int[Array, " n"]]:
    r"""Two concentric circles: class 0 on radius 1, class 1 on radius ``factor`` (0 < f < 1)."""
    n, noise = _check_n(n), _check_noise(noise)
    if not 0 < factor < 1:
        raise ValueError(f"argument 'factor' must lie in (0, 1); got {factor!r}")
    k_theta, k_noise = jax.random.split(key)
    y = _labels(n)
    theta = jax.random.uniform(k_theta, (n,), maxval=2 * math.pi)
    radius = jnp.where(y == 0, 1.0, factor)
    x = radius[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], -1)
    return x + noise * jax.random.normal(k_noise, x.shape), y


def spirals(
    key: PRNGKeyArray, n: int = 512, noise: float = 0.05, turns: float = 1.5
) -> tuple[Float[Array, "n 2"], Int[Array, " n"]]:
    r"""Two spirals $r = \theta / (2\pi\,\mathrm{turns})$ (so $r \le 1$),
    $\theta \sim U[0, 2\pi\,\mathrm{turns}]$, the second rotated by $\pi$."""
    n, noise = _check_n(n), _check_noise(noise)
    if not turns > 0:
        raise ValueError(f"argument 'turns' must be > 0; got {turns!r}")
    k_theta, k_noise = jax.random.split(key)
    y = _labels(n)
    theta_max = 2 * math.pi * turns
    theta = jnp.sqrt(jax.random.uniform(k_theta, (n,))) * theta_max  # uniform along the arc
    phase = jnp.where(y == 0, 0.0, math.pi)
    r = theta / theta_max
    x = r[:, None] * jnp.stack([jnp.cos(theta + phase), jnp.sin(theta + phase)], -1)
    return x + noise * jax.random.normal(k_noise, x.shape), y


def gaussian_mixture(
    key: PRNGKeyArray, n: int = 512, components: int = 8, radius: float = 2.0, std: float = 0.2
) -> tuple[Float[Array, "n 2"], Int[Array, " n"]]:
    r"""``components`` Gaussians $N(\mu_k, \mathrm{std}^2 I)$, $\mu_k =
    \mathrm{radius}\,(\cos 2\pi k/K, \sin 2\pi k/K)$, equally weighted; ``y`` is the component."""
    n = _check_n(n)
    if not isinstance(components, int) or components < 1:
        raise ValueError(f"argument 'components' must be an int >= 1; got {components!r}")
    if not std > 0:
        raise ValueError(f"argument 'std' must be > 0; got {std!r}")
    k_comp, k_noise = jax.random.split(key)
    y = jax.random.randint(k_comp, (n,), 0, components)
    angle = 2 * math.pi * y / components
    mu = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
    return mu + std * jax.random.normal(k_noise, (n, 2)), y


def crossing(
    key: PRNGKeyArray, n: int = 64, noise: float = 0.0
) -> tuple[Float[Array, "n 1"], Float[Array, "n 1"]]:
    r"""The crossing-trajectories task: half the inputs at $x=-1$, half at $x=+1$
    (plus optional noise on the input), target $y = -\mathrm{sign}(x)$."""
    n, noise = _check_n(n), _check_noise(noise)
    sign = jnp.where(_labels(n) == 0, -1.0, 1.0)[:, None]
    x = sign + noise * jax.random.normal(key, (n, 1))
    return x, -sign


DATASETS = {
    "moons": moons,
    "circles": circles,
    "spirals": spirals,
    "gaussians": gaussian_mixture,
    "crossing": crossing,
}
"""Generators by name (the CLI's ``--dataset`` choices)."""


def make(name: str, key: PRNGKeyArray, n: int, **kwargs) -> tuple[Array, Array]:
    """The dataset called ``name`` (one of `DATASETS`) with ``n`` samples."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name](key, n, **kwargs)
