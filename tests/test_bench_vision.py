"""`make bench`'s ONNX vision rows from made-up measurements (no model, no timing): speed ratios are taken within each
round, the goals are judged from the right figures, and a row that was not measured says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bench_vision_report import bench_all_lines, encode_summary, memory_lines, ttft_goal_lines


def _encode() -> dict[str, dict[str, list[float]]]:
    # Round 2 ran twice as slow for the mmproj types; in round 3 F16 was the fastest mmproj type.
    return {
        "mmproj Q8_0": {"512x512": [1000.0, 2000.0, 1000.0]},
        "mmproj F16": {"512x512": [1200.0, 2400.0, 500.0]},
        "ONNX int8": {"512x512": [400.0, 1000.0, 400.0]},
    }


def test_encode_speed_is_against_the_fastest_mmproj_type_of_each_round() -> None:
    summary = encode_summary(_encode())
    # per round: 1000/400, 2000/1000, 500/400 -> median 2.0 (the best type's median over int8's would be 2.5)
    assert summary["speed_vs_best_mmproj"]["ONNX int8"]["512x512"] == pytest.approx(2.0)
    assert summary["speed_vs_best_mmproj"]["mmproj F16"]["512x512"] == pytest.approx(1000 / 1200)  # 1, 1/1.2, 1/1.2
    assert summary["median_ms"]["ONNX int8"]["512x512"] == 400.0


def _memory(onnx_mb: float) -> dict[str, Any]:
    return {"text": "t.gguf", "mmproj": "m.gguf", "onnx_file_mb": 96.0,
            "mtmd": {"peak_rss_mb": 570.0}, "onnx": {"peak_rss_mb": onnx_mb}}  # fmt: skip


def test_peak_rss_goal_is_the_onnx_file_size_above_the_mtmd_path() -> None:
    assert "meets ≤ 96.0" in memory_lines(_memory(600.0))[-1]
    assert "misses ≤ 96.0" in memory_lines(_memory(730.0))[-1]
    assert "not measured" in memory_lines({"onnx_file_mb": 96.0, "mtmd": {"peak_rss_mb": 570.0}})[-1]


def _image_report() -> dict[str, Any]:
    return {
        "ttft_ms": {
            "ours onnx": {"512x385": 700.0, "1920x1080": 5000.0},
            "transformers bf16": {"512x385": 1000.0, "1920x1080": 9000.0},
            "llama-mtmd-cli": {"512x385": 1500.0, "1920x1080": 10000.0},
        },
        "ttft_stages": {
            "ours onnx": {"1920x1080": {"encode_ms": 2000.0, "prefill_ms": 3000.0, "prefill_positions": 2342}}
        },
    }


def test_ttft_goals_use_bench_images_rows_and_state_the_prefill_share() -> None:
    lines = ttft_goal_lines(_image_report())
    transformers = next(line for line in lines if "transformers bf16" in line)
    assert "0.70 (meets ≤ 0.8)" in transformers
    cli = next(line for line in lines if "llama-mtmd-cli" in line)
    assert "0.50 (meets ≤ 0.6)" in cli
    prefill = next(line for line in lines if "prefill (ms)" in line)
    assert "2,000 / 3,000" in prefill and "prefill 60% of TTFT" in prefill


def test_rows_not_measured_by_bench_image_say_so() -> None:
    # main's older bench_image report (flat ttft_ms, no ONNX row) and no report at all
    for report in ({"ttft_ms": {"512x385": 900.0}}, None):
        lines = ttft_goal_lines(report)
        assert sum("not measured" in line for line in lines) == 2


def test_bench_all_lines_hold_every_section() -> None:
    report = {"rounds": 3, "repeat": 3, "threads": 2, "text": "t.gguf", "encode_ms": _encode(),
              "peak_rss": _memory(600.0)}  # fmt: skip
    text = "\n".join(bench_all_lines(report, _image_report()))
    assert "| ONNX int8 | 400 | 2.00x (meets ≥ 1.5) |" in text
    assert "ONNX - mtmd" in text and "0.50 (meets ≤ 0.6)" in text


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_a_childs_peak_rss_is_its_own() -> None:
    """bench_rss runs as a child of the benchmark driver: its peak must not be the driver's (ru_maxrss is
    inherited on Linux: both rows of a run read 1,477.6 MB, the driver's peak, before)."""
    child = "from lfm_edge.bench import peak_rss_mb; print(peak_rss_mb())"
    parent = (f"import subprocess, sys, numpy as np; held = np.ones(2**25)  # 256 MiB resident\n"
              f"print(subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True, check=True)"
              ".stdout)")  # fmt: skip
    reported = float(subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, check=True).stdout)
    assert reported < 200
