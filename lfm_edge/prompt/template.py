"""Chat prompts from the model's own chat template, rendered exactly as transformers' ``apply_chat_template`` does.

The template text comes from the GGUF metadata (``tokenizer.chat_template``) and is untrusted code: it is compiled
once into a sandbox (see ``sandbox.py``), and anything it does wrong, from ``raise_exception`` to touching
``''.__class__``, surfaces as a PromptError; the ChatTemplate stays usable afterwards.

"BOS handled once": the LFM2 templates write ``bos_token`` as text at the very start, and transformers encodes the
result with ``add_special_tokens=False``. Tokenize a rendered prompt with llama.cpp's ``add_bos=False`` (special
tokens parsed), or pass it through :func:`strip_leading_bos` and tokenize with ``add_bos=True``; never both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Template, TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError

from lfm_edge.errors import PromptError
from lfm_edge.prompt.inputs import (
    cut_after_final_message,
    plain_template_data,
    prepare_messages,
    prepare_tools,
    tag_final_message,
)
from lfm_edge.prompt.sandbox import RenderState, active_render_state, new_environment

log = logging.getLogger(__name__)

# The GGUF metadata key llama.cpp's converter writes the tokenizer's chat template under.
GGUF_CHAT_TEMPLATE_KEY = "tokenizer.chat_template"
# Template variables the renderer sets itself; RenderOptions.extra may not override them.
RESERVED_VARIABLES = frozenset({"messages", "tools", "add_generation_prompt", "continue_final_message"})


@dataclass(frozen=True)
class RenderOptions:
    """How to render one chat.

    ``tools``: JSON-schema dicts (bare or OpenAI ``{"type": "function", "function": ...}`` shape) or Python functions
    with type hints and a Google-style docstring (converted like transformers' ``get_json_schema``).
    ``extra``: more template variables, e.g. ``{"keep_past_thinking": True}``; they override bos/eos_token.
    ``now``: the date ``strftime_now`` reports (the LFM2.5 template writes it next to the tools); None = the clock.
    ``continue_final_message``: leave the final message open so the model continues it (True continues its
    ``content``, a string names another field); needs ``add_generation_prompt=False``.
    ``drop_none_values``: drop message keys whose value is None, as ``apply_chat_template`` does; False renders as
    transformers' raw ``render_jinja_template``.
    """

    add_generation_prompt: bool = True
    tools: Sequence[Mapping[str, Any] | Callable[..., Any]] | None = None
    extra: Mapping[str, Any] | None = None
    now: datetime | None = None
    continue_final_message: bool | str = False
    drop_none_values: bool = True


@dataclass(frozen=True)
class RenderedPrompt:
    """A rendered chat and the ``[start, end)`` character spans of its ``{% generation %}`` blocks."""

    text: str
    generation_spans: tuple[tuple[int, int], ...]


class ChatTemplate:
    """One chat template, compiled once; render it as often as needed, from any thread."""

    def __init__(self, source: str, *, bos_token: str = "<|startoftext|>", eos_token: str = "<|im_end|>") -> None:
        if not isinstance(source, str) or not source.strip():
            raise PromptError(
                f"chat template must be non-empty Jinja text, got {source!r:.80}; read it from the GGUF key "
                f"{GGUF_CHAT_TEMPLATE_KEY!r} or the checkpoint's chat_template.jinja"
            )
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        try:
            self._template: Template = new_environment().from_string(source)
        except TemplateSyntaxError as exc:
            raise PromptError(
                f"chat template does not compile: line {exc.lineno}: {exc.message}; fix the template text"
            ) from exc

    def render(self, messages: Sequence[Mapping[str, Any]], options: RenderOptions | None = None) -> str:
        """The prompt text for ``messages``; byte-identical to ``apply_chat_template(..., tokenize=False)``."""
        return self.render_with_spans(messages, options).text

    def generation_spans(
        self, messages: Sequence[Mapping[str, Any]], options: RenderOptions | None = None
    ) -> tuple[tuple[int, int], ...]:
        """Where the assistant turns (the ``{% generation %}`` blocks) are in ``render(messages, options)``."""
        return self.render_with_spans(messages, options).generation_spans

    def render_with_spans(
        self, messages: Sequence[Mapping[str, Any]], options: RenderOptions | None = None
    ) -> RenderedPrompt:
        """The prompt text and its generation spans, from one render."""
        options = options or RenderOptions()
        continuing = _continue_field(options)
        chat = prepare_messages(messages, drop_none_values=options.drop_none_values)
        final_text = tag_final_message(chat, continuing, self.source) if continuing else None
        variables = self._variables(chat, options)
        state = RenderState(now=_clock(options.now))
        text = self._run(variables, state)
        if final_text is None:
            return RenderedPrompt(text, tuple(state.generation_spans))
        text = cut_after_final_message(text, final_text)
        # The cut removes the tag and whatever followed it, so the last span may end early.
        spans = tuple((min(start, len(text)), min(end, len(text))) for start, end in state.generation_spans)
        return RenderedPrompt(text, spans)

    def _variables(self, chat: list[dict[str, Any]], options: RenderOptions) -> dict[str, Any]:
        extra = dict(options.extra or {})
        clashes = sorted(RESERVED_VARIABLES.intersection(extra))
        if clashes:
            raise PromptError(
                f"RenderOptions.extra sets {clashes}, which the renderer sets itself; use the RenderOptions fields"
            )
        # transformers passes the tokenizer's special tokens first, so caller variables override them.
        variables = plain_template_data({"bos_token": self.bos_token, "eos_token": self.eos_token, **extra})
        variables.setdefault("documents", None)
        variables.update(
            messages=chat,
            tools=prepare_tools(options.tools),
            add_generation_prompt=options.add_generation_prompt,
        )
        result: dict[str, Any] = variables
        return result

    def _run(self, variables: dict[str, Any], state: RenderState) -> str:
        pieces: list[str] = []
        try:
            with active_render_state(state):
                for piece in self._template.generate(variables):
                    pieces.append(piece)
                    # {% generation %} measures its start from the output produced so far.
                    state.rendered_length += len(piece)
        except Exception as exc:  # templates are code: any Python error can come out of one
            log.debug("chat template raised", exc_info=True)
            raise _as_prompt_error(exc) from exc
        return "".join(pieces)


def _as_prompt_error(exc: Exception) -> PromptError:
    if isinstance(exc, SecurityError):
        return PromptError(f"the chat template tried to leave its sandbox ({exc}); use the model's own template")
    if isinstance(exc, TemplateError):
        # raise_exception(...) in the template, or an undefined value used (e.g. a missing key in a tool call).
        return PromptError(
            f"the chat template rejected the chat: {exc}; fix the messages or tools (tool-call arguments must be "
            "dicts, not JSON strings; tool calls need a 'function' key; text items need a 'text' key)"
        )
    return PromptError(
        f"the chat template failed on this chat ({type(exc).__name__}: {exc}); check the message contents "
        "(strings or lists of content blocks) and the tool calls (arguments as dicts)"
    )


def _continue_field(options: RenderOptions) -> str | None:
    value = options.continue_final_message
    if not value:
        return None
    if options.add_generation_prompt:
        raise PromptError(
            "continue_final_message and add_generation_prompt are both set; set add_generation_prompt=False to "
            "continue the final message, or drop continue_final_message to start a new assistant turn"
        )
    return value if isinstance(value, str) else "content"


def _clock(now: datetime | None) -> Callable[[], datetime]:
    if now is None:
        return datetime.now
    return lambda: now


def strip_leading_bos(prompt: str, bos_token: str) -> str:
    """``prompt`` without the one BOS text the template wrote at its start, for tokenizers that add BOS themselves.

    Only the first occurrence is removed: a second BOS would be in the conversation itself and must stay.
    """
    if bos_token and prompt.startswith(bos_token):
        return prompt[len(bos_token) :]
    return prompt


def starts_with_bos(prompt: str, bos_token: str) -> bool:
    """Whether the rendered prompt already carries BOS as text (then tokenize with add_bos=False)."""
    return bool(bos_token) and prompt.startswith(bos_token)


def template_source_from_metadata(metadata: Mapping[str, Any]) -> str:
    """The chat template stored in a GGUF file's metadata (e.g. llama-cpp-python's ``Llama.metadata``)."""
    source = metadata.get(GGUF_CHAT_TEMPLATE_KEY)
    if not isinstance(source, str) or not source.strip():
        raise PromptError(
            f"the GGUF metadata has no {GGUF_CHAT_TEMPLATE_KEY!r}; reconvert the model with lfm-edge convert "
            "(it copies the checkpoint's chat_template.jinja) or pass the template text yourself"
        )
    return source
