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


def test_the_training_figure_marks_the_selected_step_and_offsets_a_resumed_run(tmp_path):
    from diffdyn.common import TrainResult, plot_training

    result = TrainResult(
        model=None,
        best_model=None,
        best_loss=0.25,
        losses=np.array([1.0, 0.5, 0.25, 0.3]),
        steps=10,  # resumed at step 6: the losses are steps 6..9
        best_step=8,
        selected_by="validation",
        validation={"step": np.array([7, 8, 9]), "loss": np.array([0.6, 0.2, 0.4])},
    )
    fig = plot_training(result)
    ax = fig.axes[0]
    train, val = ax.lines[0], ax.lines[1]
    np.testing.assert_array_equal(train.get_xdata(), [6, 7, 8, 9])
    np.testing.assert_array_equal(val.get_ydata(), [0.6, 0.2, 0.4])
    assert ax.lines[2].get_xdata()[0] == 8  # the selected step
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["training loss (per step)", "validation loss", "best model (validation)"]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "step"
    path = plot_training(result, tmp_path / "loss.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
