"""`make bench-reference`: our runtime beside raw llama.cpp (llama-bench, llama-mtmd-cli built from the llama.cpp
tree vendored in the pinned llama-cpp-python sdist: same commit, same default flags), same machine, same run.

Figures: pp512 and tg128 tok/s (llama-bench vs `lfm-edge bench`), and the encode time of one 512x512 image slice
(llama-mtmd-cli's "encoding done in" log for the single 512x512 slice vs our per-tile encode).
Writes build/bench/reference.json.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "build" / "llama-ref" / "bin"
TEXT = ROOT / "build" / "bench" / "convert-out" / "ours" / "full-official-2.5-f16.gguf"
MMPROJ = TEXT.with_name(f"mmproj-{TEXT.name}")
THREADS = "2"


def _llama_bench(repeat: int) -> dict[str, float]:
    command = [str(BIN / "llama-bench"), "-m", str(TEXT), "-p", "512", "-n", "128", "-t", THREADS,
               "-r", str(repeat), "-o", "json"]  # fmt: skip
    rows = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    figures = {}
    for row in rows:
        key = "prompt_tok_s" if row["n_prompt"] else "decode_tok_s"
        figures[key] = float(row["avg_ts"])
    return figures


def _mtmd_slice_ms(image: Path, repeat: int) -> float:
    times: list[float] = []
    for _ in range(repeat):
        command = [str(BIN / "llama-mtmd-cli"), "-m", str(TEXT), "--mmproj", str(MMPROJ), "--image", str(image),
                   "-p", "Describe.", "-n", "1", "-t", THREADS, "--temp", "0"]  # fmt: skip
        log = subprocess.run(command, check=True, capture_output=True, text=True, errors="replace")
        found = re.findall(r"(?:slice encoded|batch encoding done) in (\d+) ms", log.stdout + log.stderr)
        times.extend(float(value) for value in found)
    if not times:
        raise SystemExit("llama-mtmd-cli printed no 'slice encoded in' timing")
    return float(statistics.median(times))


def _ours(repeat: int) -> dict[str, Any]:
    command = [str(Path(sys.executable).with_name("lfm-edge")), "-q", "bench", str(TEXT), "--repeat", str(repeat),
               "--threads", THREADS, "--json"]  # fmt: skip
    report: dict[str, Any] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return report


def main() -> int:
    repeat = 3
    image = Path(tempfile.mkdtemp()) / "random_512x512.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(image)
    reference = _llama_bench(repeat)
    reference["slice_encode_ms"] = _mtmd_slice_ms(image, repeat)
    figures = _ours(repeat)["figures"]
    ours = {
        "prompt_tok_s": figures["prompt_tok_s"]["median"],
        "decode_tok_s": figures["decode_tok_s"]["median"],
        "slice_encode_ms": figures["tile_encode_ms"]["median"],
    }
    report = {
        "model": TEXT.name, "threads": int(THREADS), "repeat": repeat, "llama_cpp": reference, "lfm_edge": ours,
        "ratios": {
            "pp512_ours_over_llama_bench": ours["prompt_tok_s"] / reference["prompt_tok_s"],
            "tg128_ours_over_llama_bench": ours["decode_tok_s"] / reference["decode_tok_s"],
            "encode_speed_ours_over_mtmd_cli": reference["slice_encode_ms"] / ours["slice_encode_ms"],
        },
    }  # fmt: skip
    out = ROOT / "build" / "bench" / "reference.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
