r"""Figures of the rnn workflows: a spectrum and its convergence, the transition to chaos (over
the coupling scale or the disorder of gains or shifts), and the spectra before and after
training. Each function draws one figure (titled panels, labelled
axes, a legend for every series), saves it to ``path`` and returns the path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from diffdyn.common import figure, save_figure

from ._lyapunov import LyapunovSpectrum, running_exponents

__all__ = ["plot_spectrum", "plot_convergence", "plot_sweep", "plot_training_spectra"]


def plot_spectrum(
    exponents: Any, path: str | os.PathLike, title: str = "Lyapunov spectrum"
) -> Path:
    r"""The exponents sorted decreasingly, $\lambda_i$ against $i$, with the zero line."""
    lam = np.sort(np.asarray(exponents))[::-1]
    fig, ax = figure(figsize=(6, 4))
    ax.plot(np.arange(1, lam.size + 1), lam, ".-", label=r"$\lambda_i$")
    ax.axhline(0.0, color="k", lw=0.8, label="0")
    ax.set_xlabel("index i")
    ax.set_ylabel(r"$\lambda_i$")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)


def plot_convergence(
    result: LyapunovSpectrum, path: str | os.PathLike, title: str = "Convergence"
) -> Path:
    """The running estimate of a few exponents (the first three, the middle one and the last)
    against the measured time."""
    running = np.asarray(running_exponents(result))
    k = running.shape[1]
    times = (np.arange(running.shape[0]) + 1) * result.t_ons
    order = np.argsort(np.asarray(result.exponents))[::-1]  # the largest first
    shown = sorted({0, 1, 2, k // 2, k - 1} & set(range(k)))
    fig, ax = figure(figsize=(6, 4))
    for rank in shown:
        ax.plot(times, running[:, order[rank]], label=rf"$\lambda_{{{rank + 1}}}$")
    ax.set_xlabel("measured time")
    ax.set_ylabel("running estimate")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)


def plot_sweep(
    result: dict[str, Any], path: str | os.PathLike, title: str = "Transition to chaos"
) -> Path:
    r"""A `chaos_sweep`: $\lambda_\max$ (and, with more than one exponent, the Kaplan-Yorke
    dimension) against the swept value ($g$, or the spread $\sigma$ of gains or shifts on a
    log axis), every network as a dot and their mean with error bars of one standard error
    (`sweep_statistics`)."""
    from ._chaos import sweep_statistics

    stats = sweep_statistics(result)
    parameter = stats["parameter"]
    x = np.asarray(stats["g" if parameter == "weights" else "sigma"])
    xlabel = "coupling scale g"
    if parameter != "weights":
        xlabel = rf"{parameter[:-1]} spread $\sigma$"
    s = stats["n_samples"]
    mean_label = f"mean ± s.e.m. ({s} networks)" if s > 1 else "mean (1 network)"
    two = np.asarray(result["exponents"]).shape[-1] > 1
    fig, axes = figure(1, 2 if two else 1, figsize=(10 if two else 5.5, 4))
    axes = np.atleast_1d(axes)
    panels = [("lambda_max", r"$\lambda_{\max}$", r"largest exponent $\lambda_{\max}$")]
    if two:
        panels.append(("dimension", "$D_{KY}$", "Kaplan-Yorke dimension"))
    for ax, (name, ylabel, panel) in zip(axes, panels, strict=False):
        values = np.asarray(result[name])
        for k in range(values.shape[1]):
            label = "networks" if k == 0 else None
            ax.plot(x, values[:, k], "o", color="tab:blue", alpha=0.4, ms=4, label=label)
        se = stats[f"{name}_se"] if s > 1 else None
        mean = stats[f"{name}_mean"]
        ax.errorbar(x, mean, yerr=se, fmt="-", color="tab:red", capsize=3, label=mean_label)
        if name == "lambda_max":
            ax.axhline(0.0, color="k", lw=0.8, label=r"$\lambda = 0$")
            if parameter == "weights":
                ax.axvline(1.0, color="gray", ls="--", lw=0.8, label="g = 1")
        if parameter != "weights" and np.all(x > 0):
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {panel}" if title else panel)
        ax.legend()
    return save_figure(fig, path)


def plot_training_spectra(
    before: Any,
    after: Any,
    target: Any,
    path: str | os.PathLike,
    title: str = "Spectrum before and after training",
) -> Path:
    r"""The exponents $\lambda_i$ (sorted decreasingly) before and after training, and the
    target (``None``: no target, as for the sinai loss). ``before`` and ``after`` are ``[k]``
    (one network) or ``[S, k]`` (``S`` networks, one line each)."""
    before, after = np.atleast_2d(np.asarray(before)), np.atleast_2d(np.asarray(after))
    fig, ax = figure(figsize=(6, 4))
    index = np.arange(1, before.shape[1] + 1)
    several = before.shape[0] > 1
    alpha = 0.5 if several else 1.0
    for values, name, color in ((before, "before", "tab:blue"), (after, "after", "tab:orange")):
        for s, row in enumerate(values):
            label = None if s else (f"{name} ({values.shape[0]} networks)" if several else name)
            ax.plot(index, np.sort(row)[::-1], ".-", color=color, alpha=alpha, label=label)
    if target is not None:
        ax.plot(index, np.sort(np.asarray(target))[::-1], "k--", label="target")
    else:
        ax.axhline(0.0, color="k", lw=0.8, label="0")
    ax.set_xlabel("index i")
    ax.set_ylabel(r"$\lambda_i$")
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)
