"""The one exception hierarchy of lfm_edge.

Every error a user can cause derives from :class:`LfmEdgeError`; its message names the bad value and the fix.
The CLI prints ``error: <message>`` on one line and exits non-zero for any of them.
"""

from __future__ import annotations


class LfmEdgeError(Exception):
    """Base class of every error lfm_edge raises on purpose."""


class CheckpointError(LfmEdgeError):
    """A Hugging Face checkpoint folder is missing files, has unknown tensors, or is inconsistent."""


class ConversionError(LfmEdgeError):
    """Writing or quantizing a GGUF file failed (bad output folder, existing file, disk full...)."""


class ImageError(LfmEdgeError):
    """An image cannot be decoded, is too large, too small, or too elongated to preprocess."""


class ConfigError(LfmEdgeError):
    """A knob or configuration value is out of range or of the wrong type."""


class ModelError(LfmEdgeError):
    """Loading or running the model through llama.cpp failed."""


class ParseError(LfmEdgeError):
    """Model output (tool calls, bounding boxes) could not be parsed."""


class PromptError(LfmEdgeError):
    """A chat could not be turned into a prompt: bad messages, a template that raises or escapes its sandbox,
    or a prompt longer than the context."""
