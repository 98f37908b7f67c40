"""`make bench-convert`: our converter beside llama.cpp's convert_hf_to_gguf.py on the `full` synthetic checkpoint.

Same machine, same run, same checkpoint (official-2.5 layout, 448,718,848 parameters), same outtype. llama.cpp's
converter runs in the reference venv (it needs torch) and writes the text model and the mmproj in two runs; ours
writes both in one. Results: build/bench/convert.json. The memory goal of issue B: peak RSS <= 2 x the largest
tensor (in the checkpoint's bf16) + 200 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from convert.safetensors_io import read_header
from convert.synthetic import CheckpointSpec, write_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "build" / "bench"
REF_PY = ROOT / ".venv-ref" / "bin" / "python"


def _measure(command: list[str]) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.measure", *command], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(output)
    if result["returncode"]:
        raise SystemExit(f"benchmark command failed: {command}\n{result.get('stderr_tail', '')}")
    return result


def _checkpoint() -> Path:
    folder = BENCH / "full-official-2.5"
    if not (folder / "model.safetensors").exists():
        write_checkpoint(folder, CheckpointSpec("full", "official-2.5"), force=True)
    return folder


def run(outtype: str, with_llama_cpp: bool) -> dict[str, Any]:
    checkpoint = _checkpoint()
    largest = max(record.nbytes for record in read_header(checkpoint / "model.safetensors"))
    out = BENCH / "convert-out"
    ours = _measure([sys.executable, "-m", "convert", str(checkpoint), "--outdir", str(out / "ours"),
                     "--outtype", outtype, "--force", "--quiet"])  # fmt: skip
    report: dict[str, Any] = {
        "checkpoint": "full official-2.5 synthetic (448,718,848 parameters, bf16)",
        "outtype": outtype,
        "largest_tensor_mb": round(largest / 2**20, 1),
        "rss_bound_mb": round(2 * largest / 2**20 + 200, 1),
        "lfm_edge": ours,
    }
    report["lfm_edge"]["within_rss_bound"] = ours["peak_rss_mb"] <= report["rss_bound_mb"]
    if with_llama_cpp:
        runner = [str(REF_PY), "-m", "tests.reference.llamacpp_convert", str(checkpoint), "--outtype", outtype]
        text = _measure([*runner, "--outfile", str(out / "llamacpp-text.gguf")])
        mmproj = _measure([*runner, "--mmproj", "--outfile", str(out / "llamacpp-mmproj.gguf")])
        report["llama_cpp"] = {
            "seconds": round(text["seconds"] + mmproj["seconds"], 3),
            "peak_rss_mb": max(text["peak_rss_mb"], mmproj["peak_rss_mb"]),
            "text": text,
            "mmproj": mmproj,
        }
        report["time_ratio_ours_over_llama_cpp"] = round(ours["seconds"] / report["llama_cpp"]["seconds"], 3)
        report["rss_ratio_ours_over_llama_cpp"] = round(ours["peak_rss_mb"] / report["llama_cpp"]["peak_rss_mb"], 3)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outtype", default="f16", choices=["f32", "f16", "bf16", "q8_0"])
    parser.add_argument("--no-llama-cpp", action="store_true", help="skip llama.cpp's converter (no reference venv)")
    args = parser.parse_args()
    report = run(args.outtype, with_llama_cpp=not args.no_llama_cpp and REF_PY.exists())
    BENCH.mkdir(parents=True, exist_ok=True)
    (BENCH / "convert.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
