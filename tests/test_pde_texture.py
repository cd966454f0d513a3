"""Texture PDEs: the loss of what a PDE grows from noise, refusals, and a fit that works."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffdyn.common import OptimConfig, TrainConfig, Trainer, texture_image, texture_loss
from diffdyn.pde import NeuralRDA, PDESolver, TextureTask

KEY = jax.random.key(0)


def stripes(size=16):
    image = texture_image("stripes", size, period=8).mean(0, keepdims=True)
    return (image - image.min()) / (image.max() - image.min())


def test_a_still_pde_is_scored_on_its_initial_noise():
    """dX/dt = 0 (no terms, no decay): the grown state is the noise, so the task's error is
    `texture_loss` of the noise itself."""
    still = PDESolver(NeuralRDA(1, diffusion="none", reaction=False, stability=0.0, key=KEY))
    task = TextureTask(stripes(), 1.0, batch_size=2, levels=2, projections=8)
    x0 = task.seed(1, key=jax.random.key(1))
    assert x0.shape == (2, 1, 16, 16) and 0.0 <= float(x0.min()) < float(x0.max()) <= 1.0
    np.testing.assert_allclose(task.grow(still, x0), x0, atol=1e-6)
    got = task.errors(still, x0, jax.random.key(2))
    expected = texture_loss(x0, task.target, levels=2, projections=8, key=jax.random.key(2))
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # evaluation draws the same noise and projections every time, so scores compare
    assert task.evaluate(still, jax.random.key(3)) == task.evaluate(still, jax.random.key(4))
    # the example itself scores ~0 against itself; noise does not
    same = texture_loss(task.target[None], task.target, levels=2, key=KEY)
    assert float(same[0]) < 1e-10 < float(jnp.min(got))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"target must have shape \[O, H, W\]"):
        TextureTask(np.zeros((16, 16)), 1.0)
    with pytest.raises(ValueError, match="t1 must be a finite time > 0"):
        TextureTask(stripes(), 0.0)
    with pytest.raises(ValueError, match="noise must be a finite range"):
        TextureTask(stripes(), 1.0, noise=(1.0, 0.0))
    with pytest.raises(ValueError, match="levels = 5 needs target of at least 2\\*\\*levels"):
        TextureTask(stripes(), 1.0, levels=5)
    with pytest.raises(ValueError, match="NaN"):
        TextureTask(np.full((1, 16, 16), np.nan), 1.0)
    task = TextureTask(np.zeros((3, 16, 16)), 1.0)
    with pytest.raises(ValueError, match="the target has 3 channels but the PDE only 2"):
        task.seed(2, key=KEY)
    model = PDESolver(NeuralRDA(2, key=KEY))
    with pytest.raises(ValueError, match="batch of initial states"):
        TextureTask(stripes(), 1.0).init(model, jnp.zeros((1, 2, 8, 8)))
    with pytest.raises(TypeError, match="trains a PDESolver"):
        TextureTask(stripes(), 1.0).init(NeuralRDA(2, key=KEY), None)


@pytest.mark.heavy
def test_a_neural_reaction_diffusion_learns_stripes_from_noise():
    """60 steps bring a neural RDA's texture loss (same noise, same projections) below half
    of the untrained model's, which leaves the noise smoothed but without stripes."""
    model = PDESolver(NeuralRDA(2, width=16, depth=1, key=KEY))
    task = TextureTask(stripes(), 5.0, batch_size=2, levels=2, projections=16, samples=2)
    before = task.evaluate(model, KEY)["loss"]
    config = TrainConfig(steps=60, log_every=60, progress=False)
    result = Trainer(task, OptimConfig(learning_rate=1e-2), config=config).fit(
        model, task.seed(2, key=jax.random.key(1)), jax.random.key(2)
    )
    after = task.evaluate(result.best_model, KEY)["loss"]
    assert after < 0.5 * before, (before, after)
    assert float(result.best_model.rhs.diffusion_coefficients.min()) >= 0.0
