"""An ensemble split across devices against separate runs, run in a subprocess by
tests/test_ensemble.py with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``.

Prints one JSON line: the number of devices, how many members each device holds, and the
largest difference between the members and the separate runs.
"""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffdyn.common import TrainConfig, Trainer


def loss(model, batch, key):
    x, y = batch
    noise = 0.05 * jax.random.normal(key, y.shape)
    return jnp.mean((jax.vmap(model)(x) - y - noise) ** 2)


def main() -> None:
    x = jax.random.normal(jax.random.key(1), (16, 2))
    data = (x, jnp.sin(x[:, :1]))
    models = [eqx.nn.MLP(2, 1, 8, 2, key=jax.random.key(10 + i)) for i in range(4)]
    keys = [jax.random.key(100 + i) for i in range(4)]
    config = TrainConfig(steps=20, log_every=5, progress=False)
    trainer = Trainer(loss, optax.adam(1e-2), config=config)
    stacked, _ = trainer.init_ensemble(models, data, keys)  # how fit_ensemble lays them out
    ensemble = trainer.fit_ensemble(models, data, keys)
    diff = 0.0
    for model, key, member in zip(models, keys, ensemble.members, strict=True):
        one = Trainer(loss, optax.adam(1e-2), config=config).fit(model, data, key)
        for a, b in zip(
            jax.tree_util.tree_leaves(eqx.filter(member.model, eqx.is_array)),
            jax.tree_util.tree_leaves(eqx.filter(one.model, eqx.is_array)),
            strict=True,
        ):
            diff = max(diff, float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))
    leaf = jax.tree_util.tree_leaves(stacked.params)[0]
    print(
        json.dumps(
            {
                "devices": len(jax.devices()),
                "members_per_device": leaf.sharding.shard_shape(leaf.shape)[0],
                "max_difference": diff,
            }
        )
    )


if __name__ == "__main__":
    main()
