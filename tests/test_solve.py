"""Numerical tests of common.solve: closed forms, convergence orders, RK4, gradients, errors.

Compilation dominates the runtime, so every solve goes through a few module-level jitted
helpers whose static arguments (vector field, solver name, ...) repeat across tests.
"""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from diffdyn.common import (
    ADAPTIVE_SOLVERS,
    ADJOINTS,
    RK4,
    SOLVERS,
    SolveConfig,
    get_adjoint,
    get_solver,
    solve,
    supports_adaptive,
)

# Static arguments (functions, strings, Python floats) are part of the cache key; arrays are
# traced, so step sizes and save times can change without recompiling.
_jsolve = eqx.filter_jit(solve)


# --------------------------------------------------------------------------- problems


def _decay_oscillator(t, y, args):
    """y_d' = -k y_d (k = 1.3) and x'' = -w² x (w = 2): closed forms exp(-kt), cos, sin."""
    x, v = y["osc"]
    return {"decay": -1.3 * y["decay"], "osc": jnp.stack([v, -4.0 * x])}


def _decay_oscillator_exact(ts):
    return {
        "decay": jnp.exp(-1.3 * ts)[:, None] * jnp.array([1.0, -0.5]),
        "osc": jnp.stack([jnp.cos(2.0 * ts), -2.0 * jnp.sin(2.0 * ts)], axis=-1),
    }


_RICCATI_Y0 = (1.0, 0.5)


def _riccati(t, y, args):
    """y' = -2 t y² (nonlinear, non-autonomous): y(t) = 1 / (1 / y(0) + t²)."""
    return -2.0 * t * y**2


def _riccati_exact(t):
    return 1.0 / (1.0 / np.array(_RICCATI_Y0) + np.asarray(t)[..., None] ** 2)


def _decay(t, y, args):
    """y' = -k y on every leaf of a pytree state, k = args."""
    return jax.tree.map(lambda leaf: -args * leaf, y)


# --------------------------------------------------------------------------- registry


def test_registry():
    required = {"euler", "heun", "midpoint", "ralston", "bosh3", "rk4", "tsit5", "dopri5"}
    required |= {"dopri8", "kvaerno3", "kvaerno5", "implicit-euler"}
    assert required <= set(SOLVERS)
    fixed_step = {"euler", "rk4", "leapfrog", "symplectic-euler"}
    assert set(ADAPTIVE_SOLVERS) == set(SOLVERS) - fixed_step
    assert ADJOINTS == ("recursive-checkpoint", "backsolve", "direct")
    for name in SOLVERS:
        solver = get_solver(name)
        assert isinstance(solver, diffrax.AbstractSolver)
        assert supports_adaptive(name) == supports_adaptive(solver) == (name in ADAPTIVE_SOLVERS)
    assert isinstance(get_solver("Dopri5"), diffrax.Dopri5)
    assert isinstance(get_solver("implicit_euler"), diffrax.ImplicitEuler)
    assert isinstance(get_adjoint("recursive-checkpoint"), diffrax.RecursiveCheckpointAdjoint)
    assert isinstance(get_adjoint("direct"), diffrax.DirectAdjoint)
    assert isinstance(get_adjoint("backsolve"), diffrax.BacksolveAdjoint)
    seminorm = get_adjoint("backsolve", rtol=1e-6, atol=1e-8).kwargs["stepsize_controller"]
    assert seminorm.norm is diffrax.adjoint_rms_seminorm
    assert "stepsize_controller" not in get_adjoint("backsolve", seminorm=False, rtol=1.0).kwargs


def test_rk4_tableau():
    tab = RK4.tableau
    assert np.allclose(tab.c, [0.5, 0.5, 1.0])
    assert np.allclose(tab.b_sol, [1 / 6, 1 / 3, 1 / 3, 1 / 6])
    assert not tab.fsal and tab.num_stages == 4
    assert RK4().order(None) == 4


# --------------------------------------------------------------------------- closed forms


class _Simulator(eqx.Module):
    """A module with a SolveConfig as a static field, as later packages embed it."""

    config: SolveConfig = eqx.field(static=True)

    def __call__(self, y0, ts):
        return self.config.solve_full(_decay_oscillator, y0, ts, t0=0.0)


# The config lives in the treedef of the module argument; y0 and ts are traced.
_simulate = jax.jit(lambda sim, y0, ts: sim(y0, ts))


@pytest.mark.parametrize(
    "solver, tol", [("tsit5", 1e-8), ("dopri5", 1e-8), ("dopri8", 1e-8), ("kvaerno5", 1e-7)]
)
def test_adaptive_closed_forms(solver, tol):
    with jax.enable_x64(True):
        ts = jnp.linspace(0.5, 3.0, 6)  # the solve starts earlier, at t0 = 0
        y0 = {"decay": jnp.array([1.0, -0.5]), "osc": jnp.array([1.0, 0.0])}
        sim = _Simulator(SolveConfig(solver=solver, rtol=1e-11, atol=1e-12))
        sol = _simulate(sim, y0, ts)
        exact = _decay_oscillator_exact(ts)
    assert isinstance(sol, diffrax.Solution) and int(sol.stats["num_accepted_steps"]) > 0
    assert sol.ys["decay"].shape == (6, 2) and sol.ys["osc"].shape == (6, 2)
    assert sol.ys["decay"].dtype == jnp.float64
    for key in ("decay", "osc"):
        np.testing.assert_allclose(sol.ys[key], exact[key], rtol=0, atol=tol)


def test_float32_in_float32_out():
    # Shapes and dtypes only: tracing is enough, nothing is compiled.
    y0 = {"a": jnp.ones(3, jnp.float32), "b": jnp.zeros((2, 2), jnp.float32)}
    out = jax.eval_shape(lambda y, ts: solve(_decay, y, ts, args=0.7), y0, jnp.linspace(0, 1, 4))
    assert out["a"] == jax.ShapeDtypeStruct((4, 3), jnp.float32)
    assert out["b"] == jax.ShapeDtypeStruct((4, 2, 2), jnp.float32)


def test_solve_config_is_frozen_hashable_and_normalised():
    cfg = SolveConfig(solver="dopri5", rtol=1e-7, atol=1e-9)
    assert hash(cfg) == hash(SolveConfig(solver="Dopri5", rtol=1e-7, atol=1e-9))
    assert cfg == SolveConfig(solver="dopri5", rtol=1e-7, atol=1e-9) != SolveConfig()
    assert SolveConfig(adjoint="Recursive_Checkpoint").adjoint == "recursive-checkpoint"
    with pytest.raises(AttributeError):
        cfg.rtol = 1.0  # frozen


# --------------------------------------------------------------------------- orders


# (solver, nominal order, N): errors at N, 2N and 4N steps on [0, 1] of the Riccati problem
# lie in the asymptotic range and well above float64 round-off.
_ORDER_CASES = [
    ("euler", 1, 32),
    ("heun", 2, 32),
    ("midpoint", 2, 32),
    ("ralston", 2, 64),
    ("bosh3", 3, 32),
    ("rk4", 4, 16),
    ("tsit5", 5, 16),
    ("dopri5", 5, 16),
    ("kvaerno3", 3, 16),  # implicit: the fixed step takes its Newton tolerances from rtol/atol
]


def _fixed_step(solver, n, t_save=1.0):
    """The fixed-step solution at `t_save` (one compile per solver: ts and dt0 are traced)."""
    ts = jnp.array([0.0, t_save])
    y0 = jnp.array(_RICCATI_Y0)
    dt0 = jnp.asarray(1.0 / n)
    kwargs = dict(adaptive=False, dt0=dt0, rtol=1e-10, atol=1e-10)
    return _jsolve(_riccati, y0, ts, solver=solver, **kwargs)[-1]


def _fixed_step_error(solver, n, t_save=1.0):
    return float(np.max(np.abs(_fixed_step(solver, n, t_save) - _riccati_exact(t_save))))


@pytest.mark.parametrize("solver, order, n", _ORDER_CASES)
def test_convergence_order(solver, order, n):
    with jax.enable_x64(True):
        errors = [_fixed_step_error(solver, n * 2**i) for i in range(3)]
    observed = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(abs(p - order) <= 0.3 for p in observed), (errors, observed)


def test_convergence_order_dopri8():
    # Eighth order reaches round-off (~1e-15) by N = 16, so only the first halving
    # (N = 4 -> 8, errors ~1e-10 -> ~1e-12) is in the asymptotic range.
    with jax.enable_x64(True):
        errors = [_fixed_step_error("dopri8", n) for n in (4, 8)]
    observed = math.log2(errors[0] / errors[1])
    assert 7.0 <= observed <= 8.5, (errors, observed)


def test_rk4_matches_hand_written_loop():
    dt, n = 1.0 / 40, 40
    y = np.array(_RICCATI_Y0)
    for i in range(n):
        t = i * dt
        k1 = _riccati(t, y, None)
        k2 = _riccati(t + dt / 2, y + dt / 2 * k1, None)
        k3 = _riccati(t + dt / 2, y + dt / 2 * k2, None)
        k4 = _riccati(t + dt, y + dt * k3, None)
        y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    with jax.enable_x64(True):
        np.testing.assert_allclose(_fixed_step("rk4", n), y, rtol=0, atol=1e-12)


def test_rk4_dense_output_is_fourth_order():
    # Save at a third of the way through a step: the cubic continuous extension has a local
    # error O(h⁴), so the interpolated solution converges at order 4 like the grid values.
    with jax.enable_x64(True):
        errors = [_fixed_step_error("rk4", n, (n // 2 + 1 / 3) / n) for n in (16, 32, 64)]
    observed = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(abs(p - 4) <= 0.3 for p in observed), (errors, observed)


# --------------------------------------------------------------------------- gradients

_T = 1.5
_K = 0.8


class _Field(eqx.Module):
    """State [y_d, y_m (2)]: decay y_d' = -k y_d next to an MLP field y_m' = mlp(y_m)."""

    k: jax.Array
    mlp: eqx.nn.MLP

    def __call__(self, t, y, args):
        return jnp.concatenate([-self.k * y[:1], self.mlp(y[1:])])


def _loss(diff, adjoint):
    field, y0 = diff
    # BacksolveAdjoint gets a plain closure over the module: its parameters must still
    # receive gradients (solve closure-converts the vector field for that adjoint).
    vf = (lambda t, y, args: field(t, y, args)) if adjoint == "backsolve" else field
    ys = solve(vf, y0, jnp.array([0.0, _T]), adjoint=adjoint, rtol=1e-11, atol=1e-12)
    return jnp.dot(jnp.array([1.0, 0.3, -0.7]), ys[-1])


_value_and_grad = eqx.filter_jit(eqx.filter_value_and_grad(_loss))


def _initial():
    mlp = eqx.nn.MLP(2, 2, 8, 1, activation=jnp.tanh, key=jax.random.key(0))
    return _Field(jnp.asarray(_K), mlp), jnp.array([1.7, 0.5, -0.2])


@pytest.fixture(scope="module")
def gradients():
    with jax.enable_x64(True):
        diff = jax.tree.map(lambda x: x.astype(jnp.float64) if eqx.is_array(x) else x, _initial())
        return diff, {name: _value_and_grad(diff, name) for name in ADJOINTS}


@pytest.mark.parametrize("adjoint", ADJOINTS)
def test_decay_gradient_closed_form(gradients, adjoint):
    (field, y0), results = gradients
    _, (grad_field, grad_y0) = results[adjoint]
    decay = math.exp(-_K * _T)
    np.testing.assert_allclose(grad_y0[0], decay, rtol=1e-8)
    np.testing.assert_allclose(grad_field.k, -_T * float(y0[0]) * decay, rtol=1e-8)


def test_adjoints_agree_with_each_other_and_finite_differences(gradients):
    diff, results = gradients
    with jax.enable_x64(True):
        params, unflatten = ravel_pytree(eqx.filter(diff, eqx.is_array))
        static = eqx.filter(diff, eqx.is_array, inverse=True)
        grads = {
            name: ravel_pytree(eqx.filter(g, eqx.is_array))[0] for name, (_, g) in results.items()
        }
        reference = grads["recursive-checkpoint"]
        for name in ("backsolve", "direct"):
            np.testing.assert_allclose(grads[name], reference, rtol=1e-6, atol=1e-12)

        def value(p):
            diff_p = eqx.combine(unflatten(p), static)
            return float(_value_and_grad(diff_p, "recursive-checkpoint")[0])

        # Central differences along random directions; the adaptive step sizes depend smoothly
        # on the parameters, so the differences see the solution, not the step control.
        eps = 1e-5
        key = jax.random.key(1)
        directions = jax.random.normal(key, (3, params.shape[0]), dtype=jnp.float64)
        for v in directions:
            fd = (value(params + eps * v) - value(params - eps * v)) / (2 * eps)
            for name in ADJOINTS:
                assert abs(float(grads[name] @ v) - fd) <= 1e-6 * abs(fd), (name, fd)


# --------------------------------------------------------------------------- errors


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="unknown solver 'rk5'.*euler.*tsit5.*kvaerno5"):
        get_solver("rk5")
    with pytest.raises(ValueError, match="unknown adjoint 'adjoint'.*backsolve.*direct"):
        get_adjoint("adjoint")
    with pytest.raises(ValueError, match="known solvers"):
        solve(_decay, jnp.ones(1), jnp.array([0.0, 1.0]), solver="nope", args=1.0)
    with pytest.raises(ValueError, match="known adjoints"):
        SolveConfig(adjoint="nope")


@pytest.mark.parametrize("solver", ["rk4", "euler"])
def test_adaptive_without_error_estimate_raises(solver):
    with pytest.raises(ValueError, match=f"{solver}.*no embedded error estimate.*adaptive=False"):
        solve(_decay, jnp.ones(1), jnp.array([0.0, 1.0]), solver=solver, args=1.0)
    with pytest.raises(ValueError, match="error estimate"):
        SolveConfig(solver=solver)
    with pytest.raises(ValueError, match="error estimate"):
        solve(_decay, jnp.ones(1), jnp.array([0.0, 1.0]), solver=get_solver(solver), args=1.0)


def test_rk4_refuses_adaptive_controller_in_diffrax_directly():
    with pytest.raises(RuntimeError, match="error estimates"):
        diffrax.diffeqsolve(
            diffrax.ODETerm(_decay),
            RK4(),
            0.0,
            1.0,
            None,
            jnp.ones(1),
            args=1.0,
            stepsize_controller=diffrax.PIDController(rtol=1e-3, atol=1e-6),
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ts=jnp.zeros((2, 2))), "ts must be a 1-D"),
        (dict(ts=jnp.array([0.0, 2.0, 1.0])), "ts must be strictly increasing"),
        (dict(ts=jnp.array([0.0, 0.0])), "ts must be strictly increasing"),
        (dict(ts=jnp.array([0.0, jnp.nan])), "ts must be finite"),
        (dict(t0=0.5), "t0 must be finite and <= ts"),
        (dict(ts=jnp.array([0.0])), r"ts\[-1\] must be > t0"),
        (dict(rtol=-1e-3), "rtol must be finite and >= 0"),
        (dict(atol=float("inf")), "atol must be finite and >= 0"),
        (dict(rtol=0.0, atol=0.0), "rtol and atol are both 0"),
        (dict(dt0=-0.1), "dt0 must be a finite number > 0"),
        (dict(max_steps=0), "max_steps must be a positive int"),
        (dict(adaptive=False, dt0=1e-4, max_steps=100), "more than max_steps"),
        (dict(y0=jnp.ones(2, dtype=jnp.int32)), "y0 leaves must be floating"),
        (dict(vector_field=3.0), "vector_field must be callable"),
        (dict(solver=3), "solver must be a name"),
        (dict(adjoint=diffrax.Tsit5()), "adjoint must be a name"),
    ],
)
def test_bad_arguments_raise_before_compiling(kwargs, match):
    call = dict(vector_field=_decay, y0=jnp.ones(2), ts=jnp.array([0.0, 1.0]), args=1.0)
    call.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        solve(call.pop("vector_field"), call.pop("y0"), call.pop("ts"), **call)


def test_a_fixed_step_run_that_fits_max_steps_exactly_is_not_refused_in_float32():
    """0.6 / 0.1 rounds above 6 in float32; the up-front count must agree with diffrax's."""
    ts = jnp.linspace(0.0, 0.6, 7, dtype=jnp.float32)
    ys = solve(
        lambda t, y, a: -y, jnp.ones(1), ts, solver="euler", adaptive=False, dt0=0.1, max_steps=6
    )
    np.testing.assert_allclose(np.asarray(ys[:, 0]), 0.9 ** np.arange(7), rtol=1e-5)
    with pytest.raises(ValueError, match="takes 7 steps, more than max_steps = 6"):
        solve(
            lambda t, y, a: -y,
            jnp.ones(1),
            jnp.linspace(0.0, 0.7, 8),
            solver="euler",
            adaptive=False,
            dt0=0.1,
            max_steps=6,
        )


def test_a_field_shaped_unlike_y0_is_refused_before_compiling():
    from diffdyn.common import solve

    ts = jnp.linspace(0.0, 1.0, 5)
    with pytest.raises(ValueError, match=r"y0's shape \(3,\); got shape \(2,\)"):
        solve(lambda t, y, a: y[:2], jnp.ones(3), ts)
    with pytest.raises(ValueError, match="structure of y0"):
        solve(lambda t, y, a: y["x"], {"x": jnp.ones(2)}, ts)
    np.testing.assert_allclose(
        solve(lambda t, y, a: -y, jnp.ones(2), ts)[-1], np.exp(-1.0) * np.ones(2), rtol=1e-5
    )


def test_rk4_solves_batched_over_different_end_times_have_finite_gradients():
    """A vmapped batch of fixed-step rk4 solves whose spans differ pads the shorter ones with
    zero-length steps; their dense output must not divide 0 by 0 (NaN gradients)."""

    def final(a, t1):
        ts = jnp.stack([jnp.zeros(()), t1])
        ys = solve(
            lambda t, y, args: -a * y,
            jnp.ones(1),
            ts,
            solver="rk4",
            dt0=0.1,
            adaptive=False,
            max_steps=64,
        )
        return ys[-1, 0]

    t1s = jnp.array([0.45, 1.0, 2.35])
    grads = jax.vmap(jax.grad(final), in_axes=(None, 0))(0.7, t1s)
    assert np.all(np.isfinite(grads))
    # y(t1) = exp(-a t1) up to rk4's error: dy/da = -t1 exp(-a t1)
    np.testing.assert_allclose(grads, -t1s * np.exp(-0.7 * t1s), rtol=1e-3)
