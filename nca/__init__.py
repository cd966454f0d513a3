"""Neural cellular automata.

An NCA perceives each cell's neighbourhood with fixed stencils (`diffdyn.common.Perception`),
proposes an update with a per-cell network whose last layer starts at zero, and applies it
where a stochastic fire-rate mask fires. Variants, growing a target from a seed with a sample
pool, learning PDE trajectories frame to frame, targets and figures.
"""

from ._model import (
    BOUNDARIES as BOUNDARIES,
    DEFAULT_FILTERS as DEFAULT_FILTERS,
    Cells as Cells,
    AbstractNCA as AbstractNCA,
    NCA as NCA,
    rollout_batch as rollout_batch,
    seed_state as seed_state,
)
from ._variants import (
    GatedNCA as GatedNCA,
    MultiScaleNCA as MultiScaleNCA,
    KANCA as KANCA,
)
from ._layers import (
    Pointwise as Pointwise,
    PointwiseMLP as PointwiseMLP,
    GaussianKAN as GaussianKAN,
    ACTIVATIONS as ACTIVATIONS,
)
from ._grow import (
    GrowLoss as GrowLoss,
    nca_optimiser as nca_optimiser,
    make_pool as make_pool,
    grow_visualiser as grow_visualiser,
    train_grow as train_grow,
    erase_half as erase_half,
    evaluate_growth as evaluate_growth,
)
from ._pde_task import (
    gray_scott_trajectory as gray_scott_trajectory,
    trajectory_windows as trajectory_windows,
    TrajectoryLoss as TrajectoryLoss,
    trajectory_visualiser as trajectory_visualiser,
    train_trajectory as train_trajectory,
    evaluate_trajectory as evaluate_trajectory,
)
from ._targets import (
    BUILTIN_TARGETS as BUILTIN_TARGETS,
    builtin_target as builtin_target,
    load_png as load_png,
    make_target as make_target,
    to_rgb as to_rgb,
)
from ._visualise import (
    first_layer_blocks as first_layer_blocks,
    weight_matrices as weight_matrices,
    plot_perception as plot_perception,
    plot_weights as plot_weights,
    plot_channels as plot_channels,
)

__all__ = [
    "BOUNDARIES",
    "DEFAULT_FILTERS",
    "Cells",
    "AbstractNCA",
    "NCA",
    "rollout_batch",
    "seed_state",
    "GatedNCA",
    "MultiScaleNCA",
    "KANCA",
    "Pointwise",
    "PointwiseMLP",
    "GaussianKAN",
    "ACTIVATIONS",
    "GrowLoss",
    "nca_optimiser",
    "make_pool",
    "grow_visualiser",
    "train_grow",
    "erase_half",
    "evaluate_growth",
    "gray_scott_trajectory",
    "trajectory_windows",
    "TrajectoryLoss",
    "trajectory_visualiser",
    "train_trajectory",
    "evaluate_trajectory",
    "BUILTIN_TARGETS",
    "builtin_target",
    "load_png",
    "make_target",
    "to_rgb",
    "first_layer_blocks",
    "weight_matrices",
    "plot_perception",
    "plot_weights",
    "plot_channels",
]
