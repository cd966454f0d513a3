"""``diffdyn node fit``: a neural ODE classifier or a CNF trained on a toy dataset.

The workflow is `fit_node` (models, datasets and options: `NodeFitConfig`). Outputs under
``--out``: ``config.yaml``, TensorBoard events (training, validation and test scalars, the
decision boundary or density image), ``model.eqx`` (final) and ``best.eqx`` (best on the
validation points), ``figures/`` (decision boundary and flows, or density and samples, and the
loss curves) and ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from ..cli import RunContext, command, quickstart_part
from ._figures import node_fit_figures
from ._fit import NodeFitConfig, fit_node

__all__ = ["fit", "quick"]


def quick(cfg: NodeFitConfig) -> NodeFitConfig:
    """The reduced run of ``--quick``: at most 512 training and test points, 150 steps, a
    field 16 wide and batches of 128."""
    return dataclasses.replace(
        cfg,
        n_samples=min(cfg.n_samples, 512),
        test_samples=min(cfg.test_samples, 512),
        width=min(cfg.width, 16),
        batch_size=min(cfg.batch_size, 128),
        train=dataclasses.replace(cfg.train, steps=min(cfg.train.steps, 150)),
    )


@command(
    "node",
    "fit",
    NodeFitConfig,
    help="fit a neural ODE classifier or a CNF to a toy dataset",
    quick=quick,
    trains=True,
)
def fit(cfg: NodeFitConfig, ctx: RunContext) -> dict[str, Any]:
    """Train a neural ODE / ANODE / CNF on a toy dataset; write the model, figures and
    metrics."""
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
