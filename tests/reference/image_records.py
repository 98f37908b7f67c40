"""Turns one transformers 5.23 `Lfm2VlProcessor` result into the JSON record of tests/goldens/image/<variant>.json.

Everything recorded comes from transformers itself:
* `pixel_values`, `pixel_attention_mask`, `spatial_shapes`, `image_rows`, `image_cols`, `image_sizes`: the output of
  `Lfm2VlImageProcessor._preprocess` (models/lfm2_vl/image_processing_lfm2_vl.py), captured from
  `Lfm2VlProcessor._process_images`;
* the expanded prompt: the text `ProcessorMixin.get_text_with_replacements` hands to the tokenizer, built by
  `Lfm2VlProcessor.replace_image_token` (models/lfm2_vl/processing_lfm2_vl.py);
* the uint8 crops: recovered from `pixel_values` (the uint8 -> float32 map is injective) and checked by pushing them
  back through HF's own `rescale_and_normalize` + `convert_image_to_patches`, which must give HF's float32 rows
  bit for bit (`renormalised_exact`).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from transformers.models.lfm2_vl.image_processing_lfm2_vl import convert_image_to_patches

from tests.reference.common import rle_ids, sha256_array, sha256_bytes

_PIECE = re.compile(r"(<image>|<\|[^|<>]*\|>)")


def rle_text(text: str) -> list[list[Any]]:
    """Run-length encoding of a prompt over its markers: [[piece, count], ...]; "".join(p * n) == text."""
    runs: list[list[Any]] = []
    for piece in (p for p in _PIECE.split(text) if p):
        if runs and runs[-1][0] == piece:
            runs[-1][1] += 1
        else:
            runs.append([piece, 1])
    assert "".join(p * n for p, n in runs) == text
    return runs


def prompt_record(text: str, image_token: str) -> dict[str, Any]:
    return {
        "rle": rle_text(text),
        "chars": len(text),
        "sha256": sha256_bytes(text.encode("utf-8")),
        "image_tokens": text.count(image_token),
    }


def ids_record(ids: list[int]) -> dict[str, Any]:
    return {"len": len(ids), "rle": rle_ids(ids), "sha256_int64": sha256_array(np.asarray(ids, dtype=np.int64))}


def _unpatchify(rows: torch.Tensor, ph: int, pw: int, ps: int) -> torch.Tensor:
    """Inverse of HF convert_image_to_patches (patch rows flattened as (py, px, C)) -> HxWxC."""
    return rows.reshape(ph, pw, ps, ps, -1).permute(0, 2, 1, 3, 4).reshape(ph * ps, pw * ps, -1)


def crop_record(image_processor: Any, pixel_values: torch.Tensor, ph: int, pw: int) -> dict[str, Any]:
    """Hashes of one crop: its uint8 HWC pixels (recovered) and its unpadded float32 pixel_values rows."""
    ps = image_processor.encoder_patch_size
    rows = pixel_values[: ph * pw]
    mean = float(image_processor.image_mean[0]) / image_processor.rescale_factor
    std = float(image_processor.image_std[0]) / image_processor.rescale_factor
    crop = _unpatchify(torch.round(rows * std + mean).clamp(0, 255).to(torch.uint8), ph, pw, ps)
    again = image_processor.rescale_and_normalize(
        crop.permute(2, 0, 1)[None].contiguous(),
        image_processor.do_rescale,
        image_processor.rescale_factor,
        image_processor.do_normalize,
        image_processor.image_mean,
        image_processor.image_std,
    )
    again_rows = convert_image_to_patches(again, ps)[0]
    rows_np = rows.numpy()
    return {
        "shape_hw": [int(crop.shape[0]), int(crop.shape[1])],
        "spatial_shape": [ph, pw],
        "uint8_sha256": sha256_array(crop.numpy()),
        "float32_sha256": sha256_array(rows_np),
        "float64_sum": float(rows_np.astype(np.float64).sum()),
        "renormalised_exact": again_rows.numpy().tobytes() == rows_np.tobytes(),
        "padding_all_zero": bool((pixel_values[ph * pw :] == 0).all()),
    }


def _roles(n_crops: int, rows: int, cols: int) -> list[str]:
    if n_crops == 1:
        return ["single"]
    roles = [f"tile_r{r + 1}_c{c + 1}" for r in range(rows) for c in range(cols)]
    return (roles + ["thumbnail"] * (n_crops - len(roles)))[:n_crops]


def processed_record(image_processor: Any, processed: Any) -> dict[str, Any]:
    """Per-crop records plus the per-image outputs (rows, cols, image_sizes) of one single-image call."""
    pixel_values = processed["pixel_values"]
    shapes = processed["spatial_shapes"].tolist()
    masks = processed["pixel_attention_mask"].sum(dim=1).tolist()
    rows, cols = int(processed["image_rows"][0]), int(processed["image_cols"][0])
    crops = []
    for i, (role, (ph, pw)) in enumerate(zip(_roles(len(shapes), rows, cols), shapes, strict=True)):
        crops.append(
            {
                "index": i,
                "role": role,
                "mask_sum": int(masks[i]),
                **crop_record(image_processor, pixel_values[i], ph, pw),
            }
        )
    return {
        "image_rows": rows,
        "image_cols": cols,
        "image_sizes": [int(v) for v in processed["image_sizes"][0]],
        "pixel_values_shape": list(pixel_values.shape),
        "pixel_attention_mask_shape": list(processed["pixel_attention_mask"].shape),
        "n_crops": len(crops),
        "crops": crops,
    }


def consistency_problems(record: dict[str, Any], max_num_patches: int) -> list[str]:
    """What a model fed this output would trip over (HF itself raises nothing in these cases)."""
    problems = []
    features = sum((c["spatial_shape"][0] // 2) * (c["spatial_shape"][1] // 2) for c in record["crops"])
    if features != record["prompt"]["image_tokens"]:
        problems.append(
            f"prompt has {record['prompt']['image_tokens']} <image> tokens but the crops give "
            f"{features} features (sum of ph/2*pw/2)"
        )
    for crop in record["crops"]:
        ph, pw = crop["spatial_shape"]
        if crop["mask_sum"] != ph * pw:
            problems.append(f"crop {crop['index']}: mask sum {crop['mask_sum']} != {ph}*{pw} patches")
        if ph * pw > max_num_patches:
            problems.append(f"crop {crop['index']}: {ph * pw} patches > max_num_patches {max_num_patches} (not padded)")
        if not crop["renormalised_exact"]:
            problems.append(f"crop {crop['index']}: uint8 recovery does not re-normalise bit-exactly")
    if record["n_crops"] == 1 and record["crops"][0]["shape_hw"] != record["image_sizes"]:
        problems.append(f"single crop is {record['crops'][0]['shape_hw']} but image_sizes is {record['image_sizes']}")
    return problems


def value_table(image_processor: Any, image_u8: np.ndarray, processed: Any) -> dict[str, Any]:
    """float32 HF produces for each uint8 value, from an image that is not resized (its crop == the input)."""
    ph, pw = processed["spatial_shapes"][0].tolist()
    ps = image_processor.encoder_patch_size
    source = torch.from_numpy(np.ascontiguousarray(image_u8.transpose(2, 0, 1)))[None]
    source_rows = convert_image_to_patches(source, ps)[0].numpy()
    floats = processed["pixel_values"][0, : ph * pw].numpy()
    assert source_rows.shape == floats.shape, "the value-table image must not be resized"
    table = []
    for value in range(256):
        found = np.unique(floats[source_rows == value])
        assert found.size == 1, f"uint8 {value} maps to {found.size} float32 values"
        table.append(found[0])
    arr = np.asarray(table, dtype=np.float32)
    return {
        "float32": [float(v) for v in arr],
        "float32_bits_hex": [f"{int(b):08x}" for b in arr.view(np.uint32)],
        "sha256_float32": sha256_array(arr),
    }
