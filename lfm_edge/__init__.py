"""lfm_edge: run LFM2.5-VL-450M on the edge with HF-exact preprocessing over llama.cpp."""

from lfm_edge.errors import (
    CheckpointError,
    ConfigError,
    ConversionError,
    ImageError,
    LfmEdgeError,
    ModelError,
    ParseError,
    PromptError,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ConversionError",
    "ImageError",
    "LfmEdgeError",
    "ModelError",
    "ParseError",
    "PromptError",
    "__version__",
]
