"""Python functions as tool JSON schemas, the way transformers' ``get_json_schema`` (5.23) builds them.

The schema comes from the type hints and a Google-style docstring::

    def get_weather(city: str, days: int = 1):
        '''Get the forecast.

        Args:
            city: City name
            days: How many days (choices: [1, 3, 7])
        '''

gives ``{"type": "function", "function": {"name": "get_weather", "description": "Get the forecast.", "parameters":
{"type": "object", "properties": {...}, "required": ["city"]}}}``. Key order matters: the template writes it with
``tojson``. Supported hints: int, float, str, bool, None, Any, list, tuple, dict, their subscripted forms, unions
(``X | None`` adds ``"nullable": true``), Literal and Enum classes. transformers also maps PIL images and torch
tensors; those make no sense for this model's tools and raise here.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import types
from collections.abc import Callable
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from lfm_edge.errors import PromptError

# Same patterns as transformers, so descriptions are cut at exactly the same places.
_DESCRIPTION_RE = re.compile(r"^(.*?)[\n\s]*(Args:|Returns:|Raises:|\Z)", re.DOTALL)
_ARGS_RE = re.compile(r"\n\s*Args:\n(.*?)[\n\s]*(Returns:|Raises:|\Z)", re.DOTALL)
_ARGS_SPLIT_RE = re.compile(
    r"""
(?:^|\n)  # the start of the args block, or a newline
([ \t]*)(\w+):\s*  # indentation and argument name
(.*?)\s*  # the description, possibly over several lines
(?=\n(?!\1[ \t])[ \t]*\w+:|\Z)  # up to the next "name:" that is not indented deeper, or the end
""",
    re.DOTALL | re.VERBOSE,
)
_RETURNS_RE = re.compile(r"\n\s*Returns:\n\s*(.*?)[\n\s]*(Raises:|\Z)", re.DOTALL)
_CHOICES_RE = re.compile(r"\(choices:\s*(.*?)\)\s*$", re.IGNORECASE)

_JSON_SCALAR_TYPES: dict[type, str] = {int: "integer", float: "number", str: "string", bool: "boolean"}
_JSON_SCALAR_TYPES[type(None)] = "null"
_BARE_TYPES: dict[Any, dict[str, Any]] = {
    **{python_type: {"type": name} for python_type, name in _JSON_SCALAR_TYPES.items()},
    list: {"type": "array"},
    tuple: {"type": "array"},
    dict: {"type": "object"},
    Any: {},
}


def json_schema_for(func: Callable[..., Any]) -> dict[str, Any]:
    """The OpenAI-shape tool schema of ``func``; PromptError naming the function and what to add if it can't."""
    name = getattr(func, "__name__", "operation")
    doc = inspect.getdoc(func)
    if not doc:
        raise PromptError(f"tool function {name!r} has no docstring; add a Google-style docstring with an Args: block")
    description, arg_descriptions, returns_doc = _parse_docstring(doc.strip())
    parameters = _parameters_schema(func, name)
    return_schema = parameters["properties"].pop("return", None)
    if return_schema is not None and returns_doc is not None:
        return_schema["description"] = returns_doc
    for arg, schema in parameters["properties"].items():
        if arg not in arg_descriptions:
            raise PromptError(f"tool function {name!r}: the docstring's Args: block does not describe {arg!r}")
        _describe(schema, arg_descriptions[arg])
    output: dict[str, Any] = {"name": name, "description": description, "parameters": parameters}
    if return_schema is not None:
        output["return"] = return_schema
    return {"type": "function", "function": output}


def _describe(schema: dict[str, Any], text: str) -> None:
    choices = _CHOICES_RE.search(text)
    if choices:
        try:
            values = json.loads(choices.group(1))
        except json.JSONDecodeError as exc:
            raise PromptError(f"tool argument choices {choices.group(1)!r} are not a JSON list: {exc}") from exc
        schema["enum"] = [value.strip() if isinstance(value, str) else value for value in values]
        text = text[: choices.start()].strip()
    schema["description"] = text


def _parse_docstring(doc: str) -> tuple[str | None, dict[str, str], str | None]:
    description_match = _DESCRIPTION_RE.search(doc)
    args_match = _ARGS_RE.search(doc)
    returns_match = _RETURNS_RE.search(doc)
    description = description_match.group(1).strip() if description_match else None
    returns = returns_match.group(1).strip() if returns_match else None
    arg_descriptions: dict[str, str] = {}
    if args_match:
        block = "\n".join(line for line in args_match.group(1).split("\n") if line.strip())
        for match in _ARGS_SPLIT_RE.findall(block):
            arg_descriptions[match[1]] = re.sub(r"\s*\n+\s*", " ", match[2].strip())
    return description, arg_descriptions, returns


def _parameters_schema(func: Callable[..., Any], name: str) -> dict[str, Any]:
    try:
        hints = get_type_hints(func)
    except Exception as exc:  # a hint naming something undefined raises NameError, others TypeError
        raise PromptError(f"tool function {name!r}: its type hints cannot be resolved ({exc})") from exc
    parameters = inspect.signature(func).parameters
    # A method's unannotated self/cls is the receiver, not an argument the model fills in.
    first = next(iter(parameters), None)
    receiver = first if first in {"self", "cls"} and parameters[first].annotation is inspect.Parameter.empty else None
    required = []
    for param_name, param in parameters.items():
        if param_name == receiver:
            continue
        if param.annotation is inspect.Parameter.empty:
            raise PromptError(f"tool function {name!r}: argument {param_name!r} has no type hint; add one")
        if param.default is inspect.Parameter.empty:
            required.append(param_name)
    properties: dict[str, Any] = {}
    for param_name, hint in hints.items():
        if param_name == receiver:
            continue
        if param_name != "return":
            properties[param_name] = _hint_schema(hint, name)
            continue
        # The model never writes the return value, so an unconvertible return hint is left out, not an error.
        with contextlib.suppress(PromptError):
            properties["return"] = _hint_schema(hint, name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _hint_schema(hint: Any, func_name: str) -> dict[str, Any]:
    origin, args = get_origin(hint), get_args(hint)
    if origin is None:
        return _bare_hint_schema(hint, func_name)
    if origin is Union or origin is types.UnionType:
        return _union_schema(args, func_name)
    if origin is Literal and args:
        return _enum_schema(list(args), f"Literal{list(args)}", func_name)
    if origin is list:
        return {"type": "array", "items": _hint_schema(args[0], func_name)} if args else {"type": "array"}
    if origin is tuple:
        return _tuple_schema(hint, args, func_name)
    if origin is dict:
        schema: dict[str, Any] = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = _hint_schema(args[1], func_name)
        return schema
    raise _unsupported(hint, func_name)


def _bare_hint_schema(hint: Any, func_name: str) -> dict[str, Any]:
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum_schema([member.value for member in hint], hint.__name__, func_name)
    try:
        schema = _BARE_TYPES.get(hint)
    except TypeError:  # unhashable hint objects
        schema = None
    if schema is None:
        raise _unsupported(hint, func_name)
    return dict(schema)


def _union_schema(args: tuple[Any, ...], func_name: str) -> dict[str, Any]:
    subtypes = [_hint_schema(arg, func_name) for arg in args if arg is not type(None)]
    schema: dict[str, Any]
    if len(subtypes) == 1:
        schema = subtypes[0]
    elif all(sub.keys() == {"type"} and isinstance(sub["type"], str) for sub in subtypes):
        names = sorted({sub["type"] for sub in subtypes})
        schema = {"type": names[0] if len(names) == 1 else names}
    else:
        schema = {"anyOf": subtypes}
    if type(None) in args:
        schema["nullable"] = True
    return schema


def _tuple_schema(hint: Any, args: tuple[Any, ...], func_name: str) -> dict[str, Any]:
    if not args:
        return {"type": "array"}
    if len(args) == 1 or ... in args:
        raise PromptError(
            f"tool function {func_name!r}: {hint} is not converted to a JSON schema; use list[...] for "
            "variable-length arguments or a plain type for a single value"
        )
    return {"type": "array", "prefixItems": [_hint_schema(arg, func_name) for arg in args]}


def _enum_schema(values: list[Any], what: str, func_name: str) -> dict[str, Any]:
    if not values:
        raise PromptError(f"tool function {func_name!r}: {what} has no members, so no value could match it")
    if any(type(value) not in _JSON_SCALAR_TYPES for value in values):
        raise PromptError(
            f"tool function {func_name!r}: {what} has values {values!r}; enum values must be int, float, str, "
            "bool or None"
        )
    # One JSON type per distinct Python type, in order of first appearance.
    value_types = list(dict.fromkeys(_JSON_SCALAR_TYPES[type(value)] for value in values))
    return {"type": value_types[0] if len(value_types) == 1 else value_types, "enum": values}


def _unsupported(hint: Any, func_name: str) -> PromptError:
    return PromptError(
        f"tool function {func_name!r}: the type hint {hint!r} has no JSON-schema equivalent; use int, float, str, "
        "bool, list, dict, Literal, an Enum or unions of those, or pass the tool as a JSON-schema dict"
    )
