"""`lfm-edge bench --quick` through click's CliRunner on the converted tiny model (one thread: about a second)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lfm_edge.bench import memory_bandwidth, summary
from lfm_edge.cli import main

Converted = Callable[..., tuple[Path, Path]]
QUICK = ["--quick", "--threads", "1"]
IMAGES = Path(__file__).parent / "images"
FIGURES = {"load_s", "prompt_tok_s", "decode_tok_s", "tile_encode_ms", "thumbnail_encode_ms", "ttft_ms",
           "followup_ttft_ms"}  # fmt: skip


@pytest.fixture(scope="module")
def text_model(converted: Converted) -> str:
    return str(converted("official-2.5", "f16")[0])


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield value


def test_quick_json_reports_every_figure_positive(text_model: str) -> None:
    result = CliRunner().invoke(main, ["-q", "bench", text_model, *QUICK, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["figures"]) == FIGURES
    for name, values in report["figures"].items():
        assert set(values) == {"min", "median", "max"}, name
        assert 0 < values["min"] <= values["median"] <= values["max"], name
    numbers = [*_numbers(report["figures"]), *_numbers(report["decode_bound"]), report["peak_rss_mb"]]
    assert len(numbers) == 3 * len(FIGURES) + 5 + 1 and all(number > 0 for number in numbers)
    assert report["settings"]["prompt_tokens"] == 64 and report["settings"]["decode_tokens"] == 16
    assert report["settings"]["thumbnail"] == "512x384" and report["settings"]["repeat"] == 1
    assert report["decode_bound"]["bytes_per_token"] == Path(text_model).stat().st_size
    system = report["system"]
    assert system["threads"] == 1 and system["cpu"] and "CPU" in system["llama_cpp_system_info"]


def test_quick_table_prints_the_figures_and_writes_json(text_model: str, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "results.json"
    image = IMAGES / "l_320x240.png"
    result = CliRunner().invoke(main, ["bench", text_model, *QUICK, "--image", str(image), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for label in ("model load", "pp64", "tg16", "encode tile 512x512", "encode thumbnail", "TTFT image + question",
                  "TTFT follow-up", "peak RSS", "decode bound", "CPU:", "llama.cpp:"):  # fmt: skip
        assert label in result.stdout, label
    assert "median" in result.stdout.splitlines()[1]
    assert set(json.loads(out.read_text())["figures"]) == FIGURES


def test_bad_image_is_a_one_line_error(text_model: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", text_model, *QUICK, "--image", str(tmp_path / "missing.png")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "missing.png" in result.stderr and "does not exist" in result.stderr


def test_summary_and_bandwidth() -> None:
    assert summary([3.0, 1.0, 2.0]) == {"min": 1.0, "median": 2.0, "max": 3.0}
    assert memory_bandwidth(8 * 2**20, threads=2, repeat=1) > 1e8  # any machine reads 8 MB faster than 100 MB/s
