"""The browser page at `/`: chat with pictures, detection boxes drawn, live captions (`lfm-edge serve`, off with
--no-ui).

Plain HTML/CSS/JS shipped as package data (static/), no build step, nothing from another origin, so it works
offline. The page and its assets are public (they hold no secrets; the API they call still needs the key) and go
out with a strict Content-Security-Policy: scripts and styles from this server only, no inline code, no framing,
connections back to this origin only. Images the user picks stay data:/blob: URLs inside the page.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from lfm_edge.errors import RequestError

ASSETS = {
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "chat.js": "text/javascript; charset=utf-8",
    "detect.js": "text/javascript; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "settings.js": "text/javascript; charset=utf-8",
}
UI_PATHS = frozenset({"/", *(f"/ui/{name}" for name in ASSETS)})

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cache-Control": "no-cache",
}


@cache
def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _answer(name: str, media_type: str) -> Response:
    return Response(_asset(name), media_type=media_type, headers=_HEADERS)


async def page(_: Request) -> Response:
    return _answer("index.html", "text/html; charset=utf-8")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    media_type = ASSETS.get(name)
    if media_type is None:
        raise RequestError(f"no page asset named {name!r}", 404, "not_found")
    return _answer(name, media_type)


def add_ui_routes(app: FastAPI) -> None:
    """GET / (the page) and GET /ui/NAME (its scripts and style)."""
    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/{name}", asset, methods=["GET"], include_in_schema=False)
