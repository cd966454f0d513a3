"""Typed configs of the NCA workflows (``diffdyn nca train`` and ``diffdyn nca run``), and the
model a config describes.

The options of both commands are generated from these dataclasses: every field's help is its
line in the ``Attributes:`` section below. A setting that does not apply to the chosen task or
variant is refused, never ignored.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from typing import Any, Literal

import numpy as np
from jaxtyping import Float, PRNGKeyArray

from diffdyn.common import (
    PERCEPTION_FILTERS,
    TEXTURES,
    FixedMask,
    OptimConfig,
    TrainableMask,
    TrainConfig,
)
from diffdyn.common._helpers import check_int, check_number

from ._layers import ACTIVATIONS
from ._model import DEFAULT_FILTERS, NCA, AbstractNCA, Cells
from ._targets import _check_spec
from ._variants import KANCA, AttentionNCA, BoundedNCA, GatedNCA, MultiScaleNCA, PolynomialNCA

__all__ = [
    "NCAModelConfig",
    "GrowConfig",
    "SpeciesConfig",
    "MorphConfig",
    "PDEConfig",
    "SequenceConfig",
    "TextureConfig",
    "NCATrainConfig",
    "NCARunConfig",
    "build_model",
]

Task = Literal["grow", "species", "morph", "pde", "sequence", "texture"]
Variant = Literal["nca", "gated", "multiscale", "kan", "polynomial", "attention", "bounded"]
Activation = Literal["relu", "tanh", "gelu", "silu", "elu"]
Boundary = Literal["periodic", "dirichlet", "neumann"]
MaskKind = Literal["hard", "soft", "trainable"]

_GROW_DEFAULTS = {"channels": 16, "filters": DEFAULT_FILTERS, "fire_rate": 0.5, "alive": True}
_TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "grow": _GROW_DEFAULTS,
    "species": _GROW_DEFAULTS,
    "morph": _GROW_DEFAULTS,
    "pde": {"channels": 8, "filters": ("identity", "laplacian"), "fire_rate": 1.0, "alive": False},
    "sequence": {"channels": 8, "filters": DEFAULT_FILTERS, "fire_rate": 1.0, "alive": False},
    "texture": {"channels": 12, "filters": DEFAULT_FILTERS, "fire_rate": 0.5, "alive": False},
}
_SEQUENCE_HIDDEN = 6
"""Hidden channels of a sequence NCA whose channels are not given: the reference's Gray-Scott
NCA has 8 channels for 2 observed ones."""
_HIDDEN, _ACTIVATION, _SCALES, _BASIS, _ALIVE_THRESHOLD = 96, "relu", (1, 2), 8, 0.1
_DEGREE, _TOKEN_SIZE, _HEADS, _BOUND = 2, 16, 4, 1.0
_BOUNDARY_WEIGHT = 1.0
"""The weight of the boundary regulariser of a masked NCA: ``BOUNDARY_REGULARISER = 1`` in
Differentiable-Patterning's trainer."""
_MASK_LOGIT = 4.0
"""A trainable mask starts at logits ``±4`` (sigmoid 0.982 inside the shape, 0.018 outside)."""
_POOL_TASKS = ("grow", "species", "morph")
"""The tasks trained from a sample pool on a target's grid (the ones a mask can confine)."""
_VARIANT_SETTINGS = {
    "scales": "multiscale",
    "basis": "kan",
    "degree": "polynomial",
    "token_size": "attention",
    "heads": "attention",
    "bound": "bounded",
}
"""The model settings that belong to one variant only."""
_NO_HIDDEN = ("kan", "attention")
"""Variants without a hidden width (kan has no activation either)."""


@dataclasses.dataclass(frozen=True)
class NCAModelConfig:
    """Which NCA to build; ``None`` takes the default of the task or variant.

    Attributes:
        variant: the update network: nca (MLP), gated (GLU), multiscale (pool, update and
            upsample per channel block), kan (Gaussian-basis Kolmogorov-Arnold layers),
            polynomial (perception of every product of channels up to degree), attention
            (the channels of a cell attend to each other) or bounded (tanh-bounded update).
        channels: state channels (None: 16 for grow, 8 for pde, the data's channels + 6
            hidden for sequence, 12 for texture).
        filters: perception filters, each applied to every channel (None: identity, sobel_x,
            sobel_y, laplacian for grow, sequence and texture; identity, laplacian for pde).
        hidden: hidden width of the update network (None: 96; not for kan and attention).
        activation: hidden activation (None: relu; not for kan).
        fire_rate: probability that a cell applies its update in a step (None: 0.5 for grow
            and texture, 1 for pde and sequence).
        alive: alive masking on channel 3 (None: on for grow, off for the other tasks).
        alive_threshold: a cell lives while the 3x3 maximum of channel 3 around it exceeds this
            (None: 0.1; only with alive masking).
        boundary: the grid boundary (dirichlet holds the edge cells at 0).
        scales: pooling factor per channel block (None: 1,2; multiscale only).
        basis: Gaussians per edge (None: 8; kan only).
        degree: the highest degree of the channel products the perception sees (None: 2;
            polynomial only).
        token_size: the size of every channel token, divisible by heads (None: 16; attention
            only).
        heads: the attention heads (None: 4; attention only).
        bound: the largest change of a channel in one step (None: 1.0; bounded only).
        mask: confine the cells to a shape on the task's grid (tasks grow, species and morph):
            disk, the alpha of a built-in target (smiley, heart, ring, glyph:X) or of a PNG
            file, 1 where it exceeds 1/2 (None: no mask). It is saved with the model.
        mask_kind: how the mask acts after every step (None: hard; only with a mask): hard
            (every channel times the 0/1 shape: cells outside stay exactly 0), soft (the last
            channel is held at the shape, a structure channel the cells perceive, as
            Differentiable-Patterning's soft boundary; nothing else is confined) or trainable
            (every channel times sigmoid(logits), logits trained from +-4 on the shape).
        boundary_weight: weight of the boundary regulariser, mean |x - M(x)| of the update
            every final state proposes before the mask acts (None: 1.0, as in
            Differentiable-Patterning; 0: off; only with a mask).
    """

    variant: Variant = "nca"
    channels: int | None = None
    filters: tuple[str, ...] | None = None
    hidden: int | None = None
    activation: Activation | None = None
    fire_rate: float | None = None
    alive: bool | None = None
    alive_threshold: float | None = None
    boundary: Boundary = "periodic"
    scales: tuple[int, ...] | None = None
    basis: int | None = None
    degree: int | None = None
    token_size: int | None = None
    heads: int | None = None
    bound: float | None = None
    mask: str | None = None
    mask_kind: MaskKind | None = None
    boundary_weight: float | None = None

    def __post_init__(self) -> None:
        if self.mask is not None:
            _check_spec(self.mask, "model.mask", disk=True)
        for name in ("mask_kind", "boundary_weight"):
            if self.mask is None and getattr(self, name) is not None:
                raise ValueError(
                    f"model.{name}={getattr(self, name)!r} is a setting of a mask: give model.mask"
                )
        if self.boundary_weight is not None:
            check_number(self.boundary_weight, "model.boundary_weight", 0.0)
        if self.variant == "kan" and self.activation is not None:
            raise ValueError("model.activation is not a setting of the kan variant")
        if self.variant in _NO_HIDDEN and self.hidden is not None:
            raise ValueError(f"model.hidden is not a setting of the {self.variant} variant")
        for name, owner in _VARIANT_SETTINGS.items():
            if self.variant != owner and getattr(self, name) is not None:
                raise ValueError(
                    f"model.{name} is a setting of the {owner} variant, not {self.variant}"
                )
        for name in ("degree", "token_size", "heads"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), f"model.{name}", 1)
        if self.variant == "attention":
            size = _TOKEN_SIZE if self.token_size is None else self.token_size
            heads = _HEADS if self.heads is None else self.heads
            if size % heads:
                raise ValueError(
                    f"model.token_size must be divisible by model.heads = {heads}; got {size}"
                )
        if self.bound is not None and not (
            isinstance(self.bound, (int, float))
            and not isinstance(self.bound, bool)
            and 0.0 < self.bound < math.inf
        ):
            raise ValueError(f"model.bound must be a finite number > 0; got {self.bound!r}")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise ValueError(f"model.activation must be one of {list(ACTIVATIONS)}")
        unknown = [f for f in self.filters or () if f not in PERCEPTION_FILTERS]
        if unknown or self.filters == ():
            raise ValueError(
                f"model.filters must name filters of {list(PERCEPTION_FILTERS)}; got "
                f"{list(self.filters or ())}"
            )


def _pool_field(default: Any, help_text: str) -> Any:
    """A field of the pool settings, its ``--help`` text held with it (the same in every
    pool-trained task's section)."""
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class _PoolSection:
    """The settings every pool-trained task (grow, species, morph) shares; their help is
    held with the fields. A section names itself by ``section``."""

    section: typing.ClassVar[str]
    size: int = _pool_field(40, "the side of the targets in cells.")
    pad: int = _pool_field(0, "empty cells around the targets (the grid side is size + 2 pad).")
    rollout_steps: int = _pool_field(64, "NCA steps of every rollout (training and evaluation).")
    pool_size: int = _pool_field(256, "states in the sample pool.")
    batch_size: int = _pool_field(8, "states drawn from the pool per training step.")
    damage: int = _pool_field(2, "the best samples of each batch that lose a random disk.")
    reseed: int = _pool_field(2, "the worst samples of each batch restarted from their seed.")
    checkpoint: bool = _pool_field(
        False, "wrap every NCA step in jax.checkpoint (less memory for long rollouts)."
    )
    samples: int = _pool_field(
        8, "stochastic rollouts averaged by the evaluation (validation and final metrics)."
    )

    def __post_init__(self) -> None:
        at = self.section
        for name in ("size", "rollout_steps", "pool_size", "batch_size", "samples"):
            check_int(getattr(self, name), f"{at}.{name}", 1)
        for name in ("pad", "damage", "reseed"):
            check_int(getattr(self, name), f"{at}.{name}", 0)
        for name in ("damage", "reseed"):
            if getattr(self, name) > self.batch_size:
                raise ValueError(
                    f"{at}.{name} must be <= {at}.batch_size = {self.batch_size}; got "
                    f"{getattr(self, name)}"
                )
        if self.batch_size > self.pool_size:
            raise ValueError(
                f"{at}.batch_size must be <= {at}.pool_size = {self.pool_size}; got "
                f"{self.batch_size}"
            )


@dataclasses.dataclass(frozen=True)
class GrowConfig(_PoolSection):
    """Growing a target from one seed cell (``--task grow``), with the pool settings that
    the pool-trained tasks share (size, pad, rollout_steps, pool_size, batch_size, damage,
    reseed, checkpoint, samples: see ``--help``).

    Attributes:
        target: a built-in target (smiley, heart, ring, glyph:X) or a PNG file.
    """

    section: typing.ClassVar[str] = "grow"
    target: str = "smiley"


@dataclasses.dataclass(frozen=True)
class SpeciesConfig(_PoolSection):
    """Growing several targets with one NCA (``--task species``), each from its own seed
    cell carrying a one-hot species code in the hidden channels 4, 5, ... (the model needs
    at least 4 + S channels), with the pool settings that the pool-trained tasks share
    (see `GrowConfig`).

    Attributes:
        targets: the S >= 2 distinct targets, each a built-in target (smiley, heart, ring,
            glyph:X) or a PNG file; species s grows targets[s].
    """

    section: typing.ClassVar[str] = "species"
    targets: tuple[str, ...] = ("smiley", "heart")

    def __post_init__(self) -> None:
        super().__post_init__()
        targets = tuple(self.targets)
        for spec in targets:
            _check_spec(spec, "species.targets")
        if len(targets) < 2:
            raise ValueError(
                f"species.targets must name at least two targets (one is --task grow); got "
                f"{list(targets)}"
            )
        if len(set(targets)) != len(targets):
            raise ValueError(f"species.targets must be distinct; got {list(targets)}")


@dataclasses.dataclass(frozen=True)
class MorphConfig(_PoolSection):
    """Morphing one target into another (``--task morph``): the NCA starts from the source
    pattern (its RGBA, with the code channels at 1 on the cells it occupies) and is trained
    to reach the target after rollout_steps steps (the morph schedule) and to hold it (the
    pool keeps the morphed states), with the pool settings that the pool-trained tasks share
    (see `GrowConfig`).

    Attributes:
        source: the pattern to start from: a built-in target (smiley, heart, ring, glyph:X)
            or a PNG file.
        target: the pattern to morph into (another one than the source).
        code_channels: hidden channels (each >= 4, below the model's channels) set to 1 on
            the cells the source occupies.
        damage: the best samples of each batch that lose a random disk (none by default: the
            morph itself is the task).
    """

    section: typing.ClassVar[str] = "morph"
    damage: int = 0
    source: str = "smiley"
    target: str = "heart"
    code_channels: tuple[int, ...] = (4,)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_spec(self.source, "morph.source")
        _check_spec(self.target, "morph.target")
        if self.source == self.target:
            raise ValueError(
                f"morph.source and morph.target are both {self.source!r}: a morph needs two "
                "different patterns"
            )
        for c in self.code_channels:
            check_int(c, "morph.code_channels", 4)
        if len(set(self.code_channels)) != len(self.code_channels):
            raise ValueError(
                f"morph.code_channels must be distinct; got {list(self.code_channels)}"
            )


@dataclasses.dataclass(frozen=True)
class PDEConfig:
    """Learning Gray-Scott trajectories frame to frame (``--task pde``).

    Attributes:
        size: the grid side.
        frames: frames per trajectory.
        frame_dt: PDE time between frames.
        trajectories: training trajectories (each from its own random initial condition).
        steps_per_frame: NCA steps per frame interval.
        window: frames of every free rollout in training (1 learns single steps, not
            trajectories); at most frames - 1.
        batch_size: windows per training step.
        checkpoint: wrap every NCA step in jax.checkpoint (less memory for long rollouts).
    """

    size: int = 32
    frames: int = 24
    frame_dt: float = 50.0
    trajectories: int = 2
    steps_per_frame: int = 8
    window: int = 6
    batch_size: int = 8
    checkpoint: bool = False

    def __post_init__(self) -> None:
        for name in ("size", "trajectories", "steps_per_frame", "window", "batch_size"):
            check_int(getattr(self, name), f"pde.{name}", 1)
        check_int(self.frames, "pde.frames", 2)
        if not self.frame_dt > 0:
            raise ValueError(f"pde.frame_dt must be > 0; got {self.frame_dt!r}")
        if self.window > self.frames - 1:
            raise ValueError(
                f"pde.window must be <= pde.frames - 1 = {self.frames - 1}; got {self.window}"
            )


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
    """Learning recorded frame sequences (``--task sequence --data PATH``): every interval
    between frames trained in parallel, teacher-forced or from propagated states.

    Attributes:
        held_out: the last frames of every sequence kept for validation (>= 2): the NCA rolls
            out from the first and is scored on the rest, against persistence.
        steps_per_frame: NCA steps of the shortest interval between frames (longer intervals
            take proportionally more; each must come out a whole number).
        times: the time of every frame (None: the .npz file's 'times', else 0, 1, 2, ...).
        batch_size: (sequence, interval) pairs per training step (None: all of them).
        propagate_fraction: the fraction of each batch that starts from the NCA's own
            propagated states, hidden channels carried (the rest: the observed frame with zero
            hidden channels).
        loss_channels: observed channels in the loss and the validation (None: all).
        loss_frames: training frames (1 to N-1) whose prediction enters the loss (None: all).
        state_range: the range outside which the state regulariser penalises every channel.
        regulariser_weight: weight of the state regulariser (0: off); the data must lie in
            state_range when it is on.
        perception_weight: weight of the MSE between the model's non-identity perception
            features of prediction and target (0: off).
        checkpoint: wrap every NCA step in jax.checkpoint (less memory for long rollouts).
    """

    held_out: int = 2
    steps_per_frame: int = 8
    times: tuple[float, ...] | None = None
    batch_size: int | None = None
    propagate_fraction: float = 0.5
    loss_channels: tuple[int, ...] | None = None
    loss_frames: tuple[int, ...] | None = None
    state_range: tuple[float, float] = (0.0, 1.0)
    regulariser_weight: float = 1.0
    perception_weight: float = 0.01
    checkpoint: bool = False

    def __post_init__(self) -> None:
        check_int(self.held_out, "sequence.held_out", 2)
        check_int(self.steps_per_frame, "sequence.steps_per_frame", 1)
        if self.batch_size is not None:
            check_int(self.batch_size, "sequence.batch_size", 1)
        if not 0.0 <= self.propagate_fraction <= 1.0:
            raise ValueError(
                f"sequence.propagate_fraction must lie in [0, 1]; got {self.propagate_fraction!r}"
            )
        for name in ("loss_channels", "loss_frames"):
            values = getattr(self, name)
            if values is not None and (not values or min(values) < 0):
                raise ValueError(
                    f"sequence.{name} must name at least one index >= 0 (None: all); got "
                    f"{list(values)}"
                )
        low, high = self.state_range
        if not low < high:
            raise ValueError(
                f"sequence.state_range must be low,high with low < high; got {self.state_range}"
            )
        for name in ("regulariser_weight", "perception_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"sequence.{name} must be >= 0; got {getattr(self, name)!r}")


def _is_texture_file(spec: str) -> bool:
    """Whether a ``texture.texture`` names a file (a ``.png`` name or a path) rather than a
    built-in texture."""
    return spec.lower().endswith(".png") or "/" in spec or os.sep in spec


@dataclasses.dataclass(frozen=True)
class TextureConfig:
    """Growing a texture like an example from noise (``--task texture``): every sample of a
    pool runs for a random number of steps and is scored by the sliced-Wasserstein texture
    loss of its first three channels (RGB).

    Attributes:
        texture: a built-in texture (stripes, spots, checker) or a PNG file, read as RGB in
            [0, 1] and used at its own resolution (one pixel per cell).
        size: the grid side in cells (and the side of a built-in texture).
        period: the period in cells of a built-in texture (refused with a PNG).
        rollout_min: the fewest NCA steps of a training rollout.
        rollout_max: the most NCA steps of a training rollout (the evaluation runs this many).
        pool_size: states in the sample pool.
        batch_size: states drawn from the pool per training step.
        reseed: samples of each batch restarted from fresh noise.
        levels: levels of the feature pyramid of the texture loss (2**levels <= size).
        projections: random directions of the sliced Wasserstein distance.
        overflow: weight of the penalty on state values outside [-1, 1].
        checkpoint: wrap every NCA step in jax.checkpoint (less memory for long rollouts).
        samples: rollouts from fresh noise scored by the evaluation (validation and the final
            metrics).
    """

    texture: str = "stripes"
    size: int = 32
    period: int = 8
    rollout_min: int = 32
    rollout_max: int = 64
    pool_size: int = 256
    batch_size: int = 8
    reseed: int = 1
    levels: int = 3
    projections: int = 32
    overflow: float = 1.0
    checkpoint: bool = False
    samples: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.texture, str) or not (
            self.texture in TEXTURES or _is_texture_file(self.texture)
        ):
            raise ValueError(
                f"texture.texture must be one of {list(TEXTURES)} or a PNG file; got "
                f"{self.texture!r}"
            )
        if _is_texture_file(self.texture) and self.period != TextureConfig.period:
            raise ValueError(
                f"texture.period={self.period!r} draws the built-in textures; the PNG "
                f"{self.texture!r} is used as stored"
            )
        for name in ("size", "rollout_min", "pool_size", "batch_size", "levels", "projections"):
            check_int(getattr(self, name), f"texture.{name}", 1)
        check_int(self.samples, "texture.samples", 1)
        check_int(self.period, "texture.period", 2)
        check_int(self.reseed, "texture.reseed", 0)
        check_int(self.rollout_max, "texture.rollout_max", self.rollout_min)
        if 2**self.levels > self.size:
            raise ValueError(
                f"texture.size must be >= 2**texture.levels = {2**self.levels} (differences at "
                f"scale 2**(levels - 1) on a periodic grid); got {self.size}"
            )
        if self.batch_size > self.pool_size:
            raise ValueError(
                f"texture.batch_size must be <= texture.pool_size = {self.pool_size}; got "
                f"{self.batch_size}"
            )
        if self.reseed > self.batch_size:
            raise ValueError(
                f"texture.reseed must be <= texture.batch_size = {self.batch_size}; got "
                f"{self.reseed}"
            )
        check_number(self.overflow, "texture.overflow", 0.0)


_NCA_OPTIM = OptimConfig(
    "adam", 2e-3, schedule="exponential", decay_rate=0.1, normalise_gradients=True
)
"""The NCA's optimiser: Adam on normalised gradients, the rate decaying to a tenth."""


@dataclasses.dataclass(frozen=True)
class NCATrainConfig:
    """``diffdyn nca train``: grow a target from a seed cell, grow several targets at once,
    morph one target into another, learn Gray-Scott, learn a recorded sequence, or grow a
    texture from noise.

    Attributes:
        task: grow (a target image from one seed cell, with a sample pool and damage),
            species (several targets, each from its own coded seed cell), morph (one target
            into another), pde (Gray-Scott trajectories frame to frame), sequence (recorded
            frames, --data) or texture (an example texture grown from noise; the default
            optimiser, Adam at 2e-3 on normalised gradients, trains it).
        data: the recorded frames of task sequence: a .npy/.npz array [T, C, H, W] or
            [B, T, C, H, W], or a folder of PNG frames (required for task sequence, refused
            with the others).
        model: the NCA.
        optim: the optimiser (default for every task: Adam at 2e-3 on normalised gradients,
            decaying to a tenth over the run; texture trains well with it).
        train: the training loop.
        grow: the growing task (its settings are refused with the other tasks).
        species: the several-targets task (its settings are refused with the other tasks).
        morph: the morphing task (its settings are refused with the other tasks).
        pde: the trajectory task (its settings are refused with the other tasks).
        sequence: the recorded-sequence task (its settings are refused with the other tasks).
        texture: the texture task (its settings are refused with the other tasks).
    """

    task: Task = "grow"
    data: str | None = None
    model: NCAModelConfig = NCAModelConfig()
    optim: OptimConfig = _NCA_OPTIM
    train: TrainConfig = TrainConfig(
        steps=2000, log_every=25, image_every=250, checkpoint_every=250, validate_every=100
    )
    grow: GrowConfig = GrowConfig()
    species: SpeciesConfig = SpeciesConfig()
    morph: MorphConfig = MorphConfig()
    pde: PDEConfig = PDEConfig()
    sequence: SequenceConfig = SequenceConfig()
    texture: TextureConfig = TextureConfig()

    def __post_init__(self) -> None:
        sections = (
            ("grow", GrowConfig()),
            ("species", SpeciesConfig()),
            ("morph", MorphConfig()),
            ("pde", PDEConfig()),
            ("sequence", SequenceConfig()),
            ("texture", TextureConfig()),
        )
        for section, default in sections:
            value = getattr(self, section)
            if self.task != section and value != default:
                changed = [
                    f"{section}.{f.name}={getattr(value, f.name)!r}"
                    for f in dataclasses.fields(value)
                    if getattr(value, f.name) != getattr(default, f.name)
                ]
                raise ValueError(
                    f"{', '.join(changed)}: the {section}.* settings belong to task {section}, "
                    f"not to task {self.task}"
                )
        if self.task == "sequence" and not self.data:
            raise ValueError(
                "task sequence learns recorded frames: give --data PATH (a .npy/.npz array "
                "[T, C, H, W] or [B, T, C, H, W], or a folder of PNG frames)"
            )
        if self.task != "sequence" and self.data is not None:
            raise ValueError(
                f"data={self.data!r}: --data belongs to task sequence, not to task {self.task}"
            )
        resolved = _resolve(self.model, self.task)
        if not resolved["alive"] and self.model.alive_threshold is not None:
            raise ValueError(
                f"model.alive_threshold needs alive masking, which is off (model.alive = "
                f"{self.model.alive}, task {self.task})"
            )
        self._check_channels(resolved["channels"])

    def _check_channels(self, channels: int) -> None:
        """Refuse a mask on a task without a target grid, and channels that cannot hold the
        species or morph codes (and a soft mask's structure channel besides)."""
        m = self.model
        if m.mask is not None and self.task not in _POOL_TASKS:
            raise ValueError(
                f"model.mask confines the cells of tasks {', '.join(_POOL_TASKS)}, not of task "
                f"{self.task}"
            )
        structure = {channels - 1} if m.mask is not None and m.mask_kind == "soft" else set()
        if structure and channels - 1 <= 3:
            raise ValueError(
                f"model.mask_kind soft holds the last channel at the shape; with model.channels "
                f"= {channels} that is one of the RGBA channels 0-3 (give model.channels >= 5)"
            )
        if self.task == "species":
            codes = set(range(4, 4 + len(self.species.targets)))
            what = f"the {len(codes)} species codes of species.targets (channels 4-{max(codes)})"
        elif self.task == "morph":
            codes = set(self.morph.code_channels)
            what = f"morph.code_channels {sorted(codes)}"
        else:
            return
        if max(codes, default=3) >= channels or codes & structure:
            extra = " and the soft mask's structure channel" if structure else ""
            raise ValueError(
                f"model.channels = {channels} cannot hold RGBA, {what}{extra}: give "
                f"model.channels >= {max(codes, default=3) + 1 + len(structure)}"
            )


@dataclasses.dataclass(frozen=True)
class NCARunConfig:
    """``diffdyn nca run``: grow a trained NCA from a seed cell, erase half, regrow.

    Only models of task grow run from a seed cell: a model folder whose ``config.yaml``
    names another task (pde, sequence, texture) is refused; their figures are written by the
    training itself (texture: ``texture.png`` and ``texture_rollout.gif``, grown from noise).

    Attributes:
        model: a model file (.eqx) or a ``diffdyn nca train`` output folder (its model.eqx).
        steps: NCA steps grown from the seed cell (None: the training's rollout steps).
        regrow_steps: NCA steps regrown after erasing the right half (None: as many as steps).
        every: NCA steps per GIF frame (must divide steps and regrow_steps).
        samples: stochastic rollouts averaged by the metrics (the GIF shows the first).
        target: the target of the metrics (None: the training's; a built-in or a PNG file).
        size: the target's side in cells (None: the training's, else 40).
    """

    model: str
    steps: int | None = None
    regrow_steps: int | None = None
    every: int = 2
    samples: int = 8
    target: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must name a model file or a `diffdyn nca train` output folder")
        check_int(self.every, "every", 1)
        check_int(self.samples, "samples", 1)
        if self.steps is not None:
            check_int(self.steps, "steps", 1)
        if self.regrow_steps is not None:
            check_int(self.regrow_steps, "regrow_steps", 0)
        if self.size is not None:
            check_int(self.size, "size", 1)


def _resolve(cfg: NCAModelConfig, task: str) -> dict[str, Any]:
    defaults = _TASK_DEFAULTS[task]
    return {k: defaults[k] if getattr(cfg, k) is None else getattr(cfg, k) for k in defaults}


def _boundary_weight(cfg: NCAModelConfig) -> float:
    """The weight of the boundary regulariser that ``cfg`` trains with: 0 without a mask,
    else ``cfg.boundary_weight`` (None: 1.0, as in Differentiable-Patterning)."""
    if cfg.mask is None:
        return 0.0
    return _BOUNDARY_WEIGHT if cfg.boundary_weight is None else float(cfg.boundary_weight)


def _cells_mask(kind: str, shape: np.ndarray) -> FixedMask | TrainableMask:
    """The `Cells` mask of kind ``kind`` made from the 0/1 field ``shape [H, W]``."""
    if kind == "hard":
        return FixedMask(shape)
    if kind == "soft":  # the last channel held at the shape everywhere
        return FixedMask(np.ones_like(shape), "soft", channels=(-1,), values=shape[None])
    return TrainableMask(_MASK_LOGIT * (2.0 * shape - 1.0))


def build_model(
    cfg: NCAModelConfig,
    task: Task,
    key: PRNGKeyArray,
    *,
    mask: Float[np.ndarray, "H W"] | None = None,
) -> AbstractNCA:
    """The NCA that ``cfg`` describes, with the defaults of ``task`` for its ``None``
    fields. ``mask`` is the 0/1 field of ``cfg.mask`` on the task's grid (`make_mask`),
    given exactly when ``cfg.mask`` is."""
    if task not in _TASK_DEFAULTS:
        raise ValueError(f"task must be one of {list(_TASK_DEFAULTS)}; got {task!r}")
    if (cfg.mask is None) != (mask is None):
        raise ValueError(
            "build_model: give the argument mask (the field make_mask(cfg.mask, ...) on the "
            "task's grid) exactly when cfg.mask names a shape; got cfg.mask = "
            f"{cfg.mask!r} and mask {'None' if mask is None else 'given'}"
        )
    pick = _resolve(cfg, task)
    threshold = _ALIVE_THRESHOLD if cfg.alive_threshold is None else cfg.alive_threshold
    cells = Cells(
        pick["channels"],
        pick["filters"],
        fire_rate=pick["fire_rate"],
        alive_threshold=threshold if pick["alive"] else None,
        alive_channel=3,
        boundary=cfg.boundary,
        mask=None if mask is None else _cells_mask(cfg.mask_kind or "hard", np.asarray(mask)),
    )
    hidden = _HIDDEN if cfg.hidden is None else cfg.hidden
    activation = _ACTIVATION if cfg.activation is None else cfg.activation
    if cfg.variant == "nca":
        return NCA(cells, hidden, activation, key=key)
    if cfg.variant == "gated":
        return GatedNCA(cells, hidden, activation, key=key)
    if cfg.variant == "multiscale":
        scales = _SCALES if cfg.scales is None else cfg.scales
        return MultiScaleNCA(cells, hidden, activation, scales, key=key)
    if cfg.variant == "polynomial":
        degree = _DEGREE if cfg.degree is None else cfg.degree
        return PolynomialNCA(cells, hidden, activation, degree, key=key)
    if cfg.variant == "attention":
        token_size = _TOKEN_SIZE if cfg.token_size is None else cfg.token_size
        heads = _HEADS if cfg.heads is None else cfg.heads
        return AttentionNCA(cells, token_size, heads, activation, key=key)
    if cfg.variant == "bounded":
        bound = _BOUND if cfg.bound is None else cfg.bound
        return BoundedNCA(cells, hidden, activation, bound, key=key)
    if cfg.variant == "kan":
        return KANCA(cells, _BASIS if cfg.basis is None else cfg.basis, key=key)
    raise ValueError(
        f"model.variant must be one of {list(typing.get_args(Variant))}; got {cfg.variant!r}"
    )
