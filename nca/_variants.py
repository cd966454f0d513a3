"""NCA variants: each changes only the per-cell update ``dx = f(P(x))`` of `AbstractNCA`.

- `GatedNCA`: a gated linear unit, ``f = a ⊙ sigmoid(b)`` with ``[a; b] = W_2 σ(W_1 p)``;
- `MultiScaleNCA`: channel block ``k`` is updated from the state mean-pooled by
  ``scales[k]``, then upsampled (pool, perceive, update, repeat);
- `KANCA`: Kolmogorov-Arnold NCA, the MLP replaced by two Gaussian-basis KAN layers
  (the "kaNCA" of Richardson et al. 2024).

All start as the identity (zero last layer), and all take the shared cell settings as their
first argument, a `Cells`: ``GatedNCA(Cells(16), hidden=64, key=key)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from diffdyn.common._helpers import check_int

from ._layers import GaussianKAN, PointwiseMLP
from ._model import AbstractNCA, Cells, _check_cells

__all__ = ["GatedNCA", "MultiScaleNCA", "KANCA"]


class GatedNCA(AbstractNCA):
    """``dx = a ⊙ sigmoid(b)``, ``[a; b] = W_2 σ(W_1 P(x) + b_1) + b_2`` (``jax.nn.glu``).

    ``W_2, b_2`` start at zero, so ``a = 0`` and the untrained model is the identity.

    Args:
        cells: the shared cell settings.
        hidden: the hidden width.
        activation: the hidden activation (a name from `ACTIVATIONS`).
        key: initialises the first layer.
    """

    cells: Cells
    net: PointwiseMLP
    hidden: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self, cells: Cells, hidden: int = 128, activation: str = "relu", *, key: PRNGKeyArray
    ):
        self.cells = _check_cells(cells, "GatedNCA")
        channels = cells.channels
        self.hidden = check_int(hidden, "hidden", 1)
        self.activation = activation
        features = self.cells.perception.out_channels
        self.net = PointwiseMLP(features, hidden, 2 * channels, activation=activation, key=key)

    def increment(self, x: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        return jax.nn.glu(self.net(self.perception(x)), axis=0)


def _mean_pool(x: Float[Array, "C H W"], s: int) -> Float[Array, "C h w"]:
    c, h, w = x.shape
    return x.reshape(c, h // s, s, w // s, s).mean(axis=(2, 4))


class MultiScaleNCA(AbstractNCA):
    """Channel block ``k`` (``C / len(scales)`` channels) is updated at scale ``s_k``:

    ``dx_k = U_s(f_k(P(D_s(x))))`` with ``D_s`` the ``s x s`` mean pool of the whole state and
    ``U_s`` nearest-neighbour upsampling (``H`` and ``W`` must be divisible by every scale).
    Put the observable channels in the first block with ``scales[0] = 1``.

    Args:
        cells: the shared cell settings (``cells.channels`` divisible by ``len(scales)``).
        hidden: the hidden width of every block's network.
        activation: the hidden activation (a name from `ACTIVATIONS`).
        scales: the pooling factor of each channel block.
        key: initialises the first layers.
    """

    cells: Cells
    nets: tuple[PointwiseMLP, ...]
    scales: tuple[int, ...] = eqx.field(static=True)
    hidden: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        cells: Cells,
        hidden: int = 64,
        activation: str = "relu",
        scales: Sequence[int] = (1, 2),
        *,
        key: PRNGKeyArray,
    ):
        self.cells = _check_cells(cells, "MultiScaleNCA")
        channels = cells.channels
        scales = tuple(check_int(s, "scales[i]", 1) for s in scales)
        if not scales or channels % len(scales):
            raise ValueError(
                f"channels ({channels}) must be divisible by the number of scales; got "
                f"scales={list(scales)}"
            )
        self.scales = scales
        self.hidden = check_int(hidden, "hidden", 1)
        self.activation = activation
        block = channels // len(scales)
        features = self.cells.perception.out_channels
        keys = jax.random.split(key, len(scales))
        self.nets = tuple(
            PointwiseMLP(features, hidden, block, activation=activation, key=k) for k in keys
        )

    def increment(self, x: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        h, w = x.shape[1:]
        bad = [s for s in self.scales if h % s or w % s]
        if bad:
            raise ValueError(
                f"x must have H and W divisible by every scale {list(self.scales)}; got shape "
                f"{tuple(x.shape)}"
            )
        blocks = []
        for s, net in zip(self.scales, self.nets, strict=True):
            dx = net(self.perception(_mean_pool(x, s) if s > 1 else x))
            blocks.append(jnp.repeat(jnp.repeat(dx, s, axis=1), s, axis=2) if s > 1 else dx)
        return jnp.concatenate(blocks, axis=0)


class KANCA(AbstractNCA):
    """Kolmogorov-Arnold NCA: ``dx = K_2(K_1(P(x)))`` with `GaussianKAN`
    layers ``F -> F`` (weights ``0.1 N(0, 1) / sqrt(F)``) and ``F -> C`` (zero).

    Every edge is a learned 1-D function, a sum of ``basis`` Gaussians on ``[-3, 3]``.

    Args:
        cells: the shared cell settings.
        basis: the Gaussians per edge.
        key: initialises the inner layer.
    """

    cells: Cells
    inner: GaussianKAN
    outer: GaussianKAN
    basis: int = eqx.field(static=True)

    def __init__(self, cells: Cells, basis: int = 8, *, key: PRNGKeyArray):
        self.cells = _check_cells(cells, "KANCA")
        channels = cells.channels
        self.basis = check_int(basis, "basis", 1)
        features = self.cells.perception.out_channels
        k1, k2 = jax.random.split(key)
        self.inner = GaussianKAN(features, features, basis=basis, init_scale=0.1, key=k1)
        self.outer = GaussianKAN(features, channels, basis=basis, init_scale=0.0, key=k2)

    def increment(self, x: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        return self.outer(self.inner(self.perception(x)))
