r"""Node classification on a generated graph: a stochastic block model and a graph ODE
classifier.

`block_model` draws $N$ nodes in $C$ classes of (nearly) equal size, an undirected edge
between two nodes with probability $p_\mathrm{in}$ inside a class and $p_\mathrm{out}$
across classes (Holland, Laskey & Leinhardt 1983), and node features
$x_i = \mu_{c_i} + \sigma\,\varepsilon_i$ with class means $\mu_c \sim \mathcal N(0, I_F)$.
With a large $\sigma$ the features alone classify poorly, while averaging them over the
neighbourhood (which mostly shares the class) recovers the class: what a graph model can use
and a per-node MLP cannot.

`GraphODEClassifier` encodes each node's features linearly to ``[W, N]``, flows them by a
graph neural ODE $\dot H = \mathrm{GCN}(H)$ (`GraphODEField`) over $[0, t_1]$, and decodes
each node linearly to class logits ``[N, C]``.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._helpers import check_int, check_number
from .._model import AbstractModel
from .._solve import SolveConfig
from ._graph import GraphODEField, normalised_adjacency
from ._node import NeuralODE

__all__ = ["GraphData", "block_model", "GraphODEClassifier"]


class GraphData(NamedTuple):
    """A graph with node features, labels and a train/validation/test split of its nodes."""

    adjacency: Float[Array, "n n"]
    features: Float[Array, "n f"]
    labels: Int[Array, " n"]
    train: Bool[Array, " n"]
    validation: Bool[Array, " n"]
    test: Bool[Array, " n"]


def block_model(
    nodes: int = 300,
    classes: int = 3,
    features: int = 8,
    *,
    p_in: float = 0.05,
    p_out: float = 0.005,
    noise: float = 2.0,
    train_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    key: PRNGKeyArray,
) -> GraphData:
    r"""A stochastic block model with Gaussian class features (see the module docstring);
    the split draws ``train_fraction`` and ``validation_fraction`` of the nodes at random, the
    rest are the test nodes."""
    nodes, classes = check_int(nodes, "nodes", 2), check_int(classes, "classes", 2)
    features = check_int(features, "features")
    for name, p in (("p_in", p_in), ("p_out", p_out)):
        if not 0.0 <= check_number(p, name) <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1]; got {p!r}")
    noise = check_number(noise, "noise")
    if not (
        0 < train_fraction and 0 < validation_fraction and train_fraction + validation_fraction < 1
    ):
        raise ValueError(
            "train_fraction and validation_fraction must be > 0 with a sum < 1; got "
            f"{train_fraction!r} and {validation_fraction!r}"
        )
    k_edges, k_means, k_noise, k_split = jax.random.split(key, 4)
    labels = jnp.arange(nodes) % classes
    same = labels[:, None] == labels[None, :]
    draw = jax.random.uniform(k_edges, (nodes, nodes)) < jnp.where(same, p_in, p_out)
    upper = jnp.triu(draw, 1)
    adjacency = (upper | upper.T).astype(jnp.result_type(float))
    means = jax.random.normal(k_means, (classes, features))
    x = means[labels] + noise * jax.random.normal(k_noise, (nodes, features))
    order = jax.random.permutation(k_split, nodes)
    rank = jnp.empty(nodes, int).at[order].set(jnp.arange(nodes))
    n_train, n_val = int(train_fraction * nodes), int(validation_fraction * nodes)
    train = rank < n_train
    validation = (rank >= n_train) & (rank < n_train + n_val)
    return GraphData(adjacency, x, labels, train, validation, ~(train | validation))


class GraphODEClassifier(AbstractModel):
    r"""Node logits $D\,H(t_1)$ with $H(0) = E X^\top$ and $\dot H = \mathrm{GCN}(H)$.

    Args:
        nodes: ``N``.
        features: ``F``, the input features per node.
        classes: ``C``.
        width: ``W``, the state channels per node.
        depth: hidden graph convolutions of the field.
        t1: the integration time.
        solve: how the flow is solved.

    The graph is set by `with_graph` (its normalised adjacency is a fixed array of the
    field, saved with the model): ``GraphODEClassifier(N, F, C, key=key).with_graph(A)``.
    """

    nodes: int = eqx.field(static=True)
    features: int = eqx.field(static=True)
    classes: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)
    encoder: eqx.nn.Linear
    flow: NeuralODE
    decoder: eqx.nn.Linear

    def __init__(
        self,
        nodes: int,
        features: int,
        classes: int,
        width: int = 16,
        depth: int = 1,
        t1: float = 1.0,
        solve: SolveConfig = SolveConfig(rtol=1e-4, atol=1e-6),  # noqa: B008 (frozen)
        *,
        key: PRNGKeyArray,
    ):
        k_enc, k_field, k_dec = jax.random.split(key, 3)
        self.nodes, self.features = check_int(nodes, "nodes"), check_int(features, "features")
        self.classes = check_int(classes, "classes")
        self.width, self.depth = check_int(width, "width"), check_int(depth, "depth", 0)
        self.t1, self.solve = check_number(t1, "t1"), solve
        empty = jnp.zeros((self.nodes, self.nodes))
        field = GraphODEField(empty, self.width, self.width, self.depth, key=k_field)
        self.encoder = eqx.nn.Linear(self.features, self.width, key=k_enc)
        self.flow = NeuralODE(field, solve=solve)
        self.decoder = eqx.nn.Linear(self.width, self.classes, key=k_dec)

    def with_graph(self, adjacency: Float[Array, "n n"]) -> GraphODEClassifier:
        """This classifier on the graph ``adjacency`` ``[N, N]``."""
        a = jnp.asarray(adjacency)
        if a.shape != (self.nodes, self.nodes):
            raise ValueError(
                f"argument 'adjacency' must be [N, N] = ({self.nodes}, {self.nodes}); got {a.shape}"
            )
        return eqx.tree_at(lambda m: m.flow.vector_field.adjacency, self, normalised_adjacency(a))

    def __call__(self, x: Float[Array, "n f"]) -> Float[Array, "n c"]:
        """Class logits of every node from the node features ``[N, F]``."""
        if x.ndim != 2 or x.shape != (self.nodes, self.features):
            raise ValueError(
                f"argument 'x' must be [N={self.nodes}, F={self.features}]; got {x.shape}"
            )
        h0 = jax.vmap(self.encoder)(x).T  # [W, N]
        h1 = self.flow.final(h0, 0.0, self.t1)
        return jax.vmap(self.decoder)(h1.T)
