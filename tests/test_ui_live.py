"""GET /v1/watch/events over real HTTP (no browser): events in order, the end of a finite source, a failing source
as an error event, the source closed when its last viewer leaves, and 404 where no source is configured."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lfm_edge.server.ui import live
from lfm_edge.server.ui.live import LiveEvent, jpeg_bytes
from tests.server_support import running_server


def _events(url: str, count: int) -> list[dict[str, Any]]:
    """Data events until `count` of them or the end/error of the source, then the connection is closed."""
    out: list[dict[str, Any]] = []
    with urllib.request.urlopen(url + "/v1/watch/events", timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("data: "):
                out.append(json.loads(line.removeprefix("data: ")))
                if len(out) == count or "end" in out[-1] or "error" in out[-1]:
                    break
    return out


def test_a_finite_source_streams_its_captions_then_the_end(converted: Callable[..., tuple[Path, Path]]) -> None:
    frame = np.zeros((8, 12, 3), np.uint8)

    def feed() -> Iterator[LiveEvent]:
        for index in range(3):
            yield LiveEvent(time=float(index), text=f"caption {index}", jpeg=jpeg_bytes(frame) if index else None)

    with running_server(converted, live_feed=feed) as (server, _):
        events = _events(server.url, 100)
    # A viewer gets the newest caption only (it may skip some), in order, and always the last one before the end.
    texts = [event["text"] for event in events[:-1]]
    assert texts == sorted(texts) and texts[-1] == "caption 2" and len(set(texts)) == len(texts)
    assert events[-2]["frame"].startswith("data:image/jpeg;base64,") and events[-2]["time"] == 2.0
    assert events[-1] == {"end": True}


def test_a_failing_source_becomes_an_error_event(converted: Callable[..., tuple[Path, Path]]) -> None:
    def feed() -> Iterator[LiveEvent]:
        yield LiveEvent(time=0.0, text="first")
        raise OSError("camera unplugged")

    with running_server(converted, live_feed=feed) as (server, _):
        events = _events(server.url, 2)
    assert events[0]["text"] == "first"
    assert events[1]["error"]["code"] == "live_failed" and "camera unplugged" in events[1]["error"]["message"]


def test_the_source_is_released_when_the_last_viewer_leaves(converted: Callable[..., tuple[Path, Path]]) -> None:
    released = threading.Event()

    def feed() -> Iterator[LiveEvent]:
        try:
            index = 0
            while True:
                index += 1
                yield LiveEvent(time=float(index), text=f"caption {index}")
                threading.Event().wait(0.05)
        finally:
            released.set()

    with running_server(converted, live_feed=feed) as (server, _):
        assert len(_events(server.url, 2)) == 2
        assert released.wait(timeout=30), "the source was still open with nobody watching"
        released.clear()
        assert len(_events(server.url, 1)) == 1  # a new viewer opens it again


def test_no_source_is_a_404_that_says_how_to_get_one(converted: Callable[..., tuple[Path, Path]]) -> None:
    with running_server(converted) as (server, _), pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(server.url + "/v1/watch/events", timeout=30)
    error = json.loads(caught.value.read())["error"]
    assert caught.value.code == 404 and error["code"] == "no_live_source" and "--watch SOURCE" in error["message"]


def test_an_open_stream_ends_by_itself_so_shutdown_is_not_held(
    converted: Callable[..., tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn's graceful shutdown waits for open responses: a live stream must end (and the page reconnect)."""
    monkeypatch.setattr(live, "STREAM_S", 1.0)

    def feed() -> Iterator[LiveEvent]:
        index = 0
        while True:
            index += 1
            yield LiveEvent(time=float(index), text=f"caption {index}")
            threading.Event().wait(0.05)

    with running_server(converted, live_feed=feed) as (server, _):
        events = _events(server.url, 10_000)
        assert events[-1] == {"reconnect": True} and all("text" in event for event in events[:-1])
        viewer = threading.Thread(target=_events, args=(server.url, 10_000), daemon=True)
        viewer.start()
        server.close()
        assert not server.thread.is_alive(), "an open live stream held the server's shutdown"
