"""Writes the committed test images of the preprocessor goldens into tests/images/, plus tests/images/MANIFEST.json.

Run from the repository root with the reference venv:  python -m tests.reference.make_images

Everything is synthetic and deterministic (numpy PCG64 streams with fixed seeds, Pillow drawing and encoders), so
running this twice gives identical bytes with the same numpy/Pillow/libjpeg builds. Big photo-like images are JPEG,
small or exact ones PNG. The set covers: photo-like content (gradients + shapes + cloud texture + noise), the sizes of
SPEC section 3.6, the tiling threshold (720/721/723/724 px), odd and extreme sizes, every PIL mode that
transformers.image_utils.load_image has to convert to RGB (RGBA, LA, P with/without transparency, L, I;16, CMYK, 1),
EXIF orientations 1..8, an animated GIF, uniform noise and an image holding every uint8 value. The pixel content
comes from tests.reference.image_content.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from tests.reference.common import IMAGES, sha256_bytes, write_json
from tests.reference.image_content import all_values, gif_frames, i16_image, palette_image, photo, rgba, uniform_noise

EXIF_ORIENTATION = 0x0112
_EXTENSIONS = {".png", ".jpg", ".gif"}


# ----------------------------------------------------------------------------------------------------- the set


@dataclass(frozen=True)
class Spec:
    name: str
    purpose: str
    make: Callable[[str], Any]  # name -> PIL image (or list of frames for GIF)
    save: dict[str, Any] = field(default_factory=dict)


def _photo(w: int, h: int, noise: float = 0.0) -> Callable[[str], Image.Image]:
    return lambda name: photo(w, h, name, noise)


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return exif.tobytes()


# photo-like JPEGs (big) and PNGs (exact pixels) at the sizes of SPEC 3.6 / the tiling threshold
JPG_SIZES = [
    (720, 1270),
    (1270, 720),
    (1024, 768),
    (768, 1024),
    (800, 556),
    (800, 1200),
    (1000, 2000),
    (1920, 1080),
    (4000, 3000),
    (2048, 2048),
    (1023, 1023),
    (1025, 511),
    (1376, 768),
    (640, 480),
    (300, 5000),
]
PNG_SIZES = [
    (512, 512),
    (256, 256),
    (64, 64),
    (80, 80),
    (33, 47),
    (1600, 100),
    (736, 720),
    (336, 240),
    (700, 700),
    (720, 720),
    (721, 721),
    (723, 723),
    (724, 724),
]


def _photo_specs() -> list[Spec]:
    """Photo-like images at the sizes of SPEC 3.6 and around the tiling threshold."""
    specs = [
        Spec(f"photo_{w}x{h}.jpg", "photo-like JPEG (SPEC 3.6 size / tiling)", _photo(w, h, 3.0), {"quality": 85})
        for w, h in JPG_SIZES
    ]
    specs += [
        Spec(f"photo_{w}x{h}.png", "photo-like PNG, exact pixels (SPEC 3.6 size / threshold)", _photo(w, h))
        for w, h in PNG_SIZES
    ]
    return specs


def _special_photo_specs() -> list[Spec]:
    """Other encodings, odd and extreme sizes."""
    return [
        Spec(
            "photo_785x665.png",
            "area <= 524288 but tiled (rounded area > 524288), aspect 1.18: with min_tiles=1 grid 1x1, "
            "token/feature mismatch (SPEC 3.7)",
            _photo(785, 665),
        ),
        Spec(
            "photo_progressive_640x480.jpg",
            "progressive JPEG decode",
            _photo(640, 480, 2.0),
            {"quality": 85, "progressive": True},
        ),
        Spec(
            "photo_444_800x556.jpg",
            "JPEG without chroma subsampling (4:4:4)",
            _photo(800, 556, 2.0),
            {"quality": 90, "subsampling": 0},
        ),
        Spec("solid_1x1.png", "1x1 image (smallest input)", lambda name: Image.new("RGB", (1, 1), (200, 100, 50))),
        Spec(
            "extreme_1x20000.png",
            "extreme aspect 1:20000, untiled single crop > 1024 patches (silently unpadded)",
            _photo(1, 20000),
        ),
        Spec(
            "extreme_1x40000.png",
            "extreme aspect 1:40000, tiled: thumbnail > 1024 patches, HF raises",
            _photo(1, 40000),
        ),
        Spec("extreme_12000x3.png", "extreme aspect 4000:1, untiled single crop > 1024 patches", _photo(12000, 3)),
        Spec("extreme_8192x2.png", "extreme aspect, single crop of exactly 1024 patches", _photo(8192, 2)),
    ]


def _mode_specs() -> list[Spec]:
    """Non-RGB modes that load_image converts with Image.convert('RGB')."""

    alpha_table = bytes(int(v) for v in np.linspace(0, 255, 64).round())
    return [
        Spec("rgba_320x240.png", "RGBA: alpha ramp, transparent band over colour", lambda n: rgba(320, 240, n)),
        Spec("rgba_1024x768.png", "RGBA, tiled size", lambda n: rgba(1024, 768, n)),
        Spec("la_300x200.png", "LA (grey + alpha)", lambda n: rgba(300, 200, n).convert("LA")),
        Spec("p_300x200.png", "P (palette), no transparency", lambda n: palette_image(300, 200, n)),
        Spec(
            "p_trns_index_300x200.png",
            "P with one transparent index (tRNS)",
            lambda n: palette_image(300, 200, n),
            {"transparency": 0},
        ),
        Spec(
            "p_trns_alpha_300x200.png",
            "P with per-entry palette alpha (tRNS bytes)",
            lambda n: palette_image(300, 200, n),
            {"transparency": alpha_table},
        ),
        Spec("l_320x240.png", "L (8-bit grey) PNG", lambda n: photo(320, 240, n).convert("L")),
        Spec(
            "l_1024x768.jpg",
            "L (grey) JPEG, tiled size",
            lambda n: photo(1024, 768, n, 2.0).convert("L"),
            {"quality": 85},
        ),
        Spec("i16_320x240.png", "I;16 (16-bit grey) PNG", lambda n: i16_image(320, 240)),
        Spec(
            "cmyk_400x300.jpg",
            "CMYK JPEG (Adobe marker)",
            lambda n: photo(400, 300, n, 2.0).convert("CMYK"),
            {"quality": 90},
        ),
        Spec("bilevel_300x200.png", "mode 1 (bilevel, dithered)", lambda n: photo(300, 200, n).convert("1")),
        Spec(
            "anim_160x120.gif",
            "animated GIF, 3 frames (first frame is used)",
            lambda n: gif_frames(160, 120, n),
            {"save_all": True, "duration": 100, "loop": 0},
        ),
        Spec(
            "noise_uniform_320x240.png",
            "uniform noise (worst case for resize rounding)",
            lambda n: uniform_noise(320, 240, n),
        ),
        Spec("noise_uniform_724x724.png", "uniform noise, tiled size", lambda n: uniform_noise(724, 724, n)),
        Spec(
            "values_512x512.png",
            "every uint8 value in every channel; 512x512 is not resized",
            lambda n: all_values(512, 512),
        ),
    ]


def _exif_specs() -> list[Spec]:
    specs = [
        Spec(
            f"exif_o{o}_400x240.jpg",
            f"EXIF orientation {o} (stored 400x240)",
            _photo(400, 240, 2.0),
            {"quality": 85, "exif": _exif(o)},
        )
        for o in range(1, 9)
    ]
    specs += [
        Spec(
            "exif_o6_1270x720.jpg",
            "EXIF orientation 6: stored 1270x720, upright 720x1270 (grid changes)",
            _photo(1270, 720, 2.0),
            {"quality": 85, "exif": _exif(6)},
        ),
        Spec("exif_o6_200x120.png", "EXIF orientation 6 in a PNG eXIf chunk", _photo(200, 120), {"exif": _exif(6)}),
    ]
    return specs


def all_specs() -> list[Spec]:
    return _photo_specs() + _special_photo_specs() + _mode_specs() + _exif_specs()


# ----------------------------------------------------------------------------------------------------- writing


def encode(spec: Spec) -> bytes:
    content = spec.make(spec.name)
    buffer = io.BytesIO()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".gif": "GIF"}[spec.name[spec.name.rfind(".") :]]
    if isinstance(content, list):
        content[0].save(buffer, fmt, append_images=content[1:], **spec.save)
    else:
        content.save(buffer, fmt, **spec.save)
    return buffer.getvalue()


def describe(data: bytes) -> dict[str, Any]:
    with Image.open(io.BytesIO(data)) as img:
        orientation = img.getexif().get(EXIF_ORIENTATION)
        return {
            "format": img.format,
            "mode": img.mode,
            "size": list(img.size),
            "n_frames": getattr(img, "n_frames", 1),
            "exif_orientation": orientation,
            "info_transparency": _transparency(img.info.get("transparency")),
        }


def _transparency(value: Any) -> Any:
    if value is None or isinstance(value, int):
        return value
    return f"bytes[{len(value)}]" if isinstance(value, bytes) else str(value)


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    specs = all_specs()
    names = [s.name for s in specs]
    assert len(set(names)) == len(names), "duplicate image names"
    for stale in sorted(IMAGES.iterdir()):
        if stale.suffix in _EXTENSIONS and stale.name not in names:
            print(f"removing stale {stale.name}")
            stale.unlink()
    manifest = {}
    for spec in specs:
        data = encode(spec)
        (IMAGES / spec.name).write_bytes(data)
        manifest[spec.name] = {
            "purpose": spec.purpose,
            "sha256": sha256_bytes(data),
            "bytes": len(data),
            **describe(data),
        }
    write_json(IMAGES / "MANIFEST.json", {"generator": "python -m tests.reference.make_images", "images": manifest})
    total = sum(entry["bytes"] for entry in manifest.values())
    print(f"{len(manifest)} images, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
