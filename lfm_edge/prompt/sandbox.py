"""The Jinja environment chat templates run in: jinja2's ImmutableSandboxedEnvironment plus what transformers adds.

Mirrors ``transformers.utils.chat_template_utils._cached_compile_jinja_template`` (5.23): ``trim_blocks`` and
``lstrip_blocks``, the ``loopcontrols`` extension, the ``{% generation %}`` block, and the globals and filters
``tojson``, ``raise_exception``, ``strftime_now``, ``dict`` and ``namespace``. Chat templates are untrusted code
(they ship inside model files), so the one deliberate difference is stricter: touching an unsafe attribute such as
``''.__class__`` or ``messages.append`` raises at once instead of rendering as an empty string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from lfm_edge.errors import PromptError

# jinja2 < 3.1.6 has known sandbox escapes (transformers refuses them for the same reason).
MIN_JINJA2_VERSION = (3, 1, 6)


@dataclass
class RenderState:
    """What one render needs beyond the template variables: the clock and the {% generation %} span recorder.

    Held in a ContextVar rather than on the environment so that one compiled template can render in several threads.
    """

    now: Callable[[], datetime]
    rendered_length: int = 0
    generation_spans: list[tuple[int, int]] = field(default_factory=list)


_STATE: ContextVar[RenderState | None] = ContextVar("lfm_edge_prompt_render_state", default=None)


@contextmanager
def active_render_state(state: RenderState) -> Iterator[RenderState]:
    """Make ``state`` the one strftime_now and {% generation %} see, for the duration of one render."""
    token = _STATE.set(state)
    try:
        yield state
    finally:
        # Reset even when the template raised, so the next render starts clean.
        _STATE.reset(token)


class GenerationBlock(Extension):
    """``{% generation %}...{% endgeneration %}``: renders its body unchanged and records where it landed.

    Like transformers' AssistantTracker, the start offset is the length of the output yielded so far, which is
    exact when the block sits at the template's top level (inside a loop is fine, inside a macro is not).
    """

    tags = {"generation"}  # noqa: RUF012 - the attribute jinja2's Extension declares as a mutable set

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller: Callable[[], str]) -> str:
        text = caller()
        state = _STATE.get()
        if state is not None:
            start = state.rendered_length
            state.generation_spans.append((start, start + len(text)))
        return text


def tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """transformers' tojson: plain ``json.dumps`` (Jinja's own filter would HTML-escape ``<``, ``>``, ``&``, ``'``)."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message: object) -> NoReturn:
    """Lets a template reject its input; the renderer turns this into a PromptError carrying ``message``."""
    raise TemplateError(str(message))


def strftime_now(format_string: str) -> str:
    """The current time of the active render's clock (a frozen one in tests), formatted with ``strftime``."""
    state = _STATE.get()
    now = state.now() if state is not None else datetime.now()
    return now.strftime(format_string)


class TemplateDict:
    """``dict`` for templates: builds dicts but exposes no class, so attribute tricks lead nowhere."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


class TemplateNamespace(Namespace):
    """``namespace()`` that refuses underscore names, which could shadow the object's internals."""

    # No named self: jinja2's own trick, so that namespace(self=1) still works.
    def __init__(*args: Any, **kwargs: Any) -> None:
        self, rest = args[0], args[1:]
        attrs = dict(*rest, **kwargs)
        for name in attrs:
            TemplateNamespace.check_name(name)
        Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        TemplateNamespace.check_name(name)
        Namespace.__setitem__(self, name, value)

    @staticmethod
    def check_name(name: object) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise SecurityError(f"a chat template may not store the underscore name {name!r} on a namespace")


class StrictSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, except that touching an unsafe attribute (dunders, mutating methods) raises at once."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        if attribute.startswith("_") and not attribute.startswith("__"):
            # Usually a missing dict key such as message['_meta'] tested with `is defined`: stay undefined.
            return super().unsafe_undefined(obj, attribute)
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


def _jinja2_version() -> tuple[int, ...]:
    parts = []
    for piece in jinja2.__version__.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def new_environment() -> StrictSandbox:
    """A fresh sandbox configured the way transformers configures its own (one per ChatTemplate)."""
    if _jinja2_version() < MIN_JINJA2_VERSION:
        raise PromptError(
            f"jinja2 {jinja2.__version__} has known sandbox escapes; install jinja2>=3.1.6 to render chat templates"
        )
    env = StrictSandbox(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env
