"""Constrained output as llama.cpp grammars (GBNF): response_format and a forced tool_choice.

JSON schemas are turned into GBNF by llama-cpp-python's own converter (llama_cpp.llama_grammar, a port of
llama.cpp's json-schema-to-grammar). A forced tool call is the JSON call form the model also speaks
(`<|tool_call_start|>[{"name": ..., "arguments": {...}}]<|tool_call_end|>`, which the tool-call parser reads), with
each tool's `parameters` schema enforced on its arguments. The marker tokens are named by id (`<[id]>`), so the
grammar matches the special tokens and not their spelling in plain text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from lfm_edge.errors import RequestError
from lfm_edge.server.schema import ResponseFormat, Tool

_ROOT_RULE = re.compile(r"^root ::=", re.MULTILINE)
_CALLS_RULE = "lfm-edge-tool-calls"


def schema_grammar(schema: Any, param: str) -> str:
    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:  # the converter raises several kinds for schemas it does not support
        raise RequestError(f"the JSON schema cannot be enforced: {exc}", 400, "unsupported_schema", param) from None


def response_format_grammar(response_format: ResponseFormat) -> str | None:
    if response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return JSON_GBNF
    spec = response_format.json_schema
    if spec is None or spec.schema_ is None:
        raise RequestError(
            "response_format json_schema needs json_schema.schema", 400, "invalid_value", "response_format"
        )
    return schema_grammar(spec.schema_, "response_format.json_schema.schema")


def tool_call_grammar(tools: Sequence[Tool], markers: tuple[int, int], single_call: bool) -> str:
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
    rules = _ROOT_RULE.sub(f"{_CALLS_RULE} ::=", schema_grammar(calls, "tools"))
    start, end = markers
    return f"root ::= <[{start}]> {_CALLS_RULE} <[{end}]>\n{rules}"
