"""The image-embedding cache: a crop's embeddings, looked up by what they depend on, before the encoder runs.

One mechanism for every caller: an in-memory LRU (a chat re-rendering its history, the server receiving a whole
conversation per request) in front of an optional persistent folder (`cache_dir=` / `--image-cache DIR`, shared by
processes: a second question about the same photo in a new process skips the encoder).

Keys are content, never paths or times: the crop's digest (its shape and every pixel), the image knobs, and, on
disk, the encoder's identity (backend, the weights file's sha256, llama.cpp's version, options that change the
arithmetic). In memory the encoder is this process's own, so the identity is left out there and only computed
(hashing the mmproj) when a persistent folder is used.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from lfm_edge.vision.encoder import CropEncoder
from lfm_edge.vision.store import DEFAULT_MAX_BYTES, DiskStore

log = logging.getLogger(__name__)

MEMORY_CROPS = 64  # a 1920x1080 photo is 10 crops; 64 keep a few photos of a conversation


def default_cache_dir() -> Path:
    """$LFM_EDGE_IMAGE_CACHE, else $XDG_CACHE_HOME/lfm-edge/image-embeddings, else ~/.cache/lfm-edge/..."""
    explicit = os.environ.get("LFM_EDGE_IMAGE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lfm-edge" / "image-embeddings"


def crop_digest(crop: np.ndarray) -> str:
    pixels = np.ascontiguousarray(crop)
    return hashlib.sha256(f"{pixels.shape}{pixels.dtype}".encode() + pixels.tobytes()).hexdigest()


class EmbeddingCache:
    """`lookup(digest, knobs)` -> (embeddings or None, where from); `store(...)` after encoding a miss."""

    def __init__(
        self,
        encoder: CropEncoder,
        folder: Path | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        memory_crops: int = MEMORY_CROPS,
    ) -> None:
        self.encoder = encoder
        self.memory_crops = memory_crops
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self.disk = DiskStore(folder, max_bytes) if folder is not None else None
        # The weights file is hashed now, at load, so that the identity is the file that was loaded.
        self._identity = encoder.identity if self.disk is not None else ""

    @property
    def encoder_identity(self) -> str:
        """The encoder's identity as hashed at load ("" without a persistent folder)."""
        return self._identity

    def clear_memory(self) -> None:
        self._memory.clear()

    def _disk_key(self, digest: str, knobs: str) -> str:
        return f"{self._identity}\n{knobs}\n{digest}"

    def lookup(self, digest: str, knobs: str) -> tuple[np.ndarray | None, str]:
        """(embeddings, "memory" | "disk") on a hit, (None, "") on a miss."""
        memory_key = f"{knobs}\n{digest}"
        found = self._memory.get(memory_key)
        if found is not None:
            self._memory.move_to_end(memory_key)
            return found, "memory"
        if self.disk is not None:
            found = self.disk.get(self._disk_key(digest, knobs))
            if found is not None:
                self._remember(memory_key, found)
                return found, "disk"
        return None, ""

    def store(self, digest: str, knobs: str, embeddings: np.ndarray) -> None:
        self._remember(f"{knobs}\n{digest}", embeddings)
        if self.disk is not None:
            self.disk.put(self._disk_key(digest, knobs), embeddings)

    def _remember(self, key: str, embeddings: np.ndarray) -> None:
        embeddings.setflags(write=False)  # shared between prompts: nobody may change it in place
        self._memory[key] = embeddings
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_crops:
            self._memory.popitem(last=False)
