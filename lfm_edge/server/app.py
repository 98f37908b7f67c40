"""The FastAPI application: routes, error handlers in OpenAI's shape, and the guards around them."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from lfm_edge import __version__
from lfm_edge.errors import LfmEdgeError, RequestError
from lfm_edge.model import Model
from lfm_edge.server.chat_route import chat_completions
from lfm_edge.server.decode import ImageDecoder
from lfm_edge.server.detect_route import detect
from lfm_edge.server.guards import RequestGuard
from lfm_edge.server.options import ServerOptions
from lfm_edge.server.problems import as_request_error, error_payload
from lfm_edge.server.state import ServerState
from lfm_edge.server.ui import add_ui_routes
from lfm_edge.server.ui.live import LiveHub, watch_events

log = logging.getLogger(__name__)


def create_app(model: Model, options: ServerOptions) -> FastAPI:
    """The ASGI app serving `model`; run it with uvicorn (see lfm_edge.server.run)."""
    state = ServerState.create(model, options)
    images = ImageDecoder(options.limits)
    live = LiveHub(options.live_feed) if options.live_feed is not None else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if live is not None:
            live.close()
        state.worker.close()  # uvicorn has finished the requests in flight; a queued job left over never starts
        images.close()

    app = FastAPI(
        title="lfm_edge", version=__version__, docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.lfm = state
    app.state.lfm_images = images
    app.state.live = live
    app.add_exception_handler(ClientDisconnect, _client_left)
    app.add_exception_handler(LfmEdgeError, _library_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _library_error)
    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_api_route("/v1/detect", detect, methods=["POST"])
    app.add_api_route("/v1/models", list_models, methods=["GET"])
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/v1/watch/events", watch_events, methods=["GET"])
    if options.ui:
        add_ui_routes(app)
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


async def _client_left(request: Request, _: Exception) -> Response:
    client = f"{request.client.host}:{request.client.port}" if request.client else "?"
    log.info("client %s went away before sending its whole request", client)
    return Response(status_code=499)  # nobody reads it


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(RequestError(str(exc.detail), exc.status_code, None, headers=dict(exc.headers or {})))


async def list_models(request: Request) -> dict[str, Any]:
    state: ServerState = request.app.state.lfm
    ids = state.options.model_ids
    image = image_settings_record(state.model)  # lfm_edge extension: the image settings and their source
    return {"object": "list", "data": [{"id": i, "object": "model", "created": state.started, "owned_by": "lfm-edge",
                                        "image_settings": image} for i in ids]}  # fmt: skip


def image_settings_record(model: Model) -> dict[str, Any]:
    settings, source = model.settings, getattr(model, "settings_source", None)
    return {"source": str(source) if source is not None else None, **dataclasses.asdict(settings)}


async def health(request: Request) -> dict[str, Any]:
    state: ServerState = request.app.state.lfm
    counters = state.worker.counters()
    return {"status": "ok", "model": state.options.model_id, "pending": state.worker.pending, **counters}
