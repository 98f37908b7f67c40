"""Grounding answers (issue E item 4, parsing half): the card's prompt and the drift-tolerant box parser."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lfm_edge.errors import ConfigError
from lfm_edge.parse import DETECTION_PROMPT, Box, detection_prompt, parse_detections

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIZE = (1000, 500)  # width, height of the original image


def test_prompt_is_the_model_cards() -> None:
    assert DETECTION_PROMPT == (
        "Detect all instances of: {query}. Response must be a JSON array: "
        '[{"label": ..., "bbox": [x1, y1, x2, y2]}, ...]. Coordinates are normalized to [0,1].'
    )
    assert detection_prompt(" statue ") == (
        'Detect all instances of: statue. Response must be a JSON array: [{"label": ..., "bbox": [x1, y1, x2, y2]},'
        " ...]. Coordinates are normalized to [0,1]."
    )
    assert detection_prompt("{query} {0}").startswith("Detect all instances of: {query} {0}. ")
    with pytest.raises(ConfigError):
        detection_prompt("  ")


CLEAN = [
    ('[{"label": "statue", "bbox": [0.3, 0.25, 0.4, 0.65]}]', [("statue", 300, 125, 400, 325)]),
    ("[]", []),
    (
        '[{"label": "a", "bbox": [0, 0, 1, 1]}, {"label": "b", "bbox": [0.5, 0.5, 0.75, 1.0]}]',
        [("a", 0, 0, 1000, 500), ("b", 500, 250, 750, 500)],
    ),
    # Drift the parser repairs without complaint:
    ('```json\n[{"label": "cat", "bbox": [0.1, 0.2, 0.3, 0.4]}]\n```', [("cat", 100, 100, 300, 200)]),
    ('Here you go: [{"label": "cat", "bbox": [0.1, 0.2, 0.3, 0.4]}]. Hope it helps!', [("cat", 100, 100, 300, 200)]),
    ("[{'label': 'cat', 'bbox': [0.1, 0.2, 0.3, 0.4],},]", [("cat", 100, 100, 300, 200)]),
    ('[{"label": "cat", "bbox": [0.3, 0.4, 0.1, 0.2]}]', [("cat", 100, 100, 300, 200)]),  # swapped corners
    ('[{"label": "cat", "bbox": [-0.02, 0.2, 1.03, 1.2]}]', [("cat", 0, 100, 1000, 500)]),  # slightly outside
    ('[{"label": "cat", "bbox": [100, 50, 300, 250]}]', [("cat", 100, 50, 300, 250)]),  # pixels
    ('[{"label": "cat", "bbox": [900, 50, 1300, 700]}]', [("cat", 900, 50, 1000, 500)]),  # pixels, clamped
    ('[{"label": "cat", "bbox": [0.1, 0.2, 300, 400]}]', [("cat", 0.1, 0.2, 300, 400)]),  # one > 1.5: all pixels
    ('{"label": "cat", "bbox": [0.1, 0.2, 0.3, 0.4]}', [("cat", 100, 100, 300, 200)]),  # bare object
    (
        '{"label": "a", "bbox": [0, 0, 0.5, 0.5]}\n{"label": "b", "bbox": [0.5, 0.5, 1, 1]}',
        [("a", 0, 0, 500, 250), ("b", 500, 250, 1000, 500)],
    ),
    ('[{"label": "a", "box": [0, 0, 0.5, 0.5]}, {"bbox_2d": [0, 0, 0.5, 0.5]}]',
     [("a", 0, 0, 500, 250), ("", 0, 0, 500, 250)]),
    ("[[0, 0, 0.5, 0.5]]", [("", 0, 0, 500, 250)]),
    ('[{"label": 7, "bbox": [0, 0, 0.5, 0.5]}]', [("7", 0, 0, 500, 250)]),
    ('[{"label": null, "bbox": [0, 0, 0.5, 0.5]}]', [("", 0, 0, 500, 250)]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CLEAN)
def test_answers_without_errors(text: str, expected: list[tuple[str, float, float, float, float]]) -> None:
    detection = parse_detections(text, SIZE)
    assert detection.errors == ()
    assert detection.raw == text
    assert [box.label for box in detection.boxes] == [label for label, *_ in expected]
    coordinates = [(box.x1, box.y1, box.x2, box.y2) for box in detection.boxes]
    assert coordinates == [pytest.approx(tuple(corners)) for _, *corners in expected]


FAULTY = [
    # Truncated by max_new_tokens: complete objects are kept.
    ('[{"label": "a", "bbox": [0, 0, 0.5, 0.5]}, {"label": "b", "bbox": [0.5, 0.', ["a"], "cut or malformed"),
    ('[{"label": "a", "bbox": [0, 0, 0.5, 0.5]},', ["a"], "not closed"),
    ('[{"label": "a", "bbox": [0, 0, 0.5, 0.5]} and then', ["a"], "unexpected text"),
    ("[{'label': 'a', 'bbox': [0, 0, 0", [], "cut or malformed"),
    # Items that are not boxes are skipped, the others kept.
    ('[{"label": "a", "bbox": [0, 0, 0.5]}, {"label": "b", "bbox": [0, 0, 1, 1]}]', ["b"], "item 0"),
    ('[{"label": "a", "bbox": [0, 0, true, 1]}]', [], "four numbers"),
    ('[{"label": "a", "bbox": ["0", 0, 1, 1]}]', [], "four numbers"),
    ('[{"label": "a"}]', [], 'no "bbox"'),
    ('[{"label": ["a"], "bbox": [0, 0, 1, 1]}]', [], "label"),
    ('[{"label": "a", "bbox": [0.5, 0.2, 0.5, 0.4]}]', [], "no area"),  # zero width
    ('[{"label": "a", "bbox": [2000, 600, 3000, 900]}]', [], "no area"),  # entirely outside
    ('[{"label": "a", "bbox": [0, 0, 1e999, 1]}]', [], "cut or malformed"),
    ("There is no statue in this image.", [], "no JSON"),
    ('[{"label": "a", "bbox": __import__("os")}]', [], "not a literal"),
]


@pytest.mark.parametrize(("text", "labels", "error"), FAULTY)
def test_answers_with_errors(text: str, labels: list[str], error: str) -> None:
    detection = parse_detections(text, SIZE)
    assert [box.label for box in detection.boxes] == labels
    assert len(detection.errors) == 1
    assert error in detection.errors[0]


def test_box_conversions() -> None:
    (box,) = parse_detections('[{"label": "s", "bbox": [0.3, 0.25, 0.4, 0.65]}]', (640, 480)).boxes
    assert box == Box("s", 192.0, 120.0, 256.0, 312.0, 640, 480)
    assert box.normalized() == pytest.approx((0.3, 0.25, 0.4, 0.65))
    assert box.to_dict()["bbox"] == [192.0, 120.0, 256.0, 312.0]


@pytest.mark.parametrize("size", [(0, 10), (10, -1), (1.5, 2), (10,), (True, 3), (1, 2, 3)])
def test_bad_image_size_is_a_config_error(size: tuple[int, int]) -> None:
    with pytest.raises(ConfigError):
        parse_detections("[]", size)


HOSTILE = [
    "[" * 200_000,
    "[{" * 100_000,
    '[{"label": "' + "a" * 1_000_000 + '", "bbox": [0, 0, 1, 1]}]',
    "[" + '{"label": "a", "bbox": [0, 0, 1, 1]},' * 20_000 + "]",
    "[ " + " " * 1_000_000,
    ("[ x" * 300_000),
    '[{"bbox": [' + "9" * 1_000_000 + "]}]",
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda text: text[:20])
def test_hostile_answers_are_bounded(text: str) -> None:
    started = time.perf_counter()
    detection = parse_detections(text, SIZE)
    assert time.perf_counter() - started < 2.0
    assert len(detection.boxes) <= 1_000


NOISE = st.lists(
    st.one_of(
        st.sampled_from(
            ["[", "]", "{", "}", ",", ":", '"label"', '"bbox"', "'a'", "0.5", "-3", "1e3", "null", " ", "```"]
        ),
        st.floats(allow_nan=True).map(str),
        st.text(max_size=6),
    ),
    max_size=40,
).map("".join)  # fmt: skip


@FUZZ
@given(NOISE, st.integers(min_value=1, max_value=5000), st.integers(min_value=1, max_value=5000))
def test_fuzz_never_raises_and_boxes_are_inside(text: str, width: int, height: int) -> None:
    for box in parse_detections(text, (width, height)).boxes:
        assert 0 <= box.x1 < box.x2 <= width
        assert 0 <= box.y1 < box.y2 <= height


@FUZZ
@given(
    st.lists(
        st.tuples(st.text(max_size=5), st.lists(st.floats(min_value=-0.2, max_value=1.2), min_size=4, max_size=4)),
        max_size=5,
    )
)
def test_fuzz_fraction_answers(items: list[tuple[str, list[float]]]) -> None:
    """Every well-formed fraction box with some area comes back in pixels, in order, with its label."""
    text = json.dumps([{"label": label, "bbox": bbox} for label, bbox in items])
    detection = parse_detections(text, SIZE)
    kept = [
        label
        for label, (x1, y1, x2, y2) in items
        if min(max(x1, 0), 1) != min(max(x2, 0), 1) and min(max(y1, 0), 1) != min(max(y2, 0), 1)
    ]
    assert [box.label for box in detection.boxes] == kept
