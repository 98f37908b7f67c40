"""Where the time before the first token goes on the image side of a prompt (one request, all its images)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageTimings:
    """`load_s`: reading and decoding the image files (EXIF turn, RGB); `preprocess_s`: resizing and tiling into
    crops; `encode_s`: the vision encoder, all crops; `encode_ms_per_crop`: one entry per crop actually encoded.
    `crops` counts every crop of the prompt, `cache_hits` those whose embeddings came from the embedding cache
    (memory or disk) and `disk_hits` those of them read from the persistent cache; `reused_images` counts images
    whose preprocessing was reused (the same bytes seen before, e.g. earlier turns of a chat)."""

    images: int = 0
    reused_images: int = 0
    load_s: float = 0.0
    preprocess_s: float = 0.0
    encode_s: float = 0.0
    crops: int = 0
    cache_hits: int = 0
    disk_hits: int = 0
    encode_ms_per_crop: tuple[float, ...] = ()

    @property
    def total_s(self) -> float:
        return self.load_s + self.preprocess_s + self.encode_s
