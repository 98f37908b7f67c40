"""The Python API: `load(...)` -> Model with generate / stream / chat / caption.

model = lfm_edge.load("LiquidAI/LFM2.5-VL-450M-GGUF")          # or a .gguf path, or a folder
print(model.caption("photo.jpg").text)
for piece in model.stream("Describe this image.", images=["photo.jpg"]):
    print(piece, end="")
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lfm_edge.engine import Engine
from lfm_edge.errors import ModelError
from lfm_edge.generation import Completion, GenerationOptions, TextStream, run_generation
from lfm_edge.image.settings import ProcessorSettings
from lfm_edge.mmproj import check_pair, read_gguf_metadata
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.native.text import ContextOptions, TextModel, default_threads
from lfm_edge.native.vision import VisionOptions
from lfm_edge.parse import Detection, detection_prompt, parse_detections
from lfm_edge.profiles import adjust_model, open_vision, prepare_load
from lfm_edge.prompt import ChatTemplate, RenderOptions
from lfm_edge.resolve import ModelFiles, resolve

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
    (None: llama.cpp decides), and `parity` (F32 KV cache, no flash attention: transformers-comparable logits)."""

    context: ContextOptions = field(default_factory=ContextOptions)
    mmproj: str | Path | None = None
    quant: str | None = None
    mmproj_on_gpu: bool = False
    profile: str = "default"  # lfm_edge.profiles.PROFILES: "default" or "low-memory"


def load(model: str | Path, options: LoadOptions | None = None, profile: str | None = None, **context: Any) -> Model:
    """Loads a text GGUF and its mmproj. `context` keywords (n_ctx, n_threads, n_gpu_layers, ...) fill
    ContextOptions when no LoadOptions is given; `profile` ("low-memory") overrides LoadOptions.profile."""
    if options is None:
        options = LoadOptions(context=ContextOptions(**context))
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
        self.text = TextModel(files.text, options.context)
        try:
            text_meta = {key: self.text.metadata(key) for key in ("general.architecture", "tokenizer.chat_template")}
            check_pair(text_meta, mmproj_meta, self.text.n_embd, files)
            self.settings = ProcessorSettings.from_gguf_metadata(mmproj_meta) if mmproj_meta else ProcessorSettings()
            self.template = ChatTemplate(str(text_meta["tokenizer.chat_template"] or _fallback_template()))
            threads = self.text.options.n_threads or default_threads()
            vision_options = VisionOptions(n_threads=threads, use_gpu=options.mmproj_on_gpu)
            self.vision = open_vision(files.mmproj, self.text.model, vision_options, options.profile)
        except BaseException:
            self.text.close()
            raise
        self.engine = Engine(self.text)
        from lfm_edge.conversation import PromptBuilder

        self.prompts = PromptBuilder(self.template, self.text, self.vision)
        adjust_model(self, options.profile)  # the profile's mmproj lifetime and snapshot count

    def close(self) -> None:
        if self.vision is not None:
            self.vision.close()
        self.text.close()

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
        items = self.prompts.build(messages, render or RenderOptions(), settings or self.settings)
        return run_generation(self.engine, items, options or GenerationOptions(), started)

    def stream(self, prompt: str, images: Sequence[Any] = (), options: GenerationOptions | None = None,
               **knobs: Any) -> TextStream:  # fmt: skip
        """Streams the answer to one user prompt (images placed before the text, as the model card does)."""
        content = [*({"type": "image", "image": image} for image in images), {"type": "text", "text": prompt}]
        return self.stream_messages([{"role": "user", "content": content}], options, None, self.image_settings(**knobs))

    def generate(self, prompt: str, images: Sequence[Any] = (), options: GenerationOptions | None = None,
                 **knobs: Any) -> Completion:  # fmt: skip
        stream = self.stream(prompt, images, options, **knobs)
        stream.text()
        assert stream.completion is not None
        return stream.completion

    def caption(self, image: Any, prompt: str = CAPTION_PROMPT, options: GenerationOptions | None = None,
                **knobs: Any) -> Completion:  # fmt: skip
        return self.generate(prompt, [image], options, **knobs)

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


def _fallback_template() -> str:
    raise ModelError("the text GGUF has no tokenizer.chat_template: convert it with `lfm-edge convert`")


def replace_options(options: GenerationOptions, **changes: Any) -> GenerationOptions:
    return dataclasses.replace(options, **changes)
