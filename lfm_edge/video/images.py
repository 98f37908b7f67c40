"""A folder or glob of images as a video: file-name order, one frame every 1/fps seconds. Files that are not
decodable images are skipped with a logged warning; a folder without a single image is an error."""

from __future__ import annotations

import glob
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from lfm_edge.errors import ImageError, VideoError
from lfm_edge.image import load_image
from lfm_edge.video.frames import THUMBNAIL_SIZE, Frame
from lfm_edge.video.sources import SourceInfo, VideoSource

log = logging.getLogger(__name__)


def open_images(spec: str, fps: float) -> ImageFolderSource:
    if not fps > 0:
        raise VideoError(f"fps={fps!r} is invalid for an image folder: it must be > 0")
    folder = Path(spec)
    if folder.is_dir():
        paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    else:
        paths = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
    if not paths:
        raise VideoError(f"{spec!r} holds no files: give a folder of images or a glob such as 'frames/*.jpg'")
    return ImageFolderSource(paths, fps, spec)


class ImageFolderSource(VideoSource):
    def __init__(self, paths: list[Path], fps: float, name: str) -> None:
        self.paths = paths
        self.fps = fps
        self.info = SourceInfo(name, "images", fps=fps, duration_s=len(paths) / fps)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def frames(self) -> Iterator[Frame]:
        index = 0
        for path in self.paths:
            try:
                image = load_image(path)
            except ImageError as exc:
                log.warning("skipping %s: %s", path, exc)
                continue
            yield Frame(index / self.fps, index, time.monotonic(), _constant(image), _constant(_thumbnail(image)))
            index += 1
        if index == 0:
            raise VideoError(f"{self.info.name!r} holds no decodable image ({len(self.paths)} files skipped)")


def _thumbnail(image: np.ndarray) -> np.ndarray:
    grey = Image.fromarray(image).convert("L").resize(THUMBNAIL_SIZE, Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.uint8)


def _constant(value: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: value
