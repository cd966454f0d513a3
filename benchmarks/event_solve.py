"""Solving to an event, and its gradient: diffdyn's `solve_to_event` / `BouncingBall`
(`HybridODE`) against torchdiffeq's ``odeint_event`` on the same falling and bouncing ball.

The system: a ball of height x and velocity v, ``x' = v, v' = -g`` (g = 9.81), dropped at
rest from ``--h0``; an impact is a downward zero crossing of x, after which
``v -> -e v`` (restitution e = ``--e``). Float64 and dopri5 on both sides, with the same
``--rtol``/``--atol`` (diffdyn locates the event by a safeguarded Newton iteration on the
dense output, to atol + rtol |t|; torchdiffeq by bisection, to atol). Gradients: diffdyn
differentiates through diffrax (RecursiveCheckpointAdjoint) with the implicit-function rule
at each event time; torchdiffeq through its steps with its own implicit-function rerouting of
the event time's gradient.

Cases:

- ``fall``: solve to the first impact; forward (event time and state) and forward +
  backward of ``L = t* + v(t*)`` with respect to h0 (closed form
  ``(1 - g) / sqrt(2 g h0)``).
- ``bounce``: ``--bounces`` (k) impacts, then on to ``t1`` (set between impacts k and k + 1);
  forward, and forward + backward of the final height ``x(t1)`` with respect to e and h0
  (closed forms from the impact times ``tau_k = tau_1 + (2 s / g) sum_{i<k} e^i``,
  ``s = sqrt(2 g h0)``). diffdyn: one `BouncingBall` call (a scan over k + 1 flow segments);
  torch: k calls of ``odeint_event``, each followed by the jump, then ``odeint`` to t1.
  torchdiffeq takes any sign change of the event function from the segment's start as the
  event and stops at once on an exact zero, and the height just after an impact is zero up
  to the location tolerance, of either sign; so its event function is x while falling and
  ``|x| + 1`` while rising (diffdyn's ``direction="down"`` does the same job).
- ``bounce-batch``: ``--batch`` balls from heights h0 to 1.5 h0, each with its own t1 (k
  impacts each), forward + backward of the sum of final heights. diffdyn vmaps the
  `BouncingBall` call; torch loops over the balls, since ``odeint_event`` stops a batched
  state at the first event of any of its members.

Rows: best time over ``--repeats`` calls (after a warm-up; diffdyn's compile time separately
as ``compile_seconds``), ``check`` rows with the absolute differences of the event times
(diffdyn vs torch, each vs the closed form) and of the gradients, and ``ratio`` rows, torch
time / diffdyn time (> 1: diffdyn faster). A latent SDE against torchsde is not included:
a matching torch latent SDE (context encoder, posterior drift, KL state, Brownian tree)
would be a model of its own, not a row of this script. ``DIFFDYN_BENCH_DEVICE=gpu`` runs JAX
on the GPU and torch on CUDA (a scalar problem: expect launch overheads to dominate there).
Torch runs on ``--torch-threads`` CPU threads (1 by default; 0: torch's default).

Usage::

    python benchmarks/event_solve.py [--h0 10] [--e 0.8] [--bounces 5] [--batch 16]
        [--rtol 1e-8] [--atol 1e-8] [--repeats 20] [--torch-threads 1] [--no-torch]
"""

from __future__ import annotations

import argparse
import math
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
from _bench import best_of, check_jax, emit, torch_setup, torch_sync

from diffdyn.common import SolveConfig
from diffdyn.common.neural_de import BouncingBall, solve_to_event

BENCH = "event_solve"
G = 9.81


# ---------------------------------------------------------------------- closed forms
def impact_times(e, h0, k):
    """The first k impact times of the ball dropped at rest from h0 (jax, differentiable)."""
    s = jnp.sqrt(2 * G * h0)
    powers = e ** jnp.arange(k)  # e^0 .. e^{k-1}
    return s / G + (2 * s / G) * (jnp.cumsum(powers) - 1.0)


def height_after(e, h0, k, t1):
    """x(t1) with t1 between impacts k and k + 1."""
    s = jnp.sqrt(2 * G * h0)
    dt = t1 - impact_times(e, h0, k)[-1]
    return e**k * s * dt - 0.5 * G * dt**2


def bounce_t1(e, h0, k):
    """A time 60% of the way through the flight after impact k."""
    s = math.sqrt(2 * G * h0)
    return float(impact_times(e, h0, k)[-1]) + 0.6 * 2 * e**k * s / G


# ---------------------------------------------------------------------- JAX side
def jax_functions(args):
    solve = SolveConfig(solver="dopri5", rtol=args.rtol, atol=args.atol, max_steps=256)
    k = args.bounces
    t1 = bounce_t1(args.e, args.h0, k)
    ball = BouncingBall(args.e, G, 1, solve=solve)
    t_max = 2 * math.sqrt(2 * args.h0 / G) + 1.0

    def fall(h0):
        y0 = jnp.stack([h0, jnp.zeros_like(h0)])
        sol = solve_to_event(
            ball.vector_field, y0, 0.0, t_max, ball.height, direction="down", solve=solve
        )
        return sol.time, sol.state

    def fall_loss(h0):
        time, state = fall(h0)
        return time + state[1]

    def bounce(e, h0, t1=t1):
        out = BouncingBall(e, G, k, solve=solve)(jnp.stack([h0, jnp.zeros_like(h0)]), 0.0, t1)
        return out.y_end[0], out.event_times

    def bounce_height(e, h0, t1=t1):
        return bounce(e, h0, t1)[0]

    def batch_loss(e, h0s, t1s):
        return jnp.sum(jax.vmap(bounce_height, in_axes=(None, 0, 0))(e, h0s, t1s))

    return {
        "fall": jax.jit(fall),
        "fall_grad": jax.jit(jax.value_and_grad(fall_loss)),
        "bounce": jax.jit(bounce),
        "bounce_grad": jax.jit(jax.value_and_grad(bounce_height, argnums=(0, 1))),
        "batch_grad": jax.jit(jax.value_and_grad(batch_loss, argnums=(0, 1))),
        "t1": t1,
    }


def jax_time(fn, inputs, repeats):
    """(best seconds, compile + first call seconds, output)."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*inputs))
    first = time.perf_counter() - t0
    sec = best_of(lambda: jax.block_until_ready(fn(*inputs)), repeats)
    return sec, first, out


# ---------------------------------------------------------------------- torch side
def torch_functions(args, dev):
    import torch
    from torchdiffeq import odeint, odeint_event

    f64 = torch.float64
    kw = dict(method="dopri5", rtol=args.rtol, atol=args.atol)
    g = torch.tensor([0.0, -G], dtype=f64, device=dev)
    zero = torch.zeros((), dtype=f64, device=dev)

    def field(t, y):
        return torch.stack([y[1], g[1].expand_as(y[1])])

    def height(t, y):
        return y[0]

    def falling_height(t, y):
        # x while falling, |x| + 1 while rising (see the module docstring)
        return torch.where(y[1] < 0, y[0], y[0].abs() + 1.0)

    def fall(h0):
        y0 = torch.stack([h0, torch.zeros_like(h0)])
        t, ys = odeint_event(field, y0, zero, event_fn=height, **kw)
        return t, ys[-1]

    def bounce(e, h0, t1):
        y = torch.stack([h0, torch.zeros_like(h0)])
        t, times = zero, []
        for _ in range(args.bounces):
            t, ys = odeint_event(field, y, t, event_fn=falling_height, **kw)
            before = ys[-1]
            y = torch.stack([before[0], -e * before[1]])
            times.append(t)
        end = odeint(field, y, torch.stack([t, t1]), **kw)[-1]
        return end[0], torch.stack(times)

    return {"fall": fall, "bounce": bounce}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--h0", type=float, default=10.0, help="drop height")
    p.add_argument("--e", type=float, default=0.8, help="restitution")
    p.add_argument("--bounces", type=int, default=5, help="k, impacts before t1")
    p.add_argument("--batch", type=int, default=16, help="balls in the batched case")
    p.add_argument("--rtol", type=float, default=1e-8)
    p.add_argument("--atol", type=float, default=1e-8)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument(
        "--torch-threads", type=int, default=1, help="torch CPU threads (0: torch's default)"
    )
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()
    emit(benchmark="device", impl="diffdyn", device_kind=check_jax())
    k = args.bounces
    tol = dict(rtol=args.rtol, atol=args.atol)
    jf = jax_functions(args)
    t1 = jf["t1"]
    h0 = jnp.asarray(args.h0)
    e = jnp.asarray(args.e)
    h0s = args.h0 * (1.0 + 0.5 * jnp.arange(args.batch) / args.batch)
    t1s = jnp.asarray([bounce_t1(args.e, float(h), k) for h in h0s])  # k impacts for each
    rep_batch = max(1, args.repeats // 10)

    # closed forms
    t_fall = math.sqrt(2 * args.h0 / G)
    dfall = (1 - G) / math.sqrt(2 * G * args.h0)
    taus = np.asarray(impact_times(e, h0, k))
    x_end = float(height_after(e, h0, k, t1))
    dx_de, dx_dh0 = (float(d) for d in jax.grad(height_after, argnums=(0, 1))(e, h0, k, t1))
    dbatch = jax.grad(
        lambda e, h: jnp.sum(jax.vmap(height_after, in_axes=(None, 0, None, 0))(e, h, k, t1s)),
        argnums=(0, 1),
    )(e, h0s)

    cases = {
        "fall": (jf["fall"], (h0,), args.repeats),
        "fall fwd+bwd": (jf["fall_grad"], (h0,), args.repeats),
        "bounce": (jf["bounce"], (e, h0), args.repeats),
        "bounce fwd+bwd": (jf["bounce_grad"], (e, h0), args.repeats),
        "bounce-batch fwd+bwd": (jf["batch_grad"], (e, h0s, t1s), rep_batch),
    }
    jax_sec, jax_out = {}, {}
    for name, (fn, inputs, repeats) in cases.items():
        sec, first, out = jax_time(fn, inputs, repeats)
        jax_sec[name], jax_out[name] = sec, out
        emit(
            benchmark=BENCH,
            case=name,
            impl="diffdyn-dopri5",
            seconds=sec,
            compile_seconds=first,
            bounces=k,
            batch=args.batch if "batch" in name else 1,
            **tol,
        )
    jt_fall = float(jax_out["fall"][0])
    jt_bounce = np.asarray(jax_out["bounce"][1])[:k]
    _, (jg_e, jg_h0) = jax_out["bounce fwd+bwd"]
    _, (jb_e, jb_h0) = jax_out["bounce-batch fwd+bwd"]
    checks = {
        "fall event time vs closed form": abs(jt_fall - t_fall),
        "fall dL/dh0 vs closed form": abs(float(jax_out["fall fwd+bwd"][1]) - dfall),
        "bounce event times vs closed form (max)": float(np.abs(jt_bounce - taus).max()),
        "bounce x(t1) vs closed form": abs(float(jax_out["bounce"][0]) - x_end),
        "bounce dx/de vs closed form": abs(float(jg_e) - dx_de),
        "bounce dx/dh0 vs closed form": abs(float(jg_h0) - dx_dh0),
        "batch grad vs closed form (max)": max(
            abs(float(jb_e) - float(dbatch[0])),
            float(jnp.abs(jb_h0 - dbatch[1]).max()),
        ),
    }
    for what, diff in checks.items():
        emit(benchmark=BENCH, impl="check diffdyn", what=what, abs_diff=diff, **tol)
    if args.no_torch:
        return

    import torch

    dev = torch_setup()
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    tf = torch_functions(args, dev)
    f64 = torch.float64
    as_t = lambda x, grad=False: torch.tensor(
        np.asarray(x), dtype=f64, device=dev, requires_grad=grad
    )
    tt1, tt1s = as_t(t1), as_t(t1s)

    def t_fall_fwd():
        with torch.no_grad():
            out = tf["fall"](as_t(args.h0))
        torch_sync()
        return out

    def t_fall_grad():
        h = as_t(args.h0, True)
        t, state = tf["fall"](h)
        (t + state[1]).backward()
        torch_sync()
        return h.grad

    def t_bounce_fwd():
        with torch.no_grad():
            out = tf["bounce"](as_t(args.e), as_t(args.h0), tt1)
        torch_sync()
        return out

    def t_bounce_grad():
        ee, h = as_t(args.e, True), as_t(args.h0, True)
        x, _ = tf["bounce"](ee, h, tt1)
        x.backward()
        torch_sync()
        return ee.grad, h.grad

    def t_batch_grad():
        ee, hs = as_t(args.e, True), as_t(h0s, True)
        total = sum(tf["bounce"](ee, hs[i], tt1s[i])[0] for i in range(args.batch))
        total.backward()
        torch_sync()
        return ee.grad, hs.grad

    torch_cases = {
        "fall": (t_fall_fwd, args.repeats),
        "fall fwd+bwd": (t_fall_grad, args.repeats),
        "bounce": (t_bounce_fwd, args.repeats),
        "bounce fwd+bwd": (t_bounce_grad, args.repeats),
        "bounce-batch fwd+bwd": (t_batch_grad, rep_batch),
    }
    for name, (fn, repeats) in torch_cases.items():
        sec = best_of(fn, repeats)
        emit(
            benchmark=BENCH,
            case=name,
            impl="torchdiffeq-dopri5",
            seconds=sec,
            bounces=k,
            batch=args.batch if "batch" in name else 1,
            torch_threads=torch.get_num_threads(),
            **tol,
        )
        emit(
            benchmark=BENCH,
            case=name,
            impl="ratio torchdiffeq/diffdyn-dopri5",
            ratio=sec / jax_sec[name],
            **tol,
        )

    tt_fall = float(t_fall_fwd()[0])
    tx, tt_bounce = (np.asarray(a.cpu()) for a in t_bounce_fwd())
    tg_e, tg_h0 = (float(g) for g in t_bounce_grad())
    tb_e, tb_h0 = t_batch_grad()
    checks = {
        "fall event time diffdyn vs torch": abs(jt_fall - tt_fall),
        "fall event time torch vs closed form": abs(tt_fall - t_fall),
        "fall dL/dh0 diffdyn vs torch": abs(
            float(jax_out["fall fwd+bwd"][1]) - float(t_fall_grad())
        ),
        "bounce event times diffdyn vs torch (max)": float(np.abs(jt_bounce - tt_bounce).max()),
        "bounce event times torch vs closed form (max)": float(np.abs(tt_bounce - taus).max()),
        "bounce x(t1) diffdyn vs torch": abs(float(jax_out["bounce"][0]) - float(tx)),
        "bounce dx/de diffdyn vs torch": abs(float(jg_e) - tg_e),
        "bounce dx/dh0 diffdyn vs torch": abs(float(jg_h0) - tg_h0),
        "bounce dx/de torch vs closed form": abs(tg_e - dx_de),
        "bounce dx/dh0 torch vs closed form": abs(tg_h0 - dx_dh0),
        "batch grad diffdyn vs torch (max)": max(
            abs(float(jb_e) - float(tb_e)),
            float(np.abs(np.asarray(jb_h0) - tb_h0.cpu().numpy()).max()),
        ),
    }
    for what, diff in checks.items():
        emit(benchmark=BENCH, impl="check torch", what=what, abs_diff=diff, **tol)


if __name__ == "__main__":
    main()
