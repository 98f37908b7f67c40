"""Issue K in the server: a request per slot, decoded together, and a client that never reads its stream."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import lfm_edge.model as api

Converted = Callable[..., tuple[Path, Path]]
PROMPTS = ["Hello", "Name a colour.", "Count to five.", "Why?"]  # no greedy near-ties (see test_threads.py)


@pytest.fixture(scope="module", params=[1, 4], ids=["1-slot", "4-slots"])
def model(request: pytest.FixtureRequest, converted: Converted) -> Iterator[api.Model]:
    text, mmproj = converted("official-2.5", "f16")
    context = api.ContextOptions(n_ctx=4096, n_threads=2, n_seq=request.param)
    with api.Model(api.ModelFiles(text, mmproj), api.LoadOptions(context=context)) as loaded:
        yield loaded


def test_the_server_runs_a_request_per_slot_and_reports_them(model: api.Model) -> None:
    from lfm_edge.server import ServerOptions
    from lfm_edge.server.run import start_in_thread

    server = start_in_thread(model, ServerOptions(model_ids=("tiny",), port=0))
    try:
        health = _health(server.url)
        assert health["slots"] == len(model.engine.slots) and health["slots_busy"] == health["queued"] == 0
        one_by_one = [_ask(server.url, prompt) for prompt in PROMPTS]
        with ThreadPoolExecutor(len(PROMPTS)) as pool:
            assert list(pool.map(lambda prompt: _ask(server.url, prompt), PROMPTS)) == one_by_one
    finally:
        server.close()


def test_a_client_that_never_reads_its_stream_does_not_hold_up_the_others(model: api.Model) -> None:
    """Its job generates into the server's per-request queue (never waiting for the socket), so the other slots go on
    stepping; its slot comes back when its max_tokens or its time budget (--request-timeout) ends."""
    if len(model.engine.slots) == 1:
        pytest.skip("one slot: a client that never reads holds it until its budget ends, by design (README)")
    from lfm_edge.server import ServerOptions
    from lfm_edge.server.options import Limits
    from lfm_edge.server.run import start_in_thread

    server = start_in_thread(model, ServerOptions(model_ids=("tiny",), port=0, limits=Limits(request_timeout_s=120)))
    silent = socket.socket()
    try:
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        address = urllib.parse.urlsplit(server.url)
        silent.connect((address.hostname, address.port))
        body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1500, "stream": True})
        silent.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        _wait_for(lambda: _health(server.url)["slots_busy"] == 1)
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda prompt: _ask(server.url, prompt), PROMPTS[:2]))
        assert answers == [_ask(server.url, prompt) for prompt in PROMPTS[:2]]
        _wait_for(lambda: _health(server.url)["slots_busy"] == 0)  # its generation ended, unread
    finally:
        silent.close()
        server.close()


def _health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/health", timeout=60) as response:
        return dict(json.loads(response.read()))


def _ask(url: str, prompt: str) -> str:
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 8, "temperature": 0}
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return str(json.loads(response.read())["choices"][0]["message"]["content"])


def _wait_for(condition: Callable[[], bool], seconds: float = 300) -> None:
    """A liveness check (something happens at all), not a timing one: the deadline is far beyond any slow machine."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never became true"
        time.sleep(0.05)
