"""Neural cellular automata.

An NCA perceives each cell's neighbourhood with fixed stencils (`diffdyn.common.Perception`),
proposes an update with a per-cell network whose last layer starts at zero, and applies it
where a stochastic fire-rate mask fires. Variants, growing a target from a seed with a sample
pool, learning PDE trajectories frame to frame, targets and figures.
"""

from ._grow import (
    GrowLoss as GrowLoss,
)
from ._grow import (
    erase_half as erase_half,
)
from ._grow import (
    evaluate_growth as evaluate_growth,
)
from ._grow import (
    grow_visualiser as grow_visualiser,
)
from ._grow import (
    make_pool as make_pool,
)
from ._grow import (
    nca_optimiser as nca_optimiser,
)
from ._grow import (
    train_grow as train_grow,
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
    rollout_batch as rollout_batch,
)
from ._model import (
    seed_state as seed_state,
)
from ._pde_task import (
    TrajectoryLoss as TrajectoryLoss,
)
from ._pde_task import (
    evaluate_trajectory as evaluate_trajectory,
)
from ._pde_task import (
    gray_scott_trajectory as gray_scott_trajectory,
)
from ._pde_task import (
    train_trajectory as train_trajectory,
)
from ._pde_task import (
    trajectory_visualiser as trajectory_visualiser,
)
from ._pde_task import (
    trajectory_windows as trajectory_windows,
)
from ._targets import (
    BUILTIN_TARGETS as BUILTIN_TARGETS,
)
from ._targets import (
    builtin_target as builtin_target,
)
from ._targets import (
    load_png as load_png,
)
from ._targets import (
    make_target as make_target,
)
from ._targets import (
    to_rgb as to_rgb,
)
from ._variants import (
    KANCA as KANCA,
)
from ._variants import (
    GatedNCA as GatedNCA,
)
from ._variants import (
    MultiScaleNCA as MultiScaleNCA,
)
from ._visualise import (
    first_layer_blocks as first_layer_blocks,
)
from ._visualise import (
    plot_channels as plot_channels,
)
from ._visualise import (
    plot_perception as plot_perception,
)
from ._visualise import (
    plot_weights as plot_weights,
)
from ._visualise import (
    weight_matrices as weight_matrices,
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
