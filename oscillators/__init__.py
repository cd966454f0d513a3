"""diffdyn.oscillators: Kuramoto / XY networks and KuraNet; low-dimensional oscillators.

Kuramoto part (issue 5): :mod:`oscillators.kuramoto` (vector fields, order parameters,
``simulate``), :mod:`oscillators.delays` (a diffrax solver for delays in whole steps),
:mod:`oscillators.kuranet` (the coupling network and synchrony losses) and
:mod:`oscillators.experiments` (the seed's experiments as typed configs).
"""

from diffdyn.oscillators.delays import AbstractDelayedVectorField, DelayedEuler
from diffdyn.oscillators.discovery import LotkaVolterraGrayBox, MLPField, SecondOrderField
from diffdyn.oscillators.experiments import (
    EXPERIMENTS,
    ExperimentConfig,
    KuraNetTask,
    train_experiment,
)
from diffdyn.oscillators.kuramoto import (
    Kuramoto,
    XYModel,
    coupling_sum,
    group_order_parameter,
    order_parameter,
    simulate,
    xy_energy,
)
from diffdyn.oscillators.kuranet import (
    KuraNet,
    circular_moments,
    circular_variance,
    normalise_coupling,
    segmentation_loss,
)

__all__ = [
    "LotkaVolterraGrayBox",
    "MLPField",
    "SecondOrderField",
    "AbstractDelayedVectorField",
    "DelayedEuler",
    "EXPERIMENTS",
    "ExperimentConfig",
    "KuraNetTask",
    "train_experiment",
    "Kuramoto",
    "XYModel",
    "coupling_sum",
    "group_order_parameter",
    "order_parameter",
    "simulate",
    "xy_energy",
    "KuraNet",
    "circular_moments",
    "circular_variance",
    "normalise_coupling",
    "segmentation_loss",
]
