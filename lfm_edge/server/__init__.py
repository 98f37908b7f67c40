"""`lfm-edge serve`: an OpenAI-compatible HTTP server for one model (FastAPI + uvicorn, the `server` extra).

The data path of a request: guards (Host header, API key, body size and time) -> schema (pydantic, OpenAI's request
shape) -> messages (OpenAI content parts -> the template's messages; image URLs -> bytes, never a file path) ->
grammars (response_format / tool_choice -> GBNF) -> worker (one model, one request at a time, a bounded queue) ->
responses (OpenAI's completion and SSE chunk shapes).
"""

from lfm_edge.server.options import Limits, ServerOptions

__all__ = ["Limits", "ServerOptions"]
