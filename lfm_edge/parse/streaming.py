"""Incremental version of parse_assistant_output for streamed generation.

Text is shown as soon as it is certain to be content: a leading ``<think>`` block goes to the reasoning stream,
and everything from ``<|tool_call_start|>`` on is withheld until ``<|tool_call_end|>`` decides it: a block that
parses disappears (its calls are in the final message), one that does not is released as content then. A piece
that ends with a partial marker (``"<|tool_call_st"``, ``"</thi"``) is held back until the next piece settles it,
and so is trailing whitespace, because the final content is stripped at both ends.

The contract, for any text and any split of it into pieces (checked by a property test)::

    streamed = "".join(filter.feed(piece) for piece in pieces) + filter.flush().content
    streamed == filter.finish().content == parse_assistant_output(text).content

and likewise the reasoning deltas add up to ``finish().reasoning`` (or "" when there is none) and the tool-call
deltas to ``finish().tool_calls``. Work per piece is
proportional to the piece plus a marker's length, so a long stream costs linear time overall.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

from lfm_edge.errors import ParseError
from lfm_edge.parse.tool_calls import (
    DEFAULT_PARSE_LIMITS,
    THINK_END,
    THINK_START,
    TOOL_CALL_END,
    TOOL_CALL_START,
    ParsedMessage,
    ParseLimits,
    ToolCall,
    parse_assistant_output,
    parse_call_block,
)


@dataclass(frozen=True)
class StreamDelta:
    """What one piece of generated text adds to the visible content, the reasoning and the tool calls (each call
    once its block has closed and parsed; ids numbered as parse_assistant_output numbers them)."""

    content: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


class _State(Enum):
    START = auto()  # nothing but whitespace and maybe a prefix of "<think>" seen yet
    THINK = auto()  # inside the leading <think> block
    CONTENT = auto()  # ordinary content
    CALL = auto()  # inside a tool-call block, withheld


class _TrimmedStream:
    """Emits text with the leading whitespace dropped and trailing whitespace held until more text follows it."""

    def __init__(self) -> None:
        self._started = False
        self._held: list[str] = []

    def push(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            if not text:
                return ""
            self._started = True
        body = text.rstrip()
        if not body:
            self._held.append(text)
            return ""
        released = "".join(self._held) + body
        self._held = [text[len(body) :]]
        return released


def _partial_marker_length(text: str, marker: str) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of ``marker`` (0 if none)."""
    for length in range(min(len(text), len(marker) - 1), 0, -1):
        if text.endswith(marker[:length]):
            return length
    return 0


class ToolCallStreamFilter:
    """Feed decoded pieces as they come; show what ``feed`` returns; ``flush`` then ``finish`` at the end."""

    def __init__(self, limits: ParseLimits = DEFAULT_PARSE_LIMITS) -> None:
        self._limits = limits
        self._raw: list[str] = []
        self._state = _State.START
        self._pending = ""  # unclassified text: a possible partial marker (or, at START, a prefix of <think>)
        self._call_parts: list[str] = []  # the open tool-call block so far
        self._call_tail = ""  # its last len(TOOL_CALL_END) - 1 characters, where an end marker may begin
        self._content = _TrimmedStream()
        self._reasoning = _TrimmedStream()
        self._flushed = False
        self._result: ParsedMessage | None = None
        self._calls: list[ToolCall] = []

    def feed(self, piece: str) -> str:
        """Content that is safe to show now (possibly "")."""
        return self.feed_delta(piece).content

    def feed_delta(self, piece: str) -> StreamDelta:
        """Content and reasoning that are safe to show now."""
        if self._flushed:
            raise ParseError("ToolCallStreamFilter: feed after flush() or finish()")
        self._raw.append(piece)
        content: list[str] = []
        reasoning: list[str] = []
        calls_before = len(self._calls)
        text: str | None = self._pending + piece
        self._pending = ""
        while text is not None:
            text = self._step(text, content, reasoning)
        return StreamDelta("".join(content), "".join(reasoning), tuple(self._calls[calls_before:]))

    def flush(self) -> StreamDelta:
        """End of generation: the withheld text that turned out to be content (an unclosed block, a partial marker)."""
        if self._flushed:
            return StreamDelta()
        self._flushed = True
        pending, self._pending = self._pending, ""
        if self._state is _State.THINK:
            return StreamDelta(reasoning=self._reasoning.push(pending))
        if self._state is _State.CALL:
            pending = TOOL_CALL_START + "".join(self._call_parts)
        return StreamDelta(content=self._content.push(pending))

    def finish(self) -> ParsedMessage:
        """The whole message, exactly as parse_assistant_output gives it for the concatenated pieces."""
        self.flush()
        if self._result is None:
            self._result = parse_assistant_output("".join(self._raw), self._limits)
        return self._result

    def _step(self, text: str, content: list[str], reasoning: list[str]) -> str | None:
        """Consume ``text`` in the current state; return the part left for the next state, or None when done."""
        if self._state is _State.START:
            return self._step_start(text)
        if self._state is _State.THINK:
            return self._step_marked(text, THINK_END, self._reasoning, reasoning)
        if self._state is _State.CONTENT:
            return self._step_marked(text, TOOL_CALL_START, self._content, content)
        return self._step_call(text, content)

    def _step_start(self, text: str) -> str | None:
        # Leading whitespace is never content and never decides anything: drop it.
        text = text.lstrip()
        if text.startswith(THINK_START):
            self._state = _State.THINK
            return text[len(THINK_START) :]
        if THINK_START.startswith(text):
            self._pending = text  # "" or a prefix of <think>: wait for more
            return None
        self._state = _State.CONTENT
        return text

    def _step_marked(self, text: str, marker: str, stream: _TrimmedStream, out: list[str]) -> str | None:
        """Emit ``text`` to ``stream`` up to ``marker`` (then switch state), holding back a partial marker."""
        index = text.find(marker)
        if index < 0:
            held = _partial_marker_length(text, marker)
            self._pending = text[len(text) - held :]
            out.append(stream.push(text[: len(text) - held]))
            return None
        out.append(stream.push(text[:index]))
        self._state = _State.CALL if marker == TOOL_CALL_START else _State.CONTENT
        return text[index + len(marker) :]

    def _step_call(self, text: str, content: list[str]) -> str | None:
        window = self._call_tail + text
        index = window.find(TOOL_CALL_END)
        if index < 0:
            self._call_parts.append(text)
            self._call_tail = window[-(len(TOOL_CALL_END) - 1) :]
            return None
        # The end marker may begin inside the tail, i.e. in text already stored in _call_parts.
        cut = index - len(self._call_tail)
        stored = "".join(self._call_parts)
        block = stored[: len(stored) + cut] if cut < 0 else stored + text[:cut]
        self._call_parts, self._call_tail = [], ""
        self._state = _State.CONTENT
        try:
            calls = parse_call_block(block, self._limits)
        except ParseError:
            content.append(self._content.push(TOOL_CALL_START + block + TOOL_CALL_END))
        else:
            first = len(self._calls)
            self._calls.extend(ToolCall(f"call_{first + i}", name, args) for i, (name, args) in enumerate(calls))
        return text[cut + len(TOOL_CALL_END) :]
