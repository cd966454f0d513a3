"""Overhead of the common Trainer over a bare loop calling the same jitted step.

Rows, for a tiny MLP (so that per-step Python costs are visible):

* ``bare-loop``: the step that ``Trainer.make_step`` compiles, called on the state's flat
  leaves in a bare ``for`` loop: the floor for this arithmetic;
* ``trainer+null`` / ``trainer+tensorboard``: ``Trainer.fit`` with its default
  configuration: progress bar, every step's loss and gradient norm logged (fetched in blocks
  of 50), NaN checks, a checkpoint at the last step (``--checkpoint-every`` for more),
  without and with TensorBoard event files; by default the trainer fuses as many steps per
  device call as last about 50 ms (``TrainConfig.steps_per_call=None``);
* ``trainer+tensorboard,1-step-calls``: the same with ``steps_per_call=1``, one dispatch per
  step like the bare loop: what the loop's bookkeeping itself costs;
* ``bare-loop,50-step-calls``: the bare loop over ``CompiledStep.run(leaves, 50)``: the
  floor of the fused arithmetic, to which the default trainer rows compare;
* ``bare-loop-again``: the bare loop once more, whose ratio to the first shows how much of
  a difference this machine can resolve;
* ``equinox-loop``: what one writes by hand with equinox: an ``eqx.filter_jit`` step of
  ``filter_value_and_grad`` + optax on ``(model, opt_state)``, in a bare loop.

Compilation is excluded: the trainer times its loop from the end of its first step, the loops
are warmed up first. Each row gives steps/s and the time relative to ``bare-loop``: the
median, with lower and upper quartiles, over interleaved rounds of the per-round time ratio,
and the ratio of the fastest rounds (noise on a shared machine only adds time).
"""

import argparse
import json
import statistics
import tempfile
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from diffdyn.common import NullLogger, TensorBoardLogger, TrainConfig, Trainer


def loss_fn(model, batch, key):
    x, y = batch
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def make_problem():
    model = eqx.nn.MLP(2, 1, 32, 2, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (64, 2))
    return model, (x, jnp.sin(x[:, :1]) * x[:, 1:])


def bare_loop(steps: int, per_call: int = 0) -> float:
    """Seconds for ``steps`` steps of the trainer's compiled step in a bare loop: one
    ``step_leaves`` call per step, or (``per_call > 0``) ``run`` calls of that many steps."""
    model, data = make_problem()
    trainer = Trainer(loss_fn, optax.adam(1e-3))
    state, static = trainer.init_state(model, data, jax.random.key(0))
    step = trainer.make_step(static)
    leaves = step.flatten(state)
    leaves = step.run(leaves, per_call) if per_call else step.step_leaves(leaves)[0]  # compile
    jax.block_until_ready(leaves)
    t0 = time.perf_counter()
    if per_call:
        for _ in range(steps // per_call):
            leaves = step.run(leaves, per_call)
    else:
        for _ in range(steps):
            leaves, _ = step.step_leaves(leaves)
    jax.block_until_ready(leaves)
    return time.perf_counter() - t0


def equinox_loop(steps: int) -> float:
    model, data = make_problem()
    optimiser = optax.adam(1e-3)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, opt_state, batch):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, batch, None)
        updates, opt_state = optimiser.update(grads, opt_state, model)
        return eqx.apply_updates(model, updates), opt_state, loss

    model, opt_state, loss = step(model, opt_state, data)  # compile
    jax.block_until_ready(loss)
    t0 = time.perf_counter()
    for _ in range(steps):
        model, opt_state, loss = step(model, opt_state, data)
    jax.block_until_ready((model, loss))
    return time.perf_counter() - t0


def trainer_loop(
    steps: int,
    logger_kind: str,
    outdir: str,
    checkpoint_every: int = 0,
    per_call: int | None = None,
) -> float:
    """Seconds per ``steps`` steps under the trainer, compilation excluded."""
    model, data = make_problem()
    logger = NullLogger() if logger_kind == "null" else TensorBoardLogger(f"{outdir}/tb")
    cfg = TrainConfig(
        steps=steps + 1, checkpoint_every=checkpoint_every, steps_per_call=per_call, progress=True
    )
    trainer = Trainer(loss_fn, optax.adam(1e-3), config=cfg, logger=logger, out=outdir)
    result = trainer.fit(model, data, jax.random.key(0))
    logger.close()
    return steps / result.steps_per_second


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument(
        "--checkpoint-every", type=int, default=0, help="0: one checkpoint, at the last step"
    )
    args, _ = parser.parse_known_args()
    n = args.steps
    # Interleave the three loops, rotating their order each round so that machine noise and
    # order effects hit them alike; the overhead is the median over rounds of the ratio of a
    # trainer run to the bare run of the same round.
    runners = {
        "bare-loop": lambda: bare_loop(n),
        "trainer+null": lambda: _trainer_in_tmpdir(n, "null", args.checkpoint_every),
        "trainer+tensorboard": lambda: _trainer_in_tmpdir(n, "tensorboard", args.checkpoint_every),
        "trainer+tensorboard,1-step-calls": lambda: _trainer_in_tmpdir(
            n, "tensorboard", args.checkpoint_every, per_call=1
        ),
        "equinox-loop": lambda: equinox_loop(n),
        "bare-loop,50-step-calls": lambda: bare_loop(n, per_call=50),
        "bare-loop-again": lambda: bare_loop(n),  # the noise floor of the ratios
    }
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(runners[name]())
    for name in names:
        ratios = [t / b for t, b in zip(times[name], times["bare-loop"], strict=True)]
        row = {
            "benchmark": "trainer_overhead",
            "steps": n,
            "repeats": args.repeats,
            "checkpoint_every": args.checkpoint_every,
            "impl": name,
            "steps_per_s": n / statistics.median(times[name]),
            "overhead": statistics.median(ratios) - 1.0,
            "overhead_quartiles": [q - 1.0 for q in statistics.quantiles(ratios, n=4)[::2]],
            "overhead_fastest_rounds": min(times[name]) / min(times["bare-loop"]) - 1.0,
        }
        print(json.dumps(row), flush=True)


def _trainer_in_tmpdir(
    steps: int, logger_kind: str, checkpoint_every: int, per_call: int | None = None
) -> float:
    with tempfile.TemporaryDirectory() as out:
        return trainer_loop(steps, logger_kind, out, checkpoint_every, per_call)


if __name__ == "__main__":
    main()
