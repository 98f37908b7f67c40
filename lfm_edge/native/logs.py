"""llama.cpp's and mtmd's log output, routed to Python logging (silent unless the user asks for --verbose)."""

from __future__ import annotations

import ctypes
import logging

from llama_cpp import llama_cpp as lc
from llama_cpp import mtmd_cpp as mtmd

_native_log = logging.getLogger("lfm_edge.llama_cpp")
_GGML_LOG_LEVEL_ERROR = 4


def _forward_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    # llama.cpp and mtmd print a lot at INFO; it reaches the user only with --verbose (DEBUG), errors always.
    message = text.decode("utf-8", errors="replace").rstrip()
    if message:
        _native_log.log(logging.ERROR if level == _GGML_LOG_LEVEL_ERROR else logging.DEBUG, "%s", message)


_FORWARD_LOG = lc.llama_log_callback(_forward_log)  # module-level: the C side keeps the pointer


def route_native_logs() -> None:
    """Sends llama.cpp's and mtmd's log output to Python logging (logger `lfm_edge.llama_cpp`) instead of stderr."""
    lc.llama_log_set(_FORWARD_LOG, ctypes.c_void_p(0))
    mtmd.mtmd_log_set(_FORWARD_LOG, ctypes.c_void_p(0))
    mtmd.mtmd_helper_log_set(_FORWARD_LOG, ctypes.c_void_p(0))
