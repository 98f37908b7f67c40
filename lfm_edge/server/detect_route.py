"""POST /v1/detect, our extension: grounding with the model card's prompt, boxes in pixels of the image.

Request: {"image": "data:image/...;base64,..." (or an http(s) URL with --allow-remote-images), "query": "cat"},
plus the chat endpoint's sampling fields and `grammar`. Response: {"object": "detection", "model", "query", "width",
"height", "boxes": [{"label", "bbox": [x1, y1, x2, y2] in pixels, "bbox_normalized"}], "text" (the raw answer),
"errors" (what could not be read; the boxes before it are kept)}.

Like a chat request, it stops between tokens when its client leaves or its time budget ends, and a queued one
whose client left never starts (jobs.py); the image is decoded on the image pool (decode.py).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lfm_edge.generation import Completion
from lfm_edge.model import DETECT_OPTIONS
from lfm_edge.parse import detection_prompt, parse_detections
from lfm_edge.prompt import RenderOptions
from lfm_edge.server.decode import ImageDecoder
from lfm_edge.server.grammars import request_grammar
from lfm_edge.server.images import ImageSources, image_bytes
from lfm_edge.server.jobs import GenerationJob, RequestScope, cancel_on_disconnect, decode_images
from lfm_edge.server.plan import Constraint, generation_options
from lfm_edge.server.schema import DetectRequest, parse_body
from lfm_edge.server.state import ServerState


async def detect(request: Request) -> Response:
    state: ServerState = request.app.state.lfm
    decoder: ImageDecoder = request.app.state.lfm_images
    body = parse_body(DetectRequest, await request.body())
    scope = RequestScope.start(state.options.limits)
    state.check_model(body.model)
    limits = state.options.limits
    grammar = None if body.grammar is None else request_grammar(body.grammar, limits)
    options = generation_options(body, state.n_ctx, limits, Constraint(grammar), base=DETECT_OPTIONS)
    sources = ImageSources(limits, state.options.allow_remote_images, state.options.allow_private_image_hosts)
    knobs = body.image_settings.changes() if body.image_settings is not None else {}
    settings = state.model.image_settings(**knobs)  # a bad knob is a 400 before anything is queued
    checked = await run_in_threadpool(image_bytes, body.image, sources, "image")
    part: dict[str, Any] = {"type": "image", "image": checked}
    messages = [{"role": "user", "content": [part, {"type": "text", "text": detection_prompt(body.query)}]}]
    completion: Completion | None = None
    async with cancel_on_disconnect(request, scope.cancelled):
        reservation = await decode_images(decoder, messages, scope)
        try:
            job = GenerationJob(state, messages, options, RenderOptions(), scope, settings)
            async for event in state.worker.run(job, scope.cancelled):
                completion = event if isinstance(event, Completion) else completion
        finally:
            reservation.release()
    if completion is None:  # the client went away; nobody reads this
        return Response(status_code=499)
    height, width = part["image"].shape[:2]  # the decoded, EXIF-rotated image the boxes are in
    found = parse_detections(completion.message.content, (width, height))
    width, height = found.image_size
    return JSONResponse(
        {
            "object": "detection",
            "model": state.options.model_id,
            "query": body.query,
            "width": width,
            "height": height,
            "boxes": [box.to_dict() for box in found.boxes],
            "text": found.raw,
            "errors": list(found.errors),
        }
    )
