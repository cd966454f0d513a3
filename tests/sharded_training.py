"""A fixed small training run, executed in a subprocess by tests/test_sharding.py.

Usage: ``python tests/sharded_training.py OUT.npy`` with ``XLA_FLAGS`` setting the number of
CPU devices, or with the ``DIFFDYN_*`` variables of a multi-process run. Writes the final
flattened parameters to OUT.npy (process 0 only) and prints the device count.
"""

import sys

from diffdyn.common import initialize_distributed

initialize_distributed()

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffdyn.common import TrainConfig, Trainer


def loss_fn(model, batch, key):
    x, y = batch
    noise = 0.01 * jax.random.normal(key, y.shape)
    return jnp.mean((jax.vmap(model)(x) - y - noise) ** 2)


def main(out: str) -> None:
    key = jax.random.key(3)
    model = eqx.nn.MLP(2, 1, 8, 2, key=key)
    x = jax.random.normal(jax.random.key(1), (16, 2))
    y = jnp.sin(x[:, :1]) * x[:, 1:]
    trainer = Trainer(
        loss_fn,
        optax.adam(1e-2),
        config=TrainConfig(steps=25, log_every=5, progress=False, shard_data=True),
    )
    result = trainer.fit(model, (np.asarray(x), np.asarray(y)), key)
    leaves = jax.tree_util.tree_leaves(eqx.filter(result.model, eqx.is_inexact_array))
    flat = np.concatenate([np.asarray(jax.device_get(leaf)).ravel() for leaf in leaves])
    print(f"devices={len(jax.devices())} mesh={trainer.mesh.size}")
    if jax.process_index() == 0:
        np.save(out, flat)


if __name__ == "__main__":
    main(sys.argv[1])
