"""Chat messages (text and images) -> the engine's items: token ids and image-embedding blocks.

The chat template renders the conversation with one `<image>` per image (as transformers does); each `<image>` is
then expanded by OUR preprocessing (HF-exact crops and token layout, SPEC.md §3.5) into marker token ids and one
block of mtmd embeddings per crop, in crop order. Text between images is tokenized on its own: every image marker is
a special token, so this is how transformers' tokenizer splits the expanded prompt too.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lfm_edge.engine import ImageBlock, Item
from lfm_edge.errors import ImageError, ModelError, PromptError
from lfm_edge.image.load import PILLOW_LIMIT, load_image
from lfm_edge.image.preprocess import preprocess
from lfm_edge.image.settings import ProcessorSettings
from lfm_edge.image.tokens import IMAGE_TOKEN, image_segments
from lfm_edge.native.text import TextModel
from lfm_edge.prompt import ChatTemplate, RenderOptions
from lfm_edge.vision.cache import EmbeddingCache, crop_digest
from lfm_edge.vision.encoder import CropEncoder
from lfm_edge.vision.timings import ImageTimings

_IMAGE_KEYS = ("image", "path", "url", "image_url")
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


# Private-use code points around text that must be tokenized without parsing special tokens (a stored reply).
VERBATIM_START, VERBATIM_END = "\ue0f0", "\ue0f1"


def verbatim(text: str) -> str:
    return f"{VERBATIM_START}{text}{VERBATIM_END}"


def verbatim_spans(rendered: str) -> list[tuple[str, bool]]:
    """(text, is_verbatim) spans of a rendered prompt, markers removed."""
    spans: list[tuple[str, bool]] = []
    rest = rendered
    while (start := rest.find(VERBATIM_START)) >= 0 and (end := rest.find(VERBATIM_END, start)) >= 0:
        spans += [(rest[:start], False), (rest[start + 1 : end], True)]
        rest = rest[end + 1 :]
    return [*spans, (rest, False)]


@dataclass(frozen=True)
class PreparedImage:
    """One image's expansion: marker ids, marker texts outside the vocabulary, and crops, in prompt order."""

    parts: tuple[int | str | np.ndarray, ...]  # token id | marker text to tokenize | uint8 crop
    tokens_per_crop: tuple[int, ...]


def prepare_image(
    image: Any, settings: ProcessorSettings, max_pixels: int | Literal["pillow"] | None = PILLOW_LIMIT
) -> PreparedImage:
    prepared = preprocess(image, settings, max_pixels=max_pixels)
    layout = prepared.layout
    crops = iter(prepared.crops)
    parts: list[int | str | np.ndarray] = []
    for segment in image_segments(layout, settings.use_image_special_tokens):
        if segment.token == IMAGE_TOKEN:
            parts.append(next(crops))
        else:
            parts.append(segment.token_id if segment.token_id is not None else segment.token)
    return PreparedImage(tuple(parts), layout.tokens_per_crop)


def _content_key(image: Any, settings: ProcessorSettings) -> tuple[bytes | np.ndarray | None, str | None]:
    """(the image as bytes or array to decode, a key naming its content and the knobs), or (None, None) for sources
    that are not cached (PIL images, file objects). A path is read once here: the key is the sha256 of the bytes
    that are then decoded, never the path or its time (a file rewritten in place, same size and mtime, changes it)."""
    if isinstance(image, str | Path):
        try:
            data: bytes | np.ndarray = Path(image).read_bytes()
        except OSError as exc:
            raise ImageError(f"cannot read the image file {image} ({exc.strerror or exc})") from exc
    elif isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
    elif isinstance(image, np.ndarray):
        data = np.ascontiguousarray(image)
    else:
        return None, None
    digest = hashlib.sha256(data.tobytes() if isinstance(data, np.ndarray) else data)
    if isinstance(data, np.ndarray):
        digest.update(f"{data.shape}{data.dtype}".encode())
    return data, f"{digest.hexdigest()}\n{settings!r}"


def _decode(image: Any, data: bytes | np.ndarray | None) -> np.ndarray:
    try:
        return load_image(image if data is None else data)
    except ImageError as exc:
        if isinstance(image, str | Path):
            raise ImageError(f"{image}: {exc}") from exc
        raise


class _Clock:
    """Accumulates the image stages of one prompt build (see ImageTimings)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {"encode_ms_per_crop": []}

    def add(self, stage: str, seconds: float = 0.0, count: int = 1) -> None:
        if stage.endswith("_s"):
            self.values[stage] = self.values.get(stage, 0.0) + seconds
        else:
            self.values[stage] = self.values.get(stage, 0) + count

    def timings(self) -> ImageTimings:
        values = dict(self.values)
        values["encode_ms_per_crop"] = tuple(values["encode_ms_per_crop"])
        return ImageTimings(**values)


@dataclass(frozen=True)
class BuiltPrompt:
    items: list[Item]
    image_timings: ImageTimings


class PromptBuilder:
    """Messages -> engine items. `embeddings`: the image-embedding cache (memory, optionally disk) in front of the
    vision encoder; preprocessed images are kept by content too (a chat re-renders its history every turn)."""

    def __init__(
        self, template: ChatTemplate, text: TextModel, vision: CropEncoder | None, embeddings: EmbeddingCache | None
    ) -> None:
        self.template = template
        self.text = text
        self.vision = vision
        self.embeddings = embeddings
        self._prepared: OrderedDict[str, PreparedImage] = OrderedDict()
        # Entered while one crop is encoded (Model: the engine lock, between two steps of the generations running).
        self.encode_lock: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext

    def clear_caches(self) -> None:
        """Forgets preprocessed images and in-memory crop embeddings (the persistent folder, if any, stays)."""
        if self.embeddings is not None:
            self.embeddings.clear_memory()
        self._prepared.clear()

    def _prepare(self, image: Any, settings: ProcessorSettings, clock: _Clock) -> PreparedImage:
        started = time.perf_counter()
        data, key = _content_key(image, settings)
        prepared = self._prepared.pop(key, None) if key is not None else None
        if prepared is not None:
            clock.add("reused_images")
        else:
            pixels = _decode(image, data)
            loaded = time.perf_counter()
            clock.add("load_s", loaded - started)
            prepared = prepare_image(pixels, settings, max_pixels=None)  # the size was checked by load_image
            started = loaded
        clock.add("preprocess_s", time.perf_counter() - started)
        if key is not None:
            self._prepared[key] = prepared
            while len(self._prepared) > _CACHE_IMAGES:
                self._prepared.popitem(last=False)
        return prepared

    def build(
        self, messages: Sequence[Mapping[str, Any]], options: RenderOptions, settings: ProcessorSettings
    ) -> list[Item]:
        return self.build_timed(messages, options, settings).items

    def build_timed(
        self, messages: Sequence[Mapping[str, Any]], options: RenderOptions, settings: ProcessorSettings
    ) -> BuiltPrompt:
        chat, images = split_images(messages)
        spans = verbatim_spans(self.template.render(chat, options))
        placeholders = sum(text.count(IMAGE_TOKEN) for text, literal in spans if not literal)
        if placeholders != len(images):
            raise PromptError(
                f"the prompt has {placeholders} '<image>' placeholders but {len(images)} images were given: "
                "pass one image per {'type': 'image'} item (and no literal '<image>' in text)"
            )
        items: list[Item] = []
        clock = _Clock()
        pending = iter(images)
        for text, literal in spans:
            if literal:  # a stored reply: its `<image>` or control-token texts are text, not markers
                items.extend(self.text.tokenize(text, special=False))
                continue
            for index, part in enumerate(text.split(IMAGE_TOKEN)):
                if index:
                    clock.add("images")
                    items.extend(self._image_items(next(pending), settings, clock))
                items.extend(self.text.tokenize(part))
        return BuiltPrompt(items, clock.timings())

    def _image_items(self, image: Any, settings: ProcessorSettings, clock: _Clock) -> list[Item]:
        if self.vision is None:
            raise ModelError("this model was loaded without an mmproj, so it cannot see images: pass mmproj=...")
        prepared = self._prepare(image, settings, clock)
        items: list[Item] = []
        crop_index = 0
        for part in prepared.parts:
            if isinstance(part, np.ndarray):
                block = self._embed(part, repr(settings), clock)
                needed = prepared.tokens_per_crop[crop_index]
                if block.length != needed:
                    raise ModelError(
                        f"the vision encoder gave {block.length} embeddings for a crop that needs {needed}: "
                        "the mmproj does not match this model's processor settings"
                    )
                items.append(block)
                crop_index += 1
            elif isinstance(part, str):
                items.extend(self.text.tokenize(part))
            else:
                items.append(part)
        return items

    def _embed(self, crop: np.ndarray, knobs: str, clock: _Clock) -> ImageBlock:
        digest = crop_digest(crop)
        clock.add("crops")
        cached, source = self.embeddings.lookup(digest, knobs) if self.embeddings else (None, "")
        if cached is not None:
            clock.add("cache_hits")
            if source == "disk":
                clock.add("disk_hits")
            return ImageBlock(digest, cached)
        assert self.vision is not None
        started = time.perf_counter()
        with self.encode_lock():
            embeddings = self.vision.encode(crop)
        seconds = time.perf_counter() - started
        clock.add("encode_s", seconds)
        clock.values["encode_ms_per_crop"].append(seconds * 1000)
        if self.embeddings is not None:
            self.embeddings.store(digest, knobs, embeddings)
        return ImageBlock(digest, embeddings)
