"""What every route shares around the model worker: a request's scope (cancelled when its client leaves, a wall-time
budget), images decoded within it, and generation that stops between tokens when either ends.

A job queued on the worker checks the scope before it starts (work whose client left, or whose time ran out while
waiting, never starts) and after every piece of text. The time budget (request_timeout_s) counts from the request's
arrival: past it, a request gets 504 request_timeout (as an SSE error event once a stream has started).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from lfm_edge.errors import RequestError
from lfm_edge.generation import GenerationOptions
from lfm_edge.image.settings import ProcessorSettings
from lfm_edge.prompt import RenderOptions
from lfm_edge.server.decode import ImageDecoder, Reservation, checked_images
from lfm_edge.server.options import Limits
from lfm_edge.server.state import ServerState

log = logging.getLogger(__name__)


@dataclass
class RequestScope:
    budget_s: float
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, limits: Limits) -> RequestScope:
        return cls(limits.request_timeout_s)

    def expired(self) -> bool:
        return self.budget_s > 0 and time.monotonic() - self.started > self.budget_s

    def seconds_left(self) -> float | None:
        return None if self.budget_s <= 0 else self.budget_s - (time.monotonic() - self.started)

    def check(self) -> None:
        if self.expired():
            raise RequestError(
                f"the request ran past its time budget of {self.budget_s:g} s (request_timeout_s; "
                "--request-timeout): ask for fewer max_tokens or retry when the server is less busy",
                504,
                "request_timeout",
            )


@asynccontextmanager
async def cancel_on_disconnect(request: Request, cancelled: threading.Event) -> AsyncIterator[None]:
    """Sets `cancelled` when the client goes away (read after the body: only http.disconnect can come)."""

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        log.info("client %s went away; its request stops", _client(request))
        cancelled.set()

    task = asyncio.create_task(watch())
    try:
        yield
    finally:
        task.cancel()


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "?"


async def decode_images(decoder: ImageDecoder, messages: list[dict[str, Any]], scope: RequestScope) -> Reservation:
    """Replaces each checked image in `messages` by its RGB array; the reservation holds their memory until
    released (when the answer is over)."""
    parts = checked_images(messages)
    reservation = await decoder.reserve(sum(part["image"].decoded_bytes for part in parts), scope.cancelled)
    try:
        if parts:
            arrays = await decoder.decode_all([part["image"] for part in parts], scope.cancelled)
            for part, array in zip(parts, arrays, strict=True):
                part["image"] = array
        scope.check()
    except BaseException:
        reservation.release()
        raise
    return reservation


class _StopWhenCancelled:
    """An Event-like flag that is set when either the stream itself was stopped or the request was cancelled."""

    def __init__(self, request_cancelled: threading.Event) -> None:
        self._request = request_cancelled
        self._own = threading.Event()

    def is_set(self) -> bool:
        return self._own.is_set() or self._request.is_set()

    def set(self) -> None:
        self._own.set()


@dataclass(frozen=True)
class GenerationJob:
    """One generation for the worker: emits each piece of text, then the Completion."""

    state: ServerState
    messages: list[dict[str, Any]]
    options: GenerationOptions
    render: RenderOptions
    scope: RequestScope
    settings: ProcessorSettings | None = None  # None: the model's own

    def __call__(self, emit: Callable[[Any], None], cancelled: threading.Event) -> None:
        self.scope.check()  # it may have waited in the queue past its budget
        stream = self.state.model.stream_messages(self.messages, self.options, self.render, self.settings)
        # Checked before every token, also those showing no text: the request's cancellation (client gone, time
        # budget) stops the stream, while closing the stream must not cancel the request.
        stream.stop_event = _StopWhenCancelled(self.scope.cancelled)  # type: ignore[assignment]
        left = self.scope.seconds_left()
        timer = threading.Timer(max(left, 0.0), self.scope.cancelled.set) if left is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            for piece in stream:
                if cancelled.is_set() or self.scope.cancelled.is_set():
                    break
                emit(piece)
        finally:
            if timer is not None:
                timer.cancel()
            stream.close()
        self.scope.check()
        if stream.completion is not None and not self.scope.cancelled.is_set():
            emit(stream.completion)
