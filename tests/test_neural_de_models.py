"""HNN/LNN/gradient flows, CNFs, neural SDEs and CDEs, graph ODEs and the toy datasets."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import optax
import pytest

from diffdyn.common import OptimConfig, SolveConfig, TrainConfig, Trainer
from diffdyn.common.neural_de import (
    CNF,
    DensityCNF,
    DensityTask,
    GradientFlowField,
    GraphODEField,
    HamiltonianField,
    LagrangianField,
    MLPField,
    NeuralCDE,
    NeuralODE,
    NeuralSDE,
    ScalarMLP,
    SDESolveConfig,
    cde_solve,
    circles,
    crossing,
    gaussian_mixture,
    get_sde_solver,
    interpolate,
    moons,
    normalised_adjacency,
    spirals,
    standard_normal_log_prob,
)


def tight(rtol=1e-8, atol=1e-10, **kw):
    return SolveConfig(rtol=rtol, atol=atol, **kw)


def pendulum_energy(y):
    return 0.5 * y[1] ** 2 + 1.0 - jnp.cos(y[0])


# ------------------------------------------------------------------ physics


def test_hamiltonian_lagrangian_and_gradient_flow_fields_from_known_functions():
    y = jnp.array([0.7, -0.3])
    np.testing.assert_allclose(
        HamiltonianField(pendulum_energy, 1)(0.0, y), [-0.3, -jnp.sin(0.7)], rtol=1e-6
    )
    lagrangian = lambda s: 0.5 * s[1] ** 2 - (1.0 - jnp.cos(s[0]))
    np.testing.assert_allclose(
        LagrangianField(lagrangian, 1)(0.0, y), [-0.3, -jnp.sin(0.7)], rtol=1e-6
    )
    # gradient flow of E = |y - c|^2 / 2 is y' = c - y: E decays as exp(-2t)
    c = jnp.array([1.0, 2.0])
    energy = lambda s: 0.5 * jnp.sum((s - c) ** 2)
    ys = NeuralODE(GradientFlowField(energy), solve=tight())(jnp.zeros(2), jnp.linspace(0, 2, 5))
    np.testing.assert_allclose(
        jax.vmap(energy)(ys), energy(jnp.zeros(2)) * jnp.exp(-2 * jnp.linspace(0, 2, 5)), rtol=1e-5
    )
    with pytest.raises(ValueError, match="shape"):
        HamiltonianField(pendulum_energy, 1)(0.0, jnp.ones(3))


@pytest.mark.heavy
def test_hnn_conserves_pendulum_energy_far_better_than_an_mlp():
    key_data, k1, k2 = jax.random.split(jax.random.key(0), 3)
    states = jax.random.uniform(key_data, (1024, 2), minval=-1.6, maxval=1.6)
    targets = jax.vmap(lambda s: jnp.array([s[1], -jnp.sin(s[0])]))(states)

    def loss(field, batch, key):
        x, dx = batch
        return jnp.mean((jax.vmap(lambda s: field(0.0, s, None))(x) - dx) ** 2)

    def fit(field):
        trainer = Trainer(
            loss,
            OptimConfig(learning_rate=3e-3),
            config=TrainConfig(steps=1500, log_every=1500, progress=False, track_best=False),
        )
        return trainer.fit(field, (states, targets), jax.random.key(1)).model

    hnn = fit(HamiltonianField(ScalarMLP(2, 64, 2, key=k1), 1))
    mlp = fit(MLPField(2, 64, 2, activation="softplus", key=k2))
    period = 4 * 1.0 / 1.0 * 1.6868  # 4 K(sin(1/2)) for amplitude 1 rad
    ts = jnp.linspace(0.0, 100 * period, 2001)
    y0 = jnp.array([1.0, 0.0])

    def energy_errors(field):
        """The true energy's error in the first and the last tenth of 100 periods."""
        ys = NeuralODE(field, solve=tight(1e-7, 1e-9, max_steps=100_000))(y0, ts)
        err = np.abs(np.asarray(jax.vmap(pendulum_energy)(ys) - pendulum_energy(y0)))
        tenth = len(err) // 10
        return err[:tenth].max(), err[-tenth:].max(), ys

    hnn_first, hnn_last, hnn_ys = energy_errors(hnn)
    mlp_first, mlp_last, _ = energy_errors(mlp)
    # the HNN conserves its learned Hamiltonian, so the true energy's error is the fit's and
    # does not grow; the MLP's grows period after period
    learned = jax.vmap(hnn.hamiltonian)(hnn_ys)
    assert float(jnp.max(jnp.abs(learned - learned[0]))) < 1e-3
    assert hnn_last <= 1.1 * hnn_first, (hnn_first, hnn_last)
    assert mlp_last > 3 * mlp_first, (mlp_first, mlp_last)
    assert hnn_last < 0.5 * mlp_last, (hnn_last, mlp_last)


# ------------------------------------------------------------------ CNF


class LinearField(eqx.Module):
    a: jax.Array

    def __call__(self, t, z, args):
        return self.a @ z


A = jnp.array([[-0.5, 0.8], [0.3, 0.2]])


def test_linear_cnf_log_density_is_the_exact_change_of_variables():
    cnf = CNF(LinearField(A), 2, t1=1.5, solve=tight())
    x = jnp.array([[0.3, -1.2], [2.0, 0.5], [0.0, 0.0]])
    exact = jax.vmap(lambda v: standard_normal_log_prob(jsl.expm(1.5 * A) @ v))(
        x
    ) + 1.5 * jnp.trace(A)
    np.testing.assert_allclose(jax.vmap(cnf.log_prob)(x), exact, rtol=1e-5)
    # sampling runs the flow backwards; its log-density agrees with log_prob
    sample, logp = cnf.sample(jax.random.key(3))
    np.testing.assert_allclose(logp, cnf.log_prob(sample), rtol=1e-5)


def test_density_task_is_the_negative_log_likelihood():
    # a zero field leaves the points where they are: log p(x) = log N(x; 0, I)
    cnf = CNF(lambda t, z, a: jnp.zeros_like(z), 2, solve=tight())
    x = jnp.array([[0.3, -1.2], [2.0, 0.5], [0.0, 0.0], [1.0, 1.0]])
    exact = np.mean(0.5 * np.sum(np.asarray(x) ** 2, -1) + math.log(2 * math.pi))
    task = DensityTask(x[:2], batch_size=3)
    np.testing.assert_allclose(
        eqx.filter_jit(task.loss)(cnf, x, jax.random.key(0)), exact, rtol=1e-6
    )
    np.testing.assert_allclose(
        task.evaluate(cnf, None)["loss"],
        np.mean(0.5 * np.sum(x[:2] ** 2, -1)) + math.log(2 * math.pi),
        rtol=1e-6,
    )
    assert task.validates and task.draws and task.augmenter().batch_size == 3
    assert not DensityTask().validates
    with pytest.raises(ValueError, match="samples"):
        DensityTask(jnp.ones(3))


def test_density_cnf_takes_one_solve_config():
    solve = SolveConfig(solver="dopri5", rtol=1e-4, atol=1e-6, max_steps=128)
    model = DensityCNF(2, 8, 1, trace="hutchinson", solve=solve, key=jax.random.key(0))
    assert model.solve == model.cnf.solve == solve
    with pytest.raises(TypeError, match="SolveConfig"):
        DensityCNF(2, 8, 1, solve={"solver": "tsit5"}, key=jax.random.key(0))


def test_hutchinson_trace_is_unbiased():
    cnf = CNF(LinearField(A), 2, trace="hutchinson", solve=tight(1e-6, 1e-8))
    x = jnp.array([0.3, -1.2])
    exact = standard_normal_log_prob(jsl.expm(A) @ x) + jnp.trace(A)
    keys = jax.random.split(jax.random.key(0), 2000)
    est = jax.vmap(lambda k: cnf.log_prob(x, k))(keys)
    # Rademacher noise: eps^T A eps = tr A + eps1 eps2 (A12 + A21), so estimates spread
    assert jnp.std(est) > 0.5
    assert abs(jnp.mean(est) - exact) < 4 * jnp.std(est) / math.sqrt(len(keys))
    with pytest.raises(ValueError, match="key"):
        cnf.log_prob(x)


# ------------------------------------------------------------------ SDE


@pytest.mark.parametrize(
    "sde_type, solver, shift", [("ito", "euler", 0.0), ("stratonovich", "heun", 0.5)]
)
def test_geometric_brownian_motion_mean_and_variance(sde_type, solver, shift):
    mu, sigma, x0, big_t, n = 0.3, 0.5, 1.0, 1.0, 4000
    sde = NeuralSDE(
        lambda t, y, a: mu * y,
        lambda t, y, a: sigma * y,
        1,
        sde_type=sde_type,
        solve=SDESolveConfig(solver=solver, dt0=0.01),
    )
    paths = sde.sample(jnp.array([x0]), jnp.array([0.0, big_t]), jax.random.key(7), n)
    xt = paths[:, -1, 0]
    # Stratonovich GBM is Ito GBM with drift mu + sigma^2 / 2
    m = mu + shift * sigma**2
    mean = x0 * math.exp(m * big_t)
    var = x0**2 * math.exp(2 * m * big_t) * (math.exp(sigma**2 * big_t) - 1)
    assert abs(float(jnp.mean(xt)) - mean) < 4 * math.sqrt(var / n)
    assert abs(float(jnp.var(xt)) / var - 1) < 0.12


def test_sde_solver_names_are_checked_against_the_calculus():
    with pytest.raises(ValueError, match="stratonovich"):
        get_sde_solver("heun", "ito")
    with pytest.raises(ValueError, match="unknown SDE solver"):
        get_sde_solver("rk4", "ito")
    with pytest.raises(ValueError, match="unknown SDE solver"):
        SDESolveConfig(solver="rk4")
    with pytest.raises(ValueError, match="dt0"):
        SDESolveConfig(dt0=0.0)
    f = lambda t, y, a: y
    with pytest.raises(ValueError, match="stratonovich"):
        NeuralSDE(f, f, 1, sde_type="ito", solve=SDESolveConfig(solver="reversible-heun"))
    with pytest.raises(TypeError, match="SDESolveConfig"):
        NeuralSDE(f, f, 1, solve=SolveConfig())
    # without a solver the calculus chooses, and the model records the choice
    assert NeuralSDE(f, f, 1, sde_type="stratonovich").solve.solver == "heun"
    assert NeuralSDE(f, f, 1).solve == SDESolveConfig(solver="euler")
    assert SDESolveConfig(dt0=0.02).tolerance == 0.005


# ------------------------------------------------------------------ CDE


@pytest.mark.parametrize("kind", ["cubic", "linear"])
def test_cde_with_scalar_linear_field_has_closed_form(kind):
    # dz = z w^T dX  =>  z(T) = z0 exp(w . (X(T) - X(0))), for any path X
    ts = jnp.array([0.0, 0.3, 0.45, 1.0, 1.6, 2.0])
    xs = jnp.stack([jnp.sin(2 * ts), jnp.cos(ts) + ts**2 / 4], -1)
    w = jnp.array([0.7, -0.4])
    control = interpolate(ts, xs, kind)
    np.testing.assert_allclose(control.evaluate(ts[2]), xs[2], rtol=1e-6)
    z = cde_solve(
        lambda t, z, a: z[:, None] * w[None, :],
        jnp.array([1.5]),
        control,
        ts,
        tight(),
    )
    exact = 1.5 * jnp.exp((xs - xs[0]) @ w)
    np.testing.assert_allclose(z[:, 0], exact, rtol=1e-5)


def test_neural_cde_validation():
    ts = jnp.linspace(0, 1, 10)
    xs = jnp.ones((10, 3))
    with pytest.raises(ValueError, match="xs"):
        interpolate(ts, xs[:5])
    with pytest.raises(ValueError, match="interpolation"):
        NeuralCDE(3, 8, 2, interpolation="spline", key=jax.random.key(0))


def test_neural_cde_model_output_shape():
    model = NeuralCDE(3, 8, 2, width=16, key=jax.random.key(0))
    ts = jnp.linspace(0, 1, 10)
    xs = jax.random.normal(jax.random.key(1), (10, 3))
    assert model(ts, xs).shape == (2,)


# ------------------------------------------------------------------ graph


def ring(n):
    i = jnp.arange(n)
    return jnp.zeros((n, n)).at[i, (i + 1) % n].set(1.0).at[(i + 1) % n, i].set(1.0)


def test_linear_graph_ode_is_a_kronecker_matrix_exponential():
    adjacency = ring(5).at[0, 2].set(1.0).at[2, 0].set(1.0)
    field = GraphODEField(adjacency, 3, depth=0, key=jax.random.key(0))
    field = eqx.tree_at(lambda f: f.layers[0].bias, field, jnp.zeros(3))
    h0 = jax.random.normal(jax.random.key(1), (3, 5))
    h1 = NeuralODE(field, solve=tight()).final(h0, 0.0, 0.8)
    a_hat, w = normalised_adjacency(adjacency), field.layers[0].weight
    # row-major vec: vec(W H A) = (W kron A^T) vec(H)
    exact = jsl.expm(0.8 * jnp.kron(w, a_hat.T)) @ h0.reshape(-1)
    np.testing.assert_allclose(h1.reshape(-1), exact, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a_hat, a_hat.T, atol=1e-7)


def test_graph_ode_is_permutation_equivariant():
    adjacency = ring(6).at[1, 4].set(1.0).at[4, 1].set(1.0)
    perm = jnp.array([3, 0, 5, 1, 4, 2])
    field = GraphODEField(adjacency, 2, width=8, depth=1, key=jax.random.key(0))
    permuted = eqx.tree_at(lambda f: f.adjacency, field, field.adjacency[perm][:, perm])
    h0 = jax.random.normal(jax.random.key(1), (2, 6))
    node = lambda f: NeuralODE(f, solve=tight(1e-7, 1e-9))
    np.testing.assert_allclose(
        node(permuted).final(h0[:, perm]), node(field).final(h0)[:, perm], rtol=1e-5, atol=1e-6
    )


def test_graph_adjacency_stays_fixed_under_a_plain_training_loop():
    # a plain eqx.filter_grad + optax.adam loop over every floating leaf, the adjacency
    # included: it must come out exactly as it went in
    field = GraphODEField(ring(5), 2, width=4, depth=1, key=jax.random.key(0))
    h0 = jax.random.normal(jax.random.key(1), (2, 5))
    node = lambda f: NeuralODE(f, solve=SolveConfig(solver="heun", adaptive=False, dt0=0.1))

    @eqx.filter_jit
    @eqx.filter_value_and_grad
    def loss(f):
        return jnp.sum((node(f).final(h0, 0.0, 0.5) - 1.0) ** 2)

    params = eqx.filter(field, eqx.is_inexact_array)
    optimiser = optax.adam(1e-1)
    state = optimiser.init(params)
    before = np.asarray(field.adjacency)
    for _ in range(5):
        _, grads = loss(field)
        np.testing.assert_array_equal(grads.adjacency, 0.0)
        updates, state = optimiser.update(eqx.filter(grads, eqx.is_inexact_array), state)
        field = eqx.apply_updates(field, updates)
    np.testing.assert_array_equal(field.adjacency, before)
    assert not np.allclose(
        field.layers[0].weight,
        GraphODEField(ring(5), 2, width=4, depth=1, key=jax.random.key(0)).layers[0].weight,
    )


# ------------------------------------------------------------------ datasets


def test_datasets_follow_their_definitions():
    key = jax.random.key(0)
    as_np = lambda pair: tuple(np.asarray(v) for v in pair)
    x, y = as_np(moons(key, 200, noise=0.0))
    upper, lower = x[y == 0], x[y == 1]
    np.testing.assert_allclose(jnp.linalg.norm(upper, axis=1), 1.0, rtol=1e-5)
    assert jnp.all(upper[:, 1] >= 0)
    np.testing.assert_allclose(
        jnp.linalg.norm(lower - jnp.array([1.0, 0.5]), axis=1), 1.0, rtol=1e-5
    )
    x, y = as_np(circles(key, 100, noise=0.0, factor=0.3))
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), np.where(y == 0, 1.0, 0.3), rtol=1e-5)
    x, y = as_np(spirals(key, 100, noise=0.0))
    assert x.shape == (100, 2) and np.all(np.linalg.norm(x, axis=1) <= 1.0 + 1e-6)
    assert int(y.sum()) == 50
    x, y = as_np(gaussian_mixture(key, 4000, components=4, radius=2.0, std=0.1))
    for k in range(4):
        mu = 2.0 * np.array([np.cos(k * np.pi / 2), np.sin(k * np.pi / 2)])
        np.testing.assert_allclose(x[y == k].mean(0), mu, atol=0.02)
    x, y = as_np(crossing(key, 10))
    np.testing.assert_array_equal(y, -x)
    noisy = np.asarray(moons(key, 50, noise=0.1)[0])
    assert not np.allclose(noisy, np.asarray(moons(key, 50, noise=0.0)[0]))
    with pytest.raises(ValueError, match="'n'"):
        moons(key, 0)
    with pytest.raises(ValueError, match="noise"):
        moons(key, 10, noise=-1.0)
