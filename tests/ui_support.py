"""Shared by the browser tests: headless Chromium (Debian's chromium + chromium-driver, `make browser`) driven by
selenium, a fake camera clip, screenshots under build/ui/ and a fetch() spy that records what the page sends.

The browser is required, never optional: without it these tests fail with the command that installs it (a skip
would let a run without a browser look green).
"""

from __future__ import annotations

import base64
import io
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "ui"
WAIT_S = 90.0  # generous: the tiny model shares 2 cores with everything else the suite runs
# The flags for a root, headless, offline run; a fresh profile each time.
BROWSER_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1200,860",
)
CLIP_RGB = (230, 120, 30)  # the fake camera's background colour; the frames the page sends must show it


def browser_paths() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("the browser tests need Debian's chromium and chromium-driver: run `make browser`")
    return chromium, driver


def start_browser(extra_flags: Sequence[str] = ()) -> WebDriver:
    chromium, driver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='lfm-ui-')}", *extra_flags):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver))


def write_clip(path: Path, frames: int = 20, size: tuple[int, int] = (320, 240)) -> Path:
    """A Y4M clip (4:2:0) for Chromium's fake camera: an orange field with a white square moving across it."""
    width, height = size
    out = [f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()]
    for index in range(frames):
        rgb = np.empty((height, width, 3), np.uint8)
        rgb[:] = CLIP_RGB
        left = (index * 12) % (width - 60)
        rgb[90:150, left : left + 60] = 255
        y, cb, cr = np.asarray(Image.fromarray(rgb).convert("YCbCr")).transpose(2, 0, 1)
        half = (width // 2, height // 2)
        chroma = [np.asarray(Image.fromarray(plane).resize(half, Image.Resampling.BOX)) for plane in (cb, cr)]
        out += [b"FRAME\n", y.tobytes(), chroma[0].tobytes(), chroma[1].tobytes()]
    path.write_bytes(b"".join(out))
    return path


def open_page(driver: WebDriver, url: str, key: str | None = None, view: str = "chat") -> None:
    """Loads the page fresh (the key already stored when given, as after asking once) and installs the spy."""
    driver.get(f"{url}/#view=chat")
    driver.execute_script(
        "localStorage.clear(); if (arguments[0]) localStorage.setItem('lfm-edge.api-key', arguments[0]);", key
    )
    driver.get(f"{url}/?t={time.monotonic_ns()}#view={view}")
    install_spy(driver)
    if key is not None:
        wait_for(driver, lambda d: text_of(d, "server-status") == "connected")


def install_spy(driver: WebDriver) -> None:
    """Wraps fetch(): records each API request's JSON body and how many caption requests overlapped at most."""
    driver.execute_script(
        """
        window.__sent = []; window.__open = 0; window.__most = 0;
        const original = window.fetch;
        window.fetch = async (url, init) => {
          const body = init && typeof init.body === "string" ? JSON.parse(init.body) : null;
          if (body) window.__sent.push({url: String(url), body});
          const counted = body && body.stream !== true;
          if (counted) { window.__open += 1; window.__most = Math.max(window.__most, window.__open); }
          try {
            const response = await original(url, init);
            if (counted) await response.clone().text();
            return response;
          } finally { if (counted) window.__open -= 1; }
        };
        """
    )


def sent(driver: WebDriver, path: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = driver.execute_script(
        "return window.__sent.filter(r => r.url.endsWith(arguments[0])).map(r => r.body);", path
    )
    return bodies


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = WAIT_S) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def by_id(driver: WebDriver, element_id: str) -> WebElement:
    return driver.find_element("id", element_id)


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(by_id(driver, element_id).text)


def visible(driver: WebDriver, element_id: str) -> bool:
    return bool(by_id(driver, element_id).is_displayed())


def screenshot(driver: WebDriver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def set_field(driver: WebDriver, name: str, value: str) -> None:
    """Fills a settings-panel field (input, textarea or select) the way typing would."""
    driver.execute_script(
        "const f = document.getElementById('settings-form').elements.namedItem(arguments[0]); f.value = arguments[1];",
        name,
        value,
    )


def drop_files(driver: WebDriver, target_id: str, files: Sequence[tuple[str, str, bytes]], paste: bool = False) -> None:
    """Dispatches a real drop (or paste) event carrying files (name, MIME type, bytes) on an element."""
    payload = [(name, mime, base64.b64encode(data).decode()) for name, mime, data in files]
    driver.execute_script(
        """
        const [targetId, files, paste] = arguments;
        const transfer = new DataTransfer();
        for (const [name, type, b64] of files) {
          const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
          transfer.items.add(new File([bytes], name, {type}));
        }
        const target = document.getElementById(targetId);
        const event = paste
          ? new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true})
          : new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true});
        target.dispatchEvent(event);
        """,
        target_id,
        payload,
        paste,
    )


def png_bytes(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def decode_data_uri(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def csp_violations(driver: WebDriver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]
