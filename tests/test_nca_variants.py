"""The polynomial, attention and bounded NCA variants: identity at init, shapes, save/load,
parameter counts, and each variant's defining property against a hand computation."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.nca import (
    AbstractNCA,
    AttentionNCA,
    BoundedNCA,
    Cells,
    PolynomialNCA,
    monomial_table,
)

C, H, W = 4, 8, 8
KEY = jax.random.key(0)


def make(variant, cells=None):
    cells = Cells(C, fire_rate=1.0) if cells is None else cells
    if variant is PolynomialNCA:
        return PolynomialNCA(cells, hidden=8, degree=2, key=KEY)
    if variant is AttentionNCA:
        return AttentionNCA(cells, token_size=4, heads=2, key=KEY)
    return BoundedNCA(cells, hidden=8, bound=0.05, key=KEY)


VARIANTS = [PolynomialNCA, AttentionNCA, BoundedNCA]


def randomise(model, key=KEY, scale=0.5):
    """Every trainable leaf drawn from N(0, scale²): the zero last layers too."""
    params, static = eqx.partition(model, model.trainable_filter())
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    leaves = [scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    return eqx.combine(jax.tree_util.tree_unflatten(tree, leaves), static)


@pytest.fixture(scope="module")
def state():
    return jax.random.uniform(jax.random.key(1), (C, H, W))


@eqx.filter_jit
def step(model, x, key):
    return model.step(x, key)


@pytest.mark.parametrize("variant", VARIANTS)
def test_untrained_variant_is_the_identity(variant, state):
    """Every variant's last layer starts at zero, so ``dx = 0`` (``tanh(0) = 0`` for the
    bounded one) and a step returns the state unchanged."""
    model = make(variant)
    np.testing.assert_array_equal(model.increment(state), jnp.zeros_like(state))
    np.testing.assert_array_equal(step(model, state, KEY), state)


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_a_randomised_step_changes_the_state(variant, state):
    model = randomise(make(variant))
    dx = model.increment(state)
    assert dx.shape == (C, H, W) and dx.dtype == state.dtype
    out = step(model, state, KEY)
    assert out.shape == (C, H, W) and float(jnp.abs(out - state).max()) > 1e-3
    frames = eqx.filter_jit(lambda m, x: m.rollout(x, 4, KEY, every=2))(model, state)
    assert frames.shape == (3, C, H, W)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_round_trip(variant, state, tmp_path):
    model = randomise(make(variant, Cells(C, fire_rate=0.5, filters=("identity", "laplacian"))))
    back = AbstractNCA.load(model.save(tmp_path / "m.eqx"))
    assert type(back) is variant and back.hyperparameters() == model.hyperparameters()
    assert eqx.tree_equal(back, model)
    np.testing.assert_array_equal(step(back, state, KEY), step(model, state, KEY))


def test_parameter_counts_are_the_layer_sizes():
    """Fixed stencils (also the polynomial variant's own perception) are not trainable."""
    k = 4  # identity, sobel_x, sobel_y, laplacian
    m = math.comb(C + 2, 2) - 1  # monomials of degree 1 and 2
    poly = make(PolynomialNCA)
    assert poly.num_parameters() == (k * m) * 8 + 8 + 8 * C + C
    e = 4
    att = make(AttentionNCA)
    assert att.num_parameters() == 3 * ((k * C) * (C * e) + C * e) + (C * e) * C + C
    assert make(BoundedNCA).num_parameters() == (k * C) * 8 + 8 + 8 * C + C


# ------------------------------------------------------------------------------ polynomial


def test_monomial_table_lists_the_products_by_degree():
    assert monomial_table(2, 2) == ((0, 2), (1, 2), (0, 0), (0, 1), (1, 1))
    assert monomial_table(3, 1) == ((0,), (1,), (2,))
    for c, d in ((3, 3), (5, 2), (2, 4)):
        table = monomial_table(c, d)
        assert len(table) == math.comb(c + d, d) - 1 and len(set(table)) == len(table)


def test_polynomial_features_match_a_hand_computation():
    """Two channels, degree 2, filters identity and grad_x: the features are the monomials
    ``[x0, x1, x0², x0 x1, x1²]`` and their central x-differences (periodic)."""
    x = jax.random.normal(KEY, (2, 3, 5))
    model = PolynomialNCA(Cells(2, filters=("identity", "grad_x")), hidden=3, key=KEY)
    x0, x1 = np.asarray(x, np.float64)
    m = np.stack([x0, x1, x0 * x0, x0 * x1, x1 * x1])
    np.testing.assert_allclose(model.monomials(x), m, rtol=1e-6)
    dm = 0.5 * (np.roll(m, -1, axis=-1) - np.roll(m, 1, axis=-1))
    np.testing.assert_allclose(model.features(x), np.concatenate([m, dm]), rtol=1e-5, atol=1e-6)


def test_polynomial_degree_one_sees_the_plain_perception(state):
    model = PolynomialNCA(Cells(C), hidden=4, degree=1, key=KEY)
    np.testing.assert_array_equal(model.features(state), model.perception(state))


# ------------------------------------------------------------------------------- attention


def test_attention_weights_are_a_softmax_over_channels(state):
    model = randomise(make(AttentionNCA))
    a = model.attention(state)
    assert a.shape == (2, C, C, H, W)
    assert float(a.min()) >= 0.0
    np.testing.assert_allclose(a.sum(axis=2), 1.0, rtol=1e-6)
    assert float(a.std()) > 1e-2  # not uniform: the weights depend on the cell


def test_attention_increment_matches_a_hand_computation(state):
    """At one cell: tokens ``q, k, v`` of ``[C, heads, E/heads]``, weights
    ``softmax_j(q_i . k_j / sqrt(E/heads))``, ``dx = W_o relu(flatten(A v)) + b_o``."""
    model = randomise(make(AttentionNCA))
    p = np.asarray(model.perception(state), np.float64)[:, 2, 5]  # one cell's features

    def layer(pw, v):
        return np.asarray(pw.weight, np.float64) @ v + np.asarray(pw.bias, np.float64)

    q = layer(model.queries, p).reshape(C, 2, 2)
    k = layer(model.keys, p).reshape(C, 2, 2)
    v = layer(model.values, p).reshape(C, 2, 2)
    out = np.zeros((C, 2, 2))
    for h in range(2):
        logits = q[:, h] @ k[:, h].T / np.sqrt(2)
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        out[:, h] = weights @ v[:, h]
        np.testing.assert_allclose(model.attention(state)[h, :, :, 2, 5], weights, rtol=1e-4)
    dx = layer(model.output, np.maximum(out.reshape(-1), 0.0))
    np.testing.assert_allclose(model.increment(state)[:, 2, 5], dx, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------- bounded


def test_bounded_update_never_exceeds_its_bound():
    """Property over random large weights and states: ``|dx| <= bound`` (the bound as the
    float32 state holds it) in every channel and cell, also after a step (periodic boundary,
    no alive masking; up to the rounding of ``x + dx`` for ``|x|`` up to about 40), and the
    bound is nearly reached (the test is not vacuous)."""
    bound = np.float32(0.05)
    worst = 0.0
    for i in range(5):
        model = randomise(make(BoundedNCA), key=jax.random.key(10 + i), scale=3.0)
        x = 10.0 * jax.random.normal(jax.random.key(20 + i), (C, H, W))
        dx = model.increment(x)
        assert float(jnp.abs(dx).max()) <= bound
        assert float(jnp.abs(step(model, x, KEY) - x).max()) <= bound + 1e-5
        worst = max(worst, float(jnp.abs(dx).max()))
    assert worst > 0.99 * bound


def test_bad_variant_arguments_are_refused():
    cells = Cells(C)
    with pytest.raises(ValueError, match="degree"):
        PolynomialNCA(cells, degree=0, key=KEY)
    with pytest.raises(ValueError, match="token_size must be divisible"):
        AttentionNCA(cells, token_size=5, heads=2, key=KEY)
    with pytest.raises(ValueError, match="activation"):
        AttentionNCA(cells, activation="softplus", key=KEY)
    for bad in (0.0, -1.0, math.inf, True):
        with pytest.raises(ValueError, match="bound"):
            BoundedNCA(cells, bound=bad, key=KEY)
    with pytest.raises(TypeError, match="Cells"):
        BoundedNCA(C, key=KEY)
