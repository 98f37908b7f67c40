"""The vision side of the data path: a crop (uint8 H x W x 3, our HF-exact tiling) -> image embeddings.

Backends implement `CropEncoder`; the engine, the embedding cache and the prompt code see only that interface.
"""

from lfm_edge.vision.encoder import CropEncoder

__all__ = ["CropEncoder"]
