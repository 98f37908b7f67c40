"""Grounding: the model card's detection prompt and a forgiving parser of its answer (SPEC.md §6.3).

The model answers ``[{"label": "statue", "bbox": [0.3, 0.25, 0.4, 0.65]}]``: top-left and bottom-right corners as
fractions of the original image's width and height. A 450M model drifts, so the parser, which never evaluates
anything (the bounded literal reader of :mod:`lfm_edge.parse.literals`), applies these heuristics in order:

1. Finding the answer: the first ``[`` that opens a list of objects or lists (or an empty list), else the first
   ``{``. Prose before or after it and Markdown code fences are ignored. Single quotes, Python's True/None and
   trailing commas are read like JSON.
2. Truncation (max_new_tokens): objects are read one at a time; every complete object before the cut is kept and
   the cut is reported in ``errors``. Objects not separated by commas or not inside a list are read too. At most
   1,000 items are read.
3. Items: an object with ``"label"`` (any scalar, made a string; missing is "") and ``"bbox"`` (or ``"box"``,
   ``"bbox_2d"``) holding four numbers; a bare list of four numbers is a box with the label "". Anything else
   is skipped with an error naming its index.
4. Units, decided per box: if every coordinate is at most 1.5 the box is in fractions (slightly outside [0, 1] is
   drift, not pixels -- a pixel box that small would be under two pixels wide); otherwise it is in pixels of the
   ORIGINAL image. (Pixels of the resized image the model saw, or a 0-1000 grid, cannot be told apart from
   original pixels and are read as such.)
5. Geometry: swapped corners are put in order (x1 <= x2, y1 <= y2); coordinates are clamped to the image; a box
   left with no width or height after clamping is dropped with an error.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from lfm_edge.errors import ConfigError, ParseError
from lfm_edge.parse.literals import LiteralLimits, LiteralReader

logger = logging.getLogger(__name__)

DETECTION_PROMPT = (
    "Detect all instances of: {query}. Response must be a JSON array: "
    '[{"label": ..., "bbox": [x1, y1, x2, y2]}, ...]. Coordinates are normalized to [0,1].'
)

# Largest coordinate still read as a fraction (see heuristic 4).
FRACTION_LIMIT = 1.5
MAX_BOXES = 1_000
_BOX_KEYS = ("bbox", "box", "bbox_2d")
_LIMITS = LiteralLimits(max_depth=8, max_values=50_000, max_number_chars=40)
# A list of objects, of lists, or an empty list. No nested quantifiers: linear search.
_ANSWER_START = re.compile(r"\[\s*[\[{\]]")


def detection_prompt(query: str) -> str:
    """The model card's grounding prompt for ``query``, verbatim (SPEC.md §6.3)."""
    query = query.strip()
    if not query:
        raise ConfigError("detection query is empty; name what to detect, e.g. 'person'")
    # str.replace, not str.format: the prompt itself contains braces.
    return DETECTION_PROMPT.replace("{query}", query)


@dataclass(frozen=True)
class Box:
    """A box in pixels of the original image: 0 <= x1 < x2 <= image_width, 0 <= y1 < y2 <= image_height."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    image_width: int
    image_height: int

    def normalized(self) -> tuple[float, float, float, float]:
        """(x1, y1, x2, y2) as fractions of the image size, the model's own convention."""
        width, height = self.image_width, self.image_height
        return (self.x1 / width, self.y1 / height, self.x2 / width, self.y2 / height)

    def to_dict(self) -> dict[str, Any]:
        """{"label", "bbox": [x1, y1, x2, y2] in pixels, "bbox_normalized": [...]}, ready for json.dumps."""
        return {
            "label": self.label,
            "bbox": [self.x1, self.y1, self.x2, self.y2],
            "bbox_normalized": list(self.normalized()),
        }


@dataclass(frozen=True)
class Detection:
    """The boxes found in one answer, what was wrong with it (empty when clean), the answer itself, and the size
    (width, height) of the image the boxes are in."""

    boxes: tuple[Box, ...]
    errors: tuple[str, ...]
    raw: str
    image_size: tuple[int, int]


def parse_detections(text: str, image_size: tuple[int, int]) -> Detection:
    """Boxes in pixels of the original image (``image_size`` = (width, height)); never raises on model output."""
    width, height = _checked_size(image_size)
    items, errors = _read_items(text)
    boxes: list[Box] = []
    for index, item in enumerate(items):
        try:
            boxes.append(_to_box(item, width, height))
        except ParseError as error:
            errors.append(f"item {index}: {error}")
    for message in errors:
        logger.debug("detection answer: %s", message)
    return Detection(tuple(boxes), tuple(errors), text, (width, height))


def _checked_size(image_size: tuple[int, int]) -> tuple[int, int]:
    size = tuple(image_size) if isinstance(image_size, (tuple, list)) else ()
    if len(size) != 2 or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in size):
        raise ConfigError(f"image_size must be (width, height) in positive integers, got {image_size!r}")
    return size[0], size[1]


def _read_items(text: str) -> tuple[list[Any], list[str]]:
    """The values of the answer's list (or its bare objects) up to the first one that cannot be read."""
    match = _ANSWER_START.search(text)
    in_list = match is not None
    start = match.start() + 1 if match else text.find("{")
    if start < 0:
        return [], ["no JSON array or object in the answer"]
    reader = LiteralReader(text, _LIMITS, start)
    items: list[Any] = []
    while True:
        reader.skip_space()
        if in_list and reader.accept("]"):
            return items, []
        if len(items) == MAX_BOXES:
            return items, [f"more than {MAX_BOXES} items; the rest are ignored"]
        if reader.peek() not in ("{", "["):
            return items, [] if not in_list else [_cut_message(reader, len(items))]
        try:
            items.append(reader.read_value())
        except ParseError as error:
            return items, [f"answer cut or malformed after {len(items)} item(s): {error}"]
        reader.skip_space()
        reader.accept(",")


def _cut_message(reader: LiteralReader, count: int) -> str:
    if reader.at_end():
        return f"answer cut after {count} item(s): the list is not closed"
    return f"unexpected text in the list after {count} item(s) (offset {reader.pos})"


def _to_box(item: Any, width: int, height: int) -> Box:
    label, coordinates = _label_and_coordinates(item)
    if any(abs(value) > FRACTION_LIMIT for value in coordinates):
        x1, y1, x2, y2 = coordinates
    else:
        x1, y1, x2, y2 = (
            coordinates[0] * width,
            coordinates[1] * height,
            coordinates[2] * width,
            coordinates[3] * height,
        )
    left, right = sorted((_clamp(x1, width), _clamp(x2, width)))
    top, bottom = sorted((_clamp(y1, height), _clamp(y2, height)))
    if left == right or top == bottom:
        raise ParseError(f"box {list(coordinates)} has no area inside the {width}x{height} image")
    return Box(label, left, top, right, bottom, width, height)


def _label_and_coordinates(item: Any) -> tuple[str, tuple[float, float, float, float]]:
    label: Any = ""
    values: Any = item
    if isinstance(item, dict):
        label = item.get("label", "")
        values = next((item[key] for key in _BOX_KEYS if key in item), None)
        if values is None:
            raise ParseError('no "bbox"')
    if isinstance(label, (dict, list)):
        raise ParseError('"label" is not a string')
    numbers = [value for value in values if _is_number(value)] if isinstance(values, list) else []
    if len(numbers) != 4 or len(values) != 4:
        raise ParseError('"bbox" is not four numbers')
    x1, y1, x2, y2 = (float(value) for value in numbers)
    return ("" if label is None else str(label)), (x1, y1, x2, y2)


def _is_number(value: Any) -> bool:
    # bool is an int subclass; True is not a coordinate.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _clamp(value: float, limit: int) -> float:
    return min(max(value, 0.0), float(limit))
