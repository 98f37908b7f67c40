"""Raw llama.cpp beside our runtime: llama-bench and llama-mtmd-cli, built by `make bench-reference` from the llama.cpp
tree vendored in the pinned llama-cpp-python sdist (same commit, same default flags: native CPU features).

Helpers for `make bench` (benchmarks.bench_all), and `make bench-reference`'s own short run (`main`): pp512, tg128
and the encode time of one 512x512 image slice (llama-mtmd-cli's "encoding done in" log), ours beside theirs, on
the full-size F16 model: build/bench/reference.json.
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
THREADS = 2


def amx_flags(tool: str) -> list[str]:
    """Raw llama.cpp segfaults on quantized LFM2 files where ggml's AMX kernels are active (README, "Reliability"):
    there it runs with weights as stored. Its `-ot` cannot name CPU_REPACK, so unlike lfm_edge it loses the repacked
    layout too; both facts go in the results."""
    from lfm_edge.native.text import amx_kernels_active

    if not amx_kernels_active():
        return []
    return ["--repack", "0"] if tool == "llama-bench" else ["--no-repack"]


def available() -> bool:
    return (BIN / "llama-bench").exists() and (BIN / "llama-mtmd-cli").exists()


def llama_bench(text: Path, threads: int, tokens: tuple[int, int] = (512, 128), repeat: int = 1) -> dict[str, Any]:
    """llama-bench's pp and tg tok/s (its own warm-up first) and its build commit; tokens = (prompt, generated)."""
    command = [str(BIN / "llama-bench"), "-m", str(text), "-p", str(tokens[0]), "-n", str(tokens[1]),
               "-t", str(threads), "-r", str(repeat), "-o", "json", *amx_flags("llama-bench")]  # fmt: skip
    rows = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    figures: dict[str, Any] = {"build_commit": rows[0].get("build_commit", "")}
    for row in rows:
        figures["prompt_tok_s" if row["n_prompt"] else "decode_tok_s"] = float(row["avg_ts"])
    return figures


def mtmd_slice_ms(text: Path, mmproj: Path, image: Path, threads: int) -> float:
    """llama-mtmd-cli's encode time of the image's slices (median of its log lines), one run."""
    command = [str(BIN / "llama-mtmd-cli"), "-m", str(text), "--mmproj", str(mmproj), "--image", str(image),
               "-p", "Describe.", "-n", "1", "-t", str(threads), "--temp", "0", "-c", "4096",
               *amx_flags("mtmd")]  # fmt: skip
    log = subprocess.run(command, check=True, capture_output=True, text=True, errors="replace")
    found = re.findall(r"(?:slice encoded|batch encoding done) in (\d+) ms", log.stdout + log.stderr)
    if not found:
        raise RuntimeError("llama-mtmd-cli printed no 'slice encoded in' timing")
    return float(statistics.median(float(value) for value in found))


def mtmd_describe(text: Path, mmproj: Path, image: Path, options: tuple[int, int, int]) -> dict[str, Any]:
    """Peak RSS and wall time of llama-mtmd-cli describing an image; options = (n_ctx, threads, max tokens)."""
    n_ctx, threads, tokens = options
    command = [str(BIN / "llama-mtmd-cli"), "-m", str(text), "--mmproj", str(mmproj), "--image", str(image),
               "-p", "Describe this image.", "-n", str(tokens), "-c", str(n_ctx), "-t", str(threads),
               "--temp", "0", *amx_flags("mtmd")]  # fmt: skip
    output = subprocess.run([sys.executable, "-m", "benchmarks.measure", *command], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(output)
    if result["returncode"]:
        raise RuntimeError(f"llama-mtmd-cli failed: {result.get('stderr_tail', '')[-300:]}")
    return result


def random_image(folder: Path, width: int, height: int) -> Path:
    path = folder / f"random_{width}x{height}.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def ours(text: Path, mmproj: Path, threads: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """`lfm-edge bench --json` in a process of its own (its peak RSS is then the bench's alone)."""
    command = [str(Path(sys.executable).with_name("lfm-edge")), "-q", "bench", str(text), "--mmproj", str(mmproj),
               "--threads", str(threads), "--json", *extra]  # fmt: skip
    report: dict[str, Any] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return report


def main() -> int:
    repeat = 3
    image = random_image(Path(tempfile.mkdtemp()), 512, 512)
    reference = llama_bench(TEXT, THREADS, repeat=repeat)
    reference["slice_encode_ms"] = statistics.median(mtmd_slice_ms(TEXT, MMPROJ, image, THREADS) for _ in range(repeat))
    figures = ours(TEXT, MMPROJ, THREADS, ("--repeat", str(repeat)))["figures"]
    pairs = (("prompt_tok_s", "prompt_tok_s"), ("decode_tok_s", "decode_tok_s"), ("slice_encode_ms", "tile_encode_ms"))
    mine = {name: figures[key]["median"] for name, key in pairs}
    report = {
        "model": TEXT.name, "threads": THREADS, "repeat": repeat, "llama_cpp": reference, "lfm_edge": mine,
        "ratios": {
            "pp512_ours_over_llama_bench": mine["prompt_tok_s"] / reference["prompt_tok_s"],
            "tg128_ours_over_llama_bench": mine["decode_tok_s"] / reference["decode_tok_s"],
            "encode_speed_ours_over_mtmd_cli": reference["slice_encode_ms"] / mine["slice_encode_ms"],
        },
    }  # fmt: skip
    out = ROOT / "build" / "bench" / "reference.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
