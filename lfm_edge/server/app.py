"""The FastAPI application: routes, error handlers in OpenAI's shape, and the guards around them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from lfm_edge import __version__
from lfm_edge.errors import LfmEdgeError, RequestError
from lfm_edge.model import Model
from lfm_edge.server.chat_route import chat_completions
from lfm_edge.server.detect_route import detect
from lfm_edge.server.guards import RequestGuard
from lfm_edge.server.options import ServerOptions
from lfm_edge.server.problems import as_request_error, error_payload
from lfm_edge.server.state import ServerState


def create_app(model: Model, options: ServerOptions) -> FastAPI:
    """The ASGI app serving `model`; run it with uvicorn (see lfm_edge.server.run)."""
    state = ServerState.create(model, options)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.worker.close()  # uvicorn has finished the requests in flight; a queued job left over never starts

    app = FastAPI(
        title="lfm_edge", version=__version__, docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.lfm = state
    app.add_exception_handler(LfmEdgeError, _library_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _library_error)
    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_api_route("/v1/detect", detect, methods=["POST"])
    app.add_api_route("/v1/models", list_models, methods=["GET"])
    app.add_api_route("/health", health, methods=["GET"])
    app.add_middleware(RequestGuard, options=options)
    if options.cors_origins:  # added last: outermost, so preflight requests are answered before the guards
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(options.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


def error_response(error: RequestError) -> JSONResponse:
    return JSONResponse(error_payload(error), status_code=error.status, headers=error.headers)


async def _library_error(_: Request, exc: Exception) -> JSONResponse:
    return error_response(as_request_error(exc))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(RequestError(str(exc.detail), exc.status_code, None, headers=dict(exc.headers or {})))


async def list_models(request: Request) -> dict[str, Any]:
    state: ServerState = request.app.state.lfm
    ids = state.options.model_ids
    return {"object": "list", "data": [{"id": i, "object": "model", "created": state.started, "owned_by": "lfm-edge"}
                                       for i in ids]}  # fmt: skip


async def health(request: Request) -> dict[str, Any]:
    state: ServerState = request.app.state.lfm
    counters = state.worker.counters()
    return {"status": "ok", "model": state.options.model_id, "pending": state.worker.pending, **counters}
