"""A bound on the time a client takes to send its request headers (uvicorn has none).

uvicorn closes an idle keep-alive connection after timeout_keep_alive, but as soon as one byte arrives it waits for
the rest forever: a client sending one header byte per second holds a connection (and, with enough of them, every
connection slot). This protocol (uvicorn's h11 one) starts a timer whenever the server waits for a request's
headers (a new connection, or a kept-alive one after its response) and closes the connection when the headers are
not complete within header_timeout_s. The body has its own bound (body_timeout_s, guards.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class HeaderTimeoutProtocol(H11Protocol):
    header_timeout_s: float = 10.0  # set per server by with_header_timeout

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._cycle_seen: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._note_new_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._note_new_request():
            self._wait_for_headers()

    def _note_new_request(self) -> bool:
        """True when a request's headers have arrived since last noted (uvicorn then starts a new cycle)."""
        if self.cycle is not None and self.cycle is not self._cycle_seen:
            self._cycle_seen = self.cycle
            self._stop_timer()
            return True
        return False

    def _wait_for_headers(self) -> None:
        self._stop_timer()
        if self.header_timeout_s > 0:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _stop_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
            log.info("closing the connection of %s: its request headers took over %g s", client, self.header_timeout_s)
            self.transport.close()


def with_header_timeout(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class for uvicorn.Config(http=...), bound to this server's timeout."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": seconds})
