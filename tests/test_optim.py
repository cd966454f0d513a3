"""Numerical tests of common.optim: optimiser factory, schedules, gradient transforms."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffdyn.common import (
    OPTIMISERS,
    OptimConfig,
    make_optimiser,
    make_schedule,
    non_negative,
    normalise_gradients,
)


def _params():
    return {"w": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.array([0.1, -0.2, 0.3])}


def test_every_optimiser_builds_and_steps():
    params = _params()
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    opts = {n: make_optimiser(n, 1e-2, clip_norm=1.0, weight_decay=1e-3) for n in OPTIMISERS}

    @jax.jit
    def step_all(params):  # one compilation for all optimisers
        out = {}
        for name, opt in opts.items():
            updates, _ = opt.update(grads, opt.init(params), params)
            out[name] = optax.apply_updates(params, updates)
        return out

    new = step_all(params)
    assert set(new) == set(OPTIMISERS)
    for name, p in new.items():
        for leaf, old in zip(
            jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(params), strict=True
        ):
            assert np.isfinite(np.asarray(leaf)).all(), name
            assert not np.array_equal(leaf, old), name


def test_sgd_step_is_p_minus_lr_g():
    params = _params()
    grads = {"w": jnp.array([[0.5, -1.0], [2.0, 0.0]]), "b": jnp.array([1.0, 2.0, -3.0])}
    opt = make_optimiser("SGD", 0.1)
    updates, _ = opt.update(grads, opt.init(params), params)
    new = optax.apply_updates(params, updates)
    for k in params:
        np.testing.assert_allclose(new[k], params[k] - 0.1 * grads[k], rtol=1e-6)
    # coupled weight decay for sgd: p - lr (g + wd p)
    opt = make_optimiser("sgd", 0.1, weight_decay=0.5)
    updates, _ = opt.update(grads, opt.init(params), params)
    for k in params:
        np.testing.assert_allclose(
            updates[k], -0.1 * (grads[k] + 0.5 * params[k]), rtol=1e-6, atol=1e-7
        )


def _lr_through_sgd(schedule, **kw):
    """The learning rate seen by sgd at steps 0..n-1 (update = -lr g with g = 1)."""
    opt = make_optimiser("sgd", 0.1, schedule=schedule, **kw)
    p = jnp.zeros(())
    state = opt.init(p)
    lrs = []
    for _ in range(kw.get("steps") or 5):
        u, state = opt.update(jnp.ones(()), state, p)
        lrs.append(-float(u))
    return np.array(lrs)


def test_schedules_give_expected_lr():
    lr, n, w = 0.1, 20, 4
    f = make_schedule("constant", lr)
    assert float(f(0)) == pytest.approx(lr) and float(f(1000)) == pytest.approx(lr)
    f = make_schedule("constant", lr, warmup=w)
    assert [float(f(t)) for t in (0, 2, 4, 9)] == pytest.approx([0.0, lr / 2, lr, lr])
    f = make_schedule("cosine", lr, steps=n, alpha=0.1)
    for t in (0, 5, 10, 20):
        expected = lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t / n)))
        assert float(f(t)) == pytest.approx(expected, rel=1e-5)
    f = make_schedule("warmup-cosine", lr, steps=n, warmup=w)
    assert float(f(2)) == pytest.approx(lr / 2)
    assert float(f(w)) == pytest.approx(lr)
    assert float(f(w + 8)) == pytest.approx(lr * 0.5, rel=1e-5)  # half way through decay
    assert float(f(n)) == pytest.approx(0.0, abs=1e-8)
    f = make_schedule("linear", lr, steps=n, alpha=0.5)
    assert float(f(10)) == pytest.approx(0.75 * lr) and float(f(n)) == pytest.approx(0.5 * lr)
    f = make_schedule("exponential", lr, steps=n, decay_rate=0.01)
    assert float(f(10)) == pytest.approx(lr * 0.1, rel=1e-5)
    assert float(f(n)) == pytest.approx(lr * 0.01, rel=1e-5)
    # the optimiser uses the schedule, counting steps from 0
    lrs = _lr_through_sgd("cosine", steps=n)
    expected = [lr * 0.5 * (1 + np.cos(np.pi * t / n)) for t in range(n)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-5, atol=1e-8)


def test_bad_names_and_arguments():
    with pytest.raises(ValueError, match="known optimisers: .*adam.*sgd"):
        make_optimiser("adamm", 1e-3)
    with pytest.raises(ValueError, match="known schedules: .*cosine"):
        make_optimiser("adam", 1e-3, schedule="cosin")
    with pytest.raises(ValueError, match="steps"):
        make_optimiser("adam", 1e-3, schedule="cosine")
    with pytest.raises(ValueError, match="warmup"):
        make_schedule("warmup-cosine", 1e-3, steps=10)
    with pytest.raises(ValueError, match="warmup"):
        make_schedule("cosine", 1e-3, steps=10, warmup=10)
    with pytest.raises(TypeError, match="momentum"):
        make_optimiser("adam", 1e-3, momentum=0.9)
    with pytest.raises(ValueError, match="learning_rate"):
        make_optimiser("adam", -1.0)
    opt = make_optimiser("sgd", 1e-2, momentum=0.9, nesterov=True)
    assert isinstance(opt, optax.GradientTransformation)


def test_normalise_gradients_gives_unit_norm_blocks():
    grads = {
        "w": jnp.array([[3.0, 4.0], [0.0, 0.0]]),
        "b": jnp.array([1e-3, -2e-3, 5.0]),
        "n": None,
    }
    tx = normalise_gradients()
    out, _ = jax.jit(tx.update)(grads, tx.init(grads))
    assert out["n"] is None
    for k in ("w", "b"):
        assert float(jnp.linalg.norm(out[k])) == pytest.approx(1.0, rel=1e-6)
        np.testing.assert_allclose(out[k], grads[k] / jnp.linalg.norm(grads[k]), rtol=1e-6)
    np.testing.assert_allclose(out["w"], [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    zero, _ = tx.update({"z": jnp.zeros(3)}, tx.init(None))
    np.testing.assert_array_equal(zero["z"], 0.0)


def _random_walk(opt, params, n_steps=200, scale=3.0):
    """Minimum over steps of each leaf after ``n_steps`` random-gradient updates."""

    def step(carry, key):
        params, state = carry
        keys = dict(zip(sorted(params), jax.random.split(key, len(params)), strict=True))
        grads = {k: scale * jax.random.normal(keys[k], v.shape) for k, v in params.items()}
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), jax.tree_util.tree_map(jnp.min, params)

    @jax.jit
    def run(params):
        keys = jax.random.split(jax.random.key(0), n_steps)
        (final, _), mins = jax.lax.scan(step, (params, opt.init(params)), keys)
        return final, mins

    return jax.tree_util.tree_map(np.asarray, run(params))


def test_non_negative_is_exact_under_many_random_updates():
    params = {
        "pos": jnp.abs(jax.random.normal(jax.random.key(1), (64,))) * 1e-3,
        "free": jnp.zeros((64,)),
        "tiny": jnp.full((64,), 1e-30),
    }
    for where in (
        {"pos": True, "free": False, "tiny": True},
        lambda path, leaf: jax.tree_util.keystr(path) != "['free']",
    ):
        opt = optax.chain(make_optimiser("sgd", 0.7, momentum=0.5), non_negative(where))
        final, mins = _random_walk(opt, params)
        assert (mins["pos"] >= 0).all() and (mins["tiny"] >= 0).all()  # exactly, every step
        assert (final["pos"] >= 0).all() and (final["tiny"] >= 0).all()
        assert (mins["free"] < 0).any()  # the unchosen leaf does go negative
        assert (final["pos"] == 0).any()  # the constraint was active
        assert (final["pos"] > 0).any()


def test_non_negative_projection_formula_and_errors():
    p = jnp.array([0.3, 0.1, 0.0, 2.0, -1.0])
    u = jnp.array([-0.1, -0.3, -1.0, 1.0, 0.5])
    tx = non_negative({"a": True, "b": False})
    out, _ = tx.update({"a": u, "b": u}, tx.init(None), {"a": p, "b": p})
    np.testing.assert_array_equal(out["a"], jnp.maximum(u, -p))
    np.testing.assert_array_equal(out["b"], u)
    np.testing.assert_array_equal(p + out["a"], jnp.maximum(p + u, 0.0))
    # a one-argument predicate and a prefix filter (one bool for a whole subtree)
    tx1 = non_negative(lambda leaf: leaf.ndim == 1)
    out1, _ = tx1.update({"a": u}, tx1.init(None), {"a": p})
    np.testing.assert_array_equal(out1["a"], jnp.maximum(u, -p))
    tx2 = non_negative({"x": True, "y": {"z": False}})
    params = {"x": {"a": p, "b": p}, "y": {"z": p}}
    out2, _ = tx2.update({"x": {"a": u, "b": u}, "y": {"z": u}}, tx2.init(None), params)
    np.testing.assert_array_equal(out2["x"]["b"], jnp.maximum(u, -p))
    np.testing.assert_array_equal(out2["y"]["z"], u)
    with pytest.raises(ValueError, match="params"):
        tx.update({"a": u, "b": u}, tx.init(None))
    with pytest.raises(ValueError, match="structure"):
        non_negative({"a": True}).update({"a": u, "b": u}, None, {"a": p, "b": p})


def test_non_negative_accepts_an_equinox_filter_spec():
    class Coefficients(eqx.Module):
        diffusion: jax.Array
        rate: jax.Array

        def __call__(self, x):
            return self.diffusion * x + self.rate

    params = Coefficients(jnp.asarray([0.1, 0.2]), jnp.asarray([0.1, 0.2]))
    spec = Coefficients(True, False)  # a module is callable, but here it is a filter spec
    opt = optax.chain(optax.sgd(1.0), non_negative(spec))
    state = opt.init(params)
    grads = Coefficients(jnp.asarray([1.0, 1.0]), jnp.asarray([1.0, 1.0]))
    updates, _ = opt.update(grads, state, params)
    new = eqx.apply_updates(params, updates)
    np.testing.assert_array_equal(new.diffusion, [0.0, 0.0])
    np.testing.assert_allclose(new.rate, [-0.9, -0.8])


def test_optim_config_builds_normalise_clip_sgd_momentum_schedule_projection():
    """Two SGD-with-momentum steps on gradients normalised per block, a linear schedule from
    lr to alpha * lr over 2 steps, and w projected onto w >= 0, against the hand computation."""
    config = OptimConfig(
        optimiser="sgd",
        learning_rate=0.5,
        schedule="linear",
        alpha=0.5,
        momentum=0.9,
        normalise_gradients=True,
    )
    opt = config.build(2, non_negative_leaves={"w": True, "b": False})
    params = {"w": jnp.array([0.2, 0.1]), "b": jnp.array([1.0])}
    grads = {"w": jnp.array([3.0, 4.0]), "b": jnp.array([-2.0])}
    state = opt.init(params)
    unit = {"w": np.array([0.6, 0.8]), "b": np.array([-1.0])}
    trace = {k: np.zeros_like(v) for k, v in unit.items()}
    expected = {k: np.asarray(v) for k, v in params.items()}
    for lr in (0.5, 0.375):  # linear from 0.5 to 0.25 over 2 steps
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        for k in trace:
            trace[k] = unit[k] + 0.9 * trace[k]
            expected[k] = expected[k] - lr * trace[k]
        expected["w"] = np.maximum(expected["w"], 0.0)
        for k in params:
            np.testing.assert_allclose(np.asarray(params[k]), expected[k], rtol=1e-6)
    assert float(params["w"].min()) == 0.0 and float(params["b"][0]) > 1.0


def test_optim_config_refuses_settings_it_cannot_honour():
    with pytest.raises(ValueError, match="momentum is a setting of sgd and rmsprop"):
        OptimConfig(optimiser="adam", momentum=0.9)
    with pytest.raises(ValueError, match="clip_norm must be > 0 or None"):
        OptimConfig(clip_norm=0.0)
    with pytest.raises(ValueError, match="unknown optimiser"):
        OptimConfig(optimiser="adamm")
    with pytest.raises(ValueError, match="warmup > 0"):
        OptimConfig(schedule="warmup-cosine")
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        OptimConfig(learning_rate=0.0)
