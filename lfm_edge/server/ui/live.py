"""GET /v1/watch/events: the server's own camera or video, captioned, as server-sent events for the page's live view.

The source is a `LiveFeed`: a callable that opens the camera/video and returns an iterator of `LiveEvent`s (a
generator the hub closes to release the source). `lfm-edge serve --watch SOURCE` adapts the video loop
(lfm_edge.video) to it. One hub runs the feed on its own thread while anyone is watching and hands every viewer the
newest event only: a slow viewer skips captions, it never builds a queue, and the feed never waits for viewers. The
feed starts with the first viewer and is closed (camera released) once the last one has gone.

Each event is `data: {"time": seconds, "text": caption, "frame": "data:image/jpeg;base64,..." or null}`; when the
feed ends, `data: {"end": true}`; when it fails, `data: {"error": {...}}` in OpenAI's error shape (details logged);
after STREAM_S, `data: {"reconnect": true}` (the page opens a new stream at once).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from lfm_edge.errors import RequestError

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0  # an SSE comment this often keeps proxies from closing a quiet stream (a static scene)
# A stream ends after this long with {"reconnect": true} and the page reconnects at once: uvicorn's graceful
# shutdown waits for open responses, so an endless stream would hold Ctrl-C forever.
STREAM_S = 5.0
# The source stays open this long after its last viewer left, so a reconnecting page does not reopen the camera.
LINGER_S = 5.0


@dataclass(frozen=True)
class LiveEvent:
    """One caption: `time` in seconds of the source (video time, or since the camera opened), the caption `text`
    and the frame it describes as JPEG bytes (None: the page keeps the previous frame)."""

    time: float
    text: str
    jpeg: bytes | None = None

    def payload(self) -> dict[str, Any]:
        frame = f"data:image/jpeg;base64,{base64.b64encode(self.jpeg).decode()}" if self.jpeg else None
        return {"time": self.time, "text": self.text, "frame": frame}


LiveFeed = Callable[[], Iterator[LiveEvent]]


def jpeg_bytes(frame: Any, quality: int = 80) -> bytes:
    """An RGB uint8 array (HxWx3) or a PIL image -> JPEG bytes, for adapters turning video frames into events."""
    from PIL import Image

    image = frame if isinstance(frame, Image.Image) else Image.fromarray(frame)
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


class _Viewer:
    """One open event stream: holds only the newest caption (a slot, not a queue), and the end or error of the
    source apart from it, so the last caption before the end is never lost."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.latest: dict[str, Any] | None = None
        self.final: dict[str, Any] | None = None
        self.ready = asyncio.Event()

    def offer(self, message: dict[str, Any]) -> None:  # on the event loop
        if "end" in message or "error" in message:
            self.final = message
        else:
            self.latest = message
        self.ready.set()

    async def next(self, timeout: float) -> dict[str, Any] | None:
        if self.latest is None and self.final is None:
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except TimeoutError:
                return None
        self.ready.clear()
        message = self.latest if self.latest is not None else self.final
        if self.latest is not None:
            self.latest = None
        else:
            self.final = None
        return message


class LiveHub:
    """Runs `feed` on one thread while at least one viewer is connected, and fans its newest event out."""

    def __init__(self, feed: LiveFeed) -> None:
        self._feed = feed
        self._lock = threading.Lock()
        self._viewers: set[_Viewer] = set()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._left_at = 0.0  # time.monotonic() when the last viewer left
        self.last: dict[str, Any] | None = None

    def join(self, viewer: _Viewer) -> None:
        with self._lock:
            if self._closed.is_set():
                raise RequestError("the server is shutting down", 503, "server_shutting_down")
            self._viewers.add(viewer)
            if self.last is not None:
                viewer.offer(self.last)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="lfm-edge-live")
                self._thread.start()

    def leave(self, viewer: _Viewer) -> None:
        with self._lock:
            self._viewers.discard(viewer)
            self._left_at = time.monotonic()

    def close(self) -> None:
        self._closed.set()

    def _keep_going(self) -> bool:
        """False once nobody watches; the thread then counts as gone, so the next viewer starts a fresh one."""
        with self._lock:
            lingering = time.monotonic() - self._left_at < LINGER_S
            if (self._viewers or lingering) and not self._closed.is_set():
                return True
            self._thread = None
            return False

    def _publish(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.last = None if "end" in message or "error" in message else message
            for viewer in self._viewers:
                with contextlib.suppress(RuntimeError):  # RuntimeError: that viewer's event loop is gone
                    viewer.loop.call_soon_threadsafe(viewer.offer, message)

    def _run(self) -> None:
        events = self._feed()
        try:
            for event in events:
                self._publish(event.payload())
                if not self._keep_going():
                    return  # nobody left: release the source (a new viewer opens it again)
            self._publish({"end": True})
        except Exception as exc:
            log.error("the live source failed: %s: %s", type(exc).__name__, exc)
            error = {"message": f"the live source failed: {exc}", "type": "server_error", "code": "live_failed"}
            self._publish({"error": error})
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None


def _sse(message: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(message, ensure_ascii=False)}\n\n".encode()


async def _stream(hub: LiveHub, viewer: _Viewer) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_S
    try:
        yield b": live\n\n"  # the response starts at once, so the page knows it is connected
        while (left := deadline - loop.time()) > 0:
            message = await viewer.next(min(HEARTBEAT_S, left))
            if message is None:
                yield b": heartbeat\n\n"
                continue
            yield _sse(message)
            if "end" in message or "error" in message:
                return
        yield _sse({"reconnect": True})
    finally:
        hub.leave(viewer)


async def watch_events(request: Request) -> StreamingResponse:
    hub: LiveHub | None = request.app.state.live
    if hub is None:
        raise RequestError(
            "this server has no camera or video of its own: start it with `lfm-edge serve MODEL --watch SOURCE`",
            404,
            "no_live_source",
        )
    viewer = _Viewer(asyncio.get_running_loop())
    hub.join(viewer)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_stream(hub, viewer), media_type="text/event-stream", headers=headers)
