"""Figures of an NCA: its perception and weights, its channels, growth and regrowth, learned
trajectories and training curves; GIFs of rollouts.

- `first_layer_blocks`: the first-layer weights split by perception filter,
  $W_1 = [W^{(f_0)} \\mid W^{(f_1)} \\mid \\dots]$ with $W^{(f)} \\in \\mathbb{R}^{h \\times C}$;
- `plot_perception`: the fixed 3x3 kernels and $\\lVert W^{(f)}_{:, c} \\rVert_2$, how strongly
  the trained network listens to filter $f$ of channel $c$;
- `plot_weights`: heatmaps of every weight matrix of the update network;
- `plot_channels`: every channel (rows) at several times (columns);
- `plot_growth`: target, grown, erased and regrown states with their errors;
- `plot_trajectory`: a PDE trajectory above the NCA's free rollout;
- `plot_sequence`: held-out recorded frames above the NCA's free rollout over them;
- `plot_losses`: the training loss per step and the validation loss;
- `plot_sensitivity`: a heat map of perception sensitivities (filter x channel);
- `plot_eigenvalues`: eigenvalues in the complex plane with the stability boundary;
- `save_rollout_gif`, `save_trajectory_gif`: animations, small grids upscaled (`upscale`);
- `plot_texture`: an example texture beside states grown from noise by an untrained and a
  trained NCA, with their texture losses; `save_texture_gif`: an RGB rollout as a GIF;
- `plot_species`: every species of a multi-target NCA growing from its seed over time,
  beside its target; `plot_morph`: a source pattern morphing into a target over time.

Every function writes one file and returns its path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from diffdyn.common import figure, save_figure, save_gif, upscale

from ._grow import GrowthEvaluation
from ._model import AbstractNCA
from ._targets import to_rgb

__all__ = [
    "first_layer_blocks",
    "weight_matrices",
    "plot_perception",
    "plot_weights",
    "plot_channels",
    "plot_growth",
    "plot_trajectory",
    "plot_sequence",
    "save_rollout_gif",
    "save_trajectory_gif",
    "plot_texture",
    "save_texture_gif",
    "plot_species",
    "plot_morph",
]


def _as_rgb(frames: np.ndarray) -> np.ndarray:
    """RGBA states (4 channels or more) over white; otherwise channel 0 in grey."""
    if frames.shape[-3] >= 4:
        return to_rgb(frames)
    return np.clip(frames[..., :1, :, :], 0.0, 1.0)


def _hide_ticks(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _show_rgba(ax: Any, state: np.ndarray, mask: np.ndarray | None) -> None:
    """A premultiplied RGBA state over white, with the outline of a 0/1 ``mask``."""
    ax.imshow(to_rgb(state).transpose(1, 2, 0), interpolation="nearest")
    if mask is not None:
        ax.contour(mask, levels=[0.5], colors="0.3", linewidths=0.6)
    _hide_ticks(ax)


def _columns(n: int, columns: int) -> np.ndarray:
    """Up to ``columns`` evenly spaced indices of ``n`` frames, the first and the last
    included."""
    return np.unique(np.linspace(0, n - 1, min(columns, n)).round().astype(int))


def weight_matrices(model: AbstractNCA) -> dict[str, np.ndarray]:
    """Every 2-D (or KAN 3-D, summed in ``|.|`` over the basis) weight of the update network,
    by name (a trainable mask's logits, trained with it, are not a weight of the network)."""
    import equinox as eqx
    import jax

    out: dict[str, np.ndarray] = {}
    params = eqx.filter(model, model.trainable_filter())
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = jax.tree_util.keystr(path)
        if name.startswith(".cells."):
            continue
        a = np.asarray(leaf)
        if a.ndim == 2:
            out[name] = a
        elif a.ndim == 3:
            out[name] = np.abs(a).sum(axis=-1)
    return out


def first_layer_blocks(model: AbstractNCA) -> dict[str, np.ndarray]:
    """``{filter: W^(f) [hidden, C]}`` from the first update layer (the first scale's net for
    multi-scale models)."""
    first = next(iter(weight_matrices(model).values()))
    c = model.channels
    return {f: first[:, k * c : (k + 1) * c] for k, f in enumerate(model.filters)}


def plot_perception(model: AbstractNCA, path: str | os.PathLike) -> Path:
    """Top row: the fixed 3x3 perception kernels (one colour scale); bottom:
    $\\lVert W^{(f)}_{:, c} \\rVert_2$ per filter and channel (the learned use of each
    perceived feature)."""
    kernels = np.asarray(model.perception.kernel)[: len(model.perception.conv_filters), 0]
    names = model.perception.conv_filters
    blocks = first_layer_blocks(model)
    fig, axes = figure(
        2, max(len(names), 1), figsize=(2.4 * max(len(names), 2), 5.0), squeeze=False
    )
    m = max(float(np.abs(kernels).max()), 1e-12) if len(names) else 1.0
    im = None
    for i, ax in enumerate(axes[0]):
        if i < len(names):
            im = ax.imshow(kernels[i], cmap="seismic", vmin=-m, vmax=m)
            ax.set_title(f"kernel: {names[i]}", fontsize=9)
        _hide_ticks(ax)
    if im is not None:
        fig.colorbar(im, ax=list(axes[0]), label="stencil weight", shrink=0.8)
    usage = np.stack([np.linalg.norm(b, axis=0) for b in blocks.values()])
    gs = axes[1, 0].get_gridspec()
    for ax in axes[1]:
        ax.remove()
    ax = fig.add_subplot(gs[1, :])
    im = ax.imshow(usage, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(blocks)), list(blocks))
    ax.set_xlabel("channel")
    ax.set_ylabel("filter")
    ax.set_title("‖first-layer weights‖ per filter and channel", fontsize=9)
    fig.colorbar(im, ax=ax, label="L2 norm")
    return save_figure(fig, path)


def plot_weights(model: AbstractNCA, path: str | os.PathLike) -> Path:
    """One heatmap per weight matrix (symmetric ``seismic`` colour range)."""
    mats = weight_matrices(model)
    fig, axes = figure(1, len(mats), figsize=(4 * len(mats), 3.5), squeeze=False)
    for ax, (name, w) in zip(axes[0], mats.items(), strict=True):
        m = max(float(np.abs(w).max()), 1e-12)
        im = ax.imshow(w, aspect="auto", cmap="seismic", vmin=-m, vmax=m)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("input")
        ax.set_ylabel("output")
        fig.colorbar(im, ax=ax, label="weight")
    return save_figure(fig, path)


def plot_channels(
    frames: Any,
    path: str | os.PathLike,
    *,
    times: Any = None,
    time_label: str = "frame",
    max_channels: int = 16,
) -> Path:
    """Channels (rows, at most ``max_channels``) of ``frames [T, C, H, W]`` at up to 8 times
    (columns), each channel with its own symmetric colour range and colour bar; columns are
    titled ``"{time_label} {times[t]}"`` (``times`` default: the frame index)."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must have shape [T, C, H, W]; got {frames.shape}")
    t_idx = np.unique(np.linspace(0, frames.shape[0] - 1, min(8, frames.shape[0])).astype(int))
    c = min(frames.shape[1], max_channels)
    fig, axes = figure(c, len(t_idx), figsize=(1.3 * len(t_idx) + 1.0, 1.3 * c), squeeze=False)
    for i in range(c):
        m = max(float(np.abs(frames[:, i]).max()), 1e-12)
        for j, t in enumerate(t_idx):
            ax = axes[i, j]
            im = ax.imshow(frames[t, i], cmap="RdBu_r", vmin=-m, vmax=m)
            _hide_ticks(ax)
            if i == 0:
                ax.set_title(f"{time_label} {t if times is None else times[t]}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"channel {i}", fontsize=8)
        fig.colorbar(im, ax=list(axes[i]), fraction=0.02, pad=0.01)
    fig.suptitle("state channels over time", fontsize=10)
    return save_figure(fig, path)


def plot_growth(target: Any, growth: GrowthEvaluation, path: str | os.PathLike) -> Path:
    """Four RGB panels: the target, the state grown from the seed cell, the same state with
    its right half erased, and the regrown state, titled with their errors (the means over
    every sample of ``growth``)."""
    if growth.grown_frames is None or growth.regrown_frames is None:
        raise ValueError("plot_growth needs the frames of evaluate_growth(..., every=...)")
    panels = [
        ("target", np.asarray(target)),
        (f"grown\nMSE {growth.mse:.4f}", growth.grown_frames[-1]),
        (f"right half erased\nMSE {growth.mse_damaged:.4f}", growth.regrown_frames[0]),
        (f"regrown\nMSE {growth.mse_regrown:.4f}", growth.regrown_frames[-1]),
    ]
    fig, axes = figure(1, len(panels), figsize=(2.6 * len(panels), 3.0), squeeze=False)
    for ax, (title, state) in zip(axes[0], panels, strict=True):
        rgb = _as_rgb(state)
        if rgb.shape[0] == 1:
            ax.imshow(rgb[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(rgb.transpose(1, 2, 0), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        _hide_ticks(ax)
    fig.suptitle("growth from one seed cell, damage and regrowth (per-pixel MSE)", fontsize=10)
    return save_figure(fig, path)


def plot_trajectory(
    truth: Any,
    prediction: Any,
    path: str | os.PathLike,
    *,
    channel: int = 1,
    columns: int = 5,
) -> Path:
    """Channel ``channel`` of a trajectory ``truth [N, O, H, W]`` (top row) above the NCA's
    free rollout ``prediction [N, C, H, W]`` from the same first frame (bottom row), at
    ``columns`` evenly spaced frames, on one colour scale."""
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    n = min(truth.shape[0], prediction.shape[0])
    show = np.unique(np.linspace(0, n - 1, min(columns, n)).astype(int))
    top = max(float(truth[:, channel].max()), 1e-6)
    fig, axes = figure(2, len(show), figsize=(1.9 * len(show) + 1.0, 4.0), squeeze=False)
    im = None
    for j, k in enumerate(show):
        for row, (name, data) in enumerate((("PDE", truth), ("NCA", prediction))):
            ax = axes[row, j]
            im = ax.imshow(data[k, channel], cmap="viridis", vmin=0.0, vmax=top)
            ax.set_title(f"{name} frame {k}", fontsize=8)
            _hide_ticks(ax)
    axes[0, 0].set_ylabel("truth")
    axes[1, 0].set_ylabel("NCA rollout")
    fig.colorbar(im, ax=axes.ravel().tolist(), label=f"channel {channel}", shrink=0.8)
    fig.suptitle("free rollout from the first frame", fontsize=10)
    return save_figure(fig, path)


def plot_sequence(
    truth: Any,
    prediction: Any,
    path: str | os.PathLike,
    *,
    times: Any = None,
    channel: int | None = None,
    sequences: int = 3,
    columns: int = 6,
    mse: float | None = None,
    persistence: float | None = None,
) -> Path:
    """Observed held-out frames ``truth [B, K, O, H, W]`` above the NCA's free rollout
    ``prediction [B, K, C, H, W]`` from the first of them, for the first ``sequences``
    sequences (two rows each), at up to ``columns`` evenly spaced frames titled with their
    times (``times [K]``, default the frame index).

    ``channel=None`` shows RGB for 3 or 4 observed channels (the first 3, clipped to
    ``[0, 1]``) and channel 0 otherwise; an index shows that channel. Single channels share
    one colour scale, the range of the observed frames, with a colour bar. ``mse`` and
    ``persistence`` (the NCA's and persistence's held-out errors) go into the title.
    """
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.ndim != 5 or prediction.ndim != 5 or truth.shape[:2] != prediction.shape[:2]:
        raise ValueError(
            f"truth [B, K, O, H, W] and prediction [B, K, C, H, W] must share B and K; got "
            f"{truth.shape} and {prediction.shape}"
        )
    o = truth.shape[2]
    rgb = channel is None and o in (3, 4)
    c = 0 if channel is None else channel
    if not rgb and not 0 <= c < o:
        raise ValueError(f"channel must index the {o} observed channels; got {channel}")
    k = truth.shape[1]
    show = np.unique(np.linspace(0, k - 1, min(columns, k)).astype(int))
    times = np.arange(k) if times is None else np.asarray(times)
    b = min(truth.shape[0], sequences)
    lo, hi = float(truth[:, :, c].min()), float(truth[:, :, c].max())
    fig, axes = figure(
        2 * b, len(show), figsize=(1.9 * len(show) + 1.5, 2.0 * 2 * b + 0.6), squeeze=False
    )
    im = None
    for i in range(b):
        for row, (name, data) in enumerate((("observed", truth), ("NCA", prediction))):
            for j, f in enumerate(show):
                ax = axes[2 * i + row, j]
                if rgb:
                    ax.imshow(np.clip(data[i, f, :3].transpose(1, 2, 0), 0.0, 1.0))
                else:
                    im = ax.imshow(data[i, f, c], cmap="viridis", vmin=lo, vmax=hi)
                ax.set_title(f"{name}, t = {times[f]:g}", fontsize=8)
                _hide_ticks(ax)
            label = "observed" if row == 0 else "NCA rollout"
            axes[2 * i + row, 0].set_ylabel(f"seq {i}: {label}", fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), label=f"channel {c}", shrink=0.8)
    title = f"held-out frames: observed vs the NCA rolled out from t = {times[0]:g}"
    if mse is not None and persistence is not None:
        title += f"\nMSE {mse:.3g} (persistence {persistence:.3g})"
    fig.suptitle(title, fontsize=10, y=1.0 + 0.06 / b)
    return save_figure(fig, path)


def save_rollout_gif(
    frames: Any, path: str | os.PathLike, *, fps: int = 10, min_side: int = 256
) -> Path:
    """Frames ``[T, C, H, W]`` of a rollout as a GIF: RGBA states over white (channel 0 in
    grey for fewer than 4 channels), upscaled to at least ``min_side`` pixels."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must have shape [T, C, H, W]; got {frames.shape}")
    return save_gif(upscale(_as_rgb(frames), min_side), path, fps=fps)


def save_trajectory_gif(
    truth: Any,
    prediction: Any,
    path: str | os.PathLike,
    *,
    channel: int = 1,
    fps: int = 10,
    min_side: int = 256,
) -> Path:
    """Channel ``channel`` of ``truth [N, O, H, W]`` (left) beside ``prediction
    [N, C, H, W]`` (right) as a grey GIF scaled by the largest true value, upscaled to at
    least ``min_side`` pixels."""
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    n = min(truth.shape[0], prediction.shape[0])
    both = np.concatenate(
        [truth[:n, channel : channel + 1], prediction[:n, channel : channel + 1]], axis=-1
    )
    scaled = np.clip(both / max(float(truth[:, channel].max()), 1e-6), 0.0, 1.0)
    return save_gif(upscale(scaled, min_side), path, fps=fps)


def _texture_rgb(x: np.ndarray) -> np.ndarray:
    """The first three channels of ``[..., C, H, W]`` as RGB in ``[0, 1]`` (clipped), channels
    last."""
    return np.moveaxis(np.clip(x[..., :3, :, :], 0.0, 1.0), -3, -1)


def plot_texture(
    target: Any,
    untrained: Any,
    trained: Any,
    path: str | os.PathLike,
    *,
    untrained_loss: float | None = None,
    trained_loss: float | None = None,
    samples: int = 4,
) -> Path:
    """The example ``target [3, H, W]`` (left) beside up to ``samples`` states grown from
    noise by the untrained model (``untrained [S, C, H, W]``, top row) and by the trained
    model (``trained [S, C, H, W]``, bottom row), their first three channels shown as RGB
    clipped to ``[0, 1]``; the rows are labelled with the texture losses when given."""
    target, untrained, trained = (np.asarray(a) for a in (target, untrained, trained))
    if target.ndim != 3 or target.shape[0] < 3:
        raise ValueError(f"target must have shape [3, H, W]; got {target.shape}")
    for name, x in (("untrained", untrained), ("trained", trained)):
        if x.ndim != 4 or x.shape[1] < 3 or x.shape[0] < 1:
            raise ValueError(f"{name} must have shape [S, C, H, W] with C >= 3; got {x.shape}")
    n = min(samples, untrained.shape[0], trained.shape[0])
    fig, axes = figure(
        2, n + 1, figsize=(2.3 * (n + 1), 4.6), squeeze=False, gridspec_kw={"wspace": 0.4}
    )
    axes[0, 0].imshow(_texture_rgb(target), interpolation="nearest")
    axes[0, 0].set_title("example", fontsize=9)
    axes[1, 0].axis("off")
    rows = (("untrained", untrained, untrained_loss), ("trained", trained, trained_loss))
    for r, (name, states, loss) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j + 1]
            ax.imshow(_texture_rgb(states[j]), interpolation="nearest")
            ax.set_title(f"{name}, sample {j}", fontsize=8)
        label = name if loss is None else f"{name}\ntexture loss {loss:.3g}"
        axes[r, 1].set_ylabel(label, fontsize=9)
    for ax in axes.ravel():
        _hide_ticks(ax)
    fig.suptitle("states grown from noise (first three channels as RGB)", fontsize=10)
    return save_figure(fig, path)


def save_texture_gif(
    frames: Any, path: str | os.PathLike, *, fps: int = 10, min_side: int = 256
) -> Path:
    """Frames ``[T, C, H, W]`` of a texture rollout as a GIF of their first three channels
    (RGB, clipped to ``[0, 1]``), upscaled to at least ``min_side`` pixels."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1] < 3:
        raise ValueError(f"frames must have shape [T, C, H, W] with C >= 3; got {frames.shape}")
    rgb = np.clip(frames[:, :3], 0.0, 1.0)
    return save_gif(upscale(rgb, min_side), path, fps=fps)


def plot_sensitivity(
    values: Any,
    filters: Any,
    path: str | os.PathLike,
    *,
    title: str = "perception sensitivity",
) -> Path:
    """A labelled heat map of ``values`` ``[K, C]`` (rows: the ``K`` perception ``filters``,
    columns: channels), every entry written in its cell when the map is small enough to read.
    """
    v = np.asarray(values, dtype=float)
    filters = list(filters)
    if v.ndim != 2 or v.shape[0] != len(filters):
        raise ValueError(
            f"values must have shape [len(filters) = {len(filters)}, C]; got {v.shape}"
        )
    k, c = v.shape
    fig, ax = figure(figsize=(max(4.0, 0.55 * c + 2.5), max(2.2, 0.5 * k + 1.4)))
    im = ax.imshow(v, aspect="auto", cmap="viridis")
    ax.set_yticks(range(k), filters)
    ax.set_xticks(range(c), [str(i) for i in range(c)])
    ax.set_xlabel("channel")
    ax.set_ylabel("perception filter")
    ax.set_title(title, fontsize=9)
    if k * c <= 160:
        top = float(np.nanmax(v)) if v.size else 0.0
        for i in range(k):
            for j in range(c):
                light = v[i, j] < 0.6 * top
                ax.text(
                    j,
                    i,
                    f"{v[i, j]:.2g}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if light else "black",
                )
    fig.colorbar(im, ax=ax, label="mean ‖∂dx/∂P‖ over cells")
    return save_figure(fig, path)


def plot_eigenvalues(
    eigenvalues: Any,
    kind: str,
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """Eigenvalues in the complex plane with the stability boundary: the unit circle for a
    map (``kind="map"``, stable inside), the imaginary axis for a flow (``"flow"``, stable to
    its left). ``eigenvalues`` may be ``None`` or empty: the figure then says so."""
    if kind not in ("map", "flow"):
        raise ValueError(f"kind must be 'map' or 'flow'; got {kind!r}")
    lam = np.asarray([] if eigenvalues is None else eigenvalues, dtype=complex).ravel()
    fig, ax = figure(figsize=(4.6, 4.4))
    if kind == "map":
        t = np.linspace(0, 2 * np.pi, 361)
        ax.plot(np.cos(t), np.sin(t), "k--", lw=1, label="|λ| = 1")
        ax.set_aspect("equal")
    else:
        ax.axvline(0.0, color="k", ls="--", lw=1, label="Re λ = 0")
    if lam.size:
        ax.scatter(lam.real, lam.imag, s=14, c="tab:red", zorder=3, label=f"{lam.size} eigenvalues")
    else:
        ax.text(
            0.5,
            0.5,
            "no eigenvalues (no finite fixed point)",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=9,
        )
    ax.axhline(0.0, color="0.8", lw=0.5, zorder=0)
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(title or f"Jacobian eigenvalues ({kind})", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, path)


def plot_species(
    targets: Any,
    frames: Any,
    path: str | os.PathLike,
    *,
    names: Any,
    times: Any,
    mse: Any = None,
    mask: Any = None,
    columns: int = 6,
) -> Path:
    """One row per species: its growth from its seed cell (``frames [S, T, C, H, W]``, up to
    ``columns`` of the ``T`` frames, titled with their NCA step from ``times [T]``), then its
    target (``targets [S, 4, H, W]``). Rows are labelled with ``names`` and, when given, the
    species' growth error ``mse`` (one per species); a 0/1 ``mask [H, W]`` is outlined."""
    targets, frames = np.asarray(targets), np.asarray(frames)
    if targets.ndim != 4 or frames.ndim != 5 or frames.shape[0] != targets.shape[0]:
        raise ValueError(
            f"targets [S, 4, H, W] and frames [S, T, C, H, W] must share S; got "
            f"{targets.shape} and {frames.shape}"
        )
    n = targets.shape[0]
    if len(names) != n or (mse is not None and len(mse) != n) or len(times) != frames.shape[1]:
        raise ValueError(
            f"names (and mse) need one entry per species ({n}) and times one per frame "
            f"({frames.shape[1]}); got {len(names)} names and {len(times)} times"
        )
    mask = None if mask is None else np.asarray(mask)
    show = _columns(frames.shape[1], columns)
    fig, axes = figure(
        n, len(show) + 1, figsize=(1.8 * (len(show) + 1) + 0.6, 1.9 * n + 0.5), squeeze=False
    )
    for s in range(n):
        for j, t in enumerate(show):
            _show_rgba(axes[s, j], frames[s, t], mask)
            if s == 0:
                axes[s, j].set_title(f"step {times[t]}", fontsize=8)
        _show_rgba(axes[s, -1], targets[s], mask)
        axes[s, -1].set_title(f"target: {names[s]}", fontsize=8)
        label = names[s] if mse is None else f"{names[s]}\nMSE {float(mse[s]):.4f}"
        axes[s, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("one NCA, several species: each grown from its own seed cell", fontsize=10)
    return save_figure(fig, path)


def plot_morph(
    source: Any,
    target: Any,
    frames: Any,
    path: str | os.PathLike,
    *,
    times: Any,
    names: Any = ("source", "target"),
    rollout_steps: int | None = None,
    mask: Any = None,
    columns: int = 7,
) -> Path:
    """A morph over time: up to ``columns`` of the frames ``[T, C, H, W]`` of one rollout
    from the ``source [4, H, W]`` (step 0), each titled with its NCA step (``times [T]``) and
    its per-pixel MSE to the ``target [4, H, W]``, shown last. Steps beyond
    ``rollout_steps`` (the trained morph length) are marked as held; ``names`` labels the
    source and the target; a 0/1 ``mask [H, W]`` is outlined."""
    source, target, frames = np.asarray(source), np.asarray(target), np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1] < 4 or len(times) != frames.shape[0]:
        raise ValueError(
            f"frames must have shape [T, C >= 4, H, W] with one time each; got {frames.shape} "
            f"and {len(times)} times"
        )
    if source.shape != target.shape or source.shape[1:] != frames.shape[2:] or len(source) != 4:
        raise ValueError(
            f"source and target must be [4, H, W] on the frames' grid; got {source.shape}, "
            f"{target.shape} and frames {frames.shape}"
        )
    mask = None if mask is None else np.asarray(mask)
    show = _columns(frames.shape[0], columns)
    fig, axes = figure(1, len(show) + 1, figsize=(2.0 * (len(show) + 1), 2.7), squeeze=False)
    for j, t in enumerate(show):
        mse = float(np.mean((frames[t, :4] - target) ** 2))
        step = int(times[t])
        if step == 0:
            title = f"{names[0]} (step 0)"
        elif rollout_steps is not None and step > rollout_steps:
            title = f"step {step} (held)"
        elif rollout_steps is not None and step == rollout_steps:
            title = f"step {step} (trained)"
        else:
            title = f"step {step}"
        _show_rgba(axes[0, j], frames[t], mask)
        axes[0, j].set_title(f"{title}\nMSE {mse:.4f}", fontsize=8)
    _show_rgba(axes[0, -1], target, mask)
    axes[0, -1].set_title(f"target: {names[1]}", fontsize=8)
    fig.suptitle(
        f"morph {names[0]} -> {names[1]}: one stochastic rollout (per-pixel MSE to the target)",
        fontsize=10,
    )
    return save_figure(fig, path)
