"""Chat with tools: parsed tool calls, markup withheld from the stream, the run_tools loop, and the history it
renders through the official template (a scripted model stands in: a random tiny model never calls tools)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lfm_edge.chat import Chat
from lfm_edge.generation import Completion, GenerationOptions, TextStream, Timings
from lfm_edge.parse import parse_assistant_output
from lfm_edge.prompt import ChatTemplate, RenderOptions

TEMPLATE = ChatTemplate(
    (Path(__file__).parents[1] / "convert/synthetic/official/lfm2.5-vl-450m/chat_template.jinja").read_text()
)
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [{"name": "get_weather", "description": "Weather of a city.", "parameters": CITY}]


class ScriptedModel:
    """Replies with the next scripted text, in pieces, and records the prompts it was asked to answer."""

    def __init__(self, replies: Sequence[str]) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []

    def stream_messages(self, messages: Any, options: Any, render: RenderOptions, settings: Any) -> TextStream:
        self.prompts.append(TEMPLATE.render(messages, render))
        text = self.replies.pop(0)
        stream = TextStream(iter(()))
        stream._pieces = self._pieces(text, stream)
        return stream

    @staticmethod
    def _pieces(text: str, stream: TextStream) -> Iterator[str]:
        for start in range(0, len(text), 3):
            yield text[start : start + 3]
        timings = Timings(0.0, 0, 0, 0.0, 0, 0.0, 0.0)
        stream.completion = Completion(text, "stop", 0, 0, (), timings, parse_assistant_output(text))


CALL = '<|tool_call_start|>[get_weather(city="Paris")]<|tool_call_end|>'


def test_tool_call_is_parsed_and_withheld_from_the_stream() -> None:
    chat = Chat(ScriptedModel([f"Let me check.{CALL}"]), tools=TOOLS)  # type: ignore[arg-type]
    stream = chat.stream("Weather in Paris?")
    shown = "".join(stream)
    assert shown == "Let me check." and "tool_call" not in shown
    assert stream.completion is not None
    call = stream.completion.message.tool_calls[0]
    assert (call.name, call.arguments) == ("get_weather", {"city": "Paris"})
    assert call.to_openai()["function"]["arguments"] == '{"city": "Paris"}'


def test_run_tools_executes_and_feeds_results_back() -> None:
    model = ScriptedModel([CALL, "It is 21 C in Paris."])
    chat = Chat(model, system="You are helpful.", tools=TOOLS)  # type: ignore[arg-type]
    seen: list[str] = []

    def get_weather(city: str) -> dict[str, Any]:
        seen.append(city)
        return {"temp": 21}

    reply = chat.run_tools("Weather in Paris?", {"get_weather": get_weather})
    assert reply.message.content == "It is 21 C in Paris." and seen == ["Paris"]
    assert [m["role"] for m in chat.history] == ["system", "user", "assistant", "tool", "assistant"]
    second_prompt = model.prompts[1]
    assert "List of tools: [" in second_prompt
    # the call turn ends with <|im_end|>, as the model ended it (content "" renders it; no content key would not)
    expected_tail = f'{CALL}<|im_end|>\n<|im_start|>tool\n{{"temp": 21}}<|im_end|>\n<|im_start|>assistant\n'
    assert second_prompt.endswith(expected_tail)


def test_unknown_tools_and_failing_tools_are_reported_to_the_model() -> None:
    model = ScriptedModel(["<|tool_call_start|>[nope(x=1), boom()]<|tool_call_end|>", "Sorry."])
    chat = Chat(model, tools=TOOLS)  # type: ignore[arg-type]

    def boom() -> None:
        raise RuntimeError("kaput")

    reply = chat.run_tools("Go", {"boom": boom})
    assert reply.message.content == "Sorry."
    tool_messages = [m["content"] for m in chat.history if m["role"] == "tool"]
    assert "unknown tool 'nope'" in tool_messages[0] and "RuntimeError: kaput" in tool_messages[1]


def test_run_tools_stops_after_max_rounds() -> None:
    chat = Chat(ScriptedModel([CALL] * 3), tools=TOOLS)  # type: ignore[arg-type]
    reply = chat.run_tools("Loop", {"get_weather": lambda city: {"temp": 1}}, max_rounds=2)
    assert reply.message.tool_calls and len([m for m in chat.history if m["role"] == "tool"]) == 2


def test_malformed_tool_call_stays_text_with_an_error() -> None:
    chat = Chat(ScriptedModel(["<|tool_call_start|>[get_weather(city=__import__('os'))]<|tool_call_end|>"]),
                options=GenerationOptions())  # type: ignore[arg-type]  # fmt: skip
    reply = chat.send("Hi")
    assert not reply.message.tool_calls and reply.message.errors
