"""The text model's state right after a prompt's last image, kept in the image cache's folder: a new process asking
anything about the same photo restores it (llama_state_seq_set_data: the attention KV and the short-conv states of
this hybrid model) and evaluates only what follows the image, instead of the 64-256 positions of every crop.

The engine (lfm_edge.engine, `Engine.prefix_store`) decides where: after the prompt's last image block, when
something follows it. This module decides under which key: everything that determines those bytes.
- the prompt prefix itself: every token id before the cut (system prompt, earlier turns, text before the image in
  the same turn, the image's marker tokens) and every image block's crop digest and length;
- the crops' embeddings: the vision encoder's identity (backend, mmproj content, llama.cpp version, options);
- the text weights: the text GGUF's sha256 (another file under the same name is another key);
- the arithmetic and the state layout: llama.cpp's version and CPU features, n_ctx, n_batch (= n_ubatch), sequences,
  KV cache type, flash attention, parity, GPU layers, extra weight buffers, threads.
Entries share the embedding entries' folder, checksums, atomic writes and LRU bound (lfm_edge.vision.store); a bad
entry is logged, deleted and rewritten after the prompt is evaluated, never given to llama.cpp.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import llama_cpp

from lfm_edge.engine import Unit
from lfm_edge.errors import ModelError
from lfm_edge.native.text import TextModel, _extra_buffers, default_threads
from lfm_edge.vision.cache import EmbeddingCache
from lfm_edge.vision.store import DiskStore
from lfm_edge.vision.weights import system_info

log = logging.getLogger(__name__)

STATE_FORMAT = "lfm-edge prefix state v1"


def text_digest(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise ModelError(f"cannot read the text model {path} ({exc}): check the file and its permissions") from exc


def state_identity(text_path: Path, text: TextModel, vision_identity: str) -> str:
    """What every state of this text model + encoder + context depends on, besides the prompt prefix."""
    options = text.options
    layout = (
        f"n_ctx={text.n_ctx} n_batch={text.n_batch} n_seq={options.n_seq} kv={options.kv_cache_type} "
        f"fa={options.flash_attention} parity={options.parity} gpu_layers={options.n_gpu_layers} "
        f"extra_buffers={_extra_buffers(options)} threads={options.n_threads or default_threads()}"
    )
    return "\n".join((STATE_FORMAT, f"text:{text_digest(text_path)}", f"vision:{vision_identity}",
                      f"llama-cpp-python {llama_cpp.__version__}", system_info().strip(), layout))  # fmt: skip


def units_text(units: Sequence[Unit]) -> str:
    return " ".join(str(unit) if isinstance(unit, int) else f"{unit[0]}*{unit[1]}" for unit in units)


class PrefixStates:
    """The engine's PrefixStore over a DiskStore: `load(units)`, `save(units, state)`, `reject(units, why)`."""

    def __init__(self, disk: DiskStore, identity: str) -> None:
        self.disk = disk
        self.identity = identity
        self.hits = 0
        self.writes = 0

    def _key(self, units: Sequence[Unit]) -> str:
        return f"{self.identity}\n{units_text(units)}"

    def load(self, units: Sequence[Unit]) -> bytes | None:
        state = self.disk.get_state(self._key(units))
        if state is not None:
            self.hits += 1
        return state

    def save(self, units: Sequence[Unit], state: bytes) -> None:
        self.disk.put_state(self._key(units), state)
        self.writes += 1

    def reject(self, units: Sequence[Unit], why: str) -> None:
        self.disk.discard_state(self._key(units), why)


def prefix_states(cache: EmbeddingCache | None, text_path: Path, text: TextModel) -> PrefixStates | None:
    """The persistent states beside the persistent embeddings (None: no cache folder, or one that cannot be read)."""
    if cache is None or cache.disk is None or not cache.disk.readable:
        return None
    return PrefixStates(cache.disk, state_identity(text_path, text, cache.encoder_identity))
