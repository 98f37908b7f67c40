"""The prompts, images and crop bookkeeping of the model goldens (tests/reference/model_goldens.py).

Images are read with transformers' own ``transformers.image_utils.load_image`` (Pillow open, EXIF transpose,
``convert("RGB")``) and handed to the processor as PIL images. Crops come from ``Lfm2VlImageProcessor.__call__``
(``return_row_col_info=True``), one image at a time, in the processor's order (tiles row-major, thumbnail last).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers.image_utils import load_image

from tests.reference.common import IMAGES, REPO_ROOT, sha256_array, sha256_bytes

PATCH = 16

_LONG_TEXT = (
    "Write a short report about the old station. The quick brown fox jumps over the lazy dog while a red bus "
    "passes by. Le chat noir est assis près de la fenêtre et regarde la rue animée de la vieille ville. Then list "
    "three numbers: 12345, 67.89 and -0.5, and explain in plain words why the sky is blue in the afternoon and "
    "how a camera turns light into pixels. Keep the answer short and finish with a question."
)

# name -> chat messages (rendered with the checkpoint's chat template, add_generation_prompt=True).
TEXT_CASES: dict[str, list[dict[str, Any]]] = {
    "text_simple": [{"role": "user", "content": "What is the capital of France?"}],
    "text_system": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello! How are you today?"},
    ],
    "text_multilingual": [
        {
            "role": "user",
            # a full-width comma (U+FF0C) on purpose: CJK punctuation
            "content": "Bonjour! 你好\uff0c世界。 Привет, как дела? こんにちは 🌍 "
            "مرحبا 안녕하세요 ¿Qué tal? Grüß Gott!",
        }
    ],
    "text_multiturn": [
        {"role": "user", "content": "def f(x): return x**2  # what does it do?"},
        {"role": "assistant", "content": "It squares x."},
        {"role": "user", "content": "And f(12)?"},
    ],
    "text_long": [{"role": "user", "content": _LONG_TEXT}],
}

# name -> (image files under tests/images, in prompt order; the user's text after the images).
IMAGE_CASES: dict[str, tuple[tuple[str, ...], str]] = {
    "image_tiled": (("photo_1024x768.jpg",), "Describe this image."),
    "image_single": (("photo_336x240.png",), "What is in this picture?"),
    "image_two": (("photo_1024x768.jpg", "photo_336x240.png"), "Compare the two images."),
}


def image_messages(files: tuple[str, ...], text: str) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "image"} for _ in files]
    content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


@dataclass
class LoadedImage:
    file: str
    image: Any  # PIL.Image.Image, RGB
    record: dict[str, Any] = field(default_factory=dict)


def load_test_image(name: str) -> LoadedImage:
    path = IMAGES / name
    if not path.is_file():
        raise FileNotFoundError(f"{path.relative_to(REPO_ROOT)} is missing: run python -m tests.reference.make_images")
    image = load_image(str(path))
    rgb = np.asarray(image)
    record = {
        "file": str(path.relative_to(REPO_ROOT)),
        "file_sha256": sha256_bytes(path.read_bytes()),
        "loaded_with": "transformers.image_utils.load_image",
        "rgb_size_wh": [image.width, image.height],
        "rgb_sha256": sha256_array(rgb),
    }
    return LoadedImage(str(path.relative_to(REPO_ROOT)), image, record)


def patches_to_rgb(valid_patches: torch.Tensor, height_patches: int, width_patches: int) -> np.ndarray:
    """HF NaFlex patch rows ((py, px, C) flattened, values 2*x/255-1) -> the crop as uint8 HxWx3."""
    u8 = torch.round((valid_patches.double() + 1.0) * 127.5).to(torch.uint8).numpy()
    grid = u8.reshape(height_patches, width_patches, PATCH, PATCH, 3).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(grid.reshape(height_patches * PATCH, width_patches * PATCH, 3))


def rgb_to_pixel_values(rgb: np.ndarray) -> np.ndarray:
    """The inverse, bit-exact for HF 5.23 (verified per crop): float32(((u8 / 255) - 0.5) / 0.5) in float64."""
    height, width = rgb.shape[0] // PATCH, rgb.shape[1] // PATCH
    grid = rgb.reshape(height, PATCH, width, PATCH, 3).transpose(0, 2, 1, 3, 4).reshape(height * width, -1)
    return ((grid.astype(np.float64) / 255.0 - 0.5) / 0.5).astype(np.float32)


def crop_kinds(rows: int, cols: int, n_crops: int) -> list[str]:
    """'tile r,c' (1-based, row-major), then 'thumbnail'; or 'single' for an untiled image."""
    if n_crops == 1:
        return ["single"]
    kinds = [f"tile {r},{c}" for r in range(1, rows + 1) for c in range(1, cols + 1)]
    if n_crops == rows * cols + 1:
        kinds.append("thumbnail")
    if len(kinds) != n_crops:
        raise AssertionError(f"{n_crops} crops do not fit a {rows}x{cols} grid")
    return kinds


def image_crops(image_processor: Any, loaded: LoadedImage) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Runs the image processor on one image: (grid info, per-crop records holding 'rgb' and 'pixel_values')."""
    out = image_processor([loaded.image], return_row_col_info=True, return_tensors="pt")
    rows, cols = int(out["image_rows"][0]), int(out["image_cols"][0])
    pixel_values, mask, shapes = out["pixel_values"], out["pixel_attention_mask"].bool(), out["spatial_shapes"]
    kinds = crop_kinds(rows, cols, pixel_values.shape[0])
    crops = []
    for index, kind in enumerate(kinds):
        height, width = (int(v) for v in shapes[index])
        valid = pixel_values[index][mask[index]]
        rgb = patches_to_rgb(valid, height, width)
        if not np.array_equal(rgb_to_pixel_values(rgb), valid.numpy()):
            raise AssertionError(f"{loaded.file} crop {index}: pixel values are not exact uint8 levels")
        crops.append(
            {
                "kind": kind,
                "spatial_shape_hw_patches": [height, width],
                "valid_patches": int(mask[index].sum()),
                "tokens": (height // 2) * (width // 2),
                "rgb_sha256": sha256_array(rgb),
                "pixel_values_sha256": sha256_array(valid.numpy()),
                "rgb": rgb,
                "pixel_values": pixel_values[index],
            }
        )
    size = [int(v) for v in out["image_sizes"][0]]
    return {"rows": rows, "cols": cols, "image_sizes_hw": size, "n_crops": len(crops)}, crops
