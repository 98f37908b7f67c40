"""The checks every HTTP request passes before any route sees it (a plain ASGI middleware):

1. the Host header names this server (an IP literal, localhost, this machine's name or an --allowed-host): a web
   page that rebinds its own domain name to 127.0.0.1 (DNS rebinding, ollama's CVE-2024-28224) gets 403;
2. the API key, when one is set, compared in constant time (401 otherwise; /health and the page's files are public);
3. the body: a Content-Length over the limit is refused before reading (413); a body that grows past it while
   streaming in (chunked) is cut off (413), and one that does not arrive within body_timeout_s gets 408.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import socket

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lfm_edge.errors import RequestError
from lfm_edge.server.options import ServerOptions
from lfm_edge.server.problems import error_bytes
from lfm_edge.server.ui import UI_PATHS

PUBLIC_PATHS = frozenset({"/health", *UI_PATHS})  # the page holds no secrets; the API it calls needs the key


def _hostname(host_header: str) -> str:
    """The host part of a Host header value: "[::1]:8080" -> "::1", "Example.COM.:80" -> "example.com"."""
    host = host_header.strip()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else ""
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.lower().rstrip(".")


def machine_names() -> frozenset[str]:
    name = socket.gethostname().lower().rstrip(".")
    return frozenset({name, f"{name}.local"} if name else set())


def host_allowed(host_header: str | None, extra_names: frozenset[str]) -> bool:
    if not host_header:
        return False
    hostname = _hostname(host_header)
    if not hostname:
        return False
    try:
        ipaddress.ip_address(hostname)
        return True
    except ValueError:
        pass
    return hostname == "localhost" or hostname.endswith(".localhost") or hostname in extra_names


def key_matches(authorization: str | None, api_key: str) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), api_key.encode())


class RequestGuard:
    def __init__(self, app: ASGIApp, options: ServerOptions) -> None:
        self.app = app
        self.options = options
        self.names = machine_names() | {name.lower().rstrip(".") for name in options.allowed_hosts}
        self.active = 0  # requests being handled; only touched on the event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope, Headers(scope=scope))
        if refusal is not None:
            await send_error(send, refusal)
            return
        limits = self.options.limits
        if self.active >= limits.max_requests:
            busy = RequestError(
                f"the server is handling {self.active} requests; retry in a moment",
                503,
                "server_busy",
                headers={"Retry-After": str(limits.retry_after_s)},
            )
            await send_error(send, busy)
            return
        self.active += 1
        try:
            body = _BodyReader(receive, limits.max_body_bytes, limits.body_timeout_s)
            await self.app(scope, body.receive, body.wrap_send(send))
        finally:
            self.active -= 1

    def _refusal(self, scope: Scope, headers: Headers) -> RequestError | None:
        if not host_allowed(headers.get("host"), self.names):
            return RequestError(
                f"Host header {headers.get('host', '')!r:.80} is not this server's name; add it with "
                "--allowed-host NAME if you reach the server under that name",
                403,
                "host_not_allowed",
            )
        key = self.options.api_key
        if key is not None and scope["path"] not in PUBLIC_PATHS and not key_matches(headers.get("authorization"), key):
            return RequestError(
                "Incorrect or missing API key: send it as 'Authorization: Bearer KEY'",
                401,
                "invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        length = headers.get("content-length")
        limit = self.options.limits.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            return RequestError(f"the request body ({length} bytes) is over the limit of {limit} bytes", 413)
        return None


class _BodyReader:
    """Counts and times the body as the app reads it; on a violation the app's answer is replaced by ours."""

    def __init__(self, receive: Receive, limit: int, timeout_s: float) -> None:
        self._receive = receive
        self._limit = limit
        self._deadline = asyncio.get_running_loop().time() + timeout_s
        self._received = 0
        self._complete = False
        self.failure: RequestError | None = None

    async def receive(self) -> Message:
        if self._complete:  # after the body, receive() only waits for the client to go away
            return await self._receive()
        remaining = self._deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(self._receive(), timeout=max(remaining, 0.001))
        except TimeoutError:
            self.failure = RequestError("the request body did not arrive in time", 408, "request_timeout")
            raise self.failure from None
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                self.failure = RequestError(f"the request body is over the limit of {self._limit} bytes", 413)
                raise self.failure
            self._complete = not message.get("more_body", False)
        return message

    def wrap_send(self, send: Send) -> Send:
        async def guarded(message: Message) -> None:
            if self.failure is None:
                await send(message)
            elif message["type"] == "http.response.start":
                await send_error(send, self.failure)

        return guarded


async def send_error(send: Send, error: RequestError) -> None:
    payload = error_bytes(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in error.headers.items()),
    ]
    if error.status in (408, 413):
        headers.append((b"connection", b"close"))  # the rest of the body is never read
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
