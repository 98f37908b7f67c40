"""The request bodies, in OpenAI's chat-completions shape (plus llama-server's and our documented extensions).

Strict types: a string where a number belongs is a 400, not silently converted. Unknown fields are ignored, as
OpenAI-compatible servers do, so clients that send `user` or `metadata` keep working; fields whose values would
change the answer in ways not supported here (n > 1, logprobs) are refused by `check_supported`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lfm_edge.errors import RequestError

NonEmpty = Annotated[str, Field(min_length=1)]
FunctionName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class ImageURL(_Body):
    url: NonEmpty
    detail: str | None = None


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ImagePart(_Body):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class FunctionCall(_Body):
    name: FunctionName
    arguments: str  # a JSON object, as OpenAI sends it


class ToolCallIn(_Body):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    reasoning_content: str | None = None


class FunctionDef(_Body):
    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Body):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Body):
    name: FunctionName


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_Body):
    name: str = "response"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Body):
    include_usage: bool = False


Probability = Annotated[float, Field(ge=0, le=1)]
Penalty = Annotated[float, Field(ge=-2, le=2)]


class SamplingFields(_Body):
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    min_p: Probability | None = None  # extension (llama-server)
    top_k: Annotated[int, Field(ge=0)] | None = None  # extension (llama-server)
    repetition_penalty: Annotated[float, Field(gt=0, le=10)] | None = None  # extension (vLLM)
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    seed: Annotated[int, Field(ge=0, lt=2**32)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: str | list[str] | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None  # {"token id": bias}


class ImageKnobs(_Body):
    """Extension: image-processor knobs for this request's images (the model's settings otherwise)."""

    min_image_tokens: Annotated[int, Field(ge=1, le=4096)] | None = None
    max_image_tokens: Annotated[int, Field(ge=1, le=4096)] | None = None
    min_tiles: Annotated[int, Field(ge=1, le=100)] | None = None
    max_tiles: Annotated[int, Field(ge=1, le=100)] | None = None
    do_image_splitting: bool | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ChatRequest(SamplingFields):
    model: str | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    grammar: str | None = None  # extension (llama-server): GBNF the answer must match
    return_tokens: bool = False  # extension (llama-server): the generated token ids in `tokens`
    image_settings: ImageKnobs | None = None  # extension: processor knobs for this request's images
    n: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool | None = None


class DetectRequest(SamplingFields):
    """POST /v1/detect (our extension): grounding with the model card's prompt, boxes in pixels."""

    model: str | None = None
    image: NonEmpty  # a data: URI, or an http(s) URL with --allow-remote-images
    query: NonEmpty
    grammar: str | None = None
    image_settings: ImageKnobs | None = None  # extension: processor knobs for the image


Body = TypeVar("Body", bound=_Body)


def parse_body(kind: type[Body], raw: bytes) -> Body:
    """The JSON body as `kind`, whatever the Content-Type says (curl -d sends form encoding by default); a
    RequestError(400) naming the first bad field in OpenAI's param style (messages[0].content) otherwise."""
    try:
        return kind.model_validate_json(raw)
    except ValidationError as exc:
        raise _as_request_error(exc) from None


def _as_request_error(exc: ValidationError) -> RequestError:
    # Of a union's failed branches, the deepest location is the most specific (content[0].image_url, not content).
    first = max(exc.errors(), key=lambda error: len(error.get("loc", ())))
    where = first.get("loc", ())
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", first.get("msg"))
        return RequestError(f"the request body is not valid JSON: {reason}", 400, "invalid_json")
    param = _param_name(where)
    return RequestError(f"{param or 'body'}: {first.get('msg', 'invalid value')}", 400, "invalid_value", param)


# pydantic puts the union member it tried into the location ("str", "list[...]", "function-after[...]").
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "list", "dict", "literal"})


def _param_name(location: tuple[int | str, ...]) -> str | None:
    """("messages", 0, "content", "str") -> "messages[0].content", the way OpenAI names parameters."""
    parts: list[int | str] = []
    for part in location:
        if isinstance(part, str) and (part in _TYPE_TAGS or "[" in part or "-" in part):
            continue
        if parts and part == parts[-1]:  # a tagged union repeats its tag: content[0].image_url.image_url
            continue
        parts.append(part)
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts).lstrip(".") or None
