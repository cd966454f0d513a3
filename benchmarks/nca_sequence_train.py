"""One NCA training step in the recorded-sequence regime: diffdyn (`SequenceTask` on the
common `Trainer`) against the same step written directly in PyTorch, side by side.

The regime (Richardson et al. 2024; `diffdyn.nca.SequenceTask`): ``--sequences`` recordings
of ``--frames`` frames (``--observed`` channels, ``--size``² cells, times 0, 1, 2, ...), the
last ``--held-out`` held out. Every interval of every training sequence is one sample of the
batch (``N - 1`` per sequence, all trained in parallel); half of the batch (the first
``round(batch / 2)`` of a random order) starts from the NCA's own state propagated from the
previous interval (a pool of states, hidden channels carried), the rest from the observed
frame with zero hidden channels (teacher forcing). Each sample runs ``--steps-per-frame``
NCA steps; the loss is the MSE to the next frame plus ``0.01 x`` the MSE of its Sobel and
Laplacian features (periodic, the model's stencils) plus the state regulariser
``mean(|x - 0| + |x - 1| - 1)`` over every intermediate state; the gradient of every
parameter block is normalised to unit norm, Adam takes a step (rate ``2e-3`` decaying to a
tenth over 1,000 steps), and the end states are written back into the pool.

The NCA, the same on both sides: ``--channels`` channels (the observed ones and hidden ones),
perception identity, Sobel x, Sobel y and the 9-point Laplacian on every channel with
periodic padding (PyTorch: one grouped ``conv2d`` with circular padding, its kernel copied
from diffdyn's `Perception`), a per-cell network ``--hidden`` wide (ReLU; 1x1 convolutions in
PyTorch), fire rate 1 (every cell updates, as ``diffdyn nca train --task sequence`` does).
PyTorch starts from a copy of diffdyn's initial parameters (the last layer made non-zero on
both, so the step does not train the identity map from its trivial start); a ``check`` row
gives both sides' loss and gradient on one shared batch (they agree to float32 rounding).

Rows: ``diffdyn`` and ``torch`` (best seconds of one training step, steps/s, parameter count;
diffdyn's compilation separately), ``check``, and ``ratio`` (torch seconds / diffdyn seconds:
above 1, diffdyn is faster). Timing alternates the sides in ``--rounds`` rounds of
``--repeats`` steps each and keeps each side's best (`_bench.best_of`). Every row has the
device and the load average. ``--device gpu`` (or ``DIFFDYN_BENCH_DEVICE=gpu``, which
``run.py --device gpu`` sets) runs JAX on the GPU and PyTorch on CUDA.

    .venv/bin/python benchmarks/nca_sequence_train.py          # the README's FitzHugh-Nagumo sizes
    .venv/bin/python benchmarks/nca_sequence_train.py --size 64 --sequences 2 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from _bench import best_of, check_jax, emit, torch_setup, torch_sync

BENCH = "nca_sequence_train"
LEARNING_RATE, DECAY_STEPS = 2e-3, 1000
PERCEPTION_WEIGHT, REGULARISER_WEIGHT, STATE_RANGE = 0.01, 1.0, (0.0, 1.0)


def recording(args: argparse.Namespace) -> np.ndarray:
    """Frames ``[B, T, O, H, W]`` in ``[0.1, 0.9]``: travelling waves, one phase per sequence
    and channel (what the frames show does not change the cost of a step)."""
    b, t, o, s = args.sequences, args.frames, args.observed, args.size
    y, x = np.meshgrid(np.arange(s) / s, np.arange(s) / s, indexing="ij")
    out = np.empty((b, t, o, s, s), np.float32)
    for i in range(b):
        for n in range(t):
            for c in range(o):
                phase = 2 * np.pi * (x + 0.5 * y + 0.05 * n + 0.3 * c + 0.2 * i)
                out[i, n, c] = 0.5 + 0.4 * np.sin(phase) * np.cos(2 * np.pi * (y - 0.03 * n))
    return out


# ---------------------------------------------------------------------------- diffdyn side
def diffdyn_side(args: argparse.Namespace, frames: np.ndarray):
    """The model (last layer non-zero), the task, and a step function on flat state leaves."""
    import equinox as eqx
    import jax

    from diffdyn.common import OptimConfig, TrainConfig, Trainer
    from diffdyn.nca import NCA, Cells, SequenceTask

    key = jax.random.key(0)
    model = NCA(Cells(args.channels, fire_rate=1.0), hidden=args.hidden, key=key)
    out = model.net.output_layer
    w = 0.01 * jax.random.normal(jax.random.key(1), out.weight.shape)
    b = 0.01 * jax.random.normal(jax.random.key(2), out.bias.shape)
    model = eqx.tree_at(
        lambda m: (m.net.output_layer.weight, m.net.output_layer.bias), model, (w, b)
    )
    task = SequenceTask(
        frames,
        steps_per_frame=args.steps_per_frame,
        held_out=args.held_out,
        propagate_fraction=0.5,
        state_range=STATE_RANGE,
        regulariser_weight=REGULARISER_WEIGHT,
        perception_weight=PERCEPTION_WEIGHT,
    )
    optim = OptimConfig(
        "adam", LEARNING_RATE, schedule="exponential", decay_rate=0.1, normalise_gradients=True
    )
    config = TrainConfig(steps=DECAY_STEPS, progress=False)
    trainer = Trainer(task, optim, config=config)
    state, static = trainer.init_state(model, task.training_data(model.channels), key)
    step = trainer.make_step(static)
    return model, task, step, step.flatten(state)


# ---------------------------------------------------------------------------- torch side
class TorchSequenceStep:
    """The same training step in PyTorch, parameters copied from diffdyn's ``model``."""

    def __init__(self, args: argparse.Namespace, frames: np.ndarray, model, task, dev):
        import torch

        from diffdyn.common import Perception

        self.torch, self.dev = torch, dev
        c, k = model.channels, len(model.filters)
        n = task.training_frames
        self.channels, self.observed, self.steps = c, task.observed, args.steps_per_frame
        self.sequences, self.intervals = frames.shape[0], n - 1
        self.batch, self.propagated = task.batch_size, task.propagated
        tensor = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32, device=dev)  # noqa: E731
        # diffdyn's grouped kernels: output channel c*K + k is filter k on channel c, as
        # torch's grouped conv2d orders them
        self.kernel = tensor(model.perception.kernel)
        features = Perception(
            self.observed,
            tuple(f for f in model.filters if f != "identity"),
            padding=model.perception.padding,
        )
        self.feature_kernel = tensor(features.kernel)
        net = model.net
        # diffdyn orders the features filter by filter (k*C + c); torch's conv gives c*K + k
        w1 = np.asarray(net.hidden_layer.weight).reshape(-1, k, c).transpose(0, 2, 1)
        self.params = [
            tensor(w1.reshape(-1, c * k, 1, 1)).requires_grad_(),
            tensor(net.hidden_layer.bias).requires_grad_(),
            tensor(np.asarray(net.output_layer.weight)[:, :, None, None]).requires_grad_(),
            tensor(net.output_layer.bias).requires_grad_(),
        ]
        self.opt = torch.optim.Adam(self.params, lr=LEARNING_RATE)
        self.count = 0
        train = tensor(frames[:, :n])
        self.frames = train
        hidden = torch.zeros(train.shape[0], n - 1, c - self.observed, *train.shape[3:], device=dev)
        self.pool = torch.cat([train[:, :-1], hidden], dim=2)

    def nca_step(self, x):
        F = self.torch.nn.functional
        w1, b1, w2, b2 = self.params
        p = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), self.kernel, groups=self.channels)
        return x + F.conv2d(self.torch.relu(F.conv2d(p, w1, b1)), w2, b2)

    def features(self, x):
        F = self.torch.nn.functional
        padded = F.pad(x, (1, 1, 1, 1), mode="circular")
        return F.conv2d(padded, self.feature_kernel, groups=self.observed)

    def loss(self, start, target):
        """The task's loss of a batch of start states ``[B, C, H, W]`` and targets."""
        torch = self.torch
        low, high = STATE_RANGE
        x, reg = start, torch.zeros(start.shape[0], device=self.dev)
        for _ in range(self.steps):
            x = self.nca_step(x)
            reg = reg + ((x - low).abs() + (x - high).abs() - (high - low)).mean(dim=(1, 2, 3))
        pred = x[:, : self.observed]
        err = ((pred - target) ** 2).mean(dim=(1, 2, 3))
        feat = ((self.features(pred) - self.features(target)) ** 2).mean(dim=(1, 2, 3))
        total = (err + PERCEPTION_WEIGHT * feat).mean() + REGULARISER_WEIGHT * (
            reg / self.steps
        ).mean()
        return total, x

    def batch_of(self, b, n):
        """Start states (the first ``propagated`` from the pool) and targets of pairs (b, n)."""
        torch = self.torch
        observed = self.frames[b, n]
        hidden = torch.zeros(len(b), self.channels - self.observed, *observed.shape[2:])
        teacher = torch.cat([observed, hidden.to(observed.device)], dim=1)
        propagated = (torch.arange(len(b), device=self.dev) < self.propagated)[:, None, None, None]
        start = torch.where(propagated, self.pool[b, n], teacher)
        return start, self.frames[b, n + 1]

    def __call__(self) -> float:
        """One training step: draw the pairs, roll out, backpropagate, normalise, Adam, write
        the end states back into the pool."""
        torch = self.torch
        idx = torch.randperm(self.sequences * self.intervals, device=self.dev)[: self.batch]
        b, n = idx // self.intervals, idx % self.intervals
        start, target = self.batch_of(b, n)
        total, end = self.loss(start, target)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        with torch.no_grad():
            for p in self.params:
                p.grad /= p.grad.norm() + 1e-8
        for group in self.opt.param_groups:
            group["lr"] = LEARNING_RATE * 0.1 ** (self.count / DECAY_STEPS)
        self.opt.step()
        self.count += 1
        with torch.no_grad():
            keep = n + 1 < self.intervals  # the last interval's end has no slot
            self.pool[b[keep], n[keep] + 1] = end[keep].detach()
        return total


def check(model, task, step, leaves, side) -> dict:
    """Both sides' loss and gradient norms on one batch drawn by diffdyn's sampler."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    torch = side.torch
    state = step.unflatten(leaves)
    batch = task.augmenter().sample(state.data, jax.random.key(3))
    loss_j, grads = eqx.filter_value_and_grad(lambda m: task.loss(m, batch, jax.random.key(4))[0])(
        model
    )
    b, n = (torch.tensor(np.asarray(batch[k]), device=side.dev) for k in ("sequence", "interval"))
    start, target = side.batch_of(b, n)
    diff_start = float(np.max(np.abs(start.cpu().numpy() - np.asarray(batch["start"]))))
    for p in side.params:
        p.grad = None
    loss_t, _ = side.loss(start, target)
    loss_t.backward()
    g = grads.net
    norms_j = [
        float(jnp.linalg.norm(a))
        for a in (
            g.hidden_layer.weight,
            g.hidden_layer.bias,
            g.output_layer.weight,
            g.output_layer.bias,
        )
    ]
    norms_t = [float(p.grad.norm()) for p in side.params]
    for p in side.params:
        p.grad = None
    lj, lt = float(loss_j), float(loss_t.detach())
    return {
        "loss_diffdyn": lj,
        "loss_torch": lt,
        "loss_rel_diff": abs(lj - lt) / abs(lj),
        "grad_norm_rel_diff": max(abs(a - b) / a for a, b in zip(norms_j, norms_t, strict=True)),
        "start_max_diff": diff_start,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--device",
        choices=("cpu", "gpu"),
        default=None,
        help="default: $DIFFDYN_BENCH_DEVICE or cpu",
    )
    p.add_argument("--sequences", type=int, default=1)
    p.add_argument("--frames", type=int, default=26)
    p.add_argument("--held-out", type=int, default=6)
    p.add_argument("--observed", type=int, default=2)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--steps-per-frame", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per side and round")
    p.add_argument("--torch-threads", type=int, default=0, help="0: PyTorch's default")
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()
    if args.device is not None:
        os.environ["DIFFDYN_BENCH_DEVICE"] = args.device
    import jax

    kind = check_jax()
    frames = recording(args)
    model, task, step, leaves = diffdyn_side(args, frames)
    sizes = {
        "sequences": args.sequences,
        "frames": args.frames,
        "held_out": args.held_out,
        "size": args.size,
        "channels": args.channels,
        "observed": args.observed,
        "hidden": args.hidden,
        "steps_per_frame": args.steps_per_frame,
        "batch": task.batch_size,
        "propagated": task.propagated,
    }
    holder = {"leaves": leaves}

    def jax_once() -> None:
        holder["leaves"], metrics = step.step_leaves(holder["leaves"])
        jax.block_until_ready(metrics["loss"])

    t0 = time.perf_counter()
    jax_once()
    compile_s = time.perf_counter() - t0
    side = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            sys.exit("PyTorch is not installed (the `bench` extra); pass --no-torch")
        dev = torch_setup()
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        torch.manual_seed(0)
        side = TorchSequenceStep(args, frames, model, task, dev)
        emit(benchmark=BENCH, impl="check", **sizes, **check(model, task, step, leaves, side))

    def torch_once() -> None:
        side()
        torch_sync()

    j_best, t_best = float("inf"), float("inf")
    for r in range(args.rounds):
        j_best = min(j_best, best_of(jax_once, args.repeats, warmup=1 if r == 0 else 0))
        if side is not None:
            t_best = min(t_best, best_of(torch_once, args.repeats, warmup=1 if r == 0 else 0))
    params = model.num_parameters()
    emit(
        benchmark=BENCH,
        impl="diffdyn",
        device_kind=kind,
        **sizes,
        parameters=params,
        seconds=j_best,
        steps_per_s=1 / j_best,
        compile_seconds=compile_s,
    )
    if side is None:
        return
    t_params = sum(p.numel() for p in side.params)
    emit(
        benchmark=BENCH,
        impl="torch",
        **sizes,
        parameters=t_params,
        seconds=t_best,
        steps_per_s=1 / t_best,
        torch_threads=side.torch.get_num_threads(),
        torch_version=side.torch.__version__,
    )
    emit(
        benchmark=BENCH,
        impl="ratio",
        **sizes,
        ratio=t_best / j_best,
        note="torch seconds / diffdyn seconds per training step (> 1: diffdyn faster)",
    )


if __name__ == "__main__":
    main()
