"""Overhead of the common Trainer over a bare loop calling the same jitted step.

Both run the step that ``Trainer.make_step`` compiles for a tiny MLP (so the arithmetic is
identical). The trainer adds its progress bar, per-step loss logging (fetched in blocks),
NaN checks and periodic checkpoints. Compilation is excluded: the trainer times its loop from
the end of its first step, and the bare loop is warmed up first. Rows: steps/s of each, and
the trainer's overhead as a fraction of the bare loop's time.
"""

import argparse
import json
import tempfile
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from common.logger import NullLogger, TensorBoardLogger
from common.trainer import TrainConfig, Trainer


def loss_fn(model, batch, key):
    x, y = batch
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def make_problem():
    model = eqx.nn.MLP(2, 1, 32, 2, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (64, 2))
    return model, (x, jnp.sin(x[:, :1]) * x[:, 1:])


def bare_loop(steps: int) -> float:
    model, data = make_problem()
    trainer = Trainer(loss_fn, optax.adam(1e-3))
    state, static = trainer.init_state(model, data, jax.random.key(0))
    step = trainer.make_step(static)
    state, _ = step(state)  # compile
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state)
    jax.block_until_ready((state, metrics))
    return time.perf_counter() - t0


def trainer_loop(steps: int, logger_kind: str, outdir: str) -> float:
    """Seconds per ``steps`` steps under the trainer, compilation excluded."""
    model, data = make_problem()
    logger = NullLogger() if logger_kind == "null" else TensorBoardLogger(f"{outdir}/tb")
    cfg = TrainConfig(steps=steps + 1, log_every=100, checkpoint_every=500, progress=True)
    trainer = Trainer(loss_fn, optax.adam(1e-3), config=cfg, logger=logger, out=outdir)
    result = trainer.fit(model, data, jax.random.key(0))
    logger.close()  # stop tensorboardX's writer thread before the next repeat
    return steps / result.steps_per_second


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args, _ = parser.parse_known_args()
    n = args.steps
    bare = min(bare_loop(n) for _ in range(args.repeats))
    row = {
        "benchmark": "trainer_overhead",
        "steps": n,
        "impl": "bare-loop",
        "steps_per_s": n / bare,
    }
    print(json.dumps(row), flush=True)
    for kind in ("null", "tensorboard"):
        times = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as out:
                times.append(trainer_loop(n, kind, out))
        t = min(times)
        rate = n / t
        print(
            json.dumps(
                {
                    "benchmark": "trainer_overhead",
                    "steps": n,
                    "impl": f"trainer+{kind}",
                    "steps_per_s": rate,
                    "overhead": t / bare - 1.0,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
