"""Image loading: any source to an upright (H, W, 3) uint8 RGB array, the way transformers' ``load_image`` does.

transformers 5.23 ``load_image`` (what the goldens were made with) opens the file with Pillow, applies
``ImageOps.exif_transpose`` and ``Image.convert("RGB")``. Pillow's RGB conversion, per mode (verified by the
goldens' ``load_image.json``): RGBA and LA **drop** alpha (colour kept as stored, not composited on white);
P looks up the palette and ignores transparency; L and 1 replicate grey (1 -> 0/255); I;16 clips to 0..255; CMYK
is converted naively without ICC. Animated images give their first frame. So does this module, for every source:
a path, bytes, a binary file object, a PIL image (its current frame; the EXIF transpose applies) or a numpy array
((H, W, 3) uint8 as is; (H, W) or (H, W, 1) grey replicated; (H, W, 4) alpha dropped, like Pillow).

Limits: Pillow refuses images above ``PIL.Image.MAX_IMAGE_PIXELS`` (89.5 M pixels by default; a decompression-bomb
guard). ``load_image`` applies that same limit itself, before decoding, and lets the caller raise it
(``max_pixels=...``, or None for no limit). Undecodable, truncated or empty inputs raise :class:`ImageError`.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from lfm_edge.errors import ConfigError, ImageError

logger = logging.getLogger(__name__)

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | Image.Image | npt.NDArray[Any]

# Pillow's limit is a module global. When a caller allows more than it, the global is lifted while this module
# decodes (under this lock, so concurrent raised-limit loads take turns) and the caller's limit applies instead.
_PILLOW_LIMIT_LOCK = threading.Lock()
PILLOW_LIMIT: Literal["pillow"] = "pillow"


def default_max_pixels() -> int | None:
    """Pillow's current decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS), the default of load_image."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else int(limit)


@contextmanager
def _pillow_limit_lifted() -> Iterator[None]:
    with _PILLOW_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _describe(source: object) -> str:
    if isinstance(source, str | os.PathLike):
        return f"image file {os.fspath(source)!r}"
    if isinstance(source, bytes | bytearray | memoryview):
        return f"image data ({len(source)} bytes)"
    return f"image {type(source).__name__}"


def _check_size(width: int, height: int, max_pixels: int | None, what: str) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"{what} is empty ({width}x{height} pixels): an image needs at least one pixel")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"{what} is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,} "
            "(Pillow's decompression-bomb guard). If the file is trusted, pass a larger max_pixels (or None)"
        )


def _open_file(source: object) -> IO[bytes] | str:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"image file {os.fspath(source)!r} does not exist or is not a file (URLs are not fetched)")
        return str(path)
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    if hasattr(source, "read"):
        return source  # type: ignore[return-value]
    raise ImageError(
        f"cannot load an image from a {type(source).__name__}: pass a path, bytes, a binary file object, a PIL "
        "image or a numpy array"
    )


def _to_rgb(image: Image.Image, what: str) -> npt.NDArray[np.uint8]:
    """exif_transpose + convert("RGB") (transformers' load_image), as a C-contiguous uint8 array."""
    with warnings.catch_warnings(record=True) as caught:
        # Pillow warns about palette transparency it is dropping; that is the documented behaviour, so only log it.
        warnings.simplefilter("always")
        upright = ImageOps.exif_transpose(image)
        rgb = upright.convert("RGB")
        array = np.asarray(rgb, dtype=np.uint8)
    for warning in caught:
        logger.debug("%s: %s", what, warning.message)
    return np.ascontiguousarray(array)


def _limit_context(max_pixels: int | None) -> AbstractContextManager[None]:
    pillow = default_max_pixels()
    raised = pillow is not None and (max_pixels is None or max_pixels > pillow)
    return _pillow_limit_lifted() if raised else nullcontext()


def _decode(source: object, max_pixels: int | None) -> npt.NDArray[np.uint8]:
    what = _describe(source)
    opened = _open_file(source)
    try:
        with _limit_context(max_pixels), warnings.catch_warnings():
            # Pillow warns above its limit; the size check right after opening raises a clearer error instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(opened) as image:
                _check_size(image.width, image.height, max_pixels, what)
                image.seek(0)
                image.load()
                return _to_rgb(image, what)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"{what} is larger than Pillow's decompression-bomb limit ({exc}). If the file is trusted, pass a larger "
            "max_pixels (or None)"
        ) from exc
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, struct.error...)
        raise ImageError(
            f"cannot decode {what}: {type(exc).__name__}: {exc}. The file is not an image, is truncated or corrupt"
        ) from exc


def _from_pil(image: Image.Image, max_pixels: int | None) -> npt.NDArray[np.uint8]:
    what = _describe(image)
    _check_size(image.width, image.height, max_pixels, what)
    try:
        return _to_rgb(image, what)
    except Exception as exc:
        raise ImageError(f"cannot convert the PIL image (mode {image.mode}) to RGB: {exc}") from exc


def _from_array(array: npt.NDArray[Any], max_pixels: int | None) -> npt.NDArray[np.uint8]:
    if array.dtype != np.uint8:
        raise ImageError(f"image array has dtype {array.dtype}: convert it to uint8 (0..255) first")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(f"image array has shape {array.shape}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    _check_size(array.shape[1], array.shape[0], max_pixels, "image array")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def load_image(
    source: ImageSource, *, max_pixels: int | Literal["pillow"] | None = PILLOW_LIMIT
) -> npt.NDArray[np.uint8]:
    """An upright RGB (H, W, 3) uint8 array from a path, bytes, binary file, PIL image or numpy array.

    ``max_pixels``: refuse larger images ("pillow", the default: Pillow's MAX_IMAGE_PIXELS at call time; None: no
    limit). Raises :class:`ImageError` for anything that is not a decodable, non-empty image within the limit.
    """
    limit = default_max_pixels() if max_pixels == PILLOW_LIMIT else max_pixels
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"max_pixels={limit!r} is invalid: pass a positive integer, None (no limit) or 'pillow'")
    if isinstance(source, np.ndarray):
        return _from_array(source, limit)
    if isinstance(source, Image.Image):
        return _from_pil(source, limit)
    return _decode(source, limit)
