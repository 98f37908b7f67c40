"""Clips for the video tests, made with PyAV: moving shapes, a cut, a static stretch, any codec/container, variable
frame rate, rotation metadata. Small sizes keep encoding and decoding fast."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class Clip:
    """`cut` and `static_from`: seconds where the scene changes and from which it stays still."""

    seconds: float = 6.0
    fps: int = 10
    width: int = 160
    height: int = 120
    cut: float = 2.0
    static_from: float = 3.5


def scene(clip: Clip, t: float) -> np.ndarray:
    """Moving shapes over a background that changes at the cut; from `static_from` on, the same image."""
    t = min(t, clip.static_from)
    image = np.zeros((clip.height, clip.width, 3), np.uint8)
    image[:] = (40, 60, 90) if t < clip.cut else (200, 180, 60)
    side = clip.height // 4
    x = int((clip.width - side) * ((t * 0.9) % 1.0))
    y = int((clip.height - side) * ((t * 0.4) % 1.0))
    image[y : y + side, x : x + side] = (250, 30, 30)
    cx = clip.width - side - x
    image[clip.height - side - y : clip.height - y, cx : cx + side] = (30, 230, 80)
    return image


def write_clip(path: Path, clip: Clip = Clip(), codec: str = "libx264", times: Sequence[float] | None = None,
               rotation: int | None = None) -> list[float]:  # fmt: skip
    """Encodes the clip (frame times `times`, default every 1/fps) and returns the frame times written."""
    times = list(times) if times is not None else [i / clip.fps for i in range(round(clip.seconds * clip.fps))]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=clip.fps)
        stream.width, stream.height = clip.width, clip.height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for t in times:
            frame = av.VideoFrame.from_ndarray(scene(clip, t), format="rgb24")
            frame.pts = round(t * 1000)
            frame.time_base = Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return times


def decoded_times(path: Path) -> list[float]:
    """The frame times ffmpeg reports, relative to the stream's start (what cue times must match)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        return [float(frame.time) - start for frame in container.decode(stream)]
