"""`lfm-edge serve`: an OpenAI-compatible HTTP server for one model (FastAPI + uvicorn, the `server` extra).

The data path of a request: headers (a time bound on receiving them) -> guards (Host header, API key, body size
and time) -> schema (pydantic, OpenAI's request shape) -> grammars (response_format / tool_choice -> GBNF, every
grammar within budgets before llama.cpp parses it: schema_budget, gbnf_check) -> messages (OpenAI content parts ->
the template's messages; image URLs -> checked bytes, never a file path: images, fetch) -> decode (pixels, on the
image pool) -> jobs + worker (one model, one request at a time, a bounded queue; stops when the client leaves or the
time budget ends) -> responses (OpenAI's completion and SSE chunk shapes).
"""

from lfm_edge.server.options import Limits, ServerOptions

__all__ = ["Limits", "ServerOptions"]
