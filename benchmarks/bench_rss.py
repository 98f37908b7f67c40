"""Peak RSS while describing a 1920x1080 image: issue 9's memory goal (Q4_0 text + Q8_0 mmproj, n_ctx 4096:
<= 450 MB). Its own process, so ru_maxrss is this workload's alone; prints one JSON object.

    python -m benchmarks.bench_rss TEXT_GGUF --mmproj MMPROJ_GGUF [--image IMG] [--n-ctx 4096] [--threads N]
        [--profile low-memory] [--vision-backend auto|mtmd|onnx] [--vision-onnx FILE]

The default image is synthetic and deterministic (a photo-like gradient with shapes, written by a child process).
Besides the peak, the resident set after each stage (imports, load, the described image) shows where the memory goes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

import lfm_edge.model as api
from lfm_edge.bench import peak_rss_mb
from lfm_edge.generation import GenerationOptions
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.native.text import ContextOptions


def photo_like(width: int, height: int) -> Image.Image:
    """A deterministic photo-like picture: a sky-to-ground gradient, a sun, hills and boxes, mild noise."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    sky = np.array([90, 150, 230], dtype=np.float32)
    ground = np.array([60, 120, 40], dtype=np.float32)
    pixels = sky * (1 - y) + ground * y + 30 * np.sin(6 * x) * y
    noise = np.random.default_rng(0).normal(0.0, 6.0, (height, width, 3)).astype(np.float32)
    image = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.7, height * 0.1, width * 0.8, height * 0.1 + width * 0.1), fill=(250, 220, 90))
    draw.polygon([(0, height * 0.7), (width * 0.3, height * 0.45), (width * 0.6, height * 0.7)], fill=(70, 100, 60))
    for index in range(5):
        left = width * (0.1 + 0.17 * index)
        draw.rectangle((left, height * 0.72, left + width * 0.08, height * 0.9), fill=(180 - 25 * index, 60, 50))
    return image


def resident_mb() -> float | None:
    """The current resident set (VmRSS) in MB; None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def describe(args: argparse.Namespace, image: Path) -> dict[str, Any]:
    stages: dict[str, float | None] = {"imports": resident_mb()}
    context = ContextOptions(n_ctx=args.n_ctx, n_threads=args.threads)
    started = time.perf_counter()
    load_options = api.LoadOptions(context=context, mmproj=args.mmproj, profile=args.profile,
                                   vision_backend=args.vision_backend, vision_onnx=args.vision_onnx)  # fmt: skip
    with api.load(args.text, load_options) as model:
        load_s = time.perf_counter() - started
        stages["loaded"] = resident_mb()
        options = GenerationOptions(max_tokens=args.max_tokens, sampling=SamplingParams(temperature=0))
        completion = model.generate("Describe this image.", [image], options)
        stages["described"] = resident_mb()
    timings = completion.timings
    return {"load_s": load_s, "prompt_tokens": completion.prompt_tokens, "resident_mb": stages,
            "generated_tokens": completion.completion_tokens, "ttft_s": timings.ttft_s,
            "prefill_tok_s": timings.prefill_tok_s, "decode_tok_s": timings.decode_tok_s}  # fmt: skip


def write_photo(path: Path, width: int, height: int) -> Path:
    """The synthetic photo as a JPEG (run by the caller, so that its arrays do not count in this process's peak)."""
    photo_like(width, height).save(path, quality=90)
    return path


def _without_extra_buffers() -> None:
    from llama_cpp import llama_cpp as lc

    defaults = lc.llama_model_default_params

    def params() -> Any:
        chosen = defaults()
        chosen.use_extra_bufts = False
        return chosen

    lc.llama_model_default_params = params


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", type=Path)
    parser.add_argument("--mmproj", type=Path, required=True)
    parser.add_argument("--image", type=Path, help="default: the synthetic 1920x1080 photo, written by a child process")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--profile", default="default", help="a load profile (lfm_edge.profiles.PROFILES)")
    parser.add_argument("--vision-backend", default="auto", choices=("auto", "mtmd", "onnx"))
    parser.add_argument("--vision-onnx", default=None, help="ONNX vision encoder file (default: beside the mmproj)")
    parser.add_argument(
        "--no-extra-buffers",
        action="store_true",
        help="load without llama.cpp's extra CPU buffer types (repack, AMX): a workaround for builds that crash there",
    )
    args = parser.parse_args()
    if args.no_extra_buffers:
        _without_extra_buffers()
    with tempfile.TemporaryDirectory(prefix="lfm-edge-rss-") as folder:
        image = args.image
        if image is None:
            image = Path(folder) / "photo_1920x1080.jpg"
            code = f"import benchmarks.bench_rss as b, pathlib; b.write_photo(pathlib.Path({str(image)!r}), 1920, 1080)"
            subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
        report = describe(args, image)
        with Image.open(image) as opened:
            report["image"] = "x".join(map(str, opened.size))
    report.update({"model": args.text.name, "mmproj": args.mmproj.name, "n_ctx": args.n_ctx,
                   "vision_backend": args.vision_backend, "peak_rss_mb": peak_rss_mb()})  # fmt: skip
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
