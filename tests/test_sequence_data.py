"""load_sequence: .npy/.npz arrays and folders of PNG frames, times, and the refusals."""

import numpy as np
import pytest
from PIL import Image

from diffdyn.common import SequenceData, load_sequence


def frames(*shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def test_a_npy_sequence_gains_a_batch_axis_and_default_times(tmp_path):
    x = frames(5, 2, 4, 6)
    np.save(tmp_path / "seq.npy", x)
    data = load_sequence(tmp_path / "seq.npy")
    assert isinstance(data, SequenceData)
    assert data.frames.shape == (1, 5, 2, 4, 6) and data.frames.dtype == np.float32
    np.testing.assert_array_equal(data.frames[0], x)
    np.testing.assert_array_equal(data.times, [0, 1, 2, 3, 4])


def test_a_batch_of_sequences_and_given_times(tmp_path):
    x = np.arange(3 * 4 * 1 * 2 * 2, dtype=np.int16).reshape(3, 4, 1, 2, 2)
    np.save(tmp_path / "seq.npy", x)
    data = load_sequence(str(tmp_path / "seq.npy"), times=[0.0, 0.5, 2.0, 2.5])
    assert data.frames.shape == (3, 4, 1, 2, 2) and data.frames.dtype == np.float32
    np.testing.assert_array_equal(data.frames, x)  # values kept as stored, not rescaled
    np.testing.assert_array_equal(data.times, [0.0, 0.5, 2.0, 2.5])


def test_npz_frames_key_with_times_or_the_only_array(tmp_path):
    x = frames(2, 3, 1, 3, 3)
    np.savez(tmp_path / "a.npz", frames=x, times=np.array([1.0, 2.0, 4.0]))
    data = load_sequence(tmp_path / "a.npz")
    np.testing.assert_array_equal(data.frames, x)
    np.testing.assert_array_equal(data.times, [1.0, 2.0, 4.0])
    np.savez(tmp_path / "b.npz", video=x[0])
    assert load_sequence(tmp_path / "b.npz").frames.shape == (1, 3, 1, 3, 3)
    np.savez(tmp_path / "c.npz", video=x[0], times=np.array([0.0, 1.0, 3.0]))
    np.testing.assert_array_equal(load_sequence(tmp_path / "c.npz").times, [0.0, 1.0, 3.0])


def save_png(path, array, mode):
    Image.fromarray(array, mode).save(path)


def test_png_folders_give_grey_rgb_or_rgba_channels_in_order_of_their_numbers(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    folder = tmp_path / "rgb"
    folder.mkdir()
    for name, k in (("f2.png", 0), ("f10.png", 1), ("f11.png", 2)):  # f10 sorts after f2
        save_png(folder / name, rgb[k], "RGB")
    (folder / "notes.txt").write_text("not a frame")
    data = load_sequence(folder)
    assert data.frames.shape == (1, 3, 3, 4, 5)
    np.testing.assert_allclose(data.frames[0], rgb.transpose(0, 3, 1, 2) / 255.0, atol=1e-7)

    grey = tmp_path / "grey"
    grey.mkdir()
    for k in range(2):
        save_png(grey / f"{k}.png", rgb[k, ..., 0], "L")
    g = load_sequence(grey, times=[0.0, 3.0])
    assert g.frames.shape == (1, 2, 1, 4, 5)
    np.testing.assert_allclose(g.frames[0, :, 0], rgb[:2, ..., 0] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(g.times, [0.0, 3.0])

    rgba = tmp_path / "rgba"
    rgba.mkdir()
    a = rng.integers(0, 256, (2, 4, 5, 4), dtype=np.uint8)
    for k in range(2):
        save_png(rgba / f"{k}.png", a[k], "RGBA")
    r = load_sequence(rgba)
    assert r.frames.shape == (1, 2, 4, 4, 5)
    np.testing.assert_allclose(r.frames[0], a.transpose(0, 3, 1, 2) / 255.0, atol=1e-7)

    deep = tmp_path / "deep"
    deep.mkdir()
    for k in range(2):
        Image.fromarray(np.full((3, 3), 65535 * k, np.uint16)).save(deep / f"{k}.png")
    np.testing.assert_allclose(load_sequence(deep).frames[0, :, 0, 0, 0], [0.0, 1.0])


def one_line_error(path, match, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        load_sequence(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_bad_arrays_are_refused_naming_the_path(tmp_path):
    np.save(tmp_path / "three.npy", frames(4, 5, 5))
    one_line_error(tmp_path / "three.npy", r"\[T, C, H, W\] or \[B, T, C, H, W\].*3 dimensions")
    for bad in (np.nan, np.inf):
        x = frames(3, 1, 2, 2)
        x[1, 0, 1, 1] = bad
        np.save(tmp_path / "bad.npy", x)
        one_line_error(tmp_path / "bad.npy", "NaN or inf")
    np.save(tmp_path / "one.npy", frames(1, 1, 2, 2))
    one_line_error(tmp_path / "one.npy", "at least 2 frames; got 1")
    np.savez(tmp_path / "many.npz", a=frames(2, 1, 2, 2), b=frames(2, 1, 2, 2))
    one_line_error(tmp_path / "many.npz", "name the frames 'frames'")
    np.savez(tmp_path / "extra.npz", frames=frames(2, 1, 2, 2), other=frames(2))
    one_line_error(tmp_path / "extra.npz", "besides 'frames'")


def test_bad_times_are_refused(tmp_path):
    np.save(tmp_path / "s.npy", frames(3, 1, 2, 2))
    one_line_error(
        tmp_path / "s.npy",
        r"strictly increasing; t\[1\] = 2 is followed by t\[2\] = 2",
        times=[0, 2, 2],
    )
    one_line_error(tmp_path / "s.npy", "one time per frame", times=[0, 1])
    np.savez(tmp_path / "t.npz", frames=frames(3, 1, 2, 2), times=np.array([0.0, 2.0, 1.0]))
    one_line_error(tmp_path / "t.npz", "strictly increasing")
    np.savez(tmp_path / "u.npz", frames=frames(3, 1, 2, 2), times=np.array([0.0, 1.0, 2.0]))
    one_line_error(tmp_path / "u.npz", "holds its own 'times'", times=[0, 1, 2])


def test_unreadable_files_and_folders_are_refused(tmp_path):
    one_line_error(tmp_path / "missing.npy", "does not exist")
    (tmp_path / "junk.npy").write_bytes(b"this is not an array")
    one_line_error(tmp_path / "junk.npy", "cannot be read")
    (tmp_path / "empty.npz").write_bytes(b"")
    one_line_error(tmp_path / "empty.npz", "is empty")
    (tmp_path / "movie.mp4").write_bytes(b"\x00" * 8)
    one_line_error(tmp_path / "movie.mp4", "neither a .npy/.npz file nor a folder")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object))
    one_line_error(tmp_path / "obj.npy", "cannot be read")

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no frames here")
    one_line_error(empty, "holds no PNG frames")

    broken = tmp_path / "broken"
    broken.mkdir()
    save_png(broken / "0.png", np.zeros((3, 3), np.uint8), "L")
    (broken / "1.png").write_bytes(b"not a png")
    one_line_error(broken, r"1\.png.*not a readable image")

    sizes = tmp_path / "sizes"
    sizes.mkdir()
    save_png(sizes / "0.png", np.zeros((3, 3), np.uint8), "L")
    save_png(sizes / "1.png", np.zeros((3, 4), np.uint8), "L")
    one_line_error(sizes, r"mismatched size.*0\.png is \[C, H, W\] = \[1, 3, 3\].*\[1, 3, 4\]")

    channels = tmp_path / "channels"
    channels.mkdir()
    save_png(channels / "0.png", np.zeros((3, 3), np.uint8), "L")
    save_png(channels / "1.png", np.zeros((3, 3, 3), np.uint8), "RGB")
    one_line_error(channels, "mismatched size")

    single = tmp_path / "single"
    single.mkdir()
    save_png(single / "0.png", np.zeros((3, 3), np.uint8), "L")
    one_line_error(single, "at least 2 frames")
