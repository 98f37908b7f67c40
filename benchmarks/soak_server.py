"""A bounded soak of `lfm-edge serve`: N parallel clients for M seconds on loopback, a mix of good and hostile
requests, every answer checked against the statuses that request may get. Writes build/bench/soak.json.

    python -m benchmarks.soak_server MODEL.gguf [--clients 8] [--seconds 30] [--max-queue 8]

Passes (exit 0) when no request got an unexpected status or a broken connection, the server answers /health
with nothing pending at the end, and every kind of request was sent.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

import lfm_edge.model as api
from lfm_edge.server import Limits, ServerOptions
from lfm_edge.server.run import start_in_thread

IMAGE = Path(__file__).parent.parent / "tests" / "images" / "photo_512x512.png"
BUSY = 503


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
        Kind("text", ok, lambda a, i: _post(a, _chat(f"Question {i}?"))),
        Kind("stream", ok, lambda a, i: _post(a, _chat(f"Story {i}.", stream=True))),
        Kind("image", ok, lambda a, i: _post(a, image_body)),
        Kind("malformed_json", frozenset({400}), lambda a, i: _post(a, b'{"messages": [')),
        Kind("wrong_types", frozenset({400}), lambda a, i: _post(a, _chat("x", max_tokens="many"))),
        Kind("hostile_host", frozenset({403}), lambda a, i: _post(a, _chat("x"), {"Host": "evil.example"})),
        Kind("huge_body", frozenset({413}), lambda a, i: _declare_huge_body(a)),
        Kind("thousand_images", frozenset({400}), lambda a, i: _post(a, many_body)),
    ]


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
    with api.load(model, n_ctx=4096) as loaded:
        options = ServerOptions(model_ids=("soak",), port=0, limits=Limits(max_queue=max_queue, max_body_bytes=2**20))
        server = start_in_thread(loaded, options)
        parts = urlsplit(server.url)
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
        results: list[tuple[str, int, float]] = []
        stop_at = time.monotonic() + seconds
        threads = [threading.Thread(target=_client, args=(address, stop_at, seed, results)) for seed in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
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
        "passed": not unexpected and health["pending"] == 0 and {n for n, _, _ in results} == set(expected),
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
