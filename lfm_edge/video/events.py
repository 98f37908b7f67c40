"""The typed events `watch` yields, in order: one Started, then Caption and Unchanged events, then one Finished
(absent when the caller stops the generator or an error ends it). `to_dict` gives a JSON-ready record."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["live", "file"]


@dataclass(frozen=True)
class Started:
    source: str
    kind: str  # file | camera | stream | images
    mode: Mode
    width: int | None
    height: int | None
    fps: float | None
    duration_s: float | None  # None for cameras and streams


@dataclass(frozen=True)
class Caption:
    """`video_time`: the captioned frame's time (seconds). `wall_time`: time.time() when the caption was ready.
    `latency_s`: from the frame's decoding to the caption (live: the caption's age when shown). `compute_s`: the
    model's share. `frames_dropped` (live: frames replaced by newer ones while the model was busy) and
    `frames_unchanged` (frames skipped as too similar) count since the previous caption."""

    index: int
    text: str
    video_time: float
    wall_time: float
    latency_s: float
    compute_s: float
    frames_dropped: int
    frames_unchanged: int


@dataclass(frozen=True)
class Unchanged:
    """A frame skipped because it barely changed since the last caption (live: at most one event a second)."""

    video_time: float
    wall_time: float
    change: float  # share of thumbnail cells that changed (see lfm_edge.video.frames)


@dataclass(frozen=True)
class Finished:
    captions: int
    frames_read: int
    frames_dropped: int
    frames_unchanged: int
    video_seconds: float
    wall_seconds: float


WatchEvent = Started | Caption | Unchanged | Finished


def to_dict(event: WatchEvent) -> dict[str, Any]:
    return {"type": type(event).__name__.lower(), **dataclasses.asdict(event)}
