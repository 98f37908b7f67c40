"""POST /v1/detect, our extension: grounding with the model card's prompt, boxes in pixels of the image.

Request: {"image": "data:image/...;base64,..." (or an http(s) URL with --allow-remote-images), "query": "cat"},
plus the chat endpoint's sampling fields and `grammar`. Response: {"object": "detection", "model", "query", "width",
"height", "boxes": [{"label", "bbox": [x1, y1, x2, y2] in pixels, "bbox_normalized"}], "text" (the raw answer),
"errors" (what could not be read; the boxes before it are kept)}.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from lfm_edge.model import DETECT_OPTIONS
from lfm_edge.parse import Detection
from lfm_edge.server.images import image_bytes
from lfm_edge.server.plan import Constraint, generation_options
from lfm_edge.server.schema import DetectRequest, parse_body
from lfm_edge.server.state import ServerState


async def detect(request: Request) -> dict[str, Any]:
    state: ServerState = request.app.state.lfm
    body = parse_body(DetectRequest, await request.body())
    state.check_model(body.model)
    limits = state.options.limits
    data = await run_in_threadpool(image_bytes, body.image, limits, state.options.allow_remote_images, "image")
    options = generation_options(body, state.n_ctx, limits, Constraint(body.grammar), base=DETECT_OPTIONS)
    knobs = body.image_settings.changes() if body.image_settings is not None else {}
    state.model.image_settings(**knobs)  # a bad knob is a 400 before anything is queued

    def job(emit: Callable[[Any], None], _: threading.Event) -> None:
        emit(state.model.detect(data, body.query, options, **knobs))

    found: Detection | None = None
    async for event in state.worker.run(job, threading.Event()):
        found = event
    assert found is not None
    width, height = found.image_size
    return {
        "object": "detection",
        "model": state.options.model_id,
        "query": body.query,
        "width": width,
        "height": height,
        "boxes": [box.to_dict() for box in found.boxes],
        "text": found.raw,
        "errors": list(found.errors),
    }
