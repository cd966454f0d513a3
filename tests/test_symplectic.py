"""Symplectic solvers (leapfrog, symplectic Euler) by name in the solve layer: conservation of
the (modified) energy against closed forms, convergence orders, time reversibility, the
symplectic condition, gradients, the flat-state adapter and refused input.

Every solve goes through one jitted `solve` whose step sizes and save times are traced arrays,
so each (field, solver, max_steps) compiles once.
"""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import (
    ADAPTIVE_SOLVERS,
    SOLVERS,
    Leapfrog,
    PartitionedField,
    SolveConfig,
    SymplecticEuler,
    get_solver,
    solve,
    supports_adaptive,
)
from diffdyn.common.neural_de import HamiltonianField

_jsolve = eqx.filter_jit(solve)


# --------------------------------------------------------------------------- problems


def _oscillator(t, y, args):
    """H = p²/2 + q²/2 on y = (q, p): q = q0 cos t + p0 sin t."""
    q, p = y
    return p, -q


def _oscillator_flat(t, y, args):
    """The same oscillator on a flat state [q, p] (for RK4)."""
    return jnp.stack([y[1], -y[0]])


def _pendulum(t, y, args):
    """H = p²/2 - k cos q on y = (q, p), k = args (default 1)."""
    q, p = y
    k = 1.0 if args is None else args
    return p, -k * jnp.sin(q)


def _pendulum_flat(t, y, args):
    return jnp.stack([y[1], -jnp.sin(y[0])])


def _pendulum_energy(q, p):
    return 0.5 * p**2 - jnp.cos(q)


def _coupled(t, y, args):
    """Two pendulums joined by a spring: H = |p|²/2 - Σ cos q_i + (q_1 - q_2)²/2."""
    q, p = y
    spring = q - q[::-1]
    return p, -jnp.sin(q) - spring


def _grid(dt, n_steps, n_saves):
    """Save times on the step grid t = k dt (k = 0, n/n_saves, ..., n), so that saves are
    the symplectic iterates themselves, not interpolations."""
    assert n_steps % n_saves == 0
    return jnp.asarray(np.arange(0, n_steps + 1, n_steps // n_saves) * dt, jnp.float64)


def _fixed(field, y0, ts, solver, dt, max_steps=4096, args=None):
    return _jsolve(
        field,
        y0,
        ts,
        solver=solver,
        adaptive=False,
        dt0=jnp.asarray(dt),
        max_steps=max_steps,
        args=args,
    )


def _scalar_pair(q0, p0):
    return (jnp.asarray(q0, jnp.float64), jnp.asarray(p0, jnp.float64))


# --------------------------------------------------------------------------- registry


def test_registered_by_name_and_fixed_step_only():
    for name, cls, order in (("leapfrog", Leapfrog, 2), ("symplectic-euler", SymplecticEuler, 1)):
        assert name in SOLVERS and name not in ADAPTIVE_SOLVERS
        solver = get_solver(name)
        assert type(solver) is cls and solver.order(None) == order
        assert not supports_adaptive(name) and not supports_adaptive(solver)
    assert type(get_solver("Symplectic_Euler")) is SymplecticEuler
    config = SolveConfig(solver="leapfrog", adaptive=False, dt0=0.01)
    assert config.solver == "leapfrog"


# --------------------------------------------------------------------------- update equations


def _forced(t, y, args):
    """A non-autonomous separable field: q' = p + sin t, p' = -q³ + cos 2t."""
    q, p = y
    return p + jnp.sin(t), -(q**3) + jnp.cos(2 * t)


def _forced_by_hand(method, q, p, h, n):
    G = lambda t, p: p + math.sin(t)
    F = lambda t, q: -(q**3) + math.cos(2 * t)
    for k in range(n):
        t0, t1 = k * h, (k + 1) * h
        if method == "leapfrog":
            p = p + h / 2 * F(t0, q)
            q = q + h * G(t0 + h / 2, p)
            p = p + h / 2 * F(t1, q)
        else:
            p = p + h * F(t0, q)
            q = q + h * G(t0, p)
    return q, p


@pytest.mark.parametrize("solver", ["leapfrog", "symplectic-euler"])
def test_steps_match_the_update_equations(solver):
    # the docstrings' update equations, time arguments included, written out by hand
    dt, n = 0.1, 30
    with jax.enable_x64(True):
        q, p = _fixed(_forced, _scalar_pair(0.8, -0.2), _grid(dt, n, 1), solver, dt)
    np.testing.assert_allclose(
        [q[-1], p[-1]], _forced_by_hand(solver, 0.8, -0.2, dt, n), rtol=0, atol=1e-12
    )


def test_leapfrog_recomputes_the_carried_force_after_a_jump():
    # The carried force F(t0, q0) is reused unless diffrax reports a jump at t0.
    term = diffrax.ODETerm(_forced)
    solver = Leapfrog()
    with jax.enable_x64(True):
        y0 = _scalar_pair(0.8, -0.2)
        t0, t1 = jnp.asarray(0.3), jnp.asarray(0.4)
        fresh = solver.init(term, t0, t1, y0, None)
        stale = jax.tree.map(lambda x: x + 1.0, fresh)
        want = solver.step(term, t0, t1, y0, None, fresh, False)[0]
        after_jump = solver.step(term, t0, t1, y0, None, stale, jnp.asarray(True))[0]
        reused = solver.step(term, t0, t1, y0, None, stale, jnp.asarray(False))[0]
    np.testing.assert_allclose(after_jump, want, rtol=0, atol=1e-15)
    assert abs(float(reused[1] - want[1])) > 1e-3


# --------------------------------------------------------------------------- energy


_PERIODS = 1000


def _oscillator_steps(dt):
    """At least 1,000 periods (2π each), a multiple of 100 steps."""
    return math.ceil(2 * math.pi * _PERIODS / dt / 100) * 100


def _oscillator_grid(dt):
    return _grid(dt, _oscillator_steps(dt), 100)


_MAX_STEPS = 63_000  # one compilation for every long run below


def _oscillator_run(solver, field, y0, dt):
    return _fixed(field, y0, _oscillator_grid(dt), solver, dt, max_steps=_MAX_STEPS)


def test_leapfrog_energy_bounded_over_1000_periods_while_rk4_drifts():
    # Kick-drift-kick on the oscillator conserves H̃ = p²/2 + (1 - h²/4) q²/2 exactly, so
    # |H/H0 - 1| <= (h²/4) / (1 - h²/4) forever. RK4's step is |R(ih)| times a rotation, so
    # its energy decays as |R(ih)|^(2n) with |R(ih)|² = 1 - h⁶/72 + h⁸/576: a secular drift.
    with jax.enable_x64(True):
        for dt in (0.1, 0.5):
            q, p = _oscillator_run("leapfrog", _oscillator, _scalar_pair(1.0, 0.0), dt)
            modified = 0.5 * p**2 + 0.5 * (1 - dt**2 / 4) * q**2
            np.testing.assert_allclose(modified, modified[0], rtol=1e-10, atol=0)
            leapfrog_error = np.abs((q**2 + p**2) - 1.0)
            bound = (dt**2 / 4) / (1 - dt**2 / 4)
            assert leapfrog_error.max() <= bound * (1 + 1e-8)
            assert leapfrog_error.max() >= 0.5 * bound  # the bound is attained, not loose
            if dt == 0.1:
                assert leapfrog_error.max() < 1e-2

            ys = _oscillator_run("rk4", _oscillator_flat, jnp.array([1.0, 0.0]), dt)
            rho = 1 - dt**6 / 72 + dt**8 / 576
            k = np.round(np.asarray(_oscillator_grid(dt)) / dt)  # steps taken at each save
            rk4_error = np.abs(np.sum(np.asarray(ys) ** 2, axis=-1) - 1.0)
            np.testing.assert_allclose(rk4_error[1:], 1 - rho ** k[1:], rtol=1e-6)
            assert np.all(np.diff(rk4_error) > 0)  # monotone: a drift, not an oscillation
            if dt == 0.5:
                assert rk4_error[-1] > 10 * leapfrog_error.max()


def test_pendulum_energy_bounded_over_a_long_run():
    # Near the separatrix (E0 = -cos 2.5 ≈ 0.80 of a barrier at 1), 30,000 steps of h = 0.1
    # (~ 250 periods): leapfrog's energy error stays at its early size; RK4's keeps growing.
    dt, n = 0.1, 30_000
    with jax.enable_x64(True):
        ts = _grid(dt, n, 300)
        q, p = _fixed(_pendulum, _scalar_pair(2.5, 0.0), ts, "leapfrog", dt, max_steps=_MAX_STEPS)
        error = np.abs(np.asarray(_pendulum_energy(q, p) - _pendulum_energy(2.5, 0.0)))
        assert error.max() < 1e-2
        early, late = error[1:31].max(), error[-30:].max()
        assert late < 1.5 * early, (early, late)

        ys = _fixed(_pendulum_flat, jnp.array([2.5, 0.0]), ts, "rk4", dt, max_steps=_MAX_STEPS)
        rk4 = np.abs(np.asarray(_pendulum_energy(ys[:, 0], ys[:, 1]) - _pendulum_energy(2.5, 0)))
        assert rk4[-1] > 5 * rk4[30] > 0  # grows ~ linearly: x 10 from t = T/10 to T


# --------------------------------------------------------------------------- order


@pytest.mark.parametrize("solver, order", [("leapfrog", 2), ("symplectic-euler", 1)])
def test_convergence_order(solver, order):
    # the oscillator from (q, p) = (1, 0.5) at T = 2: q = cos T + 0.5 sin T, p = q'
    t_end = 2.0
    exact = np.array(
        [math.cos(t_end) + 0.5 * math.sin(t_end), -math.sin(t_end) + 0.5 * math.cos(t_end)]
    )
    with jax.enable_x64(True):
        dts = [0.05, 0.025, 0.0125]
        errors = []
        for dt in dts:
            # 101 saves and the long runs' max_steps: the energy test's compilation is reused
            ts = jnp.linspace(0.0, t_end, 101)
            y0 = _scalar_pair(1.0, 0.5)
            q, p = _fixed(_oscillator, y0, ts, solver, dt, max_steps=_MAX_STEPS)
            errors.append(np.hypot(float(q[-1]) - exact[0], float(p[-1]) - exact[1]))
    slope = np.polyfit(np.log(dts), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.1, (errors, slope)


# --------------------------------------------------------------------------- geometry


_D, _DT, _N = 2, 0.1, 100  # the coupled pendulums, 100 steps of 0.1


def _coupled_flow(z, method):
    """The discrete flow z0 = [q0, p0] -> z(T) of the coupled pendulums after _N steps."""
    ts = _grid(_DT, _N, 1)
    if method == "rk4":
        field = lambda t, y, a: jnp.concatenate(_coupled(t, (y[:_D], y[_D:]), a))
        return _fixed(field, z, ts, "rk4", _DT)[-1]
    q, p = _fixed(_coupled, (z[:_D], z[_D:]), ts, method, _DT)
    return jnp.concatenate([q[-1], p[-1]])


_coupled_flows = jax.jit(jax.vmap(_coupled_flow, in_axes=(0, None)), static_argnums=1)


@pytest.mark.parametrize(
    "method, symplectic, reversible",
    [("leapfrog", True, True), ("symplectic-euler", True, False), ("rk4", False, False)],
)
def test_flow_map_symplectic_and_time_reversible(method, symplectic, reversible):
    # Symplectic: the Jacobian M of the discrete flow (central differences over a batch of
    # initial states z0 ± ε e_j; error ~1e-10 in float64) satisfies MᵀJM = J.
    # Reversible (leapfrog is symmetric): from the end of every run, flip p and run again:
    # the flow returns to (q0, -p0).
    eps = 1e-5
    eye, zero = np.eye(_D), np.zeros((_D, _D))
    J = np.block([[zero, eye], [-eye, zero]])
    flip = jnp.concatenate([jnp.ones(_D), -jnp.ones(_D)])
    with jax.enable_x64(True):
        z0 = jnp.array([1.2, -0.4, 0.3, 0.9])
        shifts = eps * np.eye(2 * _D)
        batch = jnp.concatenate([z0 + shifts, z0 - shifts])
        z1 = _coupled_flows(batch, method)
        M = np.asarray((z1[: 2 * _D] - z1[2 * _D :]) / (2 * eps)).T  # M_ij = ∂z1_i/∂z0_j
        assert not np.allclose(M, np.eye(2 * _D), atol=0.1)  # a real, non-trivial map
        defect = np.abs(M.T @ J @ M - J).max()
        assert (defect < 1e-8) if symplectic else (defect > 1e-6), defect
        back = _coupled_flows(z1 * flip, method) * flip
        gap = float(jnp.abs(back - batch).max())
        assert (gap < 1e-11) if reversible else (gap > 1e-6), gap


# --------------------------------------------------------------------------- gradients


def _loss(y0, k):
    ts = jnp.array([0.0, 0.7, 1.5])
    q, p = solve(
        _pendulum, y0, ts, args=k, solver="leapfrog", adaptive=False, dt0=0.01, max_steps=200
    )
    return jnp.sum(q**2) + jnp.sum(jnp.sin(p))


def test_leapfrog_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        y0 = (jnp.array([1.0, 0.5]), jnp.array([0.0, 0.3]))
        k = jnp.asarray(1.3)
        loss = jax.jit(_loss)
        (g_q, g_p), g_k = jax.jit(jax.grad(_loss, argnums=(0, 1)))(y0, k)
        eps = 1e-6

        def central(shift):
            return (float(loss(*shift(eps))) - float(loss(*shift(-eps)))) / (2 * eps)

        for i in range(2):
            e = jnp.zeros(2).at[i].set(1.0)
            fd_q = central(lambda h, e=e: ((y0[0] + h * e, y0[1]), k))
            fd_p = central(lambda h, e=e: ((y0[0], y0[1] + h * e), k))
            np.testing.assert_allclose(g_q[i], fd_q, rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(g_p[i], fd_p, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(g_k, central(lambda h: (y0, k + h)), rtol=1e-6, atol=1e-9)
        assert abs(float(g_k)) > 1e-3


# --------------------------------------------------------------------------- flat states


def test_hamiltonian_field_through_partitioned_field():
    # HamiltonianField of a separable H on y = [q, p] gives exactly the tuple-field solve
    # (here through a SolveConfig naming the solver).
    hamiltonian = lambda y: 0.5 * y[1] ** 2 - jnp.cos(y[0])
    field = PartitionedField(HamiltonianField(hamiltonian, 1))
    dt, n = 0.1, 2000
    with jax.enable_x64(True):
        ts = _grid(dt, n, 20)
        y0 = jnp.array([2.0, 0.0])
        ys = PartitionedField.join(_fixed(field, PartitionedField.split(y0), ts, "leapfrog", dt))
        assert ys.shape == (21, 2)
        config = SolveConfig(solver="leapfrog", adaptive=False, dt0=dt)
        q, p = config.solve(_pendulum, (y0[:1], y0[1:]), ts)
        np.testing.assert_allclose(ys, jnp.concatenate([q, p], axis=-1), rtol=0, atol=1e-12)
        energy = jax.vmap(hamiltonian)(ys)
        assert np.abs(energy - energy[0]).max() < 1e-2
    q, p = PartitionedField.split(jnp.arange(12.0).reshape(3, 4))
    assert q.shape == p.shape == (3, 2) and float(p[1, 0]) == 6.0
    np.testing.assert_array_equal(PartitionedField.join((q, p)), jnp.arange(12.0).reshape(3, 4))


# --------------------------------------------------------------------------- refused input


def test_bad_input_is_refused_with_the_expected_structure():
    y0 = (jnp.array([1.0]), jnp.array([0.0]))
    ts = jnp.array([0.0, 1.0])
    for name in ("leapfrog", "symplectic-euler"):
        with pytest.raises(ValueError, match=f"solver '{name}' has no embedded error estimate"):
            solve(_pendulum, y0, ts, solver=name, adaptive=True)
        with pytest.raises(ValueError, match="no embedded error estimate"):
            SolveConfig(solver=name, adaptive=True)
        # a flat state [q, p]
        with pytest.raises(ValueError, match=rf"solver '{name}' .*y = \(q, p\).*shape \(2,\)"):
            solve(_pendulum_flat, jnp.array([1.0, 0.0]), ts, solver=name, adaptive=False, dt0=0.1)
        # three parts
        three = lambda t, y, a: (y[1], -y[0], y[2])
        with pytest.raises(ValueError, match=rf"solver '{name}' .*tuple of 3 item"):
            solve(three, y0 + (jnp.array([0.0]),), ts, solver=name, adaptive=False, dt0=0.1)

    # backsolve's augmented adjoint state is not (q, p)
    def loss(y0):
        q, p = solve(
            _pendulum, y0, ts, solver="leapfrog", adaptive=False, dt0=0.1, adjoint="backsolve"
        )
        return jnp.sum(q)

    with pytest.raises(ValueError, match="'backsolve' integrates an augmented state"):
        jax.grad(loss)(y0)

    with pytest.raises(TypeError, match="vector_field"):
        PartitionedField(3)
    with pytest.raises(ValueError, match="even last axis"):
        PartitionedField.split(jnp.zeros(3))
    with pytest.raises(ValueError, match=r"one shape \[..., d\]"):
        PartitionedField.join((jnp.zeros(2), jnp.zeros(3)))
    with pytest.raises(ValueError, match="tuple"):
        PartitionedField(_pendulum_flat)(0.0, jnp.zeros(2))
