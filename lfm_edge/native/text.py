"""The text model and its llama.cpp context: tokenize, decode token ids or embeddings, read logits, snapshot state.

Several sequences (ContextOptions.n_seq) share one unified KV cache; each has its own recurrent state. LFM2 is
hybrid (short-conv recurrent state + KV cache): a sequence cannot be rolled back to an arbitrary position, so callers
keep snapshots (`save_state` / `load_state`, llama_state_seq_*) where they may want to return to.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from llama_cpp import llama_cpp as lc

from lfm_edge.errors import ConfigError, ContextLengthError, ModelClosedError, ModelError
from lfm_edge.native import cpu
from lfm_edge.native.compute_thread import COMPUTE
from lfm_edge.native.logs import route_native_logs
from lfm_edge.native.repack import RepackOverrides, repack_overrides

log = logging.getLogger(__name__)


Logits = Literal["none", "last", "all"]


@dataclass(frozen=True)
class _Batches:
    count: int
    start: int
    embd_width: int  # 0: token ids
    logits: Logits
    seq: int = 0


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
    # Sequences (slots): conversations and concurrent generations held at once; they share the n_ctx positions of
    # one unified KV cache, and each has its own small recurrent state. See README "Threads and slots".
    n_seq: int = 4
    # llama.cpp's extra weight layouts (CPU_REPACK, AMX): None = on, except where ggml's AMX kernels would run
    # (see _extra_buffers); True/False force them.
    extra_buffers: bool | None = None
    kv_cache_type: str | None = None  # "f16" (None: llama.cpp's default), "q8_0", "q4_0", "f32" (profiles.py)

    def __post_init__(self) -> None:
        if self.kv_cache_type not in (None, "f16", "q8_0", "q4_0", "f32"):
            raise ConfigError(f"unknown KV cache type {self.kv_cache_type!r}: use f16, q8_0, q4_0 or f32")
        _check_int("n_seq", self.n_seq, 1, 64, "sequences (slots) held at once")
        _check_int("n_ctx", self.n_ctx, 16, _MAX_N_CTX, "the context size in tokens")
        if self.n_threads is not None:
            _check_int("n_threads", self.n_threads, 1, 1024, "None = one per physical core")
        _check_int("n_batch", self.n_batch, 1, _MAX_N_CTX, "tokens evaluated per llama_decode call")
        if self.n_batch < self.n_seq:  # llama.cpp aborts (GGML_ASSERT n_outputs_max) when a batch is narrower
            raise ConfigError(f"n_batch={self.n_batch} must be >= n_seq={self.n_seq}: raise n_batch or lower n_seq")
        _check_int("n_gpu_layers", self.n_gpu_layers, -(2**31), 2**31 - 1, "negative = all, 0 = none")
        _check_int("main_gpu", self.main_gpu, 0, 1024, "the GPU index")
        for name in ("flash_attention", "mmap", "extra_buffers"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r:.40} must be True, False or None")
        if not isinstance(self.parity, bool):
            raise ConfigError(f"parity={self.parity!r:.40} must be True or False")


_MAX_N_CTX = 1 << 24  # a hard ceiling; a model's own training context is checked at load (TextModel)


def _check_int(name: str, value: object, low: int, high: int, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name}={value!r:.40} must be an integer in [{low}, {high}] ({meaning})")


default_threads = cpu.default_threads  # one per physical core (see cpu.py)


def amx_kernels_active() -> bool:
    """True when this llama.cpp build has ggml's AMX matmul kernels and this CPU runs them ("AMX_INT8 = 1")."""
    return "AMX_INT8 = 1" in bytes(lc.llama_print_system_info()).decode(errors="replace")


def _extra_buffers(options: ContextOptions) -> bool:
    """Whether weights may go to llama.cpp's extra buffer types. ggml's AMX kernels (llama-cpp-python 0.3.36, built
    on a CPU with AMX: Intel Sapphire Rapids and later) crash this model: SIGSEGV in ggml_backend_amx_mul_mat on the
    first llama_decode of two or more tokens, for every quantized type (Q4_0, Q8_0, Q4_K_M...), tiny and full size,
    through llama-cpp-python's own Llama class too. With extra buffers off the weights stay in plain CPU buffers:
    correct, without the repacked Q4_0/Q8_0 layout (slower there). Elsewhere they stay on (CPU_REPACK)."""
    if options.extra_buffers is not None:
        return options.extra_buffers
    if amx_kernels_active():
        log.info("llama.cpp's AMX kernels are active on this CPU and crash LFM2: extra weight buffers are off")
        return False
    return True


def _repack_without_amx(path: Path, options: ContextOptions, extra_buffers: bool) -> RepackOverrides | None:
    """Where the AMX guard turned extra buffers off (not the caller), a CPU-only model still gets CPU_REPACK weights,
    by name (native/repack.py). Offloaded layers keep llama.cpp's own placement."""
    if extra_buffers or options.extra_buffers is not None or options.n_gpu_layers != 0:
        return None
    return repack_overrides(path)


def _load_mode(options: ContextOptions) -> int:
    """llama.cpp's CPU backend repacks Q4_0/Q8_0/IQ4_NL weights into interleaved copies at load time. A mapped file's
    pages of those tensors stay resident beside the copies (the Q4_0 text model: 427 MB resident after loading
    mapped, 278 MB read), so a CPU-only model is read, not mapped. Offloaded layers leave no host copy: mapped."""
    mapped = options.mmap if options.mmap is not None else options.n_gpu_layers != 0
    return int(lc.LLAMA_LOAD_MODE_MMAP if mapped else lc.LLAMA_LOAD_MODE_NONE)


class CacheFullError(ContextLengthError):
    """llama_decode found no free cells: the sequences held at once fill the (unified) KV cache."""


class _Handles:
    """The native pointers of one TextModel, freed exactly once: by close(), or by a finalizer when the TextModel is
    dropped unclosed. A process forked after loading never frees them (they are its parent's; llama.cpp's thread
    pool does not survive fork) and never uses them."""

    def __init__(self) -> None:
        self.model: Any = None
        self.ctx: Any = None
        self.pid = os.getpid()

    def free(self) -> None:
        if os.getpid() != self.pid:
            return
        if self.ctx:
            lc.llama_free(self.ctx)
        if self.model:
            lc.llama_model_free(self.model)
        self.ctx = self.model = None


def check_same_process(pid: int, what: str) -> None:
    if os.getpid() != pid:
        raise ModelClosedError(
            f"this {what} was loaded in process {pid} and cannot be used in a forked child ({os.getpid()}): llama.cpp "
            "state does not survive fork; load the model in the child, or use multiprocessing's 'spawn' start method"
        )


class TextModel:
    """A loaded text GGUF with one context."""

    def __init__(self, path: Path, options: ContextOptions | None = None) -> None:
        self.options = options or ContextOptions()
        route_native_logs()
        lc.llama_backend_init()
        self._handles = _Handles()
        self._finalizer = weakref.finalize(self, self._handles.free)
        model_params = lc.llama_model_default_params()
        model_params.n_gpu_layers = self.options.n_gpu_layers
        model_params.main_gpu = self.options.main_gpu
        model_params.load_mode = _load_mode(self.options)
        model_params.use_extra_bufts = _extra_buffers(self.options)
        overrides = _repack_without_amx(path, self.options, model_params.use_extra_bufts)
        if overrides is not None:
            model_params.tensor_buft_overrides = overrides.pointer
        self._handles.model = lc.llama_model_load_from_file(str(path).encode(), model_params)
        self.repacked_weights = len(overrides.names) if overrides is not None else 0
        if not self._handles.model:
            raise ModelError(f"llama.cpp could not load {path}: not a GGUF text model, or a truncated/corrupt file")
        self._vocab = lc.llama_model_get_vocab(self._handles.model)
        self.n_embd = int(lc.llama_model_n_embd(self._handles.model))
        self.n_vocab = int(lc.llama_vocab_n_tokens(self._vocab))
        n_ctx_train = int(lc.llama_model_n_ctx_train(self._handles.model))
        if n_ctx_train > 0 and self.options.n_ctx > n_ctx_train:
            self.close()
            raise ConfigError(
                f"n_ctx={self.options.n_ctx} exceeds the {n_ctx_train} positions this model was trained for: "
                f"load with n_ctx <= {n_ctx_train}"
            )
        self._handles.ctx = lc.llama_init_from_model(self._handles.model, self._context_params())
        if not self._handles.ctx and self.options.kv_cache_type not in (None, "f16", "f32"):
            # quantized K/V need head sizes divisible by the block (32): e.g. the tiny test model's 16 is not
            log.warning("llama.cpp refused a %s KV cache for %s: using F16", self.options.kv_cache_type, path.name)
            self.options = dataclasses.replace(self.options, kv_cache_type=None)
            self._handles.ctx = lc.llama_init_from_model(self._handles.model, self._context_params())
        if not self._handles.ctx:
            self.close()
            raise ModelError(f"llama.cpp could not create a context of {self.options.n_ctx} tokens for {path}")
        # What llama.cpp really allocated (it pads n_ctx and caps n_batch at the requested n_ctx).
        self.n_ctx = int(lc.llama_n_ctx(self._handles.ctx))
        self.n_batch = max(1, min(int(lc.llama_n_batch(self._handles.ctx)), int(lc.llama_n_ubatch(self._handles.ctx))))
        self._memory = lc.llama_get_memory(self._handles.ctx)
        self.decode_seconds = 0.0  # time spent inside llama_decode so far (benchmarks read differences of it)

    @property
    def model(self) -> Any:
        self.check_usable()
        return self._handles.model

    @property
    def ctx(self) -> Any:
        self.check_usable()
        return self._handles.ctx

    @property
    def memory(self) -> Any:
        self.check_usable()
        return self._memory

    @property
    def vocab(self) -> Any:
        self.check_usable()
        return self._vocab

    @property
    def closed(self) -> bool:
        return not self._handles.ctx

    def check_usable(self) -> None:
        """Raises ModelClosedError after close() or in a forked child; every native call goes through this."""
        check_same_process(self._handles.pid, "model")
        if not self._handles.ctx:
            raise ModelClosedError("the model is closed: load it again (lfm_edge.load) to use it")

    def _context_params(self) -> lc.llama_context_params:
        params: lc.llama_context_params = lc.llama_context_default_params()
        params.n_ctx = self.options.n_ctx
        params.n_batch = self.options.n_batch
        params.n_ubatch = self.options.n_batch
        params.n_seq_max = self.options.n_seq
        params.kv_unified = self.options.n_seq > 1  # every sequence may use the whole context; they share its cells
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
        """Frees the context and the weights now (idempotent); later calls raise ModelClosedError."""
        self._handles.free()
        self._finalizer.detach()

    def metadata(self, key: str) -> str | None:
        buffer = ctypes.create_string_buffer(1 << 16)
        size = lc.llama_model_meta_val_str(self.model, key.encode(), buffer, len(buffer))
        if size < 0:
            return None
        if size >= len(buffer):  # the chat template can be long
            buffer = ctypes.create_string_buffer(size + 1)
            lc.llama_model_meta_val_str(self.model, key.encode(), buffer, len(buffer))
        return buffer.value.decode("utf-8", errors="replace")

    def tokenize(self, text: str, *, add_special: bool = False, special: bool = True) -> list[int]:
        """Token ids of text; special tokens written as text (<|im_start|>...) are parsed as special tokens unless
        `special` is False."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (lc.llama_token * capacity)()
        count = lc.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, special)
        if count < 0:
            tokens = (lc.llama_token * -count)()
            count = lc.llama_tokenize(self.vocab, data, len(data), tokens, -count, add_special, special)
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

    def clear(self, seq: int | None = None) -> None:
        """Forgets every sequence, or one."""
        if seq is None:
            lc.llama_memory_clear(self.memory, True)
        elif not lc.llama_memory_seq_rm(self.memory, seq, -1, -1):
            raise ModelError(f"llama.cpp could not clear sequence {seq}")

    def decode_tokens(self, tokens: list[int], start: int, *, logits_for_last: bool = True, seq: int = 0) -> None:
        """Evaluates tokens at positions start, start+1, ... of sequence `seq` (batches of n_batch)."""

        def load(batch: lc.llama_batch, offset: int, size: int) -> None:
            for i in range(size):
                batch.token[i] = tokens[offset + i]

        self._decode_in_batches(_Batches(len(tokens), start, 0, "last" if logits_for_last else "none", seq), load)

    def decode_step(self, entries: list[tuple[int, int, int]]) -> None:
        """One llama_decode of (token, position, sequence) entries, one per sequence, logits for each: row i of the
        output belongs to entries[i] (continuous batching)."""
        if len(entries) > self.n_batch:
            raise ModelError(f"{len(entries)} sequences in one step exceed n_batch {self.n_batch}")
        for _, position, _ in entries:
            self._check_room(position, 1)
        batch = lc.llama_batch_init(len(entries), 0, 1)
        try:
            for i, (token, position, seq) in enumerate(entries):
                batch.token[i] = token
                self._fill_slot(batch, i, position, seq)
                batch.logits[i] = 1
            batch.n_tokens = len(entries)
            self._decode(batch)
        finally:
            lc.llama_batch_free(batch)

    def decode_tokens_all_logits(self, tokens: list[int], start: int) -> np.ndarray:
        """Evaluates tokens at positions start, ... and returns the logits of every one of them, shape
        (len(tokens), n_vocab): row i is the next-token distribution after tokens[i] (teacher forcing)."""

        def load(batch: lc.llama_batch, offset: int, size: int) -> None:
            for i in range(size):
                batch.token[i] = tokens[offset + i]

        rows = self._decode_in_batches(_Batches(len(tokens), start, 0, "all"), load)
        assert rows is not None
        return rows

    def decode_embeddings(
        self, embeddings: np.ndarray, start: int, *, logits_for_last: bool = False, seq: int = 0
    ) -> None:
        """Evaluates rows of input embeddings (image features) at positions start, start+1, ..."""
        rows = np.ascontiguousarray(embeddings, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.n_embd:
            raise ModelError(f"image embeddings of width {rows.shape[-1]} do not fit this model (n_embd {self.n_embd})")

        def load(batch: lc.llama_batch, offset: int, size: int) -> None:
            chunk = rows[offset : offset + size]
            ctypes.memmove(batch.embd, chunk.ctypes.data, chunk.nbytes)

        want: Logits = "last" if logits_for_last else "none"
        self._decode_in_batches(_Batches(len(rows), start, self.n_embd, want, seq), load)

    def _decode_in_batches(self, plan: _Batches, load: Callable[[lc.llama_batch, int, int], None]) -> np.ndarray | None:
        """Decodes plan.count positions from plan.start in batches of n_batch; `load` fills each batch's tokens or
        embeddings. Returns every position's logits when plan.logits == "all"."""
        self._check_room(plan.start, plan.count)
        rows = np.empty((plan.count, self.n_vocab), dtype=np.float32) if plan.logits == "all" else None
        for offset in range(0, plan.count, self.n_batch):
            size = min(self.n_batch, plan.count - offset)
            batch = lc.llama_batch_init(size, plan.embd_width, 1)
            try:
                load(batch, offset, size)
                for i in range(size):
                    self._fill_slot(batch, i, plan.start + offset + i, plan.seq)
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
    def _fill_slot(batch: lc.llama_batch, index: int, position: int, seq: int) -> None:
        slots: Any = batch  # raw ctypes pointers; llama-cpp-python's annotations do not fit indexing them
        slots.pos[index] = position
        slots.n_seq_id[index] = 1
        slots.seq_id[index][0] = seq

    def _check_room(self, start: int, count: int) -> None:
        if start + count > self.n_ctx:
            raise ContextLengthError(
                f"the prompt needs {start + count} positions but the context holds {self.n_ctx}: "
                "shorten the conversation, use fewer/smaller images (max_image_tokens), or load with a larger n_ctx"
            )

    def _decode(self, batch: lc.llama_batch) -> None:
        started = time.perf_counter()
        status = COMPUTE.run(lc.llama_decode, self.ctx, batch)  # see compute_thread.py
        self.decode_seconds += time.perf_counter() - started
        if status == 1:
            raise CacheFullError(
                "the context is full: the sequences held at once need more positions than its n_ctx cells; load "
                "with a larger n_ctx or fewer slots (n_seq)"
            )
        if status != 0:
            raise ModelError(f"llama_decode failed with status {status}")

    def logits_row(self, row: int) -> np.ndarray:
        """A copy of the logits of output row `row` of the last decode."""
        pointer = lc.llama_get_logits_ith(self.ctx, row)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    def last_logits(self) -> np.ndarray:
        pointer = lc.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    def save_state(self, seq: int = 0) -> bytes:
        size = lc.llama_state_seq_get_size(self.ctx, seq)
        buffer = (ctypes.c_uint8 * size)()
        written = lc.llama_state_seq_get_data(self.ctx, buffer, size, seq)
        # Not bytes(buffer[:written]): slicing a ctypes array builds a list of ints first, 8+ bytes per state byte
        # (a 2,342-token image prompt's 28 MB state: 0.8 s and ~260 MB resident for a moment).
        return ctypes.string_at(buffer, written)

    def load_state(self, state: bytes, seq: int = 0) -> None:
        self.clear(seq)
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if lc.llama_state_seq_set_data(self.ctx, buffer, len(state), seq) == 0:
            raise ModelError("llama.cpp refused to restore a saved state")
