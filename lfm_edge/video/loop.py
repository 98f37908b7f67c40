"""The captioning loops behind `lfm-edge watch` and Model.watch: a generator of typed events (lfm_edge.video.events)
that a terminal, a subtitle writer or a web page consumes. Stopping it (close(), break, Ctrl-C) releases the source
and leaves complete subtitle files.

* live (cameras, streams, or a file with mode="live"): a reader thread keeps only the newest frame; whenever the
  model is free it captions the newest frame, unless it barely changed since the last caption (ChangeDetector).
* file: a frame every `every` seconds of video time, in order, as fast as the CPU allows; cue times are the
  video's own timestamps.

Speed by design (make bench-video measures each choice): frames get a small image budget (FRAME_KNOBS: at most 64
image tokens, no tiling), captions are short and greedy (WATCH_GENERATION), the instruction comes before the image and
is evaluated once (ModelCaptioner), the vision encoder is the fastest the model has (ONNX int8 when its file is
beside the mmproj: the `auto` backend), and decoding runs ahead on a reader thread in both modes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lfm_edge.engine import ImageBlock, Item
from lfm_edge.errors import ConfigError
from lfm_edge.generation import Completion, GenerationOptions, run_generation
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.prompt import RenderOptions
from lfm_edge.video.events import Caption, Finished, Started, Unchanged, WatchEvent
from lfm_edge.video.frames import MIN_CHANGE, ChangeDetector, Frame
from lfm_edge.video.reader import AheadReader, LatestFrameReader
from lfm_edge.video.sources import SourceInfo, SourceOptions, VideoSource, open_source
from lfm_edge.video.subtitles import SubtitleWriter, subtitle_format

WATCH_PROMPT = "Describe what you see in one short sentence."
FRAME_KNOBS: Mapping[str, Any] = {"min_image_tokens": 32, "max_image_tokens": 64, "do_image_splitting": False}
# A subtitle: greedy, at most 20 tokens (about 15 English words, the two 42-character lines a subtitle cue holds; a
# one-short-sentence answer usually ends before). Each token is a decode step (~29 ms on 2 cores, Q4_0): 32 tokens
# cost 0.35 s more per caption than 20 (make bench-video's choices table).
WATCH_GENERATION = GenerationOptions(max_tokens=20, sampling=SamplingParams(temperature=0.0))
_UNCHANGED_EVERY_S = 1.0  # live: at most one Unchanged event a second
_STOP_WAIT_S = 2.0

Captioner = Callable[[np.ndarray], str]


@dataclass(frozen=True)
class WatchOptions:
    """`mode`: "auto" (live for cameras and streams, file otherwise), "live" or "file". `every`: seconds of video
    between captions in file mode. `min_change`: share of thumbnail cells that must change for a new caption (0:
    caption regardless). `subtitles`: .srt / .vtt paths written as captions come. `knobs`: image settings of the
    frames (FRAME_KNOBS by default; given knobs are merged over them). `reuse_prefix`: evaluate the instruction once
    and restore it for every frame (False: evaluate the whole prompt each time; same captions, for measuring)."""

    prompt: str = WATCH_PROMPT
    every: float = 2.0
    mode: Literal["auto", "live", "file"] = "auto"
    min_change: float = MIN_CHANGE
    subtitles: tuple[str | Path, ...] = ()
    generation: GenerationOptions = WATCH_GENERATION
    knobs: Mapping[str, Any] = field(default_factory=dict)
    source: SourceOptions = field(default_factory=SourceOptions)
    reuse_prefix: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.every, int | float) and math.isfinite(self.every) and self.every > 0):
            raise ConfigError(f"every={self.every!r} is invalid: give the seconds between captions (> 0)")
        if self.mode not in ("auto", "live", "file"):
            raise ConfigError(f"mode={self.mode!r} is invalid: use 'auto', 'live' or 'file'")
        if not 0 <= self.min_change <= 1:
            raise ConfigError(f"min_change={self.min_change!r} is invalid: it is a share between 0 and 1")
        for path in self.subtitles:
            subtitle_format(Path(path))


class ModelCaptioner:
    """Captions a frame with a loaded Model: the same instruction, then the frame, every time. The prompt's text
    before the frame is evaluated once and its state kept (Engine.keep_prefix): each frame restores it and evaluates
    only the frame's embeddings and the few tokens after them."""

    def __init__(self, model: Any, options: WatchOptions) -> None:
        self.model = model
        self.prompt = options.prompt
        self.generation = options.generation
        self.reuse_prefix = options.reuse_prefix
        self.settings = model.image_settings(**{**FRAME_KNOBS, **options.knobs})
        self.last: Completion | None = None  # the last frame's completion (token counts, timings)

    def __call__(self, image: np.ndarray) -> str:
        started = time.perf_counter()
        content = [{"type": "text", "text": self.prompt}, {"type": "image", "image": image}]
        model = self.model
        with model.engine.lock:
            model.text.check_usable()
            built = model.prompts.build_timed([{"role": "user", "content": content}], RenderOptions(), self.settings)
            if self.reuse_prefix:
                model.engine.keep_prefix(_before_first_image(built.items))
            stream = run_generation(model.engine, built.items, self.generation, started, built.image_timings)
        text = " ".join(stream.text().split())
        self.last = stream.completion
        return text


def _before_first_image(items: Sequence[Item]) -> list[Item]:
    first = next((index for index, item in enumerate(items) if isinstance(item, ImageBlock)), len(items))
    return list(items[:first])


def watch(
    model: Any, source: str | Path | VideoSource, options: WatchOptions | None = None, **kw: Any
) -> Generator[WatchEvent, None, None]:
    """Captions `source` with a loaded Model; keywords fill WatchOptions (prompt=..., every=..., mode=...)."""
    options = dataclasses.replace(options or WatchOptions(), **kw)
    return watch_frames(ModelCaptioner(model, options), source, options)


@dataclass
class _Tally:
    captions: int = 0
    frames: int = 0
    dropped: int = 0
    unchanged: int = 0
    unchanged_since_caption: int = 0
    dropped_at_caption: int = 0
    last_time: float | None = None


def watch_frames(
    captioner: Captioner, source: str | Path | VideoSource, options: WatchOptions
) -> Generator[WatchEvent, None, None]:
    """The loop with any captioner (a function from an RGB frame to text): what `watch` runs."""
    writers = [SubtitleWriter(Path(path), options.every) for path in options.subtitles]
    live_file = options.mode == "live"
    started = time.monotonic()
    tally = _Tally()
    if isinstance(source, VideoSource):
        opened = source
    else:
        opened = open_source(source, dataclasses.replace(options.source, realtime=options.source.realtime or live_file))
    try:
        info = opened.info
        live = options.mode == "live" or (options.mode == "auto" and info.live)
        mode: Literal["live", "file"] = "live" if live else "file"
        yield Started(info.name, info.kind, mode, info.width, info.height, info.fps, info.duration_s)
        loop = _live_events if live else _file_events
        for event in loop(opened, captioner, options, tally):
            if isinstance(event, Caption):
                for writer in writers:
                    writer.add(event.video_time, event.text)
            yield event
        end = _end_time(tally, info, live)
        _finish(writers, end)
        writers = []
        yield Finished(tally.captions, tally.frames, tally.dropped, tally.unchanged, end or 0.0,
                       time.monotonic() - started)  # fmt: skip
    finally:
        opened.close()
        _finish([writer for writer in writers if writer.cues], tally.last_time)


def _finish(writers: list[SubtitleWriter], end: float | None) -> None:
    for writer in writers:
        writer.finish(end)


def _end_time(tally: _Tally, info: SourceInfo, live: bool) -> float | None:
    """Where the last cue ends: a file's last frame plus one frame (its duration, unless it ended early)."""
    if live or tally.last_time is None:
        return tally.last_time
    end = tally.last_time + (1 / info.fps if info.fps else 0.0)
    return min(end, info.duration_s) if info.duration_s and info.duration_s > tally.last_time else end


def _caption(captioner: Captioner, frame: Frame, tally: _Tally, dropped_total: int) -> Caption:
    began = time.monotonic()
    text = captioner(frame.rgb())
    done = time.monotonic()
    event = Caption(
        index=tally.captions,
        text=text,
        video_time=frame.time,
        wall_time=time.time(),
        latency_s=done - frame.captured,
        compute_s=done - began,
        frames_dropped=dropped_total - tally.dropped_at_caption,
        frames_unchanged=tally.unchanged_since_caption,
    )
    tally.captions += 1
    tally.unchanged_since_caption = 0
    tally.dropped_at_caption = dropped_total
    return event


class _EveryGrid:
    """Which frames are due in file mode: the first frame at or after each multiple of `every` (0, every, 2*every...),
    so a gap in the video does not shift later captions."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.due = 0.0

    def __call__(self, frame: Frame) -> bool:
        if frame.time + 1e-3 < self.due:
            return False
        self.due = (math.floor((frame.time + 1e-3) / self.every) + 1) * self.every
        return True


def _file_events(
    source: VideoSource, captioner: Captioner, options: WatchOptions, tally: _Tally
) -> Iterator[WatchEvent]:
    detector = ChangeDetector(options.min_change)
    # Decoding (every frame, due or not) runs ahead on the reader's thread while the model captions.
    reader = AheadReader(source.frames(), _EveryGrid(options.every))
    try:
        for frame in reader:
            tally.frames, tally.last_time = reader.read, frame.time
            thumbnail = frame.thumbnail()
            change = detector.change(thumbnail)
            if not detector.is_new(change):
                tally.unchanged += 1
                tally.unchanged_since_caption += 1
                yield Unchanged(frame.time, time.time(), change)
                continue
            detector.accept(thumbnail)
            yield _caption(captioner, frame, tally, 0)
        tally.frames, tally.last_time = reader.read, reader.last_time
    finally:
        reader.stop(_STOP_WAIT_S)


def _live_events(
    source: VideoSource, captioner: Captioner, options: WatchOptions, tally: _Tally
) -> Iterator[WatchEvent]:
    detector = ChangeDetector(options.min_change)
    reader = LatestFrameReader(source.frames(), source.info.name)
    last_unchanged_event = -math.inf
    try:
        while (frame := reader.newest(options.source.timeout_s)) is not None:
            tally.frames = reader.read
            tally.dropped = reader.dropped
            tally.last_time = frame.time
            thumbnail = frame.thumbnail()
            change = detector.change(thumbnail)
            if not detector.is_new(change):
                tally.unchanged += 1
                tally.unchanged_since_caption += 1
                if time.monotonic() - last_unchanged_event >= _UNCHANGED_EVERY_S:
                    last_unchanged_event = time.monotonic()
                    yield Unchanged(frame.time, time.time(), change)
                continue
            detector.accept(thumbnail)
            yield _caption(captioner, frame, tally, reader.dropped)
        tally.frames, tally.dropped = reader.read, reader.dropped
    finally:
        reader.stop(_STOP_WAIT_S)
