"""A multi-turn conversation with one Model: the history is re-rendered through the chat template each turn, and
the engine evaluates only what is new (the previous reply is already in the context).

With tools, the model's tool calls come back parsed (`Completion.message.tool_calls`), the tool-call markup is kept
out of the streamed text, and `run_tools` can execute registered Python callables and feed their results back until
the model answers in text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lfm_edge.conversation import VERBATIM_END, VERBATIM_START, verbatim
from lfm_edge.errors import ConfigError
from lfm_edge.generation import Completion, GenerationOptions, TextStream
from lfm_edge.image.settings import ProcessorSettings
from lfm_edge.parse import ToolCall, ToolCallStreamFilter
from lfm_edge.prompt import RenderOptions

if TYPE_CHECKING:
    from lfm_edge.model import Model

log = logging.getLogger(__name__)
Tool = Mapping[str, Any] | Callable[..., Any]


class Chat:
    def __init__(
        self,
        model: Model,
        system: str | None = None,
        options: GenerationOptions | None = None,
        settings: ProcessorSettings | None = None,
        tools: Sequence[Tool] | None = None,
    ) -> None:
        self.model = model
        self.system = system
        self.options = options or GenerationOptions()
        self.settings = settings
        self.tools = list(tools) if tools else None
        self._history: list[dict[str, Any]] = []
        self.last: Completion | None = None

    @property
    def history(self) -> list[dict[str, Any]]:
        """The messages so far (system first when set), as given to the chat template."""
        return [{**m, "content": _unmarked(m["content"])} for m in self._prompt_history()]

    def _prompt_history(self) -> list[dict[str, Any]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, *self._history]

    def reset(self) -> None:
        self._history = []
        self.last = None

    def stream(self, text: str, images: Sequence[Any] = (), options: GenerationOptions | None = None) -> TextStream:
        """Sends a user message; iterate for the reply's visible text (tool-call markup withheld)."""
        content: list[dict[str, Any]] = [{"type": "image", "image": image} for image in images]
        content.append({"type": "text", "text": text})
        return self._reply([{"role": "user", "content": content}], options)

    def send(self, text: str, images: Sequence[Any] = (), options: GenerationOptions | None = None) -> Completion:
        return _finish(self.model, self.stream(text, images, options))

    def add_tool_result(self, result: Any) -> None:
        """Appends a role "tool" message (non-strings as JSON), answering the last reply's tool call(s)."""
        content = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)
        self._history.append({"role": "tool", "content": content})

    def resume(self, options: GenerationOptions | None = None) -> Completion:
        """Generates the next assistant turn without a new user message (after tool results)."""
        return _finish(self.model, self._reply([], options))

    def run_tools(self, text: str, functions: Mapping[str, Callable[..., Any]], max_rounds: int = 4) -> Completion:
        """Sends `text`; while the reply calls tools (at most max_rounds times), runs them and sends the results."""
        if max_rounds < 1:
            raise ConfigError(f"max_rounds={max_rounds} must be >= 1")
        reply = self.send(text)
        for _ in range(max_rounds):
            if not reply.message.tool_calls:
                return reply
            for call in reply.message.tool_calls:
                self.add_tool_result(_call_tool(call, functions))
            reply = self.resume()
        return reply

    def _reply(self, new: list[dict[str, Any]], options: GenerationOptions | None) -> TextStream:
        render = RenderOptions(tools=self.tools)
        history = self._prompt_history()
        inner = self.model.stream_messages([*history, *new], options or self.options, render, self.settings)
        outer = TextStream(iter(()), inner.stop_event)
        outer._pieces = self._record(inner, new, outer)
        return outer

    def _record(self, inner: TextStream, new: list[dict[str, Any]], outer: TextStream) -> Iterator[str]:
        visible = ToolCallStreamFilter()
        for piece in inner:
            shown = visible.feed(piece)
            if shown:
                yield shown
        tail = visible.flush().content
        if tail:
            yield tail
        completion = inner.completion
        if completion is not None:  # a turn counts once its reply is complete
            self._history.extend([*new, self._assistant_message(completion)])
            self.last = outer.completion = completion

    def _assistant_message(self, completion: Completion) -> dict[str, Any]:
        """The reply as the history keeps it. Text that would tokenize differently with special tokens parsed (an
        `<image>` or `<|im_end|>` the model wrote) is kept verbatim: re-read as markers it would break the chat."""
        content = completion.message.content
        text = getattr(self.model, "text", None)  # any object with stream_messages() can drive a Chat (tests do)
        if content and text is not None and text.tokenize(content) != text.tokenize(content, special=False):
            content = verbatim(content)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if completion.message.tool_calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": dict(call.arguments)}}
                for call in completion.message.tool_calls
            ]
        return message


def _finish(model: Any, stream: TextStream) -> Completion:
    complete = getattr(model, "complete", None)  # Model.complete: concurrent callers take turns by slot
    if complete is not None:
        return complete(stream)  # type: ignore[no-any-return]
    stream.text()
    assert stream.completion is not None
    return stream.completion


def _unmarked(content: Any) -> Any:
    return content.replace(VERBATIM_START, "").replace(VERBATIM_END, "") if isinstance(content, str) else content


def _call_tool(call: ToolCall, functions: Mapping[str, Callable[..., Any]]) -> Any:
    function = functions.get(call.name)
    if function is None:
        return {"error": f"unknown tool {call.name!r}; available: {sorted(functions)}"}
    try:
        return function(**call.arguments)
    except Exception as exc:  # a tool's failure is reported to the model, not raised into the chat loop
        log.warning("tool %s failed: %s", call.name, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}
