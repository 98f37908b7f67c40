"""A validated request -> what the model is asked to do: generation options (the model card's sampling defaults
for every field the request leaves out), render options (tools) and the output grammar."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from lfm_edge.errors import RequestError
from lfm_edge.generation import GenerationOptions
from lfm_edge.image.settings import ProcessorSettings
from lfm_edge.prompt import RenderOptions
from lfm_edge.server.grammars import request_grammar, response_format_grammar, tool_call_grammar
from lfm_edge.server.options import Limits
from lfm_edge.server.schema import ChatRequest, NamedToolChoice, SamplingFields

_SAMPLING_FIELDS = ("temperature", "top_p", "min_p", "top_k", "repetition_penalty", "presence_penalty",
                    "frequency_penalty", "seed")  # fmt: skip


@dataclass(frozen=True)
class ChatPlan:
    options: GenerationOptions
    render: RenderOptions
    settings: ProcessorSettings | None = None  # None: the model's own


def check_supported(request: ChatRequest) -> None:
    if request.n not in (None, 1):
        raise RequestError(f"n={request.n}: this server returns one choice per request (n=1)", 400, None, "n")
    if request.logprobs:
        raise RequestError("logprobs are not supported by this server", 400, None, "logprobs")


@dataclass(frozen=True)
class Constraint:
    """What the answer is held to beyond sampling: a GBNF grammar, and token ids it may never contain."""

    grammar: str | None = None
    banned: tuple[int, ...] = ()


def logit_bias(fields: SamplingFields, banned: tuple[int, ...] = ()) -> tuple[tuple[int, float], ...]:
    """OpenAI's {"token id": bias in [-100, 100]} as (id, bias) pairs, plus -inf for the `banned` ids."""
    pairs = []
    for key, bias in (fields.logit_bias or {}).items():
        if not key.isdigit() or len(key) > 9:
            raise RequestError(f"logit_bias key {key[:20]!r} is not a token id", 400, "invalid_value", "logit_bias")
        pairs.append((int(key), bias))
    return (*pairs, *((token, -math.inf) for token in banned))


def generation_options(fields: SamplingFields, n_ctx: int, limits: Limits, constraint: Constraint = Constraint(),
                       base: GenerationOptions | None = None) -> GenerationOptions:  # fmt: skip
    """The request's sampling fields over `base` (default: the model card's); max_tokens defaults to the context."""
    base = base or GenerationOptions(max_tokens=n_ctx)
    changes: dict[str, Any] = {
        name: getattr(fields, name) for name in _SAMPLING_FIELDS if getattr(fields, name) is not None
    }
    biases = logit_bias(fields, constraint.banned)
    sampling = dataclasses.replace(base.sampling, **changes, grammar=constraint.grammar, logit_bias=biases)
    stops = [fields.stop] if isinstance(fields.stop, str) else list(fields.stop or [])
    if len(stops) > limits.max_stop or not all(stops):
        raise RequestError(f"stop: give at most {limits.max_stop} non-empty strings", 400, "invalid_value", "stop")
    max_tokens = fields.max_completion_tokens or fields.max_tokens or base.max_tokens
    return GenerationOptions(max_tokens=min(max_tokens, n_ctx), stop=tuple(stops), sampling=sampling)


def plan_chat(request: ChatRequest, n_ctx: int, limits: Limits, markers: tuple[int, int] | None) -> ChatPlan:
    check_supported(request)
    tools = request.tools or []
    if len(tools) > limits.max_tools:
        raise RequestError(f"{len(tools)} tools is over the limit of {limits.max_tools}", 400, None, "tools")
    names = [tool.function.name for tool in tools]
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        raise RequestError(
            f"tool name {duplicated[0]!r} is given {names.count(duplicated[0])} times: each tool needs its own name",
            400,
            "invalid_value",
            f"tools[{len(names) - 1 - names[::-1].index(duplicated[0])}].function.name",
        )
    choice = request.tool_choice
    if choice is not None and choice != "none" and not tools:
        raise RequestError("tool_choice needs tools", 400, "invalid_value", "tool_choice")
    grammars = []
    if request.grammar is not None:
        grammars.append(request_grammar(request.grammar, limits))
    if request.response_format is not None and (grammar := response_format_grammar(request.response_format, limits)):
        grammars.append(grammar)
    if choice == "required" or isinstance(choice, NamedToolChoice):
        grammars.append(_forced_tool_grammar(request, markers, limits))
    if len(grammars) > 1:
        raise RequestError(
            "grammar, response_format and a forced tool_choice each constrain the whole answer: give one of them",
            400,
            "invalid_value",
        )
    # "none": the tools stay in the prompt (as OpenAI keeps them) and the tool-call marker is banned.
    silenced = choice == "none" and bool(tools)
    banned = (markers[0],) if silenced and markers is not None else ()
    options = generation_options(request, n_ctx, limits, Constraint(grammars[0] if grammars else None, banned))
    shown = [tool.model_dump(exclude_none=True) for tool in tools] if banned or not silenced else None
    return ChatPlan(options, RenderOptions(tools=shown or None))


def _forced_tool_grammar(request: ChatRequest, markers: tuple[int, int] | None, limits: Limits) -> str:
    if markers is None:
        raise RequestError("this model has no tool-call marker tokens, so tool_choice cannot be forced", 400)
    tools = request.tools or []
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        tools = [tool for tool in tools if tool.function.name == choice.function.name]
        if not tools:
            raise RequestError(
                f"tool_choice names {choice.function.name!r}, which is not among the tools",
                400,
                "invalid_value",
                "tool_choice",
            )
    return tool_call_grammar(tools, markers, request.parallel_tool_calls is False, limits)
