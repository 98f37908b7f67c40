"""Safe parsers of the model's output: tool calls, reasoning and grounding boxes. Pure functions; no model needed.

:func:`draw_boxes` draws parsed boxes on their image (Pillow), to check a detection by eye.

Nothing here evaluates the text (no eval, exec or ast): a bounded literal reader (:mod:`.literals`) reads the
values, and every public parser returns its problems as data instead of raising on model output.
"""

from lfm_edge.parse.boxes import DETECTION_PROMPT, Box, Detection, detection_prompt, parse_detections
from lfm_edge.parse.draw import box_colour, draw_boxes
from lfm_edge.parse.literals import LiteralLimits, parse_literal
from lfm_edge.parse.streaming import StreamDelta, ToolCallStreamFilter
from lfm_edge.parse.tool_calls import (
    TOOL_CALL_END,
    TOOL_CALL_START,
    ParsedMessage,
    ParseLimits,
    ToolCall,
    parse_assistant_output,
)

__all__ = [
    "DETECTION_PROMPT",
    "TOOL_CALL_END",
    "TOOL_CALL_START",
    "Box",
    "Detection",
    "LiteralLimits",
    "ParseLimits",
    "ParsedMessage",
    "StreamDelta",
    "ToolCall",
    "ToolCallStreamFilter",
    "box_colour",
    "detection_prompt",
    "draw_boxes",
    "parse_assistant_output",
    "parse_detections",
    "parse_literal",
]
