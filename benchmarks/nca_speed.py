"""NCA speed: training steps/s and inference cell-updates/s, diffdyn (JAX) beside PyTorch.

Training: one step of the common Trainer on the growing task (sample-pool batch, rollout of
``--steps`` NCA steps, MSE to an RGBA target, backward pass, normalised-gradient Adam update).
Inference: ``--infer-steps`` NCA steps on a ``--infer-size`` grid; the rate counts one
cell-update per cell per step (``B * H * W * steps / seconds``).

The reference is the same NCA written directly in PyTorch (depthwise 3x3 perception by one
grouped ``conv2d`` with circular padding, two 1x1 convolutions, per-cell fire mask, alive
masking by 3x3 max-pool), timed side by side in this run. Each JSON line has ``benchmark``,
``impl``, the sizes and ``seconds`` / rates; ``ratio`` rows give diffdyn / torch rates.

    .venv/bin/python benchmarks/nca_speed.py            # batch 8, 64x64, 16 ch, 64 steps
    .venv/bin/python benchmarks/nca_speed.py --size 128 --repeats 5
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _bench import check_jax, emit, torch_setup, torch_sync


def _print(row: dict) -> None:
    emit(**row)


def _time(fn, repeats: int) -> float:
    fn()  # compile / warm up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def jax_rates(args: argparse.Namespace, layout: str = "last") -> tuple[float, float]:
    from diffdyn.common import OptimConfig, TrainConfig, Trainer
    from diffdyn.nca import NCA, AbstractNCA, Cells, GrowTask

    class ChannelsFirstNCA(NCA):
        """The NCA as before its channels-last rollout: every step in ``[C, H, W]``."""

        increment_channels_last = AbstractNCA.increment_channels_last

    c, s = args.channels, args.size
    key = jax.random.key(0)
    target = jax.random.uniform(key, (4, s, s))
    cls = NCA if layout == "last" else ChannelsFirstNCA
    model = cls(Cells(c, fire_rate=0.5, alive_threshold=0.1), hidden=args.hidden, key=key)
    # a non-zero last layer, so the benchmark does not run the trivial identity
    w = 0.01 * jax.random.normal(jax.random.key(1), model.net.output_layer.weight.shape)
    model = eqx.tree_at(lambda m: m.net.output_layer.weight, model, w)
    task = GrowTask(
        target,
        args.steps,
        pool_size=4 * args.batch,
        batch_size=args.batch,
        damage=2,
        reseed=1,
        checkpoint=args.checkpoint,
    )
    # the NCA recipe, decaying over 1000 steps as before
    optim = OptimConfig(
        "adam", 2e-3, schedule="exponential", decay_rate=0.1, normalise_gradients=True
    )
    trainer = Trainer(task, optim, config=TrainConfig(steps=1000, progress=False))
    state, static = trainer.init_state(model, task.seed(c), key)
    step = trainer.make_step(static)
    holder = {"state": state}

    def train_once() -> None:
        holder["state"], m = step(holder["state"])
        jax.block_until_ready(m["loss"])

    t_train = _time(train_once, args.repeats)

    n = args.infer_size
    x0 = jnp.zeros((c, n, n)).at[3:, ::7, ::7].set(1.0)
    run = jax.jit(lambda x, k: model.rollout(x, args.infer_steps, k))
    t_inf = _time(lambda: jax.block_until_ready(run(x0, key)), args.repeats)
    return 1.0 / t_train, n * n * args.infer_steps / t_inf


class ReferenceStyleNCA(eqx.Module):
    """The NCA as the Differentiable-Patterning reference writes it in JAX: one single-channel
    3x3 ``eqx.nn.Conv2d`` per perception kernel vmapped over the channels (fixed weights kept
    out of the gradient by a partition), ``eqx.nn.Conv2d`` 1x1 layers, a fire mask per
    channel and pixel, and the rollout an ``eqx.internal.scan``. Same features (identity,
    Sobel x and y, Laplacian), widths and fire rate as the diffdyn side; no alive masking
    (the reference has none)."""

    kernels: list
    hidden: eqx.nn.Conv2d
    out: eqx.nn.Conv2d
    fire_rate: float = eqx.field(static=True)

    def __init__(self, channels: int, hidden: int, fire_rate: float, key):
        k1, k2 = jax.random.split(key)
        sob = np.outer([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0]) / 8
        lap = np.array([[1.0, 4.0, 1.0], [4.0, -20.0, 4.0], [1.0, 4.0, 1.0]]) / 6
        ident = np.zeros((3, 3))
        ident[1, 1] = 1.0
        self.kernels = []
        for k in (ident, sob, sob.T, lap):
            conv = eqx.nn.Conv2d(1, 1, 3, use_bias=False, key=k1)
            conv = eqx.tree_at(lambda c: c.weight, conv, jnp.asarray(k, jnp.float32)[None, None])
            self.kernels.append(conv)
        self.hidden = eqx.nn.Conv2d(4 * channels, hidden, 1, use_bias=False, key=k1)
        out = eqx.nn.Conv2d(hidden, channels, 1, key=k2)
        w = 0.01 * jax.random.normal(k2, out.weight.shape)
        self.out = eqx.tree_at(lambda c: (c.weight, c.bias), out, (w, jnp.zeros_like(out.bias)))
        self.fire_rate = fire_rate

    def __call__(self, x, key):
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1)), mode="wrap")
        features = [jax.vmap(lambda c, k=k: k(c[None])[0])(padded) for k in self.kernels]
        dx = self.out(jax.nn.relu(self.hidden(jnp.concatenate(features))))
        sigma = jax.random.bernoulli(key, self.fire_rate, dx.shape)
        return x + sigma * dx


def reference_style_rate(args: argparse.Namespace) -> float:
    """Training steps/s of `ReferenceStyleNCA` (batch ``--batch``, ``--steps`` NCA steps, MSE to
    an RGBA target, nadam), its step written as the reference writes it."""
    import equinox.internal as eqxi
    import optax

    c, s = args.channels, args.size
    key = jax.random.key(0)
    model = ReferenceStyleNCA(c, args.hidden, 0.5, key)
    target = jax.random.uniform(key, (4, s, s))
    x0 = jnp.zeros((args.batch, c, s, s)).at[:, 3:, s // 2, s // 2].set(1.0)
    spec = jax.tree.map(eqx.is_inexact_array, model)
    fixed = [jax.tree.map(lambda _: False, k) for k in model.kernels]
    spec = eqx.tree_at(lambda m: m.kernels, spec, replace=fixed)
    params, static = eqx.partition(model, spec)
    optimiser = optax.nadam(1e-3)

    def loss(p, key):
        m = eqx.combine(p, static)

        def body(x, k):
            return jax.vmap(m)(x, jax.random.split(k, x.shape[0])), None

        x = eqxi.scan(body, x0, jax.random.split(key, args.steps), kind="lax")[0]
        return jnp.mean((x[:, :4] - target) ** 2)

    @eqx.filter_jit
    def step(p, opt_state, key):
        value, grads = eqx.filter_value_and_grad(loss)(p, key)
        updates, opt_state = optimiser.update(grads, opt_state, p)
        return eqx.apply_updates(p, updates), opt_state, value

    holder = {"p": params, "o": optimiser.init(params), "k": key}

    def train_once() -> None:
        holder["k"], k = jax.random.split(holder["k"])
        holder["p"], holder["o"], value = step(holder["p"], holder["o"], k)
        jax.block_until_ready(value)

    return 1.0 / _time(train_once, args.repeats)


def torch_rates(args: argparse.Namespace) -> tuple[float, float] | None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch_setup()
    torch.manual_seed(0)
    c, s, hid = args.channels, args.size, args.hidden
    sob = np.outer([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0]) / 8
    lap = np.array([[1.0, 4.0, 1.0], [4.0, -20.0, 4.0], [1.0, 4.0, 1.0]]) / 6
    ident = np.zeros((3, 3))
    ident[1, 1] = 1.0
    base = np.stack([ident, sob, sob.T, lap])  # [4, 3, 3]
    kernel = torch.tensor(np.repeat(base[None], c, 0).reshape(4 * c, 1, 3, 3), dtype=torch.float32)
    w1 = torch.nn.Conv2d(4 * c, hid, 1)
    w2 = torch.nn.Conv2d(hid, c, 1)
    torch.nn.init.normal_(w2.weight, std=0.01)
    torch.nn.init.zeros_(w2.bias)
    params = list(w1.parameters()) + list(w2.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)

    def alive(x):
        return F.max_pool2d(F.pad(x[:, 3:4], (1, 1, 1, 1), mode="circular"), 3, 1) > 0.1

    def step(x):
        p = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), kernel, groups=c)
        dx = w2(torch.relu(w1(p)))
        fire = (torch.rand(x.shape[0], 1, x.shape[2], x.shape[3]) < 0.5).float()
        pre = alive(x)
        x = x + dx * fire
        return x * (pre & alive(x)).float()

    target = torch.rand(4, s, s)
    x0 = torch.zeros(args.batch, c, s, s)
    x0[:, 3:, s // 2, s // 2] = 1.0

    def train_once() -> None:
        x = x0
        for _ in range(args.steps):
            x = step(x)
        loss = ((x[:, :4] - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.grad /= p.grad.norm() + 1e-8
        opt.step()
        torch_sync()

    t_train = _time(train_once, args.repeats)
    n = args.infer_size
    xi = torch.zeros(1, c, n, n)
    xi[:, 3:, ::7, ::7] = 1.0

    def infer() -> None:
        with torch.no_grad():
            x = xi
            for _ in range(args.infer_steps):
                x = step(x)
        torch_sync()

    t_inf = _time(infer, args.repeats)
    return 1.0 / t_train, n * n * args.infer_steps / t_inf


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--steps", type=int, default=64, help="NCA steps per training rollout")
    p.add_argument("--infer-size", type=int, default=256)
    p.add_argument("--infer-steps", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--checkpoint", action="store_true", help="jax.checkpoint every step")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument(
        "--channels-first",
        action="store_true",
        help="also time the channels-first rollout (every step in [C, H, W]) for comparison",
    )
    p.add_argument(
        "--reference-style",
        action="store_true",
        help="also time the NCA written as the Differentiable-Patterning reference writes it",
    )
    args = p.parse_args()
    sizes = {
        "batch": args.batch,
        "size": args.size,
        "channels": args.channels,
        "hidden": args.hidden,
        "steps": args.steps,
    }
    infer = {"size": args.infer_size, "channels": args.channels, "steps": args.infer_steps}
    device = check_jax()
    if args.channels_first:
        f_train, f_inf = jax_rates(args, "first")
        rates = {"steps_per_s": f_train, "cell_updates_per_s": f_inf}
        _print({"benchmark": "nca", "impl": "diffdyn channels-first", **sizes, **rates})
    j_train, j_inf = jax_rates(args)
    if args.channels_first:
        _print(
            {
                "benchmark": "nca",
                "impl": "ratio channels-last / channels-first",
                **sizes,
                "train_ratio": j_train / f_train,
                "inference_ratio": j_inf / f_inf,
            }
        )
    _print(
        {
            "benchmark": "nca_train",
            "impl": "diffdyn",
            "device_kind": device,
            **sizes,
            "seconds": 1 / j_train,
            "steps_per_s": j_train,
        }
    )
    _print(
        {
            "benchmark": "nca_inference",
            "impl": "diffdyn",
            "device_kind": device,
            **infer,
            "cell_updates_per_s": j_inf,
        }
    )
    if args.reference_style:
        r_train = reference_style_rate(args)
        _print(
            {
                "benchmark": "nca_train",
                "impl": "reference-style jax",
                **sizes,
                "steps_per_s": r_train,
            }
        )
        _print(
            {
                "benchmark": "nca_train",
                "impl": "ratio diffdyn / reference-style jax",
                **sizes,
                "ratio": j_train / r_train,
            }
        )
    t = None if args.no_torch else torch_rates(args)
    if t is None:
        return
    t_train, t_inf = t
    _print(
        {
            "benchmark": "nca_train",
            "impl": "torch",
            **sizes,
            "seconds": 1 / t_train,
            "steps_per_s": t_train,
        }
    )
    _print(
        {
            "benchmark": "nca_inference",
            "impl": "torch",
            **infer,
            "cell_updates_per_s": t_inf,
        }
    )
    _print(
        {
            "benchmark": "nca_train",
            "impl": "ratio",
            **sizes,
            "ratio": j_train / t_train,
            "note": "diffdyn / torch steps per second",
        }
    )
    _print(
        {
            "benchmark": "nca_inference",
            "impl": "ratio",
            **infer,
            "ratio": j_inf / t_inf,
            "note": "diffdyn / torch cell-updates per second",
        }
    )


if __name__ == "__main__":
    main()
