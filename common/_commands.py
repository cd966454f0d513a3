"""The core's part of ``diffdyn quickstart``: learn a linear ODE from trajectories.

The damped oscillator ``x'' + 2ζω x' + ω² x = 0`` is the linear system ``y' = A y`` with
``A = [[0, 1], [-ω², -2ζω]]``, whose flow is ``y(t) = exp(tA) y(0)``. We observe exact
trajectories from a few initial conditions and fit ``A`` by integrating a trainable
`LinearField` with diffrax (``common.solve``) under the common `Trainer`. The
recovered matrix is compared with the true one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from ._plotting import figure, save_figure
from ._solve import solve
from ._trainer import TrainConfig, Trainer
from .cli import RunContext, quickstart_part
from .neural_de._node import LinearField

__all__ = ["oscillator_matrix", "core_quickstart"]


def oscillator_matrix(omega: float = 1.5, zeta: float = 0.1) -> Float[Array, "2 2"]:
    """``A`` of the damped oscillator with natural frequency ``omega`` and damping ``zeta``."""
    return jnp.asarray([[0.0, 1.0], [-(omega**2), -2.0 * zeta * omega]])


@quickstart_part("core", order=0)
def core_quickstart(ctx: RunContext) -> dict[str, float]:
    """Fit ``A`` of a damped oscillator from 8 exact trajectories; plot the fit."""
    truth = oscillator_matrix()
    key_data, key_model, key_train = jax.random.split(ctx.key, 3)
    y0 = jax.random.normal(key_data, (8, 2))
    ts = jnp.linspace(0.0, 4.0, 21)
    data = jax.vmap(lambda y: jax.vmap(lambda t: jax.scipy.linalg.expm(t * truth) @ y)(ts))(y0)

    def predict(model: LinearField, y0: Array) -> Array:
        return jax.vmap(lambda y: solve(model, y, ts, solver="tsit5", rtol=1e-5, atol=1e-6))(y0)

    def loss(model: LinearField, batch: tuple[Array, Array], key: PRNGKeyArray) -> Array:
        starts, target = batch
        return jnp.mean((predict(model, starts) - target) ** 2)

    steps = 150 if ctx.quick else 400
    trainer = Trainer(
        loss,
        optax.adam(0.05),
        config=TrainConfig(steps=steps, log_every=50, checkpoint_every=steps),
        logger=ctx.logger(),
        out=ctx.out,
    )
    result = trainer.fit(LinearField(2, key=key_model), (y0, data), key_train, resume=ctx.resume)
    fitted = predict(result.best_model, y0[:3])
    fig, ax = figure(figsize=(6, 4))
    for i in range(3):
        ax.plot(ts, data[i, :, 0], "k-", lw=1, label="data" if i == 0 else None)
        ax.plot(ts, fitted[i, :, 0], "o", ms=3, label="learned ODE" if i == 0 else None)
    ax.set_xlabel("t")
    ax.set_ylabel("x(t)")
    ax.legend()
    save_figure(fig, ctx.path("fit.png"))
    error = jnp.linalg.norm(result.best_model.matrix - truth) / jnp.linalg.norm(truth)
    return {
        "final_loss": result.final_loss,
        "best_loss": result.best_loss,
        "matrix_relative_error": float(error),
        "learned_matrix": np.asarray(result.best_model.matrix).round(4).tolist(),
    }
