"""Figure helpers: PNG/GIF files with the pixels that were asked for."""

import numpy as np
import pytest
from PIL import Image

from diffdyn.common import plot_curves, save_gif, save_png


def test_save_png_scales_each_pixel_to_a_block(tmp_path):
    image = np.zeros((3, 2, 3))
    image[0, 0, 0] = 1.0  # top-left red
    image[2, 1, 2] = 1.0  # bottom-right blue
    path = save_png(image, tmp_path / "x.png", scale=4)
    png = np.asarray(Image.open(path).convert("RGB"))
    assert png.shape == (8, 12, 3)
    assert (png[:4, :4] == [255, 0, 0]).all() and (png[4:, 8:] == [0, 0, 255]).all()
    assert (png[:4, 4:8] == 0).all()
    native = np.asarray(Image.open(save_png(image, tmp_path / "y.png")).convert("RGB"))
    np.testing.assert_array_equal(png[::4, ::4], native)
    with pytest.raises(ValueError, match="scale"):
        save_png(image, tmp_path / "z.png", scale=0)


def test_save_gif_and_curves_write_files(tmp_path):
    frames = np.linspace(0, 1, 4)[:, None, None] * np.ones((4, 5, 5))
    gif = Image.open(save_gif(frames, tmp_path / "a.gif", fps=4))
    assert gif.n_frames == 4 and gif.info["duration"] == 250
    plot_curves({"loss": np.exp(-np.arange(10.0))}, tmp_path / "c.png", logy=True)
    assert Image.open(tmp_path / "c.png").size[0] > 100
