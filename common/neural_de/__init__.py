r"""Neural differential equations over diffrax: torchdyn's feature set, in JAX, and more.

Neural ODEs with any solver and adjoint (`NeuralODE`, `MLPField`, `LinearField`), augmented
and higher-order systems (ANODE), depth-variant and Galerkin fields, integral losses,
Hamiltonian, Lagrangian and gradient-flow fields, continuous normalising flows, neural SDEs and
CDEs, graph neural ODEs, toy datasets, and saveable classifier and density models.
"""

from ._node import (
    NeuralODE as NeuralODE,
    MLPField as MLPField,
    LinearField as LinearField,
    ACTIVATIONS as ACTIVATIONS,
    get_activation as get_activation,
)
from ._augment import (
    zero_augment as zero_augment,
    ZeroAugment as ZeroAugment,
    InputLayerAugment as InputLayerAugment,
    HigherOrderField as HigherOrderField,
)
from ._depth import (
    BASES as BASES,
    basis as basis,
    TimeMLPField as TimeMLPField,
    GalerkinLinear as GalerkinLinear,
    GalerkinMLPField as GalerkinMLPField,
)
from ._integral import (
    RunningCost as RunningCost,
    with_cost as with_cost,
)
from ._physics import (
    ScalarMLP as ScalarMLP,
    HamiltonianField as HamiltonianField,
    LagrangianField as LagrangianField,
    GradientFlowField as GradientFlowField,
)
from ._cnf import (
    CNF as CNF,
    TRACE_ESTIMATORS as TRACE_ESTIMATORS,
    standard_normal_log_prob as standard_normal_log_prob,
)
from ._sde import (
    NeuralSDE as NeuralSDE,
    SDE_SOLVERS as SDE_SOLVERS,
    get_sde_solver as get_sde_solver,
)
from ._cde import (
    INTERPOLATIONS as INTERPOLATIONS,
    interpolate as interpolate,
    cde_solve as cde_solve,
    CDEField as CDEField,
    NeuralCDE as NeuralCDE,
)
from ._graph import (
    normalised_adjacency as normalised_adjacency,
    GraphConv as GraphConv,
    GraphODEField as GraphODEField,
)
from ._datasets import (
    moons as moons,
    circles as circles,
    spirals as spirals,
    gaussian_mixture as gaussian_mixture,
    crossing as crossing,
    DATASETS as DATASETS,
    make as make,
)
from ._models import (
    ODEClassifier as ODEClassifier,
    DensityCNF as DensityCNF,
    AUGMENTS as AUGMENTS,
    FIELDS as FIELDS,
    READOUTS as READOUTS,
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
    "ScalarMLP",
    "HamiltonianField",
    "LagrangianField",
    "GradientFlowField",
    "CNF",
    "TRACE_ESTIMATORS",
    "standard_normal_log_prob",
    "NeuralSDE",
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
    "AUGMENTS",
    "FIELDS",
    "READOUTS",
]
