"""Bad input through the page in a real headless Chromium: a picture over the server's limit, a file that is not a
picture, a wrong API key, a refused camera, plain http from another machine, the server restarted mid-answer. Each
must end in a visible message, no spinner left turning, and a server that still answers."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from lfm_edge.server import Limits
from lfm_edge.server.run import RunningServer
from tests.server_support import API_KEY, running_server
from tests.ui_support import (
    by_id,
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
)

MAX_PIXELS = 1_000_000


@pytest.fixture(scope="module")
def server(converted: Callable[..., tuple[Path, Path]]) -> Iterator[RunningServer]:
    limits = Limits(max_image_pixels=MAX_PIXELS)
    with running_server(converted, limits, api_key=API_KEY, allowed_hosts=("pi.test",)) as (running, _):
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    # pi.test stands for the Pi's name on the LAN; it resolves to loopback, so no traffic leaves this machine.
    driver = start_browser(
        (
            "--use-fake-device-for-media-stream",
            "--deny-permission-prompts",
            "--host-resolver-rules=MAP pi.test 127.0.0.1",
        )
    )
    yield driver
    driver.quit()


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "/health", timeout=30) as response:
        return bool(json.load(response)["status"] == "ok")


def _settled(driver: WebDriver) -> bool:
    """No request running: the spinner is gone and Send is back."""
    return not visible(driver, "chat-spinner") and visible(driver, "send")


def _answered(driver: WebDriver, count: int) -> bool:
    timings = [node.text for node in driver.find_elements("css selector", ".message.assistant .timings")]
    return len(timings) == count and bool(timings[-1]) and _settled(driver)


def _answer_started(driver: WebDriver) -> bool:
    return any(node.text for node in driver.find_elements("css selector", ".message.assistant .text"))


def _send(driver: WebDriver, prompt: str) -> None:
    by_id(driver, "prompt").send_keys(prompt)
    by_id(driver, "send").click()


def test_a_picture_over_the_servers_limit_is_refused_in_words(
    server: RunningServer, browser: WebDriver, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_bytes((1600, 1000), (20, 160, 90)))
    open_page(browser, server.url, API_KEY)
    set_field(browser, "max_tokens", "4")
    by_id(browser, "file-input").send_keys(str(huge))
    _send(browser, "What is this?")
    wait_for(browser, lambda d: visible(d, "chat-error"))
    message = text_of(browser, "chat-error")
    assert "Too large for this server" in message and f"over the limit of {MAX_PIXELS}" in message
    assert _settled(browser)
    screenshot(browser, "bad-huge-image")
    assert _healthy(server.url)
    _send(browser, "Hello?")  # the refused picture is not sent again
    wait_for(browser, lambda d: _answered(d, 1))
    assert len(sent(browser, "/v1/chat/completions")[-1]["messages"]) == 1


def test_a_file_that_is_not_a_picture_is_named_and_never_sent(server: RunningServer, browser: WebDriver,
                                                               tmp_path: Path) -> None:  # fmt: skip
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    open_page(browser, server.url, API_KEY)
    by_id(browser, "file-input").send_keys(str(notes))
    wait_for(browser, lambda d: visible(d, "chat-error"))
    assert '"notes.txt" is not a picture' in text_of(browser, "chat-error")
    assert not browser.find_elements("css selector", "#attachments img")
    # A file that says it is a PNG and is not: the server's decoder says so, the page shows it.
    drop_files(browser, "view-chat", [("fake.png", "image/png", b"\x89PNG\r\n\x1a\n garbage")])
    wait_for(browser, lambda d: len(d.find_elements("css selector", "#attachments img")) == 1)
    _send(browser, "What is this?")
    wait_for(browser, lambda d: "cannot be read" in text_of(d, "chat-error"))
    assert _settled(browser) and _healthy(server.url)
    assert sent(browser, "/v1/chat/completions")  # the refusal came from the server, not the page


def test_a_wrong_api_key_is_asked_again_and_the_right_one_works(server: RunningServer, browser: WebDriver) -> None:
    open_page(browser, server.url)
    wait_for(browser, lambda d: visible(d, "key-panel"))
    assert "needs an API key" in text_of(browser, "key-message")
    by_id(browser, "key-input").send_keys("wrong-key-42")
    by_id(browser, "key-form").submit()
    wait_for(browser, lambda d: visible(d, "key-panel") and "refused" in text_of(d, "key-message"))
    assert text_of(browser, "server-status") == "API key needed"
    screenshot(browser, "bad-api-key")
    by_id(browser, "key-input").send_keys(API_KEY)
    by_id(browser, "key-form").submit()
    wait_for(browser, lambda d: text_of(d, "server-status") == "connected")
    assert not visible(browser, "key-panel")
    set_field(browser, "max_tokens", "4")
    _send(browser, "Hi")
    wait_for(browser, lambda d: _answered(d, 1))


def test_a_refused_camera_is_said_plainly(server: RunningServer, browser: WebDriver) -> None:
    open_page(browser, server.url, API_KEY, view="live")
    by_id(browser, "cam-start").click()
    wait_for(browser, lambda d: "permission was refused" in text_of(d, "cam-status"))
    assert not visible(browser, "cam-spinner") and visible(browser, "cam-start")
    screenshot(browser, "bad-camera-refused")


def test_plain_http_from_another_machine_says_why_there_is_no_camera(server: RunningServer, browser: WebDriver) -> None:
    port = server.url.rsplit(":", 1)[1]
    open_page(browser, f"http://pi.test:{port}", API_KEY, view="live")  # the Host check lets the named host in
    assert browser.execute_script("return window.isSecureContext") is False
    status = text_of(browser, "cam-status")
    assert "needs a secure page" in status and "ssh -L" in status and "pi.test" in status
    assert not by_id(browser, "cam-start").is_enabled()
    screenshot(browser, "bad-camera-plain-http")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(model: Path, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "lfm_edge.cli", "serve", str(model), "--port", str(port), "--threads", "2"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()  # the "serves ... at URL" line comes once it listens
    assert re.search(r"at http://\S+/v1", line), line
    return process


def test_a_server_restarted_mid_answer_is_recovered_from(converted: Callable[..., tuple[Path, Path]],
                                                         browser: WebDriver) -> None:  # fmt: skip
    text, _ = converted("official-2.5", "f16")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = _serve(text, port)
    try:
        open_page(browser, url, None)
        wait_for(browser, lambda d: text_of(d, "server-status") == "connected")
        set_field(browser, "max_tokens", "4000")
        _send(browser, "Tell a long story.")
        wait_for(browser, _answer_started)
        process.send_signal(signal.SIGKILL)  # a crash or a restart, mid-answer
        process.wait(timeout=30)
        wait_for(browser, lambda d: "connection to the server was lost" in text_of(d, "chat-error"))
        assert _settled(browser)
        wait_for(browser, lambda d: "unreachable" in text_of(d, "server-status"))
        screenshot(browser, "bad-server-restarted")
        process = _serve(text, port)
        wait_for(browser, lambda d: text_of(d, "server-status") == "connected")
        set_field(browser, "max_tokens", "4")
        _send(browser, "Are you back?")
        wait_for(browser, lambda d: _answered(d, 1))
    finally:
        process.kill()
        process.wait(timeout=30)


def test_stop_ends_a_long_answer_and_the_next_one_is_served(server: RunningServer, browser: WebDriver) -> None:
    open_page(browser, server.url, API_KEY)
    set_field(browser, "max_tokens", "4000")
    _send(browser, "Tell a long story.")
    wait_for(browser, _answer_started)
    by_id(browser, "stop").click()
    wait_for(browser, lambda d: "stopped" in d.find_elements("css selector", ".message.assistant")[-1].text)
    assert _settled(browser)
    set_field(browser, "max_tokens", "4")
    _send(browser, "Short, please.")
    wait_for(browser, lambda d: _answered(d, 1))  # the stopped answer has no timings; this one has
    # The stopped answer stays in the conversation, as far as it got.
    assert [m["role"] for m in sent(browser, "/v1/chat/completions")[-1]["messages"]] == ["user", "assistant", "user"]
