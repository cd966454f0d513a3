"""K models as one ensemble against K separate runs and against a pool of worker processes.

Two workloads, each timed end to end (compilation included, as a user waits for it):

- ``discovery``: the dynamics-discovery fits of one method and target for K model seeds
  (Lotka-Volterra, black box, ``--method``, ``--steps`` steps, float64, dopri5): one
  ensemble (`discovery_ensemble`), K runs one after another (`discovery_run`), and the sweep's
  process pool (``workers`` processes, one run each, ``ensemble=False``).
- ``kuranet``: KuraNet training (the ``global`` preset, ``--kuranet-steps`` steps, no
  evaluation) of K seeds: `Trainer.fit_ensemble` against K `Trainer.fit` calls.

Rows (one JSON object per line): seconds of each way, the ratios ``sequential / ensemble`` and
``pool / ensemble`` (> 1: the ensemble is faster), and the load average.

Usage: ``python benchmarks/ensemble.py [--k 3] [--steps 300] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import jax

from diffdyn.common import TrainConfig, Trainer
from diffdyn.oscillators import (
    DiscoverConfig,
    KuraNetTask,
    configure_experiment,
    discovery_ensemble,
    discovery_run,
    discovery_sweep,
    kuranet_data,
    make_kuranet,
)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def emit(**row) -> None:
    print(json.dumps({**row, "loadavg": os.getloadavg()[0]}), flush=True)


def bench_discovery(k: int, steps: int, method: str, workers: int) -> None:
    train = TrainConfig(steps=steps, log_every=max(1, steps // 10), progress=False)
    cfg = DiscoverConfig(method=method, train=train)
    given = {"train.steps"}
    seeds = [10 * (i + 1) for i in range(k)]
    ensemble = timed(lambda: discovery_ensemble(cfg, seeds, given=given))
    sequential = timed(lambda: [discovery_run(cfg, seed=s, given=given) for s in seeds])
    sweep = DiscoverConfig(
        sweep=True,
        methods=(method,),
        seeds=tuple(seeds),
        workers=workers,
        ensemble=False,
        train=train,
    )
    with tempfile.TemporaryDirectory() as out:
        pool = timed(lambda: discovery_sweep(sweep, out, given=given))
    emit(
        benchmark="ensemble_discovery",
        method=method,
        members=k,
        steps=steps,
        workers=workers,
        seconds_ensemble=ensemble,
        seconds_sequential=sequential,
        seconds_pool=pool,
        ratio_sequential_over_ensemble=sequential / ensemble,
        ratio_pool_over_ensemble=pool / ensemble,
    )


def bench_kuranet(k: int, steps: int) -> None:
    cfg = configure_experiment("global", train={"steps": steps, "progress": False})
    data = kuranet_data(cfg)
    task = KuraNetTask(cfg, validation=data["validation"], key=jax.random.key(0))
    trainer = Trainer(task, cfg.optim, config=cfg.train)
    keys = [jax.random.split(jax.random.key(s)) for s in range(k)]
    models = [make_kuranet(cfg, km) for km, _ in keys]
    ensemble = timed(lambda: trainer.fit_ensemble(models, data["train"], [kt for _, kt in keys]))
    sequential = timed(
        lambda: [trainer.fit(m, data["train"], kt) for m, (_, kt) in zip(models, keys, strict=True)]
    )
    emit(
        benchmark="ensemble_kuranet_train",
        members=k,
        steps=steps,
        seconds_ensemble=ensemble,
        seconds_sequential=sequential,
        ratio_sequential_over_ensemble=sequential / ensemble,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=3, help="members")
    p.add_argument("--steps", type=int, default=300, help="discovery steps")
    p.add_argument("--method", default="plain", choices=("plain", "multiple-shooting"))
    p.add_argument("--workers", type=int, default=2, help="processes of the pool")
    p.add_argument("--kuranet-steps", type=int, default=50)
    args = p.parse_args()
    bench_discovery(args.k, args.steps, args.method, args.workers)
    bench_kuranet(args.k, args.kuranet_steps)


if __name__ == "__main__":
    main()
