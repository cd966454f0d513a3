"""TensorBoard logging: read the event file back and check what was written."""

import io
import struct

import numpy as np
import pytest
from PIL import Image
from tensorboardX.proto.event_pb2 import Event

from common.logger import NullLogger, TensorBoardLogger, encode_gif, to_uint8_hwc


def read_events(logdir):
    events = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            events.append(Event.FromString(data[pos + 12 : pos + 12 + length]))
            pos += 12 + length + 4
    return [e for e in events if e.HasField("summary")]


def test_scalars_images_videos_text_reach_the_event_file(tmp_path):
    log = TensorBoardLogger(tmp_path)
    for step in range(3):
        log.scalar("loss", 1.0 / (step + 1), step)
    log.histogram("w", np.arange(10.0), 0)
    img = np.zeros((3, 4, 6))
    img[0] = 1.0
    log.image("img", img, 1)
    log.video("movie", np.linspace(0, 1, 5)[:, None, None, None] * np.ones((5, 1, 8, 8)), 2)
    log.text("note", "hello", 0)
    log.close()
    values = {}
    for e in read_events(tmp_path):
        for v in e.summary.value:
            values.setdefault(v.tag, []).append((e.step, v))
    assert [(s, round(v.simple_value, 6)) for s, v in values["loss"]] == [
        (0, 1.0),
        (1, 0.5),
        (2, 0.333333),
    ]
    assert values["w"][0][1].histo.num == 10
    png = Image.open(io.BytesIO(values["img"][0][1].image.encoded_image_string))
    assert png.size == (6, 4) and png.getpixel((0, 0))[:3] == (255, 0, 0)
    gif = Image.open(io.BytesIO(values["movie"][0][1].image.encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames == 5
    assert any(tag.startswith("note") for tag in values)


def test_image_conversion():
    x = np.stack([np.full((2, 3), 0.5), np.zeros((2, 3))])
    hwc = to_uint8_hwc(x)
    assert hwc.shape == (2, 3, 3) and hwc[0, 0].tolist() == [128, 0, 0]
    assert to_uint8_hwc(np.full((2, 2), 2.0)).max() == 255  # clipped
    with pytest.raises(ValueError, match="image must be"):
        to_uint8_hwc(np.zeros((1, 2, 3, 4)))
    frames = np.arange(3.0)[:, None, None] / 2 * np.ones((3, 4, 4))
    gif = Image.open(io.BytesIO(encode_gif(frames, fps=5)))
    assert gif.n_frames == 3 and gif.info["duration"] == 200


def test_null_logger_accepts_everything():
    log = NullLogger()
    log.scalar("a", 1.0, 0)
    log.video("v", np.zeros((2, 1, 2, 2)), 0)
    log.hparams({"a": 1}, {"m": 0.0})
    log.close()
