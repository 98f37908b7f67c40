"""benchmarks/bench_image.py's summary (medians over rounds, ratios) and its section of bench/results.md."""

from __future__ import annotations

import pytest

from benchmarks.bench_image import summarise
from benchmarks.bench_table import vision_lines


def _round(scale: float) -> dict[str, object]:
    encode = {t: {"512x512": ms * scale, "512x384": ms * scale * 0.8, "256x256": ms * scale / 4}
              for t, ms in (("Q8_0", 1200.0), ("F16", 1000.0), ("BF16", 800.0))}  # fmt: skip
    stages = {"encode_ms": 900.0 * scale, "prefill_ms": 300.0 * scale, "crops": 1, "cache_hits": 0}
    cached = {"encode_ms": 0.0, "prefill_ms": 300.0 * scale, "crops": 1, "cache_hits": 1}
    ttft = {"512x385": (1300.0 * scale, stages), "512x385 cached": (320.0 * scale, cached)}
    return {"encode": encode, "ttft": ttft, "prefill": {"256": 900.0 * scale, "512": 800.0 * scale}}


def test_medians_and_ratios() -> None:
    summary = summarise([_round(1.0), _round(2.0), _round(1.5)])
    assert summary["encode_ms"]["BF16"]["512x512"] == pytest.approx(1200.0)
    assert summary["encode_speed_vs_q8_0"]["BF16 vs Q8_0 512x512 speed"] == pytest.approx(1.5)
    assert summary["cache_hit_ttft_ratio"]["512x385"] == pytest.approx(320.0 / 1300.0)
    assert summary["image_prefill_ms_by_n_batch"]["512"] == pytest.approx(1200.0)


def test_results_section_names_every_figure() -> None:
    summary = summarise([_round(1.0)])
    text = "\n".join(vision_lines({**summary, "cpu_class": "x86_bf16", "chosen_mmproj": "mmproj-M-BF16.gguf"}))
    assert "| BF16 | 800.0 | 640.0 | 200.0 | 1.50 |" in text
    assert "| 512x385 cached | 320.0 | 0.00 | 300.0 | 1/1 |" in text
    assert "mmproj-M-BF16.gguf" in text and "512x385: 0.25" in text and "n_batch 512: 800 ms" in text
