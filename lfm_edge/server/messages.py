"""OpenAI chat messages -> the messages the chat template renders, with every image as its encoded bytes.

What changes: role "developer" is "system" (the model knows no developer role); an `image_url` part becomes
{"type": "image", "image": bytes}; an assistant's tool-call `arguments` (a JSON string on the wire) become the
mapping the template formats; `content: null` is dropped, as transformers' apply_chat_template drops it. Images are
accepted in user messages only, as in OpenAI's API, and counted before any is decoded.
"""

from __future__ import annotations

import json
from typing import Any

from lfm_edge.errors import RequestError
from lfm_edge.server.images import ImageSources, image_bytes
from lfm_edge.server.options import Limits
from lfm_edge.server.schema import ChatMessage, ImagePart, TextPart, ToolCallIn


def count_images(messages: list[ChatMessage]) -> int:
    return sum(isinstance(part, ImagePart) for m in messages if isinstance(m.content, list) for part in m.content)


def check_counts(messages: list[ChatMessage], limits: Limits) -> None:
    if len(messages) > limits.max_messages:
        raise RequestError(
            f"{len(messages)} messages is over the limit of {limits.max_messages}", 400, "too_many_messages", "messages"
        )
    images = count_images(messages)
    if images > limits.max_images:
        raise RequestError(
            f"{images} images is over the limit of {limits.max_images} per request", 400, "too_many_images", "messages"
        )


def template_messages(messages: list[ChatMessage], sources: ImageSources) -> list[dict[str, Any]]:
    """Blocking (checks image headers, may fetch URLs): call it off the event loop. Images are CheckedImage
    objects here, decoded later (decode.py)."""
    check_counts(messages, sources.limits)
    return [_message(message, index, sources) for index, message in enumerate(messages)]


def _message(message: ChatMessage, index: int, sources: ImageSources) -> dict[str, Any]:
    role = "system" if message.role == "developer" else message.role
    out: dict[str, Any] = {"role": role}
    if isinstance(message.content, str):
        out["content"] = message.content
    elif message.content is not None:
        out["content"] = [_part(part, role, f"messages[{index}].content[{i}]", sources)
                          for i, part in enumerate(message.content)]  # fmt: skip
    if message.tool_calls:
        if role != "assistant":
            raise RequestError("only assistant messages carry tool_calls", 400, "invalid_value", f"messages[{index}]")
        out["tool_calls"] = [_tool_call(call, f"messages[{index}].tool_calls[{i}]")
                             for i, call in enumerate(message.tool_calls)]  # fmt: skip
    if message.reasoning_content is not None and role == "assistant":
        out["reasoning_content"] = message.reasoning_content
    for key in ("tool_call_id", "name"):
        value = getattr(message, key)
        if value is not None:
            out[key] = value
    return out


def _part(part: TextPart | ImagePart, role: str, param: str, sources: ImageSources) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if role != "user":
        raise RequestError(f"images are accepted in user messages only, not in a {role} message", 400, None, param)
    return {"type": "image", "image": image_bytes(part.image_url.url, sources, param)}


def _tool_call(call: ToolCallIn, param: str) -> dict[str, Any]:
    try:
        arguments = json.loads(call.function.arguments) if call.function.arguments.strip() else {}
    except json.JSONDecodeError as exc:
        raise RequestError(f"tool call arguments are not JSON: {exc}", 400, "invalid_value", param) from None
    if not isinstance(arguments, dict):
        raise RequestError("tool call arguments must be a JSON object", 400, "invalid_value", param)
    return {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": arguments}}
