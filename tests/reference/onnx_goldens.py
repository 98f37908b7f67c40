"""Crop-feature goldens for the ONNX vision graph: transformers 5.23 features of crops of many shapes.

Run from the repository root, in the reference venv (seconds)::

    python -m tests.reference.onnx_goldens

The model goldens (model_goldens.py) hold features of real tiles and thumbnails only (grids 32x32, 26x36, 16x20);
these add the shapes our tiling can also produce where the learned 16x16 position grid is shrunk along one axis
(antialiased) and stretched along the other: elongated thumbnails (2x128, 4x64, 64x4), small and odd grids.

For each layout (official-2.5, lfm2-vl; tiny, seed 0) and each shape: a seeded uint8 crop (smooth gradient plus
noise) is patchified as Lfm2VlImageProcessor does ((x/255 - 0.5)/0.5, patches flattened (py, px, C), padded with
zeros to 1024 patches, pixel_attention_mask 1 on the valid ones), then
``Lfm2VlForConditionalGeneration.get_image_features(...).pooler_output[0]`` (float32, CPU, one thread) is stored.
Writes tests/goldens/onnx/crop_features.npz (crops ``crop_HxW``, features ``<layout>__HxW``) and index.json.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tests.reference.common import GOLDENS, save_npz, sha256_array, write_json
from tests.reference.hf_checkpoints import SEED, deterministic_torch, load_model, make_checkpoint, scratch_folder

OUT = GOLDENS / "onnx"
LAYOUTS = ("official-2.5", "lfm2-vl")
# Crop sizes in pixels (multiples of 32), chosen for the position-grid resize they exercise.
SHAPES = ((32, 2048), (64, 1024), (1024, 64), (96, 672), (256, 256), (128, 512), (64, 64))
MAX_PATCHES = 1024
PATCH = 16


def make_crop(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng([height, width])
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 / max(width - 1, 1), ys * 255 / max(height - 1, 1), (xs + ys) % 256], axis=-1)
    noisy = base + rng.normal(0, 24, size=base.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def processor_inputs(crop: np.ndarray) -> dict[str, torch.Tensor]:
    height, width = crop.shape[:2]
    ph, pw = height // PATCH, width // PATCH
    x = (crop.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    patches = x.reshape(ph, PATCH, pw, PATCH, 3).transpose(0, 2, 1, 3, 4).reshape(ph * pw, -1)
    pixel_values = np.zeros((1, MAX_PATCHES, patches.shape[1]), dtype=np.float32)
    pixel_values[0, : ph * pw] = patches
    mask = np.zeros((1, MAX_PATCHES), dtype=np.int32)
    mask[0, : ph * pw] = 1
    return {
        "pixel_values": torch.from_numpy(pixel_values),
        "pixel_attention_mask": torch.from_numpy(mask),
        "spatial_shapes": torch.tensor([[ph, pw]], dtype=torch.int64),
    }


def main() -> None:
    deterministic_torch()
    arrays: dict[str, np.ndarray] = {}
    index: dict[str, Any] = {"generator": "python -m tests.reference.onnx_goldens", "seed": SEED, "crops": {}}
    for height, width in SHAPES:
        crop = make_crop(height, width)
        arrays[f"crop_{height}x{width}"] = crop
        index["crops"][f"{height}x{width}"] = {"grid_hw_patches": [height // PATCH, width // PATCH]}
    with scratch_folder() as root:
        for layout in LAYOUTS:
            model, _ = load_model(make_checkpoint(root, "tiny", layout), layout, torch.float32)
            for height, width in SHAPES:
                inputs = processor_inputs(arrays[f"crop_{height}x{width}"])
                with torch.inference_mode():
                    features = model.get_image_features(**inputs).pooler_output[0].float().numpy().copy()
                key = f"{layout}__{height}x{width}"
                arrays[key] = features
                index["crops"][f"{height}x{width}"][layout] = {
                    "shape": list(features.shape),
                    "sha256": sha256_array(features),
                }
    save_npz(OUT / "crop_features.npz", **arrays)
    write_json(OUT / "index.json", index)


if __name__ == "__main__":
    main()
