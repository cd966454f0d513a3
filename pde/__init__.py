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
from ._chemotaxis import (
    HillenPainter as HillenPainter,
)
from ._figures import (
    comparison_video as comparison_video,
)
from ._figures import (
    plot_held_out as plot_held_out,
)
from ._figures import (
    plot_state as plot_state,
)
from ._figures import (
    save_trajectory_gif as save_trajectory_gif,
)
from ._fit import (
    FitConfig as FitConfig,
)
from ._fit import (
    PDEFit as PDEFit,
)
from ._fit import (
    fit_pde as fit_pde,
)
from ._fit import (
    model_to_fit as model_to_fit,
)
from ._fit import (
    parameter_errors as parameter_errors,
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
from ._initial import (
    smooth_random_field as smooth_random_field,
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
from ._navier_stokes import (
    NavierStokes as NavierStokes,
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
    FIXED_MODELS as FIXED_MODELS,
)
from ._registry import (
    NEURAL_MODELS as NEURAL_MODELS,
)
from ._registry import (
    PDE_MODELS as PDE_MODELS,
)
from ._registry import (
    make_pde as make_pde,
)
from ._simulate import (
    SimulateConfig as SimulateConfig,
)
from ._simulate import (
    Simulation as Simulation,
)
from ._simulate import (
    pattern_metrics as pattern_metrics,
)
from ._simulate import (
    simulate_pde as simulate_pde,
)
from ._solver import (
    PDE_SOLVE as PDE_SOLVE,
)
from ._solver import (
    PDESolver as PDESolver,
)
from ._tasks import (
    STRATEGIES as STRATEGIES,
)
from ._tasks import (
    PDEFitConfig as PDEFitConfig,
)
from ._tasks import (
    PDEFitTask as PDEFitTask,
)
from ._tasks import (
    WindowAugmenter as WindowAugmenter,
)
from ._tasks import (
    make_strategy as make_strategy,
)
from ._tasks import (
    rollout as rollout,
)
from ._tasks import (
    rollout_error as rollout_error,
)
from ._tasks import (
    strategy_non_negative as strategy_non_negative,
)
from ._texture import (
    TextureTask as TextureTask,
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
    "PointwiseMLP",
    "NeuralRDA",
    "NeuralChemotaxis",
    "input_normalisation",
    "ACTIVATIONS",
    "DIFFUSION_TERMS",
    "FIXED_MODELS",
    "PDE_MODELS",
    "NEURAL_MODELS",
    "make_pde",
    "PDESolver",
    "PDE_SOLVE",
    "gaussian",
    "gray_scott_seeds",
    "perturbed",
    "smooth_random_field",
    "initial_state",
    "connected_components",
    "radial_power_spectrum",
    "dominant_wavelength",
    "FitConfig",
    "PDEFit",
    "fit_pde",
    "model_to_fit",
    "parameter_errors",
    "HillenPainter",
    "comparison_video",
    "save_trajectory_gif",
    "plot_state",
    "plot_held_out",
    "NavierStokes",
    "SimulateConfig",
    "Simulation",
    "simulate_pde",
    "pattern_metrics",
    "STRATEGIES",
    "PDEFitConfig",
    "WindowAugmenter",
    "PDEFitTask",
    "make_strategy",
    "strategy_non_negative",
    "rollout",
    "rollout_error",
    "TextureTask",
]
