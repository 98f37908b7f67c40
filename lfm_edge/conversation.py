"""Chat messages (text and images) -> the engine's items: token ids and image-embedding blocks.

The chat template renders the conversation with one `<image>` per image (as transformers does); each `<image>` is
then expanded by OUR preprocessing (HF-exact crops and token layout, SPEC.md §3.5) into marker token ids and one
block of mtmd embeddings per crop, in crop order. Text between images is tokenized on its own: every image marker is
a special token, so this is how transformers' tokenizer splits the expanded prompt too.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lfm_edge.engine import ImageBlock, Item
from lfm_edge.errors import ModelError, PromptError
from lfm_edge.image.preprocess import preprocess
from lfm_edge.image.settings import ProcessorSettings
from lfm_edge.image.tokens import IMAGE_TOKEN, image_segments
from lfm_edge.native.text import TextModel
from lfm_edge.native.vision import VisionEncoder
from lfm_edge.prompt import ChatTemplate, RenderOptions
from lfm_edge.vision import CropEncoder

_IMAGE_KEYS = ("image", "path", "url", "image_url")
_CACHE_CROPS = 64
_CACHE_IMAGES = 8


def split_images(messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Messages for the template (each image item becomes {"type": "image"}) and the images, in prompt order."""
    rendered: list[dict[str, Any]] = []
    images: list[Any] = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            rendered.append(dict(message))
            continue
        items = []
        for item in content:
            kind = item.get("type") if isinstance(item, Mapping) else None
            if kind in ("image", "image_url"):
                source = next((item[k] for k in _IMAGE_KEYS if k in item and item[k] is not None), None)
                if source is None:
                    raise PromptError(f"image item {dict(item)!r:.120} has no image: add 'image': PATH/bytes/PIL/array")
                images.append(source["url"] if isinstance(source, Mapping) and "url" in source else source)
                items.append({"type": "image"})
            else:
                items.append(item)
        rendered.append({**message, "content": items})
    return rendered, images


@dataclass(frozen=True)
class PreparedImage:
    """One image's expansion: marker ids, marker texts outside the vocabulary, and crops, in prompt order."""

    parts: tuple[int | str | np.ndarray, ...]  # token id | marker text to tokenize | uint8 crop
    tokens_per_crop: tuple[int, ...]


def prepare_image(image: Any, settings: ProcessorSettings) -> PreparedImage:
    prepared = preprocess(image, settings)
    layout = prepared.layout
    crops = iter(prepared.crops)
    parts: list[int | str | np.ndarray] = []
    for segment in image_segments(layout, settings.use_image_special_tokens):
        if segment.token == IMAGE_TOKEN:
            parts.append(next(crops))
        else:
            parts.append(segment.token_id if segment.token_id is not None else segment.token)
    return PreparedImage(tuple(parts), layout.tokens_per_crop)


def _cache_key(image: Any, settings: ProcessorSettings) -> tuple[Any, ...] | None:
    """A cache key for an image given as a path (the same file, unchanged) or as encoded bytes (the same bytes),
    with the same knobs; None for other sources (arrays, PIL images, file objects), which are not cached."""
    if isinstance(image, bytes | bytearray | memoryview):
        return ("bytes", hashlib.sha256(image).hexdigest(), settings)
    if not isinstance(image, str | Path):
        return None
    try:
        stat = Path(image).stat()
    except OSError:
        return None
    return (str(Path(image).resolve()), stat.st_mtime_ns, stat.st_size, settings)


class PromptBuilder:
    def __init__(self, template: ChatTemplate, text: TextModel, vision: VisionEncoder | CropEncoder | None) -> None:
        self.template = template
        self.text = text
        self.vision = vision
        self._embeddings: OrderedDict[str, np.ndarray] = OrderedDict()
        self._prepared: OrderedDict[tuple[Any, ...], PreparedImage] = OrderedDict()

    def clear_caches(self) -> None:
        """Forgets preprocessed images and crop embeddings: the next image is preprocessed and encoded anew."""
        self._embeddings.clear()
        self._prepared.clear()

    def _prepare(self, image: Any, settings: ProcessorSettings) -> PreparedImage:
        # A chat re-renders its whole history each turn (a server receives it whole each request): an image file or
        # its bytes are preprocessed once, not once per turn.
        key = _cache_key(image, settings)
        if key is None:
            return prepare_image(image, settings)
        prepared = self._prepared.pop(key, None) or prepare_image(image, settings)
        self._prepared[key] = prepared
        while len(self._prepared) > _CACHE_IMAGES:
            self._prepared.popitem(last=False)
        return prepared

    def build(
        self, messages: Sequence[Mapping[str, Any]], options: RenderOptions, settings: ProcessorSettings
    ) -> list[Item]:
        chat, images = split_images(messages)
        rendered = self.template.render(chat, options)
        texts = rendered.split(IMAGE_TOKEN)
        if len(texts) - 1 != len(images):
            raise PromptError(
                f"the prompt has {len(texts) - 1} '<image>' placeholders but {len(images)} images were given: "
                "pass one image per {'type': 'image'} item (and no literal '<image>' in text)"
            )
        items: list[Item] = []
        for index, text in enumerate(texts):
            items.extend(self.text.tokenize(text))
            if index < len(images):
                items.extend(self._image_items(images[index], settings))
        return items

    def _image_items(self, image: Any, settings: ProcessorSettings) -> list[Item]:
        if self.vision is None:
            raise ModelError("this model was loaded without an mmproj, so it cannot see images: pass mmproj=...")
        prepared = self._prepare(image, settings)
        items: list[Item] = []
        crop_index = 0
        for part in prepared.parts:
            if isinstance(part, np.ndarray):
                block = self._embed(part)
                needed = prepared.tokens_per_crop[crop_index]
                if block.length != needed:
                    raise ModelError(
                        f"mtmd gave {block.length} embeddings for a crop that needs {needed}: "
                        "the mmproj does not match this model's processor settings"
                    )
                items.append(block)
                crop_index += 1
            elif isinstance(part, str):
                items.extend(self.text.tokenize(part))
            else:
                items.append(part)
        return items

    def _embed(self, crop: np.ndarray) -> ImageBlock:
        key = hashlib.sha256(repr(crop.shape).encode() + np.ascontiguousarray(crop).tobytes()).hexdigest()
        cached = self._embeddings.get(key)
        if cached is None:
            assert self.vision is not None
            cached = self.vision.encode(crop)
            self._embeddings[key] = cached
            while len(self._embeddings) > _CACHE_CROPS:
                self._embeddings.popitem(last=False)
        else:
            self._embeddings.move_to_end(key)
        return ImageBlock(key, cached)
