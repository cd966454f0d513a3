"""One training epoch of a latent ODE on irregularly sampled oscillators: diffdyn's `LatentODE`
(JAX, diffrax) against the same model written here in PyTorch with torchdiffeq.

The model (Rubanova, Chen & Duvenaud, 2019), identical on both sides: an ODE-RNN encoder run
backwards over the observations (hidden size ``--hidden``; field MLP ``H -> width -> H``, tanh;
a GRU cell fed ``[mask * x, mask]`` with equinox's parameterisation, i.e. one input bias of
size 3H and one bias of size H inside the reset product; a linear readout to the mean and
log-variance of q(z0)), a reparameterised z0, a latent field MLP ``L -> width -> L`` (tanh),
a linear decoder and a Gaussian likelihood with fixed noise 0.1; the loss is the negative
ELBO (one posterior sample) averaged over the batch, minimised by Adam (learning rate 1e-2).
The torch model starts from a copy of diffdyn's initial parameters, so both sides train
from the same point; both parameter counts are reported.

Solves: as in diffdyn, each interval between consecutive observation times is one solve
on the unit interval of ``dh/ds = Delta_b f(h)`` (``Delta_b`` per sequence, 0 for padded
steps), 2T + 1 solves per sequence (T encoder intervals, the encoder's last step on to t0,
T decoder intervals). diffdyn vmaps one sequence's solve over the batch (each sequence its
own adaptive steps); torchdiffeq solves the batch as one state (one step size for all).
Settings: ``dopri5`` adaptive with ``--rtol``/``--atol`` on both sides (diffrax
RecursiveCheckpointAdjoint against autograd through torchdiffeq's steps: both the exact
gradient of the discrete solve), and ``rk4`` fixed with ``--dt`` (a fraction of each
interval; diffrax's classic RK4 with the direct adjoint, torchdiffeq's ``rk4``, its 3/8-rule
variant, also 4 evaluations a step). Float32 on both sides.

Rows: per solver and side, the best steady-state epoch over ``--epochs`` (after one untimed
warm-up epoch; diffdyn's compilation, with its first step, is reported separately as
``compile_seconds``), the loss, the parameter count; a ``check`` row with both sides' loss
on the first batch at the shared initial parameters and the same z0 noise (they agree to
the solver tolerance; exactly up to rounding for rk4 only if both used the same RK4
tableau, which they do not); and ``ratio`` rows, torch time / diffdyn time (> 1: diffdyn
faster). ``DIFFDYN_BENCH_DEVICE=gpu`` runs JAX on the GPU and torch on CUDA.

Torch runs on ``--torch-threads`` CPU threads, 1 by default: at these sizes (a [32, 16]
state) a second thread brings nothing, and on a loaded 2-core machine torch's default of
two threads made one training step 10-30x slower (measured at load average ~4); pass 0 to
keep torch's default.

Usage::

    python benchmarks/latent_ode_epoch.py [--n 256] [--batch 32] [--points 16]
        [--min-points 10] [--latent 4] [--hidden 16] [--width 32] [--rtol 1e-3]
        [--atol 1e-4] [--dt 0.25] [--epochs 2] [--solvers dopri5 rk4] [--torch-threads 1]
        [--no-torch]
"""

from __future__ import annotations

import argparse
import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from _bench import best_of, check_jax, emit, torch_setup, torch_sync

from diffdyn.common import SolveConfig
from diffdyn.common.neural_de import LatentODE, irregular_oscillators

BENCH = "latent_ode_epoch"


def solve_config(solver, args):
    if solver == "dopri5":
        return SolveConfig(solver="dopri5", rtol=args.rtol, atol=args.atol, max_steps=256)
    steps = round(1 / args.dt)
    return SolveConfig(solver="rk4", adaptive=False, dt0=args.dt, adjoint="direct", max_steps=steps)


def batches(args):
    """The data set cut into ``[n_batches, B, ...]`` arrays (fixed order on both sides)."""
    ts, xs, mask = irregular_oscillators(
        args.n,
        key=jax.random.key(0),
        max_points=args.points,
        min_points=args.min_points,
        noise=0.05,
    )
    nb = args.n // args.batch
    cut = lambda a: np.asarray(a)[: nb * args.batch].reshape(nb, args.batch, *a.shape[1:])
    return cut(ts), cut(xs), cut(mask).astype(np.float32)


def n_params(model):
    return sum(x.size for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array)))


# ---------------------------------------------------------------------- JAX side
def jax_train(model, data, args):
    """(best epoch seconds, compile seconds, last loss, model)."""
    opt = optax.adam(args.lr)
    ts, xs, mask = (jnp.asarray(a) for a in data)

    @eqx.filter_jit
    def step(model, opt_state, t, x, m, key):
        def loss_fn(model):
            keys = jax.random.split(key, t.shape[0])
            one = lambda t, x, m, k: model.negative_elbo(t, x, m, key=k)
            return jnp.mean(jax.vmap(one)(t, x, m, keys))

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = opt.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state, loss

    state = {"model": model, "opt": opt.init(eqx.filter(model, eqx.is_inexact_array))}
    state["key"] = jax.random.key(1)

    def one_step(i):
        state["key"], k = jax.random.split(state["key"])
        state["model"], state["opt"], state["loss"] = step(
            state["model"], state["opt"], ts[i], xs[i], mask[i], k
        )

    t0 = time.perf_counter()
    one_step(0)
    jax.block_until_ready(state["loss"])
    compile_s = time.perf_counter() - t0

    def epoch():
        for i in range(ts.shape[0]):
            one_step(i)
        jax.block_until_ready(state["loss"])

    sec = best_of(epoch, args.epochs, warmup=1)
    return sec, compile_s, float(state["loss"])


# ---------------------------------------------------------------------- torch side
def torch_model(jmodel, dev):
    """The same latent ODE in PyTorch, parameters copied from diffdyn's ``jmodel``."""
    import torch
    import torchdiffeq

    nn = torch.nn

    def tensor(a):
        return torch.tensor(np.asarray(a), dtype=torch.float32, device=dev)

    def linear(layer):
        out = nn.Linear(layer.in_features, layer.out_features)
        with torch.no_grad():
            out.weight.copy_(tensor(layer.weight))
            out.bias.copy_(tensor(layer.bias))
        return out

    def mlp(m):
        layers = []
        for lin in m.layers:
            layers += [linear(lin), nn.Tanh()]
        return nn.Sequential(*layers[:-1])

    class GRUCell(nn.Module):
        """equinox's GRU cell: r, z from one input bias; the candidate's extra bias inside
        the reset product (3H + H biases, as in diffdyn)."""

        def __init__(self, cell):
            super().__init__()
            self.weight_ih = nn.Parameter(tensor(cell.weight_ih))
            self.weight_hh = nn.Parameter(tensor(cell.weight_hh))
            self.bias = nn.Parameter(tensor(cell.bias))
            self.bias_n = nn.Parameter(tensor(cell.bias_n))

        def forward(self, x, h):
            ir, iz, inn = (x @ self.weight_ih.T + self.bias).chunk(3, -1)
            hr, hz, hn = (h @ self.weight_hh.T).chunk(3, -1)
            r = torch.sigmoid(ir + hr)
            z = torch.sigmoid(iz + hz)
            new = torch.tanh(inn + r * (hn + self.bias_n))
            return new + z * (h - new)

    class TorchLatentODE(nn.Module):
        def __init__(self):
            super().__init__()
            enc = jmodel.encoder
            self.enc_field = mlp(enc.field)
            self.cell = GRUCell(enc.cell)
            self.enc_readout = linear(enc.readout)
            self.dynamics = mlp(jmodel.dynamics)
            self.decoder = linear(jmodel.decoder_net)
            self.hidden = jmodel.hidden_dim
            self.obs_std = jmodel.obs_std
            self.solve_kw = {}

        def flow(self, field, h, dt):
            """h(t + dt) as one solve of dh/ds = dt f(h) over s in [0, 1] (dt per row)."""
            dt = dt[:, None]
            s = torch.tensor([0.0, 1.0], device=h.device)
            return torchdiffeq.odeint(lambda _, y: dt * field(y), h, s, **self.solve_kw)[-1]

        def forward(self, ts, xs, mask, eps):
            """Batch mean of the negative ELBO: ``ts [B, T]``, ``xs, mask [B, T, X]``,
            ``eps [B, L]`` the z0 noise."""
            b, n = ts.shape
            observed = mask.amax(-1) > 0
            ts = torch.where(observed, ts, 0.0)
            xs = torch.where(mask > 0, xs, 0.0)
            seen_i = torch.arange(n, device=ts.device)
            first = torch.where(observed, seen_i, n).amin(-1).clamp(max=n - 1)
            last = torch.where(observed, seen_i, -1).amax(-1).clamp(min=0)
            t0 = ts.gather(1, first[:, None])[:, 0]
            # encoder: from the last observation back to the first, then on to t0
            h = torch.zeros(b, self.hidden, device=ts.device)
            t_prev = ts.gather(1, last[:, None])[:, 0]
            for i in reversed(range(n)):
                seen = observed[:, i]
                h = self.flow(self.enc_field, h, torch.where(seen, ts[:, i] - t_prev, 0.0))
                new = self.cell(torch.cat([xs[:, i], mask[:, i]], -1), h)
                h = torch.where(seen[:, None], new, h)
                t_prev = torch.where(seen, ts[:, i], t_prev)
            h = self.flow(self.enc_field, h, t0 - t_prev)
            mean, logvar = self.enc_readout(h).chunk(2, -1)
            # decoder: the latent path from z0 at t0
            z = mean + torch.exp(0.5 * logvar) * eps
            t_prev, zs = t0, []
            for i in range(n):
                seen = observed[:, i]
                z = self.flow(self.dynamics, z, torch.where(seen, ts[:, i] - t_prev, 0.0))
                zs.append(z)
                t_prev = torch.where(seen, ts[:, i], t_prev)
            r = (xs - self.decoder(torch.stack(zs, 1))) / self.obs_std
            logp = -0.5 * r**2 - math.log(self.obs_std) - 0.5 * math.log(2 * math.pi)
            nll = -(mask * logp).sum((1, 2))
            kl = 0.5 * (torch.exp(logvar) + mean**2 - 1.0 - logvar).sum(-1)
            return (nll + kl).mean()

    return TorchLatentODE().to(dev)


def torch_solve_kw(solver, args):
    if solver == "dopri5":
        return dict(method="dopri5", rtol=args.rtol, atol=args.atol)
    return dict(method="rk4", options=dict(step_size=args.dt))


def torch_train(model, data, args, dev):
    import torch

    ts, xs, mask = (torch.tensor(a, dtype=torch.float32, device=dev) for a in data)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator(device=dev).manual_seed(1)
    out = {}

    def one_step(i):
        opt.zero_grad()
        eps = torch.randn(ts.shape[1], args.latent, generator=gen, device=dev, dtype=torch.float32)
        loss = model(ts[i], xs[i], mask[i], eps)
        loss.backward()
        opt.step()
        out["loss"] = loss

    # one first step, as diffdyn's compiling one, so both sides take the same steps
    t0 = time.perf_counter()
    one_step(0)
    torch_sync()
    first = time.perf_counter() - t0

    def epoch():
        for i in range(ts.shape[0]):
            one_step(i)
        torch_sync()

    sec = best_of(epoch, args.epochs, warmup=1)
    return sec, first, out["loss"].item()


def init_check(jmodel, tmodel, data):
    """Both sides' loss on the first batch at the shared initial parameters, same z0 noise."""
    import torch

    t, x, m = (a[0] for a in data)
    keys = jax.random.split(jax.random.key(7), t.shape[0])
    jloss = float(
        jnp.mean(jax.vmap(lambda t, x, m, k: jmodel.negative_elbo(t, x, m, key=k))(t, x, m, keys))
    )
    # negative_elbo draws z0's noise from split(key, samples)[0]
    eps = jax.vmap(lambda k: jax.random.normal(jax.random.split(k, 1)[0], (jmodel.latent_dim,)))(
        keys
    )
    dev = next(tmodel.parameters()).device
    as_t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32, device=dev)
    with torch.no_grad():
        tloss = tmodel(as_t(t), as_t(x), as_t(m), as_t(eps)).item()
    return jloss, tloss


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256, help="sequences per epoch")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--points", type=int, default=16, help="observations per sequence (max)")
    p.add_argument("--min-points", type=int, default=10, help="fewest observations (padding)")
    p.add_argument("--latent", type=int, default=4)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--rtol", type=float, default=1e-3)
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--dt", type=float, default=0.25, help="rk4 step, fraction of an interval")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs (best is reported)")
    p.add_argument("--solvers", nargs="+", choices=["dopri5", "rk4"], default=["dopri5", "rk4"])
    p.add_argument(
        "--torch-threads", type=int, default=1, help="torch CPU threads (0: torch's default)"
    )
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()
    emit(benchmark="device", impl="diffdyn", device_kind=check_jax())
    data = batches(args)
    sizes = dict(
        n=args.n,
        batch=args.batch,
        points=args.points,
        min_points=args.min_points,
        latent=args.latent,
        hidden=args.hidden,
        width=args.width,
    )
    if not args.no_torch:
        import torch

        dev = torch_setup()
        if args.torch_threads > 0:
            torch.set_num_threads(args.torch_threads)
        threads = torch.get_num_threads()
    for solver in args.solvers:
        tol = dict(rtol=args.rtol, atol=args.atol) if solver == "dopri5" else dict(dt=args.dt)
        model = LatentODE(
            2,
            args.latent,
            hidden_dim=args.hidden,
            width=args.width,
            depth=1,
            solve=solve_config(solver, args),
            key=jax.random.key(2),
        )
        if not args.no_torch:
            tmodel = torch_model(model, dev)
            tmodel.solve_kw = torch_solve_kw(solver, args)
            jl, tl = init_check(model, tmodel, data)
            emit(
                benchmark=BENCH,
                impl=f"check diffdyn-{solver} vs torchdiffeq-{solver}",
                loss_diffdyn=jl,
                loss_torch=tl,
                abs_diff=abs(jl - tl),
                **sizes,
                **tol,
            )
        sec, comp, loss = jax_train(model, data, args)
        emit(
            benchmark=BENCH,
            impl=f"diffdyn-{solver}",
            seconds=sec,
            compile_seconds=comp,
            loss=loss,
            params=n_params(model),
            **sizes,
            **tol,
        )
        if args.no_torch:
            continue
        tsec, tfirst, tloss = torch_train(tmodel, data, args, dev)
        emit(
            benchmark=BENCH,
            impl=f"torchdiffeq-{solver}",
            seconds=tsec,
            first_step_seconds=tfirst,
            loss=tloss,
            params=sum(p.numel() for p in tmodel.parameters()),
            torch_threads=threads,
            **sizes,
            **tol,
        )
        emit(
            benchmark=BENCH,
            impl=f"ratio torchdiffeq/diffdyn-{solver}",
            ratio=tsec / sec,
            **sizes,
            **tol,
        )


if __name__ == "__main__":
    main()
