"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}, from RequestError and library errors."""

from __future__ import annotations

import json
import logging
from typing import Any

from lfm_edge.errors import (
    ConfigError,
    ContextLengthError,
    ImageError,
    LfmEdgeError,
    ParseError,
    PromptError,
    RequestError,
)

log = logging.getLogger(__name__)

_CLIENT_ERRORS: tuple[tuple[type[LfmEdgeError], str], ...] = (
    (ContextLengthError, "context_length_exceeded"),
    (ImageError, "invalid_image"),
    (PromptError, "invalid_prompt"),
    (ConfigError, "invalid_value"),
    (ParseError, "invalid_value"),
)


def as_request_error(exc: BaseException) -> RequestError:
    """The HTTP answer for any exception: user-caused library errors are 400s with their message; anything else is
    a 500 whose details stay in the server log (a client learns nothing of the machine)."""
    if isinstance(exc, RequestError):
        return exc
    for kind, code in _CLIENT_ERRORS:
        if isinstance(exc, kind):
            return RequestError(str(exc), 400, code)
    log.error("request failed: %s: %s", type(exc).__name__, exc, exc_info=not isinstance(exc, LfmEdgeError))
    return RequestError("the server failed to answer this request; see its log", 500, "internal_error")


def error_type(status: int) -> str:
    if status in (401, 403):
        return "authentication_error" if status == 401 else "permission_error"
    return "invalid_request_error" if status < 500 else "server_error"


def error_payload(error: RequestError) -> dict[str, Any]:
    return {
        "error": {"message": str(error), "type": error_type(error.status), "param": error.param, "code": error.code}
    }


def error_bytes(error: RequestError) -> bytes:
    return json.dumps(error_payload(error), ensure_ascii=False).encode()
