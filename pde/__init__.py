"""Semi-discrete PDEs on grids, solved with diffrax, and fitted to data.

Fixed reaction-diffusion and related models with their literature defaults, neural
reaction-diffusion-advection models, the method-of-lines solver `PDESolver`, initial
conditions, pattern statistics, and fitting a PDE to trajectories on the common trainer.
"""

from ._base import (
    AbstractPDE as AbstractPDE,
    check_state as check_state,
)
from ._grid import (
    Grid as Grid,
    GRID_BOUNDARIES as GRID_BOUNDARIES,
    scalar_parameter as scalar_parameter,
)
from ._models import (
    AdvectionDiffusion as AdvectionDiffusion,
    GrayScott as GrayScott,
    FitzHughNagumo as FitzHughNagumo,
    Brusselator as Brusselator,
    Schnakenberg as Schnakenberg,
    KellerSegel as KellerSegel,
    CahnHilliard as CahnHilliard,
    Chhabra as Chhabra,
    FIXED_MODELS as FIXED_MODELS,
)
from ._neural import (
    PointwiseMLP as PointwiseMLP,
    NeuralRDA as NeuralRDA,
    NeuralChemotaxis as NeuralChemotaxis,
    input_normalisation as input_normalisation,
    ACTIVATIONS as ACTIVATIONS,
    DIFFUSION_TERMS as DIFFUSION_TERMS,
)
from ._registry import (
    PDE_MODELS as PDE_MODELS,
    make_pde as make_pde,
)
from ._solver import (
    PDESolver as PDESolver,
)
from ._initial import (
    gaussian as gaussian,
    gray_scott_seeds as gray_scott_seeds,
    perturbed as perturbed,
    initial_state as initial_state,
)
from ._patterns import (
    connected_components as connected_components,
    radial_power_spectrum as radial_power_spectrum,
    dominant_wavelength as dominant_wavelength,
)
from ._fit import (
    STRATEGIES as STRATEGIES,
    PDEFitConfig as PDEFitConfig,
    fit_pde_strategy as fit_pde_strategy,
    WindowAugmenter as WindowAugmenter,
    make_loss as make_loss,
    make_pde_optimiser as make_pde_optimiser,
    fit_pde as fit_pde,
    rollout as rollout,
    rollout_error as rollout_error,
    model_to_fit as model_to_fit,
)

__all__ = [
    "AbstractPDE",
    "check_state",
    "Grid",
    "GRID_BOUNDARIES",
    "scalar_parameter",
    "AdvectionDiffusion",
    "GrayScott",
    "FitzHughNagumo",
    "Brusselator",
    "Schnakenberg",
    "KellerSegel",
    "CahnHilliard",
    "Chhabra",
    "FIXED_MODELS",
    "PointwiseMLP",
    "NeuralRDA",
    "NeuralChemotaxis",
    "input_normalisation",
    "ACTIVATIONS",
    "DIFFUSION_TERMS",
    "PDE_MODELS",
    "make_pde",
    "PDESolver",
    "gaussian",
    "gray_scott_seeds",
    "perturbed",
    "initial_state",
    "connected_components",
    "radial_power_spectrum",
    "dominant_wavelength",
    "STRATEGIES",
    "PDEFitConfig",
    "fit_pde_strategy",
    "WindowAugmenter",
    "make_loss",
    "make_pde_optimiser",
    "fit_pde",
    "rollout",
    "rollout_error",
    "model_to_fit",
]
