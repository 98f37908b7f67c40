"""The server through the official `openai` client, on a real loopback port: text, images, streaming, tools,
structured output, errors, and the prompt cache across requests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

import lfm_edge.model as api
from lfm_edge.server.run import RunningServer
from tests.server_support import API_KEY, MODEL_ID, data_uri, running_server

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"enum": ["Paris", "Oslo"]}, "unit": {"enum": ["C", "F"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
YES_NO = {
    "type": "object",
    "properties": {"answer": {"enum": ["yes", "no"]}, "sure": {"type": "boolean"}},
    "required": ["answer", "sure"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def served(converted: Callable[..., tuple[Path, Path]]) -> Iterator[tuple[RunningServer, api.Model]]:
    with running_server(converted, api_key=API_KEY) as served:
        yield served


@pytest.fixture
def client(served: tuple[RunningServer, api.Model]) -> openai.OpenAI:
    return openai.OpenAI(base_url=served[0].url + "/v1", api_key=API_KEY, max_retries=0, timeout=60)


def _user(text: str, *images: str) -> list[dict[str, object]]:
    parts: list[dict[str, object]] = [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


def test_models_lists_the_served_id(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == [MODEL_ID]


def test_text_completion_has_openai_shape_and_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "Hello"}], max_tokens=6, temperature=0, seed=1
    )
    assert reply.object == "chat.completion" and reply.model == MODEL_ID
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.completion_tokens <= 6
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_greedy_text_equals_the_library_answer(client: openai.OpenAI, served: tuple[RunningServer, api.Model]) -> None:
    reply = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=12, temperature=0
    )
    from lfm_edge.generation import GenerationOptions
    from lfm_edge.native.sampling import SamplingParams

    options = GenerationOptions(max_tokens=12, sampling=SamplingParams(temperature=0))
    expected = served[1].generate("Name a colour.", options=options)
    assert reply.choices[0].message.content == expected.message.content


def test_streaming_pieces_add_up_to_the_whole_answer_and_end_with_usage(client: openai.OpenAI) -> None:
    request = {"model": MODEL_ID, "messages": _user("Describe it.", data_uri("photo_512x512.png")), "max_tokens": 16,
               "temperature": 0}  # fmt: skip
    whole = client.chat.completions.create(**request)  # type: ignore[call-overload]
    chunks = list(client.chat.completions.create(**request, stream=True))  # type: ignore[call-overload]
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_options_include_usage_sends_openai_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL_ID, messages=_user("Hi"), max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason is not None


def test_image_follow_up_reuses_the_prompt_state_and_is_faster(client: openai.OpenAI) -> None:
    history = _user("What is in the picture?", data_uri("photo_1024x768.jpg"))
    first = client.chat.completions.create(model=MODEL_ID, messages=history, max_tokens=8, temperature=0)
    answer = first.choices[0].message.content or ""
    history += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And the colours?"}]
    follow = client.chat.completions.create(model=MODEL_ID, messages=history, max_tokens=8, temperature=0)
    assert first.usage is not None and follow.usage is not None
    cached = follow.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
    assert cached >= first.usage.prompt_tokens - 2, "the image and the first turn come from the cache"
    first_t, follow_t = first.model_extra["timings"], follow.model_extra["timings"]  # type: ignore[index]
    assert follow_t["prompt_n"] < first_t["prompt_n"] / 10
    assert follow_t["ttft_ms"] < first_t["ttft_ms"]


def test_grammar_forced_pythonic_tool_call_comes_back_openai_shaped(client: openai.OpenAI) -> None:
    grammar = 'root ::= <[10]> "[get_weather(city=\\"Paris\\", unit=\\"C\\")]" <[11]>'
    reply = client.chat.completions.create(
        model=MODEL_ID, messages=_user("Weather in Paris?"), tools=[WEATHER_TOOL], max_tokens=48,  # type: ignore[list-item]
        extra_body={"grammar": grammar},
    )  # fmt: skip
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris", "unit": "C"})


@pytest.mark.parametrize("stream", [False, True])
def test_named_tool_choice_enforces_the_parameter_schema(client: openai.OpenAI, stream: bool) -> None:
    request = {"model": MODEL_ID, "messages": _user("Weather?"), "tools": [WEATHER_TOOL], "max_tokens": 64,
               "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "seed": 7}  # fmt: skip
    if stream:
        chunks = list(client.chat.completions.create(**request, stream=True))  # type: ignore[call-overload]
        deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
        names = [d.function.name for d in deltas if d.function]
        arguments = [json.loads(d.function.arguments or "{}") for d in deltas if d.function]
        assert [d.index for d in deltas] == list(range(len(deltas)))
    else:
        message = client.chat.completions.create(**request).choices[0].message  # type: ignore[call-overload]
        names = [call.function.name for call in message.tool_calls or []]
        arguments = [json.loads(call.function.arguments) for call in message.tool_calls or []]
    assert names and set(names) == {"get_weather"}
    assert all(args["city"] in ("Paris", "Oslo") and args["unit"] in ("C", "F") for args in arguments)


def test_json_schema_response_format_is_enforced(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL_ID, messages=_user("Is the sky blue?"), max_tokens=64, seed=3,
        response_format={"type": "json_schema", "json_schema": {"name": "yes_no", "schema": YES_NO}},
    )  # fmt: skip
    value = json.loads(reply.choices[0].message.content or "")
    assert value["answer"] in ("yes", "no") and isinstance(value["sure"], bool)


@pytest.mark.parametrize(
    ("kwargs", "error", "status", "code"),
    [
        ({"messages": _user("Hi", "data:image/png;base64,bm90IGFuIGltYWdl")}, openai.BadRequestError, 400,
         "unsupported_image_format"),
        ({"messages": _user("Hi", "/etc/passwd")}, openai.BadRequestError, 400, "invalid_image_url"),
        ({"messages": _user("Hi", "http://127.0.0.1:1/x.png")}, openai.BadRequestError, 400, "remote_images_disabled"),
        ({"messages": [{"role": "user", "content": "word " * 5000}]}, openai.BadRequestError, 400,
         "context_length_exceeded"),
        ({"messages": _user("Hi"), "model": "gpt-4o"}, openai.NotFoundError, 404, "model_not_found"),
        ({"messages": _user("Hi"), "n": 2}, openai.BadRequestError, 400, None),
        ({"messages": _user("Hi"), "temperature": 7}, openai.BadRequestError, 400, "invalid_value"),
        ({"messages": _user("Hi"), "extra_body": {"grammar": "root ::= nope"}}, openai.BadRequestError, 400,
         "invalid_grammar"),
    ],
)  # fmt: skip
def test_errors_have_openai_status_and_code(
    client: openai.OpenAI, kwargs: dict[str, object], error: type[openai.APIStatusError], status: int, code: str | None
) -> None:
    with pytest.raises(error) as raised:
        client.chat.completions.create(**{"model": MODEL_ID, "max_tokens": 4, **kwargs})  # type: ignore[call-overload]
    assert raised.value.status_code == status
    assert raised.value.code == code
    assert client.chat.completions.create(model=MODEL_ID, messages=_user("Hi"), max_tokens=2).choices


def test_a_wrong_api_key_is_401(served: tuple[RunningServer, api.Model]) -> None:
    bad = openai.OpenAI(base_url=served[0].url + "/v1", api_key="wrong-key-000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        bad.models.list()
    assert raised.value.code == "invalid_api_key"


def test_detect_returns_pixel_boxes(client: openai.OpenAI) -> None:
    grammar = 'root ::= "[{\\"label\\": \\"cat\\", \\"bbox\\": [0.25, 0.5, 0.75, 1.0]}]"'
    body = {"image": data_uri("photo_640x480.jpg"), "query": "cat", "temperature": 0, "grammar": grammar}
    found = client.post("/detect", body=body, cast_to=object)  # the client's raw POST, for our extension
    assert isinstance(found, dict) and found["object"] == "detection" and not found["errors"]
    assert (found["width"], found["height"]) == (640, 480)
    assert found["boxes"][0]["label"] == "cat" and found["boxes"][0]["bbox"] == [160.0, 240.0, 480.0, 480.0]


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_comes_back_as_reasoning_content(client: openai.OpenAI, stream: bool) -> None:
    grammar = 'root ::= "<think>Let me see.</think>" "Blue."'
    request = {"model": MODEL_ID, "messages": _user("Colour?"), "max_tokens": 32, "extra_body": {"grammar": grammar}}
    if stream:
        chunks = [c for c in client.chat.completions.create(**request, stream=True) if c.choices]  # type: ignore[call-overload]
        reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks)
        content = "".join(c.choices[0].delta.content or "" for c in chunks)
    else:
        message = client.chat.completions.create(**request).choices[0].message  # type: ignore[call-overload]
        reasoning, content = (message.model_extra or {}).get("reasoning_content"), message.content
    assert (reasoning, content) == ("Let me see.", "Blue.")


def test_logit_bias_bans_the_greedy_token(client: openai.OpenAI) -> None:
    request = {"model": MODEL_ID, "messages": _user("Hi"), "max_tokens": 1, "temperature": 0}
    first = client.chat.completions.create(**request, extra_body={"return_tokens": True})  # type: ignore[call-overload]
    greedy = (first.model_extra or {}).get("tokens")
    assert greedy, "the extension field tokens lists the generated ids"
    banned = client.chat.completions.create(**request, logit_bias={str(greedy[0]): -100})  # type: ignore[call-overload]
    assert banned.choices[0].message.content != first.choices[0].message.content
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**request, logit_bias={"99999999": -100})  # type: ignore[call-overload]
