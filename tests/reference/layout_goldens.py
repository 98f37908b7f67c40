"""(W, H) -> image layout table computed by transformers 5.23's own Lfm2Vl layout functions (layout_table.npz).

Run from the repository root with the reference venv:  python -m tests.reference.layout_goldens

For each sampled size and each config (`official` = LFM2.5-VL-450M processor_config.json, `min_tokens_32` =
the same with min_image_tokens=32) the columns come from calling, on a real `Lfm2VlImageProcessor` /
`Lfm2VlProcessor` (models/lfm2_vl/image_processing_lfm2_vl.py, processing_lfm2_vl.py):
* `_is_image_too_large(...)`                 -> the "too large" test,
* `smart_resize(...)`                       -> single-crop / thumbnail (width, height) = image_sizes,
* `_get_grid_layout(...)`                   -> grid (cols, rows) via `_target_ratios` + `find_closest_aspect_ratio`,
* `_get_image_num_tokens` + `_build_image_tokens` -> the expanded placeholder, whose `<image>` count is the token count.
The only glue is `resize_and_split`'s own decision: tiled = too_large and not (min_tiles == max_tiles == 1);
untiled images have rows = cols = 1 (what HF returns as image_rows / image_cols).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from tests.reference.common import GOLDENS, IMAGES, save_npz, write_json
from tests.reference.image_goldens import load_tokenizer, make_processor

OUT = GOLDENS / "image"
MAX_SIDE = 8192
CONFIGS: dict[str, dict[str, Any]] = {"official": {}, "min_tokens_32": {"min_image_tokens": 32}}
COLUMNS = ("tiled", "grid_cols", "grid_rows", "thumb_w", "thumb_h", "n_tokens")


def _log_uniform(rng: np.random.Generator, n: int, low: float = 1.0, high: float = MAX_SIDE) -> np.ndarray:
    return np.floor(np.exp(rng.uniform(np.log(low), np.log(high + 1), n))).astype(np.int64)


def _hyperbola(rng: np.random.Generator, area: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sizes with W*H within a few pixels of `area` (the min/max pixel and too-large thresholds)."""
    h = _log_uniform(rng, n)
    w = np.rint(area / h).astype(np.int64)[:, None] + np.arange(-2, 3)[None, :]
    return w.ravel(), np.repeat(h, 5)


def _ratio_multiples(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact aspect ratios a:b of the candidate grids (ties in find_closest_aspect_ratio)."""
    a, b = rng.integers(1, 13, n), rng.integers(1, 13, n)
    scale = _log_uniform(rng, n, 16, 2048)
    return a * scale, b * scale


def _fixed_sizes() -> list[tuple[int, int]]:
    """The sizes of the test images (both orientations are added) and of SPEC section 3.6."""
    manifest = json.loads((IMAGES / "MANIFEST.json").read_text())["images"]
    return [*sorted({tuple(entry["size"]) for entry in manifest.values()}), (1920, 1080), (4000, 3000)]


def sample_sizes(seed: int = 20260101) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic, de-duplicated (W, H) samples over 1..8192, sorted by (W, H)."""
    rng = np.random.default_rng(seed)
    parts: list[tuple[np.ndarray, np.ndarray]] = [(_log_uniform(rng, 60_000), _log_uniform(rng, 60_000))]
    side = np.arange(1, MAX_SIDE + 1)
    parts.append((side, side))  # every square: the 720/721/723 threshold and more
    band = np.arange(690, 761)
    parts.append((np.repeat(band, band.size), np.tile(band, band.size)))
    m32 = np.arange(32, 4097, 32)
    parts.append((np.repeat(m32, m32.size), np.tile(m32, m32.size)))
    parts.append((rng.integers(1, 513, 10_000) * 16, rng.integers(1, 513, 10_000) * 16))
    ties = np.arange(0, 256) * 32 + 16  # x/32 == k + 0.5: banker's rounding
    parts.append((rng.choice(ties, 10_000) + rng.integers(-1, 2, 10_000), rng.choice(ties, 10_000)))
    for area in (32_768, 65_536, 262_144, 524_288):
        parts.append(_hyperbola(rng, area, 3_000))
    short, long = rng.integers(1, 65, 10_000), _log_uniform(rng, 10_000, 64)
    parts += [(short, long), (long, short)]
    parts.append(_ratio_multiples(rng, 5_000))
    fixed = np.array(_fixed_sizes(), dtype=np.int64).reshape(-1, 2)
    parts += [(fixed[:, 0], fixed[:, 1]), (fixed[:, 1], fixed[:, 0])]
    w = np.concatenate([p[0] for p in parts])
    h = np.concatenate([p[1] for p in parts])
    keep = (w >= 1) & (w <= MAX_SIDE) & (h >= 1) & (h <= MAX_SIDE)
    key = np.unique(w[keep] * (MAX_SIDE + 1) + h[keep])
    return (key // (MAX_SIDE + 1)).astype(np.int32), (key % (MAX_SIDE + 1)).astype(np.int32)


def layout(processor: Any, width: int, height: int) -> tuple[int, ...]:
    """One row of the table, from HF's own functions (see the module docstring)."""
    ip = processor.image_processor
    splitting = ip.do_image_splitting and not ip.min_tiles == ip.max_tiles == 1
    too_large = ip._is_image_too_large(
        height, width, ip.max_image_tokens, ip.encoder_patch_size, ip.downsample_factor, ip.max_pixels_tolerance
    )
    new_w, new_h = ip.smart_resize(
        height, width, ip.downsample_factor, ip.min_image_tokens, ip.max_image_tokens, ip.encoder_patch_size
    )
    tiled = bool(too_large and splitting)
    cols, rows = ip._get_grid_layout(height, width, ip.min_tiles, ip.max_tiles, ip.tile_size)[:2] if tiled else (1, 1)
    per_tile, for_image = processor._get_image_num_tokens([new_h, new_w])
    text = processor._build_image_tokens(rows, cols, per_tile, for_image, ip.use_thumbnail, True)
    return int(tiled), cols, rows, new_w, new_h, text.count(processor.image_token)


def cross_check(arrays: dict[str, np.ndarray]) -> int:
    """The table must agree with what the full HF processor returned for the test images (image goldens)."""
    index = {(int(w), int(h)): i for i, (w, h) in enumerate(zip(arrays["W"], arrays["H"], strict=True))}
    checked = 0
    for name in CONFIGS:
        path = OUT / f"{name}.json"
        if not path.exists():
            continue
        for image, rec in json.loads(path.read_text())["images"].items():
            i = index.get(tuple(rec["input_size"]))
            if i is None or "error" in rec:
                continue
            row = [int(arrays[f"{name}__{c}"][i]) for c in COLUMNS]
            tiled = int(rec["image_rows"] * rec["image_cols"] > 1)
            expected = [
                tiled,
                rec["image_cols"],
                rec["image_rows"],
                rec["image_sizes"][1],
                rec["image_sizes"][0],
                rec["prompt"]["image_tokens"],
            ]
            assert row == expected, f"{name} {image}: table {row} != processor {expected}"
            checked += 1
    return checked


def main() -> None:
    start = time.perf_counter()
    widths, heights = sample_sizes()
    tokenizer, _ = load_tokenizer()
    arrays: dict[str, np.ndarray] = {"W": widths, "H": heights}
    for name, overrides in CONFIGS.items():
        processor = make_processor(overrides, tokenizer)
        table = np.array(
            [layout(processor, int(w), int(h)) for w, h in zip(widths, heights, strict=True)], dtype=np.int64
        )
        assert table.max() < 2**31
        for i, column in enumerate(COLUMNS):
            arrays[f"{name}__{column}"] = table[:, i].astype(np.int32)
    save_npz(OUT / "layout_table.npz", **arrays)
    write_json(
        OUT / "layout_table.json",
        {
            "file": "layout_table.npz",
            "rows": int(widths.size),
            "arrays": sorted(arrays),
            "configs": {
                name: {"overrides": o, "base": "LFM2.5-VL-450M processor_config.json"} for name, o in CONFIGS.items()
            },
            "columns": {
                "W, H": "input size (PIL size, upright)",
                "tiled": "0/1",
                "grid_cols, grid_rows": "1, 1 if untiled",
                "thumb_w, thumb_h": "smart_resize size = image_sizes (single crop, or thumbnail if tiled)",
                "n_tokens": "<image> tokens in the expanded placeholder",
            },
        },
    )
    checked = cross_check(arrays)
    print(
        f"{widths.size} sizes x {len(CONFIGS)} configs in {time.perf_counter() - start:.1f}s; "
        f"{checked} rows agree with the image goldens"
    )


if __name__ == "__main__":
    main()
