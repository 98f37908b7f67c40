"""The `mtmd` vision backend: one already-preprocessed crop (uint8 H x W x 3, our HF-exact tiling) -> llama.cpp's mtmd
-> its image embeddings. mtmd is configured so it never resizes or tiles a crop (image_min_tokens=1,
image_max_tokens=4096: SPEC.md §9); its own preprocessing is then the identity, and the embeddings are those of
exactly our pixels.

`identity` names what the embeddings depend on: the mmproj file's CONTENT (sha256 of every byte, computed once, on
first use: a file replaced by another of the same name, size and time gets another identity), llama.cpp's version,
and the options that change the arithmetic (flash attention, GPU).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import llama_cpp as lc
from llama_cpp import mtmd_cpp as mtmd

from lfm_edge.errors import ImageError, ModelClosedError, ModelError
from lfm_edge.native.compute_thread import COMPUTE
from lfm_edge.native.logs import route_native_logs
from lfm_edge.native.text import check_same_process
from lfm_edge.vision.backends import EncoderRequest

log = logging.getLogger(__name__)

# Large enough that any crop of ours (<= 1024 patches of 16 px, i.e. <= 256 image tokens) is left as it is.
_NO_RESIZE_MIN_TOKENS = 1
_NO_RESIZE_MAX_TOKENS = 4096


@dataclass(frozen=True)
class VisionOptions:
    n_threads: int = 4
    use_gpu: bool = False
    flash_attention: bool | None = None  # None: mtmd's default (auto; on for CPU), as llama-mtmd-cli
    # mtmd sizes (and at init briefly touches, ~96 MB for 4096) its compute buffer for this many image tokens
    max_image_tokens: int = _NO_RESIZE_MAX_TOKENS


def _free_in(pid: int, ctx: mtmd.mtmd_context_p) -> None:
    if os.getpid() == pid:
        mtmd.mtmd_free(ctx)


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (hashlib's chunked reader: the file is never held in memory)."""
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise ModelError(f"cannot read the mmproj {path} ({exc}): check the file and its permissions") from exc


class VisionEncoder:
    """Owns an mtmd context (the mmproj) bound to a loaded text model; implements lfm_edge.vision.CropEncoder."""

    def __init__(self, mmproj: Path, text_model: lc.llama_model_p, options: VisionOptions | None = None) -> None:
        options = options or VisionOptions()
        self._mmproj = Path(mmproj)
        self._options = options
        self._identity: str | None = None
        route_native_logs()
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = options.use_gpu
        params.n_threads = options.n_threads
        params.print_timings = False
        params.warmup = False
        if options.flash_attention is not None:
            params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if options.flash_attention else 0
        params.image_min_tokens = _NO_RESIZE_MIN_TOKENS
        params.image_max_tokens = options.max_image_tokens
        self._n_embd = int(lc.llama_model_n_embd(text_model))
        self._ctx = mtmd.mtmd_init_from_file(str(mmproj).encode(), text_model, params)
        if not self._ctx:
            raise ModelError(f"llama.cpp could not load the mmproj {mmproj}: check it is an LFM2-VL mmproj GGUF")
        self._pid = os.getpid()
        # A VisionEncoder dropped without close() is freed by this (never in a forked child: see native/text.py).
        self._finalizer = weakref.finalize(self, _free_in, self._pid, self._ctx)
        self._marker = mtmd.mtmd_default_marker()

    @property
    def identity(self) -> str:
        if self._identity is None:
            self._identity = mtmd_identity(self._mmproj, self._options)
        return self._identity

    def close(self) -> None:
        if self._ctx:
            self._finalizer()
            self._ctx = None

    def __enter__(self) -> VisionEncoder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def encode(self, crop: np.ndarray) -> np.ndarray:
        """Embeddings [tokens, n_embd] (float32) of one crop; tokens = (H/32) * (W/32) for LFM2-VL."""
        check_same_process(self._pid, "vision encoder")
        if not self._ctx:
            raise ModelClosedError("the model is closed: load it again (lfm_edge.load) to use it")
        if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
            raise ImageError(f"a crop must be uint8 H x W x 3, got {crop.dtype} {crop.shape}")
        pixels = np.ascontiguousarray(crop)
        height, width = pixels.shape[:2]
        data = pixels.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        bitmap = mtmd.mtmd_bitmap_init(width, height, data)
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            return self._encode_bitmap(bitmap, chunks)
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            mtmd.mtmd_bitmap_free(bitmap)

    def _encode_bitmap(self, bitmap: mtmd.mtmd_bitmap_p, chunks: mtmd.mtmd_input_chunks_p) -> np.ndarray:
        text = mtmd.mtmd_input_text(self._marker, len(self._marker), False, True)
        bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
        if mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), bitmaps, 1) != 0:
            raise ModelError("mtmd could not tokenize the image crop")
        for index in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, index)
            if mtmd.mtmd_input_chunk_get_type(chunk) != mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                continue
            n_tokens = int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))
            if COMPUTE.run(mtmd.mtmd_encode_chunk, self._ctx, chunk) != 0:  # see compute_thread.py
                raise ModelError("mtmd failed to encode the image crop")
            output = mtmd.mtmd_get_output_embd(self._ctx)
            values = np.ctypeslib.as_array(output, shape=(n_tokens * self._n_embd,))
            return values.reshape(n_tokens, self._n_embd).copy()
        raise ModelError("mtmd produced no image chunk for the crop")


def mtmd_identity(mmproj: Path, options: VisionOptions) -> str:
    """What the embeddings of a crop through mtmd depend on: the mmproj's bytes, the llama.cpp build, its options."""
    return (
        f"mtmd:{file_digest(mmproj)}:llama-cpp-python {llama_cpp.__version__}:"
        f"fa={options.flash_attention}:gpu={options.use_gpu}"
    )


def open_mtmd(request: EncoderRequest) -> VisionEncoder:
    """The `mtmd` entry of lfm_edge.vision.backends."""
    options = VisionOptions(request.n_threads, request.use_gpu, request.flash_attention)
    return VisionEncoder(request.mmproj, request.text_model, options)
