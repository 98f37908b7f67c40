"""Shared by the server tests: a real server on a free loopback port, serving the tiny converted model."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import lfm_edge.model as api
from lfm_edge.server import Limits, ServerOptions
from lfm_edge.server.run import RunningServer, start_in_thread

IMAGES = Path(__file__).parent / "images"
API_KEY = "test-key-0123456789"
MODEL_ID = "lfm-tiny"


def data_uri(name: str) -> str:
    path = IMAGES / name
    mime = "image/png" if path.suffix == ".png" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


@contextmanager
def running_server(
    converted: Callable[..., tuple[Path, Path]], limits: Limits | None = None, **options: object
) -> Iterator[tuple[RunningServer, api.Model]]:
    text, _ = converted("official-2.5", "f16")
    with api.load(text, n_ctx=4096, n_threads=2, n_seq=1) as model:  # one slot: the queue tests count on it
        settings = ServerOptions(model_ids=(MODEL_ID,), port=0, limits=limits or Limits(), **options)  # type: ignore[arg-type]
        server = start_in_thread(model, settings)
        try:
            yield server, model
        finally:
            server.close()
