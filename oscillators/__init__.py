"""Oscillator networks and low-dimensional dynamical systems.

Kuramoto and XY networks (with transmission delays through `DelayedEuler`), order parameters,
KuraNet (a coupling network learned from node features) and its experiments, the systems
Lotka-Volterra, Lorenz-63, double pendulum and Van der Pol, and learning their dynamics with
neural ODEs by plain, multiple-shooting or homotopy training.
"""

from ._delays import (
    AbstractDelayedVectorField as AbstractDelayedVectorField,
)
from ._delays import (
    DelayedEuler as DelayedEuler,
)
from ._delays import (
    gather_delayed as gather_delayed,
)
from ._discovery import (
    DISCOVERY_METHODS as DISCOVERY_METHODS,
)
from ._discovery import (
    DISCOVERY_MODELS as DISCOVERY_MODELS,
)
from ._discovery import (
    DISCOVERY_PRESETS as DISCOVERY_PRESETS,
)
from ._discovery import (
    PUBLISHED_SOLVE as PUBLISHED_SOLVE,
)
from ._discovery import (
    DiscoverySettings as DiscoverySettings,
)
from ._discovery import (
    LotkaVolterraGrayBox as LotkaVolterraGrayBox,
)
from ._discovery import (
    SecondOrderField as SecondOrderField,
)
from ._discovery import (
    build_discovery_model as build_discovery_model,
)
from ._discovery import (
    check_model_dim as check_model_dim,
)
from ._discovery import (
    discovery_settings as discovery_settings,
)
from ._discovery import (
    discovery_task as discovery_task,
)
from ._discovery import (
    evaluate_field as evaluate_field,
)
from ._discovery import (
    fit_system as fit_system,
)
from ._discovery import (
    fit_systems as fit_systems,
)
from ._discovery import (
    load_trajectory as load_trajectory,
)
from ._discovery import (
    trajectory_dataset as trajectory_dataset,
)
from ._discovery import (
    trajectory_of as trajectory_of,
)
from ._experiments import (
    EXPERIMENTS as EXPERIMENTS,
)
from ._experiments import (
    ExperimentConfig as ExperimentConfig,
)
from ._experiments import (
    ExperimentResult as ExperimentResult,
)
from ._experiments import (
    KuramotoConfig as KuramotoConfig,
)
from ._experiments import (
    KuraNetTask as KuraNetTask,
)
from ._experiments import (
    SubsampledNetwork as SubsampledNetwork,
)
from ._experiments import (
    configure_experiment as configure_experiment,
)
from ._experiments import (
    evaluate_kuranet as evaluate_kuranet,
)
from ._experiments import (
    evaluate_sizes as evaluate_sizes,
)
from ._experiments import (
    get_experiment as get_experiment,
)
from ._experiments import (
    image_phase_map as image_phase_map,
)
from ._experiments import (
    kuranet_data as kuranet_data,
)
from ._experiments import (
    load_kuranet_image as load_kuranet_image,
)
from ._experiments import (
    make_kuranet as make_kuranet,
)
from ._experiments import (
    quick_experiment as quick_experiment,
)
from ._experiments import (
    simulate_network as simulate_network,
)
from ._experiments import (
    subsample_nodes as subsample_nodes,
)
from ._experiments import (
    train_experiment as train_experiment,
)
from ._figures import (
    ablation_plot as ablation_plot,
)
from ._figures import (
    coupling_vs_distance as coupling_vs_distance,
)
from ._figures import (
    discovery_fit_plot as discovery_fit_plot,
)
from ._figures import (
    kuranet_figures as kuranet_figures,
)
from ._figures import (
    order_parameter_plot as order_parameter_plot,
)
from ._figures import (
    phase_map as phase_map,
)
from ._figures import (
    phase_raster as phase_raster,
)
from ._kuramoto import (
    Kuramoto as Kuramoto,
)
from ._kuramoto import (
    XYModel as XYModel,
)
from ._kuramoto import (
    coupling_sum as coupling_sum,
)
from ._kuramoto import (
    group_order_parameter as group_order_parameter,
)
from ._kuramoto import (
    mean_phase as mean_phase,
)
from ._kuramoto import (
    one_hot_groups as one_hot_groups,
)
from ._kuramoto import (
    order_parameter as order_parameter,
)
from ._kuramoto import (
    pairwise_coupling_sum as pairwise_coupling_sum,
)
from ._kuramoto import (
    simulate as simulate,
)
from ._kuramoto import (
    splay_state as splay_state,
)
from ._kuramoto import (
    xy_energy as xy_energy,
)
from ._kuranet import (
    NORMALISATIONS as NORMALISATIONS,
)
from ._kuranet import (
    KuraNet as KuraNet,
)
from ._kuranet import (
    circular_moments as circular_moments,
)
from ._kuranet import (
    circular_variance as circular_variance,
)
from ._kuranet import (
    cohn_loss as cohn_loss,
)
from ._kuranet import (
    feature_assortativity as feature_assortativity,
)
from ._kuranet import (
    normalise_coupling as normalise_coupling,
)
from ._kuranet import (
    segmentation_loss as segmentation_loss,
)
from ._sweep import (
    ABLATIONS as ABLATIONS,
)
from ._sweep import (
    RESULT_COLUMNS as RESULT_COLUMNS,
)
from ._sweep import (
    DiscoverConfig as DiscoverConfig,
)
from ._sweep import (
    claim_holds as claim_holds,
)
from ._sweep import (
    discovery_dataset as discovery_dataset,
)
from ._sweep import (
    discovery_ensemble as discovery_ensemble,
)
from ._sweep import (
    discovery_run as discovery_run,
)
from ._sweep import (
    discovery_sweep as discovery_sweep,
)
from ._sweep import (
    resolve_discovery as resolve_discovery,
)
from ._sweep import (
    run_discovery as run_discovery,
)
from ._sweep import (
    summarise_results as summarise_results,
)
from ._sweep import (
    sweep_runs as sweep_runs,
)
from ._sweep import (
    write_results as write_results,
)
from ._systems import (
    DATA_SOLVE as DATA_SOLVE,
)
from ._systems import (
    SYSTEMS as SYSTEMS,
)
from ._systems import (
    Dataset as Dataset,
)
from ._systems import (
    DoublePendulum as DoublePendulum,
)
from ._systems import (
    Lorenz63 as Lorenz63,
)
from ._systems import (
    LotkaVolterra as LotkaVolterra,
)
from ._systems import (
    SystemSpec as SystemSpec,
)
from ._systems import (
    VanDerPol as VanDerPol,
)
from ._systems import (
    make_dataset as make_dataset,
)

__all__ = [
    "coupling_sum",
    "pairwise_coupling_sum",
    "Kuramoto",
    "XYModel",
    "xy_energy",
    "order_parameter",
    "mean_phase",
    "group_order_parameter",
    "one_hot_groups",
    "splay_state",
    "simulate",
    "AbstractDelayedVectorField",
    "DelayedEuler",
    "gather_delayed",
    "NORMALISATIONS",
    "KuraNet",
    "normalise_coupling",
    "circular_variance",
    "circular_moments",
    "segmentation_loss",
    "cohn_loss",
    "feature_assortativity",
    "ExperimentConfig",
    "EXPERIMENTS",
    "get_experiment",
    "configure_experiment",
    "quick_experiment",
    "kuranet_data",
    "load_kuranet_image",
    "make_kuranet",
    "subsample_nodes",
    "SubsampledNetwork",
    "KuraNetTask",
    "evaluate_kuranet",
    "evaluate_sizes",
    "ExperimentResult",
    "train_experiment",
    "image_phase_map",
    "KuramotoConfig",
    "simulate_network",
    "phase_raster",
    "order_parameter_plot",
    "coupling_vs_distance",
    "phase_map",
    "kuranet_figures",
    "discovery_fit_plot",
    "ablation_plot",
    "LotkaVolterra",
    "Lorenz63",
    "DoublePendulum",
    "VanDerPol",
    "SystemSpec",
    "SYSTEMS",
    "Dataset",
    "make_dataset",
    "DATA_SOLVE",
    "LotkaVolterraGrayBox",
    "SecondOrderField",
    "DISCOVERY_METHODS",
    "DISCOVERY_MODELS",
    "DISCOVERY_PRESETS",
    "PUBLISHED_SOLVE",
    "DiscoverySettings",
    "discovery_settings",
    "build_discovery_model",
    "check_model_dim",
    "discovery_task",
    "evaluate_field",
    "fit_system",
    "fit_systems",
    "trajectory_of",
    "load_trajectory",
    "trajectory_dataset",
    "DiscoverConfig",
    "ABLATIONS",
    "resolve_discovery",
    "discovery_dataset",
    "discovery_run",
    "discovery_ensemble",
    "sweep_runs",
    "discovery_sweep",
    "run_discovery",
    "RESULT_COLUMNS",
    "summarise_results",
    "claim_holds",
    "write_results",
]
