"""Video sources: a file, a camera device, a stream URL (only when allowed) or a folder/glob of images, each an
iterator of Frames that releases what it holds when closed.

Decoding is PyAV's (the `video` extra; its wheels ship ffmpeg). A file is read in order; `realtime` paces it to its
own timestamps, as a camera would deliver it. Rotation metadata (a phone's display matrix) is applied.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lfm_edge.errors import VideoError
from lfm_edge.video.frames import THUMBNAIL_SIZE, Frame

if TYPE_CHECKING:
    import av.container
    import av.video.frame

log = logging.getLogger(__name__)

SourceKind = Literal["file", "camera", "stream", "images"]
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class SourceOptions:
    """`allow_stream`: accept rtsp/http/... URLs (they reach the network). `fps`: frame rate given to image
    folders. `realtime`: pace a file to its timestamps (a file-backed live source). `timeout_s`: how long a camera or
    stream may go without a frame. `input_format`: ffmpeg's -f for cameras and streams; `input_options`:
    ffmpeg's input options (e.g. video_size=640x480, framerate=30, probesize=32)."""

    allow_stream: bool = False
    fps: float = 1.0
    realtime: bool = False
    timeout_s: float = 10.0
    input_format: str | None = None
    input_options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceInfo:
    name: str
    kind: SourceKind
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration_s: float | None = None

    @property
    def live(self) -> bool:
        return self.kind in ("camera", "stream")


class VideoSource:
    """Iterate `frames()` once; `close()` (or the with-block) releases the file, camera or connection."""

    info: SourceInfo

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Releases the source; safe to call more than once."""

    @property
    def closed(self) -> bool:
        return False

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def classify(spec: str) -> SourceKind:
    if spec.isdigit() or spec.startswith(("/dev/video", "video=")):
        return "camera"
    if _URL.match(spec):
        return "stream"
    if Path(spec).is_dir() or (any(c in spec for c in "*?[") and not Path(spec).exists()):
        return "images"
    return "file"


def open_source(spec: str | os.PathLike[str], options: SourceOptions | None = None) -> VideoSource:
    """A video file, a camera (`0`, `/dev/video0`, `video=NAME` on Windows), a stream URL (with allow_stream) or a
    folder/glob of images. Raises VideoError naming the problem."""
    from lfm_edge.video.images import open_images

    options = options or SourceOptions()
    text = os.fspath(spec)
    kind = classify(text)
    if kind == "images":
        return open_images(text, options.fps)
    if kind == "stream" and not options.allow_stream:
        raise VideoError(f"{text!r} is a network stream: pass --allow-stream (allow_stream=True) to read it")
    if kind == "camera":
        target, input_format = _camera_target(text, options)
        container = _open_container(target, kind, input_format, options)
    elif kind == "stream":
        container = _open_container(text, kind, options.input_format, options)
    else:
        _check_file(text)
        container = _open_container(text, kind, None, options)
    return ContainerSource(container, _info(container, text, kind), options.realtime and kind == "file")


def _check_file(text: str) -> None:
    path = Path(text)
    if not path.exists():
        raise VideoError(f"no such video file: {text!r}")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError(f"{text!r} is empty (0 bytes): not a video")


def _camera_target(text: str, options: SourceOptions) -> tuple[str, str | None]:
    if options.input_format:
        return text, options.input_format
    if text.startswith("video="):
        return text, "dshow"
    if sys.platform == "darwin":
        return text, "avfoundation"
    if sys.platform == "win32":
        raise VideoError(f"camera {text!r}: on Windows name the camera as video=NAME (DirectShow device name)")
    device = text if text.startswith("/dev/") else f"/dev/video{text}"
    if not _device_exists(device):
        raise VideoError(f"camera {device} does not exist: is it connected? (`ls /dev/video*` lists cameras)")
    return device, "v4l2"


def _device_exists(device: str) -> bool:
    return os.path.exists(device)


def import_av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise VideoError("video needs the `video` extra: pip install 'lfm-edge[video]'") from exc
    return av


def _open_container(
    target: str, kind: SourceKind, input_format: str | None, options: SourceOptions
) -> av.container.InputContainer:
    pyav = import_av()
    what = f"{kind} {target!r}"
    live = kind in ("camera", "stream")
    try:
        container: av.container.InputContainer = pyav.open(
            target,
            format=input_format,
            options=dict(options.input_options),
            timeout=(options.timeout_s, options.timeout_s) if live else None,
        )
    except OSError as exc:  # PyAV's errors are OSErrors carrying ffmpeg's errno
        raise _open_error(what, exc) from exc
    except pyav.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise VideoError(f"cannot open {what}: {reason} (not a video, or damaged)") from exc
    try:
        _check_decodable(container, what)
    except BaseException:
        container.close()
        raise
    return container


def _open_error(what: str, exc: OSError) -> VideoError:
    reason = getattr(exc, "strerror", None) or str(exc)
    if exc.errno == errno.ENOENT:
        return VideoError(f"{what} does not exist")
    if exc.errno == errno.EBUSY:
        return VideoError(f"{what} is busy: another program is using it; close that program and retry")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return VideoError(f"cannot open {what}: permission denied (on Linux, join the `video` group)")
    if exc.errno in (errno.ETIMEDOUT, errno.EIO):
        return VideoError(f"cannot open {what}: {reason} (no answer: check the address or the device)")
    return VideoError(f"cannot open {what}: {reason} (not a video, or damaged)")


def _check_decodable(container: av.container.InputContainer, what: str) -> None:
    if not container.streams.video:
        raise VideoError(f"{what} has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoError(f"{what}: ffmpeg has no decoder for its video codec; re-encode it (e.g. to H.264)")


def _info(container: av.container.InputContainer, name: str, kind: SourceKind) -> SourceInfo:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    duration = None
    if kind == "file":
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
    width, height = stream.codec_context.width, stream.codec_context.height
    return SourceInfo(name, kind, width or None, height or None, float(rate) if rate else None, duration)


class ContainerSource(VideoSource):
    def __init__(self, container: av.container.InputContainer, info: SourceInfo, realtime: bool = False) -> None:
        self.info = info
        self._container = container
        self._realtime = realtime
        self._closed = False
        self._reading = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        # While frames() runs (on a reader thread) the container is closed by frames() itself when it ends: closing
        # it under a blocked read from another thread is not safe in ffmpeg.
        if not self._closed and not self._reading:
            self._closed = True
            self._container.close()

    def frames(self) -> Iterator[Frame]:
        stream = self._container.streams.video[0]
        # Frames are decoded beside the model (a reader thread, live and file mode): one decoder thread leaves the
        # cores to llama.cpp, whose threads wait on each other (a core taken by a decoder thread stalls them all).
        stream.codec_context.thread_count = 1
        start = (
            float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else None
        )
        fps = self.info.fps or 30.0
        count = 0
        video_time = 0.0
        wall_start = time.monotonic()
        self._reading = True
        try:
            for decoded in self._decoded():
                stamp = decoded.time if decoded.time is not None else count / fps
                start = stamp if start is None else start
                video_time = max(0.0, stamp - start)
                if self._realtime:
                    _sleep_until(wall_start + video_time)
                yield _frame(decoded, video_time, count)
                count += 1
        finally:
            self._reading = False
            self.close()
        if count == 0:
            raise VideoError(f"{self.info.kind} {self.info.name!r} has no decodable video frame (empty or damaged)")
        duration = self.info.duration_s
        if duration is not None and video_time < duration - 1.0:
            log.warning("%s: frames end at %.1f s of its %.1f s: truncated?", self.info.name, video_time, duration)

    def _decoded(self) -> Iterator[av.video.frame.VideoFrame]:
        av = import_av()
        stream = self._container.streams.video[0]
        try:
            for packet in self._container.demux(stream):
                try:
                    yield from packet.decode()
                except av.error.InvalidDataError as exc:
                    log.warning("%s: skipped a damaged packet: %s", self.info.name, exc)
        except (OSError, av.error.FFmpegError) as exc:
            if self.info.live:
                raise VideoError(
                    f"{self.info.kind} {self.info.name!r} stopped: {exc} (disconnected or stalled)"
                ) from exc
            log.warning("%s: stopped reading early (truncated or damaged file?): %s", self.info.name, exc)


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _frame(decoded: av.video.frame.VideoFrame, video_time: float, index: int) -> Frame:
    def to_rgb() -> np.ndarray:
        image = decoded.to_ndarray(format="rgb24")
        quarter_turns = round((decoded.rotation or 0) / 90) % 4  # counter-clockwise, as np.rot90 turns
        return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image

    def to_thumbnail() -> np.ndarray:
        width, height = THUMBNAIL_SIZE
        small = decoded.reformat(width=width, height=height, format="gray", interpolation="AREA")
        return np.asarray(small.to_ndarray(), dtype=np.uint8).reshape(height, width)

    return Frame(video_time, index, time.monotonic(), to_rgb, to_thumbnail)
