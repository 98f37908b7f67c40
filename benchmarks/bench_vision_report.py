"""benchmarks.bench_vision's summary and rows: encode speed per backend and type (ratios taken within each round),
the peak RSS of the ONNX path against the mtmd path, and the issue's TTFT goals for the ONNX path read from
benchmarks.bench_image's report of the same `make bench` run (ratios of its medians)."""

from __future__ import annotations

import statistics
from typing import Any

INT8 = "ONNX int8"
ENCODE_GOAL = 1.5  # int8 crop encode speed, at least this many times the best mmproj type's
# (row, our system, their system, image, upper bound): bench_image's TTFT systems and images.
TTFT_GOALS = (
    ("TTFT 512x385 + question: ours ONNX int8 / transformers bf16", "ours onnx", "transformers bf16", "512x385", 0.8),
    ("TTFT 1920x1080 + question: ours ONNX int8 / llama-mtmd-cli", "ours onnx", "llama-mtmd-cli", "1920x1080", 0.6),
)


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def encode_summary(encode: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Median ms per backend and crop, and each backend's speed against the fastest mmproj type of the same round
    (median over rounds)."""
    crops = list(next(iter(encode.values())))
    mmprojs = [name for name in encode if name.startswith("mmproj")]
    medians = {name: {crop: _median(per_crop[crop]) for crop in crops} for name, per_crop in encode.items()}
    speed: dict[str, dict[str, float]] = {}
    for name, per_crop in encode.items():
        speed[name] = {}
        for crop in crops:
            rounds = range(len(per_crop[crop]))
            best = [min(encode[m][crop][r] for m in mmprojs) for r in rounds]
            speed[name][crop] = _median([best[r] / per_crop[crop][r] for r in rounds])
    return {"median_ms": medians, "speed_vs_best_mmproj": speed}


def _num(value: float | None, digits: int = 0) -> str:
    return "not measured" if value is None else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _verdict(value: float, goal: float, at_most: bool) -> str:
    met = value <= goal if at_most else value >= goal
    return f"{'meets' if met else 'misses'} {'≤' if at_most else '≥'} {goal}"


def encode_lines(report: dict[str, Any]) -> list[str]:
    summary = encode_summary(report["encode_ms"])
    crops = list(next(iter(summary["median_ms"].values())))
    header = ["backend", *(cell for crop in crops for cell in (f"{crop} ms", "speed vs best mmproj"))]
    rows = []
    for name, per_crop in summary["median_ms"].items():
        cells = [name]
        for crop in crops:
            speed = summary["speed_vs_best_mmproj"][name][crop]
            goal = f" ({_verdict(speed, ENCODE_GOAL, at_most=False)})" if name == INT8 else ""
            cells += [_num(per_crop[crop]), f"{speed:.2f}x{goal}"]
        rows.append(cells)
    return _table(header, rows)


def memory_lines(memory: dict[str, Any]) -> list[str]:
    """Peak RSS of one process describing the 1920x1080 photo, per vision backend."""
    mtmd, onnx = memory.get("mtmd") or {}, memory.get("onnx") or {}
    header = ["peak RSS, describe 1920x1080, n_ctx 4096 (MB)", "mtmd (mmproj)", "ONNX int8", "ONNX - mtmd",
              "goal: ≤ the ONNX file"]  # fmt: skip
    peak_mtmd, peak_onnx = mtmd.get("peak_rss_mb"), onnx.get("peak_rss_mb")
    extra = peak_onnx - peak_mtmd if peak_mtmd is not None and peak_onnx is not None else None
    size = memory.get("onnx_file_mb")
    verdict = "not measured" if extra is None or size is None else _verdict(extra, round(size, 1), at_most=True)
    row = [f"{memory.get('text')} + {memory.get('mmproj')}", _num(peak_mtmd, 1), _num(peak_onnx, 1),
           _num(extra, 1), f"{_num(size, 1)} MB: {verdict}"]  # fmt: skip
    return _table(header, [row])


def _cell(image_report: dict[str, Any], key: str, system: str, image: str) -> Any:
    per_system = (image_report.get(key) or {}).get(system)
    return per_system.get(image) if isinstance(per_system, dict) else None


def ttft_goal_lines(image_report: dict[str, Any] | None) -> list[str]:
    """The ONNX path's TTFT goals from bench_image's medians, and how much of its TTFT is the text model's prefill
    of the image positions (where that dominates, a faster encoder cannot meet a TTFT goal alone)."""
    report = image_report or {}
    rows = []
    for label, ours, theirs, image, goal in TTFT_GOALS:
        mine, other = _cell(report, "ttft_ms", ours, image), _cell(report, "ttft_ms", theirs, image)
        if isinstance(mine, (int, float)) and isinstance(other, (int, float)) and other:
            ratio = mine / other
            rows.append([label, f"{mine:,.0f} / {other:,.0f}", f"{ratio:.2f} ({_verdict(ratio, goal, at_most=True)})"])
        else:
            rows.append([label, "not measured", f"goal ≤ {goal}"])
    for image in ("512x385", "1920x1080"):
        stages, total = _cell(report, "ttft_stages", "ours onnx", image), _cell(report, "ttft_ms", "ours onnx", image)
        if isinstance(stages, dict) and stages.get("prefill_ms") is not None and total:
            share = stages["prefill_ms"] / total
            encode = stages.get("encode_ms")
            positions = _num(stages.get("prefill_positions"))
            rows.append([f"ours ONNX int8 {image}: encode / image+question prefill (ms)",
                         f"{_num(encode)} / {_num(stages['prefill_ms'])}",
                         f"prefill {share:.0%} of TTFT ({positions} positions)"])  # fmt: skip
    return _table(["goal (bench_image's medians, same run)", "ms", "ratio"], rows)


def bench_all_lines(onnx_report: dict[str, Any], image_report: dict[str, Any] | None) -> list[str]:
    """The rows `make bench` puts in bench/results.md under the ONNX vision encoder."""
    lines = [*encode_lines(onnx_report), ""]
    if onnx_report.get("peak_rss"):
        lines += [*memory_lines(onnx_report["peak_rss"]), ""]
    lines += [*ttft_goal_lines(image_report), ""]
    lines.append(f"Encode: {onnx_report['rounds']} interleaved rounds, median of {onnx_report['repeat']} encodes per "
                 f"round, {onnx_report['threads']} threads, mtmd with `{onnx_report.get('text')}`; speed = the "
                 "fastest mmproj type's ms / this backend's, per round, then the median. Peak RSS: "
                 "benchmarks.bench_rss, one process per backend (the mtmd path loads the mmproj; the ONNX path "
                 "never loads it into mtmd, it only reads four F32 tensors to check the pair).")  # fmt: skip
    return lines


def standalone_markdown(report: dict[str, Any]) -> str:
    """`make bench-vision`'s own summary: encode rows, then its in-process TTFT and peak RSS when measured."""
    lines = [*encode_lines(report), ""]
    if report.get("ttft_ms"):
        ttft = {name: _median(values) for name, values in report["ttft_ms"].items()}
        lines += _table(["TTFT 512x385 + question", "ms", "vs mtmd"],
                        [[f"{name} ({report['ttft_text']})", f"{ms:.0f}", f"{ms / ttft['mtmd']:.2f}x"]
                         for name, ms in ttft.items()])  # fmt: skip
        lines.append("")
    if report.get("peak_rss"):
        lines += [*memory_lines(report["peak_rss"]), ""]
    return "\n".join(lines)
