"""The shared core of diffdyn.

Models (`AbstractModel`: save and load in one file), spatial operators and boundaries,
ODE solving over diffrax (`solve`, `SolveConfig`), the optax `Trainer` with checkpoints,
resume, TensorBoard logging and data parallelism, trajectory-fitting strategies (plain,
multiple shooting, homotopy), augmentation, losses, optimisers, smoothing splines, loss
landscapes, Lyapunov spectra of any vector field or step map, and plotting. Neural
differential equations live in `diffdyn.common.neural_de`; the command line's plugin
interface in `diffdyn.common.cli`.
"""

from ._augment import (
    AbstractAugmenter as AbstractAugmenter,
)
from ._augment import (
    AbstractTransform as AbstractTransform,
)
from ._augment import (
    ArrayAugmenter as ArrayAugmenter,
)
from ._augment import (
    Compose as Compose,
)
from ._augment import (
    FullBatch as FullBatch,
)
from ._augment import (
    GaussianNoise as GaussianNoise,
)
from ._augment import (
    RandomErase as RandomErase,
)
from ._augment import (
    RandomFlip as RandomFlip,
)
from ._augment import (
    RandomRoll as RandomRoll,
)
from ._augment import (
    RandomRot90 as RandomRot90,
)
from ._augment import (
    SamplePool as SamplePool,
)
from ._augment import (
    TreeAugmenter as TreeAugmenter,
)
from ._augment import (
    ZeroPad as ZeroPad,
)
from ._augment import (
    duplicate as duplicate,
)
from ._boundaries import (
    BOUNDARIES as BOUNDARIES,
)
from ._boundaries import (
    AbstractBoundary as AbstractBoundary,
)
from ._boundaries import (
    Dirichlet as Dirichlet,
)
from ._boundaries import (
    FixedMask as FixedMask,
)
from ._boundaries import (
    Neumann as Neumann,
)
from ._boundaries import (
    Periodic as Periodic,
)
from ._boundaries import (
    TrainableMask as TrainableMask,
)
from ._boundaries import (
    make_boundary as make_boundary,
)
from ._checkpoint import (
    BackgroundCheckpointer as BackgroundCheckpointer,
)
from ._checkpoint import (
    load_checkpoint as load_checkpoint,
)
from ._checkpoint import (
    read_checkpoint_header as read_checkpoint_header,
)
from ._checkpoint import (
    save_checkpoint as save_checkpoint,
)
from ._config import (
    build_config as build_config,
)
from ._config import (
    config_to_dict as config_to_dict,
)
from ._config import (
    field_docs as field_docs,
)
from ._config import (
    leaf_fields as leaf_fields,
)
from ._config import (
    load_config_file as load_config_file,
)
from ._config import (
    parse_value as parse_value,
)
from ._config import (
    write_config as write_config,
)
from ._container import (
    read_container as read_container,
)
from ._container import (
    read_container_header as read_container_header,
)
from ._container import (
    write_container as write_container,
)
from ._distributed import (
    broadcast_from_primary as broadcast_from_primary,
)
from ._distributed import (
    gather_to_host as gather_to_host,
)
from ._distributed import (
    initialize_distributed as initialize_distributed,
)
from ._distributed import (
    is_primary as is_primary,
)
from ._events import (
    read_events as read_events,
)
from ._landscape import (
    EigenDensity as EigenDensity,
)
from ._landscape import (
    flat_hvp as flat_hvp,
)
from ._landscape import (
    hessian_eigen_density as hessian_eigen_density,
)
from ._landscape import (
    hutchinson_trace as hutchinson_trace,
)
from ._landscape import (
    hvp as hvp,
)
from ._landscape import (
    loss_surface as loss_surface,
)
from ._landscape import (
    pca_path as pca_path,
)
from ._landscape import (
    top_eigenpairs as top_eigenpairs,
)
from ._logger import (
    Logger as Logger,
)
from ._logger import (
    NullLogger as NullLogger,
)
from ._logger import (
    ShiftedLogger as ShiftedLogger,
)
from ._logger import (
    TensorBoardLogger as TensorBoardLogger,
)
from ._logger import (
    write_hparams as write_hparams,
)
from ._losses import (
    LOSSES as LOSSES,
)
from ._losses import (
    euclidean as euclidean,
)
from ._losses import (
    get_loss as get_loss,
)
from ._losses import (
    l1 as l1,
)
from ._losses import (
    l2 as l2,
)
from ._losses import (
    mse as mse,
)
from ._losses import (
    spectral as spectral,
)
from ._lyapunov import (
    AbstractTangentPropagator as AbstractTangentPropagator,
)
from ._lyapunov import (
    FlowPropagator as FlowPropagator,
)
from ._lyapunov import (
    LyapunovSpectrum as LyapunovSpectrum,
)
from ._lyapunov import (
    StepMapPropagator as StepMapPropagator,
)
from ._lyapunov import (
    benettin as benettin,
)
from ._lyapunov import (
    convergence_diagnostics as convergence_diagnostics,
)
from ._lyapunov import (
    entropy_rate as entropy_rate,
)
from ._lyapunov import (
    kaplan_yorke_dimension as kaplan_yorke_dimension,
)
from ._lyapunov import (
    lyapunov_exponents as lyapunov_exponents,
)
from ._lyapunov import (
    lyapunov_penalty as lyapunov_penalty,
)
from ._lyapunov import (
    max_exponent as max_exponent,
)
from ._lyapunov import (
    random_basis as random_basis,
)
from ._lyapunov import (
    running_exponents as running_exponents,
)
from ._lyapunov import (
    spectrum_summary as spectrum_summary,
)
from ._model import (
    AbstractModel as AbstractModel,
)
from ._model import (
    all_finite as all_finite,
)
from ._model import (
    fixed_field as fixed_field,
)
from ._model import (
    model_from_spec as model_from_spec,
)
from ._model import (
    model_spec as model_spec,
)
from ._model import (
    num_parameters as num_parameters,
)
from ._model import (
    trainable_filter as trainable_filter,
)
from ._operators import (
    LAPLACIAN_STENCILS as LAPLACIAN_STENCILS,
)
from ._operators import (
    PADDING_MODES as PADDING_MODES,
)
from ._operators import (
    PERCEPTION_FILTERS as PERCEPTION_FILTERS,
)
from ._operators import (
    Perception as Perception,
)
from ._operators import (
    curl as curl,
)
from ._operators import (
    divergence as divergence,
)
from ._operators import (
    gaussian_average as gaussian_average,
)
from ._operators import (
    gradient as gradient,
)
from ._operators import (
    gradient_norm as gradient_norm,
)
from ._operators import (
    gradient_x as gradient_x,
)
from ._operators import (
    gradient_y as gradient_y,
)
from ._operators import (
    laplacian as laplacian,
)
from ._operators import (
    pad as pad,
)
from ._optim import (
    OPTIMISERS as OPTIMISERS,
)
from ._optim import (
    SCHEDULES as SCHEDULES,
)
from ._optim import (
    OptimConfig as OptimConfig,
)
from ._optim import (
    make_optimiser as make_optimiser,
)
from ._optim import (
    make_schedule as make_schedule,
)
from ._optim import (
    non_negative as non_negative,
)
from ._optim import (
    normalise_gradients as normalise_gradients,
)
from ._optim import (
    parameter_groups as parameter_groups,
)
from ._plotting import (
    channels_to_rgb as channels_to_rgb,
)
from ._plotting import (
    figure as figure,
)
from ._plotting import (
    normalise as normalise,
)
from ._plotting import (
    plot_curves as plot_curves,
)
from ._plotting import (
    plot_training as plot_training,
)
from ._plotting import (
    save_figure as save_figure,
)
from ._plotting import (
    save_gif as save_gif,
)
from ._plotting import (
    save_png as save_png,
)
from ._plotting import (
    upscale as upscale,
)
from ._run_folder import (
    RunFolder as RunFolder,
)
from ._run_folder import (
    recorded_run as recorded_run,
)
from ._sequence_data import (
    SequenceData as SequenceData,
)
from ._sequence_data import (
    load_sequence as load_sequence,
)
from ._sharding import (
    BATCH_AXIS as BATCH_AXIS,
)
from ._sharding import (
    batch_sharding as batch_sharding,
)
from ._sharding import (
    constrain_batch as constrain_batch,
)
from ._sharding import (
    make_mesh as make_mesh,
)
from ._sharding import (
    replicate as replicate,
)
from ._sharding import (
    replicated_sharding as replicated_sharding,
)
from ._sharding import (
    shard_batch as shard_batch,
)
from ._solve import (
    ADAPTIVE_SOLVERS as ADAPTIVE_SOLVERS,
)
from ._solve import (
    ADJOINTS as ADJOINTS,
)
from ._solve import (
    RK4 as RK4,
)
from ._solve import (
    SOLVERS as SOLVERS,
)
from ._solve import (
    SolveConfig as SolveConfig,
)
from ._solve import (
    get_adjoint as get_adjoint,
)
from ._solve import (
    get_solver as get_solver,
)
from ._solve import (
    solve as solve,
)
from ._solve import (
    supports_adaptive as supports_adaptive,
)
from ._spline import (
    SmoothingSpline as SmoothingSpline,
)
from ._spline import (
    reinsch_matrices as reinsch_matrices,
)
from ._split import (
    SPACE_AXIS as SPACE_AXIS,
)
from ._split import (
    SplitGrid as SplitGrid,
)
from ._strategies import (
    FAILED_MSE as FAILED_MSE,
)
from ._strategies import (
    AbstractStrategy as AbstractStrategy,
)
from ._strategies import (
    Homotopy as Homotopy,
)
from ._strategies import (
    HomotopySchedule as HomotopySchedule,
)
from ._strategies import (
    MultipleShooting as MultipleShooting,
)
from ._strategies import (
    Plain as Plain,
)
from ._strategies import (
    ScheduledBatch as ScheduledBatch,
)
from ._strategies import (
    ShootingParams as ShootingParams,
)
from ._strategies import (
    SynchronisedField as SynchronisedField,
)
from ._strategies import (
    Trajectory as Trajectory,
)
from ._strategies import (
    segment_bounds as segment_bounds,
)
from ._strategies import (
    trajectory_mse as trajectory_mse,
)
from ._symplectic import (
    Leapfrog as Leapfrog,
)
from ._symplectic import (
    PartitionedField as PartitionedField,
)
from ._symplectic import (
    SymplecticEuler as SymplecticEuler,
)
from ._task import (
    AbstractTask as AbstractTask,
)
from ._task import (
    LossTask as LossTask,
)
from ._texture import (
    TEXTURES as TEXTURES,
)
from ._texture import (
    sliced_wasserstein as sliced_wasserstein,
)
from ._texture import (
    texture_features as texture_features,
)
from ._texture import (
    texture_image as texture_image,
)
from ._texture import (
    texture_loss as texture_loss,
)
from ._trainer import (
    CompiledStep as CompiledStep,
)
from ._trainer import (
    EnsembleResult as EnsembleResult,
)
from ._trainer import (
    TrainConfig as TrainConfig,
)
from ._trainer import (
    Trainer as Trainer,
)
from ._trainer import (
    TrainResult as TrainResult,
)
from ._trainer import (
    TrainState as TrainState,
)

__all__ = [
    "AbstractModel",
    "fixed_field",
    "trainable_filter",
    "num_parameters",
    "model_spec",
    "model_from_spec",
    "all_finite",
    "PADDING_MODES",
    "PERCEPTION_FILTERS",
    "LAPLACIAN_STENCILS",
    "Perception",
    "pad",
    "gradient_x",
    "gradient_y",
    "gradient",
    "divergence",
    "laplacian",
    "curl",
    "gradient_norm",
    "gaussian_average",
    "AbstractBoundary",
    "Periodic",
    "Dirichlet",
    "Neumann",
    "FixedMask",
    "TrainableMask",
    "make_boundary",
    "BOUNDARIES",
    "RK4",
    "SOLVERS",
    "ADAPTIVE_SOLVERS",
    "ADJOINTS",
    "get_solver",
    "get_adjoint",
    "supports_adaptive",
    "SolveConfig",
    "solve",
    "AbstractTask",
    "LossTask",
    "TrainConfig",
    "TrainState",
    "TrainResult",
    "EnsembleResult",
    "Trainer",
    "CompiledStep",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint_header",
    "BackgroundCheckpointer",
    "FAILED_MSE",
    "Trajectory",
    "trajectory_mse",
    "segment_bounds",
    "AbstractStrategy",
    "Plain",
    "MultipleShooting",
    "ShootingParams",
    "Homotopy",
    "HomotopySchedule",
    "SynchronisedField",
    "ScheduledBatch",
    "SmoothingSpline",
    "reinsch_matrices",
    "AbstractAugmenter",
    "FullBatch",
    "ArrayAugmenter",
    "TreeAugmenter",
    "SamplePool",
    "AbstractTransform",
    "RandomRoll",
    "RandomFlip",
    "RandomRot90",
    "GaussianNoise",
    "RandomErase",
    "ZeroPad",
    "Compose",
    "duplicate",
    "l1",
    "l2",
    "mse",
    "euclidean",
    "spectral",
    "LOSSES",
    "get_loss",
    "OptimConfig",
    "OPTIMISERS",
    "SCHEDULES",
    "make_optimiser",
    "make_schedule",
    "normalise_gradients",
    "non_negative",
    "parameter_groups",
    "Logger",
    "TensorBoardLogger",
    "NullLogger",
    "ShiftedLogger",
    "write_hparams",
    "read_events",
    "BATCH_AXIS",
    "make_mesh",
    "batch_sharding",
    "replicated_sharding",
    "shard_batch",
    "replicate",
    "constrain_batch",
    "initialize_distributed",
    "is_primary",
    "gather_to_host",
    "broadcast_from_primary",
    "SPACE_AXIS",
    "SplitGrid",
    "hvp",
    "flat_hvp",
    "top_eigenpairs",
    "hutchinson_trace",
    "EigenDensity",
    "hessian_eigen_density",
    "loss_surface",
    "pca_path",
    "LyapunovSpectrum",
    "AbstractTangentPropagator",
    "StepMapPropagator",
    "FlowPropagator",
    "random_basis",
    "benettin",
    "lyapunov_exponents",
    "lyapunov_penalty",
    "TEXTURES",
    "texture_image",
    "texture_features",
    "sliced_wasserstein",
    "texture_loss",
    "max_exponent",
    "kaplan_yorke_dimension",
    "entropy_rate",
    "running_exponents",
    "convergence_diagnostics",
    "spectrum_summary",
    "figure",
    "save_figure",
    "save_png",
    "save_gif",
    "normalise",
    "channels_to_rgb",
    "plot_curves",
    "plot_training",
    "upscale",
    "field_docs",
    "load_config_file",
    "build_config",
    "config_to_dict",
    "write_config",
    "leaf_fields",
    "parse_value",
    "RunFolder",
    "recorded_run",
    "write_container",
    "read_container_header",
    "read_container",
    "SequenceData",
    "load_sequence",
    "Leapfrog",
    "SymplecticEuler",
    "PartitionedField",
]
