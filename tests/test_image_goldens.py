"""lfm_edge.image against the committed transformers 5.23 goldens (tests/goldens/image/README.md).

For every variant (knob set) and every test image: identical uint8 crops (sha256), identical float32 pixel_values
rows (sha256, i.e. bit for bit), spatial_shapes, rows/cols, image_sizes, expanded prompt text (with and without
special tokens) and the image part of the input ids. Where transformers itself produces unusable output (recorded
in the golden's ``problems`` or ``error``) the test checks lfm_edge's documented behaviour instead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lfm_edge.errors import ConfigError, ImageError
from lfm_edge.image import ProcessorSettings, load_image, patchify, pixel_batch, plan_layout
from lfm_edge.image.layout import ImageLayout
from lfm_edge.image.resize import resize_many
from lfm_edge.image.tokens import image_token_ids, image_token_text
from tests.reference.common import rle_ids

HERE = Path(__file__).parent
GOLDENS = HERE / "goldens" / "image"
IMAGES = HERE / "images"
PROMPT_SUFFIX = "Describe this image."
VARIANTS = sorted(
    path.stem for path in GOLDENS.glob("*.json") if path.stem not in ("load_image", "value_table", "layout_table")
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_array(array: np.ndarray) -> str:
    return _sha256(np.ascontiguousarray(array).tobytes())


@functools.cache
def _variant(name: str) -> dict[str, Any]:
    return json.loads((GOLDENS / f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@functools.cache
def _pixels(image_name: str) -> np.ndarray:
    return load_image(IMAGES / image_name)


@functools.cache
def _resized(image_name: str, sizes: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, ...]:
    """Resizes shared between variants whose layouts coincide (keeps the suite fast)."""
    return tuple(resize_many(_pixels(image_name), list(sizes)))


def _crops(image_name: str, layout: ImageLayout) -> list[np.ndarray]:
    """make_crops, with the resizes cached across variants."""
    thumb = (layout.image_size[1], layout.image_size[0])
    if layout.grid is None:
        return list(_resized(image_name, (thumb,)))
    cols, rows = layout.grid
    tile = layout.tile_size
    resized = _resized(image_name, ((cols * tile, rows * tile),) + ((thumb,) if layout.thumbnail else ()))
    tiles = [resized[0][r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] for r in range(rows) for c in range(cols)]
    return tiles + list(resized[1:])


def _cases() -> list[Any]:
    return [
        pytest.param(variant, image, id=f"{variant}-{image}")
        for variant in VARIANTS
        for image in _variant(variant)["images"]
    ]


def _settings(variant: str) -> ProcessorSettings:
    return ProcessorSettings.from_processor_config(_variant(variant)["image_processor"])


def _check_tokens(record: dict[str, Any], layout: ImageLayout, settings: ProcessorSettings) -> None:
    text = image_token_text(layout, settings.use_image_special_tokens)
    assert _sha256((text + PROMPT_SUFFIX).encode()) == record["prompt"]["sha256"]
    assert text.count("<image>") == record["prompt"]["image_tokens"]
    plain = image_token_text(layout, use_special_tokens=False)
    assert _sha256(plain.encode()) == record["replacement_no_special_tokens"]["sha256"]
    if layout.rows > 10 or layout.cols > 10:
        # Markers beyond <|img_row_10_col_10|> are not in the vocabulary: the synthetic tokenizer split them into text.
        with pytest.raises(ConfigError, match="no token id"):
            image_token_ids(layout, settings.use_image_special_tokens)
        return
    ours = rle_ids(image_token_ids(layout, settings.use_image_special_tokens))
    assert record["input_ids"]["rle"][: len(ours)] == ours


def _check_crops(record: dict[str, Any], crops: list[np.ndarray], settings: ProcessorSettings) -> None:
    assert len(crops) == record["n_crops"]
    assert record["pixel_values_shape"] == [len(crops), settings.max_num_patches, 768]
    patch = settings.encoder_patch_size
    for crop, golden in zip(crops, record["crops"], strict=True):
        assert list(crop.shape) == [*golden["shape_hw"], 3], golden["role"]
        assert [crop.shape[0] // patch, crop.shape[1] // patch] == golden["spatial_shape"]
        assert _sha256_array(crop) == golden["uint8_sha256"], f"uint8 crop {golden['role']} differs"
        rows = patchify(crop, patch)
        assert _sha256_array(rows) == golden["float32_sha256"], f"pixel_values of {golden['role']} differ"
        assert golden["mask_sum"] == len(rows)


def _check_transformers_problem(record: dict[str, Any], image_name: str, settings: ProcessorSettings) -> None:
    """Records where transformers' own output is unusable: lfm_edge refuses, or emits the consistent count."""
    problems = " | ".join(record.get("problems", [])) + str(record.get("error", ""))
    pixels = _pixels(image_name)
    if "max_num_patches" in problems or "error" in record:
        with pytest.raises(ImageError, match="too elongated"):
            plan_layout(pixels.shape[1], pixels.shape[0], settings)
        return
    assert "features" in problems, problems  # the min_tiles=1 grid-1x1 token/feature mismatch (layout.py)
    layout = plan_layout(pixels.shape[1], pixels.shape[0], settings)
    _check_crops(record, _crops(image_name, layout), settings)
    features = sum((h // 32) * (w // 32) for h, w in layout.crop_sizes)
    assert layout.n_image_tokens == features != record["prompt"]["image_tokens"]
    expected = re.sub(r"(<image>)+", "<image>" * features, "".join(p * n for p, n in record["prompt"]["rle"]))
    assert image_token_text(layout, True) + PROMPT_SUFFIX == expected


@pytest.mark.parametrize(("variant", "image_name"), _cases())
def test_matches_transformers(variant: str, image_name: str) -> None:
    settings = _settings(variant)
    record = _variant(variant)["images"][image_name]
    if record.get("problems") or "error" in record:
        _check_transformers_problem(record, image_name, settings)
        return
    pixels = _pixels(image_name)
    assert [pixels.shape[1], pixels.shape[0]] == record["input_size"]
    layout = plan_layout(pixels.shape[1], pixels.shape[0], settings)
    assert (layout.rows, layout.cols) == (record["image_rows"], record["image_cols"])
    assert list(layout.image_size) == record["image_sizes"]
    _check_crops(record, _crops(image_name, layout), settings)
    _check_tokens(record, layout, settings)


def test_variant_overrides_are_what_the_settings_read() -> None:
    for variant in VARIANTS:
        settings = _settings(variant)
        for name, value in _variant(variant)["overrides"].items():
            assert getattr(settings, name) == value, (variant, name)


@pytest.mark.parametrize("image_name", sorted(json.loads((GOLDENS / "load_image.json").read_text())["images"]))
def test_load_image_matches_transformers(image_name: str) -> None:
    record = json.loads((GOLDENS / "load_image.json").read_text())["images"][image_name]
    pixels = _pixels(image_name)
    assert list(pixels.shape) == record["rgb_shape"]
    assert _sha256_array(pixels) == record["rgb_sha256"], f"RGB conversion of {image_name} ({record['convert_rgb']})"


def test_test_images_are_the_committed_ones() -> None:
    manifest = json.loads((IMAGES / "MANIFEST.json").read_text())["images"]
    for name, record in manifest.items():
        assert _sha256((IMAGES / name).read_bytes()) == record["sha256"], name


def test_value_table() -> None:
    """uint8 -> float32 normalisation, bit for bit."""
    table = json.loads((GOLDENS / "value_table.json").read_text())
    # One 16x16 patch per value: patch k of a 16 x 4096 strip holds the value k.
    strip = np.broadcast_to(np.repeat(np.arange(256, dtype=np.uint8), 16)[None, :, None], (16, 4096, 3))
    rows = patchify(np.ascontiguousarray(strip), 16)
    assert (rows == rows[:, :1]).all()
    by_value = rows[:, 0]
    assert [f"{bits:08x}" for bits in by_value.view(np.uint32)] == table["float32_bits_hex"]


def test_pixel_batch_padding_matches_transformers() -> None:
    """The padded batch (zeros after each crop's patches, mask, spatial shapes) for a tiled image."""
    settings = _settings("official")
    record = _variant("official")["images"]["photo_1024x768.jpg"]
    pixels = _pixels("photo_1024x768.jpg")
    batch = pixel_batch(_crops("photo_1024x768.jpg", plan_layout(1024, 768, settings)), 16, settings.max_num_patches)
    assert list(batch.pixel_values.shape) == record["pixel_values_shape"]
    assert list(batch.pixel_attention_mask.shape) == record["pixel_attention_mask_shape"]
    for index, golden in enumerate(record["crops"]):
        used = golden["mask_sum"]
        assert batch.pixel_attention_mask[index].sum() == used
        assert list(batch.spatial_shapes[index]) == golden["spatial_shape"]
        assert batch.pixel_values[index, used:].any() == (not golden["padding_all_zero"])
        total = float(batch.pixel_values[index, :used].astype(np.float64).sum())
        assert total == pytest.approx(golden["float64_sum"], rel=1e-12, abs=1e-9)
    assert pixels.shape == (768, 1024, 3)
