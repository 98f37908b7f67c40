"""POST /v1/chat/completions: validate, turn images into bytes off the event loop, queue the generation on the
model worker, answer as one chat.completion or as an SSE stream of chunks.

The prompt cache across requests is the engine's: each request renders the whole history, the engine keeps the
longest prefix it has already evaluated (or a saved state of one), and image crops are encoded once (the prompt
builder caches preprocessed images by their bytes and embeddings by crop). So a chat client's follow-up evaluates
only the new turn. Errors before the first token (a bad image, a prompt longer than the context) are HTTP errors
even for streams: the response starts only once the first piece exists. Images are decoded before the request is
queued, on the image pool (decode.py); the job stops when the client leaves or the time budget ends (jobs.py).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from lfm_edge.generation import Completion
from lfm_edge.parse import StreamDelta, ToolCallStreamFilter
from lfm_edge.server.decode import ImageDecoder, Reservation
from lfm_edge.server.images import ImageSources
from lfm_edge.server.jobs import GenerationJob, RequestScope, cancel_on_disconnect, decode_images
from lfm_edge.server.messages import template_messages
from lfm_edge.server.plan import plan_chat
from lfm_edge.server.problems import as_request_error, error_payload
from lfm_edge.server.responses import Reply, chunk, completion_body, sse, tool_call_json, usage, usage_chunk
from lfm_edge.server.schema import ChatRequest, parse_body
from lfm_edge.server.state import ServerState

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _images(request: Request) -> ImageDecoder:
    decoder: ImageDecoder = request.app.state.lfm_images
    return decoder


async def chat_completions(request: Request) -> Response:
    state: ServerState = request.app.state.lfm
    body = parse_body(ChatRequest, await request.body())
    scope = RequestScope.start(state.options.limits)
    state.check_model(body.model)
    limits = state.options.limits
    plan = plan_chat(body, state.n_ctx, limits, state.tool_markers)
    if body.image_settings is not None:  # validated here: a bad knob is a 400 before anything is queued
        plan = dataclasses.replace(plan, settings=state.model.image_settings(**body.image_settings.changes()))
    sources = ImageSources(limits, state.options.allow_remote_images, state.options.allow_private_image_hosts)
    messages = await run_in_threadpool(template_messages, body.messages, sources)
    async with cancel_on_disconnect(request, scope.cancelled):
        reservation: Reservation | None = await decode_images(_images(request), messages, scope)
    try:
        job = GenerationJob(state, messages, plan.options, plan.render, scope, plan.settings)
        events = state.worker.run(job, scope.cancelled)
        reply = Reply(state.options.model_id)
        try:
            async with cancel_on_disconnect(request, scope.cancelled):
                first = await anext(events, None)
                if not body.stream:
                    completion = first if isinstance(first, Completion) else None
                    async for event in events:
                        completion = event if isinstance(event, Completion) else completion
        except BaseException:
            scope.cancelled.set()
            await events.aclose()
            raise
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            stream = _sse(request, reply, (first, events, scope.cancelled), include_usage, reservation)
            reservation = None  # the stream releases it when it ends
            return StreamingResponse(stream, media_type="text/event-stream", headers=_SSE_HEADERS)
    finally:
        if reservation is not None:
            reservation.release()
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
               include_usage: bool, reservation: Reservation | None = None) -> AsyncIterator[bytes]:  # fmt: skip
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
        if reservation is not None:
            reservation.release()
