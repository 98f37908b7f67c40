"""benchmarks/bench_image.py's summary (medians over rounds, ratios within a round) and its section of
bench/results.md."""

from __future__ import annotations

import pytest

from benchmarks.bench_image_report import summarise
from benchmarks.bench_table import vision_lines


def _round(scale: float, cli_scale: float | None = None) -> dict[str, object]:
    encode = {t: {"512x512": ms * scale, "512x384": ms * scale * 0.8, "256x256": ms * scale / 4}
              for t, ms in (("Q8_0", 1200.0), ("F16", 1000.0), ("BF16", 800.0))}  # fmt: skip
    stages = {"encode_ms": 900.0 * scale, "prefill_ms": 300.0 * scale, "prefill_positions": 270.0,
              "reused_positions": 0.0, "crops": 1, "cache_hits": 0}  # fmt: skip
    cached = {**stages, "encode_ms": 0.0, "prefill_ms": 30.0 * scale, "prefill_positions": 12.0,
              "reused_positions": 258.0, "cache_hits": 1}  # fmt: skip
    cli = {"ttft_ms": 2000.0 * (cli_scale or scale), "encode_ms": 1500.0, "prompt_eval_ms": 500.0}
    ttft = {"ours": {"512x385": [1300.0 * scale, stages]}, "ours cache hit": {"512x385": [260.0 * scale, cached]},
            "llama-mtmd-cli": {"512x385": cli}, "transformers bf16": {"512x385": 1000.0 * scale},
            "transformers f32": None}  # fmt: skip
    return {"encode": encode, "ttft": ttft, "prefill": {"256": 900.0 * scale, "512": 800.0 * scale}}


def test_medians_and_ratios_within_rounds() -> None:
    summary = summarise([_round(1.0), _round(2.0, cli_scale=1.0), _round(1.5)])
    assert summary["encode_ms"]["BF16"]["512x512"] == pytest.approx(1200.0)
    assert summary["encode_speed_vs_q8_0"]["BF16 vs Q8_0 512x512 speed"] == pytest.approx(1.5)
    assert summary["ttft_ms"]["ours"]["512x385"] == pytest.approx(1950.0)
    # per-round ratios 0.65, 1.3, 0.65: the median is 0.65 (not the ratio of medians, 1950 / 3000)
    assert summary["ttft_ratios"]["ours / llama-mtmd-cli 512x385"] == pytest.approx(0.65)
    assert summary["ttft_ratios"]["ours cache hit / ours 512x385"] == pytest.approx(0.2)
    assert summary["ttft_ratios"]["ours / transformers f32 512x385"] is None
    assert summary["ttft_stages"]["ours cache hit"]["512x385"]["reused_positions"] == 258.0
    assert summary["image_prefill_ms_by_n_batch"]["512"] == pytest.approx(1200.0)


def test_results_section_names_every_figure() -> None:
    summary = summarise([_round(1.0)])
    text = "\n".join(vision_lines({**summary, "cpu_class": "x86_bf16", "chosen_mmproj": "mmproj-M-BF16.gguf",
                                   "reference_mmproj": "mmproj-M-Q8_0.gguf", "no_repack": True}))  # fmt: skip
    assert "| BF16 | 800 | 640 | 200 | 1.50 |" in text
    assert "| ours | 1,300 |" in text and "| llama-mtmd-cli | 2,000 |" in text
    assert "| transformers f32 | not measured |" in text
    assert "| ours / llama-mtmd-cli | 0.65 (meets ≤ 0.75) |" in text
    assert "| ours cache hit / ours | 0.20 (meets ≤ 0.25) |" in text
    assert "| ours cache hit 512x385 | 0 | 30 | 12 / 258 | 1/1 |" in text
    assert "mmproj-M-BF16.gguf" in text and "--no-repack" in text and "n_batch 512: 800 ms" in text


def test_llama_mtmd_cli_ttft_comes_from_its_log_timestamps() -> None:
    from benchmarks.bench_image import _stamp_ms

    log = ("0.02.312.611 I main: loading model: m.gguf\n0.03.671.349 I encoding mtmd batch, n_chunks = 1\n"
           "1.15.684.086 I llama_perf_context_print:        load time =    1764.08 ms\n")  # fmt: skip
    assert _stamp_ms(log, "llama_perf_context_print:") - _stamp_ms(log, "main: loading model") == pytest.approx(
        73_371.475
    )
    with pytest.raises(RuntimeError, match="no 'prompt eval' line"):
        _stamp_ms(log, "prompt eval")
