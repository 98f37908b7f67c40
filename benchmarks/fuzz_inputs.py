"""Seeded generator of parser inputs for the fuzz run (`make fuzz-parsers`): valid, damaged and random texts.

Each input is one of: a valid sample (tool-call message, detection answer or literal) whose parse is known; such a
sample mutated (characters and structural tokens inserted, deleted, replaced, ranges duplicated or swapped),
truncated, or spliced with another; or random Unicode (lone surrogates included) mixed with structural tokens.
A valid sample carries what it must parse to, so the checks can verify a round trip as well as "no crash".
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

START, END = "<|tool_call_start|>", "<|tool_call_end|>"

# Tokens the grammars care about, inserted by mutations and mixed into random text.
STRUCTURAL = (
    *(START, END, "<think>", "</think>", "<|tool_call_st", "<|tool_call_e", "</thi"),
    *("[", "]", "(", ")", "{", "}", '"', "'", "\\", "=", ",", ":", " ", "\n", "\t", "```", "```json\n"),
    *("True", "False", "None", "true", "false", "null", "nan", "-", "+", ".", "e", "0", "1.5", "1e999", "0x1f"),
    *("\\u", "\\ud83c", "\\udf38", "\\x4", "\\U0010ffff", "\\U00110000", "\\N{DASH}", "f'", "b'", "lambda", "__"),
    *('"bbox"', '"label"', '"name"', '"arguments"', '"function"', "a=", "f(", "x(a=", ", b=", '")', '")]', "], "),
)
_PLAIN_CHARS = "abcxyz_ AZ09-'\"\\é猫🌸\u0301\u200b\x00\x7f"
_NAMES = ("get_weather", "search", "f", "a_b", "x-y", "Tool2", "_private")
_KEYS = ("city", "q", "n", "days", "text", "a", "b_c", "items")


@dataclass(frozen=True)
class Sample:
    """A generated input; ``expected`` is what it must parse to when it is valid (None when it was damaged)."""

    text: str
    expected: Any = None


class InputGenerator:
    """All randomness comes from one seeded ``random.Random``: the same seed gives the same inputs."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # -- values ------------------------------------------------------------------------------------------------

    def string(self, max_chars: int = 12) -> str:
        rng = self.rng
        if rng.random() < 0.1:
            return "".join(chr(rng.randrange(0x20, 0xD800)) for _ in range(rng.randrange(max_chars)))
        return "".join(rng.choice(_PLAIN_CHARS) for _ in range(rng.randrange(max_chars)))

    def value(self, depth: int = 0) -> Any:
        """A JSON-compatible value without NaN, infinities or lone surrogates (so it must round-trip)."""
        rng = self.rng
        makers: tuple[Callable[[], Any], ...] = (
            self.string,
            lambda: rng.randrange(-(10**12), 10**12),
            lambda: rng.choice((0.0, -1.5, 3.25e-7, 1e300, rng.uniform(-1e6, 1e6))),
            lambda: rng.choice((True, False, None)),
            lambda: self.string(40),
            lambda: [self.value(depth + 1) for _ in range(rng.randrange(4))],
            lambda: {self.string(6): self.value(depth + 1) for _ in range(rng.randrange(4))},
        )
        return makers[rng.randrange(len(makers) if depth < 3 else len(makers) - 2)]()

    def literal(self) -> Sample:
        value = self.value()
        text = repr(value) if self.rng.random() < 0.5 else json.dumps(value, ensure_ascii=self.rng.random() < 0.5)
        return Sample(text, value)

    # -- tool-call messages ------------------------------------------------------------------------------------

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        rng = self.rng
        return [
            (rng.choice(_NAMES), {key: self.value() for key in rng.sample(_KEYS, rng.randrange(4))})
            for _ in range(rng.randrange(1, 4))
        ]

    def call_block(self, calls: list[tuple[str, dict[str, Any]]]) -> str:
        if self.rng.random() < 0.3:
            items = [{"name": name, "arguments": arguments} for name, arguments in calls]
            return json.dumps(items, ensure_ascii=self.rng.random() < 0.5)
        rendered = (
            f"{name}({', '.join(f'{key}={value!r}' for key, value in arguments.items())})" for name, arguments in calls
        )
        return "[" + ", ".join(rendered) + "]"

    def template_raw_block(self) -> str:
        """A call whose string argument the chat template wrote unescaped (quotes inside, no escapes)."""
        raw = self.string(20).replace("\\", "")
        return f'[{self.rng.choice(_NAMES)}(text="{raw}", n=1)]'

    def message(self) -> Sample:
        """A whole assistant message: optional reasoning, prose and tool-call blocks; expected = all the calls."""
        rng = self.rng
        pieces: list[str] = []
        if rng.random() < 0.3:
            pieces.append(f"<think>{self.string(30)}</think>")
        expected: list[tuple[str, dict[str, Any]]] | None = []
        for _ in range(rng.randrange(1, 3)):
            pieces.append(self.string(20).replace("<", "").replace("think>", ""))
            if rng.random() < 0.1:
                pieces.append(START + self.template_raw_block() + END)
                expected = None  # the raw reading is documented as ambiguous: no round trip asserted
                continue
            calls = self.calls()
            pieces.append(START + self.call_block(calls) + END)
            if expected is not None:
                expected.extend(calls)
        return Sample("".join(pieces), expected)

    # -- detection answers -------------------------------------------------------------------------------------

    def detection_answer(self) -> Sample:
        """A list of boxes in fractions; expected = [(label, (x1, y1, x2, y2) fractions), ...]."""
        rng = self.rng
        boxes = []
        for _ in range(rng.randrange(0, 5)):
            x1, x2 = sorted(round(rng.uniform(0, 1), 3) for _ in range(2))
            y1, y2 = sorted(round(rng.uniform(0, 1), 3) for _ in range(2))
            if x2 - x1 > 0.01 and y2 - y1 > 0.01:
                boxes.append((self.string(10), (x1, y1, x2, y2)))
        items = [{"label": label, "bbox": list(corners)} for label, corners in boxes]
        text = json.dumps(items, ensure_ascii=rng.random() < 0.5)
        if rng.random() < 0.3:
            text = f"```json\n{text}\n```"
        if rng.random() < 0.3:
            text = "Here are the boxes: " + text + " Done."
        return Sample(text, boxes)

    # -- damage ------------------------------------------------------------------------------------------------

    def random_text(self, max_pieces: int = 40) -> str:
        rng = self.rng
        pieces = []
        for _ in range(rng.randrange(max_pieces)):
            roll = rng.random()
            if roll < 0.4:
                pieces.append(rng.choice(STRUCTURAL))
            elif roll < 0.7:
                pieces.append(rng.choice(_PLAIN_CHARS))
            else:
                pieces.append(chr(rng.randrange(0x110000)))  # any code point, lone surrogates included
        return "".join(pieces)

    def mutate(self, text: str) -> str:
        rng = self.rng
        for _ in range(rng.randrange(1, 6)):
            where = rng.randrange(len(text) + 1)
            span = rng.randrange(1, 8)
            operation = rng.randrange(6)
            if operation == 0:
                text = text[:where] + text[where + span :]
            elif operation == 1:
                text = text[:where] + rng.choice(STRUCTURAL) + text[where:]
            elif operation == 2:
                text = text[:where] + self.random_text(3) + text[where + 1 :]
            elif operation == 3:
                text = text[:where] + text[where : where + span] * rng.randrange(2, 5) + text[where + span :]
            elif operation == 4:
                first, second = sorted((where, rng.randrange(len(text) + 1)))  # move a range earlier
                text = text[:first] + text[second : second + span] + text[first:second] + text[second + span :]
            else:
                text = text[:where]
        return text

    def damaged(self, valid: Sample) -> str:
        """``valid`` mutated, truncated, spliced with random text, or replaced by random text."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.5:
            return self.mutate(valid.text)
        if roll < 0.7:
            return valid.text[: rng.randrange(len(valid.text) + 1)]
        if roll < 0.85:
            cut = rng.randrange(len(valid.text) + 1)
            return valid.text[:cut] + self.random_text(10) + valid.text[cut:]
        return self.random_text()

    def sample(self, make_valid: Callable[[], Sample]) -> Sample:
        """A valid sample from ``make_valid`` (e.g. ``self.message``) a third of the time, a damaged one otherwise."""
        valid = make_valid()
        if self.rng.random() < 1 / 3:
            return valid
        return Sample(self.damaged(valid))
