"""The page at `/` in a real headless Chromium against the tiny model: chat streaming, pictures, tool calls, detect
boxes, the server's live feed and the browser's (fake) camera. Screenshots of each view go to build/ui/."""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from lfm_edge.model import Model
from lfm_edge.server import Limits, ServerOptions
from lfm_edge.server.run import RunningServer, start_in_thread
from lfm_edge.server.ui.live import LiveEvent, jpeg_bytes
from tests.server_support import API_KEY, IMAGES, MODEL_ID, running_server
from tests.ui_support import (
    CLIP_RGB,
    by_id,
    csp_violations,
    decode_data_uri,
    drop_files,
    open_page,
    png_bytes,
    screenshot,
    sent,
    set_field,
    start_browser,
    text_of,
    visible,
    wait_for,
    write_clip,
)

PHOTO = IMAGES / "photo_1024x768.jpg"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def fake_feed() -> Iterator[LiveEvent]:
    """Stands in for the video loop: a moving square, a caption per frame, about three a second."""
    for index in itertools.count():
        frame = np.full((120, 160, 3), (40, 90, 200), np.uint8)
        frame[40:80, (index * 10) % 120 :][:, :40] = 255
        yield LiveEvent(time=index * 0.5, text=f"caption {index}: a square moves", jpeg=jpeg_bytes(frame))
        time.sleep(0.3)


@pytest.fixture(scope="module")
def served(converted: Callable[..., tuple[Path, Path]]) -> Iterator[tuple[RunningServer, Model]]:
    with running_server(converted, Limits(max_image_pixels=2_000_000), api_key=API_KEY, live_feed=fake_feed) as both:
        yield both


@pytest.fixture(scope="module")
def server(served: tuple[RunningServer, Model]) -> RunningServer:
    return served[0]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    clip = write_clip(tmp_path_factory.mktemp("clip") / "camera.y4m")
    camera = ("--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}",
              "--use-fake-ui-for-media-stream")  # fmt: skip
    driver = start_browser(camera)
    yield driver
    driver.quit()


def _get(url: str, key: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_page_needs_no_key_the_api_does_and_the_csp_is_strict(server: RunningServer) -> None:
    status, headers, body = _get(server.url + "/")
    assert status == 200 and b'src="/ui/app.js"' in body
    policy = headers["content-security-policy"]
    for rule in ("default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"):
        assert rule in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert _get(server.url + "/ui/app.js")[0] == 200
    assert _get(server.url + "/ui/secret.txt")[0] == 401  # only the page's own files are public
    assert _get(server.url + "/ui/secret.txt", API_KEY)[0] == 404
    assert _get(server.url + "/v1/models")[0] == 401
    assert _get(server.url + "/v1/watch/events", "wrong-key-123")[0] == 401


def test_no_ui_serves_the_api_only(served: tuple[RunningServer, Model]) -> None:
    other = start_in_thread(served[1], ServerOptions(model_ids=(MODEL_ID,), port=0, ui=False))
    try:
        assert _get(other.url + "/")[0] == 404
        assert _get(other.url + "/health")[0] == 200
    finally:
        other.close()


def _send(driver: WebDriver, prompt: str) -> None:
    by_id(driver, "prompt").send_keys(prompt)
    by_id(driver, "send").click()


def _last_answer(driver: WebDriver) -> str:
    replies = driver.find_elements("css selector", ".message.assistant")
    return str(replies[-1].text) if replies else ""


def _answered(driver: WebDriver) -> bool:
    timings = driver.find_elements("css selector", ".message.assistant .timings")
    return bool(timings) and bool(timings[-1].text) and not visible(driver, "chat-spinner")


def test_chat_streams_the_answer_and_shows_its_timings(server: RunningServer, browser: WebDriver) -> None:
    open_page(browser, server.url, API_KEY)
    assert text_of(browser, "model-name") == MODEL_ID
    set_field(browser, "max_tokens", "12")
    set_field(browser, "seed", "1")
    # Counts how often the answer's text changed while it streamed in.
    browser.execute_script(
        """window.__lengths = new Set();
        new MutationObserver(() => {
          const texts = document.querySelectorAll('.message.assistant .text');
          if (texts.length) window.__lengths.add(texts[texts.length - 1].textContent.length);
        }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
        // Whether Stop was offered while the answer streamed (a fast answer may end between two polls).
        window.__stopSeen = false;
        new MutationObserver(() => {
          if (!document.getElementById('stop').hidden) window.__stopSeen = true;
        }).observe(document.getElementById('stop'), {attributes: true});"""
    )
    _send(browser, "Say hello.")
    wait_for(browser, _answered)
    assert browser.execute_script("return window.__stopSeen"), "Stop was never offered while the answer streamed"
    lengths = browser.execute_script("return [...window.__lengths].filter(n => n > 0).length")
    assert lengths >= 2, "the answer arrived in one piece, not streamed"
    timings = driver_text(browser, ".message.assistant .timings")
    assert "first token" in timings and "tok/s" in timings
    assert not visible(browser, "stop") and visible(browser, "send")
    [body] = sent(browser, "/v1/chat/completions")
    assert body["stream"] is True and body["max_tokens"] == 12 and body["messages"][-1]["content"][0]["text"]
    screenshot(browser, "chat")


def driver_text(driver: WebDriver, selector: str) -> str:
    return str(driver.find_elements("css selector", selector)[-1].text)


def test_pictures_by_picker_drop_and_paste_travel_in_one_message_with_the_knobs(
    server: RunningServer, browser: WebDriver
) -> None:
    open_page(browser, server.url, API_KEY)
    set_field(browser, "max_tokens", "6")
    set_field(browser, "min_image_tokens", "32")
    set_field(browser, "max_image_tokens", "64")
    set_field(browser, "do_image_splitting", "false")
    by_id(browser, "file-input").send_keys(str(PHOTO))
    drop_files(browser, "view-chat", [("red.png", "image/png", png_bytes((64, 48), (255, 0, 0)))])
    drop_files(browser, "prompt", [("blue.png", "image/png", png_bytes((40, 40), (0, 0, 255)))], paste=True)
    wait_for(browser, lambda d: len(d.find_elements("css selector", "#attachments img")) == 3)
    _send(browser, "What differs between these?")
    wait_for(browser, _answered)
    assert len(browser.find_elements("css selector", ".message.user .picture")) == 3
    [body] = sent(browser, "/v1/chat/completions")
    parts = body["messages"][-1]["content"]
    assert [part["type"] for part in parts] == ["image_url"] * 3 + ["text"]
    assert all(part["image_url"]["url"].startswith("data:image/") for part in parts[:3])
    assert body["image_settings"] == {"min_image_tokens": 32, "max_image_tokens": 64, "do_image_splitting": False}
    assert not browser.find_elements("css selector", "#attachments img")
    screenshot(browser, "chat-pictures")


def test_a_bad_image_knob_is_the_servers_plain_400(server: RunningServer, browser: WebDriver) -> None:
    open_page(browser, server.url, API_KEY)
    set_field(browser, "min_image_tokens", "300")
    set_field(browser, "max_image_tokens", "64")
    by_id(browser, "file-input").send_keys(str(PHOTO))
    _send(browser, "Describe.")
    wait_for(browser, lambda d: visible(d, "chat-error"))
    assert "min_image_tokens=300 is larger than max_image_tokens=64" in text_of(browser, "chat-error")
    assert not visible(browser, "chat-spinner")


def test_tool_calls_are_shown_as_tool_calls(server: RunningServer, browser: WebDriver) -> None:
    open_page(browser, server.url, API_KEY)
    set_field(browser, "tools", json.dumps(TOOLS))
    set_field(browser, "grammar", 'root ::= <[10]> "[get_weather(city=\\"Paris\\")]" <[11]>')
    _send(browser, "Weather in Paris?")
    wait_for(browser, _answered)
    call = driver_text(browser, ".message.assistant .tool-call")
    assert "TOOL CALL" in call.upper() and 'get_weather({"city": "Paris"})' in call
    [body] = sent(browser, "/v1/chat/completions")
    assert body["tools"] == TOOLS


def test_detect_draws_each_box_where_the_answer_puts_it(server: RunningServer, browser: WebDriver) -> None:
    answer = '[{"label":"cat","bbox":[0.1,0.2,0.5,0.8]},{"label":"dog","bbox":[0.6,0.05,0.95,0.4]}]'  # forced
    open_page(browser, server.url, API_KEY, view="detect")
    set_field(browser, "grammar", "root ::= " + json.dumps(answer))
    set_field(browser, "do_image_splitting", "false")  # one small crop: the boxes do not depend on it
    set_field(browser, "max_image_tokens", "64")
    by_id(browser, "detect-file").send_keys(str(PHOTO))
    by_id(browser, "detect-query").send_keys("animal")
    wait_for(browser, lambda d: visible(d, "detect-frame"))
    by_id(browser, "detect-run").click()
    wait_for(browser, lambda d: len(d.find_elements("css selector", "#detect-boxes .box")) == 2)
    image = by_id(browser, "detect-image").rect
    expected = {"cat": (0.1, 0.2, 0.5, 0.8), "dog": (0.6, 0.05, 0.95, 0.4)}
    for box in browser.find_elements("css selector", "#detect-boxes .box"):
        x1, y1, x2, y2 = expected[box.text]
        rect = box.rect
        assert rect["x"] == pytest.approx(image["x"] + x1 * image["width"], abs=1.5)
        assert rect["y"] == pytest.approx(image["y"] + y1 * image["height"], abs=1.5)
        assert rect["width"] == pytest.approx((x2 - x1) * image["width"], abs=1.5)
        assert rect["height"] == pytest.approx((y2 - y1) * image["height"], abs=1.5)
    assert "2 boxes" in text_of(browser, "detect-summary") and "1024x768" in text_of(browser, "detect-summary")
    assert not visible(browser, "detect-spinner")
    screenshot(browser, "detect")


def test_the_servers_live_feed_shows_frames_and_captions_as_they_come(
    server: RunningServer, browser: WebDriver
) -> None:
    open_page(browser, server.url, API_KEY, view="live")
    seen: set[str] = set()

    def captions_changed(driver: WebDriver) -> bool:
        seen.add(text_of(driver, "server-caption"))
        return len(seen - {""}) >= 3

    wait_for(browser, captions_changed)
    frame = decode_data_uri(by_id(browser, "server-frame").get_attribute("src") or "")
    assert frame.size == (160, 120)
    assert "Caption at" in text_of(browser, "server-live-status")
    screenshot(browser, "live-server")


def test_the_browser_camera_is_captioned_one_frame_at_a_time(server: RunningServer, browser: WebDriver) -> None:
    open_page(browser, server.url, API_KEY, view="live")
    assert browser.execute_script("return window.isSecureContext")  # loopback counts as secure
    set_field(browser, "max_image_tokens", "64")
    set_field(browser, "max_tokens", "6")
    by_id(browser, "cam-start").click()
    # At least 3 captions (a fast model can move the count past 3 between two polls).
    wait_for(browser, lambda d: _captions_counted(text_of(d, "cam-stats")) >= 3)
    screenshot(browser, "live-camera")
    by_id(browser, "cam-stop").click()
    assert not visible(browser, "cam-video") and visible(browser, "cam-start")
    frames = sent(browser, "/v1/chat/completions")
    assert len(frames) >= 3 and frames[0]["max_tokens"] == 6
    assert browser.execute_script("return window.__most") == 1, "caption requests overlapped: frames were queued"
    picture = decode_data_uri(frames[0]["messages"][0]["content"][0]["image_url"]["url"]).convert("RGB")
    corner = np.asarray(picture)[:20, :20].reshape(-1, 3).mean(axis=0)
    assert np.allclose(corner, CLIP_RGB, atol=25), f"the frame sent is not the fake camera's: {corner}"
    assert text_of(browser, "cam-caption")


def _captions_counted(stats: str) -> int:
    """The count at the start of the camera's stats line ("N captions ...")."""
    first = stats.split(" ", 1)[0]
    return int(first) if first.isdigit() else 0


def test_nothing_came_from_another_origin_and_the_policy_blocked_nothing(
    server: RunningServer, browser: WebDriver
) -> None:
    open_page(browser, server.url, API_KEY)
    origins = browser.execute_script("return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert origins and set(origins) == {server.url}
    assert csp_violations(browser) == []
