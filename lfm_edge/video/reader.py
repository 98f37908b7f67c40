"""Reading beside the model, on a thread of its own, so that decoding never sits between two captions.

* live: LatestFrameReader decodes frames as they come and keeps only the newest, so a slow model never falls behind
  (the lag stays one caption long) and a camera's buffer never fills up.
* file: AheadReader decodes ahead, in order, and hands out only the frames due for a caption, already converted
  (RGB and thumbnail): the next frame is ready when the model is free.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

from lfm_edge.errors import VideoError
from lfm_edge.video.frames import Frame

_PUT_POLL_S = 0.1  # how often a reader waiting for room checks whether it was stopped

log = logging.getLogger(__name__)


class LatestFrameReader:
    """Runs `frames` on its own thread (which also closes it, and so releases the source). `newest()` hands out the
    newest frame not handed out yet; `dropped` counts frames replaced before anyone took them."""

    def __init__(self, frames: Iterator[Frame], name: str) -> None:
        self._frames = frames
        self._name = name
        self._condition = threading.Condition()
        self._latest: Frame | None = None
        self._taken = -1
        self._error: BaseException | None = None
        self._done = False
        self._stop = threading.Event()
        self.read = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="lfm-edge-video-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self._frames:
                with self._condition:
                    if self._latest is not None and self._latest.index > self._taken:
                        self.dropped += 1
                    self._latest = frame
                    self.read += 1
                    self._condition.notify_all()
                if self._stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer's thread by newest()
            self._error = exc
        finally:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()
            with self._condition:
                self._done = True
                self._condition.notify_all()

    def newest(self, timeout_s: float) -> Frame | None:
        """The newest frame not yet taken, waiting for one up to timeout_s; None once the source ended. Raises
        VideoError when no frame came for timeout_s (a stalled camera or stream) or the reader failed."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while True:
                latest = self._latest
                if latest is not None and latest.index > self._taken:
                    self._taken = latest.index
                    return latest
                if self._error is not None:
                    if isinstance(self._error, VideoError):
                        raise self._error
                    raise VideoError(f"{self._name!r}: reading failed: {self._error}") from self._error
                if self._done:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise VideoError(f"{self._name!r}: no frame for {timeout_s:g} s: the camera or stream stalled")
                self._condition.wait(remaining)

    def stop(self, timeout_s: float) -> bool:
        """Asks the thread to stop after its current frame and waits up to timeout_s; True once it has ended (the
        source released). A read blocked in the device is left to its own timeout (the thread is a daemon)."""
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("%s: the reader is still blocked in a read; it will end at the read timeout", self._name)
            return False
        return True


def _prepared(frame: Frame) -> Frame:
    """The frame with its RGB image and thumbnail made now (on the reader's thread) rather than when asked for."""
    rgb, thumbnail = frame.rgb(), frame.thumbnail()
    return Frame(frame.time, frame.index, frame.captured, lambda: rgb, lambda: thumbnail)


class AheadReader:
    """Runs `frames` on its own thread (which also closes it), keeping up to `depth` frames that `due` selects
    (called on that thread, in order) ready, converted. Iterate it for those frames, in order; `read` counts every
    frame decoded and `last_time` is the time of the last one (a file's end), both final once iteration ended."""

    def __init__(self, frames: Iterator[Frame], due: Callable[[Frame], bool], depth: int = 2) -> None:
        self._frames = frames
        self._due = due
        self._ready: queue.Queue[Frame | None] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.read = 0
        self.last_time: float | None = None
        self._thread = threading.Thread(target=self._run, name="lfm-edge-video-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self._frames:
                self.read += 1
                self.last_time = frame.time
                if self._due(frame) and not self._put(_prepared(frame)):
                    break
        except BaseException as exc:  # handed to the consumer's thread by __next__
            self._error = exc
        finally:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()
            self._put(None)

    def _put(self, item: Frame | None) -> bool:
        """Waits for room (the model is busy); False once stopped."""
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=_PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self._ready.get()) is not None:
            yield frame
        self._thread.join()
        if self._error is not None:
            raise self._error

    def stop(self, timeout_s: float) -> bool:
        """Asks the thread to stop after its current frame and waits up to timeout_s; True once it has ended (the
        source released)."""
        self._stop.set()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
