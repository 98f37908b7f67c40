"""What each speed choice of `lfm-edge watch` gains, one caption at a time (part of `make bench-video`).

Every configuration captions a new frame of the moving scene in each round (no embedding-cache hit), the
configurations interleaved within a round, so a machine shared with other work slows them alike; each figure is the
median over rounds (CPU s: all threads of the process, the least sensitive to other work at --threads 1), and
`vs_before` the median of the per-round ratios of caption seconds to last session's design ("before": the
mmproj encoder, the whole prompt evaluated per frame, 64 image tokens, 32 caption tokens). The synthetic model never
ends a caption early: a caption always costs max_tokens decode steps (a real model stops at its sentence's end).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from lfm_edge.video import FRAME_KNOBS, WATCH_GENERATION, ModelCaptioner, WatchOptions


@dataclass(frozen=True)
class Choice:
    name: str
    backend: str  # which loaded model captions: "mtmd", "onnx", or "fresh" (mtmd keeping no snapshot)
    reuse_prefix: bool
    max_image_tokens: int
    max_tokens: int


def choices(default_tokens: int, onnx: bool) -> list[Choice]:
    tokens = int(FRAME_KNOBS["max_image_tokens"])
    before = Choice("before: mtmd, no prefix reuse, 64 image tokens, 32 tokens", "fresh", False, 64, 32)
    reused = dataclasses.replace(before, name="+ instruction prefix reused", backend="mtmd", reuse_prefix=True)
    shorter = Choice(f"+ max_tokens {default_tokens} (mtmd: defaults without the onnx file)", "mtmd", True, tokens,
                     default_tokens)  # fmt: skip
    rows = [before, reused, shorter]
    backend = "onnx" if onnx else "mtmd"
    if onnx:
        rows.append(Choice("+ ONNX int8 encoder (32 tokens)", "onnx", True, tokens, 32))
        rows.append(Choice(f"defaults: ONNX int8, prefix reused, {tokens} image tokens, {default_tokens} tokens",
                           "onnx", True, tokens, default_tokens))  # fmt: skip
    rows.append(Choice(f"alternative: 32 image tokens ({backend}, {default_tokens} tokens)", backend, True, 32,
                       default_tokens))  # fmt: skip
    return rows


def _caption(model: Any, choice: Choice, frame: np.ndarray) -> dict[str, float]:
    generation = dataclasses.replace(WATCH_GENERATION, max_tokens=choice.max_tokens)
    knobs = {"max_image_tokens": choice.max_image_tokens, "min_image_tokens": min(32, choice.max_image_tokens)}
    options = WatchOptions(generation=generation, knobs=knobs, reuse_prefix=choice.reuse_prefix)
    captioner = ModelCaptioner(model, options)
    cpu_started = time.process_time()
    captioner(frame)
    cpu_s = time.process_time() - cpu_started
    assert captioner.last is not None
    t = captioner.last.timings
    return {
        "caption_s": t.total_s,
        "cpu_s": cpu_s,
        "encode_s": t.image.encode_s if t.image else 0.0,
        "prefill_s": t.prefill_s,
        "prefill_positions": t.prefill_tokens,
        "reused_positions": t.reused_tokens,
        "decode_s": t.total_s - t.ttft_s,
        "decode_tokens": t.decode_tokens,
    }


def compare(
    models: dict[str, Any], rounds: int, default_tokens: int, picture: Any, report: Any = None
) -> list[dict[str, Any]]:
    """`models`: {"mtmd": Model, "onnx": Model (optional), "fresh": an mtmd Model with engine.max_snapshots 0, so
    every frame's whole prompt is evaluated, as before}; `picture(t)`: the scene at t seconds; `report(choice,
    result)`: called after each caption (progress)."""
    rows = choices(default_tokens, "onnx" in models)
    measured: list[list[dict[str, float]]] = [[] for _ in rows]
    frame_time = 0.0
    for backend, model in models.items():  # a first caption per model warms it up (and keeps the prefix); not counted
        warm = dataclasses.replace(rows[0], backend=backend, reuse_prefix=backend != "fresh")
        _caption(model, warm, picture(frame_time))
    for _ in range(rounds):
        for index, choice in enumerate(rows):
            frame_time += 1.37
            result = _caption(models[choice.backend], choice, picture(frame_time))
            measured[index].append(result)
            if report is not None:
                report(choice, result)
    summary = []
    for choice, results in zip(rows, measured, strict=True):
        ratios = [r["caption_s"] / b["caption_s"] for r, b in zip(results, measured[0], strict=True)]
        medians = {key: round(statistics.median(r[key] for r in results), 3) for key in results[0]}
        summary.append({**dataclasses.asdict(choice), **medians, "vs_before": round(statistics.median(ratios), 3)})
    return summary


def format_rows(report: list[dict[str, Any]]) -> list[str]:
    lines = ["| choice | caption s | CPU s | encode s | prefill s (positions) | decode s (tokens) | vs before |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for row in report:
        lines.append(f"| {row['name']} | {row['caption_s']} | {row['cpu_s']} | {row['encode_s']} | {row['prefill_s']} "
                     f"({row['prefill_positions']:g}) | {row['decode_s']} ({row['decode_tokens']:g}) | "
                     f"{row['vs_before']} |")  # fmt: skip
    return lines
