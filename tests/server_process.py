"""`lfm-edge serve` in a subprocess on a free loopback port, for tests whose failure would be a crash (a segfault
or an abort must fail the test, not kill pytest), that read the server's RSS, or that read its log."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MODEL_ID = "lfm-tiny"


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    address: tuple[str, int]
    log: list[str] = field(default_factory=list)

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_mb(self) -> float:
        """Resident memory of the server now (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS in /proc status")

    def log_size(self) -> int:
        return sum(len(line) + 1 for line in list(self.log))


def _drain(stream: Any, into: list[str]) -> None:
    for line in stream:
        into.append(line)


@contextmanager
def serve_process(model: Path, *options: str, verbose: bool = True) -> Iterator[ServerProcess]:
    command = [sys.executable, "-m", "lfm_edge.cli", *(["-v"] if verbose else []), "serve", str(model),
               "--port", "0", "--alias", MODEL_ID, "--threads", "2", *options]  # fmt: skip
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=environment)
    assert process.stderr is not None
    log: list[str] = []
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                raise AssertionError(f"the server exited ({process.wait()}) before serving:\n{''.join(log)[-3000:]}")
            log.append(line)
            if " serves " in line and "http://" in line:
                url = line.split(" at ", 1)[1].split("/v1", 1)[0]
        assert url is not None, "the server did not start in time"
        threading.Thread(target=_drain, args=(process.stderr, log), daemon=True).start()
        parts = urlsplit(url)
        yield ServerProcess(process, (parts.hostname or "", parts.port or 0), log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def call(address: tuple[str, int], path: str, body: Any = None, method: str = "POST",
         timeout: float = 120) -> tuple[int, Any]:  # fmt: skip
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    is_json = (response.getheader("content-type") or "").startswith("application/json")
    return response.status, json.loads(data) if is_json else data.decode(errors="replace")


def chat(text: str = "Hi", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL_ID, "messages": [{"role": "user", "content": text}], "max_tokens": 2, **extra}


def assert_error(status: int, body: Any, expected_status: int, code: str) -> dict[str, Any]:
    assert status == expected_status, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"], error
    assert error["code"] == code, error
    return error


def short_request_seconds(address: tuple[str, int]) -> float:
    """Seconds a 2-token chat takes now; asserts it is answered with 200."""
    started = time.monotonic()
    status, body = call(address, "/v1/chat/completions", chat())
    assert status == 200, body
    return time.monotonic() - started


def wait_idle(address: tuple[str, int], within_s: float) -> float:
    """Seconds until /health reports nothing pending (asserts it happens within `within_s`)."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        status, body = call(address, "/health", method="GET")
        if status == 200 and body["pending"] == 0:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"the server still had work pending after {within_s} s")
