r"""Neural differential equations over diffrax: torchdyn's feature set, in JAX, and more.

Neural ODEs with any solver and adjoint (`NeuralODE`, `MLPField`, `LinearField`), augmented
and higher-order systems (ANODE), depth-variant and Galerkin fields, integral losses,
tracking and linear-quadratic control by integral losses, Hamiltonian, Lagrangian and
gradient-flow fields, continuous normalising flows, neural SDEs and
CDEs, graph and convolutional neural ODEs, multiple-shooting layers, events and hybrid
systems, ODE-RNN, GRU-ODE-Bayes and latent ODEs and SDEs for irregular time series, datasets
(toy 2-D sets, a block-model graph, scikit-learn's digits, irregular oscillators), and
saveable classifier and density models.
"""

from ._augment import (
    HigherOrderField as HigherOrderField,
)
from ._augment import (
    InputLayerAugment as InputLayerAugment,
)
from ._augment import (
    ZeroAugment as ZeroAugment,
)
from ._augment import (
    zero_augment as zero_augment,
)
from ._cde import (
    INTERPOLATIONS as INTERPOLATIONS,
)
from ._cde import (
    CDEField as CDEField,
)
from ._cde import (
    NeuralCDE as NeuralCDE,
)
from ._cde import (
    cde_solve as cde_solve,
)
from ._cde import (
    interpolate as interpolate,
)
from ._cnf import (
    CNF as CNF,
)
from ._cnf import (
    TRACE_ESTIMATORS as TRACE_ESTIMATORS,
)
from ._cnf import (
    standard_normal_log_prob as standard_normal_log_prob,
)
from ._control import (
    CONTROL_SOLVE as CONTROL_SOLVE,
)
from ._control import (
    LinearQuadraticOptimum as LinearQuadraticOptimum,
)
from ._control import (
    LinearQuadraticTask as LinearQuadraticTask,
)
from ._control import (
    NeuralController as NeuralController,
)
from ._control import (
    double_integrator as double_integrator,
)
from ._control import (
    linear_quadratic_optimum as linear_quadratic_optimum,
)
from ._datasets import (
    DATASETS as DATASETS,
)
from ._datasets import (
    circles as circles,
)
from ._datasets import (
    crossing as crossing,
)
from ._datasets import (
    gaussian_mixture as gaussian_mixture,
)
from ._datasets import (
    make as make,
)
from ._datasets import (
    moons as moons,
)
from ._datasets import (
    spirals as spirals,
)
from ._depth import (
    BASES as BASES,
)
from ._depth import (
    GalerkinLinear as GalerkinLinear,
)
from ._depth import (
    GalerkinMLPField as GalerkinMLPField,
)
from ._depth import (
    TimeMLPField as TimeMLPField,
)
from ._depth import (
    basis as basis,
)
from ._events import (
    EVENT_DIRECTIONS as EVENT_DIRECTIONS,
)
from ._events import (
    BouncingBall as BouncingBall,
)
from ._events import (
    EventSolution as EventSolution,
)
from ._events import (
    HybridODE as HybridODE,
)
from ._events import (
    HybridSolution as HybridSolution,
)
from ._events import (
    solve_to_event as solve_to_event,
)
from ._figures import (
    confusion_figure as confusion_figure,
)
from ._figures import (
    control_figure as control_figure,
)
from ._figures import (
    decision_boundary_figure as decision_boundary_figure,
)
from ._figures import (
    density_figure as density_figure,
)
from ._figures import (
    digit_predictions_figure as digit_predictions_figure,
)
from ._figures import (
    flow_figure as flow_figure,
)
from ._figures import (
    node_accuracy_figure as node_accuracy_figure,
)
from ._figures import (
    node_fit_figures as node_fit_figures,
)
from ._figures import (
    sample_figure as sample_figure,
)
from ._figures import (
    series_prediction_figure as series_prediction_figure,
)
from ._figures import (
    tracking_figure as tracking_figure,
)
from ._fit import (
    NodeFitConfig as NodeFitConfig,
)
from ._fit import (
    NodeFitResult as NodeFitResult,
)
from ._fit import (
    fit_node as fit_node,
)
from ._fit import (
    node_fit_preset as node_fit_preset,
)
from ._graph import (
    GraphConv as GraphConv,
)
from ._graph import (
    GraphODEField as GraphODEField,
)
from ._graph import (
    normalised_adjacency as normalised_adjacency,
)
from ._graph_data import (
    GraphData as GraphData,
)
from ._graph_data import (
    GraphODEClassifier as GraphODEClassifier,
)
from ._graph_data import (
    block_model as block_model,
)
from ._images import (
    ConvODEClassifier as ConvODEClassifier,
)
from ._images import (
    ConvODEField as ConvODEField,
)
from ._images import (
    ImageSplits as ImageSplits,
)
from ._images import (
    digits as digits,
)
from ._integral import (
    TRACK_SOLVE as TRACK_SOLVE,
)
from ._integral import (
    RunningCost as RunningCost,
)
from ._integral import (
    TrackingODE as TrackingODE,
)
from ._integral import (
    TrackingTask as TrackingTask,
)
from ._integral import (
    sinusoid as sinusoid,
)
from ._integral import (
    with_cost as with_cost,
)
from ._irregular import (
    irregular_oscillators as irregular_oscillators,
)
from ._latent import (
    LatentODE as LatentODE,
)
from ._latent_sde import (
    LatentSDE as LatentSDE,
)
from ._models import (
    AUGMENTS as AUGMENTS,
)
from ._models import (
    FIELDS as FIELDS,
)
from ._models import (
    MODEL_SOLVE as MODEL_SOLVE,
)
from ._models import (
    READOUTS as READOUTS,
)
from ._models import (
    DensityCNF as DensityCNF,
)
from ._models import (
    ODEClassifier as ODEClassifier,
)
from ._node import (
    ACTIVATIONS as ACTIVATIONS,
)
from ._node import (
    LinearField as LinearField,
)
from ._node import (
    MLPField as MLPField,
)
from ._node import (
    NeuralODE as NeuralODE,
)
from ._node import (
    get_activation as get_activation,
)
from ._physics import (
    GradientFlowField as GradientFlowField,
)
from ._physics import (
    HamiltonianField as HamiltonianField,
)
from ._physics import (
    LagrangianField as LagrangianField,
)
from ._physics import (
    ScalarMLP as ScalarMLP,
)
from ._recurrent import (
    ODERNN as ODERNN,
)
from ._recurrent import (
    GRUDelta as GRUDelta,
)
from ._recurrent import (
    GRUODEBayes as GRUODEBayes,
)
from ._sde import (
    SDE_SOLVERS as SDE_SOLVERS,
)
from ._sde import (
    NeuralSDE as NeuralSDE,
)
from ._sde import (
    SDESolveConfig as SDESolveConfig,
)
from ._sde import (
    get_sde_solver as get_sde_solver,
)
from ._shooting import (
    MultipleShootingLayer as MultipleShootingLayer,
)
from ._tasks import (
    SERIES_OBJECTIVES as SERIES_OBJECTIVES,
)
from ._tasks import (
    ClassificationTask as ClassificationTask,
)
from ._tasks import (
    DensityTask as DensityTask,
)
from ._tasks import (
    IrregularSeriesTask as IrregularSeriesTask,
)
from ._tasks import (
    NodeClassificationTask as NodeClassificationTask,
)
from ._tasks import (
    RegressionTask as RegressionTask,
)

__all__ = [
    "NeuralODE",
    "MLPField",
    "LinearField",
    "ACTIVATIONS",
    "get_activation",
    "zero_augment",
    "ZeroAugment",
    "InputLayerAugment",
    "HigherOrderField",
    "BASES",
    "basis",
    "TimeMLPField",
    "GalerkinLinear",
    "GalerkinMLPField",
    "RunningCost",
    "with_cost",
    "TrackingODE",
    "TrackingTask",
    "sinusoid",
    "TRACK_SOLVE",
    "NeuralController",
    "LinearQuadraticTask",
    "LinearQuadraticOptimum",
    "linear_quadratic_optimum",
    "double_integrator",
    "CONTROL_SOLVE",
    "ScalarMLP",
    "HamiltonianField",
    "LagrangianField",
    "GradientFlowField",
    "CNF",
    "TRACE_ESTIMATORS",
    "standard_normal_log_prob",
    "NeuralSDE",
    "SDESolveConfig",
    "SDE_SOLVERS",
    "get_sde_solver",
    "INTERPOLATIONS",
    "interpolate",
    "cde_solve",
    "CDEField",
    "NeuralCDE",
    "normalised_adjacency",
    "GraphConv",
    "GraphODEField",
    "moons",
    "circles",
    "spirals",
    "gaussian_mixture",
    "crossing",
    "DATASETS",
    "make",
    "ODEClassifier",
    "DensityCNF",
    "MODEL_SOLVE",
    "AUGMENTS",
    "FIELDS",
    "READOUTS",
    "EVENT_DIRECTIONS",
    "EventSolution",
    "solve_to_event",
    "HybridSolution",
    "HybridODE",
    "BouncingBall",
    "decision_boundary_figure",
    "flow_figure",
    "density_figure",
    "sample_figure",
    "digit_predictions_figure",
    "confusion_figure",
    "node_accuracy_figure",
    "series_prediction_figure",
    "tracking_figure",
    "control_figure",
    "node_fit_figures",
    "NodeFitConfig",
    "NodeFitResult",
    "fit_node",
    "node_fit_preset",
    "GraphData",
    "block_model",
    "GraphODEClassifier",
    "ConvODEField",
    "ConvODEClassifier",
    "ImageSplits",
    "digits",
    "irregular_oscillators",
    "LatentODE",
    "LatentSDE",
    "ODERNN",
    "GRUODEBayes",
    "GRUDelta",
    "MultipleShootingLayer",
    "ClassificationTask",
    "RegressionTask",
    "DensityTask",
    "NodeClassificationTask",
    "IrregularSeriesTask",
    "SERIES_OBJECTIVES",
]
