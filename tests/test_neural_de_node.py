"""NeuralODE, augmentation, depth-variant fields, integral losses, adjoints, training tasks."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import optax
import pytest

from diffdyn.common import TrainConfig, Trainer
from diffdyn.common.neural_de import (
    GalerkinLinear,
    HigherOrderField,
    MLPField,
    NeuralODE,
    ODEClassifier,
    RunningCost,
    TimeMLPField,
    basis,
    crossing,
    moons,
    with_cost,
    zero_augment,
)


class Linear(eqx.Module):
    a: jax.Array

    def __call__(self, t, y, args):
        return self.a @ y


A = jnp.array([[-0.3, 1.0], [-1.0, -0.2]])


def test_linear_field_matches_matrix_exponential_and_per_sample_spans():
    node = NeuralODE(Linear(A), rtol=1e-8, atol=1e-10)
    y0 = jnp.array([[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]])
    ts = jnp.array([[0.0, 0.5, 1.0], [1.0, 1.5, 3.0], [-1.0, 0.0, 0.2]])
    out = node.batch(y0, ts)
    assert out.shape == (3, 3, 2)
    for b in range(3):
        for k in range(3):
            exact = jsl.expm(A * (ts[b, k] - ts[b, 0])) @ y0[b]
            np.testing.assert_allclose(out[b, k], exact, rtol=1e-5, atol=1e-6)
    # shared ts with per-sample t0 and batched args (a control scaling the field)
    scaled = NeuralODE(lambda t, y, s: s * (A @ y), rtol=1e-8, atol=1e-10)
    s = jnp.array([1.0, 2.0, 0.5])
    out = scaled.batch(y0, jnp.array([1.0]), s, t0=jnp.array([0.0, 0.5, 0.0]), batched_args=True)
    for b, (scale, t0) in enumerate(zip([1.0, 2.0, 0.5], [0.0, 0.5, 0.0], strict=True)):
        np.testing.assert_allclose(out[b, 0], jsl.expm(scale * A * (1 - t0)) @ y0[b], rtol=1e-5)


def test_bad_input_is_rejected_before_compilation():
    node = NeuralODE(Linear(A))
    with pytest.raises(ValueError, match="ts"):
        node.batch(jnp.ones((3, 2)), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="strictly increasing"):
        node.batch(jnp.ones((2, 2)), jnp.array([[0.0, 1.0], [1.0, 0.5]]))
    with pytest.raises(ValueError, match="unknown solver"):
        NeuralODE(Linear(A), solver="rk45")
    with pytest.raises(TypeError, match="vector_field"):
        NeuralODE(3)
    with pytest.raises(ValueError, match="augment_dim"):
        ODEClassifier(2, 2, augment="zero", key=jax.random.key(0))


@pytest.mark.heavy
def test_adjoints_agree_with_each_other_and_finite_differences():
    with jax.enable_x64(True):
        field = MLPField(2, 8, 1, key=jax.random.key(0))
        field = jax.tree_util.tree_map(
            lambda x: x.astype(jnp.float64) if eqx.is_array(x) else x, field
        )
        y0 = jnp.array([0.7, -0.4])
        ts = jnp.linspace(0.0, 1.0, 4)

        def loss(f, adjoint):
            node = NeuralODE(f, rtol=1e-12, atol=1e-12, adjoint=adjoint)
            return jnp.sum(node(y0, ts) ** 2)

        grads = {
            a: eqx.filter_grad(lambda f, a=a: loss(f, a))(field)
            for a in ("recursive-checkpoint", "direct", "backsolve")
        }
        flat = {
            a: jnp.concatenate([x.ravel() for x in jax.tree_util.tree_leaves(g)])
            for a, g in grads.items()
        }
        ref = flat["recursive-checkpoint"]
        for a in ("direct", "backsolve"):
            assert jnp.linalg.norm(flat[a] - ref) / jnp.linalg.norm(ref) < 1e-6, a
        # central finite difference along a random direction in parameter space
        params, static = eqx.partition(field, eqx.is_array)
        leaves, treedef = jax.tree_util.tree_flatten(params)
        keys = jax.random.split(jax.random.key(1), len(leaves))
        direction = [
            jax.random.normal(k, x.shape, jnp.float64) for k, x in zip(keys, leaves, strict=True)
        ]
        h = 1e-5

        def shifted(s):
            p = jax.tree_util.tree_unflatten(
                treedef, [x + s * d for x, d in zip(leaves, direction, strict=True)]
            )
            return loss(eqx.combine(p, static), "recursive-checkpoint")

        fd = (shifted(h) - shifted(-h)) / (2 * h)
        dot = sum(
            jnp.vdot(g, d)
            for g, d in zip(jax.tree_util.tree_leaves(grads["backsolve"]), direction, strict=True)
        )
        assert abs(fd - dot) / abs(fd) < 1e-6


@pytest.mark.heavy
def test_integral_loss_matches_closed_form_and_its_gradient():
    # y' = -a y, cost y^2: C(T) = y0^2 (1 - exp(-2 a T)) / (2 a), dC/da closed form.
    a, y0, big_t = 0.7, 1.3, 2.0

    def cost_of(a, adjoint):
        node = NeuralODE(
            RunningCost(lambda t, y, p: -p * y, lambda t, y, p: y**2),
            rtol=1e-9,
            atol=1e-9,
            adjoint=adjoint,
        )
        _, c = node(with_cost(jnp.asarray(y0)), jnp.array([big_t]), a, t0=0.0)
        return c[0]

    exact = lambda a: y0**2 * (1 - jnp.exp(-2 * a * big_t)) / (2 * a)
    np.testing.assert_allclose(cost_of(a, "recursive-checkpoint"), exact(a), rtol=1e-5)
    for adjoint in ("recursive-checkpoint", "backsolve"):
        np.testing.assert_allclose(jax.grad(cost_of)(a, adjoint), jax.grad(exact)(a), rtol=1e-4)


def test_second_order_field_is_a_harmonic_oscillator():
    field = HigherOrderField(lambda t, y, a: -4.0 * y[:1], dim=1, order=2)
    node = NeuralODE(field, rtol=1e-8, atol=1e-10)
    ts = jnp.linspace(0, 3, 7)
    y = node(jnp.array([1.0, 0.0]), ts)
    np.testing.assert_allclose(y[:, 0], jnp.cos(2 * ts), atol=1e-5)
    np.testing.assert_allclose(y[:, 1], -2 * jnp.sin(2 * ts), atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        field(0.0, jnp.ones(3), None)


def test_depth_variant_fields_and_bases():
    theta = jnp.linspace(0.1, 3.0, 5)
    cheb = jax.vmap(lambda s: basis("chebyshev", s, 5))(jnp.cos(theta))
    np.testing.assert_allclose(cheb, jnp.cos(jnp.arange(5) * theta[:, None]), atol=1e-5)
    four = basis("fourier", 0.25, 5)
    np.testing.assert_allclose(four, [1.0, 0.0, 1.0, -1.0, 0.0], atol=1e-6)
    # a one-function polynomial basis is constant in t: the Galerkin layer is a fixed
    # affine map, so y' = W y + b has the closed form expm.
    layer = GalerkinLinear(2, 2, basis="polynomial", n_basis=1, key=jax.random.key(0))
    w = layer.weights(0.3)
    np.testing.assert_allclose(w, layer.weights(5.0), rtol=1e-6)
    node = NeuralODE(lambda t, y, a: layer(t, y), rtol=1e-8, atol=1e-10)
    aug = jnp.block([[w[:, :2], w[:, 2:]], [jnp.zeros((1, 3))]])
    exact = jsl.expm(aug) @ jnp.array([1.0, -1.0, 1.0])
    np.testing.assert_allclose(node.final(jnp.array([1.0, -1.0])), exact[:2], rtol=1e-5)
    # time enters TimeMLPField: f(t, y) differs across t for the same y
    f = TimeMLPField(2, 8, 1, key=jax.random.key(1))
    assert not jnp.allclose(f(0.0, jnp.ones(2)), f(1.0, jnp.ones(2)))
    np.testing.assert_array_equal(zero_augment(jnp.ones((3, 2)), 2)[:, 2:], 0.0)


def _fit(model, data, loss, steps, lr=1e-2, seed=0):
    trainer = Trainer(
        loss,
        optax.adam(lr),
        config=TrainConfig(steps=steps, log_every=steps, progress=False, track_best=False),
    )
    return trainer.fit(model, data, jax.random.key(seed)).model


def _mse(model, batch, key):
    x, y = batch
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


@pytest.mark.heavy
def test_plain_node_cannot_cross_but_anode_can():
    data = crossing(jax.random.key(0), 16)
    common = dict(width=16, depth=2, readout="project", t1=1.0, key=jax.random.key(1))
    plain = _fit(ODEClassifier(1, 1, **common), data, _mse, 200, lr=2e-2)
    anode = _fit(
        ODEClassifier(1, 1, augment="zero", augment_dim=1, **common), data, _mse, 200, lr=2e-2
    )
    # a 1-D flow preserves order, so the best it can do is map both points to one value
    assert _mse(plain, data, None) > 0.9
    assert _mse(anode, data, None) < 0.05


@pytest.mark.heavy
def test_node_classifies_moons_at_99_percent():
    x, y = moons(jax.random.key(1), 512, noise=0.1)
    xt, yt = moons(jax.random.key(2), 1024, noise=0.1)

    def xent(model, batch, key):
        xb, yb = batch
        return optax.softmax_cross_entropy_with_integer_labels(jax.vmap(model)(xb), yb).mean()

    model = _fit(
        ODEClassifier(2, 2, width=32, depth=2, max_steps=64, key=jax.random.key(0)),
        (x, y),
        xent,
        300,
    )
    accuracy = jnp.mean(jnp.argmax(jax.vmap(model)(xt), -1) == yt)
    assert accuracy >= 0.99
