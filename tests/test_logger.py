"""TensorBoard logging: read the event file back and check what was written."""

import io

import numpy as np
import pytest
from PIL import Image
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.proto.summary_pb2 import Summary

from diffdyn.common.events import EventFileWriter, encode_scalar_event, masked_crc32c
from diffdyn.common.events import read_events as read_event_file
from diffdyn.common.logger import NullLogger, TensorBoardLogger, encode_gif, to_uint8_hwc


def read_events(logdir):
    events = []
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        events.extend(read_event_file(path))
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


def test_crc32c_check_value_and_mask():
    # CRC-32C("123456789") = 0xE3069283 is the standard check value of the Castagnoli CRC.
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % 2**32


@pytest.mark.parametrize("step", [0, 1, 127, 128, 300, 2**40])
def test_hand_encoded_scalar_matches_protobuf(step):
    data = encode_scalar_event("train/loss", 0.25, step, 1234.5)
    value = Summary.Value(tag="train/loss", simple_value=0.25)
    expected = Event(wall_time=1234.5, step=step, summary=Summary(value=[value]))
    assert data == expected.SerializeToString()
    assert Event.FromString(data) == expected


def test_event_file_purge_step_flush_and_corruption(tmp_path):
    writer = EventFileWriter(tmp_path, purge_step=7, flush_seconds=1e9)
    size = writer.path.stat().st_size
    writer.write_scalar("a", 1.0, 8)
    assert writer.path.stat().st_size == size  # buffered until flushed
    writer.flush()
    assert writer.path.stat().st_size > size
    writer.close()
    events = list(read_event_file(writer.path))
    assert events[0].file_version == "brain.Event:2"
    assert events[1].step == 7 and events[1].session_log.status == SessionLog.START
    assert events[2].summary.value[0].simple_value == 1.0
    data = bytearray(writer.path.read_bytes())
    data[-6] ^= 0xFF
    writer.path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="bad data checksum"):
        list(read_event_file(writer.path))
    with pytest.raises(ValueError, match="closed"):
        writer.write_scalar("a", 1.0, 9)


def test_hparams_go_to_a_sub_run(tmp_path):
    log = TensorBoardLogger(tmp_path)
    log.hparams({"lr": 0.1, "layers": [2, 3]}, {"final/loss": 0.5})
    log.close()
    events = read_events(tmp_path / "hparams")
    plugins = {v.metadata.plugin_data.plugin_name for e in events for v in e.summary.value}
    assert "hparams" in plugins
    scalars = [v.simple_value for e in events for v in e.summary.value if v.tag == "final/loss"]
    assert scalars == [0.5]


def test_scalar_series_match_single_scalars(tmp_path):
    log = TensorBoardLogger(tmp_path / "series")
    log.scalars("loss", np.array([3.0, 2.0, 1.0]), np.arange(3))
    log.scalars("loss", [0.5, 0.25], [3, 4])
    log.close()
    events = read_events(tmp_path / "series")
    assert [(e.step, e.summary.value[0].simple_value) for e in events] == [
        (0, 3.0),
        (1, 2.0),
        (2, 1.0),
        (3, 0.5),
        (4, 0.25),
    ]
    walls = [e.wall_time for e in events]
    assert walls == sorted(walls)
    # each record is what the single-scalar encoder writes for the same event
    for e in events:
        v = e.summary.value[0]
        assert e.SerializeToString() == encode_scalar_event(
            v.tag, v.simple_value, e.step, e.wall_time
        )
