"""What `lfm-edge serve` accepts and how much: bind address, access control and request limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lfm_edge.errors import ConfigError

if TYPE_CHECKING:
    from lfm_edge.server.ui.live import LiveFeed

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Limits:
    """Per-request bounds; anything beyond gets 413 (sizes) or 400 (counts) in OpenAI's error shape.

    max_queue: requests waiting behind the running one; one more gets 503 with Retry-After.
    max_requests: HTTP requests being handled at once (reading bodies, queued, streaming); one more gets 503 with
        Retry-After. Open connections are capped at 4x this by uvicorn itself (a plain-text 503 beyond).
    body_timeout_s: a client must send its whole body within this (slow clients get 408, the server serves on).
    max_image_pixels: width x height of one decoded image (the image is opened header-only to check, before any
        decoding); 36 Mpx covers any phone photo.
    """

    max_body_bytes: int = 32 * 2**20
    max_messages: int = 512
    max_images: int = 16
    max_image_bytes: int = 16 * 2**20
    max_image_pixels: int = 36_000_000
    max_tools: int = 128
    max_stop: int = 16
    max_queue: int = 8
    max_requests: int = 32
    body_timeout_s: float = 30.0
    remote_image_timeout_s: float = 10.0
    retry_after_s: int = 2

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"server limit {name}={value!r} must be a number >= 0")


@dataclass(frozen=True)
class ServerOptions:
    """host/port: where to listen (loopback by default). model_ids: the id served (first) and accepted aliases.
    api_key: required as `Authorization: Bearer KEY` when set. cors_origins: browser origins allowed (none: CORS
    off). allowed_hosts: Host header names accepted besides IP literals, localhost and this machine's names
    (DNS-rebinding guard). allow_remote_images: fetch http(s) image URLs (otherwise only data: URIs). ui: serve the
    browser page at `/`. live_feed: the server's own camera/video, captioned, for GET /v1/watch/events."""

    model_ids: tuple[str, ...]
    host: str = LOOPBACK
    port: int = 8080
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    allow_remote_images: bool = False
    limits: Limits = field(default_factory=Limits)
    ui: bool = True
    live_feed: LiveFeed | None = None

    def __post_init__(self) -> None:
        if not self.model_ids or not all(isinstance(name, str) and name for name in self.model_ids):
            raise ConfigError(f"model_ids={self.model_ids!r}: give at least one non-empty model id")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"port {self.port} must be in 0..65535 (0: any free port)")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("the API key must be at least 8 characters long: pick a long random one")

    @property
    def model_id(self) -> str:
        return self.model_ids[0]
