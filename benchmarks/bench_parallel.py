"""Aggregate decode throughput with 1, 2 and 4 concurrent text clients: `lfm-edge serve --parallel 4` beside
llama-server -np 4 from the vendored llama.cpp (built by `make bench-reference`), same model, same run.

    python -m benchmarks.bench_parallel MODEL.gguf [--tokens 64] [--rounds 3] [--threads N] [--out FILE]

Each client sends one greedy chat request (temperature 0, no repetition penalty, on both servers) with the end-of-
generation tokens banned, so every answer is exactly --tokens long; aggregate tok/s = all clients' completion tokens
/ wall time from the first request to the last answer (each prompt is ~20 tokens: its prefill is included, the same
on both sides: every request of the run asks with a number of its own, so neither server answers a repeated prompt
from its prompt cache, which llama-server does for an identical prompt and we do not). Servers and client counts are
interleaved per round (a shared machine's slow spell hits both); the medians, the ratios (N clients / 1 client, ours
/ llama-server) and the goals (4 clients >= 2.5x one client, >= 0.95x llama-server's 4 clients) go to
build/bench/parallel.json. llama-server missing: its columns are reported as not measured. Where ggml's AMX kernels
run (they crash LFM2 on quantized weights) llama-server gets --no-repack, as our runtime keeps its weights out of
the extra buffers there.
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LLAMA_SERVER = ROOT / "build" / "llama-ref" / "bin" / "llama-server"
CLIENTS = (1, 2, 4)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url}: not ready after {timeout_s} s")


def _end_tokens(model: Path) -> list[int]:
    from lfm_edge.native.text import ContextOptions, TextModel

    text = TextModel(model, ContextOptions(n_ctx=64, n_threads=1, n_seq=1))
    try:
        return [token for token in range(text.n_vocab) if text.is_end_of_generation(token)]
    finally:
        text.close()


def _start(kind: str, model: Path, threads: int) -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    if kind == "ours":
        command = [sys.executable, "-m", "lfm_edge.cli", "serve", str(model), "--port", str(port), "--parallel", "4",
                   "--threads", str(threads), "--n-ctx", "4096"]  # fmt: skip
    else:
        from lfm_edge.native.text import amx_kernels_active

        command = [str(LLAMA_SERVER), "-m", str(model), "--port", str(port), "-np", "4", "-t", str(threads),
                   "-c", "4096", "--kv-unified", *(["--no-repack"] if amx_kernels_active() else [])]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, process)
    return url, process


# The same sampling on both sides: greedy, no repetition penalty (ours defaults to the model card's 1.05).
NO_PENALTY = {"ours": {"repetition_penalty": 1.0}, "llama-server": {"repeat_penalty": 1.0}}


_PROMPT_NUMBERS = itertools.count()  # thread-safe in CPython: next() on a count holds the GIL


def _request(url: str, kind: str, tokens: int, banned: list[int]) -> int:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": f"Tell me a long story, number {next(_PROMPT_NUMBERS)}."}],
        "max_tokens": tokens,
        "temperature": 0,
        "logit_bias": {str(token): -100 for token in banned},
        **NO_PENALTY[kind],
    }
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return int(json.loads(response.read())["usage"]["completion_tokens"])


def _aggregate(server: tuple[str, str], clients: int, tokens: int, banned: list[int]) -> float:
    (kind, url), started = server, time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        produced = sum(pool.map(lambda _: _request(url, kind, tokens, banned), range(clients)))
    if produced != clients * tokens:
        raise RuntimeError(f"{kind}: {produced} tokens for {clients} x {tokens}: an answer ended early")
    return produced / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: one per physical core, up to 8")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "parallel.json")
    args = parser.parse_args()
    from lfm_edge.native.cpu import default_threads

    args.threads = args.threads or default_threads()
    began = time.monotonic()
    banned = _end_tokens(args.model)
    kinds = ["ours", *(["llama-server"] if LLAMA_SERVER.exists() else [])]
    servers = {kind: _start(kind, args.model, args.threads) for kind in kinds}
    samples: dict[str, dict[int, list[float]]] = {kind: {n: [] for n in CLIENTS} for kind in kinds}
    try:
        for kind in kinds:  # warm-up: first-request costs stay out of the measurement
            _aggregate((kind, servers[kind][0]), max(CLIENTS), 4, banned)
        for _ in range(args.rounds):
            for clients in CLIENTS:
                for kind in kinds:
                    rate = _aggregate((kind, servers[kind][0]), clients, args.tokens, banned)
                    samples[kind][clients].append(rate)
    finally:
        for _, process in servers.values():
            process.terminate()
            process.wait(30)
    _report(args, samples, time.monotonic() - began)


def _report(args: argparse.Namespace, samples: dict[str, dict[int, list[float]]], seconds: float) -> None:
    median = {kind: {n: statistics.median(values) for n, values in by_n.items()} for kind, by_n in samples.items()}
    reference = median.get("llama-server")
    scaling = {kind: {n: by_n[n] / by_n[1] for n in CLIENTS} for kind, by_n in median.items()}
    versus = {n: median["ours"][n] / reference[n] for n in CLIENTS} if reference else None
    result: dict[str, Any] = {
        "model": args.model.name,
        "tokens_per_client": args.tokens,
        "rounds": args.rounds,
        "threads": args.threads,
        "aggregate_tok_s": median,
        "scaling_over_1_client": scaling,
        "ours_over_llama_server": versus,
        "ours_scaling_4_over_1": scaling["ours"][4],
        "ours_over_llama_server_4": versus[4] if versus else None,
        "goals": {
            "4 clients >= 2.5x 1 client": scaling["ours"][4] >= 2.5,
            "4 clients >= 0.95x llama-server -np 4": versus[4] >= 0.95 if versus else None,
        },
        "llama_server": "measured" if reference else "not measured (make bench-reference builds it)",
        "seconds": round(seconds, 1),
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))


if __name__ == "__main__":
    main()
