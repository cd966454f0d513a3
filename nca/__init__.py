"""Neural cellular automata.

An NCA perceives each cell's neighbourhood with fixed stencils (`diffdyn.common.Perception`),
proposes an update with a per-cell network whose last layer starts at zero, and applies it
where a stochastic fire-rate mask fires. Variants, growing a target from a seed with a sample
pool, several targets at once and morphing, masks that confine the cells to a shape,
learning PDE trajectories frame to frame, targets and figures.
"""

from ._analysis import (
    FixedPoint as FixedPoint,
)
from ._analysis import (
    NCAAnalyseConfig as NCAAnalyseConfig,
)
from ._analysis import (
    NCAAnalysis as NCAAnalysis,
)
from ._analysis import (
    PerceptionSensitivity as PerceptionSensitivity,
)
from ._analysis import (
    Stability as Stability,
)
from ._analysis import (
    analyse_nca as analyse_nca,
)
from ._analysis import (
    fixed_point as fixed_point,
)
from ._analysis import (
    perception_sensitivity as perception_sensitivity,
)
from ._analysis import (
    stability as stability,
)
from ._config import (
    GrowConfig as GrowConfig,
)
from ._config import (
    MorphConfig as MorphConfig,
)
from ._config import (
    NCAModelConfig as NCAModelConfig,
)
from ._config import (
    NCARunConfig as NCARunConfig,
)
from ._config import (
    NCATrainConfig as NCATrainConfig,
)
from ._config import (
    PDEConfig as PDEConfig,
)
from ._config import (
    SequenceConfig as SequenceConfig,
)
from ._config import (
    SpeciesConfig as SpeciesConfig,
)
from ._config import (
    TextureConfig as TextureConfig,
)
from ._config import (
    build_model as build_model,
)
from ._figures import (
    first_layer_blocks as first_layer_blocks,
)
from ._figures import (
    plot_channels as plot_channels,
)
from ._figures import (
    plot_growth as plot_growth,
)
from ._figures import (
    plot_morph as plot_morph,
)
from ._figures import (
    plot_perception as plot_perception,
)
from ._figures import (
    plot_sequence as plot_sequence,
)
from ._figures import (
    plot_species as plot_species,
)
from ._figures import (
    plot_texture as plot_texture,
)
from ._figures import (
    plot_trajectory as plot_trajectory,
)
from ._figures import (
    plot_weights as plot_weights,
)
from ._figures import (
    save_rollout_gif as save_rollout_gif,
)
from ._figures import (
    save_texture_gif as save_texture_gif,
)
from ._figures import (
    save_trajectory_gif as save_trajectory_gif,
)
from ._figures import (
    weight_matrices as weight_matrices,
)
from ._grow import (
    AbstractPoolTask as AbstractPoolTask,
)
from ._grow import (
    GrowTask as GrowTask,
)
from ._grow import (
    GrowthEvaluation as GrowthEvaluation,
)
from ._grow import (
    erase_half as erase_half,
)
from ._grow import (
    evaluate_growth as evaluate_growth,
)
from ._layers import (
    ACTIVATIONS as ACTIVATIONS,
)
from ._layers import (
    GaussianKAN as GaussianKAN,
)
from ._layers import (
    Pointwise as Pointwise,
)
from ._layers import (
    PointwiseMLP as PointwiseMLP,
)
from ._model import (
    BOUNDARIES as BOUNDARIES,
)
from ._model import (
    DEFAULT_FILTERS as DEFAULT_FILTERS,
)
from ._model import (
    NCA as NCA,
)
from ._model import (
    AbstractNCA as AbstractNCA,
)
from ._model import (
    Cells as Cells,
)
from ._model import (
    boundary_regulariser as boundary_regulariser,
)
from ._model import (
    rollout_batch as rollout_batch,
)
from ._model import (
    seed_state as seed_state,
)
from ._multi import (
    MorphTask as MorphTask,
)
from ._multi import (
    MultiTargetTask as MultiTargetTask,
)
from ._multi import (
    SpeciesPool as SpeciesPool,
)
from ._pde_task import (
    TrajectoryTask as TrajectoryTask,
)
from ._pde_task import (
    evaluate_trajectory as evaluate_trajectory,
)
from ._pde_task import (
    gray_scott_trajectory as gray_scott_trajectory,
)
from ._pde_task import (
    trajectory_windows as trajectory_windows,
)
from ._sequence import (
    SequenceTask as SequenceTask,
)
from ._sequence import (
    interval_steps as interval_steps,
)
from ._sequence import (
    state_regulariser as state_regulariser,
)
from ._targets import (
    BUILTIN_TARGETS as BUILTIN_TARGETS,
)
from ._targets import (
    MASK_SHAPES as MASK_SHAPES,
)
from ._targets import (
    builtin_target as builtin_target,
)
from ._targets import (
    load_png as load_png,
)
from ._targets import (
    make_mask as make_mask,
)
from ._targets import (
    make_target as make_target,
)
from ._targets import (
    to_rgb as to_rgb,
)
from ._texture import (
    TextureTask as TextureTask,
)
from ._variants import (
    KANCA as KANCA,
)
from ._variants import (
    AttentionNCA as AttentionNCA,
)
from ._variants import (
    BoundedNCA as BoundedNCA,
)
from ._variants import (
    GatedNCA as GatedNCA,
)
from ._variants import (
    MultiScaleNCA as MultiScaleNCA,
)
from ._variants import (
    PolynomialNCA as PolynomialNCA,
)
from ._variants import (
    monomial_table as monomial_table,
)
from ._workflows import (
    NCAFit as NCAFit,
)
from ._workflows import (
    NCARun as NCARun,
)
from ._workflows import (
    fit_nca as fit_nca,
)
from ._workflows import (
    load_texture as load_texture,
)
from ._workflows import (
    run_nca as run_nca,
)

__all__ = [
    "BOUNDARIES",
    "DEFAULT_FILTERS",
    "Cells",
    "AbstractNCA",
    "NCA",
    "boundary_regulariser",
    "rollout_batch",
    "seed_state",
    "GatedNCA",
    "MultiScaleNCA",
    "KANCA",
    "PolynomialNCA",
    "AttentionNCA",
    "BoundedNCA",
    "monomial_table",
    "Pointwise",
    "PointwiseMLP",
    "GaussianKAN",
    "ACTIVATIONS",
    "AbstractPoolTask",
    "GrowTask",
    "GrowthEvaluation",
    "erase_half",
    "evaluate_growth",
    "gray_scott_trajectory",
    "trajectory_windows",
    "TrajectoryTask",
    "evaluate_trajectory",
    "BUILTIN_TARGETS",
    "builtin_target",
    "load_png",
    "make_target",
    "to_rgb",
    "MASK_SHAPES",
    "make_mask",
    "PerceptionSensitivity",
    "perception_sensitivity",
    "FixedPoint",
    "fixed_point",
    "Stability",
    "stability",
    "NCAAnalyseConfig",
    "NCAAnalysis",
    "analyse_nca",
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
    "first_layer_blocks",
    "weight_matrices",
    "plot_perception",
    "plot_weights",
    "plot_channels",
    "plot_growth",
    "plot_trajectory",
    "plot_sequence",
    "save_rollout_gif",
    "save_trajectory_gif",
    "plot_texture",
    "save_texture_gif",
    "plot_species",
    "plot_morph",
    "MorphTask",
    "MultiTargetTask",
    "SpeciesPool",
    "interval_steps",
    "state_regulariser",
    "SequenceTask",
    "TextureTask",
    "NCAFit",
    "NCARun",
    "fit_nca",
    "run_nca",
    "load_texture",
]
