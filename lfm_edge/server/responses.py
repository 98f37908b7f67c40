"""OpenAI's response shapes: a chat.completion, the chat.completion.chunk stream (SSE), usage and timings.

Extensions, both optional for clients: `usage.prompt_tokens_details.cached_tokens` (OpenAI's own field) counts the
prompt positions reused from the previous request's state; `timings` uses llama-server's names (prompt_n,
prompt_ms, predicted_n, predicted_per_second, ...) plus ttft_ms.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from lfm_edge.generation import Completion
from lfm_edge.parse import ToolCall
from lfm_edge.vision.timings import ImageTimings


@dataclass(frozen=True)
class Reply:
    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{secrets.token_hex(12)}")
    created: int = field(default_factory=lambda: int(time.time()))


def tool_call_json(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    """OpenAI's tool call, with a fresh id (the parser numbers calls per message; ids must be unique)."""
    shaped = call.to_openai() | {"id": f"call_{secrets.token_hex(12)}"}
    return shaped if index is None else {"index": index, **shaped}


def usage(completion: Completion) -> dict[str, Any]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": completion.timings.reused_tokens},
    }


def timings(completion: Completion) -> dict[str, Any]:
    t = completion.timings
    prompt_ms = 1000 * t.prefill_tokens / t.prefill_tok_s if t.prefill_tok_s else 0.0
    predicted_ms = 1000 * t.decode_tokens / t.decode_tok_s if t.decode_tok_s else 0.0
    return {
        "cache_n": t.reused_tokens,
        "prompt_n": t.prefill_tokens,
        "prompt_ms": prompt_ms,
        "prompt_per_second": t.prefill_tok_s,
        "predicted_n": t.decode_tokens,
        "predicted_ms": predicted_ms,
        "predicted_per_second": t.decode_tok_s,
        "ttft_ms": 1000 * t.ttft_s,
        "prefill_ms": 1000 * t.prefill_s,
        "first_token_ms": 1000 * t.first_token_s,
    } | (image_timings(t.image) if t.image is not None else {})


def image_timings(image: ImageTimings) -> dict[str, Any]:
    """The image stages (lfm_edge extension, beside llama-server's names)."""
    return {
        "images": image.images,
        "image_load_ms": 1000 * image.load_s,
        "image_preprocess_ms": 1000 * image.preprocess_s,
        "image_encode_ms": 1000 * image.encode_s,
        "image_crops": image.crops,
        "image_crops_cached": image.cache_hits,
        "image_encode_ms_per_crop": list(image.encode_ms_per_crop),
    }


def finish_reason(completion: Completion) -> str:
    return "tool_calls" if completion.message.tool_calls else completion.finish_reason


def completion_body(reply: Reply, completion: Completion, with_tokens: bool = False) -> dict[str, Any]:
    parsed = completion.message
    message: dict[str, Any] = {"role": "assistant", "content": parsed.content or (None if parsed.tool_calls else "")}
    if parsed.tool_calls:
        message["tool_calls"] = [tool_call_json(call) for call in parsed.tool_calls]
    if parsed.reasoning is not None:
        message["reasoning_content"] = parsed.reasoning
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(completion)}],
        "usage": usage(completion),
        "timings": timings(completion),
    } | ({"tokens": list(completion.token_ids)} if with_tokens else {})


def chunk(reply: Reply, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": reply.id,
        "object": "chat.completion.chunk",
        "created": reply.created,
        "model": reply.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def usage_chunk(reply: Reply, completion: Completion) -> dict[str, Any]:
    """The last chunk: no choices, the usage (what OpenAI sends for stream_options.include_usage)."""
    return chunk(reply, {}) | {"choices": [], "usage": usage(completion), "timings": timings(completion)}


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()
