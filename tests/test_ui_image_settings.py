"""The `image_settings` request extension the page's settings panel sends: it changes how the request's images are
cut (fewer prompt positions with a smaller budget and no tiles), and a bad combination is a 400 naming it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.server_support import data_uri, running_server


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_image_settings_change_the_prompt_and_bad_ones_are_refused(
    converted: Callable[..., tuple[Path, Path]],
) -> None:
    image = data_uri("photo_1024x768.jpg")
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}},
                                           {"type": "text", "text": "Describe."}]}  # fmt: skip
    chat = {"messages": [message], "max_tokens": 1}
    small = {"max_image_tokens": 64, "min_image_tokens": 32, "do_image_splitting": False}
    with running_server(converted) as (server, _):
        url = server.url + "/v1/chat/completions"
        status, default = _post(url, chat)
        assert status == 200
        status, reduced = _post(url, chat | {"image_settings": small})
        assert status == 200
        # Tiles plus a thumbnail by default; one image of at most 64 tokens with the knobs.
        assert reduced["usage"]["prompt_tokens"] < default["usage"]["prompt_tokens"] - 100
        status, refused = _post(url, chat | {"image_settings": {"min_image_tokens": 300, "max_image_tokens": 64}})
        assert (
            status == 400 and "min_image_tokens=300 is larger than max_image_tokens=64" in refused["error"]["message"]
        )
        status, refused = _post(server.url + "/v1/detect", {"image": image, "query": "cat",
                                                            "image_settings": {"max_tiles": 0}})  # fmt: skip
        assert status == 400 and refused["error"]["param"] == "image_settings.max_tiles"
