"""`lfm-edge serve MODEL`: the OpenAI-compatible server. Parses options and calls lfm_edge.server.run.serve."""

from __future__ import annotations

from typing import Any

import click

from lfm_edge.cli.errors import friendly_errors
from lfm_edge.cli.model import model_options, open_model
from lfm_edge.errors import ConfigError


@click.command()
@click.argument("model")
@model_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option(
    "--api-key",
    envvar="LFM_EDGE_API_KEY",
    help="Require 'Authorization: Bearer KEY' (also from $LFM_EDGE_API_KEY, which keeps it out of `ps`).",
)
@click.option("--alias", "aliases", multiple=True, help="Model id to serve (first) and accept (repeatable).")
@click.option("--cors", "cors_origins", multiple=True, help="Browser origin allowed to call the API (repeatable).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, help="Extra Host header name to accept (repeatable).")
@click.option("--allow-remote-images", is_flag=True, help="Fetch http(s) image URLs (default: data: URIs only).")
@click.option(
    "--allow-private-image-hosts",
    is_flag=True,
    help="With --allow-remote-images: also fetch from loopback, private and link-local addresses (default: public).",
)
@click.option(
    "--parallel",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Requests generated at once (slots, decoded together); they share --n-ctx.",
)
@click.option("--max-queue", default=8, show_default=True, type=click.IntRange(0), help="Requests waiting at most.")
@click.option("--max-images", default=16, show_default=True, type=click.IntRange(0), help="Images per request.")
@click.option("--max-body-mb", default=32, show_default=True, type=click.IntRange(1), help="Request body size.")
@click.option("--max-image-mpx", default=36.0, show_default=True, type=click.FloatRange(0.01), help="Image megapixels.")
@click.option("--request-timeout", default=600.0, show_default=True, type=click.FloatRange(0),
              help="Seconds one request may take, queue included (0: no limit); then 504.")  # fmt: skip
@click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds a client has to send its request headers; then the connection is closed.")  # fmt: skip
@click.option("--no-ui", is_flag=True, help="Do not serve the browser page at / (the API only).")
@click.option(
    "--watch",
    "watch_source",
    metavar="SOURCE",
    help="Caption this camera (0, /dev/video0), video file or image folder live for the page (video extra).",
)
@click.option("--watch-prompt", default=None, help="The instruction for --watch captions.")  # fmt: skip
@friendly_errors
def serve(model: str, **kw: Any) -> None:
    """Serve MODEL over an OpenAI-compatible HTTP API: /v1/chat/completions (text, images as data: URIs, streaming,
    tools, response_format), /v1/models, /health and /v1/detect (boxes). --parallel requests at once; see README."""
    try:
        from lfm_edge.server import Limits, ServerOptions
        from lfm_edge.server.run import serve as run_server
    except ImportError as exc:
        raise ConfigError(f"the server needs the `server` extra: pip install 'lfm-edge[server]' ({exc})") from exc
    limits = Limits(
        max_queue=kw["max_queue"],
        max_images=kw["max_images"],
        max_body_bytes=kw["max_body_mb"] * 2**20,
        max_image_pixels=int(kw["max_image_mpx"] * 1e6),
        request_timeout_s=kw["request_timeout"],
        header_timeout_s=kw["header_timeout"],
    )
    loaded = open_model(model, kw)
    try:
        options = ServerOptions(
            model_ids=tuple(kw["aliases"]) or (loaded.files.text.stem,),
            host=kw["host"],
            port=kw["port"],
            api_key=kw["api_key"],
            cors_origins=tuple(kw["cors_origins"]),
            allowed_hosts=tuple(kw["allowed_hosts"]),
            allow_remote_images=kw["allow_remote_images"],
            allow_private_image_hosts=kw["allow_private_image_hosts"],
            limits=limits,
            ui=not kw["no_ui"],
            live_feed=_live_feed(loaded, kw),
        )
        run_server(loaded, options, verbose=bool((click.get_current_context().find_root().obj or {}).get("verbose")))
    finally:
        loaded.close()


def _live_feed(model: Any, kw: dict[str, Any]) -> Any:
    if not kw["watch_source"]:
        return None
    from lfm_edge.server.ui.watch_feed import video_feed

    prompt = {"prompt": kw["watch_prompt"]} if kw["watch_prompt"] else {}
    return video_feed(model, kw["watch_source"], mode="live", **prompt)
