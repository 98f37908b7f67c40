"""`make bench`'s summary and table from made-up rounds (no model, no timing): missing reference tools are reported,
ratios are taken within a round, and the torch-side script imports without torch."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_all, bench_reference
from benchmarks.bench_all import Variant
from benchmarks.bench_rss import photo_like
from benchmarks.bench_table import format_markdown, summarise

VARIANT = Variant("Q4_0 text + Q8_0 mmproj", Path("m-Q4_0.gguf"), Path("mmproj-m-Q8_0.gguf"))


def _figure(value: float) -> dict[str, float]:
    return {"min": value, "median": value, "max": value}


def _ours(scale: float) -> dict[str, Any]:
    figures = {"load_s": 0.5, "prompt_tok_s": 200.0, "decode_tok_s": 50.0, "tile_encode_ms": 1000.0,
               "thumbnail_encode_ms": 800.0, "ttft_ms": 2000.0, "followup_ttft_ms": 100.0}  # fmt: skip
    return {
        "figures": {key: _figure(value * scale) for key, value in figures.items()},
        "peak_rss_mb": 400.0,
        "decode_bound": {"bytes_per_token": 200 * 2**20, "read_gb_s": 20.0, "bound_tok_s": 100.0},
    }


def _transformers(decode: float) -> dict[str, Any]:
    figures = {"load_s": 6.0, "prompt_tok_s": 200.0, "decode_tok_s": decode, "ttft_ms": 10000.0}
    return {"figures": {key: _figure(value) for key, value in figures.items()}, "peak_rss_mb": 3200.0,
            "torch": "2", "transformers": "5"}  # fmt: skip


def _report(rounds: list[dict[str, Any]], missing: dict[str, str]) -> dict[str, Any]:
    machine = {"cpu": "CPU", "logical_cpus": 2, "physical_cores": 2, "threads": 2, "llama_cpp_commit": None,
               "llama_cpp_python": "0.3.36", "reference_build": "-", "llama_cpp_system_info": "CPU : AVX2 = 1",
               "date": "2026-01-01"}  # fmt: skip
    memory = {"variant": VARIANT.name, "image": "1920x1080", "n_ctx": 4096, "goal_mb": 450, "ours": None}
    return {"quick": True, "rounds": len(rounds), "machine": machine, "memory": memory, "not_measured": missing,
            "errors": {}, **summarise([VARIANT], rounds, {})}  # fmt: skip


def test_ratios_are_taken_within_each_round() -> None:
    # Round 2 ran on a machine twice as slow for both sides: each round's ratio is 1.25, whatever the medians are.
    rounds = [
        {"variants": [{"ours": _ours(1.0), "llama_bench": {"prompt_tok_s": 160.0, "decode_tok_s": 40.0}}]},
        {"variants": [{"ours": _ours(0.5), "llama_bench": {"prompt_tok_s": 80.0, "decode_tok_s": 20.0}}]},
        {"variants": [{"ours": _ours(0.9), "llama_bench": {"prompt_tok_s": 144.0, "decode_tok_s": 36.0}}]},
    ]
    for row in rounds:
        row["transformers_f32"] = _transformers(5.0)
    variant = summarise([VARIANT], rounds, {})["variants"][0]
    assert variant["ratios"]["pp_ours_over_llama_bench"] == pytest.approx(1.25)
    assert variant["ratios"]["tg_ours_over_llama_bench"] == pytest.approx(1.25)
    assert variant["ratios"]["tg_ours_over_transformers_f32"] == pytest.approx(9.0)  # median of 10, 5, 9
    assert variant["ratios"]["followup_over_first_ttft"] == pytest.approx(0.05)
    assert variant["ratios"]["rss_ours_over_transformers_f32"] == pytest.approx(0.125)
    assert variant["ours"]["prompt_tok_s"] == pytest.approx(180.0)


def test_missing_references_are_reported_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_reference, "BIN", tmp_path / "no-build")
    monkeypatch.setattr(bench_all, "REF_PY", tmp_path / "no-venv" / "python")
    missing = bench_all.missing_tools()
    assert set(missing) == {"llama.cpp", "transformers"}
    variant = summarise([VARIANT], [{"variants": [{"ours": _ours(1.0)}]}], {})["variants"][0]
    assert variant["llama_cpp"] is None and variant["ratios"]["pp_ours_over_llama_bench"] is None
    table = format_markdown(_report([{"variants": [{"ours": _ours(1.0)}]}], missing))
    assert "make bench-reference" in table and "make reference" in table
    assert "| pp (tok/s) | 200.0 | — |" in table
    assert "transformers f32" not in table.splitlines()[4]  # no transformers column without its runs


def test_table_marks_goals_and_has_every_figure() -> None:
    rounds = [{"variants": [{"ours": _ours(1.0), "llama_bench": {"prompt_tok_s": 250.0, "decode_tok_s": 40.0},
                             "mtmd_slice_ms": 1100.0}], "transformers_f32": _transformers(5.0)}]  # fmt: skip
    table = format_markdown(_report(rounds, {}))
    assert "0.80 (goal ≥ 0.97, not met)" in table  # pp 200 vs 250
    assert "10.00 (goal ≥ 8.50)" in table and "1.10 (goal ≥ 0.97) speed" in table
    for label in ("model load", "pp (tok/s)", "tg (tok/s)", "512x512 tile", "thumbnail", "TTFT 512x385", "follow-up",
                  "peak RSS", "decode bound", "1920x1080", "≤ 450"):  # fmt: skip
        assert label in table, label


def test_photo_is_deterministic() -> None:
    first, second = photo_like(64, 36), photo_like(64, 36)
    assert first.size == (64, 36) and first.tobytes() == second.tobytes()


def test_transformers_script_imports_without_torch() -> None:
    had_torch = "torch" in sys.modules
    module = importlib.import_module("benchmarks.bench_transformers")
    assert callable(module.run)
    assert ("torch" in sys.modules) == had_torch  # torch and transformers are imported only inside run()


def test_table_has_the_parallel_clients_section() -> None:
    rates = {"ours": {"1": 10.0, "2": 18.0, "4": 30.0}, "llama-server": {"1": 12.0, "2": 20.0, "4": 32.0}}
    scaling = {kind: {n: by_n[n] / by_n["1"] for n in by_n} for kind, by_n in rates.items()}
    parallel = {"model": "m.gguf", "tokens_per_client": 64, "threads": 2, "rounds": 3, "aggregate_tok_s": rates,
                "scaling_over_1_client": scaling, "ours_over_llama_server": {"1": 10 / 12, "2": 0.9, "4": 30 / 32},
                "goals": {"4 clients >= 2.5x 1 client": True, "4 clients >= 0.95x llama-server -np 4": False},
                }  # fmt: skip
    table = format_markdown({**_report([{"variants": [{"ours": _ours(1.0)}]}], {}), "parallel": parallel})
    assert "## Parallel clients" in table
    assert "| 4 | 30.0 | 32.0 | 3.00 | 2.67 | 0.94 |" in table
    assert "4 clients >= 2.5x 1 client: met, 4 clients >= 0.95x llama-server -np 4: not met" in table
