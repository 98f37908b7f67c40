"""load_image: every kind of source, and every bad input gives a typed error (never a Pillow or numpy exception).

What each mode converts to is pinned by the goldens (test_image_goldens.test_load_image_matches_transformers).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lfm_edge.errors import ConfigError, ImageError
from lfm_edge.image import load_image, preprocess

IMAGES = Path(__file__).parent / "images"
PHOTO = IMAGES / "photo_640x480.jpg"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with no pixel data (a decompression-bomb stand-in)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_image(PHOTO)


def test_every_source_kind_gives_the_same_pixels(photo: np.ndarray) -> None:
    data = PHOTO.read_bytes()
    with Image.open(PHOTO) as pil, PHOTO.open("rb") as handle:
        sources = [str(PHOTO), PHOTO, data, bytearray(data), memoryview(data), io.BytesIO(data), handle, pil, photo]
        for source in sources:
            pixels = load_image(source)
            assert pixels.dtype == np.uint8 and pixels.flags.c_contiguous, type(source)
            assert np.array_equal(pixels, photo), type(source)
    assert photo.shape == (480, 640, 3)


def test_numpy_layouts() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    expected = np.repeat(grey[:, :, None], 3, axis=2)
    assert np.array_equal(load_image(grey), expected)
    assert np.array_equal(load_image(grey[:, :, None]), expected)
    rgba = np.dstack([expected, np.zeros_like(grey)])
    assert np.array_equal(load_image(rgba), expected)  # alpha dropped, like Pillow's convert("RGB")


def test_alpha_is_dropped_not_composited() -> None:
    with Image.open(IMAGES / "rgba_320x240.png") as image:
        stored = np.asarray(image)
    assert (stored[..., 3] < 255).any()
    assert np.array_equal(load_image(IMAGES / "rgba_320x240.png"), stored[..., :3])


def test_exif_orientation_is_applied() -> None:
    assert load_image(IMAGES / "exif_o6_1270x720.jpg").shape == (1270, 720, 3)


def test_animation_gives_its_first_frame() -> None:
    with Image.open(IMAGES / "anim_160x120.gif") as image:
        first = np.asarray(image.convert("RGB"))
        image.seek(2)
        assert not np.array_equal(np.asarray(image.convert("RGB")), first)
    assert np.array_equal(load_image(IMAGES / "anim_160x120.gif"), first)


def test_one_pixel_image_is_preprocessed() -> None:
    result = preprocess(IMAGES / "solid_1x1.png")
    assert [crop.shape for crop in result.crops] == [(256, 256, 3)]
    assert result.n_image_tokens == 64


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(np.zeros((0, 5, 3), dtype=np.uint8), id="empty-array"),
        pytest.param(Image.new("RGB", (0, 0)), id="empty-pil"),
        pytest.param(Image.new("RGB", (7, 0)), id="zero-height-pil"),
    ],
)
def test_empty_images_are_refused(source: object) -> None:
    with pytest.raises(ImageError, match="empty"):
        load_image(source)  # type: ignore[arg-type]


def _truncated(name: str) -> bytes:
    data = (IMAGES / name).read_bytes()
    return data[: len(data) // 2]


def _corrupt_png() -> bytes:
    data = bytearray((IMAGES / "photo_256x256.png").read_bytes())
    start = data.index(b"IDAT") + 8
    data[start : start + 64] = bytes(64)  # zeros in the compressed stream
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="no-bytes"),
        pytest.param(b"this is not an image", id="text"),
        pytest.param(np.random.default_rng(0).bytes(4096), id="random-bytes"),
        pytest.param(_truncated("photo_640x480.jpg"), id="truncated-jpeg"),
        pytest.param(_truncated("photo_256x256.png"), id="truncated-png"),
        pytest.param(_corrupt_png(), id="corrupt-png"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + bytes(20), id="bad-png-header"),
    ],
)
def test_undecodable_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(ImageError, match="cannot decode"):
        load_image(data)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(42, id="int"),
        pytest.param(None, id="none"),
        pytest.param([[1, 2]], id="list"),
        pytest.param(np.zeros((4, 4, 3), dtype=np.float32), id="float-array"),
        pytest.param(np.zeros((4, 4, 2), dtype=np.uint8), id="two-channel-array"),
        pytest.param(np.zeros((2, 4, 4, 3), dtype=np.uint8), id="4d-array"),
        pytest.param(Image.new("La", (4, 4)), id="pil-mode-without-rgb-conversion"),
    ],
)
def test_unusable_objects_are_refused(source: object) -> None:
    with pytest.raises(ImageError):
        load_image(source)  # type: ignore[arg-type]


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = _png_header_only(100_000, 100_000)
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError, match="decompression-bomb"):
        load_image(bomb)
    # Raising the limit lets the header through; the missing pixel data then fails as a truncated file.
    with pytest.raises(ImageError, match="cannot decode"):
        load_image(bomb, max_pixels=None)
    with pytest.raises(ImageError, match="cannot decode"):
        load_image(bomb, max_pixels=10**10 + 1)
    assert limit == Image.MAX_IMAGE_PIXELS  # Pillow's global is restored


def test_the_pixel_limit_is_the_callers(photo: np.ndarray) -> None:
    with pytest.raises(ImageError, match="more than the limit of 1,000"):
        load_image(PHOTO, max_pixels=1000)
    with pytest.raises(ImageError, match="more than the limit"):
        load_image(photo, max_pixels=1000)
    assert load_image(PHOTO, max_pixels=640 * 480).shape == (480, 640, 3)


@pytest.mark.parametrize("limit", [0, -5, 1.5, True, "many"])
def test_bad_pixel_limits_are_refused(limit: object) -> None:
    with pytest.raises(ConfigError, match="max_pixels"):
        load_image(PHOTO, max_pixels=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["extreme_1x40000.png", "extreme_12000x3.png", "extreme_1x20000.png"])
def test_too_elongated_images_are_refused(name: str) -> None:
    with pytest.raises(ImageError, match="too elongated"):
        preprocess(IMAGES / name)
