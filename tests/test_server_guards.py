"""Bad input against a real server: each gets the right status in OpenAI's error shape, and the server serves the
next request. Raw HTTP (http.client, sockets) so headers, bodies and timing are fully under the test's control."""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

import lfm_edge.model as api
from lfm_edge.server import Limits
from lfm_edge.server.run import RunningServer
from tests.server_support import MODEL_ID, running_server

LIMITS = Limits(max_body_bytes=256 * 1024, body_timeout_s=1.0, max_queue=0, max_images=16, max_messages=64)
ONE_PIXEL_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d4944415478da63f8cfc0f01f0005000201ffa1a9e4d90000000049454e44ae426082"
    )
).decode()


@pytest.fixture(scope="module")
def served(converted: Callable[..., tuple[Path, Path]]) -> Iterator[tuple[RunningServer, api.Model]]:
    with running_server(converted, limits=LIMITS, cors_origins=("http://app.example",)) as served:
        yield served


@pytest.fixture
def address(served: tuple[RunningServer, api.Model]) -> tuple[str, int]:
    parts = urlsplit(served[0].url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def call(address: tuple[str, int], path: str, body: Any = None, headers: dict[str, str] | None = None,
         method: str = "POST") -> tuple[int, dict[str, str], Any]:  # fmt: skip
    connection = http.client.HTTPConnection(*address, timeout=60)
    payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    connection.request(method, path, body=payload, headers=all_headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    headers = {k.lower(): v for k, v in response.getheaders()}
    is_json = headers.get("content-type", "").startswith("application/json")
    return response.status, headers, json.loads(data) if is_json else data.decode(errors="replace")


def chat(text: str = "Hi", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL_ID, "messages": [{"role": "user", "content": text}], "max_tokens": 2, **extra}


def assert_serving(address: tuple[str, int]) -> None:
    status, _, body = call(address, "/v1/chat/completions", chat())
    assert status == 200, body
    assert body["choices"][0]["message"]["role"] == "assistant"


def assert_openai_error(body: Any, code: str | None = None) -> None:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"messages": [', None),
        (b"", None),
        (b"\xff\xfe not json", None),
        (b"[1, 2]", None),
        (chat() | {"messages": "Hi"}, "messages"),
        (chat() | {"messages": []}, "messages"),
        (chat() | {"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        (chat() | {"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (chat() | {"max_tokens": "8"}, "max_tokens"),
        (chat() | {"max_tokens": 0}, "max_tokens"),
        (chat() | {"temperature": True}, "temperature"),
        (chat() | {"stream": "yes"}, "stream"),
        (chat() | {"stop": ["a"] * 40}, "stop"),
        (chat() | {"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
        (chat() | {"tool_choice": "required"}, "tool_choice"),
        (chat() | {"response_format": {"type": "json_schema"}}, "response_format"),
        (chat() | {"response_format": {"type": "json_object"}, "grammar": 'root ::= "x"'}, None),
    ],
)
def test_malformed_or_wrongly_typed_bodies_are_400(address: tuple[str, int], body: Any, param: str | None) -> None:
    status, _, answer = call(address, "/v1/chat/completions", body)
    assert status == 400, answer
    assert_openai_error(answer)
    if param is not None:
        assert answer["error"]["param"] == param
    assert_serving(address)


def test_a_declared_huge_body_is_413_before_it_is_read(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=30) as sock:
        head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {address[0]}\r\nContent-Length: {10**9}\r\n\r\n"
        sock.sendall(head.encode())
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert_serving(address)


def test_a_chunked_body_growing_past_the_limit_is_413(address: tuple[str, int]) -> None:
    chunk = b"x" * 32768
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {address[0]}\r\n".encode())
        sock.sendall(b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n")
        for _ in range(LIMITS.max_body_bytes // len(chunk) + 1):  # just over the limit, then silence
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        answer = sock.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert_serving(address)


def test_a_thousand_images_are_refused_without_decoding_one(address: tuple[str, int]) -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{ONE_PIXEL_PNG}"}}
    body = chat() | {"messages": [{"role": "user", "content": [image] * 1000 + [{"type": "text", "text": "?"}]}]}
    status, _, answer = call(address, "/v1/chat/completions", body)
    assert status == 400 and answer["error"]["code"] == "too_many_images"
    assert_serving(address)


def test_too_many_messages_is_400(address: tuple[str, int]) -> None:
    body = chat() | {"messages": [{"role": "user", "content": "x"}] * (LIMITS.max_messages + 1)}
    status, _, answer = call(address, "/v1/chat/completions", body)
    assert status == 400 and answer["error"]["code"] == "too_many_messages"


def test_an_oversized_image_is_413(address: tuple[str, int]) -> None:
    encoded = io.BytesIO()
    Image.new("1", (6001, 6001)).save(encoded, "PNG")  # 36,012,001 pixels, a few KB
    png = base64.b64encode(encoded.getvalue()).decode()
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}
    body = chat() | {"messages": [{"role": "user", "content": [image]}]}
    status, _, answer = call(address, "/v1/chat/completions", body)
    assert status == 413 and answer["error"]["code"] == "image_too_large", answer


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8080", "127.0.0.1.nip.io", "localhost.evil.example", "", "[::1"]
)
def test_hostile_host_headers_are_403(address: tuple[str, int], host: str) -> None:
    connection = http.client.HTTPConnection(*address, timeout=30)
    connection.putrequest("GET", "/v1/models", skip_host=True)
    connection.putheader("Host", host)
    connection.endheaders()
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 403 and body["error"]["code"] == "host_not_allowed"
    assert_serving(address)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:8080", "[::1]:80", "LOCALHOST.", "192.168.1.20:8080"])
def test_local_and_ip_host_headers_are_served(address: tuple[str, int], host: str) -> None:
    status, _, _ = call(address, "/v1/models", method="GET", headers={"Host": host})
    assert status == 200


def test_cors_only_for_the_configured_origin(address: tuple[str, int]) -> None:
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST"}
    status, headers, _ = call(address, "/v1/chat/completions", method="OPTIONS", headers=preflight)
    assert status == 200 and headers["access-control-allow-origin"] == "http://app.example"
    _, headers, _ = call(address, "/v1/models", method="GET", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in headers


def test_unknown_routes_and_methods_answer_in_openai_shape(address: tuple[str, int]) -> None:
    status, _, body = call(address, "/v1/completions", chat())
    assert status == 404
    assert_openai_error(body)
    status, _, body = call(address, "/v1/models", chat())
    assert status == 405
    assert_openai_error(body)


def test_a_slow_body_gets_408_while_others_are_served(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=30) as slow:
        slow.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {address[0]}\r\nContent-Length: 100\r\n\r\n{{".encode()
        )
        assert_serving(address)  # the stalled client blocks nobody
        answer = slow.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 408"), answer[:200]


def test_a_client_stalling_in_its_headers_blocks_nobody(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=30) as slow:
        slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        assert_serving(address)


def _open_stream(address: tuple[str, int], max_tokens: int) -> tuple[http.client.HTTPConnection, Any]:
    connection = http.client.HTTPConnection(*address, timeout=60)
    body = json.dumps(chat("Tell a long story.", max_tokens=max_tokens, stream=True, temperature=1.0)).encode()
    connection.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"data: ")  # generation has started
    return connection, response


def _pending(address: tuple[str, int]) -> int:
    return int(call(address, "/health", method="GET")[2]["pending"])


def test_a_full_queue_is_503_and_a_disconnect_stops_generation(
    address: tuple[str, int], served: tuple[RunningServer, api.Model]
) -> None:
    engine = served[1].engine
    connection, _ = _open_stream(address, max_tokens=4000)
    status, headers, body = call(address, "/v1/chat/completions", chat())
    assert status == 503 and headers["retry-after"] == str(LIMITS.retry_after_s)
    assert_openai_error(body, "server_busy")
    connection.close()  # the client goes away mid-stream
    deadline = time.monotonic() + 30
    while _pending(address) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pending(address) == 0
    assert engine.n_past < 1000, "generation stopped long before max_tokens"
    assert_serving(address)


def test_health_reports_and_concurrent_clients_all_get_answers(address: tuple[str, int]) -> None:
    """Four clients at once against a queue of 0: each gets 200 or 503, never anything else, and all finish."""
    statuses: list[int] = []

    def client() -> None:
        for _ in range(3):
            statuses.append(call(address, "/v1/chat/completions", chat())[0])

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == 12 and set(statuses) <= {200, 503} and 200 in statuses
    assert _pending(address) == 0


def test_requests_beyond_max_requests_get_a_json_503(converted: Callable[..., tuple[Path, Path]]) -> None:
    with running_server(converted, limits=Limits(max_requests=1, max_queue=8)) as (server, _):
        parts = urlsplit(server.url)
        address = (parts.hostname or "", parts.port or 0)
        connection, _ = _open_stream(address, max_tokens=4000)  # the one request allowed, streaming
        status, headers, body = call(address, "/health", method="GET")
        assert status == 503 and headers["retry-after"] and body["error"]["code"] == "server_busy"
        connection.close()
        deadline = time.monotonic() + 30
        while call(address, "/health", method="GET")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert_serving(address)
