"""Neural differential equations over diffrax: torchdyn's feature set, in JAX, and more.

- :mod:`~common.neural_de.node`: :class:`NeuralODE` (solver, tolerances, adjoint by name;
  batches with per-sample time spans; inputs through ``args``), :class:`MLPField`.
- :mod:`~common.neural_de.augment`: ANODE zero augmentation, input-layer augmentation,
  higher-order systems.
- :mod:`~common.neural_de.depth`: depth-variant fields (time as input, Galerkin weights).
- :mod:`~common.neural_de.integral`: integral losses (running cost in the state).
- :mod:`~common.neural_de.physics`: Hamiltonian, Lagrangian and gradient-flow fields.
- :mod:`~common.neural_de.cnf`: continuous normalising flows (exact or Hutchinson trace).
- :mod:`~common.neural_de.sde`: neural SDEs (Itô/Stratonovich, virtual Brownian trees).
- :mod:`~common.neural_de.cde`: neural CDEs (cubic/linear interpolated controls).
- :mod:`~common.neural_de.graph`: graph neural ODEs (GCN vector fields).
- :mod:`~common.neural_de.datasets`: moons, circles, spirals, Gaussian mixtures, crossing.
- :mod:`~common.neural_de.models`: saveable classifier and CNF models for the CLI.
"""

from diffdyn.common.neural_de.augment import (
    HigherOrderField,
    InputLayerAugment,
    ZeroAugment,
    zero_augment,
)
from diffdyn.common.neural_de.cde import CDEField, NeuralCDE, cde_solve, interpolate
from diffdyn.common.neural_de.cnf import CNF, standard_normal_log_prob
from diffdyn.common.neural_de.datasets import circles, crossing, gaussian_mixture, moons, spirals
from diffdyn.common.neural_de.depth import GalerkinLinear, GalerkinMLPField, TimeMLPField, basis
from diffdyn.common.neural_de.graph import GraphConv, GraphODEField, normalised_adjacency
from diffdyn.common.neural_de.integral import RunningCost, with_cost
from diffdyn.common.neural_de.models import DensityCNF, ODEClassifier
from diffdyn.common.neural_de.node import LinearField, MLPField, NeuralODE
from diffdyn.common.neural_de.physics import (
    GradientFlowField,
    HamiltonianField,
    LagrangianField,
    ScalarMLP,
)
from diffdyn.common.neural_de.sde import NeuralSDE

__all__ = [
    "NeuralODE",
    "MLPField",
    "LinearField",
    "ZeroAugment",
    "InputLayerAugment",
    "HigherOrderField",
    "zero_augment",
    "TimeMLPField",
    "GalerkinLinear",
    "GalerkinMLPField",
    "basis",
    "RunningCost",
    "with_cost",
    "ScalarMLP",
    "HamiltonianField",
    "LagrangianField",
    "GradientFlowField",
    "CNF",
    "standard_normal_log_prob",
    "NeuralSDE",
    "NeuralCDE",
    "CDEField",
    "cde_solve",
    "interpolate",
    "GraphConv",
    "GraphODEField",
    "normalised_adjacency",
    "moons",
    "circles",
    "spirals",
    "gaussian_mixture",
    "crossing",
    "ODEClassifier",
    "DensityCNF",
]
