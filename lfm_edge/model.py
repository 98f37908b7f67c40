"""The Python API: `load(...)` -> Model with generate / stream / chat / caption.

model = lfm_edge.load("LiquidAI/LFM2.5-VL-450M-GGUF")          # or a .gguf path, or a folder
print(model.caption("photo.jpg").text)
for piece in model.stream("Describe this image.", images=["photo.jpg"]):
    print(piece, end="")
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lfm_edge.engine import Engine
from lfm_edge.errors import ModelError
from lfm_edge.generation import Completion, GenerationOptions, TextStream, run_generation
from lfm_edge.image.settings import ProcessorSettings
from lfm_edge.mmproj import check_pair, read_gguf_metadata
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.native.text import ContextOptions, TextModel, default_threads
from lfm_edge.parse import Detection, detection_prompt, parse_detections
from lfm_edge.profiles import adjust_model, open_vision, prepare_load
from lfm_edge.prompt import ChatTemplate, RenderOptions
from lfm_edge.resolve import ModelFiles, resolve
from lfm_edge.settings_source import resolve_settings
from lfm_edge.vision import CropEncoder
from lfm_edge.vision.backends import DEFAULT_BACKEND, EncoderRequest, open_encoder
from lfm_edge.vision.cache import EmbeddingCache, default_cache_dir
from lfm_edge.vision.mtmd import VisionOptions
from lfm_edge.vision.prefix_state import prefix_states
from lfm_edge.vision.store import DEFAULT_MAX_BYTES

if TYPE_CHECKING:
    from lfm_edge.chat import Chat

log = logging.getLogger(__name__)

Message = Mapping[str, Any]
CAPTION_PROMPT = "Describe this image."
# The model card's grounding example uses max_new_tokens=64; boxes need more room for several objects.
DETECT_OPTIONS = GenerationOptions(max_tokens=256, sampling=SamplingParams())


@dataclass(frozen=True)
class LoadOptions:
    """How to load: context size and threads, GPU offload (n_gpu_layers=-1: all; mmproj_on_gpu), flash attention
    (None: llama.cpp decides), and `parity` (F32 KV cache, no flash attention: transformers-comparable logits).
    `cache_dir`: a folder for the persistent image-embedding cache (True: default_cache_dir(); None: in memory
    only), bounded by `image_cache_bytes`; `vision_backend`: lfm_edge.vision.backends' name."""

    context: ContextOptions = field(default_factory=ContextOptions)
    mmproj: str | Path | None = None
    quant: str | None = None
    mmproj_on_gpu: bool = False
    cache_dir: str | Path | bool | None = None
    image_cache_bytes: int = DEFAULT_MAX_BYTES
    vision_backend: str = "auto"  # "auto" | "mtmd" | "onnx" (see Model._open_vision)
    vision_onnx: str | Path | None = None  # a vision ONNX file (default: found beside the mmproj)
    profile: str = "default"  # lfm_edge.profiles.PROFILES: "default" or "low-memory"

    @property
    def image_cache_folder(self) -> Path | None:
        if self.cache_dir is None or self.cache_dir is False:
            return None
        return default_cache_dir() if self.cache_dir is True else Path(self.cache_dir).expanduser()


def load(
    model: str | Path,
    options: LoadOptions | None = None,
    *,
    cache_dir: str | Path | bool | None = None,
    profile: str | None = None,
    **context: Any,
) -> Model:
    """Loads a text GGUF and its mmproj. `context` keywords (n_ctx, n_threads, n_gpu_layers, ...) fill
    ContextOptions when no LoadOptions is given. `cache_dir`: see LoadOptions; `profile` ("low-memory") overrides
    LoadOptions.profile."""
    if options is None:
        options = LoadOptions(context=ContextOptions(**context), cache_dir=cache_dir)
    elif cache_dir is not None:
        options = dataclasses.replace(options, cache_dir=cache_dir)
    elif context:
        raise TypeError("pass either LoadOptions or context keywords, not both")
    if profile is not None:
        options = dataclasses.replace(options, profile=profile)
    files = resolve(model, mmproj=options.mmproj, quant=options.quant)
    return Model(files, prepare_load(files, options))  # the profile's settings, then the memory check


class Model:
    def __init__(self, files: ModelFiles, options: LoadOptions) -> None:
        self.files = files
        # The text file's header holds the whole vocabulary; llama.cpp reads it far faster than gguf-py does.
        mmproj_meta = read_gguf_metadata(files.mmproj) if files.mmproj else None
        self.vision: CropEncoder | None = None
        self.text = TextModel(files.text, options.context)
        try:
            text_meta = {key: self.text.metadata(key) for key in ("general.architecture", "tokenizer.chat_template")}
            check_pair(text_meta, mmproj_meta, self.text.n_embd, files)
            # The best source of the image settings (lfm_edge.settings_source); `settings_source` says which.
            resolved = resolve_settings(files, mmproj_meta)
            self.settings, self.settings_source = resolved.settings, resolved.source
            self.template = ChatTemplate(str(text_meta["tokenizer.chat_template"] or _fallback_template()))
            self.vision = self._open_vision(files, options)
            cache = self._embedding_cache(options)
        except BaseException:
            self.close()
            raise
        self.engine = Engine(self.text)
        self.engine.prefix_store = prefix_states(cache, files.text, self.text)  # the state after an image, on disk
        self._generating = threading.BoundedSemaphore(len(self.engine.slots))
        from lfm_edge.conversation import PromptBuilder

        self.prompts = PromptBuilder(self.template, self.text, self.vision, cache)
        # Prompts are built (images preprocessed, crops encoded) outside the engine lock, so running generations
        # keep decoding; each crop's encoding takes the lock, between two of their steps (one crop's stall at most).
        self._building = threading.RLock()
        adjust_model(self, options.profile)  # the profile's mmproj lifetime and snapshot count
        self.prompts.encode_lock = self.engine.batcher.between_steps

    def _embedding_cache(self, options: LoadOptions) -> EmbeddingCache | None:
        if self.vision is None:
            return None
        return EmbeddingCache(self.vision, options.image_cache_folder, options.image_cache_bytes)

    def _open_vision(self, files: ModelFiles, options: LoadOptions) -> CropEncoder | None:
        if files.mmproj is None:
            return None
        threads = self.text.options.n_threads or default_threads()
        transient = open_vision(files.mmproj, self.text.model, VisionOptions(threads, options.mmproj_on_gpu),
                                options.profile, transient_only=True)  # fmt: skip
        if transient is not None:  # low-memory: mtmd opened per prompt, freed after encoding
            return cast(CropEncoder, transient)
        if options.vision_backend in ("auto", "onnx"):  # ONNX Runtime when asked, or (auto) when its file is beside
            from lfm_edge.vision.onnx import VisionRequest, choose_encoder

            onnx_path = Path(options.vision_onnx) if options.vision_onnx else None
            onnx = VisionRequest(options.vision_backend, files.mmproj, self.settings, self.text.n_embd, threads,
                                 onnx_path, options.mmproj_on_gpu)  # fmt: skip
            chosen = choose_encoder(onnx)
            if chosen is not None:
                return chosen
        request = EncoderRequest(files.mmproj, self.text.model, threads, options.mmproj_on_gpu)
        return open_encoder(DEFAULT_BACKEND if options.vision_backend in ("auto", "onnx") else options.vision_backend,
                            request)  # fmt: skip

    def close(self) -> None:
        """Frees the model now (a Model dropped without close() is freed by the garbage collector); later calls on
        it, its chats or its streams raise ModelClosedError. Waits for a generation step in another thread."""
        engine = getattr(self, "engine", None)  # None: __init__ failed before the engine existed
        building = getattr(self, "_building", None) or contextlib.nullcontext()
        with building, engine.lock if engine is not None else contextlib.nullcontext():
            vision = getattr(self, "vision", None)
            if vision is not None:
                vision.close()
            self.text.close()

    @property
    def closed(self) -> bool:
        return self.text.closed

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def image_settings(self, **knobs: Any) -> ProcessorSettings:
        """The model's processor settings with some knobs changed (validated), e.g. min_image_tokens=32."""
        return self.settings.replace(**knobs) if knobs else self.settings

    def stream_messages(
        self,
        messages: Sequence[Message],
        options: GenerationOptions | None = None,
        render: RenderOptions | None = None,
        settings: ProcessorSettings | None = None,
    ) -> TextStream:
        started = time.perf_counter()
        with self._building:  # the image caches and the vision context are shared; each crop takes the engine lock
            self.text.check_usable()
            built = self.prompts.build_timed(messages, render or RenderOptions(), settings or self.settings)
            image = built.image_timings if built.image_timings.images else None
            return run_generation(self.engine, built.items, options or GenerationOptions(), started, image)

    def stream(self, prompt: str, images: Sequence[Any] = (), options: GenerationOptions | None = None,
               **knobs: Any) -> TextStream:  # fmt: skip
        """Streams the answer to one user prompt (images placed before the text, as the model card does)."""
        content = [*({"type": "image", "image": image} for image in images), {"type": "text", "text": prompt}]
        return self.stream_messages([{"role": "user", "content": content}], options, None, self.image_settings(**knobs))

    def generate(self, prompt: str, images: Sequence[Any] = (), options: GenerationOptions | None = None,
                 **knobs: Any) -> Completion:  # fmt: skip
        return self.complete(self.stream(prompt, images, options, **knobs))

    def complete(self, stream: TextStream) -> Completion:
        """Reads `stream` to its end. Concurrent callers are served together, up to one per slot
        (ContextOptions.n_seq), their next tokens decoded in one llama_decode per step (lfm_edge/batching.py); more
        wait their turn."""
        with self._generating:  # at most one generation per slot; more callers wait here
            stream.text()
        if stream.completion is None:
            raise ModelError("the generation was closed before it finished")
        return stream.completion

    def caption(self, image: Any, prompt: str = CAPTION_PROMPT, options: GenerationOptions | None = None,
                **knobs: Any) -> Completion:  # fmt: skip
        return self.generate(prompt, [image], options, **knobs)

    def caption_many(self, images: Sequence[Any], prompt: str = CAPTION_PROMPT,
                     options: GenerationOptions | None = None, **knobs: Any) -> list[Completion]:  # fmt: skip
        """Captions of `images`, in order, generated n_seq at a time (decoded together in one batch; each crop is
        encoded between two decode steps). The first error is raised once the others have finished."""
        if not images:
            return []
        with ThreadPoolExecutor(min(len(images), len(self.engine.slots)), thread_name_prefix="lfm-caption") as pool:
            futures = [pool.submit(self.caption, image, prompt, options, **knobs) for image in images]
        return [future.result() for future in futures]

    def chat(
        self,
        system: str | None = None,
        options: GenerationOptions | None = None,
        tools: Sequence[Any] | None = None,
        **knobs: Any,
    ) -> Chat:
        """A conversation. `tools`: JSON-schema dicts (as the model card passes them), OpenAI-shaped tools, or
        Python functions (schema from signature and docstring). `knobs` change the image settings of all turns."""
        from lfm_edge.chat import Chat

        return Chat(self, system, options, self.image_settings(**knobs), tools)

    def detect(self, image: Any, query: str, options: GenerationOptions | None = None, **knobs: Any) -> Detection:
        """Grounding with the model card's prompt; boxes in pixels of the original (EXIF-rotated) image."""
        from lfm_edge.image import load_image

        completion = self.generate(detection_prompt(query), [image], options or DETECT_OPTIONS, **knobs)
        height, width = load_image(image).shape[:2]
        return parse_detections(completion.message.content, (width, height))

    def watch(self, source: Any, options: Any = None, **kw: Any) -> Iterator[Any]:
        """Captions a video file, camera, stream or image folder: yields lfm_edge.video events (see its docs)."""
        from lfm_edge.video import watch

        return watch(self, source, options, **kw)


def _fallback_template() -> str:
    raise ModelError("the text GGUF has no tokenizer.chat_template: convert it with `lfm-edge convert`")


def replace_options(options: GenerationOptions, **changes: Any) -> GenerationOptions:
    return dataclasses.replace(options, **changes)
