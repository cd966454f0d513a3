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

__all__ = ["Logger", "TensorBoardLogger", "NullLogger", "to_uint8_hwc", "encode_gif"]


@runtime_checkable
class Logger(Protocol):
    """What the trainer and the workflows write to. All ``step`` arguments are global steps."""

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


class TensorBoardLogger:
    """Writes TensorBoard event files under ``logdir`` (see `diffdyn.common`).

    Scalars are encoded directly, so logging every training step is cheap; histograms,
    images, videos and text are built with ``tensorboardX.summary``. Hyperparameters go to a
    ``hparams`` sub-run, as the HParams dashboard expects.
    """

    def __init__(
        self,
        logdir: str | os.PathLike,
        *,
        purge_step: int | None = None,
        flush_seconds: float = 10.0,
    ):
        self.logdir = os.fspath(logdir)
        self._events = EventFileWriter(
            self.logdir, purge_step=purge_step, flush_seconds=flush_seconds
        )
        self._series_time: dict[str, float] = {}

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
        from tensorboardX.summary import text as text_summary

        self._events.write_summary(text_summary(tag, text), step)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        from tensorboardX.summary import hparams as hparams_summaries

        flat = {
            k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()
        }
        metrics = {k: float(v) for k, v in metrics.items()}
        sub = EventFileWriter(os.path.join(self.logdir, "hparams"))
        try:
            for summary in hparams_summaries(flat, metrics):
                sub.write_summary(summary, 0)
            for name, value in metrics.items():
                sub.write_scalar(name, value, 0)
        finally:
            sub.close()

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._events.close()
