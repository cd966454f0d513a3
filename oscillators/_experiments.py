r"""KuraNet experiments: typed configs and presets, data, the training task, and evaluation
against an untrained control.

The experiments follow the KuraNet reference implementation (Ricci et al. 2021,
serre-lab/KuraNet). One network is ``N`` = ``num_units`` nodes whose features are drawn i.i.d.
from a data set of ``num_samples`` samples; each training step draws ``networks_per_step`` fresh
networks (KuraNet: one), computes $K$ = KuraNet(features), runs the phase dynamics with Euler
steps of size ``alpha`` and takes the loss on the last ``gd`` grid points only:

1. (delays only) ``max_delay`` undelayed steps build the phase history (no gradient);
2. ``burn_in`` grid points (``burn_in - 1`` steps) without gradient (``stop_gradient`` of
   $K$ and of the state that leaves the burn-in);
3. ``gd`` grid points (``gd - 1`` steps) with gradient; the loss averages all ``gd`` points.

Point counts follow KuraNet's grids (``n`` points = ``n - 1`` Euler steps). The presets in
`EXPERIMENTS` carry KuraNet's settings (``optim`` and ``train`` are an `OptimConfig` and a
`TrainConfig`):

=================  ======  ==========  ========  ===========  ===============  =========
experiment         model   features    norm      train.steps  optimiser        clip_norm
=================  ======  ==========  ========  ===========  ===============  =========
``global``         full    ω~U(-1,1)   node      200          SGD 5e-4         1
``global-field``   full    + h~U(-1,1) node      200          SGD 1e-2         1
``global-delay``   full    ω~U(2,4),   node      300          SGD 5e-2, m 0.5  5
                           τ~NB(15,.5)
``cluster``        xy      GMM, G=9    graph     300          Adam 5e-5        10
``image``          xy      pixels      graph     385          SGD 5e-3, m 0.5  10
=================  ======  ==========  ========  ===========  ===============  =========

Full model features are ``x = (h, ω, τ)`` (KuraNet's sorted key order). The image experiment
segments one picture by synchrony: features ``[R, G, B, x/w, y/h]`` per pixel, pixels split
50/50 into train and test; by default the picture is matplotlib's ``grace_hopper.jpg`` with
``num_classes`` colour classes found by k-means (a user PNG and label mask can be given).

Training is one `Trainer` run of a `KuraNetTask`. The task holds ``eval_networks`` held-out
validation networks (fixed networks and initial phases, so that scores at different steps
differ only by the model) and the trainer keeps the model with the lowest validation loss.
Every ``train.validate_every`` steps (KuraNet: once per epoch, `ExperimentConfig.steps_per_epoch`
steps) the validation loss, its spread, the order parameter and Brede's $c_x$ go to
TensorBoard under ``validation/``; with ``measure_cx`` the $c_x$ of each step's couplings goes
under ``train/cx``. `train_experiment` then evaluates that model and its untrained
initialisation (the control) on networks of the test split: at the training window, on a long
run and at other sizes (`evaluate_sizes`, up to the whole split, e.g. $10^4$ nodes).

With ``population = M`` a training network is a population of ``M`` nodes of which, at every
Euler step, a fresh random sub-network of ``num_units`` nodes is updated with couplings computed
on that sub-network alone (`SubsampledNetwork`, KuraNet's ``rand_inds``); the loss is taken on
the whole population.

Deviations from KuraNet, on purpose: pair batch norm always uses the current network's
statistics (see `diffdyn.oscillators`); the delay pre-history is always ``max_delay``
undelayed steps (KuraNet uses the network's own largest delay); data are drawn with
``jax.random`` (KuraNet's numpy streams cannot be reproduced bit for bit); the model is chosen
by validation loss (KuraNet keeps the last one).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from diffdyn.common import (
    AbstractTask,
    ArrayAugmenter,
    OptimConfig,
    SolveConfig,
    TrainConfig,
    Trainer,
    TrainResult,
)
from diffdyn.common._helpers import read_array, read_image

from ._kuramoto import (
    Kuramoto,
    XYModel,
    coupling_sum,
    one_hot_groups,
    order_parameter,
    simulate,
)
from ._kuranet import (
    KuraNet,
    circular_moments,
    circular_variance,
    cohn_loss,
    feature_assortativity,
)

__all__ = [
    "ExperimentConfig",
    "EXPERIMENTS",
    "get_experiment",
    "configure_experiment",
    "quick_experiment",
    "kuranet_data",
    "load_kuranet_image",
    "make_kuranet",
    "subsample_nodes",
    "SubsampledNetwork",
    "KuraNetTask",
    "evaluate_kuranet",
    "evaluate_sizes",
    "ExperimentResult",
    "train_experiment",
    "image_phase_map",
    "KuramotoConfig",
    "simulate_network",
]

Distribution = Literal["zero", "uniform1", "uniform2"]


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A KuraNet experiment (see the module docstring for the presets).

    Attributes:
        name: the experiment: on the command line, the preset (global, global-field,
            global-delay, cluster or image; see `EXPERIMENTS`) whose values are the defaults
            of every other option.
        model: the phase dynamics: full (omega + K sin + h sin, with delays) or xy
            ((1/N) K sin).
        features: the node features: oscillator (h, omega, tau), gmm (points of a Gaussian
            mixture) or image (pixels).
        omega: the natural frequencies: zero, U(-1, 1) (uniform1) or U(2, 4) (uniform2).
        field: the external field h: zero or U(-1, 1) (uniform1).
        delay: the transmission delays tau: zero or NB(15, 0.5) Euler steps.
        max_delay: the largest delay (Euler steps); longer delays are cut to it.
        num_classes: groups (mixture components or image colour classes); 0: global synchrony.
        gmm_radius: the radius of the circle on which the mixture's centres lie.
        image: the picture ('' = matplotlib's grace_hopper.jpg).
        labels: a PNG of class indices per pixel ('' = k-means on the colours).
        image_width: the picture is resized to this width (the height keeps the aspect).
        num_units: oscillators per training network.
        num_samples: samples per data split.
        data_seed: the seed of the data sets.
        hidden: hidden units of the pair MLP.
        normalise: the coupling normalisation (node: softmax over all pairs, graph: unit-norm
            rows, none).
        avg_deg: the mean weighted degree of the node normalisation.
        symmetric: symmetrise the couplings.
        gain: the Xavier-normal gain of the weights (0: equinox's default initialisation).
        alpha: the Euler step of the phase dynamics.
        burn_in: grid points run without gradient before the loss window.
        gd: grid points of the loss window.
        initial_phase: theta(0) = 0 (zero) or ~ N(pi, 1) (normal).
        loss: the synchrony loss: circular variance (global), circular moments (groups; needs
            num_classes >= 1) or cohn (groups with Cohn's logarithmic repulsion between their
            phases; needs num_classes >= 2).
        measure_cx: log Brede's c_x statistic of the couplings (train/cx every step,
            validation/cx at each validation).
        population: 0, or nodes M >= num_units per training network of which num_units
            random ones are updated at each Euler step, with couplings computed on them alone
            (KuraNet's rand_inds; not with delays); the loss is on all M.
        networks_per_step: networks drawn per training step (the loss is their mean).
        eval_networks: held-out networks for validation during training and for each
            evaluation.
        eval_burn_in: burn-in grid points of the long evaluation run.
        eval_window: loss grid points of the long evaluation run.
        size_eval: network sizes of the size-generalisation test.
        size_eval_networks: networks per size in the size-generalisation test.
        num_seeds: models trained at once from independent initialisations, as one ensemble
            (one vmapped program); the results are those of the seed with the lowest validation
            loss, with the mean and standard deviation of every test loss over the seeds.
        optim: the optimiser (KuraNet: SGD or Adam, gradient-norm clipping).
        train: the training run (its length is train.steps; validation every
            train.validate_every steps).
    """

    name: str = "global"
    model: Literal["full", "xy"] = "full"
    features: Literal["oscillator", "gmm", "image"] = "oscillator"
    omega: Distribution = "uniform1"
    field: Literal["zero", "uniform1"] = "zero"
    delay: Literal["zero", "negative-binomial"] = "zero"
    max_delay: int = 40
    num_classes: int = 0
    gmm_radius: float = 10.0
    image: str = ""
    labels: str = ""
    image_width: int = 80
    num_units: int = 100
    num_samples: int = 10000
    data_seed: int = 0
    hidden: int = 128
    normalise: Literal["node", "graph", "none"] = "node"
    avg_deg: float = 1.0
    symmetric: bool = True
    gain: float = 0.0
    alpha: float = 0.1
    burn_in: int = 100
    gd: int = 50
    initial_phase: Literal["zero", "normal"] = "zero"
    loss: Literal["circular-variance", "circular-moments", "cohn"] = "circular-variance"
    measure_cx: bool = True
    population: int = 0
    networks_per_step: int = 1
    eval_networks: int = 10
    eval_burn_in: int = 100
    eval_window: int = 1901
    size_eval: tuple[int, ...] = (1000,)
    size_eval_networks: int = 2
    num_seeds: int = 1
    optim: OptimConfig = OptimConfig("sgd", 5e-4, clip_norm=1.0)
    train: TrainConfig = TrainConfig(steps=200, log_every=10, validate_every=25)

    def __post_init__(self) -> None:
        positive = ("num_units", "num_samples", "hidden", "networks_per_step", "num_seeds")
        for name in positive + ("eval_networks", "image_width", "size_eval_networks"):
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
        if self.loss == "cohn" and self.num_classes < 2:
            raise ValueError(
                f"loss 'cohn' repels pairs of groups: it needs num_classes >= 2; got "
                f"{self.num_classes}"
            )
        if self.population:
            if self.population < self.num_units:
                raise ValueError(
                    f"population must be 0 or >= num_units = {self.num_units} (the sub-network "
                    f"updated at each step); got {self.population}"
                )
            if self.uses_delays:
                raise ValueError(
                    "population (sub-sampled updates) does not apply to delayed networks: their "
                    "phase history is of every node at every step"
                )
            if self.population > self.num_samples:
                raise ValueError(
                    f"a population of {self.population} nodes needs num_samples >= "
                    f"{self.population}; got {self.num_samples}"
                )
        elif self.population < 0:
            raise ValueError(f"population must be 0 or >= num_units; got {self.population}")
        if self.features != "oscillator" and self.model == "full":
            raise ValueError(f"features {self.features!r} need model 'xy'; got 'full'")
        if self.features == "oscillator" and self.model == "xy":
            raise ValueError("features 'oscillator' need model 'full'; got 'xy'")
        if self.features == "gmm" and self.num_classes < 1:
            raise ValueError("features 'gmm' need num_classes >= 1 (mixture components)")
        if any(n < 2 for n in self.size_eval):
            raise ValueError(f"size_eval sizes must be >= 2; got {self.size_eval}")
        if not isinstance(self.optim, OptimConfig):
            raise TypeError(f"optim must be an OptimConfig; got {type(self.optim).__name__}")
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig; got {type(self.train).__name__}")

    @property
    def uses_delays(self) -> bool:
        """Whether the networks have transmission delays."""
        return self.delay != "zero" and self.max_delay > 0

    @property
    def feature_dim(self) -> int:
        """Features per node."""
        return {"oscillator": 3, "gmm": 2, "image": 5}[self.features]

    @property
    def network_size(self) -> int:
        """Nodes per training network: ``population``, or ``num_units`` without one."""
        return self.population or self.num_units

    @property
    def steps_per_epoch(self) -> int:
        """Training steps per pass over the training samples (KuraNet's epoch):
        ``num_samples // (network_size * networks_per_step)``, at least 1."""
        return max(1, self.num_samples // (self.network_size * self.networks_per_step))


def _train(steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, log_every=10, validate_every=25)


_GLOBAL = ExperimentConfig()
EXPERIMENTS: dict[str, ExperimentConfig] = {
    "global": _GLOBAL,
    "global-field": dataclasses.replace(
        _GLOBAL,
        name="global-field",
        field="uniform1",
        optim=OptimConfig("sgd", 0.01, clip_norm=1.0),
    ),
    "global-delay": dataclasses.replace(
        _GLOBAL,
        name="global-delay",
        omega="uniform2",
        delay="negative-binomial",
        data_seed=1,
        optim=OptimConfig("sgd", 0.05, momentum=0.5, clip_norm=5.0),
        train=_train(300),
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
        gain=0.5,
        eval_burn_in=0,
        eval_window=500,
        data_seed=3,
        measure_cx=False,
        optim=OptimConfig("adam", 5e-5, clip_norm=10.0),
        train=_train(300),
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
        gain=0.5,
        num_units=1000,
        eval_networks=4,
        eval_burn_in=0,
        eval_window=500,
        size_eval=(2000,),
        optim=OptimConfig("sgd", 5e-3, momentum=0.5, clip_norm=10.0),
        train=_train(385),
    ),
}
"""The KuraNet experiments of Ricci et al. (2021) as presets, by name."""

ExperimentName = Literal["global", "global-field", "global-delay", "cluster", "image"]
if typing.get_args(ExperimentName) != tuple(EXPERIMENTS):  # the CLI lists these choices
    raise RuntimeError("ExperimentName must list the presets of EXPERIMENTS")


def get_experiment(name: str) -> ExperimentConfig:
    """The preset called ``name`` (one of `EXPERIMENTS`)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def quick_experiment(cfg: ExperimentConfig) -> ExperimentConfig:
    """Small settings of ``cfg`` for tests, notebooks, the quickstart and ``--quick``: every
    size capped (at most 60 oscillators, 32 hidden units, 40 training steps, ...)."""
    return dataclasses.replace(
        cfg,
        num_samples=min(cfg.num_samples, 2000),
        num_units=min(cfg.num_units, 60),
        population=min(cfg.population, 200) if cfg.population > 60 else cfg.population,
        hidden=min(cfg.hidden, 32),
        eval_networks=min(cfg.eval_networks, 4),
        eval_window=min(cfg.eval_window, 300),
        size_eval=tuple(min(n, 200) for n in cfg.size_eval[:1]),
        size_eval_networks=1,
        image_width=min(cfg.image_width, 40),
        train=dataclasses.replace(cfg.train, steps=min(cfg.train.steps, 40)),
    )


def configure_experiment(name: str, *, quick: bool = False, **overrides: Any) -> ExperimentConfig:
    """The preset ``name`` (reduced by `quick_experiment` when ``quick``) with ``overrides``
    replacing its fields.

    Overrides that are ``None`` keep the preset's value. ``optim`` and ``train`` take an
    `OptimConfig` / `TrainConfig` (replacing the preset's) or a dict of some of their fields
    (replacing those fields of the preset's), e.g.
    ``configure_experiment("cluster", optim={"learning_rate": 1e-3}, train={"steps": 50})``.
    """
    base = get_experiment(name)
    if quick:
        base = quick_experiment(base)
    changes = {k: v for k, v in overrides.items() if v is not None}
    try:
        for part in ("optim", "train"):
            if isinstance(changes.get(part), dict):
                inner = {k: v for k, v in changes[part].items() if v is not None}
                changes[part] = dataclasses.replace(getattr(base, part), **inner)
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as e:
        raise ValueError(f"invalid {name} experiment: {e}") from None


# ---------------------------------------------------------------------- data
def sample_distribution(key: PRNGKeyArray, name: str, n: int) -> Float[Array, " n"]:
    """``n`` samples of ``zero`` (0), ``uniform1`` (U(-1, 1)) or ``uniform2`` (U(2, 4))."""
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
    img = read_image(path, "image")
    w = cfg.image_width
    h = max(1, round(img.height * w / img.width))
    rgb = np.asarray(img.resize((w, h), Image.BILINEAR), np.float32).transpose(2, 0, 1) / 255
    if cfg.labels:
        lpath = Path(cfg.labels)
        if not lpath.is_file():
            raise ValueError(f"label file {cfg.labels!r} does not exist")
        lab = np.asarray(read_image(lpath, "labels", None).resize((w, h), Image.NEAREST))
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


def _pixel_features(rgb: np.ndarray) -> np.ndarray:
    """``[H*W, 5]`` features ``[R, G, B, x/w, y/h]`` of the pixels of ``rgb [3, H, W]``."""
    _, h, w = rgb.shape
    yy, xx = np.meshgrid(np.arange(h) / h, np.arange(w) / w, indexing="ij")
    return np.concatenate([rgb, xx[None], yy[None]], 0).reshape(5, -1).T.astype(np.float32)


def _image_splits(cfg: ExperimentConfig, key: PRNGKeyArray) -> dict[str, dict[str, Array]]:
    rgb, labels = load_kuranet_image(cfg)
    feats = _pixel_features(rgb)
    perm = np.asarray(jax.random.permutation(key, feats.shape[0]))
    half = feats.shape[0] // 2
    flat = labels.reshape(-1)
    train = {"x": jnp.asarray(feats[perm[:half]]), "labels": jnp.asarray(flat[perm[:half]])}
    test = {"x": jnp.asarray(feats[perm[half:]]), "labels": jnp.asarray(flat[perm[half:]])}
    # a picture has only so many pixels: validation networks are new networks of its
    # training pixels, the test keeps the held-out half
    return {"train": train, "validation": train, "test": test}


def kuranet_data(cfg: ExperimentConfig) -> dict[str, dict[str, Array]]:
    """``{"train": {"x": [S, F], "labels": [S]}, "validation": {...}, "test": {...}}`` from
    ``cfg.data_seed``.

    Synthetic features (oscillator, gmm) draw train, then test, from the seed's two halves and
    an independent validation split of the same size; the image's validation networks are
    drawn from its training pixels (the test pixels stay held out).
    """
    key = jax.random.key(cfg.data_seed)
    if cfg.features == "image":
        splits = _image_splits(cfg, key)
    else:
        make = _oscillator_split if cfg.features == "oscillator" else _gmm_split
        k_train, k_test = jax.random.split(key)
        splits = {
            "train": make(cfg, k_train),
            "validation": make(cfg, jax.random.fold_in(key, 2)),
            "test": make(cfg, k_test),
        }
    for name, split in splits.items():
        if split["x"].shape[0] < cfg.network_size:
            what = "population" if cfg.population else "num_units"
            raise ValueError(
                f"the {name} split has {split['x'].shape[0]} samples, fewer than "
                f"{what} = {cfg.network_size}"
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


# ---------------------------------------------------------------------- sub-sampled networks
def subsample_nodes(key: PRNGKeyArray, population: int, size: int) -> Int[Array, " size"]:
    """``size`` distinct node indices drawn uniformly from ``0..population-1`` (without
    replacement)."""
    if not 1 <= size <= population:
        raise ValueError(f"size must be in [1, population = {population}]; got {size}")
    return jax.random.choice(key, population, (size,), replace=False)


class SubsampledNetwork(eqx.Module):
    r"""Phase dynamics of a population of ``M`` nodes updated ``size`` nodes at a time
    (KuraNet's ``rand_inds``), for fixed-step Euler with step ``dt``.

    At step $k$ (time $t = k\,\mathrm{dt}$) the nodes $S_k$ = `subsample_nodes` of
    ``fold_in(key, k)`` get the couplings $K^{S} = \mathrm{KuraNet}(x_{S})$ of that
    sub-network alone (its own normalisation) and, for $i \in S_k$,

    $$
    \dot\theta_i = \omega_i + \sum_{j \in S_k} K^{S}_{ij}\sin(\theta_j - \theta_i)
    + h_i \sin\theta_i \quad \text{(full)}, \qquad
    \dot\theta_i = \frac1{|S_k|}\sum_{j \in S_k} K^{S}_{ij}\sin(\theta_j - \theta_i)
    \quad \text{(xy)},
    $$

    ($x_i = (h_i, \omega_i, \tau_i)$ for the full model); the other nodes do not move. With
    ``size = M`` every node moves every step and, since KuraNet is equivariant under a
    permutation of the nodes, the dynamics are those of the whole network.

    Attributes:
        model: the coupling network.
        x: the population's features ``[M, F]``.
        key: the key of the draws (its ``jax.random.key_data``, so that it can be a leaf).
        size: nodes updated per step.
        dt: the Euler step.
        kind: ``full`` or ``xy``.
    """

    model: KuraNet
    x: Float[Array, "m f"]
    key: Array
    size: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    kind: str = eqx.field(static=True)

    def __call__(self, t: Any, theta: Float[Array, " m"], args: Any = None) -> Array:
        step = jnp.round(t / self.dt).astype(jnp.int32)
        key = jax.random.fold_in(jax.random.wrap_key_data(self.key), step)
        idx = subsample_nodes(key, theta.shape[-1], self.size)
        x, th = self.x[idx], theta[idx]
        coupling = self.model(x)
        if self.kind == "full":
            rate = x[:, 1] + coupling_sum(coupling, th) + x[:, 0] * jnp.sin(th)
        else:
            rate = coupling_sum(coupling, th) / self.size
        return jnp.zeros_like(theta).at[idx].set(rate)


# ---------------------------------------------------------------------- the training task
class KuraNetTask(AbstractTask):
    r"""The KuraNet training task: the synchrony loss of networks whose couplings KuraNet
    computes from their features.

    ``loss(model, batch, key)`` takes ``batch = {"x": [B*N, F], "labels": [B*N]}`` (``B``
    networks of ``N`` = ``num_units`` nodes, as the task's `augmenter` draws them from a data
    split) and returns the mean loss over the networks and, as ``aux``, the mean order
    parameter on the loss window and (with ``cfg.measure_cx``) the mean Brede $c_x$ of the
    networks' couplings (`feature_assortativity`; of the first ``subsample`` nodes when
    sub-sampled). Each network starts from `initial_phase`, runs the pre-history and burn-in
    without gradient (`window_start`) and ``window`` grid points with gradient
    (`window_phases`). With ``subsample`` (default ``cfg.num_units`` when ``cfg.population``
    is set) only that many random nodes move per step (`SubsampledNetwork`; the burn-in and
    the window draw from two keys split off the network's key).

    With ``validation`` (a data split) and ``key`` the task draws ``cfg.eval_networks``
    held-out networks and their initial phases once; `evaluate` scores a model on exactly
    those (so that scores at different steps differ only by the model, and the `Trainer`
    keeps the model with the lowest one) and `visualise` draws the phases of the first.

    Args:
        cfg: the experiment.
        num_units: nodes per network (default ``cfg.network_size``).
        subsample: nodes updated per Euler step, 0 for all (default ``cfg.num_units`` with a
            population, else 0).
        burn_in: burn-in grid points (default ``cfg.burn_in``).
        window: loss-window grid points (default ``cfg.gd``).
        validation: a data split ``{"x": [S, F], "labels": [S]}`` to draw the validation
            networks from, or None (no validation).
        key: the PRNG key that draws the validation networks and their initial phases.
    """

    cfg: ExperimentConfig = eqx.field(static=True)
    num_units: int = eqx.field(static=True)
    subsample: int = eqx.field(static=True)
    burn_in: int = eqx.field(static=True)
    window: int = eqx.field(static=True)
    held_out: dict[str, Array] | None

    def __init__(
        self,
        cfg: ExperimentConfig,
        *,
        num_units: int | None = None,
        subsample: int | None = None,
        burn_in: int | None = None,
        window: int | None = None,
        validation: dict[str, Array] | None = None,
        key: PRNGKeyArray | None = None,
    ):
        if not isinstance(cfg, ExperimentConfig):
            raise TypeError(f"cfg must be an ExperimentConfig; got {type(cfg).__name__}")
        self.cfg = cfg
        self.num_units = cfg.network_size if num_units is None else int(num_units)
        if subsample is None:
            subsample = cfg.num_units if cfg.population else 0
        self.subsample = int(subsample)
        if not 0 <= self.subsample <= self.num_units:
            raise ValueError(
                f"subsample must be in [0, num_units = {self.num_units}]; got {self.subsample}"
            )
        if self.subsample and cfg.uses_delays:
            raise ValueError("sub-sampled updates do not apply to delayed networks")
        self.burn_in = cfg.burn_in if burn_in is None else int(burn_in)
        self.window = cfg.gd if window is None else int(window)
        if self.num_units < 2 or self.burn_in < 0 or self.window < 2:
            raise ValueError(
                "num_units and window must be >= 2 and burn_in >= 0; got "
                f"{self.num_units}, {self.window}, {self.burn_in}"
            )
        if validation is None:
            if key is not None:
                raise ValueError("key draws the validation networks: give validation too")
            self.held_out = None
            return
        if key is None:
            raise ValueError("validation networks are drawn with a key: give key")
        k_draw, k_phase = jax.random.split(key)
        networks = cfg.eval_networks
        batch = draw_networks(validation, k_draw, networks, self.num_units)
        keys = jax.random.split(k_phase, networks)
        self.held_out = {
            "x": batch["x"].reshape(networks, self.num_units, -1),
            "labels": batch["labels"].reshape(networks, self.num_units),
            "theta0": jax.vmap(lambda k: self.initial_phase(k, self.num_units))(keys),
            # the draws of sub-sampled updates (unused without them)
            "keys": jax.random.key_data(jax.random.split(jax.random.fold_in(key, 1), networks)),
        }

    # ------------------------------------------------------------------ dynamics
    def vector_field(self, coupling: Array, x: Array) -> Kuramoto | XYModel:
        """The phase dynamics of one network with couplings ``[N, N]`` and features
        ``[N, F]``."""
        if self.cfg.model == "full":
            delays = jnp.round(x[:, 2]).astype(jnp.int32) if self.cfg.uses_delays else None
            return Kuramoto(coupling, omega=x[:, 1], field=x[:, 0], delays=delays)
        return XYModel(coupling)

    def initial_phase(self, key: PRNGKeyArray, n: int) -> Float[Array, " n"]:
        r"""$\theta(0)$: zeros, or $\pi + \mathcal N(0, 1)$ per node."""
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
        self, field: Kuramoto | XYModel, theta0: Float[Array, " n"]
    ) -> tuple[Float[Array, " n"], Float[Array, "d n"] | None]:
        """The (gradient-free) state entering the loss window from ``theta0``, and its phase
        history ``[max_delay, N]`` (None without delays): pre-history, then burn-in."""
        frozen = jax.lax.stop_gradient(field)
        theta = jax.lax.stop_gradient(theta0)
        delay, past = self._delay, None
        if delay:
            pre = simulate(frozen.undelayed(), theta, dt=self.cfg.alpha, steps=delay)
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

    def subsampled_field(self, model: KuraNet, x: Array, key: PRNGKeyArray) -> SubsampledNetwork:
        """The `SubsampledNetwork` of features ``x`` updating ``subsample`` nodes per step."""
        return SubsampledNetwork(
            model, x, jax.random.key_data(key), self.subsample, self.cfg.alpha, self.cfg.model
        )

    def network(
        self,
        model: KuraNet,
        x: Float[Array, "n f"],
        theta0: Float[Array, " n"],
        key: PRNGKeyArray | None = None,
    ) -> tuple[Float[Array, "t n"], Float[Array, ""]]:
        """The window phases of `phases` and Brede's $c_x$ of the network's couplings (of
        its first ``subsample`` nodes when sub-sampled; no gradient)."""
        if self.subsample:
            if key is None:
                raise ValueError("a sub-sampled network draws its nodes with a key: give key")
            k_burn, k_window = jax.random.split(key)
            theta, _ = self.window_start(self.subsampled_field(model, x, k_burn), theta0)
            phases = self.window_phases(self.subsampled_field(model, x, k_window), theta, None)
            x_cx = x[: self.subsample]
            coupling = model(x_cx)
        else:
            coupling = model(x)
            field = self.vector_field(coupling, x)
            theta, past = self.window_start(field, theta0)
            phases = self.window_phases(field, theta, past)
            x_cx = x
        cx = feature_assortativity(jax.lax.stop_gradient(coupling), x_cx)
        return phases, cx

    def phases(
        self,
        model: KuraNet,
        x: Float[Array, "n f"],
        theta0: Float[Array, " n"],
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "t n"]:
        """The phases on the loss window ``[window, N]`` of the network with features ``x``
        from ``theta0`` (gradients only through the window); ``key`` draws the updated nodes
        of a sub-sampled network (unused otherwise)."""
        return self.network(model, x, theta0, key)[0]

    def network_loss(self, phases: Float[Array, "t n"], labels: Int[Array, " n"]) -> Array:
        """The loss of one network's window phases (circular variance, circular moments or
        Cohn's loss)."""
        if self.cfg.loss == "circular-variance":
            return circular_variance(phases)
        masks = one_hot_groups(labels, self.cfg.num_classes)
        if self.cfg.loss == "cohn":
            return cohn_loss(phases, masks)
        return circular_moments(phases, masks)

    # ------------------------------------------------------------------ the task
    def loss(
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
            th, cx = self.network(model, xi, self.initial_phase(ki, n), jax.random.fold_in(ki, 1))
            return self.network_loss(th, li), jnp.mean(order_parameter(th)), cx

        if b == 1:  # KuraNet's case; a vmapped solve loop would cost more than the network
            loss, r, cx = one(x[0], labels[0], keys[0])
        else:
            losses, rs, cxs = jax.vmap(one)(x, labels, keys)
            loss, r, cx = jnp.mean(losses), jnp.mean(rs), jnp.mean(cxs)
        aux = {"order_parameter": r}
        if self.cfg.measure_cx:
            aux["cx"] = cx
        return loss, aux

    def augmenter(self) -> ArrayAugmenter:
        """``networks_per_step`` networks of ``num_units`` nodes per step, drawn without
        replacement from the training split."""
        return ArrayAugmenter(self.num_units * self.cfg.networks_per_step)

    def evaluate(self, model: KuraNet, key: PRNGKeyArray) -> dict[str, Any]:
        """Mean loss (``loss``), its spread over the networks (``loss_sd``), the mean order
        parameter on the window (``order_parameter``) and, with ``cfg.measure_cx``, the mean
        Brede $c_x$ (``cx``) of the validation networks. ``key`` is not used: the networks,
        their initial phases and their draws are the task's."""
        del key
        if self.held_out is None:
            return super().evaluate(model, None)  # type: ignore[arg-type]
        losses, r, cx = _held_out_scores(self, model)
        out = {
            "loss": float(jnp.mean(losses)),
            "loss_sd": float(jnp.std(losses)),
            "order_parameter": float(jnp.mean(r)),
        }
        if self.cfg.measure_cx:
            out["cx"] = float(jnp.mean(cx))
        return out

    def visualise(self, model: KuraNet, key: PRNGKeyArray) -> dict[str, Any]:
        """``{"phases": [3, N, T]}``: the window phases of the first validation network as
        hues, nodes sorted by natural frequency (or class)."""
        del key
        if self.held_out is None:
            return {}
        phases = np.asarray(_first_held_out_phases(self, model))
        x, labels = np.asarray(self.held_out["x"][0]), np.asarray(self.held_out["labels"][0])
        order = np.argsort(x[:, 1] if self.cfg.features == "oscillator" else labels, kind="stable")
        return {"phases": _hue_image(phases[:, order].T)}

    @property
    def validates(self) -> bool:
        """Whether the task holds validation networks."""
        return self.held_out is not None

    @property
    def draws(self) -> bool:
        """Whether the task has networks to draw (its validation networks)."""
        return self.held_out is not None


@eqx.filter_jit
def _held_out_scores(task: KuraNetTask, model: KuraNet) -> tuple[Array, Array, Array]:
    def one(args):
        x, labels, theta0, key = args
        th, cx = task.network(model, x, theta0, jax.random.wrap_key_data(key))
        return task.network_loss(th, labels), jnp.mean(order_parameter(th)), cx

    held = task.held_out
    return jax.lax.map(one, (held["x"], held["labels"], held["theta0"], held["keys"]))


@eqx.filter_jit
def _first_held_out_phases(task: KuraNetTask, model: KuraNet) -> Array:
    held = task.held_out
    key = jax.random.wrap_key_data(held["keys"][0])
    return task.phases(model, held["x"][0], held["theta0"][0], key)


def _hue_image(phases: np.ndarray) -> np.ndarray:
    """``[3, ...]`` RGB in [0, 1] with the hue of each phase (saturation and value 1)."""
    h = np.mod(phases, 2 * np.pi) / (2 * np.pi)
    r = np.clip(np.abs(6 * h - 3) - 1, 0, 1)
    g = np.clip(2 - np.abs(6 * h - 2), 0, 1)
    b = np.clip(2 - np.abs(6 * h - 4), 0, 1)
    return np.stack([r, g, b]).astype(np.float32)


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
    subsample: int | None = None,
) -> dict[str, Any]:
    """Mean loss over ``networks`` networks of ``num_units`` nodes drawn from ``split``, each
    run for ``burn_in`` + ``window`` grid points; also the loss's spread over the networks,
    the mean $R(t)$ on the window and the phases of the first network (for figures).
    ``subsample`` nodes move per step (0: all; default: as `KuraNetTask` trains ``cfg``).

    Returns:
        ``{"loss", "loss_sd", "order_parameter" [window], "example": {"phases" [window, N],
        "x" [N, F], "labels" [N]}}``.
    """
    task = KuraNetTask(
        cfg, num_units=num_units, subsample=subsample, burn_in=burn_in, window=window
    )
    k_draw, k_run = jax.random.split(key)
    batch = draw_networks(split, k_draw, networks, num_units)

    @eqx.filter_jit
    def run(model, x, labels, k):
        theta0 = task.initial_phase(k, num_units)
        th = task.phases(model, x, theta0, jax.random.fold_in(k, 1))
        return task.network_loss(th, labels), order_parameter(th), th

    losses, curves, first = [], [], {}
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


def evaluate_sizes(
    model: KuraNet,
    cfg: ExperimentConfig,
    split: dict[str, Array],
    key: PRNGKeyArray,
    *,
    sizes: tuple[int, ...],
    networks: int = 1,
    burn_in: int | None = None,
    window: int | None = None,
    subsample: int = 0,
    row_chunk: int | None = None,
) -> dict[int, dict[str, Any]]:
    """Size generalisation: `evaluate_kuranet` of ``model`` on ``networks`` networks of each
    size ``n`` of ``sizes``, drawn from ``split`` (so up to its number of samples: the whole
    10,000-sample test split of KuraNet's experiments is one network of $10^4$ nodes) with the
    key ``fold_in(key, n)``, for ``burn_in`` + ``window`` grid points (default
    ``cfg.eval_burn_in`` and ``cfg.eval_window``).

    The couplings of a large network are computed in blocks of ``row_chunk`` rows of pairs
    (`KuraNet.with_row_chunk`; default: the model's own setting, whose 0 holds at most
    $2^{27}$ hidden activations at once: ~100-row blocks at $N = 10^4$, $H = 128$), so only
    the $N \times N$ coupling matrix itself has to fit. With ``subsample > 0`` only that many
    random nodes move per step, with couplings computed on them (KuraNet's evaluation of size
    generalisation, which updates 500 of 10,000 nodes per step).

    Returns:
        ``{n: evaluate_kuranet(...)}`` for each size.
    """
    total = split["x"].shape[0]
    for n in sizes:
        if not 2 <= n <= total:
            raise ValueError(f"sizes must be in [2, {total}] (the split's samples); got {n}")
        if subsample > n:
            raise ValueError(f"subsample = {subsample} exceeds the network size {n}")
    if row_chunk is not None:
        model = model.with_row_chunk(row_chunk)
    burn_in = cfg.eval_burn_in if burn_in is None else burn_in
    window = cfg.eval_window if window is None else window
    return {
        n: evaluate_kuranet(
            model,
            cfg,
            split,
            jax.random.fold_in(key, n),
            networks=networks,
            num_units=n,
            burn_in=burn_in,
            window=window,
            subsample=subsample,
        )
        for n in sizes
    }


# ---------------------------------------------------------------------- the experiment
@dataclasses.dataclass
class ExperimentResult:
    """What `train_experiment` returns.

    Attributes:
        config: the experiment that ran.
        metrics: scalar results: training losses, the selected step, and
            ``{run}_loss_{trained,control}`` for the runs ``test`` (training window),
            ``long`` (``eval_burn_in`` + ``eval_window``) and ``size{N}`` (long runs at the
            sizes ``size_eval``).
        trained: the trained model (the one with the lowest validation loss; of the best seed
            when ``num_seeds > 1``).
        control: the untrained initialisation (same architecture and normalisation).
        training: the `TrainResult` of the run (losses, validation history, ...).
        seeds: with ``num_seeds > 1``, the metrics of every seed (``metrics`` are the best
            seed's, with ``best_seed`` and each test loss's ``_mean`` and ``_std`` over seeds).
        evaluations: ``{run: {"trained": ..., "control": ...}}``, each as
            `evaluate_kuranet` returns it.
        phase_map: for the image experiment, the final phases ``[H, W]`` of a small copy of
            the whole picture run as one network with the trained couplings, and that picture
            ``[3, H, W]`` (``{"phases", "image"}``); else None.
    """

    config: ExperimentConfig
    metrics: dict[str, Any]
    trained: KuraNet
    control: KuraNet
    training: TrainResult
    evaluations: dict[str, dict[str, dict[str, Any]]]
    phase_map: dict[str, np.ndarray] | None = None
    seeds: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def train_experiment(
    cfg: ExperimentConfig,
    key: PRNGKeyArray,
    *,
    data: dict[str, dict[str, Array]] | None = None,
    out: str | Path | None = None,
    logger: Any = None,
    resume: bool = False,
) -> ExperimentResult:
    """Train KuraNet on ``cfg`` and compare it with its untrained initialisation.

    One `Trainer` run of a `KuraNetTask` with ``cfg.optim`` and ``cfg.train``, validated on
    held-out networks of the validation split (the trained model is the one with the lowest
    validation loss); then the trained model and the control are evaluated on networks of
    the test split: at the training window, on the long run (``eval_burn_in`` +
    ``eval_window``) and at the sizes ``size_eval`` (sizes larger than the test split are
    left out).

    Args:
        cfg: the experiment.
        key: the PRNG key of the initial weights, the training and the evaluation.
        data: the splits of `kuranet_data` (default: made from ``cfg``).
        out: where the `Trainer` writes checkpoints and the final and best models.
        logger: where the `Trainer` logs (default: nowhere).
        resume: continue from the checkpoint in ``out``.
    """
    data = kuranet_data(cfg) if data is None else data
    missing = {"train", "validation", "test"} - set(data)
    if missing:
        raise ValueError(f"data needs the splits train, validation and test; missing {missing}")
    # seed 0 is the run of ``key`` itself; seed s > 0 the run of fold_in(key, s)
    keys = [key] + [jax.random.fold_in(key, s) for s in range(1, cfg.num_seeds)]
    splits = [jax.random.split(k, 3) for k in keys]  # (model, train, evaluation) per seed
    controls = [make_kuranet(cfg, k_model) for k_model, _, _ in splits]
    task = KuraNetTask(cfg, validation=data["validation"], key=jax.random.fold_in(splits[0][2], 0))
    trainer = Trainer(task, cfg.optim, config=cfg.train, logger=logger, out=out)
    if cfg.num_seeds == 1:
        fits = [trainer.fit(controls[0], data["train"], splits[0][1], resume=resume)]
        best = 0
    else:
        ensemble = trainer.fit_ensemble(
            controls, data["train"], [k for _, k, _ in splits], resume=resume
        )
        fits, best = ensemble.members, ensemble.best_member
        if best is None:
            raise ValueError("no seed reached a finite validation loss")
    seeds = [
        _evaluate_seed(cfg, data["test"], fit, control, k_eval)
        for fit, control, (_, _, k_eval) in zip(fits, controls, splits, strict=True)
    ]
    metrics, evaluations = seeds[best]
    if cfg.num_seeds > 1:
        metrics = {**metrics, "best_seed": best}
        for name in [k for k in metrics if "_loss_" in k and k.split("_")[0] != "validation"]:
            values = np.asarray([m[name] for m, _ in seeds], np.float64)
            metrics[f"{name}_mean"], metrics[f"{name}_std"] = values.mean(), values.std()
    trained = fits[best].best_model
    phase_map = None
    if cfg.features == "image":
        k_eval = splits[best][2]
        phases, image = image_phase_map(trained, cfg, key=jax.random.fold_in(k_eval, 1))
        phase_map = {"phases": phases, "image": image}
    per_seed = [m for m, _ in seeds] if cfg.num_seeds > 1 else []
    return ExperimentResult(
        cfg, metrics, trained, controls[best], fits[best], evaluations, phase_map, per_seed
    )


def _evaluate_seed(
    cfg: ExperimentConfig,
    split: dict[str, Array],
    fit: TrainResult,
    control: KuraNet,
    k_eval: PRNGKeyArray,
) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, Any]]]]:
    """The metrics and evaluations of one trained seed and its control on the test split."""
    trained = fit.best_model
    losses = np.asarray(fit.losses)
    metrics: dict[str, Any] = {
        "train_loss_first": float(losses[0]) if len(losses) else float("nan"),
        "train_loss_final": float(np.mean(losses[-10:])) if len(losses) else float("nan"),
        "validation_loss_best": fit.best_loss,
        "best_step": fit.best_step,
        "selected_by": fit.selected_by,
        "train_seconds": fit.seconds,
        "steps_per_second": fit.steps_per_second,
    }
    n = cfg.network_size  # at the training size, sub-sampled as in training
    runs = {
        "test": (cfg.burn_in, cfg.gd, cfg.eval_networks),
        "long": (cfg.eval_burn_in, cfg.eval_window, cfg.eval_networks),
    }
    evaluations: dict[str, dict[str, dict[str, Any]]] = {}
    if n <= split["x"].shape[0]:
        for name, (burn, window, nets) in runs.items():
            k = jax.random.fold_in(k_eval, n)
            evaluations[name] = {}
            for label, m in (("trained", trained), ("control", control)):
                ev = evaluate_kuranet(
                    m, cfg, split, k, networks=nets, num_units=n, burn_in=burn, window=window
                )
                metrics[f"{name}_loss_{label}"] = ev["loss"]
                evaluations[name][label] = ev
    # other sizes: whole networks (every node moves every step)
    sizes = tuple(s for s in cfg.size_eval if s <= split["x"].shape[0])
    for label, m in (("trained", trained), ("control", control)):
        by_size = evaluate_sizes(
            m, cfg, split, k_eval, sizes=sizes, networks=cfg.size_eval_networks
        )
        for size, ev in by_size.items():
            metrics[f"size{size}_loss_{label}"] = ev["loss"]
            evaluations.setdefault(f"size{size}", {})[label] = ev
    return metrics, evaluations


def image_phase_map(
    model: KuraNet,
    cfg: ExperimentConfig,
    *,
    width: int = 24,
    burn_in: int | None = None,
    window: int | None = None,
    key: PRNGKeyArray,
) -> tuple[np.ndarray, np.ndarray]:
    """The final phases ``[H, W]`` of the whole picture of ``cfg``, resized to at most
    ``width`` pixels across and run as one network (``burn_in`` + ``window`` grid points,
    default ``cfg.eval_burn_in`` + ``cfg.eval_window``) with the couplings of ``model``, and
    that picture ``[3, H, W]``."""
    if cfg.features != "image":
        raise ValueError(
            f"image_phase_map needs an image experiment; got features {cfg.features!r}"
        )
    small = dataclasses.replace(cfg, image_width=min(cfg.image_width, width))
    rgb, _ = load_kuranet_image(small)
    _, h, w = rgb.shape
    task = KuraNetTask(
        cfg,
        num_units=h * w,
        subsample=0,
        burn_in=cfg.eval_burn_in if burn_in is None else burn_in,
        window=cfg.eval_window if window is None else window,
    )

    @eqx.filter_jit
    def run(model, x, k):
        return task.phases(model, x, task.initial_phase(k, h * w))[-1]

    phases = run(model, jnp.asarray(_pixel_features(rgb)), key)
    return np.asarray(phases).reshape(h, w), rgb


# ---------------------------------------------------------------------- plain simulation
@dataclasses.dataclass(frozen=True)
class KuramotoConfig:
    """A Kuramoto network to simulate: all-to-all coupling $K/N$ or a coupling matrix from a
    file, natural frequencies, a uniform external field and uniform random delays.

    Attributes:
        n: oscillators (None: 200, or the size of the coupling file).
        coupling: K of the all-to-all coupling K/N (None: 2.0; not with a coupling file).
        coupling_file: a .npy coupling matrix [N, N] ('' = all-to-all).
        omega: the natural frequencies: zero, U(-1, 1) (uniform1) or U(2, 4) (uniform2).
        field: the external field h of every oscillator.
        delay: delays tau_j ~ U{0, ..., delay} solver steps (0: none; needs the fixed-step
            euler solve).
        steps: the run is steps * solve.dt0 long; the phases are saved every solve.dt0.
        initial_phase: theta(0) = 0 (zero) or ~ U(0, 2 pi) (uniform).
        solve: how the phases are integrated (solve.dt0 is the step of a fixed-step solve,
            the first step of an adaptive one, and the spacing of the saved phases).
    """

    n: int | None = None
    coupling: float | None = None
    coupling_file: str = ""
    omega: Distribution = "uniform1"
    field: float = 0.0
    delay: int = 0
    steps: int = 1000
    initial_phase: Literal["zero", "uniform"] = "uniform"
    solve: SolveConfig = SolveConfig(solver="euler", dt0=0.1, adaptive=False, max_steps=100_000)

    def __post_init__(self) -> None:
        if self.coupling_file and self.coupling is not None:
            raise ValueError("coupling sets an all-to-all network; a coupling_file replaces it")
        if self.n is not None and self.n < 2:
            raise ValueError(f"n must be >= 2; got {self.n}")
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0; got {self.delay}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1; got {self.steps}")
        if self.solve.dt0 is None:
            raise ValueError("solve.dt0 must be set: it is the step and the save spacing")
        if self.solve.adjoint != "recursive-checkpoint":
            raise ValueError(
                f"a simulation takes no gradients: solve.adjoint = {self.solve.adjoint!r} does "
                "not apply"
            )


def simulate_network(cfg: KuramotoConfig, key: PRNGKeyArray) -> dict[str, Any]:
    """Simulate the network of ``cfg`` (random draws from ``key``).

    Returns:
        ``{"phases": [steps + 1, N], "omega": [N], "order_parameter": [steps + 1], "dt",
        "metrics": {"final_R", "mean_R_second_half", "n"}}``.
    """
    if cfg.coupling_file:
        k = jnp.asarray(read_array(cfg.coupling_file, "coupling_file"), jnp.float32)
        if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] == 0:
            raise ValueError(f"coupling_file must hold a square matrix; got shape {k.shape}")
        n = k.shape[0]
        if cfg.n is not None and cfg.n != n:
            raise ValueError(f"n = {cfg.n}, but the coupling file holds N = {n} oscillators")
    else:
        n = 200 if cfg.n is None else cfg.n
        k = jnp.full((n, n), (2.0 if cfg.coupling is None else cfg.coupling) / n)
    k_omega, k_theta, k_delay = jax.random.split(key, 3)
    omega = sample_distribution(k_omega, cfg.omega, n)
    delays = jax.random.randint(k_delay, (n,), 0, cfg.delay + 1) if cfg.delay > 0 else None
    field = Kuramoto(k, omega, jnp.full((n,), cfg.field), delays)
    if cfg.initial_phase == "zero":
        theta0 = jnp.zeros((n,))
    else:
        theta0 = jax.random.uniform(k_theta, (n,), maxval=2 * jnp.pi)
    dt = float(cfg.solve.dt0)  # type: ignore[arg-type]
    phases = simulate(field, theta0, dt=dt, steps=cfg.steps, solve=cfg.solve, max_delay=cfg.delay)
    r = np.asarray(order_parameter(phases))
    metrics = {
        "final_R": float(r[-1]),
        "mean_R_second_half": float(r[len(r) // 2 :].mean()),
        "n": n,
    }
    return {
        "phases": np.asarray(phases),
        "omega": np.asarray(omega),
        "order_parameter": r,
        "dt": dt,
        "metrics": metrics,
    }
