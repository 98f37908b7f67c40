"""The evaluation engine: a prompt is a sequence of token ids and image-embedding blocks; the engine evaluates only
what is new since the last call and generates from there.

Reuse (LFM2 is hybrid, so the cache cannot be rolled back to an arbitrary position): if what was evaluated is a
prefix of the new prompt, only the rest is evaluated; otherwise the longest saved snapshot that is a prefix is
restored (llama_state_seq_* data, taken at the end of each prompt) and the rest evaluated from there; otherwise the
context is cleared and everything evaluated.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from lfm_edge.errors import ContextLengthError, ModelError, PromptError
from lfm_edge.native.sampling import Sampler, SamplingParams
from lfm_edge.native.text import TextModel

log = logging.getLogger(__name__)

IMAGE_TOKEN_ID = 396  # `<image>`: the id transformers' input_ids hold at image positions
_MAX_SNAPSHOTS = 3


@dataclass(frozen=True)
class ImageBlock:
    """Embeddings of one crop, placed at consecutive positions; `key` identifies its pixels and knobs."""

    key: str
    embeddings: np.ndarray = field(repr=False)

    @property
    def length(self) -> int:
        return int(self.embeddings.shape[0])

    @staticmethod
    def of(embeddings: np.ndarray, key: str | None = None) -> ImageBlock:
        digest = key or hashlib.sha256(np.ascontiguousarray(embeddings).tobytes()).hexdigest()
        return ImageBlock(digest, embeddings)


Item = int | ImageBlock
Unit = int | tuple[str, int]  # a token id, or (image key, length): what prefix matching compares


def _units(items: Sequence[Item]) -> list[Unit]:
    return [item if isinstance(item, int) else (item.key, item.length) for item in items]


def _positions(units: Sequence[Unit]) -> int:
    return sum(1 if isinstance(unit, int) else unit[1] for unit in units)


@dataclass(frozen=True)
class PrefillStats:
    reused_positions: int
    evaluated_positions: int
    seconds: float


@dataclass
class _Snapshot:
    units: list[Unit]
    state: bytes


class Engine:
    def __init__(self, text: TextModel) -> None:
        self.text = text
        self._evaluated: list[Unit] = []
        self._snapshots: list[_Snapshot] = []
        self.max_snapshots = _MAX_SNAPSHOTS  # 0: none (the low-memory profile)

    @property
    def n_past(self) -> int:
        return _positions(self._evaluated)

    def reset(self) -> None:
        self.text.clear()
        self._evaluated = []
        self._snapshots = []

    def prefill(self, items: Sequence[Item]) -> PrefillStats:
        """Makes the context hold exactly `items`, evaluating as little as possible; logits of the last position
        are then available. Raises PromptError (context unchanged... or reset) when the prompt does not fit."""
        started = time.perf_counter()
        units = _units(items)
        if not units:
            raise PromptError("the prompt is empty")
        total = _positions(units)
        if total > self.text.n_ctx:
            raise ContextLengthError(
                f"the prompt needs {total} positions but the context holds {self.text.n_ctx}: shorten the "
                "conversation, use fewer/smaller images (max_image_tokens), or load with a larger n_ctx"
            )
        keep = self._restore_longest_prefix(units)
        try:
            self._evaluate(items[keep:], logits_for_last=True)
        except BaseException:
            self.reset()  # a half-evaluated prompt is useless; leave a clean, usable engine
            raise
        self._remember_snapshot()
        reused = _positions(units[:keep])
        return PrefillStats(reused, total - reused, time.perf_counter() - started)

    def _restore_longest_prefix(self, units: list[Unit]) -> int:
        """Number of leading items already in the context after this call (always < len(units))."""
        evaluated = self._evaluated
        if len(evaluated) < len(units) and units[: len(evaluated)] == evaluated:
            return len(evaluated)
        best = max(
            (s for s in self._snapshots if len(s.units) < len(units) and units[: len(s.units)] == s.units),
            key=lambda s: len(s.units),
            default=None,
        )
        if best is not None:
            self.text.load_state(best.state)
            self._evaluated = list(best.units)
            return len(best.units)
        self.text.clear()
        self._evaluated = []
        return 0

    def _evaluate(self, items: Sequence[Item], *, logits_for_last: bool) -> None:
        index = 0
        while index < len(items):
            item = items[index]
            last = index == len(items) - 1
            if isinstance(item, ImageBlock):
                self.text.decode_embeddings(item.embeddings, self.n_past, logits_for_last=logits_for_last and last)
                self._evaluated.append((item.key, item.length))
                index += 1
                continue
            run = index
            while run < len(items) and not isinstance(items[run], ImageBlock):
                run += 1
            tokens = [int(t) for t in items[index:run] if not isinstance(t, ImageBlock)]
            at_end = run == len(items)
            self.text.decode_tokens(tokens, self.n_past, logits_for_last=logits_for_last and at_end)
            self._evaluated.extend(tokens)
            index = run

    def _remember_snapshot(self) -> None:
        kept = [s for s in self._snapshots if s.units != self._evaluated]
        self._snapshots = kept[len(kept) - self.max_snapshots + 1 :] if self.max_snapshots > 1 else []
        if self.max_snapshots <= 0:
            return
        self._snapshots.append(_Snapshot(list(self._evaluated), self.text.save_state()))

    def logits(self) -> np.ndarray:
        return self.text.last_logits()

    def generate(self, params: SamplingParams, max_tokens: int) -> Generator[int, None, None]:
        """Samples up to max_tokens tokens after the prefilled prompt, evaluating each; stops at end-of-generation
        (the end token is yielded but not evaluated)."""
        if not self._evaluated:
            raise ModelError("generate() needs a prefilled prompt")
        history = [t for u in self._evaluated for t in ([u] if isinstance(u, int) else [IMAGE_TOKEN_ID] * u[1])]
        sampler = Sampler(params, self.text.vocab, self.text.n_ctx, history)
        try:
            for _ in range(max_tokens):
                token = sampler.sample(self.text.ctx)
                yield token
                if self.text.is_end_of_generation(token) or self.n_past >= self.text.n_ctx:
                    return
                self.text.decode_tokens([token], self.n_past, logits_for_last=True)
                self._evaluated.append(token)
        finally:
            sampler.close()
