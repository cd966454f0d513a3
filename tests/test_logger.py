"""TensorBoard logging: read the event file back and check what was written."""

import io
import struct

import numpy as np
import pytest
from PIL import Image
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.proto.summary_pb2 import Summary

from diffdyn.common import NullLogger, TensorBoardLogger
from diffdyn.common import read_events as read_event_file


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
    (note,) = values["note"]  # the tag as given, no suffix
    assert note[1].tensor.string_val == [b"hello"]
    assert note[1].metadata.plugin_data.plugin_name == "text"


def test_images_are_scaled_clipped_and_checked_and_videos_keep_their_frame_rate(tmp_path):
    log = TensorBoardLogger(tmp_path)
    log.image("two", np.stack([np.full((2, 3), 0.5), np.zeros((2, 3))]), 0)  # [C, H, W], C = 2
    log.image("bright", np.full((2, 2), 2.0), 0)
    with pytest.raises(ValueError, match="image must be"):
        log.image("bad", np.zeros((1, 2, 3, 4)), 0)
    frames = np.arange(3.0)[:, None, None] / 2 * np.ones((3, 4, 4))
    log.video("movie", frames, 0, fps=5)
    log.close()
    values = {v.tag: v for e in read_events(tmp_path) for v in e.summary.value}
    two = Image.open(io.BytesIO(values["two"].image.encoded_image_string))
    assert two.size == (3, 2) and two.getpixel((0, 0))[:3] == (128, 0, 0)  # no blue channel
    bright = Image.open(io.BytesIO(values["bright"].image.encoded_image_string))
    assert np.asarray(bright).max() == 255  # clipped to 1
    gif = Image.open(io.BytesIO(values["movie"].image.encoded_image_string))
    assert gif.n_frames == 3 and gif.info["duration"] == 200


def test_null_logger_accepts_everything():
    log = NullLogger()
    log.scalar("a", 1.0, 0)
    log.video("v", np.zeros((2, 1, 2, 2)), 0)
    log.hparams({"a": 1}, {"m": 0.0})
    log.close()


def _crc32c_reference(data: bytes) -> int:
    """Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), independent of diffdyn."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) % 2**32


def _records(path):
    """The TFRecord bodies of an event file, with their stored length and data checksums."""
    data, pos, out = path.read_bytes(), 0, []
    while pos < len(data):
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        body = data[pos + 12 : pos + 12 + length]
        (body_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
        out.append((header, header_crc, body, body_crc))
        pos += 16 + length
    return out


def test_every_record_is_framed_with_the_masked_crc32c_of_tfrecord(tmp_path):
    # the reference CRC gives the standard check value CRC-32C("123456789") = 0xE3069283
    assert _crc32c_reference(b"123456789") == 0xE3069283
    log = TensorBoardLogger(tmp_path)
    log.scalar("a", 1.5, 0)
    log.scalars("b", [1.0, 2.0], [1, 2])
    log.text("note", "hello", 3)
    log.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    records = _records(path)
    assert len(records) == 5  # file version, a, b, b, note
    for header, header_crc, body, body_crc in records:
        assert header_crc == _masked(_crc32c_reference(header))
        assert body_crc == _masked(_crc32c_reference(body))


@pytest.mark.parametrize("step", [0, 1, 127, 128, 300, 2**40])
def test_scalars_are_byte_for_byte_what_protobuf_serialises(tmp_path, step):
    log = TensorBoardLogger(tmp_path)
    log.scalar("train/loss", 0.25, step)
    log.scalars("train/series", [0.5], [step])
    log.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    for (_, _, body, _), tag, value in zip(
        _records(path)[1:], ("train/loss", "train/series"), (0.25, 0.5), strict=True
    ):
        event = Event.FromString(body)
        expected = Event(
            wall_time=event.wall_time,
            step=step,
            summary=Summary(value=[Summary.Value(tag=tag, simple_value=value)]),
        )
        assert body == expected.SerializeToString()


def test_a_resumed_log_starts_with_a_purge_step_and_a_corrupt_file_is_refused(tmp_path):
    log = TensorBoardLogger(tmp_path, purge_step=7, flush_seconds=1e9)
    (path,) = tmp_path.glob("events.out.tfevents.*")
    size = path.stat().st_size
    log.scalar("a", 1.0, 8)
    assert path.stat().st_size == size  # buffered until flushed
    log.flush()
    assert path.stat().st_size > size
    log.close()
    events = list(read_event_file(path))
    assert events[0].file_version == "brain.Event:2"
    assert events[1].step == 7 and events[1].session_log.status == SessionLog.START
    assert events[2].summary.value[0].simple_value == 1.0
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="bad data checksum"):
        list(read_event_file(path))
    with pytest.raises(ValueError, match="closed"):
        log.scalar("a", 1.0, 9)


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


def test_a_resumed_run_shows_each_step_once_in_tensorboard(tmp_path):
    """A run killed after its checkpoint at step 5 had logged steps 5..7; the resumed run
    starts at 5 again, and TensorBoard's own reader shows every step once."""
    import shutil

    import jax
    import jax.numpy as jnp
    import optax
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from diffdyn.common import TrainConfig, Trainer

    def loss(model, batch, key):
        return jnp.sum((model - batch) ** 2)

    def fit(steps, resume):
        config = TrainConfig(steps=steps, log_every=1, checkpoint_every=5, progress=False)
        trainer = Trainer(
            loss, optax.sgd(0.1), config=config, logger=TensorBoardLogger(tmp_path), out=tmp_path
        )
        result = trainer.fit(jnp.zeros(2), jnp.ones(2), jax.random.key(0), resume=resume)
        trainer.logger.close()
        return result

    fit(5, resume=False)
    checkpoint = tmp_path / "checkpoints" / "latest.ckpt"
    shutil.copy(checkpoint, tmp_path / "step5.ckpt")
    fit(8, resume=True)  # logs steps 5, 6, 7 ...
    shutil.copy(tmp_path / "step5.ckpt", checkpoint)  # ... and is killed before its checkpoint
    result = fit(10, resume=True)
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    events = acc.Scalars("train/loss")
    assert [e.step for e in events] == list(range(10))
    np.testing.assert_allclose([e.value for e in events], result.losses, rtol=1e-6)


def test_values_beyond_float32_reach_tensorboard_as_logged(tmp_path):
    """A diverging loss of 1e40 does not fit TensorBoard's float32 ``simple_value``; it is
    written as a float64 scalar tensor, and TensorBoard's own reader shows 1e40, not inf."""
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea
    from tensorboard.util import tensor_util

    log = TensorBoardLogger(tmp_path)
    log.scalars("loss", [1.0, 1e40, -3e39, float("inf")], [0, 1, 2, 3])
    log.scalar("loss", 2e300, 4)
    log.close()
    acc = pea.EventAccumulator(str(tmp_path))
    acc.Reload()
    values = [tensor_util.make_ndarray(e.tensor_proto).item() for e in acc.Tensors("loss")]
    assert values == [1.0, 1e40, -3e39, float("inf"), 2e300]
    assert acc.SummaryMetadata("loss").plugin_data.plugin_name == "scalars"
