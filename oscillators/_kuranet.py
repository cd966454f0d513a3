r"""KuraNet: a network that maps node features to Kuramoto couplings, and synchrony losses.

The model follows the KuraNet reference implementation (Ricci et al. 2021, serre-lab/KuraNet).

For node features $x_1..x_N \in \mathbb{R}^F$ the coupling network evaluates an MLP on
every ordered pair,

$$
C_{ij} = w_3^\top \sigma(\mathrm{BN}_2(W_2\, \sigma(\mathrm{BN}_1(W_1 [x_i; x_j]
+ b_1)) + b_2)), \qquad \sigma = \mathrm{LeakyReLU}(0.01),
$$

then normalises $C$ into $K$ and symmetrises $K \leftarrow (K + K^\top)/2$:

- ``node``: $K = N d\, \mathrm{softmax}(C)$ over all $N^2$ entries jointly
  (non-negative, mean weighted degree $d$ = ``avg_deg``);
- ``graph``: rows scaled to unit L2 norm (signed: repulsive couplings allowed);
- ``none``: $K = C$.

An optional boolean ``mask [N, N]`` restricts the graph to its ``True`` entries (a sparse
graph): masked-out couplings are exactly zero under every normalisation.

The first layer is applied as $W_1[x_i; x_j] = A x_i + B x_j$, so it costs
$O(NH)$, and the pair batch statistics of ``BN_1`` have the closed form
$\mu = \bar u + \bar v$, $\sigma^2 = \mathrm{var}(u) + \mathrm{var}(v)$ for
$u = Ax$, $v = Bx + b_1$. Deviation from KuraNet, documented: the batch norms
always use the statistics of the current network's $N^2$ pairs (KuraNet's training
mode), also at evaluation, so the coupling is a pure function of the features with no
running state. Large networks are processed in blocks of rows (``row_chunk``) in two passes
(statistics, then couplings), with the same result.

Losses on phase trajectories ``[T, N]`` (all averaged over the ``T`` time points):
`circular_variance` $= 1 - R$, `circular_moments` (group synchrony with
splay-balanced group phases, in [0, 1]), `cohn_loss` (group synchrony with Cohn's
logarithmic repulsion between group phases, KuraNet's experimental loss) and
`segmentation_loss` (circular moments with the groups given by class labels). Brede's
statistic $c_x$ of a coupling matrix is `feature_assortativity`.
"""

from __future__ import annotations

import copy
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from diffdyn.common import AbstractModel

from ._kuramoto import group_order_parameter, one_hot_groups, order_parameter

__all__ = [
    "NORMALISATIONS",
    "KuraNet",
    "normalise_coupling",
    "circular_variance",
    "circular_moments",
    "segmentation_loss",
    "cohn_loss",
    "feature_assortativity",
]

NORMALISATIONS = ("node", "graph", "none")
"""How `KuraNet` scales its coupling matrix: by each node's degree, by the whole graph's, or not
at all."""
_EPS = 1e-5
_SLOPE = 0.01
# Hidden activations (floats) materialised at once when row_chunk = 0: 2^27 floats = 512 MB
# per activation (N = 1000 pairs with H = 128 stay dense; its backward holds a few GB).
_DENSE_LIMIT = 2**27


def _leaky(x: Array) -> Array:
    # LeakyReLU as a select: the gradient of `maximum(x, slope * x)` compares x with the
    # maximum it produced, and XLA:CPU can recompute the two with different rounding inside
    # fusions, which silently zeroes or corrupts the gradient under jit (tested)
    return jnp.where(x > 0, x, _SLOPE * x)


def normalise_coupling(
    logits: Float[Array, "n n"],
    normalise: Literal["node", "graph", "none"],
    *,
    avg_deg: float = 1.0,
    symmetric: bool = True,
    mask: Bool[Array, "n n"] | None = None,
) -> Float[Array, "n n"]:
    r"""Turn raw pair outputs $C$ into couplings $K$ (see the module docstring):
    ``node`` $N d\,\mathrm{softmax}(C)$ over all entries, ``graph`` unit-L2 rows,
    ``none`` unchanged; then $(K + K^\top)/2$ if ``symmetric``; ``mask`` zeroes the
    ``False`` entries (and leaves them out of the softmax / row norms)."""
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}; got {normalise!r}")
    n = logits.shape[-1]
    if mask is not None:
        mask = jnp.asarray(mask, bool)
        if mask.shape != logits.shape:
            raise ValueError(f"mask must have shape {logits.shape}; got {mask.shape}")
    if normalise == "node":
        flat = logits.reshape(-1)
        where = None if mask is None else mask.reshape(-1)
        k = jax.nn.softmax(flat, where=where).reshape(logits.shape) * (avg_deg * n)
        if mask is not None:
            k = jnp.where(mask, k, 0.0)
    else:
        k = logits if mask is None else jnp.where(mask, logits, 0.0)
        if normalise == "graph":
            norm = jnp.sqrt(jnp.sum(k**2, axis=-1, keepdims=True))
            k = k / jnp.maximum(norm, 1e-12)
    if symmetric:
        k = (k + k.T) / 2
    return k


class KuraNet(AbstractModel):
    r"""The pair MLP $[x_i; x_j] \mapsto C_{ij}$ with two pair-batch norms, followed by
    a normalisation (``node`` / ``graph`` / ``none``) and symmetrisation.

    Args:
        feature_dim: $F$, features per node.
        hidden: $H$, hidden units (KuraNet uses 128).
        normalise: ``node``, ``graph`` or ``none``.
        avg_deg: mean weighted degree $d$ of the ``node`` normalisation.
        symmetric: symmetrise $K$.
        gain: Xavier-normal gain for the weight matrices; ``0`` keeps equinox's default
            (uniform in $\pm 1/\sqrt{\mathrm{fan_{in}}}$, as torch).
        row_chunk: process this many rows of pairs at a time; ``0`` picks it so that at most
            $2^{27}$ hidden activations are held at once (all rows for small ``N``).
        key: PRNG key for the initial weights.
    """

    feature_dim: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)
    normalise: str = eqx.field(static=True)
    avg_deg: float = eqx.field(static=True)
    symmetric: bool = eqx.field(static=True)
    gain: float = eqx.field(static=True)
    row_chunk: int = eqx.field(static=True)
    w1: Float[Array, "h f2"]
    b1: Float[Array, " h"]
    bn1_scale: Float[Array, " h"]
    bn1_shift: Float[Array, " h"]
    w2: Float[Array, "h h"]
    b2: Float[Array, " h"]
    bn2_scale: Float[Array, " h"]
    bn2_shift: Float[Array, " h"]
    w3: Float[Array, " h"]

    def __init__(
        self,
        feature_dim: int,
        hidden: int = 128,
        normalise: str = "node",
        avg_deg: float = 1.0,
        symmetric: bool = True,
        gain: float = 0.0,
        row_chunk: int = 0,
        *,
        key: PRNGKeyArray,
    ):
        for name, v in (("feature_dim", feature_dim), ("hidden", hidden)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an int >= 1; got {v!r}")
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {NORMALISATIONS}; got {normalise!r}")
        if not (isinstance(avg_deg, (int, float)) and avg_deg > 0):
            raise ValueError(f"avg_deg must be a number > 0; got {avg_deg!r}")
        if not (isinstance(gain, (int, float)) and gain >= 0):
            raise ValueError(f"gain must be a number >= 0; got {gain!r}")
        if not isinstance(row_chunk, int) or row_chunk < 0:
            raise ValueError(f"row_chunk must be an int >= 0; got {row_chunk!r}")
        self.feature_dim, self.hidden, self.normalise = feature_dim, hidden, normalise
        self.avg_deg, self.symmetric, self.gain = float(avg_deg), bool(symmetric), float(gain)
        self.row_chunk = row_chunk
        k1, k2, k3 = jax.random.split(key, 3)
        l1 = eqx.nn.Linear(2 * feature_dim, hidden, key=k1)
        l2 = eqx.nn.Linear(hidden, hidden, key=k2)
        l3 = eqx.nn.Linear(hidden, 1, use_bias=False, key=k3)
        w1, w2, w3 = l1.weight, l2.weight, l3.weight
        if gain > 0:
            ks = jax.random.split(key, 4)[1:]
            init = jax.nn.initializers.glorot_normal()
            w1, w2, w3 = (
                gain * init(k, w.shape, w.dtype) for k, w in zip(ks, (w1, w2, w3), strict=True)
            )
        self.w1, self.b1, self.w2, self.b2, self.w3 = w1, l1.bias, w2, l2.bias, w3[0]
        self.bn1_scale = jnp.ones((hidden,))
        self.bn1_shift = jnp.zeros((hidden,))
        self.bn2_scale = jnp.ones((hidden,))
        self.bn2_shift = jnp.zeros((hidden,))

    # ------------------------------------------------------------------ pair MLP
    def _first_layer(self, x: Float[Array, "n f"]) -> tuple[Array, Array, Array, Array]:
        f = self.feature_dim
        u = x @ self.w1[:, :f].T
        v = x @ self.w1[:, f:].T + self.b1
        mean = jnp.mean(u, 0) + jnp.mean(v, 0)
        var = jnp.var(u, 0) + jnp.var(v, 0)
        return u, v, mean, var

    def _hidden1(self, u_rows, v, mean, var) -> Float[Array, "rn h"]:
        scale = jax.lax.rsqrt(var + _EPS) * self.bn1_scale
        a = ((u_rows - mean) * scale)[:, None, :] + (v * scale + self.bn1_shift)[None, :, :]
        return _leaky(a.reshape(-1, self.hidden))

    def _pre2(self, u_rows, v, mean, var) -> Float[Array, "rn h"]:
        return self._hidden1(u_rows, v, mean, var) @ self.w2.T + self.b2

    def _out(self, a2: Array, mean2: Array, var2: Array) -> Float[Array, " rn"]:
        z = (a2 - mean2) * (jax.lax.rsqrt(var2 + _EPS) * self.bn2_scale) + self.bn2_shift
        return _leaky(z) @ self.w3

    def logits(self, x: Float[Array, "n f"]) -> Float[Array, "n n"]:
        """Raw pair outputs $C_{ij} = f([x_i; x_j])$ (before normalisation)."""
        if x.ndim != 2 or x.shape[-1] != self.feature_dim:
            raise ValueError(
                f"features must have shape [N, F] with F = {self.feature_dim}; got {x.shape}"
            )
        u, v, mean, var = self._first_layer(x)
        n = x.shape[0]
        chunk = self.row_chunk or max(1, _DENSE_LIMIT // (n * self.hidden))
        if chunk >= n:
            a2 = self._pre2(u, v, mean, var)
            mean2 = jnp.mean(a2, 0)
            var2 = jnp.mean(jnp.square(a2 - mean2), 0)
            return self._out(a2, mean2, var2).reshape(n, n)
        blocks = -(-n // chunk)
        chunk = -(-n // blocks)  # as many blocks, as little padding as possible
        pad = blocks * chunk - n
        u_blocks = jnp.pad(u, ((0, pad), (0, 0))).reshape(blocks, chunk, -1)
        valid = jnp.repeat(jnp.arange(blocks * chunk) < n, n).reshape(blocks, chunk * n, 1)

        def moments(args):
            ub, vb = args
            a2 = jnp.where(vb, self._pre2(ub, v, mean, var), 0.0)
            return jnp.sum(a2, 0), jnp.sum(a2**2, 0)

        s1, s2 = jax.lax.map(moments, (u_blocks, valid))
        count = n * n
        mean2 = jnp.sum(s1, 0) / count
        var2 = jnp.maximum(jnp.sum(s2, 0) / count - mean2**2, 0.0)
        out = jax.lax.map(lambda ub: self._out(self._pre2(ub, v, mean, var), mean2, var2), u_blocks)
        return out.reshape(blocks * chunk, n)[:n]

    def with_row_chunk(self, row_chunk: int) -> KuraNet:
        """The same model (the same weights, the same couplings) processing ``row_chunk`` rows
        of pairs at a time (``0``: as many as $2^{27}$ hidden activations allow), e.g. to
        evaluate networks of $10^4$ nodes ($10^8$ pairs) in bounded memory."""
        if not isinstance(row_chunk, int) or isinstance(row_chunk, bool) or row_chunk < 0:
            raise ValueError(f"row_chunk must be an int >= 0; got {row_chunk!r}")
        new = copy.copy(self)
        object.__setattr__(new, "row_chunk", row_chunk)  # a static field: no tree_at
        return new

    def __call__(
        self, x: Float[Array, "n f"], mask: Bool[Array, "n n"] | None = None
    ) -> Float[Array, "n n"]:
        """The coupling matrix $K$ ``[N, N]`` of one network with features ``[N, F]``."""
        return normalise_coupling(
            self.logits(x),
            self.normalise,  # type: ignore[arg-type]
            avg_deg=self.avg_deg,
            symmetric=self.symmetric,
            mask=mask,
        )


# ---------------------------------------------------------------------- losses
def circular_variance(theta: Float[Array, "t n"]) -> Float[Array, ""]:
    r"""$\frac1T\sum_t (1 - R(t))$: 0 for phase-locked states, ~1 for incoherent ones."""
    return jnp.mean(1.0 - order_parameter(theta))


def circular_moments(theta: Float[Array, "t n"], masks: Float[Array, "g n"]) -> Float[Array, ""]:
    r"""Cluster synchrony with ``G`` groups (``masks [G, N]``), in [0, 1]:

    $$
    \frac{1}{T B}\sum_t \Big[1 - \frac1G\sum_g R_g(t)
    + \sum_{m=1}^{\lfloor G/2\rfloor} \frac{1}{2Gm^2}
    \Big|\sum_g e^{i m \psi_g(t)}\Big|^2\Big],
    \quad B = 1 + \frac G2 \sum_{m=1}^{\lfloor G/2\rfloor} \frac1{m^2},
    $$

    zero when every group is phase-locked and the group phases form a balanced (splay)
    pattern (Sepulchre, Paley & Leonard 2007)."""
    r, psi = group_order_parameter(theta, masks)
    g = masks.shape[0]
    synch = 1.0 - jnp.mean(r, axis=-1)
    desynch = jnp.zeros_like(synch)
    bound = 1.0
    for m in range(1, g // 2 + 1):
        c = jnp.sum(jnp.cos(m * psi), -1)
        s = jnp.sum(jnp.sin(m * psi), -1)
        desynch = desynch + (c**2 + s**2) / (2 * g * m**2)
        bound += g / (2 * m**2)
    return jnp.mean(synch + desynch) / bound


def cohn_loss(theta: Float[Array, "t n"], masks: Float[Array, "g n"]) -> Float[Array, ""]:
    r"""Cluster synchrony with Cohn's logarithmic repulsion between the ``G >= 2`` groups
    (``masks [G, N]``), KuraNet's experimental ``cohn_loss``:

    $$
    \frac1T\sum_t \Big[1 - \frac1G\sum_g R_g(t)
    + \frac{2}{G(G-1)} \sum_{a<b} \Big(\log 2 - \log\big(\big|2\sin\tfrac{\psi_a(t) -
    \psi_b(t)}{2}\big| + 10^{-5}\big)\Big)\Big],
    $$

    with $R_g e^{i\psi_g}$ the groups' order parameters (`group_order_parameter`). The chord
    $|2\sin\frac{\psi_a - \psi_b}2| = |e^{i\psi_a} - e^{i\psi_b}| \le 2$, so each pair term
    is $\ge \log 2 - \log(2 + 10^{-5}) \approx -5\cdot 10^{-6}$, that value for groups in
    antiphase, and grows to $\log(2\cdot 10^5)$ as two groups merge; among group phases the
    balanced (splay) pattern minimises the mean pair term."""
    masks = jnp.asarray(masks)
    g = masks.shape[0]
    if g < 2:
        raise ValueError(f"cohn_loss repels pairs of groups: masks needs G >= 2 rows; got {g}")
    r, psi = group_order_parameter(theta, masks)
    synch = 1.0 - jnp.mean(r, axis=-1)
    a, b = jnp.triu_indices(g, k=1)
    chord = jnp.abs(2 * jnp.sin((psi[..., a] - psi[..., b]) / 2))
    repel = jnp.mean(jnp.log(2.0) - jnp.log(chord + _EPS), axis=-1)
    return jnp.mean(synch + repel)


def segmentation_loss(
    theta: Float[Array, "t n"], labels: Int[ArrayLike, " n"], num_classes: int
) -> Float[Array, ""]:
    """`circular_moments` with one group per class: pixels of a class synchronise,
    classes take balanced, distinct phases."""
    return circular_moments(theta, one_hot_groups(labels, num_classes))


def feature_assortativity(
    coupling: Float[Array, "n n"], x: Float[Array, "n f"]
) -> Float[Array, ""]:
    r"""Brede's $c_x = \sum_{ij} K_{ij}(x_i-\bar x)\cdot(x_j-\bar x) /
    \sum_{ij} K_{ij}|x_i-\bar x|^2$ (negative: coupled nodes have anti-correlated features)."""
    d = x - jnp.mean(x, 0)
    num = jnp.sum(coupling * (d @ d.T))
    den = jnp.sum(coupling * jnp.sum(d**2, -1)[:, None])
    return num / den
