"""A generated block-model graph, and a graph neural ODE that uses it where an MLP cannot."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffdyn.common.neural_de import GraphODEClassifier, block_model


def test_the_block_model_has_its_edge_probabilities_and_a_split_of_every_node():
    g = block_model(600, 3, 4, p_in=0.05, p_out=0.01, key=jax.random.key(0))
    a, labels = np.asarray(g.adjacency), np.asarray(g.labels)
    assert np.array_equal(a, a.T) and not np.any(np.diag(a))
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(600, dtype=bool)
    inside, across = a[same & off].mean(), a[~same].mean()
    # binomial standard errors: ~60k and ~240k pairs
    assert abs(inside - 0.05) < 5 * np.sqrt(0.05 * 0.95 / (same & off).sum())
    assert abs(across - 0.01) < 5 * np.sqrt(0.01 * 0.99 / (~same).sum())
    masks = np.stack([g.train, g.validation, g.test]).astype(int)
    assert np.all(masks.sum(0) == 1) and masks[0].sum() == 120 and masks[1].sum() == 120
    with pytest.raises(ValueError, match="p_in must be a probability"):
        block_model(10, 2, 2, p_in=1.5, key=jax.random.key(0))


def _fit(model, x, labels, mask, steps=150):
    opt = optax.adam(3e-2)
    state = opt.init(eqx.filter(model, eqx.is_inexact_array))

    def loss(m):
        logp = jax.nn.log_softmax(m(x))
        return -jnp.sum(jnp.where(mask, logp[jnp.arange(len(labels)), labels], 0)) / mask.sum()

    @eqx.filter_jit
    def step(m, s):
        g = eqx.filter_grad(loss)(m)
        updates, s = opt.update(g, s, eqx.filter(m, eqx.is_inexact_array))
        return eqx.apply_updates(m, updates), s

    for _ in range(steps):
        model, state = step(model, state)
    return model


def _accuracy(model, x, labels, mask):
    return float(jnp.sum((jnp.argmax(model(x), -1) == labels) & mask) / mask.sum())


class NodeMLP(eqx.Module):
    mlp: eqx.nn.MLP

    def __call__(self, x):
        return jax.vmap(self.mlp)(x)


def test_a_graph_ode_classifies_the_nodes_that_an_mlp_on_the_same_features_cannot():
    g = block_model(300, 3, 8, noise=2.0, key=jax.random.key(1))
    graph = GraphODEClassifier(300, 8, 3, width=16, key=jax.random.key(2)).with_graph(g.adjacency)
    graph = _fit(graph, g.features, g.labels, g.train)
    mlp = _fit(
        NodeMLP(eqx.nn.MLP(8, 3, 16, 1, key=jax.random.key(3))), g.features, g.labels, g.train
    )
    on_graph, alone = (_accuracy(m, g.features, g.labels, g.test) for m in (graph, mlp))
    assert on_graph > 0.8 and on_graph > alone + 0.15, (on_graph, alone)


def test_the_classifier_saves_with_its_graph(tmp_path):
    g = block_model(30, 2, 3, key=jax.random.key(4))
    model = GraphODEClassifier(30, 3, 2, width=4, key=jax.random.key(5)).with_graph(g.adjacency)
    model.save(tmp_path / "graph.eqx")
    back = GraphODEClassifier.load(tmp_path / "graph.eqx")
    np.testing.assert_array_equal(back(g.features), model(g.features))
    with pytest.raises(ValueError, match=r"'adjacency' must be \[N, N\]"):
        model.with_graph(jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"'x' must be \[N=30, F=3\]"):
        model(jnp.zeros((30, 4)))
