"""What transformers 5.23 does to turn an image file into RGB, per test image (tests/goldens/image/load_image.json).

The reference conversion is `transformers.image_utils.load_image(path)`: `PIL.Image.open`, then
`PIL.ImageOps.exif_transpose`, then `Image.convert("RGB")`. What `convert("RGB")` does depends on the source mode;
each mode's rule below was read from Pillow's conversion code and is *verified* here, image by image, by recomputing
the RGB result from the raw (upright) pixels with numpy.

For comparison the record also holds what the processor itself would do with a *path* (not a PIL image):
`TorchvisionBackend.fetch_images` -> `transformers.image_utils.load_image_as_tensor` (torchvision `decode_image` with
`mode=RGB, apply_exif_orientation=True`, or torchcodec when installed), a different decoder.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from transformers.image_utils import load_image, load_image_as_tensor

from tests.reference.common import sha256_array

EXIF_ORIENTATION = 0x0112


def _replicate(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


def _from_rgb(raw: Image.Image) -> np.ndarray:
    return np.asarray(raw)


def _from_rgba(raw: Image.Image) -> np.ndarray:
    return np.asarray(raw)[..., :3]


def _from_l(raw: Image.Image) -> np.ndarray:
    return _replicate(np.asarray(raw))


def _from_la(raw: Image.Image) -> np.ndarray:
    return _replicate(np.asarray(raw)[..., 0])


def _from_bilevel(raw: Image.Image) -> np.ndarray:
    return _replicate(np.asarray(raw).astype(np.uint8) * 255)


def _from_i16(raw: Image.Image) -> np.ndarray:
    return _replicate(np.clip(np.asarray(raw).astype(np.int64), 0, 255).astype(np.uint8))


def _from_palette(raw: Image.Image) -> np.ndarray:
    palette = np.frombuffer(raw.palette.tobytes(), dtype=np.uint8).reshape(-1, 3)
    return palette[np.asarray(raw)]


def _from_cmyk(raw: Image.Image) -> np.ndarray:
    arr = np.asarray(raw).astype(np.int64)
    t = (255 - arr[..., :3]) * (255 - arr[..., 3:]) + 128
    return (((t >> 8) + t) >> 8).astype(np.uint8)


# mode -> (what Image.convert("RGB") does, numpy re-computation used to verify it)
CONVERSIONS: dict[str, tuple[str, Callable[[Image.Image], np.ndarray]]] = {
    "RGB": ("none (already RGB)", _from_rgb),
    "RGBA": (
        "alpha channel dropped: RGB kept as stored, NOT composited (transparent pixels keep their colour)",
        _from_rgba,
    ),
    "L": ("grey replicated to R=G=B", _from_l),
    "LA": ("alpha dropped, grey replicated to R=G=B (no compositing)", _from_la),
    "1": ("bilevel 0/1 -> 0/255, replicated to R=G=B", _from_bilevel),
    "I;16": ("16-bit grey CLIPPED to 0..255 (values > 255 become 255; no >>8 scaling), replicated", _from_i16),
    "P": ("palette lookup; any transparency (tRNS index or alpha table) ignored, no compositing", _from_palette),
    "CMYK": ("naive CMYK->RGB, no ICC: R = (255-C)*(255-K)/255 rounded (Pillow MULDIV255), same for G, B", _from_cmyk),
}


def _upright(path: Path) -> tuple[dict[str, Any], Image.Image]:
    """Open like load_image and apply the EXIF transpose; return the facts about the source and the raw image."""
    with Image.open(path) as img:
        facts = {
            "source_mode": img.mode,
            "source_size": list(img.size),
            "n_frames": getattr(img, "n_frames", 1),
            "exif_orientation": img.getexif().get(EXIF_ORIENTATION),
            "has_transparency_info": "transparency" in img.info,
        }
        img.seek(0)
        upright = ImageOps.exif_transpose(img)
        upright.load()
    return facts, upright


def _decoder_comparison(path: Path, rgb: np.ndarray) -> dict[str, Any]:
    """Compare load_image with load_image_as_tensor (what the processor does when given a path)."""
    try:
        tensor = load_image_as_tensor(str(path))
    except Exception as exc:  # recorded, not fatal: this decoder is only for comparison
        return {"error": f"{type(exc).__name__}: {exc}"}
    arr = tensor.numpy()
    record: dict[str, Any] = {"dtype": str(arr.dtype), "shape": list(arr.shape)}
    if arr.ndim == 4:  # all frames of an animation: compare the first one
        record["note"] = f"decoded all {arr.shape[0]} frames; frame 0 compared"
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] == 3 and arr.dtype == np.uint8:
        hwc = np.ascontiguousarray(arr.transpose(1, 2, 0))
        record["sha256_hwc"] = sha256_array(hwc)
        if hwc.shape == rgb.shape:
            diff = np.abs(hwc.astype(np.int16) - rgb.astype(np.int16))
            record.update(
                equal=bool(diff.max() == 0),
                max_abs_diff=int(diff.max()),
                fraction_differing=float(np.count_nonzero(diff) / diff.size),
            )
        else:
            record["equal"] = False
    else:
        record["equal"] = False
        record["note"] = f"not a 3-channel uint8 image ({arr.dtype}), not comparable"
    return record


def load_reference(path: Path) -> tuple[Image.Image, dict[str, Any]]:
    """load_image(path) plus a record of what it did (conversion rule, verification, warnings, hashes)."""
    facts, upright = _upright(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = load_image(str(path))
    rgb = np.asarray(image)
    rule, recompute = CONVERSIONS.get(upright.mode, (f"unverified mode {upright.mode}", None))
    verified = bool(recompute is not None and np.array_equal(recompute(upright), rgb))
    record = {
        **facts,
        "upright_size": list(upright.size),
        "exif_transposed": facts["exif_orientation"] not in (None, 1),
        "convert_rgb": rule,
        "convert_rgb_verified": verified,
        "warnings": sorted(
            {f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, ResourceWarning)}
        ),
        "rgb_shape": list(rgb.shape),
        "rgb_sha256": sha256_array(rgb),
        "processor_path_decoder": _decoder_comparison(path, rgb),
    }
    return image, record
