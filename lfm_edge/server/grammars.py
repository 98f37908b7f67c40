"""Constrained output as llama.cpp grammars (GBNF): response_format and a forced tool_choice.

JSON schemas are turned into GBNF by llama-cpp-python's own converter (llama_cpp.llama_grammar, a port of
llama.cpp's json-schema-to-grammar). A forced tool call is the JSON call form the model also speaks
(`<|tool_call_start|>[{"name": ..., "arguments": {...}}]<|tool_call_end|>`, which the tool-call parser reads), with
each tool's `parameters` schema enforced on its arguments. The marker tokens are named by id (`<[id]>`), so the
grammar matches the special tokens and not their spelling in plain text.

Every grammar, the request's own and the converter's, is checked in Python against the server's budgets before
llama.cpp parses it (schema_budget for the schema, gbnf_check for the grammar): see those modules for why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from lfm_edge.errors import RequestError
from lfm_edge.server.gbnf_check import GrammarProblem, check_gbnf
from lfm_edge.server.options import Limits
from lfm_edge.server.schema import ResponseFormat, Tool
from lfm_edge.server.schema_budget import check_schema

_ROOT_RULE = re.compile(r"^root ::=", re.MULTILINE)
_CALLS_RULE = "lfm-edge-tool-calls"


def request_grammar(grammar: str, limits: Limits) -> str:
    """The request's own GBNF (`grammar`), checked: 400 invalid_grammar, naming the problem and any limit."""
    try:
        check_gbnf(grammar, limits.grammar_budget)
    except GrammarProblem as problem:
        limit = f" ({problem.limit}; see the server limits in the README)" if problem.limit else ""
        raise RequestError(f"grammar: {problem}{limit}", 400, "invalid_grammar", "grammar") from None
    return grammar


def schema_grammar(schema: Any, param: str, limits: Limits) -> str:
    check_schema(schema, param, limits.schema_budget)
    try:
        grammar = str(json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:  # the converter raises several kinds (KeyError, RecursionError...) for what it lacks
        detail = f"{type(exc).__name__}: {str(exc)[:200]}"
        raise RequestError(f"{param}: the JSON schema cannot be enforced ({detail})", 400, "unsupported_schema",
                           param) from None  # fmt: skip
    try:
        check_gbnf(grammar, limits.grammar_budget)
    except GrammarProblem as problem:
        raise RequestError(f"{param}: the grammar this schema makes is too big: {problem}", 400, "unsupported_schema",
                           param) from None  # fmt: skip
    return grammar


def response_format_grammar(response_format: ResponseFormat, limits: Limits) -> str | None:
    if response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return JSON_GBNF
    spec = response_format.json_schema
    if spec is None or spec.schema_ is None:
        raise RequestError(
            "response_format json_schema needs json_schema.schema", 400, "invalid_value", "response_format"
        )
    return schema_grammar(spec.schema_, "response_format.json_schema.schema", limits)


def tool_call_grammar(tools: Sequence[Tool], markers: tuple[int, int], single_call: bool, limits: Limits) -> str:
    """Exactly one tool-call block calling one of `tools` (several calls unless single_call)."""
    choices = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool.function.name},
                "arguments": tool.function.parameters or {"type": "object"},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    calls: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": choices}}
    if single_call:
        calls["maxItems"] = 1
    for index, tool in enumerate(tools):  # each tool's schema first, so a refusal names its own key
        check_schema(tool.function.parameters or {}, f"tools[{index}].function.parameters", limits.schema_budget)
    rules = _ROOT_RULE.sub(f"{_CALLS_RULE} ::=", schema_grammar(calls, "tools", limits))
    start, end = markers
    return f"root ::= <[{start}]> {_CALLS_RULE} <[{end}]>\n{rules}"
