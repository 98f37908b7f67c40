"""Grounding boxes drawn on their image: a quick visual check of :func:`~lfm_edge.parse.parse_detections`.

The image is loaded the way the model saw it (:func:`lfm_edge.image.load_image`: EXIF orientation applied, RGB),
so boxes parsed against that image's size land where the model put them. Each box is a rectangle outline, drawn
inside its own edges so it never leaves the image, with its label on a filled tag above it (inside the box when
there is no room above). Colours come from a fixed palette of distinct hues, one per box in order
(:func:`box_colour`). The PNG is written atomically: a temporary file in the same folder, then a rename.
"""

from __future__ import annotations

import colorsys
import logging
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from lfm_edge.errors import ConfigError
from lfm_edge.image.load import ImageSource, load_image
from lfm_edge.parse.boxes import Box

logger = logging.getLogger(__name__)

# Distinct, saturated colours (Tableau 10 without its grey), then golden-ratio hues for any further boxes.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
)
_GOLDEN_RATIO_CONJUGATE = 0.618033988749895
_MAX_LABEL_CHARS = 48
_LABEL_PADDING = 2

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def box_colour(index: int) -> tuple[int, int, int]:
    """The RGB colour of the ``index``-th box: the palette first, then hues spread by the golden ratio."""
    if index < len(PALETTE):
        return PALETTE[index]
    hue = (index * _GOLDEN_RATIO_CONJUGATE) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 0.9)
    return round(red * 255), round(green * 255), round(blue * 255)


def draw_boxes(
    image: ImageSource, boxes: Iterable[Box], out_path: str | os.PathLike[str], *, line_width: int | None = None
) -> Path:
    """Draws ``boxes`` (pixels of the upright image) on ``image`` and writes a PNG to ``out_path``; returns it.

    ``line_width``: outline thickness in pixels (default: about 0.4% of the shorter side, at least 1).
    Raises ImageError when the image cannot be loaded, ConfigError for a box made for another image size (rotate
    with the EXIF orientation first: that is the size parse_detections needs), a bad line width, or an output path
    that is not a writable ``.png`` file.
    """
    target = _checked_target(out_path)
    pixels = load_image(image)
    height, width = pixels.shape[:2]
    box_list = _checked_boxes(boxes, width, height)
    thickness = _checked_line_width(line_width, width, height)
    canvas = Image.fromarray(pixels)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(10, min(width, height) // 40))
    for index, box in enumerate(box_list):
        corners = _outline_corners(box, width, height)
        colour = box_colour(index)
        draw.rectangle(corners, outline=colour, width=thickness)
        if box.label:
            _draw_label(draw, font, box.label, corners, colour)
    _write_png_atomically(canvas, target)
    logger.debug("drew %d box(es) on a %dx%d image into %s", len(box_list), width, height, target)
    return target


def _checked_target(out_path: str | os.PathLike[str]) -> Path:
    target = Path(out_path)
    if target.suffix.lower() != ".png":
        raise ConfigError(f"output path {os.fspath(out_path)!r} must end in .png: draw_boxes writes PNG files")
    if target.is_dir():
        raise ConfigError(f"output path {os.fspath(out_path)!r} is a folder: give a file name ending in .png")
    return target


def _checked_boxes(boxes: Iterable[Box], width: int, height: int) -> list[Box]:
    box_list = list(boxes)
    for index, box in enumerate(box_list):
        if not isinstance(box, Box):
            raise ConfigError(f"box {index} is a {type(box).__name__}, not a Box (from parse_detections)")
        if (box.image_width, box.image_height) != (width, height):
            raise ConfigError(
                f"box {index} was made for a {box.image_width}x{box.image_height} image but the image is "
                f"{width}x{height} (upright, EXIF orientation applied): parse the answer with that size"
            )
    return box_list


def _checked_line_width(line_width: int | None, width: int, height: int) -> int:
    if line_width is None:
        return max(1, round(min(width, height) / 250))
    if isinstance(line_width, bool) or not isinstance(line_width, int) or line_width < 1:
        raise ConfigError(f"line_width={line_width!r} is invalid: pass a positive number of pixels, or None")
    return line_width


def _outline_corners(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """Inclusive pixel corners of the outline: the pixels the box covers, [x1, x2) x [y1, y2), clamped."""
    left = min(max(math.floor(box.x1), 0), width - 1)
    top = min(max(math.floor(box.y1), 0), height - 1)
    right = min(max(math.ceil(box.x2) - 1, left), width - 1)
    bottom = min(max(math.ceil(box.y2) - 1, top), height - 1)
    return left, top, right, bottom


def _printable_label(label: str, font: Font) -> str:
    text = " ".join(label.split())
    if len(text) > _MAX_LABEL_CHARS:
        text = text[: _MAX_LABEL_CHARS - 1] + "…"
    if not isinstance(font, ImageFont.FreeTypeFont):
        # Pillow's built-in bitmap font (no FreeType) encodes text as Latin-1.
        text = text.encode("latin-1", "replace").decode("latin-1")
    return text


def _draw_label(
    draw: ImageDraw.ImageDraw, font: Font, label: str, corners: tuple[int, int, int, int], colour: tuple[int, int, int]
) -> None:
    """The label in a tag of the box colour, above the box's top-left corner, or just inside it at the image top."""
    text = _printable_label(label, font)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tag_width = right - left + 2 * _LABEL_PADDING
    tag_height = bottom - top + 2 * _LABEL_PADDING
    x = corners[0]
    y = corners[1] - tag_height if corners[1] >= tag_height else corners[1]
    draw.rectangle((x, y, x + tag_width - 1, y + tag_height - 1), fill=colour)
    red, green, blue = colour
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue
    text_colour = (0, 0, 0) if luminance > 150 else (255, 255, 255)
    draw.text((x + _LABEL_PADDING - left, y + _LABEL_PADDING - top), text, fill=text_colour, font=font)


def _write_png_atomically(canvas: Image.Image, target: Path) -> None:
    """PNG to a temporary file beside ``target``, then renamed over it: readers never see a partial file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise ConfigError(
            f"cannot write into {str(target.parent)!r} ({exc.strerror}): choose a writable folder"
        ) from exc
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as file:
            canvas.save(file, format="PNG")
        temporary.chmod(0o644)
        temporary.replace(target)
    except OSError as exc:
        raise ConfigError(f"cannot write {str(target)!r} ({exc.strerror or exc}): choose a writable path") from exc
    finally:
        temporary.unlink(missing_ok=True)
