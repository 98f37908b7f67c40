"""`lfm-edge serve --watch SOURCE`: the video loop captions a source for the page's live view (GET /v1/watch/events),
each caption with the frame it describes; the source is released when the feed ends."""

from __future__ import annotations

import base64
import io
import json
import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import lfm_edge.model as api
from lfm_edge.errors import ConfigError
from lfm_edge.server import ServerOptions
from lfm_edge.server.run import start_in_thread
from lfm_edge.server.ui.watch_feed import video_feed
from tests.server_support import MODEL_ID

IMAGES = Path(__file__).parent / "images"


def _events(url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with urllib.request.urlopen(url + "/v1/watch/events", timeout=120) as response:
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("data: "):
                out.append(json.loads(line.removeprefix("data: ")))
                if "end" in out[-1] or "error" in out[-1]:
                    break
    return out


def test_a_folder_of_frames_is_captioned_for_the_page_with_its_frames(
    converted: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, name in enumerate(["photo_1024x768.jpg", "l_320x240.png"]):
        shutil.copy(IMAGES / name, folder / f"{index:03d}{Path(name).suffix}")
    text, _ = converted("official-2.5", "f16")
    with api.load(text, n_ctx=4096, n_threads=2) as model:
        feed = video_feed(model, str(folder), mode="file", every=1.0, min_change=0.0)
        server = start_in_thread(model, ServerOptions(model_ids=(MODEL_ID,), port=0, live_feed=feed))
        try:
            events = _events(server.url)
        finally:
            server.close()
    assert events[-1] == {"end": True}, events[-1]
    captions = events[:-1]
    assert captions and all(isinstance(event["text"], str) and event["text"] for event in captions)
    # The newest caption always arrives; its frame is the picture it describes (the second file, 320x240).
    last = captions[-1]
    assert last["time"] == 1.0
    jpeg = base64.b64decode(last["frame"].removeprefix("data:image/jpeg;base64,"))
    assert Image.open(io.BytesIO(jpeg)).size == (320, 240)


def test_a_bad_watch_option_is_a_config_error_before_the_server_starts() -> None:
    with pytest.raises(ConfigError, match="every"):
        video_feed(object(), "0", every=-1)
