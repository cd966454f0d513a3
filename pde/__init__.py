"""diffdyn.pde: semi-discrete PDEs solved with diffrax, fixed and neural reaction-diffusion
models, and fitting PDEs to trajectories on the common trainer."""

from pde.base import AbstractPDE
from pde.fit import PDEFitConfig, fit_pde, fit_pde_strategy, rollout_error
from pde.grid import Grid
from pde.models import (
    AdvectionDiffusion,
    Brusselator,
    CahnHilliard,
    Chhabra,
    FitzHughNagumo,
    GrayScott,
    KellerSegel,
    Schnakenberg,
)
from pde.neural import NeuralChemotaxis, NeuralRDA, input_normalisation
from pde.registry import PDE_MODELS, make_pde
from pde.solver import PDESolver

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
