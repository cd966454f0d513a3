r"""KuraNet experiments: typed configs, data, the training loss, and trained-vs-control evaluation.

The experiments follow the KuraNet reference implementation (Ricci et al. 2021,
serre-lab/KuraNet). One network is ``N`` = ``num_units`` nodes whose features are drawn i.i.d.
from a data set of ``num_samples`` samples; each training step draws ``networks_per_step`` fresh
networks (KuraNet: one), computes $K$ = KuraNet(features), runs the phase dynamics with Euler
steps of size ``alpha`` and takes the loss on the last ``gd`` grid points only:

1. (delays only) ``max_delay`` undelayed steps build the phase history (no gradient);
2. ``burn_in`` grid points (``burn_in - 1`` steps) without gradient (``stop_gradient`` of
   $K$ and of the state that leaves the burn-in);
3. ``gd`` grid points (``gd - 1`` steps) with gradient; the loss averages all ``gd`` points.

Point counts follow KuraNet's grids (``n`` points = ``n - 1`` Euler steps). Presets in
`EXPERIMENTS` carry KuraNet's settings:

=================  ======  ==========  ========  ===========  ===============  ======
experiment         model   features    norm      steps        optimiser        clip
=================  ======  ==========  ========  ===========  ===============  ======
``global``         full    ω~U(-1,1)   node      200          SGD 5e-4         1
``global-field``   full    + h~U(-1,1) node      200          SGD 1e-2         1
``global-delay``   full    ω~U(2,4),   node      300          SGD 5e-2, m 0.5  5
                           τ~NB(15,.5)
``cluster``        xy      GMM, G=9    graph     300          Adam 5e-5        10
``image``          xy      pixels      graph     385          SGD 5e-3, m 0.5  10
=================  ======  ==========  ========  ===========  ===============  ======

Full model features are ``x = (h, ω, τ)`` (KuraNet's sorted key order). The image experiment
segments one picture by synchrony: features ``[R, G, B, x/w, y/h]`` per pixel, pixels split
50/50 into train and test; by default the picture is matplotlib's ``grace_hopper.jpg`` with
``num_classes`` colour classes found by k-means (a user PNG and label mask can be given).

Deviations from KuraNet, on purpose: pair batch norm always uses the current network's
statistics (see `diffdyn.oscillators`); the delay pre-history is always ``max_delay``
undelayed steps (KuraNet uses the network's own largest delay); data are drawn with
``jax.random`` (KuraNet's numpy streams cannot be reproduced bit for bit).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._kuramoto import (
    Kuramoto,
    XYModel,
    one_hot_groups,
    order_parameter,
    simulate,
)
from ._kuranet import KuraNet, circular_moments, circular_variance

__all__ = [
    "ExperimentConfig",
    "EXPERIMENTS",
    "get_experiment",
    "configure_experiment",
    "quick_experiment",
    "kuranet_data",
    "load_kuranet_image",
    "make_kuranet",
    "KuraNetTask",
    "evaluate_kuranet",
    "kuranet_optimiser",
    "train_experiment",
]

Distribution = Literal["zero", "uniform1", "uniform2"]


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A KuraNet experiment (see the module docstring for the presets)."""

    name: str = dataclasses.field(default="global", metadata={"help": "experiment name"})
    model: Literal["full", "xy"] = dataclasses.field(
        default="full", metadata={"help": "full: omega + K sin + h sin, delays; xy: (1/N) K sin"}
    )
    features: Literal["oscillator", "gmm", "image"] = dataclasses.field(
        default="oscillator", metadata={"help": "node features: (h, omega, tau), GMM, pixels"}
    )
    omega: Distribution = dataclasses.field(
        default="uniform1", metadata={"help": "omega ~ zero | U(-1,1) | U(2,4)"}
    )
    field: Literal["zero", "uniform1"] = dataclasses.field(
        default="zero", metadata={"help": "external field h ~ zero | U(-1,1)"}
    )
    delay: Literal["zero", "negative-binomial"] = dataclasses.field(
        default="zero", metadata={"help": "delays tau ~ zero | NB(15, 0.5) steps"}
    )
    max_delay: int = dataclasses.field(default=40, metadata={"help": "delay clip (steps)"})
    num_classes: int = dataclasses.field(
        default=0, metadata={"help": "groups (GMM components / image classes); 0: global"}
    )
    gmm_radius: float = dataclasses.field(default=10.0, metadata={"help": "GMM centre radius"})
    image: str = dataclasses.field(
        default="", metadata={"help": "image file ('' = matplotlib's grace_hopper.jpg)"}
    )
    labels: str = dataclasses.field(
        default="", metadata={"help": "label PNG (class index per pixel; '' = k-means colours)"}
    )
    image_width: int = dataclasses.field(default=80, metadata={"help": "image resized to this"})
    num_units: int = dataclasses.field(default=100, metadata={"help": "oscillators per network"})
    num_samples: int = dataclasses.field(default=10000, metadata={"help": "samples per split"})
    data_seed: int = dataclasses.field(default=0, metadata={"help": "seed of the data sets"})
    hidden: int = dataclasses.field(default=128, metadata={"help": "hidden units of the MLP"})
    normalise: Literal["node", "graph", "none"] = dataclasses.field(
        default="node", metadata={"help": "coupling normalisation"}
    )
    avg_deg: float = dataclasses.field(default=1.0, metadata={"help": "node: mean degree"})
    symmetric: bool = dataclasses.field(default=True, metadata={"help": "symmetrise K"})
    gain: float = dataclasses.field(default=0.0, metadata={"help": "Xavier gain (0: default)"})
    alpha: float = dataclasses.field(default=0.1, metadata={"help": "Euler step"})
    burn_in: int = dataclasses.field(default=100, metadata={"help": "burn-in grid points"})
    gd: int = dataclasses.field(default=50, metadata={"help": "loss-window grid points"})
    initial_phase: Literal["zero", "normal"] = dataclasses.field(
        default="zero", metadata={"help": "theta(0) = 0 or ~ N(pi, 1)"}
    )
    loss: Literal["circular-variance", "circular-moments"] = dataclasses.field(
        default="circular-variance", metadata={"help": "synchrony loss"}
    )
    optimiser: Literal["sgd", "adam"] = dataclasses.field(
        default="sgd", metadata={"help": "optimiser"}
    )
    lr: float = dataclasses.field(default=5e-4, metadata={"help": "learning rate"})
    momentum: float = dataclasses.field(default=0.0, metadata={"help": "SGD momentum"})
    clip: float = dataclasses.field(default=1.0, metadata={"help": "global gradient-norm clip"})
    steps: int = dataclasses.field(default=200, metadata={"help": "training steps"})
    networks_per_step: int = dataclasses.field(
        default=1, metadata={"help": "networks per training step"}
    )
    eval_networks: int = dataclasses.field(
        default=10, metadata={"help": "held-out networks for evaluation"}
    )
    eval_burn_in: int = dataclasses.field(
        default=100, metadata={"help": "burn-in grid points of the long evaluation run"}
    )
    eval_window: int = dataclasses.field(
        default=1901, metadata={"help": "loss grid points of the long evaluation run"}
    )
    size_eval: tuple[int, ...] = dataclasses.field(
        default=(1000,), metadata={"help": "network sizes of the size-generalisation test"}
    )
    size_eval_networks: int = dataclasses.field(
        default=2, metadata={"help": "networks per size in the size-generalisation test"}
    )

    def __post_init__(self) -> None:
        positive = ("num_units", "num_samples", "hidden", "steps", "networks_per_step")
        for name in positive + ("eval_networks", "image_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        for name in ("gd", "eval_window"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be >= 2 grid points; got {getattr(self, name)}")
        for name in ("burn_in", "eval_burn_in", "max_delay", "num_classes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0; got {self.alpha}")
        if self.loss == "circular-moments" and self.num_classes < 1:
            raise ValueError("loss 'circular-moments' needs num_classes >= 1; got 0")
        if self.features != "oscillator" and self.model == "full":
            raise ValueError(f"features {self.features!r} need model 'xy'; got 'full'")
        if self.features == "oscillator" and self.model == "xy":
            raise ValueError("features 'oscillator' need model 'full'; got 'xy'")
        if self.features == "gmm" and self.num_classes < 1:
            raise ValueError("features 'gmm' need num_classes >= 1 (mixture components)")
        if any(n < 2 for n in self.size_eval):
            raise ValueError(f"size_eval sizes must be >= 2; got {self.size_eval}")

    @property
    def uses_delays(self) -> bool:
        return self.delay != "zero" and self.max_delay > 0

    @property
    def feature_dim(self) -> int:
        return {"oscillator": 3, "gmm": 2, "image": 5}[self.features]


_GLOBAL = ExperimentConfig()
EXPERIMENTS: dict[str, ExperimentConfig] = {
    "global": _GLOBAL,
    "global-field": dataclasses.replace(_GLOBAL, name="global-field", field="uniform1", lr=0.01),
    "global-delay": dataclasses.replace(
        _GLOBAL,
        name="global-delay",
        omega="uniform2",
        delay="negative-binomial",
        lr=0.05,
        momentum=0.5,
        clip=5.0,
        steps=300,
        data_seed=1,
    ),
    "cluster": dataclasses.replace(
        _GLOBAL,
        name="cluster",
        model="xy",
        features="gmm",
        num_classes=9,
        normalise="graph",
        initial_phase="normal",
        alpha=15.0,
        burn_in=0,
        gd=100,
        loss="circular-moments",
        optimiser="adam",
        lr=5e-5,
        clip=10.0,
        gain=0.5,
        steps=300,
        eval_burn_in=0,
        eval_window=500,
        data_seed=3,
    ),
    "image": dataclasses.replace(
        _GLOBAL,
        name="image",
        model="xy",
        features="image",
        num_classes=4,
        normalise="graph",
        initial_phase="normal",
        alpha=15.0,
        burn_in=200,
        gd=50,
        loss="circular-moments",
        optimiser="sgd",
        lr=5e-3,
        momentum=0.5,
        clip=10.0,
        gain=0.5,
        num_units=1000,
        steps=385,
        eval_networks=4,
        eval_burn_in=0,
        eval_window=500,
        size_eval=(2000,),
    ),
}
"""The KuraNet experiments of Ricci et al. (2021) as presets, by name."""


def get_experiment(name: str) -> ExperimentConfig:
    """The preset called ``name`` (one of `EXPERIMENTS`)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def quick_experiment(cfg: ExperimentConfig) -> ExperimentConfig:
    """Small settings of ``cfg`` for tests, notebooks and the quickstart."""
    return dataclasses.replace(
        cfg,
        num_samples=min(cfg.num_samples, 2000),
        num_units=min(cfg.num_units, 60),
        hidden=min(cfg.hidden, 32),
        steps=min(cfg.steps, 40),
        eval_networks=min(cfg.eval_networks, 4),
        eval_window=min(cfg.eval_window, 300),
        size_eval=tuple(min(n, 200) for n in cfg.size_eval[:1]),
        size_eval_networks=1,
        image_width=min(cfg.image_width, 40),
    )


# ---------------------------------------------------------------------- data
def sample_distribution(key: PRNGKeyArray, name: str, n: int) -> Float[Array, " n"]:
    if name == "zero":
        return jnp.zeros((n,))
    if name == "uniform1":
        return jax.random.uniform(key, (n,), minval=-1.0, maxval=1.0)
    if name == "uniform2":
        return jax.random.uniform(key, (n,), minval=2.0, maxval=4.0)
    raise ValueError(f"unknown distribution {name!r}; known: zero, uniform1, uniform2")


def negative_binomial(
    key: PRNGKeyArray, total_count: float, probs: float, shape: tuple[int, ...]
) -> Int[Array, "..."]:
    r"""Samples of NB(r, p) as torch parameterises it (mean $rp/(1-p)$): a Poisson with
    a Gamma($r$, scale $p/(1-p)$) rate."""
    kg, kp = jax.random.split(key)
    rate = jax.random.gamma(kg, total_count, shape) * (probs / (1.0 - probs))
    return jax.random.poisson(kp, rate, shape)


def _oscillator_split(cfg: ExperimentConfig, key: PRNGKeyArray) -> dict[str, Array]:
    kh, kw, kt = jax.random.split(key, 3)
    n = cfg.num_samples
    h = sample_distribution(kh, cfg.field, n)
    omega = sample_distribution(kw, cfg.omega, n)
    if cfg.uses_delays:
        tau = jnp.minimum(negative_binomial(kt, 15.0, 0.5, (n,)), cfg.max_delay)
        tau = tau.astype(jnp.float32)
    else:
        tau = jnp.zeros((n,))
    return {"x": jnp.stack([h, omega, tau], -1), "labels": jnp.zeros((n,), jnp.int32)}


def _gmm_split(cfg: ExperimentConfig, key: PRNGKeyArray) -> dict[str, Array]:
    kl, kn = jax.random.split(key)
    g, n = cfg.num_classes, cfg.num_samples
    labels = jax.random.randint(kl, (n,), 0, g)
    angle = 2 * jnp.pi * labels / g
    centres = cfg.gmm_radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
    return {"x": centres + jax.random.normal(kn, (n, 2)), "labels": labels.astype(jnp.int32)}


def load_kuranet_image(cfg: ExperimentConfig) -> tuple[np.ndarray, np.ndarray]:
    """The picture ``[3, H, W]`` in [0, 1] resized to ``image_width``, and labels ``[H, W]``.

    Labels come from ``cfg.labels`` (a PNG of class indices, resized by nearest neighbour)
    or, by default, from k-means with ``num_classes`` centres on the pixel colours.
    """
    from PIL import Image

    if cfg.image:
        path = Path(cfg.image)
        if not path.is_file():
            raise ValueError(f"image file {cfg.image!r} does not exist")
    else:
        import matplotlib.cbook

        path = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    img = Image.open(path).convert("RGB")
    w = cfg.image_width
    h = max(1, round(img.height * w / img.width))
    rgb = np.asarray(img.resize((w, h), Image.BILINEAR), np.float32).transpose(2, 0, 1) / 255
    if cfg.labels:
        lpath = Path(cfg.labels)
        if not lpath.is_file():
            raise ValueError(f"label file {cfg.labels!r} does not exist")
        lab = np.asarray(Image.open(lpath).resize((w, h), Image.NEAREST))
        if lab.ndim == 3:
            lab = lab[..., 0]
        labels = lab.astype(np.int32)
        if labels.max() >= cfg.num_classes:
            raise ValueError(
                f"label file has class {labels.max()} but num_classes = {cfg.num_classes}"
            )
    else:
        labels = kmeans_labels(rgb.reshape(3, -1).T, cfg.num_classes).reshape(h, w)
    return rgb, labels


def kmeans_labels(points: np.ndarray, k: int, iterations: int = 50) -> np.ndarray:
    """Lloyd's k-means on ``[P, D]`` points from centres at brightness quantiles; labels are
    ordered by cluster size (0 = the largest)."""
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    order = np.argsort(points.sum(1))
    centres = points[order[((np.arange(k) + 0.5) / k * len(points)).astype(int)]]
    for _ in range(iterations):
        labels = np.argmin(((points[:, None] - centres[None]) ** 2).sum(-1), 1)
        centres = np.stack(
            [points[labels == c].mean(0) if np.any(labels == c) else centres[c] for c in range(k)]
        )
    rank = np.argsort(-np.bincount(labels, minlength=k))
    return np.argsort(rank)[labels].astype(np.int32)


def _image_splits(cfg: ExperimentConfig, key: PRNGKeyArray) -> dict[str, dict[str, Array]]:
    rgb, labels = load_kuranet_image(cfg)
    _, h, w = rgb.shape
    yy, xx = np.meshgrid(np.arange(h) / h, np.arange(w) / w, indexing="ij")
    feats = np.concatenate([rgb, xx[None], yy[None]], 0).reshape(5, -1).T.astype(np.float32)
    perm = np.asarray(jax.random.permutation(key, feats.shape[0]))
    half = feats.shape[0] // 2
    flat = labels.reshape(-1)
    split = {
        "train": {"x": jnp.asarray(feats[perm[:half]]), "labels": jnp.asarray(flat[perm[:half]])},
        "test": {"x": jnp.asarray(feats[perm[half:]]), "labels": jnp.asarray(flat[perm[half:]])},
    }
    return split


def configure_experiment(name: str, *, quick: bool = False, **overrides: Any) -> ExperimentConfig:
    """The preset ``name`` (reduced by `quick_experiment` when ``quick``) with ``overrides``
    replacing its fields; overrides that are ``None`` keep the preset's value."""
    base = get_experiment(name)
    if quick:
        base = quick_experiment(base)
    changes = {k: v for k, v in overrides.items() if v is not None}
    try:
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as e:
        raise ValueError(f"invalid {name} experiment: {e}") from None


def kuranet_data(cfg: ExperimentConfig) -> dict[str, dict[str, Array]]:
    """``{"train": {"x": [S, F], "labels": [S]}, "test": {...}}`` from ``cfg.data_seed``
    (train drawn first, then test, from the same seed)."""
    key = jax.random.key(cfg.data_seed)
    if cfg.features == "image":
        splits = _image_splits(cfg, key)
    else:
        make = _oscillator_split if cfg.features == "oscillator" else _gmm_split
        k_train, k_test = jax.random.split(key)
        splits = {"train": make(cfg, k_train), "test": make(cfg, k_test)}
    for name, split in splits.items():
        if split["x"].shape[0] < cfg.num_units:
            raise ValueError(
                f"the {name} split has {split['x'].shape[0]} samples, fewer than "
                f"num_units = {cfg.num_units}"
            )
    return splits


def make_kuranet(cfg: ExperimentConfig, key: PRNGKeyArray) -> KuraNet:
    """The coupling network of ``cfg`` with fresh weights."""
    return KuraNet(
        cfg.feature_dim,
        cfg.hidden,
        cfg.normalise,
        cfg.avg_deg,
        cfg.symmetric,
        cfg.gain,
        key=key,
    )


# ---------------------------------------------------------------------- dynamics and loss
class KuraNetTask(eqx.Module):
    """The loss of one or more networks: ``task(model, batch, key) -> (loss, aux)``.

    ``batch`` is ``{"x": [B*N, F], "labels": [B*N]}`` (``B`` networks of ``N`` nodes, as
    drawn by `ArrayAugmenter`); the loss is the mean over networks.
    """

    cfg: ExperimentConfig = eqx.field(static=True)
    num_units: int = eqx.field(static=True)
    burn_in: int = eqx.field(static=True)
    window: int = eqx.field(static=True)

    def __init__(
        self,
        cfg: ExperimentConfig,
        num_units: int | None = None,
        burn_in: int | None = None,
        window: int | None = None,
    ):
        self.cfg = cfg
        self.num_units = cfg.num_units if num_units is None else int(num_units)
        self.burn_in = cfg.burn_in if burn_in is None else int(burn_in)
        self.window = cfg.gd if window is None else int(window)

    def vector_field(self, coupling: Array, x: Array) -> Kuramoto | XYModel:
        if self.cfg.model == "full":
            delays = jnp.round(x[:, 2]).astype(jnp.int32) if self.cfg.uses_delays else None
            return Kuramoto(coupling, omega=x[:, 1], field=x[:, 0], delays=delays)
        return XYModel(coupling)

    def initial_phase(self, key: PRNGKeyArray, n: int) -> Float[Array, " n"]:
        if self.cfg.initial_phase == "zero":
            return jnp.zeros((n,))
        return jnp.pi + jax.random.normal(key, (n,))

    @property
    def _delay(self) -> int:
        return self.cfg.max_delay if self.cfg.uses_delays else 0

    def _run(self, field, theta, steps: int, past):
        return simulate(
            field, theta, dt=self.cfg.alpha, steps=steps, max_delay=self._delay, past=past
        )

    def window_start(
        self, field: Kuramoto | XYModel, key: PRNGKeyArray, n: int
    ) -> tuple[Float[Array, " n"], Float[Array, "d n"] | None]:
        """The (gradient-free) state entering the loss window, and its phase history
        ``[max_delay, N]`` (None without delays): pre-history, then burn-in."""
        frozen = jax.lax.stop_gradient(field)
        theta = self.initial_phase(key, n)
        delay, past = self._delay, None
        if delay:
            pre = simulate(frozen, theta, dt=self.cfg.alpha, steps=delay)
            past, theta = pre[:-1], pre[-1]
        if self.burn_in > 1:
            traj = self._run(frozen, theta, self.burn_in - 1, past)
            if delay:
                past = jnp.concatenate([past, traj[:-1]], 0)[-delay:]
            theta = traj[-1]
        return jax.lax.stop_gradient((theta, past))

    def window_phases(
        self, field: Kuramoto | XYModel, theta: Float[Array, " n"], past: Array | None
    ) -> Float[Array, "t n"]:
        """The phases on the loss window ``[window, N]`` from ``theta`` (and ``past``)."""
        return self._run(field, theta, self.window - 1, past)

    def phases(
        self, model: KuraNet, x: Float[Array, "n f"], key: PRNGKeyArray
    ) -> Float[Array, "t n"]:
        """The phases on the loss window ``[window, N]`` (gradients only through it)."""
        field = self.vector_field(model(x), x)
        theta, past = self.window_start(field, key, x.shape[0])
        return self.window_phases(field, theta, past)

    def network_loss(self, phases: Float[Array, "t n"], labels: Int[Array, " n"]) -> Array:
        if self.cfg.loss == "circular-variance":
            return circular_variance(phases)
        return circular_moments(phases, one_hot_groups(labels, self.cfg.num_classes))

    def __call__(
        self, model: KuraNet, batch: dict[str, Array], key: PRNGKeyArray
    ) -> tuple[Array, dict[str, Array]]:
        x, labels = batch["x"], batch["labels"]
        n = self.num_units
        if x.shape[0] % n:
            raise ValueError(f"batch of {x.shape[0]} nodes is not a multiple of N = {n}")
        b = x.shape[0] // n
        x = x.reshape(b, n, -1)
        labels = labels.reshape(b, n)
        keys = jax.random.split(key, b)

        def one(xi, li, ki):
            th = self.phases(model, xi, ki)
            return self.network_loss(th, li), jnp.mean(order_parameter(th))

        if b == 1:  # KuraNet's case; a vmapped solve loop would cost more than the network
            loss, r = one(x[0], labels[0], keys[0])
            return loss, {"order_parameter": r}
        losses, r = jax.vmap(one)(x, labels, keys)
        return jnp.mean(losses), {"order_parameter": jnp.mean(r)}


def draw_networks(
    split: dict[str, Array], key: PRNGKeyArray, networks: int, n: int
) -> dict[str, Array]:
    """``networks`` networks of ``n`` nodes drawn without replacement (within a network)
    from a data split, flattened to ``[networks * n, ...]``."""
    total = split["x"].shape[0]
    if n > total:
        raise ValueError(f"a network of N = {n} needs at least {n} samples; the split has {total}")
    keys = jax.random.split(key, networks)
    idx = jnp.concatenate([jax.random.choice(k, total, (n,), replace=False) for k in keys])
    return {k: v[idx] for k, v in split.items()}


def evaluate_kuranet(
    model: KuraNet,
    cfg: ExperimentConfig,
    split: dict[str, Array],
    key: PRNGKeyArray,
    *,
    networks: int,
    num_units: int,
    burn_in: int,
    window: int,
) -> dict[str, Any]:
    """Mean loss over ``networks`` held-out networks of ``num_units`` nodes, each run for
    ``burn_in`` + ``window`` grid points; also the mean $R(t)$ on the window and the
    phases of the first network (for figures)."""
    task = KuraNetTask(cfg, num_units, burn_in, window)
    k_draw, k_run = jax.random.split(key)
    batch = draw_networks(split, k_draw, networks, num_units)

    @eqx.filter_jit
    def run(model, x, labels, k):
        th = task.phases(model, x, k)
        return task.network_loss(th, labels), order_parameter(th), th

    losses, curves, first = [], [], None
    x = batch["x"].reshape(networks, num_units, -1)
    labels = batch["labels"].reshape(networks, num_units)
    for i, k in enumerate(jax.random.split(k_run, networks)):
        loss, r, th = run(model, x[i], labels[i], k)
        losses.append(float(loss))
        curves.append(np.asarray(r))
        if i == 0:
            first = {
                "phases": np.asarray(th),
                "x": np.asarray(x[0]),
                "labels": np.asarray(labels[0]),
            }
    return {
        "loss": float(np.mean(losses)),
        "loss_sd": float(np.std(losses)),
        "order_parameter": np.mean(curves, 0),
        "example": first,
    }


def kuranet_optimiser(cfg: ExperimentConfig):
    """``clip_by_global_norm(clip)`` then SGD (with momentum) or Adam, as in KuraNet."""
    from diffdyn.common import make_optimiser

    kw = {"momentum": cfg.momentum} if cfg.optimiser == "sgd" and cfg.momentum > 0 else {}
    return make_optimiser(cfg.optimiser, cfg.lr, clip_norm=cfg.clip, **kw)


def train_experiment(
    cfg: ExperimentConfig,
    key: PRNGKeyArray,
    *,
    out: str | Path | None = None,
    logger: Any = None,
    resume: bool = False,
    progress: bool = False,
    data: dict[str, dict[str, Array]] | None = None,
) -> dict[str, Any]:
    """Train KuraNet on ``cfg`` and evaluate it against its untrained initialisation (the
    control: same architecture and normalisation) on held-out networks: at the training
    window, on the long run (``eval_burn_in`` + ``eval_window``) and at the sizes
    ``size_eval``. Returns metrics and, under ``"artifacts"``, models and curves."""
    from diffdyn.common import ArrayAugmenter, TrainConfig, Trainer

    data = kuranet_data(cfg) if data is None else data
    k_model, k_train, k_eval = jax.random.split(key, 3)
    control = make_kuranet(cfg, k_model)
    trainer = Trainer(
        KuraNetTask(cfg),
        kuranet_optimiser(cfg),
        ArrayAugmenter(cfg.num_units * cfg.networks_per_step),
        config=TrainConfig(steps=cfg.steps, log_every=min(10, cfg.steps), progress=progress),
        logger=logger,
        out=out,
    )
    result = trainer.fit(control, data["train"], k_train, resume=resume)
    trained = result.model
    metrics: dict[str, Any] = {
        "train_loss_first": float(result.losses[0]) if len(result.losses) else float("nan"),
        "train_loss_final": float(np.mean(result.losses[-10:])),
        "train_seconds": result.seconds,
        "steps_per_second": result.steps / max(result.seconds, 1e-9),
    }
    artifacts: dict[str, Any] = {"trained": trained, "control": control, "losses": result.losses}
    runs = {
        "test": (cfg.num_units, cfg.burn_in, cfg.gd, cfg.eval_networks),
        "long": (cfg.num_units, cfg.eval_burn_in, cfg.eval_window, cfg.eval_networks),
    }
    for n in cfg.size_eval:
        runs[f"size{n}"] = (n, cfg.eval_burn_in, cfg.eval_window, cfg.size_eval_networks)
    for name, (n, burn, window, nets) in runs.items():
        split = data["test"]
        if n > split["x"].shape[0]:
            continue
        k = jax.random.fold_in(k_eval, n)
        for label, m in (("trained", trained), ("control", control)):
            ev = evaluate_kuranet(
                m, cfg, split, k, networks=nets, num_units=n, burn_in=burn, window=window
            )
            metrics[f"{name}_loss_{label}"] = ev["loss"]
            artifacts[f"{name}_{label}"] = ev
    metrics["artifacts"] = artifacts
    return metrics
