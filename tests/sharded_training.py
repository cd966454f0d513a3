"""A fixed small training run, executed in subprocesses by tests/test_sharding.py.

Usage: ``python tests/sharded_training.py PARAMS.npy [--out DIR] [--resume] [--slow S]`` with
``XLA_FLAGS`` setting the number of CPU devices, or with the ``DIFFDYN_*`` variables of a
multi-process run. Every process runs the same program; process 0 writes the final flattened
parameters to PARAMS.npy. With ``--out`` the run logs to TensorBoard and checkpoints there
every 5 steps (every process is given the same folder); ``--slow S`` sleeps S seconds per
logged block, so that a test can kill the run between checkpoints.
"""

import argparse
import time

from diffdyn.common import initialize_distributed

initialize_distributed()

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffdyn.common import TensorBoardLogger, TrainConfig, Trainer

STEPS = 25


class SlowLogger(TensorBoardLogger):
    """A TensorBoard logger that takes ``delay`` seconds per logged series."""

    def __init__(self, logdir, delay):
        super().__init__(logdir, flush_seconds=0.0)
        self.delay = delay

    def scalars(self, tag, values, steps):
        super().scalars(tag, values, steps)
        time.sleep(self.delay)


def loss_fn(model, batch, key):
    x, y = batch
    noise = 0.01 * jax.random.normal(key, y.shape)
    return jnp.mean((jax.vmap(model)(x) - y - noise) ** 2)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("params")
    p.add_argument("--out")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--slow", type=float, default=0.0)
    args = p.parse_args()
    key = jax.random.key(3)
    model = eqx.nn.MLP(2, 1, 8, 2, key=key)
    x = jax.random.normal(jax.random.key(1), (16, 2))
    y = jnp.sin(x[:, :1]) * x[:, 1:]
    config = TrainConfig(
        steps=STEPS,
        log_every=5,
        checkpoint_every=5 if args.out else 0,
        progress=False,
        shard_data=True,
    )
    logger = None if args.out is None else SlowLogger(args.out, args.slow)
    trainer = Trainer(loss_fn, optax.adam(1e-2), config=config, logger=logger, out=args.out)
    result = trainer.fit(model, (np.asarray(x), np.asarray(y)), key, resume=args.resume)
    leaves = jax.tree_util.tree_leaves(eqx.filter(result.model, eqx.is_inexact_array))
    flat = np.concatenate([np.asarray(jax.device_get(leaf)).ravel() for leaf in leaves])
    print(f"devices={len(jax.devices())} mesh={trainer.mesh.size} steps={result.steps}")
    if logger is not None:
        logger.close()
    if jax.process_index() == 0:
        np.save(args.params, flat)


if __name__ == "__main__":
    main()
