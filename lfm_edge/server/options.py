"""What `lfm-edge serve` accepts and how much: bind address, access control and request limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lfm_edge.errors import ConfigError
from lfm_edge.server.gbnf_check import GrammarBudget
from lfm_edge.server.schema_budget import SchemaBudget

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
    max_decoded_image_mb: decoded pixels (RGB) held at once by all requests together, decoding or waiting for the
        model; a request that would go over waits for its turn within its image_decode_timeout_s, then gets 503.
    image_decode_workers: threads decoding images (never the model's); image_decode_timeout_s: one request's
        images must be decoded within this, or it gets 408.
    max_jpeg_scans / max_image_frames: a JPEG's scans (progressive JPEGs have about 10; each scan costs a pass
        over every pixel) and an animated GIF's or WebP's frames (only the first is used), counted before decoding.
    max_grammar_bytes / max_grammar_depth / max_grammar_rules / max_grammar_symbols: a grammar's size, group
        nesting, rule count and size with repetitions written out (see gbnf_check), for `grammar` and for the ones
        made from JSON schemas. max_repetition: a `{m,n}`, maxLength, maxItems, minLength or minItems. max_enum:
        values of one enum. max_schema_depth: nesting of a JSON schema.
    request_timeout_s: wall time of one request from its arrival to its last token (0: none); past it a request
        that has not started answering gets 504, a stream gets an error event.
    header_timeout_s: a client must send its request headers within this, or its connection is closed.
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
    max_decoded_image_mb: int = 512
    image_decode_workers: int = 2
    image_decode_timeout_s: float = 10.0
    max_jpeg_scans: int = 64
    max_image_frames: int = 1000
    max_grammar_bytes: int = 64 * 1024
    max_grammar_depth: int = 1200
    max_grammar_rules: int = 1024
    max_grammar_symbols: int = 100_000
    max_repetition: int = 1000
    max_enum: int = 256
    max_schema_depth: int = 32
    request_timeout_s: float = 600.0
    header_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise ConfigError(f"server limit {name}={value!r} must be a finite number >= 0")
        if self.image_decode_workers < 1:
            raise ConfigError(f"image_decode_workers={self.image_decode_workers} must be at least 1")

    @property
    def grammar_budget(self) -> GrammarBudget:
        return GrammarBudget(self.max_grammar_bytes, self.max_grammar_depth, self.max_grammar_rules,
                             self.max_repetition, self.max_grammar_symbols)  # fmt: skip

    @property
    def schema_budget(self) -> SchemaBudget:
        return SchemaBudget(self.max_grammar_bytes, self.max_schema_depth, self.max_repetition, self.max_enum)


@dataclass(frozen=True)
class ServerOptions:
    """host/port: where to listen (loopback by default). model_ids: the id served (first) and accepted aliases.
    api_key: required as `Authorization: Bearer KEY` when set. cors_origins: browser origins allowed (none: CORS
    off). allowed_hosts: Host header names accepted besides IP literals, localhost and this machine's names
    (DNS-rebinding guard). allow_remote_images: fetch http(s) image URLs (otherwise only data: URIs), public
    addresses only unless allow_private_image_hosts (loopback, private, link-local, metadata... see fetch.py). ui:
    serve the browser page at `/`. live_feed: the server's own camera/video, captioned, for GET /v1/watch/events."""

    model_ids: tuple[str, ...]
    host: str = LOOPBACK
    port: int = 8080
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    allow_remote_images: bool = False
    allow_private_image_hosts: bool = False
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
