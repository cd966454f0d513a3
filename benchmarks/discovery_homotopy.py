"""Steps per second of homotopy training on Lotka-Volterra: diffdyn (JAX) vs PyTorch.

The same training on both sides: black-box MLP [2, 32, 2] (GELU) in float64, 61 noisy points,
dopri5 with rtol 1e-7 / atol 1e-9, the synchronised field U(u) - lambda k (u - spline(t))
with k = 6 and the same smoothing spline (alpha 1e-3; torch evaluates the spline fitted by
diffdyn), AdamW(0.05, weight decay 0.01), one full-batch step (an epoch) per step, plus the
uncoupled no-grad solve that selects the best model. Both start from the same weights. PyTorch
uses torchdiffeq (``pip install diffdyn[bench]``); rows: one per implementation, then a ratio
row.

    python benchmarks/discovery_homotopy.py [--steps 30] [--skip-torch]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from _bench import check_jax, emit, torch_setup

jax.config.update("jax_enable_x64", True)

from diffdyn.common import SolveConfig, TrainConfig, Trainer
from diffdyn.common.neural_de import MLPField
from diffdyn.oscillators import (
    discovery_settings,
    discovery_task,
    make_dataset,
    trajectory_of,
)


def run_jax(field, data, settings) -> dict:
    task = discovery_task(settings, data)
    train = TrainConfig(steps=settings.steps, log_every=settings.steps, progress=False)
    t0 = time.perf_counter()
    result = Trainer(task, settings.optim, config=train).fit(field, data, jax.random.key(0))
    total = time.perf_counter() - t0
    return {
        "steps": result.steps,
        "steps_per_second": result.steps_per_second,
        "seconds_with_compile": total,
        "final_mse": float(result.losses[-1]),
        "spline": task.spline,
        "lambdas": [float(settings.schedule(s)) for s in range(result.steps)],
    }


def run_torch(field: MLPField, data, spline, k: float, optim, lambdas, solve) -> dict:
    import torch
    from torchdiffeq import odeint

    dev = torch_setup()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)  # tiny ops: more threads only add synchronisation
    layers = field.mlp.layers
    net = torch.nn.Sequential(
        torch.nn.Linear(2, layers[0].weight.shape[0]),
        torch.nn.GELU(),
        torch.nn.Linear(layers[1].weight.shape[1], 2),
    )
    with torch.no_grad():
        for tl, jl in zip((net[0], net[2]), layers, strict=True):
            tl.weight.copy_(torch.from_numpy(np.array(jl.weight)).to(dev))
            tl.bias.copy_(torch.from_numpy(np.array(jl.bias)).to(dev))
    ts = torch.from_numpy(np.array(data.ts)).to(dev)
    ys = torch.from_numpy(np.array(data.ys)).to(dev)
    y0 = torch.from_numpy(np.array(data.y0)).to(dev)
    knots = torch.from_numpy(np.array(spline.knots)).to(dev)
    second = torch.from_numpy(np.array(spline.second)).to(dev)
    n = ts.shape[0]

    def spline_at(t):
        i = torch.clamp(torch.searchsorted(ts, t.reshape(1), right=True) - 1, 0, n - 2)[0]
        t0, t1 = ts[i], ts[i + 1]
        h, a, b = t1 - t0, t - t0, t1 - t
        lin = (a * knots[i + 1] + b * knots[i]) / h
        return lin - (a * b / 6) * ((1 + a / h) * second[i + 1] + (1 + b / h) * second[i])

    class Coupled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lam = 1.0

        def forward(self, t, u):
            return net(u) - self.lam * k * (u - spline_at(t))

    coupled = Coupled()
    opt = torch.optim.AdamW(
        net.parameters(), lr=optim.learning_rate, weight_decay=optim.weight_decay
    )
    kw = {"method": "dopri5", "rtol": solve.rtol, "atol": solve.atol}

    def step(lam):
        coupled.lam = lam
        opt.zero_grad()
        pred = odeint(coupled, y0, ts, **kw)
        loss = torch.mean((pred - ys) ** 2)
        loss.backward()
        opt.step()
        with torch.no_grad():
            mse = torch.mean((odeint(lambda t, u: net(u), y0, ts, **kw) - ys) ** 2)
        return float(mse)

    step(lambdas[0])  # warm-up, as the JAX side excludes its compiling first step
    t0 = time.perf_counter()
    for lam in lambdas[1:]:
        last = step(lam)
    seconds = time.perf_counter() - t0
    return {"steps_per_second": (len(lambdas) - 1) / seconds, "final_mse": last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=30, help="training steps (rounded down to 6 plateaus)"
    )
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()
    steps = 6 * max(1, args.steps // 6)
    dataset = make_dataset("lotka-volterra")
    data = trajectory_of(dataset)
    settings = discovery_settings("lotka-volterra", "blackbox", "homotopy", steps=steps)
    solve = settings.solve  # dopri5, rtol 1e-7, atol 1e-9
    assert solve == SolveConfig(solver="dopri5", rtol=1e-7, atol=1e-9, max_steps=4096)
    field = MLPField(2, settings.width, settings.depth, activation="gelu", key=jax.random.key(10))
    sizes = {"points": int(data.ts.shape[0]), "width": settings.width, "dtype": "float64"}
    jx = run_jax(field, data, settings)
    row = {"benchmark": "discovery_homotopy", "impl": "diffdyn-jax", **sizes}
    row.update({k: jx[k] for k in ("steps", "steps_per_second", "seconds_with_compile")})
    row["final_mse"] = jx["final_mse"]
    emit(**row, device_kind=check_jax())
    if args.skip_torch:
        return
    th = run_torch(
        field, data, jx["spline"], float(settings.k), settings.optim, jx["lambdas"], solve
    )
    emit(
        benchmark="discovery_homotopy",
        impl="torch-torchdiffeq",
        **sizes,
        steps=len(jx["lambdas"]),
        **th,
    )
    emit(
        benchmark="discovery_homotopy",
        impl="ratio",
        **sizes,
        ratio=jx["steps_per_second"] / th["steps_per_second"],
        what="steps/s diffdyn-jax / steps/s torch-torchdiffeq",
    )


if __name__ == "__main__":
    main()
