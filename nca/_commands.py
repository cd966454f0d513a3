"""``diffdyn nca train`` / ``diffdyn nca run`` and the NCA part of ``diffdyn quickstart``.

- ``diffdyn nca train --task grow --grow.target smiley`` grows a built-in target (or a PNG)
  from one seed cell with a sample pool and damage (`fit_nca`);
- ``diffdyn nca train --task species --species.targets smiley,heart`` grows several targets
  with one NCA, each from its own coded seed cell (`fit_nca`);
- ``diffdyn nca train --task morph --morph.source smiley --morph.target heart`` morphs one
  target into another (`fit_nca`);
- ``--model.mask disk`` (or a target's or a PNG's alpha) confines the cells of these three
  tasks to a shape (``--model.mask_kind hard|soft|trainable``, ``--model.boundary_weight``);
  the mask is saved with the model;
- ``diffdyn nca train --task pde`` fits an NCA to Gray-Scott trajectories and tests it from an
  unseen initial condition (`fit_nca`);
- ``diffdyn nca train --task sequence --data PATH`` fits an NCA to recorded frames and rolls
  it out over the held-out last frames against persistence (`fit_nca`);
- ``diffdyn nca train --task texture --texture.texture stripes`` grows a texture like an
  example (built-in or a PNG) from noise (`fit_nca`);
- ``diffdyn nca run --model RUN_DIR`` loads a model trained on task grow (with its mask, if
  it has one), grows it from a seed cell, erases the right half and lets it regrow, and writes
  a GIF (`run_nca`); models of the other tasks are refused (they write their figures when they
  train).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from diffdyn.common import TrainConfig, TrainResult, plot_training
from diffdyn.common.cli import RunContext, command, quickstart_part

from ._analysis import NCAAnalyseConfig, analyse_nca
from ._config import GrowConfig, NCAModelConfig, NCARunConfig, NCATrainConfig
from ._figures import (
    plot_channels,
    plot_eigenvalues,
    plot_growth,
    plot_morph,
    plot_perception,
    plot_sensitivity,
    plot_sequence,
    plot_species,
    plot_texture,
    plot_trajectory,
    plot_weights,
    save_rollout_gif,
    save_texture_gif,
    save_trajectory_gif,
)
from ._workflows import NCAFit, _model_folder, fit_nca, run_nca


def _quick(cfg: NCATrainConfig) -> NCATrainConfig:
    """Small settings of the chosen task (``--quick`` / ``DIFFDYN_QUICK=1``): 30 steps
    validated every 10, a 24x24 grid (16x16 for texture, with rollouts of 8 to 16 steps; not
    for sequence, whose grid is the data's), a narrow network (8 channels, or as many as the
    species codes need)."""
    r = dataclasses.replace
    m = cfg.model
    model = r(
        m,
        # a sequence NCA needs at least the data's channels: None stays the data's + hidden
        channels=m.channels if cfg.task == "sequence" else m.channels or _quick_channels(cfg),
        hidden=None if m.variant in ("kan", "attention") else min(m.hidden or 96, 32),
    )
    every = cfg.train.validate_every
    train = r(
        cfg.train,
        steps=min(cfg.train.steps, 30),
        image_every=0,
        validate_every=0 if every == 0 else min(every or 10, 10),
        progress=False,
    )
    if cfg.task in ("grow", "species", "morph"):
        g = getattr(cfg, cfg.task)
        batch = min(g.batch_size, 4)
        section = r(
            g,
            size=min(g.size, 24),
            rollout_steps=min(g.rollout_steps, 24),
            batch_size=batch,
            pool_size=min(g.pool_size, 32),
            damage=min(g.damage, batch),
            reseed=min(g.reseed, batch),
        )
        return r(cfg, model=model, train=train, **{cfg.task: section})
    if cfg.task == "sequence":
        s = cfg.sequence
        sequence = r(
            s,
            steps_per_frame=min(s.steps_per_frame, 4),
            batch_size=None if s.batch_size is None else min(s.batch_size, 8),
        )
        return r(cfg, model=model, train=train, sequence=sequence)
    if cfg.task == "texture":
        t = cfg.texture
        batch = min(t.batch_size, 4)
        low = min(t.rollout_min, 8)
        texture = r(
            t,
            size=min(t.size, max(16, 2**t.levels)),
            rollout_min=low,
            rollout_max=max(low, min(t.rollout_max, 16)),
            batch_size=batch,
            pool_size=min(t.pool_size, 32),
            reseed=min(t.reseed, batch),
            samples=min(t.samples, 4),
        )
        return r(cfg, model=model, train=train, texture=texture)
    p = cfg.pde
    pde = r(
        p,
        size=min(p.size, 24),
        frames=min(p.frames, 8),
        trajectories=1,
        steps_per_frame=min(p.steps_per_frame, 4),
        window=min(p.window, 3),
        batch_size=min(p.batch_size, 4),
    )
    return r(cfg, model=model, train=train, pde=pde)


def _quick_channels(cfg: NCATrainConfig) -> int:
    """8 channels, or as many as RGBA, the species or morph codes and a soft mask's structure
    channel need."""
    soft = int(cfg.model.mask is not None and cfg.model.mask_kind == "soft")
    if cfg.task == "species":
        return max(8, 4 + len(cfg.species.targets) + soft)
    if cfg.task == "morph":
        return max(8, max(cfg.morph.code_channels, default=3) + 1 + soft)
    return 8


def _write_model_figures(res: TrainResult, out: Path, ylabel: str) -> None:
    """The training curve (its loss labelled ``ylabel``), the perception and the weights."""
    plot_training(res, out / "loss.png", ylabel=ylabel)
    plot_perception(res.model, out / "perception.png")
    plot_weights(res.model, out / "weights.png")


def _write_figures(fit: NCAFit, steps: int, out: Path) -> None:
    res = fit.result
    if fit.growth is not None:
        _write_model_figures(res, out, "per-pixel MSE")
        plot_growth(fit.target, fit.growth, out / "grown_damaged_regrown.png")
        save_rollout_gif(fit.growth.frames, out / "rollout.gif")
        frames = fit.growth.grown_frames
        times = np.linspace(0, steps, len(frames)).round().astype(int)
        plot_channels(frames, out / "channels.png", times=times, time_label="step")
    else:
        _write_model_figures(res, out, "frame MSE")
        plot_trajectory(fit.truth, fit.prediction, out / "test_rollout.png")
        save_trajectory_gif(fit.truth, fit.prediction, out / "test_rollout.gif")
        plot_channels(fit.prediction, out / "channels.png")


def _write_sequence_figures(fit: NCAFit, out: Path) -> None:
    """The held-out frames against the NCA's rollout (figure and GIF of sequence 0), every
    channel of that rollout, the training curve, perception and weights."""
    res = fit.result
    mse = fit.metrics["held_out_mse"]
    persistence = fit.metrics["held_out_mse_persistence"]
    _write_model_figures(res, out, "interval MSE + penalties")
    plot_sequence(
        fit.truth,
        fit.prediction,
        out / "held_out.png",
        times=fit.times,
        mse=mse,
        persistence=persistence,
    )
    save_trajectory_gif(fit.truth[0], fit.prediction[0], out / "held_out.gif", channel=0)
    plot_channels(fit.prediction[0], out / "channels.png", times=fit.times, time_label="t =")


def _frame_labels(fit: NCAFit) -> dict[str, Any]:
    """What labels the frames of a species or morph figure: their steps, the targets' names
    and the mask's outline."""
    return {"times": fit.times, "names": fit.names, "mask": fit.mask}


def _write_species_figures(fit: NCAFit, out: Path) -> None:
    """Every species growing beside its target (figure and GIF, side by side), the channels
    of the first species' growth, the training curve, perception and weights."""
    res = fit.result
    _write_model_figures(res, out, "per-pixel MSE")
    mse = [fit.metrics[f"mse_{n}"] for n in fit.names]
    plot_species(fit.target, fit.frames, out / "species.png", mse=mse, **_frame_labels(fit))
    save_rollout_gif(np.concatenate(list(fit.frames), axis=-1), out / "species_rollout.gif")
    plot_channels(fit.frames[0], out / "channels.png", times=fit.times, time_label="step")


def _write_morph_figures(fit: NCAFit, steps: int, out: Path) -> None:
    """The morph over time beside its target (figure and GIF), its channels, the training
    curve, perception and weights."""
    res = fit.result
    _write_model_figures(res, out, "per-pixel MSE")
    labels = _frame_labels(fit)
    plot_morph(fit.source, fit.target, fit.frames, out / "morph.png", rollout_steps=steps, **labels)
    save_rollout_gif(fit.frames, out / "morph_rollout.gif")
    plot_channels(fit.frames, out / "channels.png", times=fit.times, time_label="step")


def _write_texture_figures(fit: NCAFit, out: Path) -> None:
    """The example beside states grown from noise by the untrained and the trained model, a
    GIF of a rollout from noise, its channels, the training curve, perception and weights."""
    res = fit.result
    _write_model_figures(res, out, "texture loss + overflow")
    plot_texture(
        fit.target,
        fit.untrained,
        fit.grown,
        out / "texture.png",
        untrained_loss=fit.metrics["untrained_texture_loss"],
        trained_loss=fit.metrics["texture_loss"],
    )
    save_texture_gif(fit.frames, out / "texture_rollout.gif")
    plot_channels(fit.frames, out / "channels.png")


@command(
    "nca",
    "train",
    NCATrainConfig,
    help="train a neural cellular automaton",
    quick=_quick,
    trains=True,
)
def train(cfg: NCATrainConfig, ctx: RunContext) -> dict[str, Any]:
    """Train an NCA: grow a target image (``--task grow``), several at once (``species``),
    morph one into another (``morph``), learn Gray-Scott (``pde``), a recorded sequence
    (``sequence --data PATH``) or grow a texture from noise (``texture``)."""
    fit = fit_nca(cfg, ctx.key, logger=ctx.logger(), out=ctx.out, resume=ctx.resume)
    if cfg.task == "species":
        _write_species_figures(fit, ctx.out)
    elif cfg.task == "morph":
        _write_morph_figures(fit, cfg.morph.rollout_steps, ctx.out)
    elif cfg.task == "sequence":
        _write_sequence_figures(fit, ctx.out)
    elif cfg.task == "texture":
        _write_texture_figures(fit, ctx.out)
    else:
        _write_figures(fit, cfg.grow.rollout_steps, ctx.out)
    return fit.metrics


def _check_run(cfg: NCARunConfig, ctx: RunContext) -> None:
    """Refuse, before anything is written, a run that would overwrite the training's files."""
    folder = _model_folder(cfg.model)
    if ctx.out.resolve() == folder.resolve():
        raise ValueError(
            f"--out {str(ctx.out)!r} is the model's own folder: nca run writes its own "
            "config.yaml, metrics.json and rollout.gif, so give it another --out"
        )


@command(
    "nca",
    "run",
    NCARunConfig,
    help="roll out a trained NCA, erase half, let it regrow and write a GIF",
    check=_check_run,
)
def run(cfg: NCARunConfig, ctx: RunContext) -> dict[str, Any]:
    """Load a trained NCA, grow it from a seed cell, erase half, regrow, write a GIF."""
    result = run_nca(cfg, ctx.key)
    save_rollout_gif(result.growth.frames, ctx.path("rollout.gif"))
    plot_growth(result.target, result.growth, ctx.path("grown_damaged_regrown.png"))
    return result.metrics


def _check_analyse(cfg: NCAAnalyseConfig, ctx: RunContext) -> None:
    """Refuse, before anything is written, an analysis that would overwrite the training's
    files or that has no model to read."""
    folder = _model_folder(cfg.model)
    if ctx.out.resolve() == folder.resolve():
        raise ValueError(
            f"--out {str(ctx.out)!r} is the model's own folder: nca analyse writes its own "
            "config.yaml and metrics.json, so give it another --out"
        )
    path = Path(cfg.model)
    path = path / "model.eqx" if path.is_dir() else path
    if not path.is_file():
        raise ValueError(f"no model: {str(path)!r} does not exist")


@command(
    "nca",
    "analyse",
    NCAAnalyseConfig,
    help="perception sensitivities, fixed point and its stability of a trained NCA",
    check=_check_analyse,
)
def analyse(cfg: NCAAnalyseConfig, ctx: RunContext) -> dict[str, Any]:
    """Load a trained NCA; write its sensitivities (sensitivity.png), the eigenvalues at its
    fixed point (eigenvalues.png) and the metrics."""
    result = analyse_nca(cfg, ctx.key)
    plot_sensitivity(
        result.sensitivity.total,
        result.sensitivity.filters,
        ctx.path("sensitivity.png"),
        title=f"mean over {result.sensitivity.cells} cells of ‖∂dx/∂P‖ at {result.origin}",
    )
    fp = result.fixed_point
    status = "fixed point" if fp.converged else "NOT a fixed point (last Newton iterate)"
    verdict = result.metrics["stability"]
    plot_eigenvalues(
        result.spectrum,
        "map",
        ctx.path("eigenvalues.png"),
        title=f"eigenvalues of ∂T/∂x at the {status}\nresidual {fp.residual:.2g}; {verdict}",
    )
    return result.metrics


@quickstart_part("nca", order=20)
def nca_quickstart(ctx: RunContext) -> dict[str, Any]:
    """Grow a 24x24 smiley for 60 steps on CPU; returns the errors after growing and
    regrowing."""
    cfg = NCATrainConfig(
        model=NCAModelConfig(channels=8, hidden=32, filters=("identity", "sobel_x", "sobel_y")),
        optim=dataclasses.replace(NCATrainConfig().optim, learning_rate=3e-3, decay_rate=0.3),
        train=TrainConfig(
            steps=60, log_every=10, image_every=30, validate_every=30, progress=False
        ),
        grow=GrowConfig(size=24, rollout_steps=24, batch_size=4, pool_size=32, damage=1),
    )
    fit = fit_nca(cfg, ctx.key, logger=ctx.logger(), out=ctx.out)
    _write_figures(fit, cfg.grow.rollout_steps, ctx.out)
    return {k: fit.metrics[k] for k in ("mse", "mse_regrown", "final_loss", "seconds")}
