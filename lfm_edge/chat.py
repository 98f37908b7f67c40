"""A multi-turn conversation with one Model: the history is re-rendered through the chat template each turn, and
the engine evaluates only what is new (the previous reply is already in the context)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from lfm_edge.generation import Completion, GenerationOptions, TextStream
from lfm_edge.image.settings import ProcessorSettings

if TYPE_CHECKING:
    from lfm_edge.model import Model


class Chat:
    def __init__(
        self,
        model: Model,
        system: str | None = None,
        options: GenerationOptions | None = None,
        settings: ProcessorSettings | None = None,
    ) -> None:
        self.model = model
        self.settings = settings
        self.system = system
        self.options = options or GenerationOptions()
        self._history: list[dict[str, Any]] = []
        self.last: Completion | None = None

    @property
    def history(self) -> list[dict[str, Any]]:
        """The messages so far (system first when set), as given to the chat template."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, *self._history]

    def reset(self) -> None:
        self._history = []
        self.last = None

    def stream(self, text: str, images: Sequence[Any] = (), options: GenerationOptions | None = None) -> TextStream:
        content: list[dict[str, Any]] = [{"type": "image", "image": image} for image in images]
        content.append({"type": "text", "text": text})
        user = {"role": "user", "content": content}
        inner = self.model.stream_messages([*self.history, user], options or self.options, None, self.settings)
        outer = TextStream(iter(()))
        outer._pieces = self._record(inner, user, outer)
        return outer

    def _record(self, inner: TextStream, user: dict[str, Any], outer: TextStream) -> Iterator[str]:
        yield from inner
        completion = inner.completion
        if completion is not None:  # a turn counts once its reply is complete
            self._history.extend([user, {"role": "assistant", "content": completion.text}])
            self.last = outer.completion = completion

    def send(self, text: str, images: Sequence[Any] = (), options: GenerationOptions | None = None) -> Completion:
        stream = self.stream(text, images, options)
        stream.text()
        assert stream.completion is not None
        return stream.completion
