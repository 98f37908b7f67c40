"""Message sets for the chat-template goldens: tools, tool calls, tool results, inputs that raise (data only).

Rendered by `tests.reference.chat_goldens` through transformers' `PreTrainedTokenizerBase.apply_chat_template`
(transformers 5.23); callables in `tools` are turned into JSON schemas by `transformers.utils.get_json_schema`
inside `render_jinja_template`. Sets whose id starts with `error_` make transformers raise.
"""

from __future__ import annotations

from typing import Any

from tests.reference.chat_sets_core import GEN, NO_GEN, MessageSet

# The tool definition of the LFM2.5 model card / docs.liquid.ai "Tool Use": a bare JSON-schema function dict.
CANDIDATE_TOOL = {
    "name": "get_candidate_status",
    "description": "Retrieves the current status of a candidate in the recruitment process",
    "parameters": {
        "type": "object",
        "properties": {"candidate_id": {"type": "string", "description": "Unique identifier for the candidate"}},
        "required": ["candidate_id"],
    },
}

# OpenAI shape: {"type": "function", "function": {...}}.
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": 'City name, e.g. "Paris"'},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "opts": {"type": "object"},
            },
            "required": ["city"],
        },
    },
}

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web. Résumé: «ok» — 検索",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}


def get_current_temperature(location: str, unit: str):  # no return annotation, as in the docs
    """
    Get the current temperature at a location.

    Args:
        location: The location to get the temperature for, in the format "City, Country"
        unit: The unit to return the temperature in. (choices: ["celsius", "fahrenheit"])
    """
    return 22.0


def _call(name: str, arguments: Any, call_id: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    return {"id": call_id, **call} if call_id else call


def _user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def _tool(content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": "tool", "content": content, **extra}


_WEATHER_CALL = _call("get_weather", {"city": "Paris", "days": 3, "metric": True, "opts": {"a": 1}}, "call_1")

# Every argument type the template's format_arg_value distinguishes: string, mapping, anything else (str()).
_ARG_TYPES = {
    "text": 'say "hi"\nnew line \\ back',
    "unicode": "東京 🌸 مرحبا",
    "empty": "",
    "int": 42,
    "negative": -7,
    "big": 12345678901234567890,
    "float": 0.1,
    "small_float": 1e-07,
    "whole_float": 2.0,
    "yes": True,
    "no": False,
    "nothing": None,
    "mapping": {"k": "v", "n": [1, 2.5, None, True], "deep": {"ü": "é"}},
    "empty_mapping": {},
    "list": ["a", 1, True, None],
    "list_of_dicts": [{"k": "v"}, {"t": False}],
    "empty_list": [],
}

_TOOL_DEFINITIONS = [
    MessageSet(
        "tools_model_card",
        "Model-card tools (list of bare JSON-schema function dicts), no system message.",
        [_user("What is the current status of candidate ID 12345?")],
        tools=[CANDIDATE_TOOL],
        kwargs=GEN,
    ),
    MessageSet(
        "tools_model_card_conversation",
        "The docs.liquid.ai tool-use conversation: call with content, tool result, final answer.",
        [
            _user("What is the current status of candidate ID 12345?"),
            {
                "role": "assistant",
                "content": "Checking the current status of candidate ID 12345.",
                "tool_calls": [_call("get_candidate_status", {"candidate_id": "12345"})],
            },
            _tool(
                '[{"candidate_id": "12345", "status": "Interview Scheduled", "position": "Clinical Research '
                'Associate", "date": "2023-11-20"}]'
            ),
            {
                "role": "assistant",
                "content": 'The candidate with ID 12345 is currently in the "Interview Scheduled" stage '
                "for the position of Clinical Research Associate, with an interview date set for 2023-11-20.",
            },
        ],
        tools=[CANDIDATE_TOOL],
        kwargs=NO_GEN,
    ),
    MessageSet(
        "tools_in_system_text",
        "Docs option 1: tools as JSON text in the system prompt, no tools argument (so no date line).",
        [
            {
                "role": "system",
                "content": 'List of tools: [{"name": "get_candidate_status", "parameters": {}}]',
            },
            _user("Status of 12345?"),
        ],
        kwargs=GEN,
    ),
    MessageSet(
        "tools_openai_with_system",
        "SPEC 6.1 example: system prompt + OpenAI-shape tools, tool call, tool result, answer.",
        [
            {"role": "system", "content": "You are helpful."},
            _user("Weather in Paris?"),
            {"role": "assistant", "tool_calls": [_WEATHER_CALL]},
            _tool('{"temp": 21}', tool_call_id="call_1", name="get_weather"),
            {"role": "assistant", "content": "It is 21 C."},
        ],
        tools=[WEATHER_TOOL],
        kwargs=NO_GEN,
    ),
    MessageSet(
        "tools_empty_system",
        "Empty system prompt with tools: the system block starts directly with the date line.",
        [{"role": "system", "content": ""}, _user("Search for cats.")],
        tools=[WEATHER_TOOL, SEARCH_TOOL],
        kwargs=GEN,
    ),
    MessageSet(
        "tools_system_content_list",
        "System prompt given as a content list, plus tools.",
        [
            {"role": "system", "content": [{"type": "text", "text": "Use tools when needed."}]},
            _user("Weather?"),
        ],
        tools=[WEATHER_TOOL],
        kwargs=GEN,
    ),
    MessageSet(
        "tools_empty_list",
        "tools=[] is falsy: no date line, no tool list.",
        [{"role": "system", "content": "Sys."}, _user("Hi")],
        tools=[],
        kwargs=GEN,
    ),
    MessageSet(
        "tools_python_function",
        "Docs option 2: a Python function as tool; transformers' get_json_schema turns it into "
        "the OpenAI shape (tools_json holds that schema).",
        [_user("What's the weather in San Francisco?")],
        tools=[get_current_temperature],
        kwargs=GEN,
    ),
    MessageSet(
        "tools_mixed_shapes",
        "Bare and OpenAI-shape tool dicts in one list, written in order.",
        [_user("Help me.")],
        tools=[CANDIDATE_TOOL, SEARCH_TOOL],
        kwargs=GEN,
    ),
]

_TOOL_CALLS = [
    MessageSet(
        "tool_call_argument_types",
        "One call with every argument type: strings are quoted unescaped, dicts tojson, "
        "the rest Python str() (True, None, 1e-07, ['a', 1, True, None]); content is an empty string.",
        [_user("Run it."), {"role": "assistant", "content": "", "tool_calls": [_call("do_it", _ARG_TYPES)]}],
        kwargs=NO_GEN,
    ),
    MessageSet(
        "tool_calls_parallel_no_content",
        "Three calls in one turn without a content key (no <|im_end|> after the call), then three tool results.",
        [
            _user("Weather in Paris and Tokyo, and search news."),
            {
                "role": "assistant",
                "tool_calls": [
                    _call("get_weather", {"city": "Paris"}, "c1"),
                    _call("get_weather", {"city": "東京", "days": 1}, "c2"),
                    _call("search", {"query": 'news "today"'}, "c3"),
                ],
            },
            _tool("Paris: 21 C", tool_call_id="c1"),
            _tool("東京: 18 C", tool_call_id="c2"),
            _tool("no results", tool_call_id="c3"),
        ],
        tools=[WEATHER_TOOL, SEARCH_TOOL],
        kwargs=GEN,
    ),
    MessageSet(
        "tool_call_content_none",
        "content=None next to tool_calls: apply_chat_template drops None-valued keys first, "
        "so it renders like a missing content key (no error, no <|im_end|>).",
        [_user("Weather?"), {"role": "assistant", "content": None, "tool_calls": [_WEATHER_CALL]}],
        kwargs=NO_GEN,
    ),
    MessageSet(
        "tool_call_empty_arguments",
        "A call with an empty arguments dict, then content.",
        [
            _user("Time?"),
            {"role": "assistant", "content": "Checking.", "tool_calls": [_call("get_time", {})]},
        ],
        kwargs=NO_GEN,
    ),
    MessageSet(
        "tool_call_with_thinking",
        "Last assistant turn with thinking, a tool call and content: <think> first, then the call, then the content.",
        [
            _user("Weather in Paris?"),
            {
                "role": "assistant",
                "thinking": "I should call get_weather.",
                "content": "Let me check.",
                "tool_calls": [_WEATHER_CALL],
            },
        ],
        tools=[WEATHER_TOOL],
        kwargs=NO_GEN,
    ),
    MessageSet(
        "tool_results_shapes",
        "Tool results as a string, a content list, and a dict (a dict is iterated over its "
        "keys, each written with tojson).",
        [
            _user("Go."),
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [_call("a", {"x": 1}), _call("b", {"y": "z"})],
            },
            _tool("plain ✓ result\nline 2"),
            _tool([{"type": "text", "text": "listed result"}, {"type": "json", "data": {"ok": True}}]),
            _tool({"temp": 21, "unit": "C"}),
        ],
        kwargs=GEN,
    ),
]

_ERRORS = [
    MessageSet(
        "error_arguments_json_string",
        "OpenAI wire format: arguments as a JSON string; the template calls .items() on it.",
        [
            _user("Weather?"),
            {"role": "assistant", "content": "", "tool_calls": [_call("get_weather", '{"city": "Paris"}')]},
        ],
        kwargs=NO_GEN,
    ),
    MessageSet(
        "error_tool_call_without_function_key",
        "A flat tool call {name, arguments} without the function wrapper.",
        [
            _user("Weather?"),
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {}}]},
        ],
        kwargs=NO_GEN,
    ),
    MessageSet(
        "error_text_item_without_text",
        "A content item of type text without a text key.",
        [_user([{"type": "text"}])],
        kwargs=GEN,
    ),
    MessageSet(
        "error_integer_content",
        "Content that is neither a string nor a list.",
        [_user(42)],
        kwargs=GEN,
    ),
    MessageSet("error_empty_conversation", "No messages at all.", [], kwargs=GEN),
    MessageSet(
        "error_continue_with_generation_prompt",
        "continue_final_message and add_generation_prompt together.",
        [_user("Hi"), {"role": "assistant", "content": "Hel"}],
        kwargs={"add_generation_prompt": True, "continue_final_message": True},
    ),
    MessageSet(
        "error_raw_renderer_content_none",
        "content=None next to tool_calls given straight to render_jinja_template (which does "
        "not drop None keys): the template iterates None.",
        [_user("Weather?"), {"role": "assistant", "content": None, "tool_calls": [_WEATHER_CALL]}],
        kwargs=NO_GEN,
        api="render_jinja_template",
    ),
]

TOOL_SETS: list[MessageSet] = [*_TOOL_DEFINITIONS, *_TOOL_CALLS, *_ERRORS]
