"""What the routes share: the model, its worker and the server's options."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lfm_edge.errors import RequestError
from lfm_edge.model import Model
from lfm_edge.parse import TOOL_CALL_END, TOOL_CALL_START
from lfm_edge.server.options import ServerOptions
from lfm_edge.server.worker import ModelWorker


def tool_markers(model: Model) -> tuple[int, int] | None:
    """The token ids of <|tool_call_start|> and <|tool_call_end|>, when each is one token of the vocabulary."""
    start, end = model.text.tokenize(TOOL_CALL_START), model.text.tokenize(TOOL_CALL_END)
    return (start[0], end[0]) if len(start) == 1 and len(end) == 1 else None


@dataclass
class ServerState:
    model: Model
    options: ServerOptions
    worker: ModelWorker
    tool_markers: tuple[int, int] | None
    started: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def create(cls, model: Model, options: ServerOptions) -> ServerState:
        # As many jobs run at once as the model has slots (lfm-edge serve --parallel N loads N), decoded together.
        worker = ModelWorker(options.limits.max_queue, options.limits.retry_after_s, len(model.engine.slots))
        return cls(model, options, worker, tool_markers(model))

    @property
    def n_ctx(self) -> int:
        return self.model.text.n_ctx

    def check_model(self, name: str | None) -> None:
        if name is not None and name not in self.options.model_ids:
            raise RequestError(
                f"model {name!r} is not served here; this server serves {self.options.model_id!r} (see GET "
                "/v1/models), or start it with --alias NAME to accept another name",
                404,
                "model_not_found",
                "model",
            )
