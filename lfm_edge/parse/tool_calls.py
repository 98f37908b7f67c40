r"""Tool calls and reasoning in the model's output, parsed without ever evaluating code (SPEC.md §6.2).

LFM2.5 wraps tool calls in ``<|tool_call_start|>`` ... ``<|tool_call_end|>`` (tokens 10 and 11, decoded as text).
Between them it writes one of two forms:

* pythonic (the default): ``[get_weather(city="Paris", days=3), search(query='x')]`` -- keyword arguments only;
  values are literals (strings in either quote, numbers, True/False/None, JSON's true/false/null, lists, dicts);
* JSON (when the system prompt says "Output function calls as JSON"): ``[{"name": ..., "arguments": {...}}]``;
  an OpenAI-shaped ``{"type": "function", "function": {...}}`` item and arguments given as a JSON string are
  accepted too.

The official chat template renders a string argument as ``'"' + value + '"'`` without escaping (SPEC.md §6.1), so
``text="say "hi""`` is what the model sees in its history and may imitate. A top-level string argument is
therefore read strictly first (escapes decoded, first unescaped quote closes it); if what follows it is not the
rest of a call, it is re-read the way the template wrote it: raw, closed by the first quote followed by
``, name=`` or ``)`` + ``]``/``, name(``/end (trailing commas allowed). Strings inside lists and dicts are always
strict (the template writes them with Python's repr and tojson, which escape). The raw reading is ambiguous for a
value that itself contains a quote followed by ``, name=``, and a raw backslash sequence such as ``\n`` that
happens to read strictly is decoded: the template's output cannot be told apart from an escaped string there.

Guarantees: no eval/exec/ast; limits on block size, calls per block, nesting depth, value count and number length
(:class:`ParseLimits`); a block that fails to parse -- malformed, over a limit, or never closed -- is returned as
content, markers included, with a message in ``errors``. Each block is all-or-nothing. Call ids are deterministic,
``call_0``, ``call_1``... in order of appearance in the message; a caller that needs ids unique across a whole
conversation must rename them.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from lfm_edge.errors import ParseError
from lfm_edge.parse.literals import (
    DEFAULT_LITERAL_LIMITS,
    QUOTES,
    LiteralLimits,
    LiteralReader,
    parse_literal,
    repair_surrogates,
)

logger = logging.getLogger(__name__)

TOOL_CALL_START = "<|tool_call_start|>"
TOOL_CALL_END = "<|tool_call_end|>"
THINK_START = "<think>"
THINK_END = "</think>"

# Function names as OpenAI allows them (letters, digits, '_' and '-'); no dots, as in llama.cpp's LFM2 parser.
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_MAX_NAME_CHARS = 128
# What may follow a top-level string argument that the template wrote raw (see the module docstring). No nested
# quantifiers, and no quote can occur in a match, so scanning every quote of a string stays linear.
_RAW_STRING_FOLLOWER = re.compile(
    r"\s*(?:"
    r",\s*(?:[A-Za-z_]\w*\s*=|\))"  # the next argument, or a trailing comma
    r"|\)\s*(?:\]|,\s*(?:[A-Za-z_][\w-]*\s*\(|\])|\Z)"  # the end of the call: list end, next call, block end
    r")"
)


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on one tool-call block (the text between the two markers).

    max_block_chars: 128 Ki characters is more than a full 32k-token context of ordinary text; longer blocks are
        rejected before any scanning.
    max_calls: calls in one block.
    literal: bounds on the argument values (depth, value count, number length).
    """

    max_block_chars: int = 131_072
    max_calls: int = 64
    literal: LiteralLimits = DEFAULT_LITERAL_LIMITS


DEFAULT_PARSE_LIMITS = ParseLimits()


@dataclass(frozen=True)
class ToolCall:
    """One function call. ``arguments`` holds JSON-compatible values only (str, int, float, bool, None, list, dict)."""

    id: str
    name: str
    arguments: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat-completions shape; arguments as a JSON string, as that API sends them."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)},
        }


@dataclass(frozen=True)
class ParsedMessage:
    """An assistant message split into content, tool calls and reasoning.

    content: the text outside the reasoning and the successfully parsed tool-call blocks, whitespace-stripped at
        both ends; a block that failed to parse stays in it verbatim.
    reasoning: the text of a leading ``<think>...</think>`` (stripped), or None when there is none.
    errors: one message per problem (malformed block, unclosed block, unclosed reasoning); empty when clean.
    """

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None
    errors: tuple[str, ...] = ()


def parse_assistant_output(text: str, limits: ParseLimits = DEFAULT_PARSE_LIMITS) -> ParsedMessage:
    """Split the model's raw output into content, tool calls and reasoning. Never raises on any text."""
    errors: list[str] = []
    reasoning, rest = split_reasoning(text)
    if reasoning is not None and rest is None:
        errors.append(f"reasoning not closed: {THINK_END} is missing")
    pieces: list[str] = []
    calls: list[tuple[str, dict[str, Any]]] = []
    position = block_number = 0
    body = rest or ""
    while True:
        start = body.find(TOOL_CALL_START, position)
        if start < 0:
            pieces.append(body[position:])
            break
        pieces.append(body[position:start])
        end = body.find(TOOL_CALL_END, start + len(TOOL_CALL_START))
        block_number += 1
        if end < 0:
            errors.append(f"tool-call block {block_number} not closed: {TOOL_CALL_END} is missing")
            pieces.append(body[start:])
            break
        try:
            calls.extend(parse_call_block(body[start + len(TOOL_CALL_START) : end], limits))
        except ParseError as error:
            errors.append(f"tool-call block {block_number} not parsed: {error}")
            pieces.append(body[start : end + len(TOOL_CALL_END)])
        position = end + len(TOOL_CALL_END)
    for message in errors:
        logger.debug("assistant output: %s", message)
    tool_calls = tuple(ToolCall(f"call_{index}", name, arguments) for index, (name, arguments) in enumerate(calls))
    return ParsedMessage("".join(pieces).strip(), tool_calls, reasoning, tuple(errors))


def split_reasoning(text: str) -> tuple[str | None, str | None]:
    """(reasoning, rest) for a text that starts (after whitespace) with ``<think>``; (None, text) otherwise.

    The rest is None when ``</think>`` never comes: everything after ``<think>`` is then reasoning. Only a leading
    ``<think>`` counts -- the template puts it first, and one later in the text is ordinary content.
    """
    stripped = text.lstrip()
    if not stripped.startswith(THINK_START):
        return None, text
    end = stripped.find(THINK_END, len(THINK_START))
    if end < 0:
        return stripped[len(THINK_START) :].strip(), None
    return stripped[len(THINK_START) : end].strip(), stripped[end + len(THINK_END) :]


def parse_call_block(block: str, limits: ParseLimits = DEFAULT_PARSE_LIMITS) -> list[tuple[str, dict[str, Any]]]:
    """The (name, arguments) calls of one block's text, either form; ParseError on anything else."""
    if len(block) > limits.max_block_chars:
        raise ParseError(f"tool-call text longer than {limits.max_block_chars} characters")
    block = _strip_code_fence(block)
    reader = LiteralReader(block, limits.literal)
    reader.skip_space()
    bracketed = reader.accept("[")
    reader.skip_space()
    if reader.peek() == "{":
        return _json_calls(parse_literal(block, limits.literal), limits)
    calls: list[tuple[str, dict[str, Any]]] = []
    while not (bracketed and reader.accept("]")):
        if len(calls) == limits.max_calls:
            reader.fail(f"more than {limits.max_calls} calls")
        calls.append(_read_pythonic_call(reader))
        reader.skip_space()
        if reader.accept(","):
            reader.skip_space()
        elif not bracketed:
            break
        elif reader.peek() != "]":
            reader.fail("expected ',' or ']' after a call")
    reader.skip_space()
    if not reader.at_end():
        reader.fail("unexpected text after the calls")
    return calls


def _strip_code_fence(block: str) -> str:
    """The inside of a Markdown code fence (```json ... ```) around the whole block; the block itself otherwise."""
    stripped = block.strip()
    if len(stripped) < 6 or not (stripped.startswith("```") and stripped.endswith("```")):
        return block
    inner = stripped[3:-3]
    first_line, newline, remainder = inner.partition("\n")
    if newline and (not first_line.strip() or first_line.strip().isalnum()):
        return remainder
    return inner


def _read_pythonic_call(reader: LiteralReader) -> tuple[str, dict[str, Any]]:
    name = reader.read_identifier(_FUNCTION_NAME, _MAX_NAME_CHARS)
    if name is None:
        reader.fail("expected a function name")
    reader.skip_space()
    reader.expect("(", f" after the function name {name!r}")
    reader.skip_space()
    arguments: dict[str, Any] = {}
    while not reader.accept(")"):
        key = reader.read_identifier()
        reader.skip_space()
        if key is None or not reader.accept("="):
            reader.fail("expected name=value (positional arguments are not accepted)")
        if key in arguments:
            reader.fail(f"argument {key!r} given twice")
        reader.skip_space()
        arguments[key] = _read_argument_value(reader)
        reader.skip_space()
        if reader.accept(","):
            reader.skip_space()
        elif reader.peek() != ")":
            reader.fail("expected ',' or ')' after an argument")
    return name, arguments


def _read_argument_value(reader: LiteralReader) -> Any:
    """A top-level argument value; strings fall back to the template's raw form (see the module docstring)."""
    if not (reader.peek() and reader.peek() in QUOTES):
        return reader.read_value()
    start = reader.pos
    try:
        value = reader.read_string()
        if _RAW_STRING_FOLLOWER.match(reader.text, reader.pos):
            return value
    except ParseError:
        pass
    quote = reader.text[start]
    candidate = reader.text.find(quote, start + 1)
    while candidate >= 0:
        if _RAW_STRING_FOLLOWER.match(reader.text, candidate + 1):
            reader.pos = candidate + 1
            return repair_surrogates(reader.text[start + 1 : candidate])
        candidate = reader.text.find(quote, candidate + 1)
    reader.pos = start
    return reader.read_string()  # the strict reading; the grammar then reports what follows it


def _json_calls(value: Any, limits: ParseLimits) -> list[tuple[str, dict[str, Any]]]:
    """Calls from the JSON form: a list of call objects, or one call object."""
    items = value if isinstance(value, list) else [value]
    if len(items) > limits.max_calls:
        raise ParseError(f"more than {limits.max_calls} calls")
    return [_json_call(item, index, limits) for index, item in enumerate(items)]


def _json_call(item: Any, index: int, limits: ParseLimits) -> tuple[str, dict[str, Any]]:
    if isinstance(item, dict) and isinstance(item.get("function"), dict):
        item = item["function"]  # OpenAI shape {"type": "function", "function": {...}}
    if not isinstance(item, dict):
        raise ParseError(f"JSON call {index} is not an object")
    name = item.get("name")
    if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name) or len(name) > _MAX_NAME_CHARS:
        raise ParseError(f'JSON call {index} has no valid "name"')
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):
        # OpenAI sends arguments as a JSON string; the same bounded reader parses it.
        arguments = parse_literal(arguments, limits.literal) if arguments.strip() else {}
    if not isinstance(arguments, dict):
        raise ParseError(f'JSON call {index} ({name}): "arguments" is not an object')
    return name, arguments
