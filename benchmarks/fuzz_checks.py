"""The contracts each parser keeps on any input, as checks shared by the seeded and the atheris fuzz runs.

A check returns a short outcome label (counted in the report) and raises on a broken contract. The only exception
a parser may raise on model output is ParseError from ``parse_literal``; every other exception -- or a violated
property below -- is a failure:

* parse_assistant_output: every tool call serializes with ``to_openai`` to UTF-8 JSON; a valid generated message
  gives back exactly its calls, without errors.
* ToolCallStreamFilter, over a random split: the streamed content and reasoning add up to ``finish()``, which equals
  ``parse_assistant_output`` of the whole text.
* parse_detections, for a random image size: every box lies inside the image with a positive area; a valid
  generated answer gives back its boxes.
* parse_literal: a value serializes to strict UTF-8 JSON (no NaN, no lone surrogate); a valid literal round-trips.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any

from benchmarks.fuzz_inputs import Sample
from lfm_edge.errors import ParseError
from lfm_edge.parse import Box, ToolCallStreamFilter, parse_assistant_output, parse_detections, parse_literal

Check = Callable[[Sample, random.Random], str]


class ContractViolation(AssertionError):
    """A parser returned something its documented contract rules out."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractViolation(message)


def _strict_json(value: Any) -> None:
    json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")


def check_assistant_output(sample: Sample, rng: random.Random) -> str:
    message = parse_assistant_output(sample.text)
    for call in message.tool_calls:
        _strict_json(call.to_openai())
    if sample.expected is not None:
        calls = [(call.name, call.arguments) for call in message.tool_calls]
        _require(calls == sample.expected, f"valid calls did not round-trip: got {calls!r}")
        _require(not message.errors, f"valid message reported errors: {message.errors!r}")
    if message.tool_calls:
        return "tool calls"
    return "errors reported" if message.errors else "content only"


def random_split(text: str, rng: random.Random) -> list[str]:
    """Pieces of ``text``: one character each, token-sized runs, or a few random cuts."""
    mode = rng.randrange(3)
    if mode == 0 and len(text) <= 400:
        return list(text)
    if mode == 1:
        size = rng.randrange(1, 9)
        return [text[start : start + size] for start in range(0, len(text), size)]
    cuts = sorted(rng.randrange(len(text) + 1) for _ in range(rng.randrange(12)))
    return [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def check_stream(sample: Sample, rng: random.Random) -> str:
    stream = ToolCallStreamFilter()
    content: list[str] = []
    reasoning: list[str] = []
    pieces = random_split(sample.text, rng)
    for piece in pieces:
        delta = stream.feed_delta(piece)
        content.append(delta.content)
        reasoning.append(delta.reasoning)
    last = stream.flush()
    final = stream.finish()
    _require("".join(content) + last.content == final.content, "streamed content differs from finish().content")
    _require("".join(reasoning) + last.reasoning == (final.reasoning or ""), "streamed reasoning differs")
    _require(final == parse_assistant_output(sample.text), "finish() differs from parse_assistant_output")
    if final.tool_calls:
        return "tool calls"
    return "errors reported" if final.errors else "content only"


def _box_is_inside(box: Box, width: int, height: int) -> bool:
    corners = (box.x1, box.y1, box.x2, box.y2)
    return (
        all(math.isfinite(value) for value in corners)
        and (box.image_width, box.image_height) == (width, height)
        and 0 <= box.x1 < box.x2 <= width
        and 0 <= box.y1 < box.y2 <= height
    )


def check_detections(sample: Sample, rng: random.Random) -> str:
    width, height = rng.randrange(1, 5000), rng.randrange(1, 5000)
    detection = parse_detections(sample.text, (width, height))
    _require(detection.raw == sample.text, "raw is not the answer")
    _require(len(detection.boxes) <= 1000, "more than 1,000 boxes")
    for box in detection.boxes:
        _require(_box_is_inside(box, width, height), f"box outside the {width}x{height} image: {box!r}")
        _strict_json(box.to_dict())
    if sample.expected is not None:
        got = [(box.label, box.normalized()) for box in detection.boxes]
        _require(len(got) == len(sample.expected) and not detection.errors, f"valid answer not read: {got!r}")
        for (label, corners), (want_label, want_corners) in zip(got, sample.expected, strict=True):
            close = all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(corners, want_corners, strict=True))
            _require(label == want_label and close, f"box {label!r} {corners} != {want_label!r} {want_corners}")
    if detection.boxes:
        return "boxes"
    return "errors reported" if detection.errors else "no boxes"


def check_literal(sample: Sample, rng: random.Random) -> str:
    try:
        value = parse_literal(sample.text)
    except ParseError:
        return "ParseError (documented)"
    _strict_json(value)
    if sample.expected is not None:
        _require(value == sample.expected, f"valid literal did not round-trip: {value!r}")
    return f"value: {type(value).__name__}"


CHECKS: dict[str, Check] = {
    "parse_assistant_output": check_assistant_output,
    "ToolCallStreamFilter": check_stream,
    "parse_detections": check_detections,
    "parse_literal": check_literal,
}
