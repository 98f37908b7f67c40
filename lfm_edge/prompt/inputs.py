"""What transformers' ``apply_chat_template`` does to the messages and tools before the template sees them.

Reproduced from transformers 5.23 (``tokenization_utils_base.apply_chat_template`` and
``chat_template_utils.render_jinja_template``), in the same order:

1. message keys whose value is None are dropped (OpenAI-style ``content: None`` next to ``tool_calls``);
2. every value is rebuilt from plain JSON types (``_plain_template_data``): rich objects such as images become an
   inert ``"<TypeName>"`` string, so the sandboxed template never holds an object with dangerous methods;
3. ``reasoning_content`` / ``reasoning`` are copied into ``thinking`` (an explicit ``thinking`` wins);
4. with ``continue_final_message``, the final message is tagged so the rendered text can be cut right after it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lfm_edge.errors import PromptError
from lfm_edge.prompt.tool_schema import json_schema_for

# Names a message's reasoning is passed under, in transformers' order of preference.
REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
# transformers appends this to the text being continued, renders, then cuts the output where it lands.
CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


# Subclasses of these (enums, numpy scalars...) can carry extra methods, so they are cut back to the base type.
_SCALAR_BASES: tuple[tuple[type, Any], ...] = ((str, str.__str__), (int, int.__int__), (float, float.__float__))


def plain_template_data(value: Any) -> Any:
    """``value`` rebuilt from str/int/float/bool/None, dicts, lists and tuples; anything else becomes ``"<Type>"``."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    for base, to_base in _SCALAR_BASES:
        if isinstance(value, base):
            return to_base(value)
    if isinstance(value, Mapping):
        return {plain_template_data(key): plain_template_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_template_data(item) for item in value]
    if isinstance(value, tuple):
        return tuple(plain_template_data(item) for item in value)
    return _plain_object(value)


def _plain_object(value: Any) -> Any:
    if isinstance(value, np.generic):
        # np.bool_(False) would otherwise become a truthy placeholder string.
        return plain_template_data(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_template_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):  # pydantic models
        return plain_template_data(model_dump())
    return f"<{type(value).__name__}>"


def prepare_messages(messages: Sequence[Mapping[str, Any]], *, drop_none_values: bool) -> list[dict[str, Any]]:
    """Validated, plain copies of ``messages`` with the reasoning aliases filled in (the caller's are untouched)."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise PromptError(
            f"messages must be a list of message dicts, got {type(messages).__name__}; "
            'pass e.g. [{"role": "user", "content": "Hi"}]'
        )
    if not messages:
        raise PromptError("messages is empty; pass at least one message, e.g. [{'role': 'user', 'content': 'Hi'}]")
    prepared = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise PromptError(
                f"messages[{index}] is a {type(message).__name__} ({message!r:.80}), not a dict; "
                "every message must be a dict with 'role' and 'content'"
            )
        # Many templates crash on content=None but handle a missing key (apply_chat_template drops them too).
        kept = {key: value for key, value in message.items() if value is not None or not drop_none_values}
        prepared.append(_alias_reasoning(plain_template_data(kept)))
    return prepared


def _alias_reasoning(message: dict[str, Any]) -> dict[str, Any]:
    reasoning = next((message[key] for key in REASONING_FIELDS if message.get(key) is not None), None)
    if reasoning is None:
        return message
    return {"thinking": reasoning, **message, "reasoning_content": reasoning}


def prepare_tools(tools: Sequence[Any] | None) -> list[Any] | None:
    """Tool dicts as given, Python functions as their JSON schema (transformers' get_json_schema), all plain."""
    if tools is None:
        return None
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise PromptError(
            f"tools must be a list of tool dicts or Python functions, got {type(tools).__name__}; "
            "wrap a single tool in a list"
        )
    schemas = []
    for index, tool in enumerate(tools):
        if isinstance(tool, Mapping):
            schemas.append(tool)
        elif inspect.isfunction(tool) or inspect.ismethod(tool):
            schemas.append(json_schema_for(tool))
        else:
            raise PromptError(
                f"tools[{index}] is a {type(tool).__name__}, which is neither a JSON-schema dict nor a Python "
                "function; pass a dict such as {'type': 'function', 'function': {...}} or a def with type hints "
                "and a Google-style docstring"
            )
    result: list[Any] = plain_template_data(schemas)
    return result


def tag_final_message(messages: list[dict[str, Any]], field_name: str, template_source: str) -> str:
    """Append CONTINUE_TAG to the final message's ``field_name`` (in place); returns the text being continued."""
    final = messages[-1]
    final_value = final.get(field_name)
    if final_value is None:
        raise PromptError(
            f"continue_final_message is set but the final message has no {field_name!r} to continue; "
            f"give the last message a {field_name!r} or set continue_final_message=False"
        )
    fields = [field_name]
    if field_name in REASONING_FIELDS:
        # Reasoning is copied under several names, so every copy is tagged and the template may read any of them.
        fields = [name for name in REASONING_FIELDS if final.get(name) == final_value]
    if not any(name in template_source for name in fields):
        raise PromptError(
            f"continue_final_message names {field_name!r}, which this chat template never reads; "
            "continue 'content' instead"
        )
    if isinstance(final_value, (list, tuple)):
        return _tag_last_text_block(final_value)
    if not isinstance(final_value, str):
        raise PromptError(
            f"continue_final_message needs text, but the final message's {field_name!r} is a "
            f"{type(final_value).__name__}; make it a string or a list of content blocks"
        )
    for name in fields:
        final[name] = final[name] + CONTINUE_TAG
    return final_value


def _tag_last_text_block(blocks: list[Any] | tuple[Any, ...]) -> str:
    for block in reversed(blocks):
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            text: str = block["text"]
            block["text"] = text + CONTINUE_TAG
            return text
    raise PromptError(
        "continue_final_message is set but the final message has no text block to continue; "
        'add a {"type": "text", "text": ...} block'
    )


def cut_after_final_message(rendered: str, final_text: str) -> str:
    """The rendered chat up to where the tagged final message ends (transformers' continue_final_message cut)."""
    if final_text.strip() not in rendered or CONTINUE_TAG.strip() not in rendered:
        raise PromptError(
            "continue_final_message is set but the chat template dropped part of the final message "
            f"({final_text.strip()!r:.80}); continue a message the template writes unchanged"
        )
    tag_start = rendered.rindex(CONTINUE_TAG.strip())
    if rendered[tag_start : tag_start + len(CONTINUE_TAG)] == CONTINUE_TAG:
        return rendered[:tag_start]
    # The template trimmed the space after the tag, so it may have trimmed the message's trailing spaces too.
    return rendered[:tag_start].rstrip()
