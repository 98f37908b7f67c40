"""The text model and its llama.cpp context: tokenize, decode token ids or embeddings, read logits, snapshot state.

One sequence (seq 0). LFM2 is hybrid (short-conv recurrent state + KV cache): the cache cannot be rolled back to an
arbitrary position, so callers keep snapshots (`save_state` / `load_state`, llama_state_seq_*) where they may want
to return to.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from llama_cpp import llama_cpp as lc

from lfm_edge.errors import ConfigError, ContextLengthError, ModelError
from lfm_edge.native import cpu
from lfm_edge.native.logs import route_native_logs

log = logging.getLogger(__name__)
_SEQ = 0


Logits = Literal["none", "last", "all"]


@dataclass(frozen=True)
class _Batches:
    count: int
    start: int
    embd_width: int  # 0: token ids
    logits: Logits


@dataclass(frozen=True)
class ContextOptions:
    """llama.cpp model/context settings. `parity=True` gives an F32 KV cache and no flash attention, the settings
    under which logits are comparable with transformers (SPEC.md §9); users keep the defaults."""

    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = 0
    main_gpu: int = 0
    flash_attention: bool | None = None  # None: llama.cpp decides (auto)
    parity: bool = False
    mmap: bool | None = None  # None: read the file when nothing is offloaded, map it otherwise (see _load_mode)
    kv_cache_type: str | None = None  # "f16" (None: llama.cpp's default), "q8_0", "q4_0", "f32" (profiles.py)

    def __post_init__(self) -> None:
        if self.kv_cache_type not in (None, "f16", "q8_0", "q4_0", "f32"):
            raise ConfigError(f"unknown KV cache type {self.kv_cache_type!r}: use f16, q8_0, q4_0 or f32")


default_threads = cpu.default_threads  # one per physical core (see cpu.py)


def _load_mode(options: ContextOptions) -> int:
    """llama.cpp's CPU backend repacks Q4_0/Q8_0/IQ4_NL weights into interleaved copies at load time. A mapped file's
    pages of those tensors stay resident beside the copies (the Q4_0 text model: 427 MB resident after loading
    mapped, 278 MB read), so a CPU-only model is read, not mapped. Offloaded layers leave no host copy: mapped."""
    mapped = options.mmap if options.mmap is not None else options.n_gpu_layers != 0
    return int(lc.LLAMA_LOAD_MODE_MMAP if mapped else lc.LLAMA_LOAD_MODE_NONE)


class TextModel:
    """A loaded text GGUF with one context."""

    def __init__(self, path: Path, options: ContextOptions | None = None) -> None:
        self.options = options or ContextOptions()
        route_native_logs()
        lc.llama_backend_init()
        model_params = lc.llama_model_default_params()
        model_params.n_gpu_layers = self.options.n_gpu_layers
        model_params.main_gpu = self.options.main_gpu
        model_params.load_mode = _load_mode(self.options)
        self.model = lc.llama_model_load_from_file(str(path).encode(), model_params)
        if not self.model:
            raise ModelError(f"llama.cpp could not load {path}: not a GGUF text model, or a truncated/corrupt file")
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_embd = int(lc.llama_model_n_embd(self.model))
        self.n_vocab = int(lc.llama_vocab_n_tokens(self.vocab))
        self.ctx = lc.llama_init_from_model(self.model, self._context_params())
        if not self.ctx and self.options.kv_cache_type not in (None, "f16", "f32"):
            # quantized K/V need head sizes divisible by the block (32): e.g. the tiny test model's 16 is not
            log.warning("llama.cpp refused a %s KV cache for %s: using F16", self.options.kv_cache_type, path.name)
            self.options = dataclasses.replace(self.options, kv_cache_type=None)
            self.ctx = lc.llama_init_from_model(self.model, self._context_params())
        if not self.ctx:
            lc.llama_model_free(self.model)
            raise ModelError(f"llama.cpp could not create a context of {self.options.n_ctx} tokens for {path}")
        self.n_ctx = int(lc.llama_n_ctx(self.ctx))
        self.memory = lc.llama_get_memory(self.ctx)
        self.decode_seconds = 0.0  # time spent inside llama_decode so far (benchmarks read differences of it)

    def _context_params(self) -> lc.llama_context_params:
        params: lc.llama_context_params = lc.llama_context_default_params()
        params.n_ctx = self.options.n_ctx
        params.n_batch = self.options.n_batch
        params.n_ubatch = self.options.n_batch
        threads = self.options.n_threads or default_threads()
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        if self.options.flash_attention is not None:
            params.flash_attn_type = 1 if self.options.flash_attention else 0
        if self.options.kv_cache_type is not None:
            params.type_k = params.type_v = int(getattr(lc, f"GGML_TYPE_{self.options.kv_cache_type.upper()}"))
        if self.options.parity:
            params.flash_attn_type = 0
            params.type_k = params.type_v = lc.GGML_TYPE_F32
        return params

    def close(self) -> None:
        if getattr(self, "ctx", None):
            lc.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            lc.llama_model_free(self.model)
            self.model = None

    def metadata(self, key: str) -> str | None:
        buffer = ctypes.create_string_buffer(1 << 16)
        size = lc.llama_model_meta_val_str(self.model, key.encode(), buffer, len(buffer))
        if size < 0:
            return None
        if size >= len(buffer):  # the chat template can be long
            buffer = ctypes.create_string_buffer(size + 1)
            lc.llama_model_meta_val_str(self.model, key.encode(), buffer, len(buffer))
        return buffer.value.decode("utf-8", errors="replace")

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        """Token ids of text; special tokens written as text (<|im_start|>...) are parsed as special tokens."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (lc.llama_token * capacity)()
        count = lc.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, True)
        if count < 0:
            tokens = (lc.llama_token * -count)()
            count = lc.llama_tokenize(self.vocab, data, len(data), tokens, -count, add_special, True)
        return list(tokens[:count])

    def piece(self, token: int) -> bytes:
        """The token's bytes; control tokens as their text (<|tool_call_start|> must reach the tool-call parser)."""
        buffer = ctypes.create_string_buffer(64)
        size = lc.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, True)
        if size < 0:
            buffer = ctypes.create_string_buffer(-size)
            size = lc.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, True)
        return buffer.raw[:size]

    def is_end_of_generation(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_eog(self.vocab, token))

    def clear(self) -> None:
        lc.llama_memory_clear(self.memory, True)

    def decode_tokens(self, tokens: list[int], start: int, *, logits_for_last: bool = True) -> None:
        """Evaluates tokens at positions start, start+1, ... (batches of n_batch)."""

        def load(batch: lc.llama_batch, offset: int, size: int) -> None:
            for i in range(size):
                batch.token[i] = tokens[offset + i]

        self._decode_in_batches(_Batches(len(tokens), start, 0, "last" if logits_for_last else "none"), load)

    def decode_tokens_all_logits(self, tokens: list[int], start: int) -> np.ndarray:
        """Evaluates tokens at positions start, ... and returns the logits of every one of them, shape
        (len(tokens), n_vocab): row i is the next-token distribution after tokens[i] (teacher forcing)."""

        def load(batch: lc.llama_batch, offset: int, size: int) -> None:
            for i in range(size):
                batch.token[i] = tokens[offset + i]

        rows = self._decode_in_batches(_Batches(len(tokens), start, 0, "all"), load)
        assert rows is not None
        return rows

    def decode_embeddings(self, embeddings: np.ndarray, start: int, *, logits_for_last: bool = False) -> None:
        """Evaluates rows of input embeddings (image features) at positions start, start+1, ..."""
        rows = np.ascontiguousarray(embeddings, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.n_embd:
            raise ModelError(f"image embeddings of width {rows.shape[-1]} do not fit this model (n_embd {self.n_embd})")

        def load(batch: lc.llama_batch, offset: int, size: int) -> None:
            chunk = rows[offset : offset + size]
            ctypes.memmove(batch.embd, chunk.ctypes.data, chunk.nbytes)

        want: Logits = "last" if logits_for_last else "none"
        self._decode_in_batches(_Batches(len(rows), start, self.n_embd, want), load)

    def _decode_in_batches(self, plan: _Batches, load: Callable[[lc.llama_batch, int, int], None]) -> np.ndarray | None:
        """Decodes plan.count positions from plan.start in batches of n_batch; `load` fills each batch's tokens or
        embeddings. Returns every position's logits when plan.logits == "all"."""
        self._check_room(plan.start, plan.count)
        rows = np.empty((plan.count, self.n_vocab), dtype=np.float32) if plan.logits == "all" else None
        for offset in range(0, plan.count, self.options.n_batch):
            size = min(self.options.n_batch, plan.count - offset)
            batch = lc.llama_batch_init(size, plan.embd_width, 1)
            try:
                load(batch, offset, size)
                for i in range(size):
                    self._fill_slot(batch, i, plan.start + offset + i)
                    batch.logits[i] = plan.logits == "all"
                if plan.logits == "last" and offset + size == plan.count:
                    batch.logits[size - 1] = 1
                batch.n_tokens = size
                self._decode(batch)
            finally:
                lc.llama_batch_free(batch)
            for i in range(size if rows is not None else 0):
                pointer = lc.llama_get_logits_ith(self.ctx, i)
                rows[offset + i] = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))  # type: ignore[index]
        return rows

    @staticmethod
    def _fill_slot(batch: lc.llama_batch, index: int, position: int) -> None:
        slots: Any = batch  # raw ctypes pointers; llama-cpp-python's annotations do not fit indexing them
        slots.pos[index] = position
        slots.n_seq_id[index] = 1
        slots.seq_id[index][0] = _SEQ

    def _check_room(self, start: int, count: int) -> None:
        if start + count > self.n_ctx:
            raise ContextLengthError(
                f"the prompt needs {start + count} positions but the context holds {self.n_ctx}: "
                "shorten the conversation, use fewer/smaller images (max_image_tokens), or load with a larger n_ctx"
            )

    def _decode(self, batch: lc.llama_batch) -> None:
        started = time.perf_counter()
        status = lc.llama_decode(self.ctx, batch)
        self.decode_seconds += time.perf_counter() - started
        if status != 0:
            raise ModelError(f"llama_decode failed with status {status}")

    def last_logits(self) -> np.ndarray:
        pointer = lc.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    def save_state(self) -> bytes:
        size = lc.llama_state_seq_get_size(self.ctx, _SEQ)
        buffer = (ctypes.c_uint8 * size)()
        written = lc.llama_state_seq_get_data(self.ctx, buffer, size, _SEQ)
        # Not bytes(buffer[:written]): slicing a ctypes array builds a list of ints first, 8+ bytes per state byte
        # (a 2,342-token image prompt's 28 MB state: 0.8 s and ~260 MB resident for a moment).
        return ctypes.string_at(buffer, written)

    def load_state(self, state: bytes) -> None:
        self.clear()
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if lc.llama_state_seq_set_data(self.ctx, buffer, len(state), _SEQ) == 0:
            raise ModelError("llama.cpp refused to restore a saved state")
