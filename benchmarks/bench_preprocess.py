"""Benchmark (`make bench-preprocess`): lfm_edge's HF-exact preprocessing beside Pillow's own BILINEAR resize.

For 640x480, 1920x1080 and 4000x3000 photos (decoded once, decode not timed) it times, interleaved, in one process:

* lfm_edge: ``plan_layout`` + ``make_crops`` (every uint8 crop, tiles cut out and made contiguous);
* Pillow: ``Image.resize(size, BILINEAR)`` to the same sizes (tile grid and thumbnail, or the single image) plus
  ``Image.crop`` of the same tiles: the same outputs with Pillow's (±1 LSB different) filter.

Also reported, not compared: building transformers' padded float32 pixel_values from the crops.
Run with one BLAS thread (the Makefile sets OPENBLAS_NUM_THREADS=1) so both sides use one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from PIL import Image

from lfm_edge.image import ProcessorSettings, make_crops, pixel_batch, plan_layout
from lfm_edge.image.layout import ImageLayout
from lfm_edge.image.load import load_image

IMAGES = Path(__file__).resolve().parents[1] / "tests" / "images"
CASES = ("photo_640x480.jpg", "photo_1920x1080.jpg", "photo_4000x3000.jpg")


def _pillow_same_work(image: Image.Image, layout: ImageLayout) -> list[Image.Image]:
    thumb = (layout.image_size[1], layout.image_size[0])
    if layout.grid is None:
        return [image.resize(thumb, Image.Resampling.BILINEAR)]
    cols, rows = layout.grid
    tile = layout.tile_size
    grid = image.resize((cols * tile, rows * tile), Image.Resampling.BILINEAR)
    crops = [grid.crop((c * tile, r * tile, (c + 1) * tile, (r + 1) * tile)) for r in range(rows) for c in range(cols)]
    return crops + ([image.resize(thumb, Image.Resampling.BILINEAR)] if layout.thumbnail else [])


def _interleaved(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return times


def _summary(samples: list[float]) -> dict[str, float]:
    return {"min_ms": min(samples) * 1e3, "median_ms": statistics.median(samples) * 1e3}


def bench_case(name: str, settings: ProcessorSettings, repeats: int) -> dict[str, Any]:
    pixels = load_image(IMAGES / name)
    pil = Image.fromarray(pixels)
    layout = plan_layout(pixels.shape[1], pixels.shape[0], settings)
    crops = make_crops(pixels, layout)
    functions: dict[str, Callable[[], object]] = {
        "lfm_edge": lambda: make_crops(pixels, plan_layout(pixels.shape[1], pixels.shape[0], settings)),
        "pillow": lambda: _pillow_same_work(pil, layout),
        "pixel_values": lambda: pixel_batch(crops, settings.encoder_patch_size, settings.max_num_patches),
    }
    _interleaved(functions, 1)  # warm-up: caches, allocator, plans
    times = _interleaved(functions, repeats)
    ours, pillow = _summary(times["lfm_edge"]), _summary(times["pillow"])
    return {
        "image": name,
        "size": [pixels.shape[1], pixels.shape[0]],
        "crops": [list(size) for size in layout.crop_sizes],
        "repeats": repeats,
        "lfm_edge": ours,
        "pillow_bilinear": pillow,
        "pixel_values_extra": _summary(times["pixel_values"]),
        "ratio_median": ours["median_ms"] / pillow["median_ms"],
        "ratio_min": ours["min_ms"] / pillow["min_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench/preprocess.json"))
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    settings = ProcessorSettings()
    results = [bench_case(name, settings, args.repeats) for name in CASES]
    report = {
        "what": "plan_layout + make_crops vs Pillow BILINEAR resizes + crops of the same sizes; decode excluded",
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pillow": PIL.__version__,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        },
        "cases": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for case in results:
        print(
            f"{case['size'][0]}x{case['size'][1]}: lfm_edge {case['lfm_edge']['median_ms']:.1f} ms, Pillow "
            f"{case['pillow_bilinear']['median_ms']:.1f} ms, ratio {case['ratio_median']:.2f} (median) "
            f"{case['ratio_min']:.2f} (min); pixel_values +{case['pixel_values_extra']['median_ms']:.1f} ms"
        )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
