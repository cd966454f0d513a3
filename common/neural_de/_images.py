r"""Image classification by a convolutional neural ODE, and the 8x8 digits it is shown on.

`ConvODEField` is the vector field $f(t, h) = K_2 * \sigma(K_1 * [h, t] + b_1) + b_2$ on
feature maps $h \in \mathbb{R}^{C\times H\times W}$: two 3x3 convolutions with zero padding,
the time appended as a constant channel (Chen et al. 2018, "Neural ordinary differential
equations", Sec. 7). `ConvODEClassifier` lifts an image to $C$ channels with a 3x3
convolution, flows it over $[0, t_1]$, and reads out class logits from the flattened final
feature maps with a linear layer.

`digits` are the 1,797 8x8 grey-scale handwritten digits that ship with scikit-learn
(`sklearn.datasets.load_digits`, the UCI optical digits test set), scaled to $[0, 1]$ as
``[N, 1, 8, 8]`` images and split at random into train, validation and test sets.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, Real

from .._helpers import check_int, check_number
from .._model import AbstractModel
from .._solve import SolveConfig
from ._node import NeuralODE, get_activation

__all__ = ["ConvODEField", "ConvODEClassifier", "ImageSplits", "digits"]


class ConvODEField(eqx.Module):
    r"""$f(t, h) = K_2 * \sigma(K_1 * [h, t] + b_1) + b_2$ on ``[C, H, W]`` feature maps."""

    first: eqx.nn.Conv2d
    second: eqx.nn.Conv2d
    activation: str = eqx.field(static=True)

    def __init__(
        self, channels: int, width: int = 32, *, activation: str = "tanh", key: PRNGKeyArray
    ):
        channels, width = check_int(channels, "channels"), check_int(width, "width")
        get_activation(activation)
        k1, k2 = jax.random.split(key)
        self.first = eqx.nn.Conv2d(channels + 1, width, 3, padding=1, key=k1)
        self.second = eqx.nn.Conv2d(width, channels, 3, padding=1, key=k2)
        self.activation = activation

    def __call__(
        self, t: Real[Any, ""], h: Float[Array, "c h w"], args: Any = None
    ) -> Float[Array, "c h w"]:
        clock = jnp.broadcast_to(jnp.asarray(t, h.dtype), (1, *h.shape[1:]))
        hidden = get_activation(self.activation)(self.first(jnp.concatenate([h, clock])))
        return self.second(hidden)


class ConvODEClassifier(AbstractModel):
    """Class logits of an image ``[C_in, H, W]``: lift, flow, read out.

    Args:
        in_channels: channels of the input images.
        image_shape: ``(H, W)`` of the input images.
        classes: the number of classes.
        channels: feature maps the flow carries.
        width: hidden feature maps of the field.
        t1: the integration time.
        solve: how the flow is solved.
    """

    in_channels: int = eqx.field(static=True)
    image_shape: tuple[int, int] = eqx.field(static=True)
    classes: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    solve: SolveConfig = eqx.field(static=True)
    lift: eqx.nn.Conv2d
    flow: NeuralODE
    readout: eqx.nn.Linear

    def __init__(
        self,
        in_channels: int,
        image_shape: tuple[int, int],
        classes: int,
        channels: int = 16,
        width: int = 32,
        t1: float = 1.0,
        solve: SolveConfig = SolveConfig(rtol=1e-3, atol=1e-4),  # noqa: B008 (frozen)
        *,
        key: PRNGKeyArray,
    ):
        self.in_channels = check_int(in_channels, "in_channels")
        if not (isinstance(image_shape, (tuple, list)) and len(image_shape) == 2):
            raise ValueError(f"argument 'image_shape' must be (H, W); got {image_shape!r}")
        self.image_shape = (check_int(image_shape[0], "H"), check_int(image_shape[1], "W"))
        self.classes = check_int(classes, "classes", 2)
        self.channels, self.width = check_int(channels, "channels"), check_int(width, "width")
        self.t1, self.solve = check_number(t1, "t1"), solve
        k_lift, k_field, k_out = jax.random.split(key, 3)
        self.lift = eqx.nn.Conv2d(self.in_channels, self.channels, 3, padding=1, key=k_lift)
        self.flow = NeuralODE(ConvODEField(self.channels, self.width, key=k_field), solve=solve)
        pixels = self.image_shape[0] * self.image_shape[1]
        self.readout = eqx.nn.Linear(self.channels * pixels, self.classes, key=k_out)

    def __call__(self, image: Float[Array, "c h w"]) -> Float[Array, " k"]:
        if image.shape != (self.in_channels, *self.image_shape):
            h, w = self.image_shape
            raise ValueError(
                f"argument 'image' must be [C={self.in_channels}, H={h}, W={w}]; got {image.shape}"
            )
        h = self.flow.final(self.lift(image), 0.0, self.t1)
        return self.readout(jnp.ravel(h))


class ImageSplits(NamedTuple):
    """Images ``[N, C, H, W]`` and integer labels ``[N]`` of the three splits."""

    train: tuple[Float[Array, "n c h w"], Int[Array, " n"]]
    validation: tuple[Float[Array, "n c h w"], Int[Array, " n"]]
    test: tuple[Float[Array, "n c h w"], Int[Array, " n"]]


def digits(
    *, validation_fraction: float = 0.1, test_fraction: float = 0.2, key: PRNGKeyArray
) -> ImageSplits:
    """scikit-learn's 8x8 digits as ``[N, 1, 8, 8]`` images in $[0, 1]$, split at random
    (needs scikit-learn: ``pip install "diffdyn[tutorials]"``; nothing is downloaded)."""
    if not (
        0 < validation_fraction and 0 < test_fraction and validation_fraction + test_fraction < 1
    ):
        raise ValueError(
            "validation_fraction and test_fraction must be > 0 with a sum < 1; got "
            f"{validation_fraction!r} and {test_fraction!r}"
        )
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            'the digits need scikit-learn: pip install "diffdyn[tutorials]"'
        ) from None
    bunch = load_digits()
    images = jnp.asarray(bunch.images / 16.0, jnp.result_type(float))[:, None]
    labels = jnp.asarray(bunch.target, jnp.int32)
    order = jax.random.permutation(key, labels.shape[0])
    n_val = int(validation_fraction * labels.shape[0])
    n_test = int(test_fraction * labels.shape[0])
    parts = jnp.split(order, [n_val, n_val + n_test])
    val, test, train = ((images[i], labels[i]) for i in parts)
    return ImageSplits(train=train, validation=val, test=test)
