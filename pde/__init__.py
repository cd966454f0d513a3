"""Semi-discrete PDEs on grids, solved with diffrax, and fitted to data.

Fixed reaction-diffusion and related models with their literature defaults, neural
reaction-diffusion-advection models, the method-of-lines solver `PDESolver`, initial
conditions, pattern statistics, and fitting a PDE to trajectories on the common trainer.
"""

from ._base import (
    AbstractPDE as AbstractPDE,
)
from ._base import (
    check_state as check_state,
)
from ._fit import (
    STRATEGIES as STRATEGIES,
)
from ._fit import (
    PDEFitConfig as PDEFitConfig,
)
from ._fit import (
    WindowAugmenter as WindowAugmenter,
)
from ._fit import (
    fit_pde as fit_pde,
)
from ._fit import (
    fit_pde_strategy as fit_pde_strategy,
)
from ._fit import (
    make_loss as make_loss,
)
from ._fit import (
    make_pde_optimiser as make_pde_optimiser,
)
from ._fit import (
    model_to_fit as model_to_fit,
)
from ._fit import (
    rollout as rollout,
)
from ._fit import (
    rollout_error as rollout_error,
)
from ._grid import (
    GRID_BOUNDARIES as GRID_BOUNDARIES,
)
from ._grid import (
    Grid as Grid,
)
from ._grid import (
    scalar_parameter as scalar_parameter,
)
from ._initial import (
    gaussian as gaussian,
)
from ._initial import (
    gray_scott_seeds as gray_scott_seeds,
)
from ._initial import (
    initial_state as initial_state,
)
from ._initial import (
    perturbed as perturbed,
)
from ._models import (
    FIXED_MODELS as FIXED_MODELS,
)
from ._models import (
    AdvectionDiffusion as AdvectionDiffusion,
)
from ._models import (
    Brusselator as Brusselator,
)
from ._models import (
    CahnHilliard as CahnHilliard,
)
from ._models import (
    Chhabra as Chhabra,
)
from ._models import (
    FitzHughNagumo as FitzHughNagumo,
)
from ._models import (
    GrayScott as GrayScott,
)
from ._models import (
    KellerSegel as KellerSegel,
)
from ._models import (
    Schnakenberg as Schnakenberg,
)
from ._neural import (
    ACTIVATIONS as ACTIVATIONS,
)
from ._neural import (
    DIFFUSION_TERMS as DIFFUSION_TERMS,
)
from ._neural import (
    NeuralChemotaxis as NeuralChemotaxis,
)
from ._neural import (
    NeuralRDA as NeuralRDA,
)
from ._neural import (
    PointwiseMLP as PointwiseMLP,
)
from ._neural import (
    input_normalisation as input_normalisation,
)
from ._patterns import (
    connected_components as connected_components,
)
from ._patterns import (
    dominant_wavelength as dominant_wavelength,
)
from ._patterns import (
    radial_power_spectrum as radial_power_spectrum,
)
from ._registry import (
    PDE_MODELS as PDE_MODELS,
)
from ._registry import (
    make_pde as make_pde,
)
from ._solver import (
    PDESolver as PDESolver,
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
