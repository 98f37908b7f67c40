"""From an RGB image and its layout to the uint8 crops, and from crops to transformers' ``pixel_values``.

Crops are what the runtime hands to llama.cpp's mtmd as bitmaps (at their final size, so mtmd neither resizes nor
tiles them, SPEC.md §9). ``pixel_values`` is only needed to compare with transformers or to run its vision tower:
transformers fuses rescale and normalisation into ``(x - 127.5) / 127.5`` in float32 (mean 0.5 / rescale 1/255 =
127.5, std likewise), flattens each 16x16 patch as (py, px, channel) and zero-pads every crop to
``max_num_patches`` rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lfm_edge.image.layout import ImageLayout
from lfm_edge.image.resize import resize_many

_NORMALISE_OFFSET = np.float32(127.5)
_NORMALISE_SCALE = np.float32(127.5)


def make_crops(image: npt.NDArray[np.uint8], layout: ImageLayout) -> list[npt.NDArray[np.uint8]]:
    """The crops of an (H, W, 3) uint8 image, in transformers' order; each a C-contiguous (h, w, 3) uint8 array."""
    thumb_h, thumb_w = layout.image_size
    if layout.grid is None:
        return resize_many(image, [(thumb_w, thumb_h)])
    cols, rows = layout.grid
    tile = layout.tile_size
    sizes = [(cols * tile, rows * tile)] + ([(thumb_w, thumb_h)] if layout.thumbnail else [])
    resized = resize_many(image, sizes)
    grid_image = resized[0]
    crops = [
        np.ascontiguousarray(grid_image[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile])
        for r in range(rows)
        for c in range(cols)
    ]
    return crops + resized[1:]


def patchify(crop: npt.NDArray[np.uint8], patch_size: int) -> npt.NDArray[np.float32]:
    """One crop's unpadded pixel_values rows: (h/ps * w/ps, ps * ps * 3) float32, row-major patches."""
    height, width, channels = crop.shape
    values = (crop.astype(np.float32) - _NORMALISE_OFFSET) / _NORMALISE_SCALE
    grid = values.reshape(height // patch_size, patch_size, width // patch_size, patch_size, channels)
    return grid.transpose(0, 2, 1, 3, 4).reshape(-1, patch_size * patch_size * channels)


@dataclass(frozen=True)
class PixelBatch:
    """transformers' tensors for a list of crops: ``pixel_values`` (N, L, ps²·3) float32 zero-padded,
    ``pixel_attention_mask`` (N, L) int32 and ``spatial_shapes`` (N, 2) int64 (patch rows, patch columns)."""

    pixel_values: npt.NDArray[np.float32]
    pixel_attention_mask: npt.NDArray[np.int32]
    spatial_shapes: npt.NDArray[np.int64]


def pixel_batch(crops: Sequence[npt.NDArray[np.uint8]], patch_size: int, max_num_patches: int) -> PixelBatch:
    """Pad every crop's patches to ``max_num_patches`` rows (the layout never yields more, see layout.py)."""
    count = len(crops)
    values = np.zeros((count, max_num_patches, patch_size * patch_size * 3), dtype=np.float32)
    mask = np.zeros((count, max_num_patches), dtype=np.int32)
    shapes = np.zeros((count, 2), dtype=np.int64)
    for index, crop in enumerate(crops):
        rows = patchify(crop, patch_size)
        values[index, : len(rows)] = rows
        mask[index, : len(rows)] = 1
        shapes[index] = (crop.shape[0] // patch_size, crop.shape[1] // patch_size)
    return PixelBatch(values, mask, shapes)
