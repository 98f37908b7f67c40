"""The server's pure parts, without a model: Host and key checks, image URLs, message translation, the plan
(sampling defaults, grammars, conflicts) and error shapes."""

from __future__ import annotations

import base64
import http.server
import math
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from lfm_edge.errors import ConfigError, ContextLengthError, ImageError, ModelError, RequestError
from lfm_edge.server import Limits, ServerOptions
from lfm_edge.server.guards import host_allowed, key_matches
from lfm_edge.server.images import ImageSources, image_bytes
from lfm_edge.server.messages import template_messages
from lfm_edge.server.plan import plan_chat
from lfm_edge.server.problems import as_request_error, error_payload
from lfm_edge.server.schema import ChatRequest, parse_body

IMAGES = Path(__file__).parent / "images"
PNG = (IMAGES / "photo_64x64.png").read_bytes()
PNG_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()
LIMITS = Limits()


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8080", True),
        ("localhost", True),
        ("LocalHost.:80", True),
        ("api.localhost", True),
        ("[::1]:8080", True),
        ("10.0.0.7", True),
        ("my-pi.lan", True),  # given as --allowed-host
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
        (None, False),
        ("[::1", False),
    ],
)
def test_host_allowed(host: str | None, allowed: bool) -> None:
    assert host_allowed(host, frozenset({"my-pi.lan"})) is allowed


@pytest.mark.parametrize(
    ("header", "ok"),
    [("Bearer secret-key-1", True), ("bearer secret-key-1", True), ("Bearer secret-key-2", False),
     ("secret-key-1", False), ("Basic secret-key-1", False), (None, False), ("Bearer ", False)],
)  # fmt: skip
def test_key_matches(header: str | None, ok: bool) -> None:
    assert key_matches(header, "secret-key-1") is ok


def test_options_refuse_short_keys_and_bad_ports() -> None:
    with pytest.raises(ConfigError, match="at least 8"):
        ServerOptions(model_ids=("m",), api_key="short")
    with pytest.raises(ConfigError, match="port"):
        ServerOptions(model_ids=("m",), port=70000)
    with pytest.raises(ConfigError, match="model id"):
        ServerOptions(model_ids=())


def test_a_data_uri_decodes_to_the_image_bytes() -> None:
    assert image_bytes(PNG_URI, ImageSources(LIMITS), "p").data == PNG
    spaced = PNG_URI[:40] + "\n" + PNG_URI[40:]
    assert image_bytes(spaced, ImageSources(LIMITS), "p").data == PNG


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("/etc/passwd", "invalid_image_url"),
        ("file:///etc/passwd", "invalid_image_url"),
        ("C:\\\\Windows\\\\win.ini", "invalid_image_url"),
        (str(IMAGES / "photo_64x64.png"), "invalid_image_url"),
        ("ftp://example.com/a.png", "invalid_image_url"),
        ("data:image/png,rawbytes", "invalid_image_url"),
        ("data:image/png;base64,@@@@", "invalid_image_url"),
        ("data:image/png;base64," + base64.b64encode(b"not an image").decode(), "unsupported_image_format"),
        ("https://example.com/cat.png", "remote_images_disabled"),
    ],
)
def test_image_urls_that_are_refused(url: str, code: str) -> None:
    with pytest.raises(RequestError) as raised:
        image_bytes(url, ImageSources(LIMITS), "messages[0].content[0]")
    assert raised.value.code == code and raised.value.status == 400
    assert raised.value.param == "messages[0].content[0]"


def test_an_image_over_the_byte_limit_is_413_before_decoding() -> None:
    with pytest.raises(RequestError) as raised:
        image_bytes(PNG_URI, ImageSources(Limits(max_image_bytes=100)), "p")
    assert raised.value.status == 413


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture(scope="module")
def image_site() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(IMAGES)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_remote_images_are_fetched_only_when_allowed(image_site: str) -> None:
    lan = ImageSources(LIMITS, allow_remote=True, allow_private=True)  # the test's site is on loopback
    assert image_bytes(f"{image_site}/photo_64x64.png", lan, "p").data == PNG
    for url, status in [(f"{image_site}/missing.png", 400), (f"{image_site}/to-file", 400)]:
        with pytest.raises(RequestError) as raised:
            image_bytes(url, lan, "p")
        assert raised.value.status == status and raised.value.code == "invalid_image_url"
    with pytest.raises(RequestError, match="over the limit"):
        image_bytes(f"{image_site}/photo_64x64.png", ImageSources(Limits(max_image_bytes=10), True, True), "p")


def _request(**fields: object) -> ChatRequest:
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": "Hi"}], **fields})


def test_messages_become_template_messages() -> None:
    request = _request(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_URI}},
                                         {"type": "text", "text": "What?"}]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ]
    )  # fmt: skip
    system, user, assistant, tool = template_messages(list(request.messages), ImageSources(LIMITS))
    assert system == {"role": "system", "content": "Be brief."}
    image, text = user["content"]
    assert image["type"] == "image" and image["image"].data == PNG and text == {"type": "text", "text": "What?"}
    assert "content" not in assistant  # dropped, as apply_chat_template drops None values
    assert assistant["tool_calls"][0]["function"] == {"name": "f", "arguments": {"a": 1}}
    assert tool == {"role": "tool", "content": "42", "tool_call_id": "c1"}


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": PNG_URI}}]},
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]},
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{nope"}}]},
        {"role": "user", "content": "x", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
    ],
)
def test_messages_that_are_refused(message: dict[str, object]) -> None:
    request = _request(messages=[message])
    with pytest.raises(RequestError) as raised:
        template_messages(list(request.messages), ImageSources(LIMITS))
    assert raised.value.status == 400 and raised.value.param is not None


def test_the_plan_keeps_model_card_defaults_for_fields_left_out() -> None:
    plan = plan_chat(_request(temperature=0.5, stop="END"), n_ctx=4096, limits=LIMITS, markers=(10, 11))
    sampling = plan.options.sampling
    assert (sampling.temperature, sampling.min_p, sampling.repetition_penalty) == (0.5, 0.15, 1.05)
    assert plan.options.stop == ("END",) and plan.options.max_tokens == 4096
    assert plan_chat(_request(max_tokens=10**6), 4096, LIMITS, (10, 11)).options.max_tokens == 4096


def test_tool_choice_none_keeps_the_tools_but_bans_the_call_marker_and_required_forces_a_call() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    silenced = plan_chat(_request(tools=tools, tool_choice="none", logit_bias={"7": -5}), 4096, LIMITS, (10, 11))
    assert silenced.render.tools == tools
    assert silenced.options.sampling.logit_bias == ((7, -5.0), (10, -math.inf))
    assert plan_chat(_request(tools=tools, tool_choice="none"), 4096, LIMITS, None).render.tools is None
    auto = plan_chat(_request(tools=tools), 4096, LIMITS, (10, 11))
    assert auto.render.tools == tools and auto.options.sampling.grammar is None
    forced = plan_chat(_request(tools=tools, tool_choice="required"), 4096, LIMITS, (10, 11))
    grammar = forced.options.sampling.grammar or ""
    assert grammar.startswith("root ::= <[10]> lfm-edge-tool-calls <[11]>") and '"\\"f\\""' in grammar


@pytest.mark.parametrize(
    "fields",
    [
        {"tools": [{"type": "function", "function": {"name": "f"}}],
         "tool_choice": {"type": "function", "function": {"name": "g"}}},
        {"tool_choice": "auto"},
        {"grammar": 'root ::= "a"', "response_format": {"type": "json_object"}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}},
        {"n": 3},
        {"logit_bias": {"hello": 1}},
        {"logprobs": True},
    ],
)  # fmt: skip
def test_plans_that_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(RequestError) as raised:
        plan_chat(_request(**fields), 4096, LIMITS, (10, 11))
    assert raised.value.status == 400


def test_parse_body_names_the_bad_field_openai_style() -> None:
    with pytest.raises(RequestError) as raised:
        parse_body(ChatRequest, b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 3}]}]}')
    assert raised.value.param == "messages[0].content[0].image_url"
    with pytest.raises(RequestError) as raised:
        parse_body(ChatRequest, b'{"messages": ')
    assert raised.value.code == "invalid_json"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ContextLengthError("too long"), 400, "context_length_exceeded"),
        (ImageError("bad"), 400, "invalid_image"),
        (ConfigError("bad"), 400, "invalid_value"),
        (ModelError("llama_decode failed"), 500, "internal_error"),
        (RuntimeError("secret path /home/x"), 500, "internal_error"),
    ],
)
def test_errors_map_to_openai_shape_without_leaking_internals(error: Exception, status: int, code: str) -> None:
    mapped = as_request_error(error)
    assert (mapped.status, mapped.code) == (status, code)
    payload = error_payload(mapped)["error"]
    assert set(payload) == {"message", "type", "param", "code"}
    assert "/home/x" not in payload["message"]


def test_an_error_after_the_first_token_travels_as_an_sse_error_event() -> None:
    import asyncio
    import json
    import threading
    from collections.abc import AsyncGenerator
    from typing import Any

    from lfm_edge.server.chat_route import _sse
    from lfm_edge.server.responses import Reply

    class _QuietClient:  # a client that never disconnects
        async def receive(self) -> dict[str, Any]:
            await asyncio.Event().wait()
            return {}

    async def events() -> AsyncGenerator[Any, None]:
        yield "more"
        raise ModelError("llama_decode failed with status 1")

    async def collect() -> list[bytes]:
        cancelled = threading.Event()
        stream = _sse(_QuietClient(), Reply("m"), ("Hello", events(), cancelled), False)  # type: ignore[arg-type]
        out = [data async for data in stream]
        assert cancelled.is_set()
        return out

    sent = [json.loads(data.decode().removeprefix("data: ")) for data in asyncio.run(collect())]
    assert [s["choices"][0]["delta"] for s in sent[:-1]] == [{"role": "assistant", "content": ""}, {"content": "Hello"},
                                                           {"content": "more"}]  # fmt: skip
    assert sent[-1]["error"]["code"] == "internal_error" and "llama_decode" not in sent[-1]["error"]["message"]
