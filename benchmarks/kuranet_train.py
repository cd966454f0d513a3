"""KuraNet training steps/s on the `global` setting: diffdyn (JAX) vs PyTorch + torchdiffeq.

Both sides do the training step of KuraNet (Ricci et al. 2021, serre-lab/KuraNet): couplings
from the pair MLP (batch norm over the N^2 pairs, node softmax normalisation, symmetrised), Euler
burn-in without gradients (100 grid points), Euler loss window with gradients (50 points),
circular variance, backward, gradient clipping and an SGD update. PyTorch builds the pair inputs
by concatenation as KuraNet does.

    python benchmarks/kuranet_train.py [--n 100] [--hidden 128] [--steps 20] [--threads 0]

Prints one JSON object per line: one per implementation and a "ratio" row. The
"coupling-only" rows time the forward and backward pass of the pair MLP and normalisation
alone (no dynamics) on both sides: the dense work every step must do, whose ratio bounds
how much faster a whole step can get.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from _bench import check_jax, emit, torch_setup, torch_sync

from diffdyn import oscillators as osc
from diffdyn.common import TrainConfig, Trainer


def _rate(run: Callable[[], Any], steps: int) -> float:
    """Calls of ``run`` per second, after two warm-up calls (JAX results are waited for)."""
    for _ in range(2):
        jax.block_until_ready(run())
    t = time.perf_counter()
    out = None
    for _ in range(steps):
        out = run()
    jax.block_until_ready(out)
    return steps / (time.perf_counter() - t)


def bench_jax(cfg: osc.ExperimentConfig, steps: int) -> float:
    data = osc.kuranet_data(cfg)
    trainer = Trainer(
        osc.KuraNetTask(cfg), cfg.optim, config=TrainConfig(steps=steps, progress=False)
    )
    state, static = trainer.init_state(
        osc.make_kuranet(cfg, jax.random.key(0)), data["train"], jax.random.key(1)
    )
    step = trainer.make_step(static)
    holder = {"state": state}

    def one() -> Any:
        holder["state"], metrics = step(holder["state"])
        return metrics["loss"]

    return _rate(one, steps)


def bench_jax_coupling(cfg: osc.ExperimentConfig, steps: int) -> float:
    """Coupling network alone: ``grad`` of ``sum(K * G)`` for a fixed random ``G``."""
    import equinox as eqx
    import jax.numpy as jnp

    model = osc.make_kuranet(cfg, jax.random.key(0))
    x = osc.kuranet_data(cfg)["train"]["x"][: cfg.num_units]
    weight = jax.random.normal(jax.random.key(2), (cfg.num_units, cfg.num_units))

    @eqx.filter_jit
    def grads(m):
        return eqx.filter_grad(lambda m: jnp.sum(m(x) * weight))(m)

    return _rate(lambda: grads(model), steps)


def _torch_coupling_net(f: int, h: int):
    from torch import nn

    return nn.Sequential(
        nn.Linear(2 * f, h),
        nn.BatchNorm1d(h),
        nn.LeakyReLU(0.01),
        nn.Linear(h, h),
        nn.BatchNorm1d(h),
        nn.LeakyReLU(0.01),
        nn.Linear(h, 1, bias=False),
    )


def _torch_coupling(net, x, n: int, f: int, avg_deg: float):
    import torch

    pairs = torch.cat([x[:, None].expand(n, n, f), x[None].expand(n, n, f)], -1)
    c = net(pairs.reshape(n * n, 2 * f)).reshape(n, n)
    k = torch.softmax(c.reshape(-1), 0).reshape(n, n) * (avg_deg * n)
    return (k + k.T) / 2


def bench_torch_coupling(cfg: osc.ExperimentConfig, steps: int) -> float:
    import torch

    torch_setup()
    n, f = cfg.num_units, 3
    torch.manual_seed(0)
    net = _torch_coupling_net(f, cfg.hidden)
    x = torch.rand(n, f)
    weight = torch.randn(n, n)

    def one():
        net.zero_grad()
        (_torch_coupling(net, x, n, f, cfg.avg_deg) * weight).sum().backward()
        torch_sync()

    return _rate(one, steps)


def bench_torch(cfg: osc.ExperimentConfig, steps: int) -> float:
    import torch
    from torch import nn
    from torchdiffeq import odeint

    torch_setup()
    n, f = cfg.num_units, 3
    torch.manual_seed(0)
    net = _torch_coupling_net(f, cfg.hidden)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.optim.learning_rate)
    rng = np.random.default_rng(0)
    alpha = cfg.alpha

    class Full(nn.Module):
        def __init__(self, k, omega, field):
            super().__init__()
            self.k, self.omega, self.field = k, omega, field

        def forward(self, t, th):
            s, c = torch.sin(th), torch.cos(th)
            return self.omega + c * (self.k @ s) - s * (self.k @ c) + self.field * s

    def one_step():
        x = torch.tensor(
            np.stack([np.zeros(n), rng.uniform(-1, 1, n), np.zeros(n)], -1), dtype=torch.float32
        )
        k = _torch_coupling(net, x, n, f, cfg.avg_deg)
        rhs = Full(k, x[:, 1], x[:, 0])
        th0 = torch.zeros(n)
        with torch.no_grad():
            grid = torch.arange(cfg.burn_in, dtype=torch.float32) * alpha
            th = odeint(rhs, th0, grid, method="euler")[-1]
        grid = torch.arange(cfg.gd, dtype=torch.float32) * alpha
        traj = odeint(rhs, th.detach(), grid, method="euler")
        r = torch.sqrt(torch.cos(traj).mean(-1) ** 2 + torch.sin(traj).mean(-1) ** 2)
        loss = (1 - r).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.clip_norm)
        opt.step()
        return float(loss)

    return _rate(one_step, steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--skip-torch", action="store_true")
    a = p.parse_args()
    cfg = dataclasses.replace(
        osc.get_experiment("global"), num_units=a.n, hidden=a.hidden, num_samples=max(2 * a.n, 1000)
    )
    emit(benchmark="device", impl="diffdyn", device_kind=check_jax())
    sizes = {"n": a.n, "hidden": a.hidden, "burn_in": cfg.burn_in, "gd": cfg.gd}

    def row(impl: str, **values: float) -> None:
        emit(benchmark="kuranet_train_global", impl=impl, **sizes, **values)

    rate = bench_jax(cfg, a.steps)
    row("diffdyn-jax", steps_per_s=rate)
    coupling = bench_jax_coupling(cfg, a.steps)
    row("diffdyn-jax coupling-only", steps_per_s=coupling)
    if a.skip_torch:
        return
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    rate_t = bench_torch(cfg, a.steps)
    row("torch-torchdiffeq", steps_per_s=rate_t)
    coupling_t = bench_torch_coupling(cfg, a.steps)
    row("torch coupling-only", steps_per_s=coupling_t)
    row(
        "ratio",
        ratio=rate / rate_t,
        coupling_ratio=coupling / coupling_t,
        # a diffdyn step can't be faster than its coupling network alone
        ceiling=coupling / rate_t,
        torch_coupling_share=rate_t / coupling_t,
    )


if __name__ == "__main__":
    main()
