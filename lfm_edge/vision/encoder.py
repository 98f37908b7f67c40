"""The one interface every vision backend implements (llama.cpp's mtmd, ONNX Runtime)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class CropEncoder(Protocol):
    """Crop in, embeddings out.

    `encode(crop)`: crop is uint8 H x W x 3 with H and W multiples of 32 (our tiling's output); returns float32
    embeddings of shape [(H / 32) * (W / 32), n_embd of the text model], in row-major patch order, exactly what the
    text model expects at the crop's image positions.
    `identity`: a string that changes whenever the embeddings a crop gets could change (backend name, weights
    file's content identity, weight type); the persistent embedding cache keys on it.
    """

    @property
    def identity(self) -> str: ...

    def encode(self, crop: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...
