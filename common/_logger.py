"""Experiment logging: a small protocol with a TensorBoard backend and a null backend.

Images are channels-first ``[C, H, W]`` (``C`` in 1, 3, 4) or ``[H, W]`` with values in
``[0, 1]``; image sequences are ``[T, C, H, W]`` or ``[T, H, W]`` and are written to
TensorBoard as animated GIFs (shown in the Images tab), with no video library needed.
"""

from __future__ import annotations

import io
import os
import time
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ._events import EventFileWriter

__all__ = [
    "Logger",
    "TensorBoardLogger",
    "NullLogger",
    "ShiftedLogger",
    "write_hparams",
    "to_uint8_hwc",
    "encode_gif",
]


@runtime_checkable
class Logger(Protocol):
    """What the trainer and the workflows write to. All ``step`` arguments are global steps."""

    def start(self, step: int) -> None:
        """A run (or a resumed run) begins at ``step``: what earlier runs logged at steps
        ``>= step`` is obsolete."""

    def scalar(self, tag: str, value: float, step: int) -> None: ...
    def scalars(self, tag: str, values: Any, steps: Any) -> None:
        """A series of one tag, ``values[i]`` at ``steps[i]`` (logged since the last call)."""

    def histogram(self, tag: str, values: Any, step: int) -> None: ...
    def image(self, tag: str, image: Any, step: int) -> None: ...
    def video(self, tag: str, frames: Any, step: int, fps: int = 10) -> None: ...
    def text(self, tag: str, text: str, step: int) -> None: ...
    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class NullLogger:
    """A logger that discards everything (for tests, benchmarks and library use)."""

    def start(self, step: int) -> None:
        pass

    def scalar(self, tag: str, value: float, step: int) -> None:
        pass

    def scalars(self, tag: str, values: Any, steps: Any) -> None:
        pass

    def histogram(self, tag: str, values: Any, step: int) -> None:
        pass

    def image(self, tag: str, image: Any, step: int) -> None:
        pass

    def video(self, tag: str, frames: Any, step: int, fps: int = 10) -> None:
        pass

    def text(self, tag: str, text: str, step: int) -> None:
        pass

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class ShiftedLogger:
    """``logger`` with every step moved on by ``offset``: a second training stage logs after
    the first (``Trainer(..., first_step=n)`` wraps its logger in one) instead of over it."""

    def __init__(self, logger: Logger, offset: int):
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError(f"offset must be an int >= 0; got {offset!r}")
        self.logger, self.offset = logger, offset

    def start(self, step: int) -> None:
        self.logger.start(step + self.offset)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.logger.scalar(tag, value, step + self.offset)

    def scalars(self, tag: str, values: Any, steps: Any) -> None:
        self.logger.scalars(tag, values, np.asarray(steps) + self.offset)

    def histogram(self, tag: str, values: Any, step: int) -> None:
        self.logger.histogram(tag, values, step + self.offset)

    def image(self, tag: str, image: Any, step: int) -> None:
        self.logger.image(tag, image, step + self.offset)

    def video(self, tag: str, frames: Any, step: int, fps: int = 10) -> None:
        self.logger.video(tag, frames, step + self.offset, fps)

    def text(self, tag: str, text: str, step: int) -> None:
        self.logger.text(tag, text, step + self.offset)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        self.logger.hparams(hparams, metrics)

    def flush(self) -> None:
        self.logger.flush()

    def close(self) -> None:
        self.logger.close()


def to_uint8_hwc(image: Any) -> np.ndarray:
    """Convert a ``[C, H, W]`` / ``[H, W]`` float image in ``[0, 1]`` to ``uint8 [H, W, C]``.

    Two-channel images get a zero blue channel; more than four channels keep the first three.
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"image must be [C, H, W] or [H, W]; got shape {x.shape}")
    c = x.shape[0]
    if c == 2:
        x = np.concatenate([x, np.zeros_like(x[:1])], axis=0)
    elif c > 4:
        x = x[:3]
    x = np.nan_to_num(np.clip(x, 0.0, 1.0))
    return np.round(np.moveaxis(x, 0, -1) * 255).astype(np.uint8)


def encode_gif(frames: Any, fps: int = 10) -> bytes:
    """Encode ``[T, C, H, W]`` / ``[T, H, W]`` frames in ``[0, 1]`` as an animated GIF."""
    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim not in (3, 4):
        raise ValueError(f"frames must be [T, C, H, W] or [T, H, W]; got shape {frames.shape}")
    images = []
    for frame in frames:
        hwc = to_uint8_hwc(frame)
        mode = "L" if hwc.shape[-1] == 1 else ("RGBA" if hwc.shape[-1] == 4 else "RGB")
        img = Image.fromarray(hwc[..., 0] if mode == "L" else hwc, mode=mode)
        images.append(img.convert("RGB").quantize(colors=256))
    buf = io.BytesIO()
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(1, int(1000 / fps)),
        loop=0,
    )
    return buf.getvalue()


class _Discard:
    """The event writer of a process that does not write (not process 0)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("write_") or name in ("flush", "close"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


class TensorBoardLogger:
    """Writes TensorBoard event files under ``logdir`` (see `diffdyn.common`).

    Scalars are encoded directly, so logging every training step is cheap; histograms,
    images and videos are built with ``tensorboardX.summary``. Text keeps the tag it is given.
    Hyperparameters go to a ``hparams`` sub-run, as the HParams dashboard expects
    (`write_hparams`).

    In a multi-process run only process 0 writes (``writes`` is False elsewhere, and nothing
    is created there), so one run has one event file however many processes log to it.
    """

    def __init__(
        self,
        logdir: str | os.PathLike,
        *,
        purge_step: int | None = None,
        flush_seconds: float = 10.0,
    ):
        import jax

        self.logdir = os.fspath(logdir)
        self.writes = jax.process_index() == 0
        self._events: EventFileWriter | _Discard = (
            EventFileWriter(self.logdir, purge_step=purge_step, flush_seconds=flush_seconds)
            if self.writes
            else _Discard()
        )
        self._series_time: dict[str, float] = {}

    def start(self, step: int) -> None:
        """Write TensorBoard's ``SessionLog.START`` at ``step``: its readers then drop what
        earlier event files of this run logged at steps ``>= step``."""
        self._events.write_session_start(step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._events.write_scalar(tag, value, step)

    def scalars(self, tag: str, values: Any, steps: Any) -> None:
        """Write a series; its wall times are spread evenly since the tag's previous series."""
        values = np.asarray(values, dtype=np.float64).ravel()
        now = time.time()
        start = self._series_time.get(tag)
        self._series_time[tag] = now
        n = values.size
        walls = np.full(n, now) if start is None else np.linspace(start, now, n + 1)[1:]
        self._events.write_scalars(
            tag, values.tolist(), np.asarray(steps).ravel().tolist(), walls.tolist()
        )

    def histogram(self, tag: str, values: Any, step: int) -> None:
        from tensorboardX.summary import histogram

        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size and np.all(np.isfinite(values)):
            self._events.write_summary(histogram(tag, values, bins="auto"), step)

    def image(self, tag: str, image: Any, step: int) -> None:
        from tensorboardX.summary import image as image_summary

        summary = image_summary(tag, to_uint8_hwc(image), dataformats="HWC")
        self._events.write_summary(summary, step)

    def video(self, tag: str, frames: Any, step: int, fps: int = 10) -> None:
        from tensorboardX.proto.summary_pb2 import Summary

        frames = np.asarray(frames)
        gif = encode_gif(frames, fps)
        h, w = frames.shape[-2:]
        image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=gif)
        self._events.write_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def text(self, tag: str, text: str, step: int) -> None:
        """Markdown ``text`` under exactly ``tag`` (the Text dashboard's string tensor)."""
        from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboardX.proto.tensor_pb2 import TensorProto
        from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
        from tensorboardX.proto.types_pb2 import DT_STRING

        plugin = SummaryMetadata.PluginData(plugin_name="text")
        tensor = TensorProto(
            dtype=DT_STRING,
            string_val=[text.encode()],
            tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]),
        )
        value = Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin), tensor=tensor)
        self._events.write_summary(Summary(value=[value]), step)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """The run's hyperparameters and final metrics (see `write_hparams`)."""
        if self.writes:
            write_hparams(self.logdir, hparams, metrics)

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._events.close()


def write_hparams(logdir: str | os.PathLike, hparams: dict[str, Any], metrics: dict[str, Any]):
    """Write ``hparams`` and the final ``metrics`` of the run in ``logdir`` to its
    ``hparams`` sub-run, where TensorBoard's HParams dashboard finds them.

    Values that are not numbers, strings or booleans are written as text (``None`` as
    ``"none"``); metrics that are not finite numbers are left out (the dashboard cannot show
    them).
    """
    from tensorboardX.summary import hparams as hparams_summaries

    def value(v: Any) -> Any:
        if v is None:
            return "none"
        if isinstance(v, (bool, int, float, str)):
            return v
        return str(v)

    flat = {str(k): value(v) for k, v in hparams.items()}
    numbers = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
            continue
        if np.isfinite(float(v)):
            numbers[str(k)] = float(v)
    sub = EventFileWriter(os.path.join(os.fspath(logdir), "hparams"))
    try:
        for summary in hparams_summaries(flat, numbers):
            sub.write_summary(summary, 0)
        for name, v in numbers.items():
            sub.write_scalar(name, v, 0)
    finally:
        sub.close()
