"""KuraNet training steps/s on the `global` setting: diffdyn (JAX) vs PyTorch + torchdiffeq.

Both sides do the seed's step: couplings from the pair MLP (batch norm over the N^2 pairs,
node softmax normalisation, symmetrised), Euler burn-in without gradients (100 grid points),
Euler loss window with gradients (50 points), circular variance, backward, gradient clipping
and an SGD update. PyTorch builds the pair inputs by concatenation as the seed does.

    python benchmarks/kuranet_train.py [--n 100] [--hidden 128] [--steps 20] [--threads 0]

Prints one JSON object per line: one per implementation and a "ratio" row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import numpy as np

from common.augment import ArrayAugmenter
from common.trainer import TrainConfig, Trainer
from oscillators import experiments as ex


def bench_jax(cfg: ex.ExperimentConfig, steps: int) -> float:
    data = ex.make_data(cfg)
    trainer = Trainer(
        ex.KuraNetTask(cfg),
        ex.make_optimiser_for(cfg),
        ArrayAugmenter(cfg.num_units),
        config=TrainConfig(steps=steps, progress=False),
    )
    state, static = trainer.init_state(
        ex.make_model(cfg, jax.random.key(0)), data["train"], jax.random.key(1)
    )
    step = trainer.make_step(static)
    for _ in range(2):
        state, m = step(state)
    jax.block_until_ready(m["loss"])
    t = time.perf_counter()
    for _ in range(steps):
        state, m = step(state)
    jax.block_until_ready(m["loss"])
    return steps / (time.perf_counter() - t)


def bench_torch(cfg: ex.ExperimentConfig, steps: int) -> float:
    import torch
    from torch import nn
    from torchdiffeq import odeint

    n, f, h = cfg.num_units, 3, cfg.hidden
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(2 * f, h),
        nn.BatchNorm1d(h),
        nn.LeakyReLU(0.01),
        nn.Linear(h, h),
        nn.BatchNorm1d(h),
        nn.LeakyReLU(0.01),
        nn.Linear(h, 1, bias=False),
    )
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
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
        pairs = torch.cat([x[:, None].expand(n, n, f), x[None].expand(n, n, f)], -1)
        c = net(pairs.reshape(n * n, 2 * f)).reshape(n, n)
        k = torch.softmax(c.reshape(-1), 0).reshape(n, n) * (cfg.avg_deg * n)
        k = (k + k.T) / 2
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
        nn.utils.clip_grad_norm_(net.parameters(), cfg.clip)
        opt.step()
        return float(loss)

    for _ in range(2):
        one_step()
    t = time.perf_counter()
    for _ in range(steps):
        one_step()
    return steps / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--skip-torch", action="store_true")
    a = p.parse_args()
    cfg = dataclasses.replace(
        ex.get_experiment("global"), num_units=a.n, hidden=a.hidden, num_samples=max(2 * a.n, 1000)
    )
    sizes = {"n": a.n, "hidden": a.hidden, "burn_in": cfg.burn_in, "gd": cfg.gd}
    rate = bench_jax(cfg, a.steps)
    print(
        json.dumps(
            {
                "benchmark": "kuranet_train_global",
                "impl": "diffdyn-jax",
                **sizes,
                "steps_per_s": rate,
            }
        ),
        flush=True,
    )
    if a.skip_torch:
        return
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    rate_t = bench_torch(cfg, a.steps)
    print(
        json.dumps(
            {
                "benchmark": "kuranet_train_global",
                "impl": "torch-torchdiffeq",
                **sizes,
                "steps_per_s": rate_t,
            }
        ),
        flush=True,
    )
    print(
        json.dumps(
            {"benchmark": "kuranet_train_global", "impl": "ratio", **sizes, "ratio": rate / rate_t}
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
