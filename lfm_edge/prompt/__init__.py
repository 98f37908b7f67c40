"""Chat prompts: the model's own Jinja chat template, rendered byte-identically to transformers' apply_chat_template."""

from lfm_edge.prompt.template import (
    GGUF_CHAT_TEMPLATE_KEY,
    ChatTemplate,
    RenderedPrompt,
    RenderOptions,
    starts_with_bos,
    strip_leading_bos,
    template_source_from_metadata,
)
from lfm_edge.prompt.tool_schema import json_schema_for

__all__ = [
    "GGUF_CHAT_TEMPLATE_KEY",
    "ChatTemplate",
    "RenderOptions",
    "RenderedPrompt",
    "json_schema_for",
    "starts_with_bos",
    "strip_leading_bos",
    "template_source_from_metadata",
]
