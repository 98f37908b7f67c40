"""A bounded soak of `lfm-edge serve`: N parallel clients for M seconds on loopback, a mix of good and hostile
requests, every answer checked against the statuses that request may get. Writes build/bench/soak.json.

    python -m benchmarks.soak_server MODEL.gguf [--clients 8] [--seconds 30] [--max-queue 8]

Passes (exit 0) when no request got an unexpected status or a broken connection, the server answers /health
with nothing pending at the end, every kind of request was sent, and the process stayed under RSS_BOUND_MB.
The hostile kinds are issue S's: schema, grammar and image bombs, duplicate tools, clients that leave mid-answer
and clients that send their headers one byte a second.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import random
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

import lfm_edge.model as api
from lfm_edge.server import Limits, ServerOptions
from lfm_edge.server.run import start_in_thread
from tests import hostile_inputs as hostile

IMAGE = Path(__file__).parent.parent / "tests" / "images" / "photo_512x512.png"
BUSY = 503
RSS_BOUND_MB = 1536.0  # the whole soak process (server, model, clients); 16 ICO bombs alone once took 4.7 GB


@dataclass(frozen=True)
class Kind:
    name: str
    expected: frozenset[int]
    send: Callable[[tuple[str, int], int], int]


def _post(address: tuple[str, int], body: bytes, headers: dict[str, str] | None = None, read_sse: bool = False) -> int:
    connection = http.client.HTTPConnection(*address, timeout=120)
    try:
        connection.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json",
                                                                               **(headers or {})})  # fmt: skip
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _declare_huge_body(address: tuple[str, int]) -> int:
    """Headers announcing 1 GB, then wait for the answer (which must come before any body is sent)."""
    connection = http.client.HTTPConnection(*address, timeout=120)
    try:
        connection.putrequest("POST", "/v1/chat/completions")
        connection.putheader("Content-Length", str(10**9))
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _one_pixel_png() -> bytes:
    encoded = io.BytesIO()
    Image.new("RGB", (1, 1)).save(encoded, "PNG")
    return encoded.getvalue()


def _chat(text: str, **extra: Any) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": text}], "max_tokens": 8, **extra}).encode()


def _kinds() -> list[Kind]:
    image_uri = "data:image/png;base64," + base64.b64encode(IMAGE.read_bytes()).decode()
    image_body = json.dumps(
        {
            "max_tokens": 8,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": image_uri}},
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
        }
    ).encode()
    pixel = "data:image/png;base64," + base64.b64encode(_one_pixel_png()).decode()
    many = [{"type": "image_url", "image_url": {"url": pixel}}] * 1000
    many_body = json.dumps({"messages": [{"role": "user", "content": many}]}).encode()
    ok = frozenset({200, BUSY})
    return [
        *_hostile_kinds(),
        Kind("text", ok, lambda a, i: _post(a, _chat(f"Question {i}?"))),
        Kind("stream", ok, lambda a, i: _post(a, _chat(f"Story {i}.", stream=True))),
        Kind("image", ok, lambda a, i: _post(a, image_body)),
        Kind("malformed_json", frozenset({400}), lambda a, i: _post(a, b'{"messages": [')),
        Kind("wrong_types", frozenset({400}), lambda a, i: _post(a, _chat("x", max_tokens="many"))),
        Kind("hostile_host", frozenset({403}), lambda a, i: _post(a, _chat("x"), {"Host": "evil.example"})),
        Kind("huge_body", frozenset({413}), lambda a, i: _declare_huge_body(a)),
        Kind("thousand_images", frozenset({400}), lambda a, i: _post(a, many_body)),
    ]


def _post_ignoring_index(body: bytes, address: tuple[str, int], _: int) -> int:
    return _post(address, body)


def _leave_early(address: tuple[str, int], body: bytes) -> int:
    """A long generation whose client goes away after half a second: 0 (nobody reads the answer)."""
    with socket.create_connection(address, timeout=30) as sock:
        head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body)
        time.sleep(0.5)
    return 0


def _slow_headers(address: tuple[str, int]) -> int:
    """One header byte per second: 0 once the server closes the connection (it must, within header_timeout_s)."""
    with socket.create_connection(address, timeout=30) as sock:
        sock.settimeout(1.0)
        for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"x" * 60:
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1) == b"":
                    return 0
            except TimeoutError:
                continue
            except OSError:
                return 0
    return -1


def _hostile_kinds() -> list[Kind]:
    """Issue S's shapes: each must be refused (or cut off) while the good requests above keep being served."""
    bodies = {
        "schema_bomb": hostile.schema_chat({"type": "string", "maxLength": 20000}),
        "enum_bomb": hostile.schema_chat({"enum": [f"v{i}" for i in range(5000)]}),
        "grammar_bomb": {"messages": [{"role": "user", "content": "x"}], "grammar": "root ::= " + "(" * 20000 + '"a"'
                         + ")" * 20000},
        "tool_schema_bomb": hostile.forced_tool_chat({"type": "array", "maxItems": 100000}),
        "duplicate_tools": hostile.forced_tool_chat({"type": "object"}, ("f", "f")),
        "ico_bomb": hostile.image_chat(hostile.data_uri(hostile.ico_hiding_a_big_png())),
        "jpeg_scan_bomb": hostile.image_chat(hostile.data_uri(hostile.progressive_jpeg_scan_bomb())),
        "gif_frame_bomb": hostile.image_chat(hostile.data_uri(hostile.gif_with_frames(1500))),
    }  # fmt: skip
    encoded = {name: json.dumps(body).encode() for name, body in bodies.items()}
    status = {"ico_bomb": 400, "jpeg_scan_bomb": 413, "gif_frame_bomb": 413}
    kinds = [Kind(name, frozenset({status.get(name, 400)}), partial(_post_ignoring_index, data))
             for name, data in encoded.items()]  # fmt: skip
    runaway = _chat("Tell a story.", max_tokens=4096, grammar=hostile.LONG_ANSWER_GRAMMAR)
    return [
        *kinds,
        Kind("client_leaves", frozenset({0}), lambda a, i: _leave_early(a, runaway)),
        Kind("slow_headers", frozenset({0}), lambda a, i: _slow_headers(a)),
    ]


def _rss_mb() -> float:
    """This process's resident memory (the server runs in it); 0 where /proc is missing."""
    status = Path("/proc/self/status")
    if not status.exists():
        return 0.0
    line = next((line for line in status.read_text().splitlines() if line.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) / 1024


def _client(address: tuple[str, int], stop_at: float, seed: int, results: list[tuple[str, int, float]]) -> None:
    rng = random.Random(seed)
    kinds = KINDS
    index = 0
    while time.monotonic() < stop_at:
        kind = rng.choice(kinds)
        started = time.perf_counter()
        try:
            status = kind.send(address, index)
        except OSError as exc:
            status = -1
            print(f"{kind.name}: {type(exc).__name__}: {exc}")
        results.append((kind.name, status, time.perf_counter() - started))
        index += 1


KINDS = _kinds()


def soak(model: str, clients: int, seconds: float, max_queue: int) -> dict[str, Any]:
    expected = {kind.name: kind.expected for kind in KINDS}
    rss: list[float] = [_rss_mb()]
    with api.load(model, n_ctx=4096) as loaded:
        limits = Limits(max_queue=max_queue, max_body_bytes=4 * 2**20, header_timeout_s=3, request_timeout_s=60)
        options = ServerOptions(model_ids=("soak",), port=0, limits=limits)
        server = start_in_thread(loaded, options)
        parts = urlsplit(server.url)
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
        results: list[tuple[str, int, float]] = []
        stop_at = time.monotonic() + seconds
        threads = [threading.Thread(target=_client, args=(address, stop_at, seed, results)) for seed in range(clients)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            rss.append(_rss_mb())
            time.sleep(0.2)
        connection = http.client.HTTPConnection(*address, timeout=30)
        connection.request("GET", "/health")
        health = json.loads(connection.getresponse().read())
        server.close()
    unexpected = [(name, status) for name, status, _ in results if status not in expected[name]]
    served = sorted(seconds for name, status, seconds in results if status == 200)
    return {
        "clients": clients,
        "seconds": seconds,
        "max_queue": max_queue,
        "requests": len(results),
        "by_kind_and_status": {f"{n} {s}": c for (n, s), c in sorted(Counter((n, s) for n, s, _ in results).items())},
        "unexpected": unexpected[:20],
        "unexpected_count": len(unexpected),
        "latency_200_s": _percentiles(served),
        "slowest": sorted(((round(t, 3), n, s) for n, s, t in results), reverse=True)[:5],
        "health_after": health,
        "rss_mb": {"before_load": rss[0], "max": max(rss), "bound": RSS_BOUND_MB},
        "passed": not unexpected
        and health["pending"] == 0
        and {n for n, _, _ in results} == set(expected)
        and max(rss) < RSS_BOUND_MB,
    }


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"p50": statistics.median(values), "p95": values[int(0.95 * (len(values) - 1))], "max": values[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--max-queue", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("build/bench/soak.json"))
    args = parser.parse_args()
    report = soak(args.model, args.clients, args.seconds, args.max_queue)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
