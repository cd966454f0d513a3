"""NCA variants: each changes only the per-cell update ``dx = f(P(x))`` of `AbstractNCA`.

- `GatedNCA`: a gated linear unit, ``f = a ⊙ sigmoid(b)`` with ``[a; b] = W_2 σ(W_1 p)``;
- `MultiScaleNCA`: channel block ``k`` is updated from the state mean-pooled by
  ``scales[k]``, then upsampled (pool, perceive, update, repeat);
- `KANCA`: Kolmogorov-Arnold NCA, the MLP replaced by two Gaussian-basis KAN layers
  (the "kaNCA" of Richardson et al. 2024);
- `PolynomialNCA`: the perception sees every product of at most ``degree`` channels
  (the "hNCA" of the same code);
- `AttentionNCA`: the channels of a cell attend to each other (per-cell softmax attention
  over channel tokens, the "aNCA");
- `BoundedNCA`: ``dx = bound * tanh(...)``, so no channel changes by more than ``bound`` in
  a step.

All start as the identity (zero last layer), and all take the shared cell settings as their
first argument, a `Cells`: ``GatedNCA(Cells(16), hidden=64, key=key)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from diffdyn.common import Perception
from diffdyn.common._helpers import check_int

from ._layers import ACTIVATIONS, GaussianKAN, Pointwise, PointwiseMLP
from ._model import AbstractNCA, Cells, _check_cells

__all__ = [
    "GatedNCA",
    "MultiScaleNCA",
    "KANCA",
    "PolynomialNCA",
    "AttentionNCA",
    "BoundedNCA",
    "monomial_table",
]


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


def monomial_table(channels: int, degree: int) -> tuple[tuple[int, ...], ...]:
    """The monomials of ``channels`` variables of degree ``1..degree``, one row each.

    Row ``r`` lists ``degree`` indices; index ``channels`` stands for the constant 1, so the
    monomial is ``prod_k x[row[k]]``. Order: by degree, then lexicographic (as
    ``itertools.combinations_with_replacement``); there are ``binom(C + d, d) - 1`` rows.
    """
    channels = check_int(channels, "channels", 1)
    degree = check_int(degree, "degree", 1)
    rows = []
    for p in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(channels), p):
            rows.append(combo + (channels,) * (degree - p))
    return tuple(rows)


class PolynomialNCA(AbstractNCA):
    r"""Higher-order NCA ("hNCA" of the Differentiable-Patterning code, Richardson et al.
    2024): the perception sees every monomial of the state up to ``degree``,

    $$
    dx = W_2\, \sigma\big(W_1\, P\big(m(x)\big) + b_1\big) + b_2, \qquad
    m(x) = \big(x_c,\; x_c x_{c'} \,(c \le c'),\; \dots\big),
    $$

    all $M = \binom{C + d}{d} - 1$ products of at most ``degree`` $= d$ channels of the same
    cell (rows of `monomial_table`; for $d = 2$: the $C$ channels, then the $C(C+1)/2$
    products $x_c x_{c'}$), each filtered by the ``cells.filters`` (blocked by filter, as
    `Perception`): $K M$ features per cell. The products are taken before the stencils, so the
    Laplacian feature of $x_0 x_1$ is $\nabla^2 (x_0 x_1)$. ``W_2, b_2`` start at zero: the
    untrained model is the identity.

    Args:
        cells: the shared cell settings (their filters and boundary padding are used on the
            monomials).
        hidden: the hidden width.
        activation: the hidden activation (a name from `ACTIVATIONS`).
        degree: the highest degree $d$ of the monomials (1: the plain `NCA`).
        key: initialises the first layer.
    """

    cells: Cells
    lifted: Perception
    net: PointwiseMLP
    hidden: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    degree: int = eqx.field(static=True)
    table: tuple[tuple[int, ...], ...] = eqx.field(static=True)

    def __init__(
        self,
        cells: Cells,
        hidden: int = 128,
        activation: str = "relu",
        degree: int = 2,
        *,
        key: PRNGKeyArray,
    ):
        self.cells = _check_cells(cells, "PolynomialNCA")
        self.hidden = check_int(hidden, "hidden", 1)
        self.activation = activation
        self.degree = check_int(degree, "degree", 1)
        self.table = monomial_table(cells.channels, self.degree)
        self.lifted = Perception(len(self.table), cells.filters, padding=cells.bc.padding)
        features = self.lifted.out_channels
        self.net = PointwiseMLP(features, hidden, cells.channels, activation=activation, key=key)

    def monomials(self, x: Float[Array, "C H W"]) -> Float[Array, "M H W"]:
        """$m(x)$: the products of the rows of `monomial_table`, at every cell."""
        ones = jnp.ones((1, *x.shape[1:]), x.dtype)
        padded = jnp.concatenate([x, ones], axis=0)
        return jnp.prod(padded[np.asarray(self.table)], axis=1)

    def features(self, x: Float[Array, "C H W"]) -> Float[Array, "KM H W"]:
        """$P(m(x))$: the filters on every monomial (channel ``k M + r``: filter ``k`` on
        monomial ``r``)."""
        return self.lifted(self.monomials(x))

    def increment(self, x: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        return self.net(self.features(x))


class AttentionNCA(AbstractNCA):
    r"""Channel-attention NCA ("aNCA" of the Differentiable-Patterning code): at every cell,
    the $C$ channels are $C$ tokens that attend to each other.

    With $p = P(x)$ at a cell, three 1x1 convolutions give queries, keys and values
    $q, k, v \in \mathbb{R}^{C \times E}$ (token size $E$, ``heads`` $= n$ heads of
    $E/n$ dimensions each). Head $h$ mixes the channels with the per-cell softmax weights

    $$
    A^h_{ij} = \operatorname{softmax}_j\!\Big(\frac{q^h_i \cdot k^h_j}{\sqrt{E/n}}\Big),
    \qquad o^h_i = \sum_j A^h_{ij} v^h_j ,
    $$

    (scaled dot-product attention, Vaswani et al. 2017; $\sum_j A^h_{ij} = 1$), and
    $dx = W_o\, \sigma(o) + b_o$ with $o$ flattened to $C E$ features and the zero-initialised
    $W_o, b_o$: the untrained model is the identity. The reference code runs
    ``eqx.nn.MultiheadAttention`` over the channel tokens, which adds a second, redundant
    set of projections after the three convolutions; here the convolutions are the
    projections.

    Args:
        cells: the shared cell settings.
        token_size: the size $E$ of every channel token (divisible by ``heads``).
        heads: the attention heads $n$.
        activation: the activation $\sigma$ before the output layer (a name from
            `ACTIVATIONS`).
        key: initialises the query, key and value layers.
    """

    cells: Cells
    queries: Pointwise
    keys: Pointwise
    values: Pointwise
    output: Pointwise
    token_size: int = eqx.field(static=True)
    heads: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    def __init__(
        self,
        cells: Cells,
        token_size: int = 16,
        heads: int = 4,
        activation: str = "relu",
        *,
        key: PRNGKeyArray,
    ):
        self.cells = _check_cells(cells, "AttentionNCA")
        self.token_size = check_int(token_size, "token_size", 1)
        self.heads = check_int(heads, "heads", 1)
        if self.token_size % self.heads:
            raise ValueError(
                f"token_size must be divisible by heads = {self.heads}; got {self.token_size}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}; got {activation!r}")
        self.activation = activation
        c = cells.channels
        features = self.cells.perception.out_channels
        kq, kk, kv, ko = jax.random.split(key, 4)
        self.queries = Pointwise(features, c * self.token_size, key=kq)
        self.keys = Pointwise(features, c * self.token_size, key=kk)
        self.values = Pointwise(features, c * self.token_size, key=kv)
        self.output = Pointwise(c * self.token_size, c, zero=True, key=ko)

    def _tokens(self, layer: Pointwise, p: Array) -> Float[Array, "C n e H W"]:
        c, e = self.channels, self.token_size
        return layer(p).reshape(c, self.heads, e // self.heads, *p.shape[1:])

    def _weights(self, p: Array) -> Float[Array, "n C C H W"]:
        q, k = self._tokens(self.queries, p), self._tokens(self.keys, p)
        logits = jnp.einsum("ihdyx,jhdyx->hijyx", q, k) / math.sqrt(q.shape[2])
        return jax.nn.softmax(logits, axis=2)

    def attention(self, x: Float[Array, "C H W"]) -> Float[Array, "n C C H W"]:
        """The weights $A^h_{ij}$ at every cell, ``[heads, C, C, H, W]`` (sum 1 over ``j``)."""
        self.cells.check(x)
        return self._weights(self.perception(jnp.asarray(x)))

    def increment(self, x: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        p = self.perception(x)
        v = self._tokens(self.values, p)
        o = jnp.einsum("hijyx,jhdyx->ihdyx", self._weights(p), v)
        o = o.reshape(self.channels * self.token_size, *x.shape[1:])
        return self.output(ACTIVATIONS[self.activation](o))


class BoundedNCA(AbstractNCA):
    r"""An NCA whose update is bounded: $dx = \beta \tanh\big(W_2\, \sigma(W_1 P(x) + b_1)
    + b_2\big)$, so $|dx_c| \le \beta$ in every channel of every cell (``bound`` $= \beta$, as
    the state's dtype rounds it).

    A step changes a firing cell by at most $\beta$ per channel before alive masking and the
    boundary (which can only zero or fix values). ``W_2, b_2`` start at zero: the untrained
    model is the identity. (The reference's "bNCA" clipped the state instead, which stops
    gradients at the clip.)

    Args:
        cells: the shared cell settings.
        hidden: the hidden width.
        activation: the hidden activation (a name from `ACTIVATIONS`).
        bound: the largest change $\beta > 0$ of a channel in one step.
        key: initialises the first layer.
    """

    cells: Cells
    net: PointwiseMLP
    hidden: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    bound: float = eqx.field(static=True)

    def __init__(
        self,
        cells: Cells,
        hidden: int = 128,
        activation: str = "relu",
        bound: float = 1.0,
        *,
        key: PRNGKeyArray,
    ):
        self.cells = _check_cells(cells, "BoundedNCA")
        self.hidden = check_int(hidden, "hidden", 1)
        self.activation = activation
        if (
            isinstance(bound, bool)
            or not isinstance(bound, (int, float))
            or not (0.0 < bound < math.inf)
        ):
            raise ValueError(f"bound must be a finite number > 0; got {bound!r}")
        self.bound = float(bound)
        features = self.cells.perception.out_channels
        self.net = PointwiseMLP(features, hidden, cells.channels, activation=activation, key=key)

    def increment(self, x: Float[Array, "C H W"]) -> Float[Array, "C H W"]:
        return self.bound * jnp.tanh(self.net(self.perception(x)))
