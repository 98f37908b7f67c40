"""POST /v1/chat/completions: validate, turn images into bytes off the event loop, queue the generation on the
model worker, answer as one chat.completion or as an SSE stream of chunks.

The prompt cache across requests is the engine's: each request renders the whole history, the engine keeps the
longest prefix it has already evaluated (or a saved state of one), and image crops are encoded once (the prompt
builder caches preprocessed images by their bytes and embeddings by crop). So a chat client's follow-up evaluates
only the new turn. Errors before the first token (a bad image, a prompt longer than the context) are HTTP errors
even for streams: the response starts only once the first piece exists.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from lfm_edge.generation import Completion
from lfm_edge.parse import StreamDelta, ToolCallStreamFilter
from lfm_edge.server.messages import template_messages
from lfm_edge.server.plan import ChatPlan, plan_chat
from lfm_edge.server.problems import as_request_error, error_payload
from lfm_edge.server.responses import Reply, chunk, completion_body, sse, tool_call_json, usage, usage_chunk
from lfm_edge.server.schema import ChatRequest, parse_body
from lfm_edge.server.state import ServerState

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@asynccontextmanager
async def cancel_on_disconnect(request: Request, cancelled: threading.Event) -> AsyncIterator[None]:
    """Sets `cancelled` when the client goes away (read after the body: only http.disconnect can come)."""

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        cancelled.set()

    task = asyncio.create_task(watch())
    try:
        yield
    finally:
        task.cancel()


def _generate(state: ServerState, messages: list[dict[str, Any]], plan: ChatPlan,
              emit: Callable[[Any], None], cancelled: threading.Event) -> None:  # fmt: skip
    stream = state.model.stream_messages(messages, plan.options, plan.render)
    stream.stop_event = cancelled  # a disconnect stops generation at the next token, like TextStream.stop()
    try:
        for piece in stream:
            if cancelled.is_set():
                return
            emit(piece)
    finally:
        stream.close()
    if stream.completion is not None:
        emit(stream.completion)


async def chat_completions(request: Request) -> Response:
    state: ServerState = request.app.state.lfm
    body = parse_body(ChatRequest, await request.body())
    state.check_model(body.model)
    limits = state.options.limits
    plan = plan_chat(body, state.n_ctx, limits, state.tool_markers)
    messages = await run_in_threadpool(template_messages, body.messages, limits, state.options.allow_remote_images)
    cancelled = threading.Event()
    events = state.worker.run(partial(_generate, state, messages, plan), cancelled)
    reply = Reply(state.options.model_id)
    try:
        async with cancel_on_disconnect(request, cancelled):
            first = await anext(events, None)
            if not body.stream:
                completion = first if isinstance(first, Completion) else None
                async for event in events:
                    completion = event if isinstance(event, Completion) else completion
    except BaseException:
        cancelled.set()
        await events.aclose()
        raise
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        stream = _sse(request, reply, (first, events, cancelled), include_usage)
        return StreamingResponse(stream, media_type="text/event-stream", headers=_SSE_HEADERS)
    if completion is None:  # the client went away; nobody reads this
        return Response(status_code=499)
    return JSONResponse(completion_body(reply, completion, body.return_tokens))


def _delta_chunks(reply: Reply, delta: StreamDelta, calls_so_far: int) -> list[bytes]:
    out = []
    if delta.reasoning:
        out.append(sse(chunk(reply, {"reasoning_content": delta.reasoning})))
    if delta.content:
        out.append(sse(chunk(reply, {"content": delta.content})))
    if delta.tool_calls:
        calls = [tool_call_json(call, calls_so_far + i) for i, call in enumerate(delta.tool_calls)]
        out.append(sse(chunk(reply, {"tool_calls": calls})))
    return out


async def _sse(request: Request, reply: Reply, source: tuple[Any, AsyncGenerator[Any, None], threading.Event],
               include_usage: bool) -> AsyncIterator[bytes]:  # fmt: skip
    first, events, cancelled = source
    pieces = ToolCallStreamFilter()
    calls = 0
    completion: Completion | None = None
    try:
        async with cancel_on_disconnect(request, cancelled):
            yield sse(chunk(reply, {"role": "assistant", "content": ""}))
            event = first
            while event is not None and completion is None:
                if isinstance(event, Completion):
                    completion = event
                    break
                delta = pieces.feed_delta(event)
                for data in _delta_chunks(reply, delta, calls):
                    yield data
                calls += len(delta.tool_calls)
                event = await anext(events, None)
        if completion is None:
            return
        for data in _delta_chunks(reply, pieces.flush(), calls):
            yield data
        finish = "tool_calls" if calls else completion.finish_reason
        last = chunk(reply, {}, finish)
        if include_usage:
            yield sse(last)
            yield sse(usage_chunk(reply, completion))
        else:
            yield sse(last | {"usage": usage(completion)})
        yield sse("[DONE]")
    except Exception as exc:  # after the 200 went out, an error can only travel as an event
        yield sse(error_payload(as_request_error(exc)))
    finally:
        cancelled.set()
        await events.aclose()
