"""Live video and camera captioning: `for event in model.watch(source, prompt=..., every=...)`.

Needs the `video` extra (PyAV for decoding, webvtt-py for SRT/VTT). See lfm_edge.video.loop for the two modes.
"""

from lfm_edge.video.events import Caption, Finished, Started, Unchanged, WatchEvent, to_dict
from lfm_edge.video.frames import MIN_CHANGE, ChangeDetector, Frame
from lfm_edge.video.loop import (
    FRAME_KNOBS,
    WATCH_GENERATION,
    WATCH_PROMPT,
    Captioner,
    ModelCaptioner,
    WatchOptions,
    watch,
    watch_frames,
)
from lfm_edge.video.sources import SourceInfo, SourceOptions, VideoSource, open_source
from lfm_edge.video.subtitles import SubtitleWriter

__all__ = [
    "FRAME_KNOBS",
    "MIN_CHANGE",
    "WATCH_GENERATION",
    "WATCH_PROMPT",
    "Caption",
    "Captioner",
    "ChangeDetector",
    "Finished",
    "Frame",
    "ModelCaptioner",
    "SourceInfo",
    "SourceOptions",
    "Started",
    "SubtitleWriter",
    "Unchanged",
    "VideoSource",
    "WatchEvent",
    "WatchOptions",
    "open_source",
    "to_dict",
    "watch",
    "watch_frames",
]
