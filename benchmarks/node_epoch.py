"""One training epoch of a neural ODE classifier (moons) and of a CNF (2-D density): diffdyn
(JAX, diffrax) against torchdiffeq (PyTorch) with the same model, data, solver order,
tolerances and optimiser.

Both sides differentiate through the solver (diffrax RecursiveCheckpointAdjoint; torchdiffeq
``odeint`` with autograd). torchdiffeq has no tsit5, so torch runs dopri5; diffdyn is timed
with tsit5 (the benchmark's main setting) and with dopri5 (like for like). Epoch times exclude JAX
compilation, which is printed separately. torchdyn itself is not used (it pins old
pytorch-lightning); its NeuralODE calls the same kind of adaptive RK loop as torchdiffeq.

Prints one JSON object per line. Usage::

    python benchmarks/node_epoch.py [--n 2048] [--batch 256] [--rtol 1e-4] [--atol 1e-4]
                                    [--width 32] [--cnf-width 64] [--only node|cnf]
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import numpy as np
from _bench import check_jax, emit, torch_setup, torch_sync

from diffdyn.common import OptimConfig, SolveConfig, TrainConfig, Trainer
from diffdyn.common.neural_de import (
    CNF,
    ClassificationTask,
    DensityTask,
    MLPField,
    NeuralODE,
    TimeMLPField,
    gaussian_mixture,
    moons,
)


# ---------------------------------------------------------------------- JAX side
class Classifier(eqx.Module):
    node: NeuralODE
    readout: eqx.nn.Linear

    def __call__(self, x):
        return self.readout(self.node.final(x, 0.0, 1.0))


def jax_epoch(model, task, data, n):
    trainer = Trainer(
        task,
        OptimConfig(learning_rate=1e-2),
        config=TrainConfig(steps=1, progress=False, track_best=False),
    )
    state, static = trainer.init_state(model, data, jax.random.key(0))
    step = trainer.make_step(static)
    t = time.perf_counter()
    state, m = step(state)
    jax.block_until_ready(m["loss"])
    compile_s = time.perf_counter() - t
    steps = n // task.batch_size
    t = time.perf_counter()
    for _ in range(steps):
        state, m = step(state)
    jax.block_until_ready(m["loss"])
    return time.perf_counter() - t, compile_s, float(m["loss"])


# ---------------------------------------------------------------------- torch side
def torch_modules():
    import torch
    import torchdiffeq

    torch_setup()
    return torch, torchdiffeq


def torch_mlp(torch, sizes, act):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [torch.nn.Linear(a, b), act()]
    return torch.nn.Sequential(*layers[:-1])


def torch_node_epoch(x, y, args):
    torch, tdq = torch_modules()
    torch.manual_seed(0)
    field = torch_mlp(torch, [2, args.width, args.width, 2], torch.nn.Tanh)
    readout = torch.nn.Linear(2, 2)
    params = list(field.parameters()) + list(readout.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    t_span = torch.tensor([0.0, 1.0])
    xs, ys = torch.tensor(np.asarray(x)), torch.tensor(np.asarray(y), dtype=torch.long)
    gen = torch.Generator().manual_seed(0)

    def step(idx):
        opt.zero_grad()
        out = tdq.odeint(
            lambda t, h: field(h),
            xs[idx],
            t_span,
            rtol=args.rtol,
            atol=args.atol,
            method="dopri5",
        )[-1]
        loss = torch.nn.functional.cross_entropy(readout(out), ys[idx])
        loss.backward()
        opt.step()
        return loss

    step(torch.randperm(len(xs), generator=gen, device="cpu")[: args.batch])  # warm-up
    t = time.perf_counter()
    perm = torch.randperm(len(xs), generator=gen, device="cpu")
    for i in range(args.n // args.batch):
        loss = step(perm[i * args.batch : (i + 1) * args.batch])
    torch_sync()
    return time.perf_counter() - t, loss.item()


def torch_cnf_epoch(x, args):
    torch, tdq = torch_modules()
    torch.manual_seed(0)
    net = torch_mlp(torch, [3, args.cnf_width, args.cnf_width, 2], torch.nn.Tanh)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xs = torch.tensor(np.asarray(x))
    gen = torch.Generator().manual_seed(0)

    def dynamics(t, state):
        z, _ = state
        with torch.enable_grad():
            z = z.requires_grad_(True)
            tt = t.expand(z.shape[0], 1)
            dz = net(torch.cat([z, tt], 1))
            trace = sum(
                torch.autograd.grad(dz[:, i].sum(), z, create_graph=True)[0][:, i]
                for i in range(z.shape[1])
            )
        return dz, trace

    def step(idx):
        opt.zero_grad()
        z0 = xs[idx]
        zs, deltas = tdq.odeint(
            dynamics,
            (z0, torch.zeros(len(idx))),
            torch.tensor([0.0, 1.0]),
            rtol=args.rtol,
            atol=args.atol,
            method="dopri5",
        )
        z1, delta = zs[-1], deltas[-1]
        logp = -0.5 * (z1**2).sum(1) - np.log(2 * np.pi) + delta
        loss = -logp.mean()
        loss.backward()
        opt.step()
        return loss

    step(torch.randperm(len(xs), generator=gen, device="cpu")[: args.batch])
    t = time.perf_counter()
    perm = torch.randperm(len(xs), generator=gen, device="cpu")
    for i in range(args.n // args.batch):
        loss = step(perm[i * args.batch : (i + 1) * args.batch])
    torch_sync()
    return time.perf_counter() - t, loss.item()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2048, help="samples per epoch")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--atol", type=float, default=1e-4)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--cnf-width", type=int, default=64)
    p.add_argument("--only", choices=["node", "cnf"], default=None)
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()
    emit(benchmark="device", impl="diffdyn", device_kind=check_jax())
    sizes = dict(n=args.n, batch=args.batch, rtol=args.rtol, atol=args.atol)

    def solve(solver):
        return SolveConfig(solver=solver, rtol=args.rtol, atol=args.atol, max_steps=256)

    if args.only in (None, "node"):
        x, y = moons(jax.random.key(0), args.n, noise=0.1)
        times = {}
        for solver in ("tsit5", "dopri5"):
            k1, k2 = jax.random.split(jax.random.key(1))
            model = Classifier(
                NeuralODE(MLPField(2, args.width, 2, key=k1), solve=solve(solver)),
                eqx.nn.Linear(2, 2, key=k2),
            )
            task = ClassificationTask(batch_size=args.batch)
            sec, comp, loss = jax_epoch(model, task, (x, y), args.n)
            times[solver] = sec
            emit(
                benchmark="node_moons_epoch",
                impl=f"diffdyn-{solver}",
                width=args.width,
                seconds=sec,
                compile_seconds=comp,
                loss=loss,
                **sizes,
            )
        if not args.no_torch:
            sec, loss = torch_node_epoch(x, y, args)
            emit(
                benchmark="node_moons_epoch",
                impl="torchdiffeq-dopri5",
                width=args.width,
                seconds=sec,
                loss=loss,
                **sizes,
            )
            for solver, s in times.items():
                emit(
                    benchmark="node_moons_epoch",
                    impl=f"ratio torchdiffeq/diffdyn-{solver}",
                    ratio=sec / s,
                    **sizes,
                )

    if args.only in (None, "cnf"):
        x, _ = gaussian_mixture(jax.random.key(0), args.n, components=8, radius=2.0, std=0.2)
        field = TimeMLPField(2, args.cnf_width, 2, key=jax.random.key(2))
        times = {}
        for solver in ("tsit5", "dopri5"):
            model = CNF(field, 2, solve=solve(solver))
            task = DensityTask(batch_size=args.batch)
            sec, comp, loss = jax_epoch(model, task, x, args.n)
            times[solver] = sec
            emit(
                benchmark="cnf_density_epoch",
                impl=f"diffdyn-{solver}",
                width=args.cnf_width,
                seconds=sec,
                compile_seconds=comp,
                loss=loss,
                **sizes,
            )
        if not args.no_torch:
            sec, loss = torch_cnf_epoch(x, args)
            emit(
                benchmark="cnf_density_epoch",
                impl="torchdiffeq-dopri5",
                width=args.cnf_width,
                seconds=sec,
                loss=loss,
                **sizes,
            )
            for solver, s in times.items():
                emit(
                    benchmark="cnf_density_epoch",
                    impl=f"ratio torchdiffeq/diffdyn-{solver}",
                    ratio=sec / s,
                    **sizes,
                )


if __name__ == "__main__":
    main()
