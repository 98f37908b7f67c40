"""Hostile-input benchmark (`make bench-parse`): 1 MB adversarial texts through the output parsers, timed.

Every case is about 1,000,000 characters: deep nesting, long quote runs, unterminated strings and escapes, the
regular-expression-DoS shapes behind CVE-2025-48887 (vLLM's pythonic tool-call regex backtracks exponentially on
``"[A(A=" + "\\t)A(A=,\\t" * n``; runs of ``(``, ``,`` and ``=`` inside a call), huge numbers, whitespace runs,
thousands of markers and huge JSON arrays. Payloads that must sit inside one tool-call block are also built as
blocks just under the 131,072-character block limit, repeated up to 1 MB: the slowest text the limits still let
through. Each case is timed (best and worst of ``--repeats``) through parse_assistant_output, ToolCallStreamFilter
fed in 8-character pieces (about two tokens each), parse_detections and parse_literal. ``under_1s`` flags the
longest single call, in the best of the repeats: the whole parse, or for the stream filter its slowest feed() or
finish() (the whole stream of 125,000 feeds is reported too, but no caller waits for it at once). For contrast
the report also times vLLM's vulnerable pattern on the short PoC (n = 6..8).

Exit status 1 when any single call took a second or more (or raised anything but parse_literal's ParseError).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lfm_edge.errors import ParseError
from lfm_edge.parse import (
    TOOL_CALL_END,
    TOOL_CALL_START,
    ToolCallStreamFilter,
    parse_assistant_output,
    parse_detections,
    parse_literal,
)

SIZE = 1_000_000
BLOCK_CHARS = 131_000  # just under ParseLimits.max_block_chars (131,072)
IMAGE_SIZE = (1920, 1080)
STREAM_PIECE_CHARS = 8
_CVE_POC_UNIT = "\t)A(A=,\t"
# vLLM's pythonic tool-call pattern before the fix (CVE-2025-48887), for the contrast only.
_VLLM_VULNERABLE = (
    r"\[([a-zA-Z]+\w*\(([a-zA-Z]+\w*=.*,\s*)*([a-zA-Z]+\w*=.*\s)?\),\s*)*"
    r"([a-zA-Z]+\w*\(([a-zA-Z]+\w*=.*,\s*)*([a-zA-Z]+\w*=.*\s*)?\)\s*)+\]"
)


def repeat_to(unit: str, size: int = SIZE) -> str:
    """``unit`` repeated to about ``size`` characters (whole copies only)."""
    return unit * max(1, size // len(unit))


def one_block(body: str) -> str:
    return TOOL_CALL_START + body + TOOL_CALL_END


def blocks_at_limit(prefix: str, unit: str, suffix: str = "") -> str:
    """Blocks of ``prefix + unit * k + suffix`` just under the block limit, repeated to about 1 MB."""
    body = prefix + repeat_to(unit, BLOCK_CHARS - len(prefix) - len(suffix)) + suffix
    return repeat_to(one_block(body))


def _tool_call_cases() -> dict[str, str]:
    """Payloads inside tool-call blocks: one 1 MB block (over the limit) and blocks at the limit."""
    shapes = {
        "deep nesting [[[": ("[f(a=", "[", ""),
        "deep nesting {{{ (JSON form)": ('[{"name": "f", "arguments": ', '{"a": ', ""),
        "long run of double quotes": ("[f(a=", '"', ")]"),
        "long run of single quotes": ("[f(a=", "'", ")]"),
        "quote + comma runs": ('[f(a="', '", ', ")]"),
        "quotes each followed by `, name`": ('[f(a="', '", b', ""),
        "unterminated string": ('[f(a="', "x", ""),
        "backslash run in a string": ('[f(a="', "\\", '")]'),
        "escaped-quote run": ('[f(a="', '\\"', ""),
        "many arguments": ("[f(", 'a="x", ', ")]"),
        "many calls": ("[", "f(a=1), ", "]"),
        "CVE-2025-48887 PoC shape": ("[A(A=", _CVE_POC_UNIT, ""),
        "CVE shape [a( + b=b=b=": ("[a(", "b=", ""),
        "run of ( in a call": ("[f(", "(", ""),
        "run of , in a call": ("[f(a=1", ",", ")]"),
        "run of = in a call": ("[f(a", "=", ""),
        "nested calls g(g(g(": ("[f(a=", "g(", ""),
        "huge number": ("[f(a=", "9", ")]"),
        "whitespace run": ("[f(a=1", " ", ")]"),
        "emoji string": ('[f(a="', "🌸", '")]'),
    }
    cases: dict[str, str] = {}
    for name, (prefix, unit, suffix) in shapes.items():
        cases[f"{name} (one 1 MB block)"] = one_block(prefix + repeat_to(unit) + suffix)
        cases[f"{name} (blocks at the limit)"] = blocks_at_limit(prefix, unit, suffix)
    cases["CVE-2025-48887 PoC shape, no markers"] = "[A(A=" + repeat_to(_CVE_POC_UNIT)
    return cases


def _message_cases() -> dict[str, str]:
    """Whole-message shapes: markers, reasoning, partial markers, lone surrogates."""
    return {
        "start markers only": repeat_to(TOOL_CALL_START),
        "empty blocks": repeat_to(TOOL_CALL_START + TOOL_CALL_END),
        "tiny valid blocks": repeat_to(one_block("[f(a=1)]")),
        "partial markers": repeat_to("<|tool_call_st"),
        "unclosed <think>": "<think>" + repeat_to("x"),
        "<think> run": repeat_to("<think>"),
        "[[[ as content": repeat_to("["),
        "lone surrogates": repeat_to("\ud83c"),
    }


def _detection_cases() -> dict[str, str]:
    box = '{"label": "a", "bbox": [0.1, 0.2, 0.3, 0.4]}, '
    return {
        "JSON array of 22k boxes": "[" + repeat_to(box) + "]",
        "JSON array of boxes without area": "[" + repeat_to('{"label": "a", "bbox": [0, 0, 0, 0]}, ') + "]",
        "one list of 500k numbers": "[[" + repeat_to("0, ") + "]]",
        "bbox of 330k numbers": '[{"label": "a", "bbox": [' + repeat_to("1, ") + "]}]",
        "objects without commas {}{}{}": "[" + repeat_to("{}"),
        "deep nesting [[[ (detections)": repeat_to("["),
        "deep nesting {{{": repeat_to("{"),
        "unterminated label": '[{"label": "' + repeat_to("a"),
        "'[ ' then 1000 spaces, repeated": repeat_to("[" + " " * 1000 + "x"),
        "'[\"' run": repeat_to('["'),
        "prose only": repeat_to("a"),
    }


def hostile_cases() -> dict[str, str]:
    return {**_tool_call_cases(), **_message_cases(), **_detection_cases()}


class _StreamRun:
    """Feeds the text in pieces, remembering the longest single feed/finish call (what a caller waits for)."""

    def __init__(self) -> None:
        self.longest_call = 0.0

    def __call__(self, text: str) -> str:
        stream = ToolCallStreamFilter()
        self.longest_call = 0.0
        for start in range(0, len(text), STREAM_PIECE_CHARS):
            started = time.perf_counter()
            stream.feed(text[start : start + STREAM_PIECE_CHARS])
            self.longest_call = max(self.longest_call, time.perf_counter() - started)
        started = time.perf_counter()
        message = stream.finish()
        self.longest_call = max(self.longest_call, time.perf_counter() - started)
        return f"{len(message.tool_calls)} call(s), {len(message.errors)} error(s)"


def _assistant(text: str) -> str:
    message = parse_assistant_output(text)
    first = f": {message.errors[0][:90]}" if message.errors else ""
    return f"{len(message.tool_calls)} call(s), {len(message.errors)} error(s){first}"


def _detections(text: str) -> str:
    detection = parse_detections(text, IMAGE_SIZE)
    first = f": {detection.errors[0][:90]}" if detection.errors else ""
    return f"{len(detection.boxes)} box(es), {len(detection.errors)} error(s){first}"


def _literal(text: str) -> str:
    try:
        return f"value: {type(parse_literal(text)).__name__}"
    except ParseError as error:
        return f"ParseError: {str(error)[:90]}"


PARSERS: dict[str, Callable[[str], str]] = {
    "parse_assistant_output": _assistant,
    f"ToolCallStreamFilter ({STREAM_PIECE_CHARS}-char pieces)": _StreamRun(),
    "parse_detections": _detections,
    "parse_literal": _literal,
}


def time_case(parse: Callable[[str], str], text: str, repeats: int) -> dict[str, Any]:
    """Best and worst whole-input seconds over the repeats, and the longest single call (for the stream filter: its
    slowest feed() or finish(); for the others: the whole parse) in the best repeat, which ``under_1s`` judges so
    that a busy machine does not flip it."""
    times: list[float] = []
    longest_calls: list[float] = []
    outcome = ""
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            outcome = parse(text)
        except Exception as error:  # a parser that raises on model output is a failure to report, not to hide
            outcome = f"RAISED {type(error).__name__}: {str(error)[:90]}"
        times.append(time.perf_counter() - started)
        longest_calls.append(parse.longest_call if isinstance(parse, _StreamRun) else times[-1])
    return {
        "seconds_min": round(min(times), 4),
        "seconds_max": round(max(times), 4),
        "longest_call_s": round(min(longest_calls), 4),
        "under_1s": min(longest_calls) < 1.0 and not outcome.startswith("RAISED"),
        "outcome": outcome,
    }


def vulnerable_regex_contrast() -> list[dict[str, Any]]:
    """vLLM's pre-fix pattern on the PoC: seconds grow about 5x per extra repetition."""
    pattern = re.compile(_VLLM_VULNERABLE, re.DOTALL)
    rows = []
    for repetitions in (6, 7, 8):
        text = "[A(A=" + _CVE_POC_UNIT * repetitions
        started = time.perf_counter()
        pattern.match(text)
        rows.append({"chars": len(text), "seconds": round(time.perf_counter() - started, 4)})
    return rows


def worst_case(cases: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """The case where parser ``label`` took longest (worst whole-input time over the repeats)."""
    case = max(cases, key=lambda case: case["results"][label]["seconds_max"])
    return {"case": case["case"], **case["results"][label]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench/parse.json"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases: list[dict[str, Any]] = []
    for name, text in hostile_cases().items():
        results = {label: time_case(parse, text, args.repeats) for label, parse in PARSERS.items()}
        cases.append({"case": name, "chars": len(text), "results": results})
        slowest = max(results.items(), key=lambda item: item[1]["seconds_max"])
        print(f"{name:60} {len(text):>9,} chars  slowest {slowest[1]['seconds_max']:.3f} s ({slowest[0]})")
    worst = {label: worst_case(cases, label) for label in PARSERS}
    all_under = all(result["under_1s"] for case in cases for result in case["results"].values())
    report = {
        "what": "about 1 MB hostile inputs through each output parser; seconds per input, best and worst of repeats",
        "environment": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "repeats": args.repeats,
        "all_under_1s": all_under,
        "worst_per_parser": worst,
        "cases": cases,
        "contrast_vllm_vulnerable_regex_on_the_poc": vulnerable_regex_contrast(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
    for label, row in worst.items():
        print(
            f"worst {label}: {row['seconds_max']:.3f} s (longest call {row['longest_call_s']:.3f} s) on {row['case']!r}"
        )
    print(f"every call under 1 s: {all_under}")
    print(f"written to {args.out}")
    return 0 if all_under else 1


if __name__ == "__main__":
    sys.exit(main())
