"""ToolCallStreamFilter: streamed content and reasoning add up to the whole-text parse, for any split."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lfm_edge.errors import ParseError
from lfm_edge.parse import (
    TOOL_CALL_END,
    TOOL_CALL_START,
    ParsedMessage,
    ToolCall,
    ToolCallStreamFilter,
    parse_assistant_output,
)
from tests.test_parse_tool_calls import FUZZ, NOISY_TEXT


def stream(text: str, cuts: list[int]) -> tuple[str, str, ParsedMessage]:
    """Feed ``text`` cut at ``cuts``; return (streamed content, streamed reasoning, final message)."""
    stream_filter = ToolCallStreamFilter()
    content: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    bounds = [0, *sorted(cut % (len(text) + 1) for cut in cuts), len(text)]
    for start, end in itertools.pairwise(bounds):
        delta = stream_filter.feed_delta(text[start:end])
        content.append(delta.content)
        reasoning.append(delta.reasoning)
        calls.extend(delta.tool_calls)
    last = stream_filter.flush()
    final = stream_filter.finish()
    assert tuple(calls) == final.tool_calls, "the streamed tool calls add up to the final message's"
    return "".join(content) + last.content, "".join(reasoning) + last.reasoning, final


@FUZZ
@given(NOISY_TEXT, st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_stream_matches_whole_parse(text: str, cuts: list[int]) -> None:
    content, reasoning, final = stream(text, cuts)
    assert final == parse_assistant_output(text)
    assert content == final.content
    assert reasoning == (final.reasoning or "")


def test_stream_withholds_tool_call_text() -> None:
    stream_filter = ToolCallStreamFilter()
    shown = [
        stream_filter.feed(piece) for piece in ["Sure", ". <|tool_call_st", "art|>[f(a=", "1)]<|tool_", "call_end|>"]
    ]
    assert shown == ["Sure", ".", "", "", ""]
    # The space held before the call is released with the text after it, exactly as the whole parse joins them.
    assert stream_filter.feed(" Done ") == "  Done"
    assert stream_filter.flush().content == ""
    final = stream_filter.finish()
    assert final.content == "Sure.  Done"
    assert final.tool_calls == (ToolCall("call_0", "f", {"a": 1}),)


def test_stream_releases_a_failed_block_when_it_closes() -> None:
    stream_filter = ToolCallStreamFilter()
    assert stream_filter.feed("A " + TOOL_CALL_START + "[f(") == "A"
    assert stream_filter.feed(")" + TOOL_CALL_END + "!") == " " + TOOL_CALL_START + "[f()" + TOOL_CALL_END + "!"
    assert stream_filter.finish().errors != ()


def test_stream_reasoning_and_partial_marker() -> None:
    stream_filter = ToolCallStreamFilter()
    deltas = [stream_filter.feed_delta(piece) for piece in ["<thi", "nk>I think", "</th", "ink>\n", "Answer <|tool"]]
    assert [delta.reasoning for delta in deltas] == ["", "I think", "", "", ""]
    assert [delta.content for delta in deltas] == ["", "", "", "", "Answer"]
    assert stream_filter.flush().content == " <|tool"
    assert stream_filter.finish().content == "Answer <|tool"
    with pytest.raises(ParseError):
        stream_filter.feed("more")
