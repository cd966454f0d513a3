"""TensorBoard event files, written synchronously and cheaply from the training thread.

An event file is a sequence of TFRecords, each framing one serialised ``Event`` protobuf::

    uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)

with ``masked_crc(x) = ((crc >> 15) | (crc << 17)) + 0xA282EAD8 (mod 2^32)`` of the CRC-32C
(Castagnoli) checksum. Scalars, written every training step, are encoded here directly from
the protobuf wire format instead of building message objects and handing them to a writer
thread through a queue, which is what made ``tensorboardX`` expensive per scalar. Other
summaries (histograms, images, text) are built
with ``tensorboardX.summary`` and serialised with its protobuf classes.

Records go into a buffered file and reach the disk on `EventFileWriter.flush`, which
also happens by itself when ``flush_seconds`` have passed since the last one.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import google_crc32c

__all__ = ["EventFileWriter", "encode_scalar_event", "masked_crc32c", "read_events"]

_FILE_VERSION = "brain.Event:2"
_DOUBLE, _FLOAT = struct.Struct("<d").pack, struct.Struct("<f").pack
_FLOAT32_MAX = 3.4028234663852886e38
_U32, _U64 = struct.Struct("<I").pack, struct.Struct("<Q").pack


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C that frames TFRecords."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _scalar_event_encoder(tag: str) -> Callable[[float, int, float], bytes]:
    """``(value, step, wall_time) -> bytes`` of the serialised
    ``Event(wall_time, step, summary=Summary(value=[Value(tag, simple_value)]))``, with the
    parts that depend only on ``tag`` encoded once.

    Field numbers: ``Event.wall_time = 1`` (double), ``Event.step = 2`` (int64),
    ``Event.summary = 5``; ``Summary.value = 1``; ``Value.tag = 1``, ``Value.simple_value = 2``
    (float32). The value is the last field, so everything before it is a fixed prefix.

    A finite value beyond float32's range (a diverging loss, say ``1e40``) does not fit a
    ``simple_value``; it is written as a float64 tensor of TensorBoard's scalars plugin
    instead, so that the value shown is the value logged, not ``inf``.
    """
    value_prefix = _length_delimited(1, tag.encode()) + b"\x15"  # tag, then simple_value
    summary_prefix = b"\x0a" + _varint(len(value_prefix) + 4) + value_prefix
    summary_field = b"\x2a" + _varint(len(summary_prefix) + 4) + summary_prefix

    def encode(value: float, step: int, wall_time: float) -> bytes:
        if step < 0:
            raise ValueError(f"step must be non-negative; got {step}")
        step_field = b"\x10" + _varint(step) if step else b""  # proto3 omits zero defaults
        if abs(value) > _FLOAT32_MAX and value == value and abs(value) != float("inf"):
            return _double_scalar_event(tag, value, step, wall_time)
        return b"\x09" + _DOUBLE(wall_time) + step_field + summary_field + _FLOAT(value)

    return encode


def _double_scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """``Event`` whose value is a scalar float64 tensor marked for the scalars plugin."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboardX.proto.tensor_pb2 import TensorProto
    from tensorboardX.proto.types_pb2 import DT_DOUBLE

    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    tensor = TensorProto(dtype=DT_DOUBLE, double_val=[value])
    summary = Summary(value=[Summary.Value(tag=tag, metadata=metadata, tensor=tensor)])
    return Event(wall_time=wall_time, step=step, summary=summary).SerializeToString()


def encode_scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """Serialise ``Event(wall_time, step, summary=Summary(value=[Value(tag, simple_value)]))``
    in protobuf wire format, byte for byte what protobuf itself writes."""
    return _scalar_event_encoder(tag)(value, step, wall_time)


def _frame(data: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the data, its masked CRC."""
    header = _U64(len(data))
    return header + _U32(masked_crc32c(header)) + data + _U32(masked_crc32c(data))


class EventFileWriter:
    """Appends events to a new ``events.out.tfevents.<time>.<host>`` file under ``logdir``.

    Args:
        logdir: directory of the run (created if missing).
        purge_step: when resuming, events of an earlier run at steps ``>= purge_step`` are
            hidden by TensorBoard (a ``SessionLog.START`` event at that step).
        flush_seconds: longest time a written record may stay in the buffer.
    """

    def __init__(
        self,
        logdir: str | os.PathLike,
        *,
        purge_step: int | None = None,
        flush_seconds: float = 10.0,
    ):
        from tensorboardX.proto.event_pb2 import Event

        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}"
        self.path = self.logdir / name
        self._file = open(self.path, "wb", buffering=1 << 16)  # noqa: SIM115 (closed in close())
        self._flush_seconds = flush_seconds
        self._last_flush = time.monotonic()
        self.write_event(Event(wall_time=time.time(), file_version=_FILE_VERSION))
        if purge_step is not None:
            self.write_session_start(purge_step)
        self.flush()

    def write_session_start(self, step: int) -> None:
        """Mark the start of a (resumed) run at ``step``: TensorBoard's readers drop every
        event of earlier files at steps ``>= step`` (what a killed run logged after its last
        checkpoint), so that each step is shown once."""
        from tensorboardX.proto.event_pb2 import Event, SessionLog

        start = SessionLog(status=SessionLog.START)
        self.write_event(Event(wall_time=time.time(), step=int(step), session_log=start))

    def write_record(self, data: bytes) -> None:
        """Frame one serialised event as a TFRecord and append it."""
        self._write(_frame(data))

    def _write(self, framed: bytes) -> None:
        if self._file.closed:
            raise ValueError(f"event file {self.path} is closed")
        self._file.write(framed)
        if time.monotonic() - self._last_flush > self._flush_seconds:
            self.flush()

    def write_event(self, event: Any) -> None:
        """Append an ``Event`` protobuf message."""
        self.write_record(event.SerializeToString())

    def write_summary(self, summary: Any, step: int) -> None:
        """Append a ``Summary`` protobuf message as the event at ``step``."""
        from tensorboardX.proto.event_pb2 import Event

        self.write_event(Event(wall_time=time.time(), step=int(step), summary=summary))

    def write_scalar(self, tag: str, value: float, step: int) -> None:
        """Append one scalar (the fast path, no protobuf objects)."""
        self.write_record(encode_scalar_event(tag, float(value), int(step), time.time()))

    def write_scalars(
        self, tag: str, values: Sequence[float], steps: Sequence[int], wall_times: Sequence[float]
    ) -> None:
        """Append a series of one tag, one event per value: the block path of the trainer.

        Byte for byte what `write_scalar` writes for each value, with the parts that
        depend only on ``tag`` encoded once.
        """
        encode = _scalar_event_encoder(tag)
        self._write(
            b"".join(
                _frame(encode(value, int(step), wall))
                for value, step, wall in zip(values, steps, wall_times, strict=True)
            )
        )

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def read_events(path: str | os.PathLike) -> Iterator[Any]:
    """Yield the ``Event`` messages of one event file, checking every record's checksums."""
    from tensorboardX.proto.event_pb2 import Event

    data = Path(path).read_bytes()
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError(f"{path}: truncated record header at byte {pos}")
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        if header_crc != masked_crc32c(header):
            raise ValueError(f"{path}: bad length checksum at byte {pos}")
        body = data[pos + 12 : pos + 12 + length]
        if len(body) != length or pos + 16 + length > len(data):
            raise ValueError(f"{path}: truncated record at byte {pos}")
        (body_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
        if body_crc != masked_crc32c(body):
            raise ValueError(f"{path}: bad data checksum at byte {pos}")
        yield Event.FromString(body)
        pos += 16 + length
