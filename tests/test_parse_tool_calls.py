"""Tool-call and reasoning parsing (issue E item 1): both forms, every literal kind, hostile input, fuzz, round trip."""

from __future__ import annotations

import ast
import builtins
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lfm_edge.errors import ParseError
from lfm_edge.parse import (
    TOOL_CALL_END,
    TOOL_CALL_START,
    ParsedMessage,
    ToolCall,
    parse_assistant_output,
    parse_literal,
)
from lfm_edge.parse.tool_calls import parse_call_block

GOLDENS = Path(__file__).parent / "goldens" / "chat" / "chat_template_goldens.json"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def wrap(calls: str) -> str:
    return TOOL_CALL_START + calls + TOOL_CALL_END


def only_call(text: str) -> tuple[str, dict[str, Any]]:
    parsed = parse_assistant_output(text)
    assert parsed.errors == (), parsed.errors
    assert len(parsed.tool_calls) == 1
    return parsed.tool_calls[0].name, parsed.tool_calls[0].arguments


# -- table: every literal kind in the pythonic form ------------------------------------------------------------------

LITERALS = [
    ('"Paris"', "Paris"),
    ("'Paris'", "Paris"),
    ('""', ""),
    ('"東京 🌸"', "東京 🌸"),
    (r'"a\"b"', 'a"b'),
    (r"'it\'s'", "it's"),
    ('"it\'s"', "it's"),
    (r'"tab\there\nnew"', "tab\there\nnew"),
    (r'"back\\slash"', "back\\slash"),
    (r'"\u00e9\x41\U0001F338"', "éA🌸"),
    (r'"\ud83c\udf38"', "🌸"),
    (r'"\ud83c alone"', "\ufffd alone"),
    (r'"keep \d"', "keep \\d"),
    ("3", 3),
    ("-7", -7),
    ("+2", 2),
    ("0", 0),
    ("12345678901234567890", 12345678901234567890),
    ("0.5", 0.5),
    ("-2.5", -2.5),
    (".5", 0.5),
    ("1e-07", 1e-07),
    ("2.0", 2.0),
    ("6.02E+23", 6.02e23),
    ("True", True),
    ("False", False),
    ("None", None),
    ("true", True),
    ("false", False),
    ("null", None),
    ("[]", []),
    ("{}", {}),
    ("[1, 'a', True, None, null, [2, [3]]]", [1, "a", True, None, None, [2, [3]]]),
    ('{"a": 1, "b": {"c": [true, false]}}', {"a": 1, "b": {"c": [True, False]}}),
    ("{'k': 'v', 'n': None}", {"k": "v", "n": None}),
    ("[1, 2,]", [1, 2]),
    ('{"a": 1,}', {"a": 1}),
    ("[ 1 ,\n 2 ]", [1, 2]),
]


@pytest.mark.parametrize(("literal", "expected"), LITERALS)
def test_pythonic_literal_kinds(literal: str, expected: Any) -> None:
    name, arguments = only_call(wrap(f"[f(value={literal})]"))
    assert name == "f"
    assert arguments == {"value": expected}
    assert type(arguments["value"]) is type(expected)


@pytest.mark.parametrize(("literal", "expected"), LITERALS)
def test_json_literal_kinds(literal: str, expected: Any) -> None:
    """The same values inside the JSON form (arguments object) parse alike."""
    _, arguments = only_call(wrap(f'[{{"name": "f", "arguments": {{"value": {literal}}}}}]'))
    assert arguments == {"value": expected}


# -- table: call shapes -------------------------------------------------------------------------------------------

CALL_SHAPES = [
    ('[get_weather(location="Paris", days=3, metric=True, opts={"a": 1})]',
     [("get_weather", {"location": "Paris", "days": 3, "metric": True, "opts": {"a": 1}})]),
    ("[a(x=1), b(y='z')]", [("a", {"x": 1}), ("b", {"y": "z"})]),
    ("[get_time()]", [("get_time", {})]),
    ("[ f( x = 1 , ) , ]", [("f", {"x": 1})]),
    ("get_time()", [("get_time", {})]),
    ("f(a=1), g(b=2)", [("f", {"a": 1}), ("g", {"b": 2})]),
    ("[]", []),
    ("[tool-name_2(a=1)]", [("tool-name_2", {"a": 1})]),
    ('[search(query="news "today"")]', [("search", {"query": 'news "today"'})]),
    ('[f(a="x, y", b=2)]', [("f", {"a": "x, y", "b": 2})]),
    ('[f(a="closing ) paren")]', [("f", {"a": "closing ) paren"})]),
    ('[f(a="x", ), g(b="y",)]', [("f", {"a": "x"}), ("g", {"b": "y"})]),
    ('[f(a="say "hi", then go", b=1)]', [("f", {"a": 'say "hi", then go', "b": 1})]),
    ('[f(a="line1\nline2")]', [("f", {"a": "line1\nline2"})]),
    (r'[f(path="C:\dir\", bad="\x4")]', [("f", {"path": "C:\\dir\\", "bad": "\\x4"})]),
    ("\n```python\n[f(a=1)]\n```\n", [("f", {"a": 1})]),
    ('[{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {}}]', [("f", {"a": 1}), ("g", {})]),
    ('{"name": "f", "arguments": {"a": [1, 2]}}', [("f", {"a": [1, 2]})]),
    ('[{"name": "f", "arguments": "{\\"a\\": 1}"}]', [("f", {"a": 1})]),
    ('[{"name": "f", "parameters": {"a": 1}}]', [("f", {"a": 1})]),
    ('[{"name": "f"}]', [("f", {})]),
    ('[{"type": "function", "function": {"name": "f", "arguments": {"a": null}}}]', [("f", {"a": None})]),
    ('```json\n[{"name": "f", "arguments": {"a": 1}}]\n```', [("f", {"a": 1})]),
]  # fmt: skip


@pytest.mark.parametrize(("block", "expected"), CALL_SHAPES)
def test_call_shapes(block: str, expected: list[tuple[str, dict[str, Any]]]) -> None:
    parsed = parse_assistant_output(wrap(block))
    assert parsed.errors == ()
    assert [(call.name, call.arguments) for call in parsed.tool_calls] == expected
    assert [call.id for call in parsed.tool_calls] == [f"call_{i}" for i in range(len(expected))]
    assert parsed.content == ""


def test_to_openai_shape() -> None:
    call = ToolCall("call_0", "f", {"city": "東京", "n": [1, None]})
    assert call.to_openai() == {
        "id": "call_0",
        "type": "function",
        "function": {"name": "f", "arguments": '{"city": "東京", "n": [1, null]}'},
    }


# -- content, reasoning, several blocks --------------------------------------------------------------------------


MESSAGES = [
    ("Hello there.", ParsedMessage("Hello there.")),
    ("  \n Hello \n", ParsedMessage("Hello")),
    ("<think>plan</think>Answer", ParsedMessage("Answer", reasoning="plan")),
    ("\n<think>\n plan \n</think>\n\nAnswer", ParsedMessage("Answer", reasoning="plan")),
    ("<think></think>x", ParsedMessage("x", reasoning="")),
    ("Hi <think>not reasoning</think>", ParsedMessage("Hi <think>not reasoning</think>")),
    (f"Sure.\n{wrap('[f(a=1)]')}", ParsedMessage("Sure.", (ToolCall("call_0", "f", {"a": 1}),))),
    (
        f"<think>r</think>{wrap('[f(a=1)]')}Let me check.{wrap('[g()]')} Done",
        ParsedMessage("Let me check. Done", (ToolCall("call_0", "f", {"a": 1}), ToolCall("call_1", "g", {})), "r"),
    ),
    (f"<think>{wrap('[f()]')}</think>ok", ParsedMessage("ok", reasoning=wrap("[f()]"))),
    (f"a {TOOL_CALL_END} b", ParsedMessage(f"a {TOOL_CALL_END} b")),
]


@pytest.mark.parametrize(("text", "expected"), MESSAGES)
def test_messages(text: str, expected: ParsedMessage) -> None:
    assert parse_assistant_output(text) == expected


MALFORMED = [
    "[f(a=1)",  # unclosed list
    "[f(a=)]",
    "[f(1)]",  # positional
    "[f(a=1, a=2)]",  # duplicate
    "[f(a='unterminated)]",
    "[f(a=1) g(b=2)]",
    "[f.g(a=1)]",  # dotted name
    "[(a=1)]",
    "[f(a=1)] trailing",
    '[{"name": 3}]',
    '[{"name": "f", "arguments": [1]}]',
    '[{"name": "f", "arguments": "not json"}]',
    "[1, 2]",
    "",
    "[f(a=0x1f)]",
    "[f(a=1j)]",
    "[f(a=nan)]",
    "[f(a=1e999)]",
    "[f(a={1: 2})]",
    "[f(a={'k' 1})]",
    "[f(a=(1, 2))]",
    "[f(a={1, 2})]",
    '[f(a=["\\x4"])]',  # a bad escape inside a list (a top-level string falls back to the raw reading)
]


@pytest.mark.parametrize("block", MALFORMED)
def test_malformed_block_is_content_with_error(block: str) -> None:
    text = f"Before {wrap(block)} after"
    parsed = parse_assistant_output(text)
    assert parsed.tool_calls == ()
    assert parsed.content == text
    assert len(parsed.errors) == 1
    assert "not parsed" in parsed.errors[0]


def test_one_bad_block_does_not_spoil_the_others() -> None:
    parsed = parse_assistant_output(wrap("[f(a=1)]") + wrap("[bad(") + wrap("[g(b=2)]"))
    assert [call.name for call in parsed.tool_calls] == ["f", "g"]
    assert [call.id for call in parsed.tool_calls] == ["call_0", "call_1"]
    assert parsed.content == wrap("[bad(")
    assert len(parsed.errors) == 1
    assert parsed.errors[0].startswith("tool-call block 2 not parsed")


@pytest.mark.parametrize(
    ("text", "content", "reasoning", "error"),
    [
        (f"x {TOOL_CALL_START}[f(a=1)]", f"x {TOOL_CALL_START}[f(a=1)]", None, "not closed"),
        (f"{TOOL_CALL_START}[f(a=", f"{TOOL_CALL_START}[f(a=", None, "not closed"),
        ("<think>still thinking", "", "still thinking", "reasoning not closed"),
    ],
)
def test_truncated_output(text: str, content: str, reasoning: str | None, error: str) -> None:
    parsed = parse_assistant_output(text)
    assert (parsed.content, parsed.tool_calls, parsed.reasoning) == (content, (), reasoning)
    assert len(parsed.errors) == 1
    assert error in parsed.errors[0]


# -- hostile input: rejected quickly, never evaluated ---------------------------------------------------------------

HOSTILE = [
    "[__import__('os').system('echo pwned')]",
    "[f(x=__import__('os'))]",
    "[f(x=os.system)]",
    "[f(x=open('/etc/passwd').read())]",
    "[f(x=lambda: 1)]",
    "[f(x=f'{1+1}')]",
    "[f(x=b'bytes')]",
    "[f(x=g(1))]",
    "[f(x=1+2)]",
    "[f(x=-(1))]",
    "[f(x=[i for i in range(9)])]",
    "[f(x=(y:=1))]",
    "[f(x=...)]",
    "[f(x=__builtins__)]",
    "[f(**{'a': 1})]",
    "[f(*[1])]",
    "[" * 100_000,
    "[f(x=" + "[" * 100_000 + "]" * 100_000 + ")]",
    "[f(x=" + "{'a': " * 50_000 + "1" + "}" * 50_000 + ")]",
    "[f(x='" + "a" * 1_000_000 + "')]",
    "[f(x=" + "9" * 1_000_000 + ")]",
    '[f(x="' + '", ' * 40_000 + "x)]",
    '[f(x="' + '")' * 40_000,
    "[f(x='" + "\\" * 100_000 + ")]",
    '[f(x="' + '" ' * 60_000 + "x)]",
    "[f(x=" + "1," * 60_000 + ")]",
    "[" + "f(a=1)," * 10_000 + "]",
    "[f(" + "a" * 100_000 + "=1)]",
    "[" + "f" * 100_000 + "()]",
    "[f(x=[" + "0," * 30_000 + "])]",
]


@contextlib.contextmanager
def forbid_evaluation() -> Iterator[None]:
    """Any use of eval, exec, compile or ast.parse inside the block raises (restored before asserting)."""

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the parser evaluated or compiled code")

    with contextlib.ExitStack() as stack:
        for name in ("eval", "exec", "compile"):
            stack.enter_context(mock.patch.object(builtins, name, forbidden))
        stack.enter_context(mock.patch.object(ast, "parse", forbidden))
        yield


@pytest.mark.parametrize("block", HOSTILE, ids=lambda block: block[:30])
def test_hostile_block_rejected_quickly(block: str) -> None:
    started = time.perf_counter()
    with forbid_evaluation():
        parsed = parse_assistant_output(f"ok {wrap(block)}")
    elapsed = time.perf_counter() - started
    assert parsed.tool_calls == ()
    assert len(parsed.errors) == 1
    assert elapsed < 1.0, f"{elapsed:.2f} s"


# Legitimate but extreme: parsed (the raw reading of a top-level string is the template's), and quickly.
EXTREME = [
    ('[f(x="' + '" ' * 60_000 + ")]", {"x": '" ' * 59_999}),
    ("[" + " " * 120_000 + "f()]", {}),
    ("[f(x=[" + "0," * 19_000 + "])]", {"x": [0] * 19_000}),
    ("[f(x='" + "a" * 130_000 + "')]", {"x": "a" * 130_000}),
]


@pytest.mark.parametrize(("block", "arguments"), EXTREME, ids=lambda value: str(value)[:30])
def test_extreme_block_parsed_quickly(block: str, arguments: dict[str, Any]) -> None:
    started = time.perf_counter()
    with forbid_evaluation():
        parsed = parse_assistant_output(wrap(block))
    assert time.perf_counter() - started < 1.0
    assert parsed.errors == ()
    assert parsed.tool_calls == (ToolCall("call_0", "f", arguments),)


def test_huge_plain_text_is_fast() -> None:
    text = ("word <think> </think> <|tool_call_end|> " * 50_000) + TOOL_CALL_START
    started = time.perf_counter()
    with forbid_evaluation():
        parsed = parse_assistant_output(text)
    assert time.perf_counter() - started < 1.0
    assert parsed.content == text.strip()


def test_limits_are_reported() -> None:
    for block, message in [
        ("[f(x=" + "[" * 40 + "]" * 40 + ")]", "nesting deeper than 32"),
        ("[" + "f()," * 65 + "]", "more than 64 calls"),
        ("[f(x=" + "1" * 101 + ")]", "number longer than 100"),
        ("[f(x='" + "a" * 140_000 + "')]", "longer than 131072"),
    ]:
        with pytest.raises(ParseError, match=message):
            parse_call_block(block)


# -- fuzz: never raises ----------------------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [TOOL_CALL_START, TOOL_CALL_END, "<think>", "</think>", "<|tool_call_st", "[", "]", "(", ")", "{", "}", ",",
     "=", '"', "'", "\\", ":", " ", "\n", "f", "name", "True", "null", "-1.5e3", "[f(a=1)]", '{"name": "f"}', "é"]
)  # fmt: skip
NOISY_TEXT = st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=40).map("".join)


@FUZZ
@given(NOISY_TEXT)
def test_fuzz_never_raises(text: str) -> None:
    parsed = parse_assistant_output(text)
    for call in parsed.tool_calls:
        json.dumps(call.to_openai(), ensure_ascii=False).encode("utf-8")


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_literal_reader_raises_only_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_literal(text)


# -- round trip through the official chat template ------------------------------------------------------------------


def render_like_template(name: str, arguments: dict[str, Any]) -> str:
    """The template's render_tool_calls for one call (SPEC.md §6.1): raw strings, tojson dicts, str() otherwise."""

    def value(item: Any) -> str:
        if isinstance(item, str):
            return '"' + item + '"'
        if isinstance(item, dict):
            return json.dumps(item, ensure_ascii=False)
        return str(item)

    return name + "(" + ", ".join(f"{key}={value(item)}" for key, item in arguments.items()) + ")"


def golden_tool_call_turns() -> list[tuple[str, dict[str, Any]]]:
    """(rendered assistant turn, its message) for every assistant message with tool calls in the chat goldens."""
    cases = json.loads(GOLDENS.read_text(encoding="utf-8"))["cases"]
    turns = []
    for case in cases:
        messages = json.loads(case["messages_json"])
        if case["template"] != "lfm2.5-vl-450m" or case["error"] or not any("tool_calls" in m for m in messages):
            continue
        rendered = [s for s in case["rendered"].split("<|im_start|>") if s.startswith("assistant\n")]
        assistants = [message for message in messages if message["role"] == "assistant"]
        assert len(rendered) >= len(assistants)
        for segment, message in zip(rendered, assistants, strict=False):
            if "tool_calls" in message:
                turns.append((segment.removeprefix("assistant\n").split("<|im_end|>")[0], message))
    return turns


GOLDEN_TURNS = golden_tool_call_turns()


def test_goldens_hold_tool_calls() -> None:
    assert len(GOLDEN_TURNS) >= 8


@pytest.mark.parametrize(("rendered", "message"), GOLDEN_TURNS)
def test_golden_round_trip(rendered: str, message: dict[str, Any]) -> None:
    parsed = parse_assistant_output(rendered)
    expected = [(call["function"]["name"], call["function"]["arguments"]) for call in message["tool_calls"]]
    assert parsed.errors == ()
    assert [(call.name, call.arguments) for call in parsed.tool_calls] == expected
    assert parsed.content == (message.get("content") or "").strip()
    if "<think>" in rendered:
        assert parsed.reasoning == message["thinking"]
    calls = ", ".join(render_like_template(name, arguments) for name, arguments in expected)
    assert wrap(f"[{calls}]") in rendered, "the test's renderer must match transformers' rendering"


IDENTIFIERS = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)
# The template writes top-level strings raw; one with a backslash or a double quote is ambiguous to read back.
TOP_LEVEL = st.one_of(VALUES.filter(lambda v: not isinstance(v, str)), st.text(max_size=12).filter(
    lambda s: '"' not in s and "\\" not in s
))  # fmt: skip


@FUZZ
@given(st.lists(st.tuples(IDENTIFIERS, st.dictionaries(IDENTIFIERS, TOP_LEVEL, max_size=4)), max_size=3))
def test_template_round_trip(calls: list[tuple[str, dict[str, Any]]]) -> None:
    rendered = wrap("[" + ", ".join(render_like_template(name, arguments) for name, arguments in calls) + "]")
    parsed = parse_assistant_output(rendered)
    assert parsed.errors == ()
    assert [(call.name, call.arguments) for call in parsed.tool_calls] == calls


def test_raw_template_string_repairs_lone_surrogates() -> None:
    # Found by `make fuzz-parsers`: the raw (template) reading of a top-level string kept lone surrogates, which
    # to_openai() then could not send as UTF-8. Strict strings already replaced them with U+FFFD.
    name, arguments = only_call(wrap('[f(text="a\ud873"b", n=1)]'))
    assert (name, arguments) == ("f", {"text": 'a\ufffd"b', "n": 1})
    call = parse_assistant_output(wrap('[f(text="a\ud873"b")]')).tool_calls[0]
    json.dumps(call.to_openai(), ensure_ascii=False).encode("utf-8")
