"""A decoded frame (converted to RGB only when captioned) and the change detector that decides whether a frame is
worth a caption."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# Thumbnail used for change detection: grey, 64x48 cells (each cell averages about 10x10 pixels of a 640x480
# frame, which hides sensor noise and compression flicker but keeps a bird-sized object).
THUMBNAIL_SIZE = (64, 48)
# A cell counts as changed when its grey level moved by more than this (of 255).
PIXEL_DELTA = 16
# Default share of changed cells above which a frame is captioned again (1%: about 30 cells of 3072).
MIN_CHANGE = 0.01


@dataclass(frozen=True, eq=False)
class Frame:
    """`time`: seconds of video time from the source's start (a file's own timestamps; a camera's or stream's
    relative to its first frame; an image folder's from file order and fps). `captured`: time.monotonic() when it
    was decoded, the origin of a caption's latency."""

    time: float
    index: int
    captured: float
    to_rgb: Callable[[], np.ndarray] = field(repr=False)
    to_thumbnail: Callable[[], np.ndarray] = field(repr=False)

    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8, upright (rotation metadata applied)."""
        return self.to_rgb()

    def thumbnail(self) -> np.ndarray:
        """(48, 64) uint8 grey."""
        return self.to_thumbnail()


@dataclass
class ChangeDetector:
    """Compares a frame's thumbnail with the last captioned frame's: `change` is the share of cells whose grey level
    moved by more than PIXEL_DELTA. A frame is new when its change exceeds `min_change` (0: every frame is new)."""

    min_change: float = MIN_CHANGE
    _reference: np.ndarray | None = field(default=None, repr=False)

    def change(self, thumbnail: np.ndarray) -> float:
        if self._reference is None or self._reference.shape != thumbnail.shape:
            return 1.0
        moved = np.abs(thumbnail.astype(np.int16) - self._reference.astype(np.int16)) > PIXEL_DELTA
        return float(moved.mean())

    def is_new(self, change: float) -> bool:
        return self.min_change <= 0 or change > self.min_change

    def accept(self, thumbnail: np.ndarray) -> None:
        self._reference = thumbnail
