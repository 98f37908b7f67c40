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


class ContextLengthError(PromptError):
    """The prompt needs more positions than the context holds."""


class RequestError(LfmEdgeError):
    """A request to `lfm-edge serve` that cannot be served: invalid, too large, unauthorized, or the queue is full.

    Carries the HTTP status and OpenAI's error ``type`` / ``code`` / ``param`` so the server answers in OpenAI's
    error shape; ``headers`` adds e.g. Retry-After."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.headers = headers or {}


class VideoError(LfmEdgeError):
    """A video source (file, camera, stream, image folder) cannot be opened or read, or stalled."""


class ModelClosedError(ModelError):
    """The Model (or its Chat or stream) was used after `close()`, or in a process forked from the one that
    loaded it."""


class SamplingError(ConfigError):
    """No token can be sampled: the grammar and logit_bias together allow none (or the logits are not finite)."""
