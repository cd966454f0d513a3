"""diffdyn.pde: semi-discrete PDEs solved with diffrax, fixed and neural reaction-diffusion
models, and fitting PDEs to trajectories on the common trainer."""

from diffdyn.pde.base import AbstractPDE
from diffdyn.pde.fit import PDEFitConfig, fit_pde, fit_pde_strategy, rollout_error
from diffdyn.pde.grid import Grid
from diffdyn.pde.models import (
    AdvectionDiffusion,
    Brusselator,
    CahnHilliard,
    Chhabra,
    FitzHughNagumo,
    GrayScott,
    KellerSegel,
    Schnakenberg,
)
from diffdyn.pde.neural import NeuralChemotaxis, NeuralRDA, input_normalisation
from diffdyn.pde.registry import PDE_MODELS, make_pde
from diffdyn.pde.solver import PDESolver

__all__ = [
    "AbstractPDE",
    "Grid",
    "PDESolver",
    "AdvectionDiffusion",
    "GrayScott",
    "FitzHughNagumo",
    "Brusselator",
    "Schnakenberg",
    "KellerSegel",
    "CahnHilliard",
    "Chhabra",
    "NeuralRDA",
    "NeuralChemotaxis",
    "input_normalisation",
    "PDE_MODELS",
    "make_pde",
    "PDEFitConfig",
    "fit_pde",
    "fit_pde_strategy",
    "rollout_error",
]
