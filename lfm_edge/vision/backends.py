"""Which vision backend turns crops into embeddings: a small registry of factories, imported only when chosen.

`mtmd` (llama.cpp's mtmd, the default) ships here; other backends (e.g. ONNX Runtime) add a line to `_BUILTIN` or
call `register_backend`. Model loading calls `open_encoder(name, request)` and sees only the CropEncoder interface.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfm_edge.errors import ConfigError
from lfm_edge.vision.encoder import CropEncoder


@dataclass(frozen=True)
class EncoderRequest:
    """What a backend gets: the mmproj GGUF, the loaded text model (llama_model_p: mtmd binds to it), threads,
    GPU offload and flash attention (None: the backend's default)."""

    mmproj: Path
    text_model: Any
    n_threads: int
    use_gpu: bool = False
    flash_attention: bool | None = None


Factory = Callable[[EncoderRequest], CropEncoder]

DEFAULT_BACKEND = "mtmd"
# name -> "module:function"; imported on first use so an optional backend's dependencies load only when chosen.
_BUILTIN: dict[str, str] = {"mtmd": "lfm_edge.vision.mtmd:open_mtmd"}
_registered: dict[str, Factory] = {}


def register_backend(name: str, factory: Factory) -> None:
    _registered[name] = factory


def available_backends() -> tuple[str, ...]:
    return tuple(sorted({*_BUILTIN, *_registered}))


def _factory(name: str) -> Factory:
    if name in _registered:
        return _registered[name]
    target = _BUILTIN.get(name)
    if target is None:
        raise ConfigError(f"unknown vision backend {name!r}: choose from {', '.join(available_backends())}")
    module, _, function = target.partition(":")
    factory: Factory = getattr(importlib.import_module(module), function)
    return factory


def open_encoder(name: str, request: EncoderRequest) -> CropEncoder:
    return _factory(name)(request)
