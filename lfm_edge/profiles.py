"""Load profiles: named sets of load settings for small machines, and the memory check run before loading.

    lfm_edge.load("model-Q4_0.gguf", profile="low-memory")      # lfm-edge run ... --low-memory

`low-memory` (1 GB and 512 MB boards) trades some speed, and nothing of the answer, for a smaller peak: the text
weights and the vision encoder are never resident together.
  - the text weights are mapped from the GGUF, not copied, and llama.cpp's repacked copies (extra buffer types)
    are off: their pages are clean page cache the kernel can drop (no swap needed), and this process drops them
    (madvise) after loading and before the mmproj opens; the next decode maps them back (minor faults);
  - the mmproj is opened when a prompt's images are encoded (not at load) and freed, heap trimmed, as soon as they
    are, before the text model decodes them (each new image reloads it: its load time); mtmd's compute buffer is
    sized for 256-token crops (LFM2-VL's largest by default) instead of 4096, which removes a ~96 MB transient;
  - prefill in ubatches of 128 tokens instead of 512 (the text compute buffer is sized for one ubatch);
  - no state snapshots for prefix reuse (a follow-up that extends the last prompt still reuses it; one that edits
    earlier turns is evaluated again).
The KV cache stays F16 (a Q8_0 cache halves it but moved image-prompt logits by up to 0.46: bench/pi_fidelity.json;
`kv_cache_type="q8_0"` still asks for it).
The context size is the caller's (`n_ctx`): the README's Raspberry Pi section says what fits in which board.
Each choice's measured cost is in the README. The `default` profile changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lfm_edge.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from lfm_edge.conversation import PromptBuilder
    from lfm_edge.model import LoadOptions, Model
    from lfm_edge.native.text import ContextOptions
    from lfm_edge.resolve import ModelFiles
    from lfm_edge.vision.mtmd import VisionEncoder, VisionOptions

log = logging.getLogger(__name__)

MB = 1 << 20


@dataclass(frozen=True)
class Profile:
    """kv_cache_type: None keeps llama.cpp's F16; n_batch: None keeps ContextOptions'; transient_mmproj: open the
    mmproj per prompt and free it after encoding; max_snapshots: None keeps the engine's."""

    name: str
    kv_cache_type: str | None = None
    n_batch: int | None = None
    transient_mmproj: bool = False
    max_snapshots: int | None = None
    mapped_weights: bool = False  # text weights mapped from the file, not copied; dropped while the mmproj is open


PROFILES = {
    "default": Profile("default"),
    "low-memory": Profile("low-memory", n_batch=128, transient_mmproj=True, max_snapshots=0, mapped_weights=True),
}


def profile_named(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}") from None


def context_for(profile: Profile, context: ContextOptions) -> ContextOptions:
    """The context settings under the profile. Parity mode (F32 KV, for comparisons) keeps its cache type."""
    changes: dict[str, Any] = {}
    if profile.kv_cache_type is not None and not context.parity and context.kv_cache_type is None:
        changes["kv_cache_type"] = profile.kv_cache_type
    if profile.n_batch is not None:
        changes["n_batch"] = min(context.n_batch, profile.n_batch)
    if profile.mapped_weights and context.mmap is None and context.n_gpu_layers == 0:
        # extra buffers would copy the Q4_0/Q8_0 tensors into anonymous, repacked memory that cannot be dropped
        changes["mmap"] = True
        if context.extra_buffers is None:
            changes["extra_buffers"] = False
    return dataclasses.replace(context, **changes)


def prepare_load(files: ModelFiles, options: LoadOptions) -> LoadOptions:
    """The options under their profile, after checking that the files and buffers fit in memory."""
    options = dataclasses.replace(options, context=context_for(profile_named(options.profile), options.context))
    check_memory(files, options.context)
    return options


def open_vision(
    mmproj: Path | None, text_model: Any, options: VisionOptions, profile_name: str, *, transient_only: bool = False
) -> Any:
    """The model's vision encoder: opened now, or (transient_mmproj) when a prompt's first crop comes.
    `transient_only`: None unless the profile wants the transient one (the caller opens the usual backend)."""
    from lfm_edge.vision.mtmd import VisionEncoder

    if mmproj is None:
        return None
    if profile_named(profile_name).transient_mmproj:
        return TransientVisionEncoder(mmproj, text_model, options)
    return None if transient_only else VisionEncoder(mmproj, text_model, options)


def adjust_model(model: Model, profile_name: str) -> None:
    """Applies the parts of a profile that act on a loaded model: the mmproj's lifetime, the snapshots kept."""
    profile = profile_named(profile_name)
    if profile.max_snapshots is not None:
        model.engine.max_snapshots = profile.max_snapshots
    mapped = profile.mapped_weights and bool(model.text.options.mmap)
    if mapped:
        drop_mapped_pages(model.files.text)  # llama.cpp populates the whole mapping at load: unused until a decode
    if isinstance(model.vision, TransientVisionEncoder):
        model.prompts = _releasing_builder(model, model.vision)
        if mapped:
            text_file = model.files.text
            model.vision.before_open = lambda: drop_mapped_pages(text_file)


# LFM2-VL crops hold at most 256 image tokens (tiles 512x512, thumbnails within max_image_tokens, 256 by default):
# mtmd's compute buffer is sized for that, and grown for a crop above it (larger max_image_tokens knobs).
TRANSIENT_MAX_IMAGE_TOKENS = 256


class TransientVisionEncoder:
    """A VisionEncoder opened on the first crop it is given and freed by release(). The mmproj GGUF's metadata was
    checked against the text model at load (check_pair), so a wrong file still fails there."""

    def __init__(self, mmproj: Path, text_model: Any, options: VisionOptions) -> None:
        self._mmproj, self._text_model = mmproj, text_model
        self._options = dataclasses.replace(options, max_image_tokens=TRANSIENT_MAX_IMAGE_TOKENS)
        self._encoder: VisionEncoder | None = None
        self._identity: str | None = None
        self.loads = 0  # how many times the mmproj was opened (tests, benchmarks)
        self.before_open: Callable[[], object] | None = None  # mapped_weights: drops the text weights' pages

    @property
    def identity(self) -> str:
        """The same identity as the mtmd encoder it opens: cached embeddings serve both."""
        if self._identity is None:
            from lfm_edge.vision.mtmd import mtmd_identity

            self._identity = mtmd_identity(self._mmproj, self._options)
        return self._identity

    def encode(self, crop: Any) -> Any:
        tokens = (crop.shape[0] // 32) * (crop.shape[1] // 32)  # LFM2-VL: 16 px patches, 2x2 pixel unshuffle
        if tokens > self._options.max_image_tokens:
            self.release()
            self._options = dataclasses.replace(self._options, max_image_tokens=tokens)
        if self._encoder is None:
            from lfm_edge.vision.mtmd import VisionEncoder

            if self.before_open is not None:
                self.before_open()
            self._encoder = VisionEncoder(self._mmproj, self._text_model, self._options)
            self.loads += 1
        return self._encoder.encode(crop)

    @property
    def is_open(self) -> bool:
        return self._encoder is not None

    def release(self) -> None:
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None

    close = release


def _releasing_builder(model: Model, vision: TransientVisionEncoder) -> PromptBuilder:
    from lfm_edge.conversation import PromptBuilder

    class ReleasingPromptBuilder(PromptBuilder):
        """Frees the mmproj once a prompt's crops are encoded, before the text model decodes them."""

        def build_timed(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().build_timed(*args, **kwargs)
            finally:
                vision.release()
                trim_heap()

    return ReleasingPromptBuilder(model.template, model.text, vision, model.prompts.embeddings)


_MADV_DONTNEED = 4  # Linux


def drop_mapped_pages(path: Path, maps: Path = Path("/proc/self/maps")) -> int:
    """Drops this process's resident pages of a read-only mapped file (the text weights) and returns how many bytes
    of mappings were advised. The file's pages stay in the page cache: the next decode maps them back (minor faults,
    no disk read while memory allows), so the mmproj and the text weights are never resident in this process
    together. Linux only (nothing happens elsewhere)."""
    libc = _libc()
    try:
        lines = maps.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0
    target, dropped = os.path.realpath(path), 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == target and "w" not in fields[1] and libc is not None:
            start, end = (int(value, 16) for value in fields[0].split("-"))
            if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED) == 0:
                dropped += end - start
    log.debug("dropped %.0f MB of mapped pages of %s", dropped / MB, path.name)
    return dropped


def trim_heap() -> None:
    """Returns the freed heap pages of the vision encoder's buffers to the kernel (glibc keeps freed chunks below
    its mmap threshold in the heap, resident, after mtmd_free)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")  # runs ldconfig: once per process
    return ctypes.CDLL(name, use_errno=True) if name and os.name == "posix" else None


# What loading costs besides the files, for LFM2.5-VL-450M (measured, README "Raspberry Pi"): the interpreter with
# numpy, Pillow and the libraries; the text compute buffer's touched part and the vision encoder's; and the KV cache
# per context position (6 attention layers x K and V x 8 heads x 64 dims x 2 bytes in F16).
RUNTIME_BYTES = 60 * MB
COMPUTE_BYTES = 70 * MB
KV_BYTES_PER_POSITION = {"f32": 24576, "f16": 12288, "q8_0": 6528, "q4_0": 3456}
SKIP_CHECK_ENV = "LFM_EDGE_SKIP_MEMORY_CHECK"


@dataclass(frozen=True)
class MemoryNeed:
    files: int
    kv_cache: int

    @property
    def total(self) -> int:
        return self.files + self.kv_cache + RUNTIME_BYTES + COMPUTE_BYTES


def memory_need(files: ModelFiles, context: ContextOptions) -> MemoryNeed:
    kv_type = "f32" if context.parity else (context.kv_cache_type or "f16")
    sizes = sum(path.stat().st_size for path in (files.text, files.mmproj) if path is not None)
    return MemoryNeed(sizes, context.n_ctx * KV_BYTES_PER_POSITION.get(kv_type, KV_BYTES_PER_POSITION["f16"]))


def available_memory(meminfo: str) -> tuple[int, int] | None:
    """(MemAvailable, SwapFree) in bytes from a /proc/meminfo text; None when it has no MemAvailable."""
    values = {}
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[key.strip()] = int(fields[0]) * 1024
    if "MemAvailable" not in values:
        return None
    return values["MemAvailable"], values.get("SwapFree", 0)


def read_meminfo() -> str:
    try:
        return Path("/proc/meminfo").read_text(encoding="utf-8")
    except OSError:
        return ""  # not Linux: nothing to check against


def check_memory(files: ModelFiles, context: ContextOptions, meminfo: str | None = None) -> MemoryNeed:
    """Raises ModelError when the files and buffers cannot fit in free memory and swap (before llama.cpp allocates
    anything, so the answer is an error and not the kernel's OOM killer); logs a warning when only swap holds them.
    Offloaded models are not checked (their weights live in GPU memory). LFM_EDGE_SKIP_MEMORY_CHECK=1 skips it."""
    need = memory_need(files, context)
    free = available_memory(read_meminfo() if meminfo is None else meminfo)
    if free is None or context.n_gpu_layers != 0 or os.environ.get(SKIP_CHECK_ENV) == "1":
        return need
    available, swap = free
    summary = (
        f"{files.text.name} needs about {need.total / MB:.0f} MB (files {need.files / MB:.0f} MB, KV cache "
        f"{need.kv_cache / MB:.0f} MB at n_ctx {context.n_ctx}, buffers and runtime "
        f"{(RUNTIME_BYTES + COMPUTE_BYTES) / MB:.0f} MB)"
    )
    if need.total > available + swap:
        raise ModelError(
            f"{summary} but only {available / MB:.0f} MB of memory and {swap / MB:.0f} MB of swap are free: use a "
            "smaller quantization (Q4_0), the low-memory profile (--low-memory), a smaller --n-ctx, or add swap "
            f"({SKIP_CHECK_ENV}=1 skips this check)"
        )
    if need.total > available:
        log.warning("%s and %.0f MB of memory are free: it will swap", summary, available / MB)
    return need
