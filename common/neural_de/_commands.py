"""``diffdyn node fit``: a neural ODE model trained on a toy dataset.

The workflow is `fit_node` (models, datasets and options: `NodeFitConfig`); ``--model``
chooses the defaults of every other option (`node_fit_preset`), so that ``--model
conv-node`` trains on digits, ``--model graph-node`` on the block-model graph, ``--model
odernn`` or ``--model latent-ode`` on the irregular oscillators, ``--model integral-node`` on
the sinusoid and ``--model controller`` on the double integrator. Outputs under ``--out``:
``config.yaml``, TensorBoard events (training, validation and test scalars, the decision
boundary or density image of the 2-D datasets), ``model.eqx`` (final) and ``best.eqx`` (best
on the validation data), ``figures/`` and ``metrics.json``:

- toy classifiers: decision boundary and flows; ``test_accuracy`` and ``test_loss``
  (``test_mse`` on crossing);
- cnf: density and samples; ``test_nll``;
- conv-node on digits: confusion matrix and test images with their predicted labels;
  ``test_accuracy`` and ``test_loss``;
- graph-node on block-model: accuracy on the training, validation and test nodes beside a
  per-node MLP trained alike; ``test_accuracy``, ``test_loss`` and ``baseline_accuracy``
  (the MLP's);
- odernn and latent-ode on irregular-oscillators: a test series predicted from its
  context; ``test_interpolation_mse`` (every third observation held out),
  ``test_extrapolation_mse`` (the observations at t >= 5 predicted from those before),
  ``test_loss`` (the held-out objective) and the same errors of predicting zeros
  (``baseline_interpolation_mse``, ``baseline_extrapolation_mse``); odernn also reports
  those of a GRU fed the time deltas, trained alike (``baseline_gru_dt_interpolation_mse``,
  ``baseline_gru_dt_extrapolation_mse``);
- integral-node on sinusoid: the trajectory before and after training against sin t, and
  the squared tracking error over time; ``integral_loss`` (the solver's accumulated
  integral of the trained model), ``trapezoid_loss`` (the same integral by the trapezoid
  rule on 2,001 points of its trajectory) and ``start_integral_loss`` /
  ``start_trapezoid_loss`` (the untrained model's);
- controller on double-integrator: the trajectory and the control against the closed-form
  optimum; ``cost``, ``effort``, ``terminal_error``, ``optimal_cost``, ``optimal_effort``,
  ``cost_ratio`` (cost / optimal cost), ``start_cost`` (untrained) and
  ``zero_control_cost`` (u = 0);

and the loss curves for all.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from ..cli import RunContext, command, quickstart_part
from ._figures import node_fit_figures
from ._fit import NodeFitConfig, fit_node, node_fit_preset

__all__ = ["fit", "quick"]


def quick(cfg: NodeFitConfig) -> NodeFitConfig:
    """The reduced run of ``--quick``, at most: 512 training and test points (series), 150
    steps, a field 16 wide and batches of 128; 40 steps for digits. The fixed splits of
    digits and block-model, the full-graph steps of block-model and the single trajectory
    of sinusoid and double-integrator stay as they are."""
    fixed = cfg.dataset in ("digits", "block-model", "sinusoid", "double-integrator")
    whole = cfg.dataset in ("block-model", "sinusoid", "double-integrator")
    steps = 40 if cfg.dataset == "digits" else 150
    return dataclasses.replace(
        cfg,
        n_samples=cfg.n_samples if fixed else min(cfg.n_samples, 512),
        test_samples=cfg.test_samples if fixed else min(cfg.test_samples, 512),
        width=min(cfg.width, 16),
        batch_size=cfg.batch_size if whole else min(cfg.batch_size, 128),
        train=dataclasses.replace(cfg.train, steps=min(cfg.train.steps, steps)),
    )


@command(
    "node",
    "fit",
    NodeFitConfig,
    help="fit a neural ODE classifier, CNF, image or graph classifier, or series model",
    quick=quick,
    presets=("model", node_fit_preset),
    trains=True,
)
def fit(cfg: NodeFitConfig, ctx: RunContext) -> dict[str, Any]:
    """Train a neural ODE model on its dataset; write the model, figures and metrics."""
    result = fit_node(cfg, ctx.key, logger=ctx.logger(), out=ctx.out, resume=ctx.resume)
    figures = node_fit_figures(result, ctx.path("figures"), key=jax.random.fold_in(ctx.key, 1))
    return {**result.metrics(), "figures": [str(p) for p in figures]}


@quickstart_part("node", order=60)
def quickstart(ctx: RunContext) -> dict[str, Any]:
    """ANODE on moons: a short training run, decision boundary and flow figures."""
    cfg = NodeFitConfig(
        model="anode",
        dataset="moons",
        n_samples=512,
        width=16,
        batch_size=128,
        train=dataclasses.replace(NodeFitConfig.train, steps=400, progress=False),
    )
    metrics = fit(quick(cfg) if ctx.quick else cfg, ctx)
    return {k: metrics[k] for k in ("test_accuracy", "validation_loss", "final_loss", "seconds")}
