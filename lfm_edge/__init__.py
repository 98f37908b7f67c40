"""lfm_edge: run LFM2.5-VL-450M on the edge with HF-exact preprocessing over llama.cpp.

    import lfm_edge
    with lfm_edge.load("model-Q4_0.gguf") as model:
        print(model.caption("photo.jpg").text)

`import lfm_edge` loads neither llama.cpp nor numpy: the API below is imported on first use (module __getattr__),
so the CLI and tools that only need the errors or the version start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lfm_edge.errors import (
    CheckpointError,
    ConfigError,
    ContextLengthError,
    ConversionError,
    ImageError,
    LfmEdgeError,
    ModelError,
    ParseError,
    PromptError,
    RequestError,
)

if TYPE_CHECKING:
    from lfm_edge.chat import Chat
    from lfm_edge.generation import Completion, GenerationOptions, TextStream, Timings
    from lfm_edge.image.settings import ProcessorSettings
    from lfm_edge.model import LoadOptions, Model, load
    from lfm_edge.native.sampling import SamplingParams
    from lfm_edge.native.text import ContextOptions
    from lfm_edge.parse import Box, Detection, ToolCall
    from lfm_edge.profiles import PROFILES, Profile

__version__ = "0.1.0"

# public name -> the module that defines it (imported when the name is first read)
_LAZY = {
    "load": "lfm_edge.model",
    "Model": "lfm_edge.model",
    "LoadOptions": "lfm_edge.model",
    "Chat": "lfm_edge.chat",
    "Completion": "lfm_edge.generation",
    "GenerationOptions": "lfm_edge.generation",
    "TextStream": "lfm_edge.generation",
    "Timings": "lfm_edge.generation",
    "ProcessorSettings": "lfm_edge.image.settings",
    "SamplingParams": "lfm_edge.native.sampling",
    "ContextOptions": "lfm_edge.native.text",
    "Box": "lfm_edge.parse",
    "Detection": "lfm_edge.parse",
    "ToolCall": "lfm_edge.parse",
    "PROFILES": "lfm_edge.profiles",
    "Profile": "lfm_edge.profiles",
}

__all__ = [
    "PROFILES",
    "Box",
    "Chat",
    "CheckpointError",
    "Completion",
    "ConfigError",
    "ContextLengthError",
    "ContextOptions",
    "ConversionError",
    "Detection",
    "GenerationOptions",
    "ImageError",
    "LfmEdgeError",
    "LoadOptions",
    "Model",
    "ModelError",
    "ParseError",
    "ProcessorSettings",
    "Profile",
    "PromptError",
    "RequestError",
    "SamplingParams",
    "TextStream",
    "Timings",
    "ToolCall",
    "__version__",
    "load",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lfm_edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later reads skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
