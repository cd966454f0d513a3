r"""The transition to chaos of random rate networks (Sompolinsky, Crisanti & Sommers 1988).

For $\dot h = -h + J\tanh h$ with $J_{ij}\sim\mathcal N(0, g^2/N)$ the trivial fixed
point loses stability at $g = 1$ (circular law: the eigenvalues of $J$ fill the
disc of radius $g$, so below it $\lambda_\max = g - 1 < 0$), and for large
$N$ the dynamics are chaotic, $\lambda_\max > 0$, for $g > 1$.

`chaos_sweep` measures $\lambda_\max$, the Kaplan-Yorke dimension and the entropy
rate against $g$ for several networks. Network ``s`` is the *same* unit matrix
$J^{(s)}$ at every $g$ (scaled by $g$; quenched disorder), so the curves are
smooth in $g$, and one compiled function serves the whole sweep.
"""

from __future__ import annotations

import os
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from diffdyn.common import figure, save_figure

from ._lyapunov import entropy_rate, kaplan_yorke_dimension, lyapunov_spectrum
from ._model import RateRNN

__all__ = ["chaos_sweep", "plot_sweep", "sample_network"]


def sample_network(
    key: PRNGKeyArray, sample: int, n: int, **model_kw: Any
) -> tuple[RateRNN, Float[Array, " n"], PRNGKeyArray]:
    r"""Network ``sample`` of a sweep: a unit-gain `RateRNN` (scaled by g later), its
    initial state $h_0 \sim \mathcal N(0, I)$ and the key of its tangent basis."""
    net_key, h_key, q_key = jax.random.split(jax.random.fold_in(key, sample), 3)
    model = RateRNN(n, g=1.0, key=net_key, **model_kw)
    return model, jax.random.normal(h_key, (n,), model.weight.dtype), q_key


@eqx.filter_jit
def _measure(
    model: RateRNN, scale: Float[Array, ""], h0: Float[Array, " n"], key: PRNGKeyArray, kw: Any
) -> Float[Array, " k"]:
    scaled = eqx.tree_at(lambda m: m.weight, model, model.weight * scale)
    return lyapunov_spectrum(scaled, h0, key=key, checkpoint=False, **dict(kw)).exponents


def chaos_sweep(
    gs: Any,
    n: int,
    *,
    key: PRNGKeyArray,
    n_samples: int = 3,
    activation: str = "tanh",
    n_exponents: int = 1,
    dt: float = 0.1,
    solver: str = "euler",
    t_sim: float = 200.0,
    t_ons: float = 1.0,
    t_transient: float = 100.0,
    t_ons_transient: float = 10.0,
    progress: Any = None,
) -> dict[str, np.ndarray]:
    """Lyapunov exponents of ``n_samples`` random networks of size ``n`` at every ``g``.

    Returns numpy arrays ``g [G]``, ``exponents [G, S, k]``, ``lambda_max [G, S]``,
    ``dimension [G, S]`` (Kaplan-Yorke; a lower bound when all ``k`` partial sums are
    positive) and ``entropy [G, S]``. ``progress(i, total)`` is called after each network."""
    gs = np.asarray(gs, dtype=float).ravel()
    if gs.size == 0 or np.any(gs < 0) or not np.all(np.isfinite(gs)):
        raise ValueError(f"argument 'gs' must be a non-empty list of finite g >= 0; got {gs}")
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"argument 'n_samples' must be an integer >= 1; got {n_samples!r}")
    kw = (
        ("n_exponents", n_exponents),
        ("t_sim", t_sim),
        ("t_ons", t_ons),
        ("t_transient", t_transient),
        ("t_ons_transient", t_ons_transient),
    )
    out = np.zeros((gs.size, n_samples, n_exponents))
    for s in range(n_samples):
        model, h0, q_key = sample_network(key, s, n, activation=activation, dt=dt, solver=solver)
        for i, g in enumerate(gs):
            scale = jnp.asarray(g, model.weight.dtype)
            out[i, s] = np.asarray(_measure(model, scale, h0, q_key, kw))
            if progress is not None:
                progress(s * gs.size + i + 1, gs.size * n_samples)
    lam = jnp.asarray(out)
    return {
        "g": gs,
        "exponents": out,
        "lambda_max": out.max(axis=-1),
        "dimension": np.asarray(jax.vmap(jax.vmap(kaplan_yorke_dimension))(lam)),
        "entropy": np.asarray(jax.vmap(jax.vmap(entropy_rate))(lam)),
    }


def plot_sweep(result: dict[str, np.ndarray], path: str | os.PathLike, title: str = "") -> Any:
    """λ_max (and, with more than one exponent, the Kaplan-Yorke dimension) against g:
    every network as a dot, the median as a line."""
    g = result["g"]
    two = result["exponents"].shape[-1] > 1
    fig, axes = figure(1, 2 if two else 1, figsize=(10 if two else 5.5, 4))
    axes = np.atleast_1d(axes)
    panels = [("lambda_max", r"$\lambda_{\max}$")] + ([("dimension", "$D_{KY}$")] if two else [])
    for ax, (name, label) in zip(axes, panels, strict=False):
        values = result[name]
        for s in range(values.shape[1]):
            ax.plot(g, values[:, s], "o", color="tab:blue", alpha=0.4, ms=4)
        ax.plot(g, np.median(values, axis=1), "-", color="tab:red", label="median")
        if name == "lambda_max":
            ax.axhline(0.0, color="k", lw=0.8)
            ax.axvline(1.0, color="gray", ls="--", lw=0.8)
        ax.set_xlabel("g")
        ax.set_ylabel(label)
        ax.legend()
    if title:
        axes[0].set_title(title)
    return save_figure(fig, path)
