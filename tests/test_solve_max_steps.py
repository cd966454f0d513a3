"""Step bounds: fixed-step solves take as many steps as their span needs without a
``max_steps`` (counted up front, or from the shape of ``ts``), an explicit bound too small for
a fixed step is refused before compiling, and a solve that reaches its bound says which option
to raise."""

import dataclasses

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import SolveConfig, config_to_dict, solve
from diffdyn.pde import PDE_SOLVE, AdvectionDiffusion, Grid, PDESolver

H = 1e-4  # the step
N = 20_000  # steps over [0, 2]: more than the old default bound 4096 (and PDE's 16384)
TS = np.array([0.0, 2.0])  # numpy: concrete even under jit
EULER = SolveConfig(solver="euler", dt0=H, adaptive=False)
OPTION = r"SolveConfig\.max_steps \(--solve\.max_steps"


def decay(t, y, args):
    return -y


def euler_error_bound(h: float, t: float) -> float:
    r"""Global error bound of Euler's method on $y' = -y$, $y(0) = 1$ (Lipschitz constant
    $L = 1$, $|y''| \le M = 1$): $|y_N - y(t)| \le \frac{hM}{2L}(e^{Lt} - 1)$."""
    return h / 2 * np.expm1(t)


def test_twenty_thousand_euler_steps_need_no_max_steps():
    with jax.enable_x64(True):
        sol = EULER.solve_full(decay, jnp.ones(1), TS)
        assert int(sol.stats["num_steps"]) == N
        y = float(sol.ys[-1, 0])
        # the discrete solution (1 - h)^N, to round-off
        np.testing.assert_allclose(y, (1 - H) ** N, rtol=1e-11)
        # the closed form exp(-2), within Euler's global error bound; the error is first
        # order, e^{-2} t h / 2 to leading order, so exactly N steps of h were taken
        error = np.exp(-2.0) - y
        assert 0 < error <= euler_error_bound(H, 2.0)
        np.testing.assert_allclose(error, np.exp(-2.0) * 2.0 * H / 2, rtol=1e-3)
        # the function form, and concrete times closed over under jit, count the same way
        ys = solve(decay, jnp.ones(1), TS, solver="euler", dt0=H, adaptive=False)
        np.testing.assert_array_equal(np.asarray(ys), np.asarray(sol.ys))
        jitted = jax.jit(lambda y0: EULER.solve(decay, y0, TS))(jnp.ones(1))
        np.testing.assert_allclose(np.asarray(jitted), np.asarray(sol.ys), rtol=1e-12)


def _heat_mode(diffusion: float) -> tuple[PDESolver, jax.Array, float]:
    """The heat equation on a periodic 4 x 4 grid (dx = 1) from the mode cos(pi x / 2):
    an eigenvector of the 5-point Laplacian with eigenvalue -4 sin^2(pi / 4) = -2, so
    dX/dt = -lam X with lam = 2 D."""
    rhs = AdvectionDiffusion(diffusion, grid=Grid(1.0, "periodic"))
    x0 = jnp.tile(jnp.array([1.0, 0.0, -1.0, 0.0]), (1, 4, 1))
    return rhs, x0, 2 * diffusion


def test_pde_solver_takes_twenty_thousand_euler_steps_with_default_max_steps():
    with jax.enable_x64(True):
        rhs, x0, lam = _heat_mode(0.5)  # lam = 1: the mode decays like y' = -y
        ys = PDESolver(rhs, EULER)(x0, jnp.asarray(TS))
        factor = (1 - H * lam) ** N  # Euler's amplification of the mode
        np.testing.assert_allclose(np.asarray(ys[-1]), factor * np.asarray(x0), atol=1e-12)
        error = np.exp(-2.0) - factor
        assert 0 < error <= euler_error_bound(H, 2.0)


def test_the_default_pde_solve_takes_as_many_heun_steps_as_the_span_needs():
    assert PDE_SOLVE.max_steps is None
    with jax.enable_x64(True):
        rhs, x0, lam = _heat_mode(5e-4)  # lam = 1e-3: e^{-2} over t = 2000
        t1 = 2000.0  # 20,000 Heun steps of PDE_SOLVE.dt0 = 0.1
        ys = PDESolver(rhs)(x0, jnp.array([0.0, t1]))
        z = PDE_SOLVE.dt0 * lam
        factor = (1 - z + z**2 / 2) ** round(t1 / PDE_SOLVE.dt0)  # Heun on dX/dt = -lam X
        np.testing.assert_allclose(np.asarray(ys[-1]), factor * np.asarray(x0), atol=1e-12)
        np.testing.assert_allclose(factor, np.exp(-2.0), rtol=1e-6)  # second order


def test_an_explicit_max_steps_below_the_fixed_step_count_is_refused_up_front():
    match = r"takes 20000 steps, more than max_steps = 19999; raise " + OPTION
    with pytest.raises(ValueError, match=match):
        solve(decay, jnp.ones(1), TS, solver="euler", dt0=H, adaptive=False, max_steps=19999)
    short = SolveConfig(solver="euler", dt0=H, adaptive=False, max_steps=19999)
    with pytest.raises(ValueError, match=match):
        short.solve(decay, jnp.ones(1), TS)
    rhs, x0, _ = _heat_mode(0.5)
    with pytest.raises(ValueError, match=match):
        PDESolver(rhs, short)(x0, jnp.asarray(TS))
    # the time step of dt0 = None: (t1 - t0) / max(100, len(ts) - 1) steps
    with pytest.raises(ValueError, match="takes 100 steps, more than max_steps = 99"):
        solve(decay, jnp.ones(1), TS, solver="euler", adaptive=False, max_steps=99)


def test_fixed_steps_over_traced_times_count_from_the_shape_of_ts_without_dt0():
    with jax.enable_x64(True):
        n = 5000  # > 4096 save intervals, so 5000 steps of (t1 - t0) / 5000
        ts = jnp.linspace(0.0, 2.0, n + 1)
        run = eqx.filter_jit(
            lambda ts: SolveConfig(solver="euler", adaptive=False).solve_full(
                decay, jnp.ones(1), ts
            )
        )
        sol = run(ts)
        assert int(sol.stats["num_steps"]) == n
        np.testing.assert_allclose(float(sol.ys[-1, 0]), (1 - 2.0 / n) ** n, rtol=1e-11)


def test_fixed_steps_over_traced_times_with_dt0_say_which_option_to_raise():
    run = eqx.filter_jit(lambda ts: EULER.solve(decay, jnp.ones(1), ts))
    with pytest.raises(
        RuntimeError, match=rf"max_steps = 4096 steps \(the default bound of traced.*{OPTION}"
    ):
        run(jnp.asarray(TS, jnp.float32))


def stiff(t, y, args):
    return -1e6 * (y - jnp.cos(t))


def test_an_adaptive_solve_at_the_default_bound_names_the_option_and_where_it_stopped():
    ts = jnp.linspace(0.0, 10.0, 6)
    # stiff for an explicit solver: tsit5 is held to steps of ~3e-6, millions of them
    match = rf"max_steps = 4096 steps \(the default of adaptive solves\).*{OPTION}"
    with pytest.raises(RuntimeError, match=match) as e:
        solve(stiff, jnp.zeros(1), ts, solver="tsit5")
    stopped = "it took 4096 steps; the last save time with a finite state is ts[0] = 0.0"
    assert stopped in str(e.value)


LONG = SolveConfig(solver="tsit5", rtol=1e-10, atol=1e-12, max_steps=8)
LONG_TS = jnp.linspace(0.0, 100.0, 5)
GIVEN = rf"max_steps = 8 steps \(given\).*{OPTION}"


def test_an_adaptive_solve_at_a_given_bound_names_the_option_also_under_jit():
    with pytest.raises(RuntimeError, match=GIVEN):
        LONG.solve(decay, jnp.ones(1), LONG_TS)
    with pytest.raises(RuntimeError, match=GIVEN):  # at run time
        eqx.filter_jit(lambda ts: LONG.solve(decay, jnp.ones(1), ts))(LONG_TS)
    # throw=False reports it in .result instead
    sol = LONG.solve_full(decay, jnp.ones(1), LONG_TS, throw=False)
    assert sol.result == diffrax.RESULTS.max_steps_reached
    assert int(sol.stats["num_steps"]) == 8


def test_a_backsolve_solve_at_its_bound_names_the_option():
    backsolve = dataclasses.replace(LONG, adjoint="backsolve")
    with pytest.raises(RuntimeError, match=GIVEN):
        backsolve.solve(decay, jnp.ones(1), LONG_TS)


def test_the_recorded_config_says_none_for_a_derived_bound():
    assert SolveConfig().max_steps is None
    assert config_to_dict(EULER)["max_steps"] is None
    assert config_to_dict(SolveConfig(max_steps=100))["max_steps"] == 100
    with pytest.raises(ValueError, match="max_steps must be a positive int or None"):
        SolveConfig(max_steps=0)
