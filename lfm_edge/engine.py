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
import threading
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
    """The prefix-reusing evaluator over one llama.cpp context. Shared by every stream, chat and thread of a Model:
    `lock` (reentrant) serializes every use; `version` changes whenever the context's content changes, so a Cursor
    can tell whether the context still holds its state."""

    def __init__(self, text: TextModel) -> None:
        self.text = text
        self.lock = threading.RLock()
        self.version = 0
        self._evaluated: list[Unit] = []
        self._snapshots: list[_Snapshot] = []

    @property
    def n_past(self) -> int:
        return _positions(self._evaluated)

    def reset(self) -> None:
        with self.lock:
            self.version += 1
            self._evaluated = []
            self._snapshots = []
            self.text.clear()

    def prefill(self, items: Sequence[Item], *, remember: bool = True) -> PrefillStats:
        """Makes the context hold exactly `items`, evaluating as little as possible; logits of the last position
        are then available. Raises ContextLengthError (context unchanged) when the prompt does not fit; `remember`:
        snapshot the result so a later prompt that shares it as a prefix restores instead of re-evaluating."""
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
        with self.lock:
            self.version += 1
            keep = self._restore_longest_prefix(units)
            try:
                self._evaluate(items[keep:], logits_for_last=True)
            except BaseException:
                self.reset()  # a half-evaluated prompt is useless; leave a clean, usable engine
                raise
            if remember:
                self._remember_snapshot()
        reused = _positions(units[:keep])
        return PrefillStats(reused, total - reused, time.perf_counter() - started)

    def advance(self, token: int) -> None:
        """Evaluates one sampled token after what the context holds (its logits become the last)."""
        with self.lock:
            self.version += 1
            try:
                self.text.decode_tokens([token], self.n_past, logits_for_last=True)
            except BaseException:
                self.reset()
                raise
            self._evaluated.append(token)

    def sampler(self, params: SamplingParams, items: Sequence[Item]) -> Sampler:
        """A sampler for a generation after `items` (the repetition penalty sees the prompt); grammar and biases are
        checked here, before anything is evaluated."""
        history = [t for u in _units(items) for t in ([u] if isinstance(u, int) else [IMAGE_TOKEN_ID] * u[1])]
        with self.lock:
            return Sampler(params, self.text.vocab, self.text.n_ctx, history)

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
        self._snapshots = [s for s in self._snapshots if s.units != self._evaluated][-(_MAX_SNAPSHOTS - 1) :]
        self._snapshots.append(_Snapshot(list(self._evaluated), self.text.save_state()))

    def logits(self) -> np.ndarray:
        with self.lock:
            return self.text.last_logits()

    def generate(self, params: SamplingParams, max_tokens: int) -> Generator[int, None, None]:
        """Samples up to max_tokens tokens after the prefilled prompt, evaluating each; stops at end-of-generation
        (the end token is yielded but not evaluated)."""
        with self.lock:
            if not self._evaluated:
                raise ModelError("generate() needs a prefilled prompt")
            cursor = Cursor(self, list(self._evaluated_items()), params)
        try:
            for _ in range(max_tokens):
                token = cursor.next_token()
                yield token
                if self.text.is_end_of_generation(token) or cursor.full():
                    return
            cursor.settle()  # as a reply cut at max_tokens: fully in the context
        finally:
            cursor.close()

    def _evaluated_items(self) -> list[Item]:
        """The context's content as items; image blocks only by key (enough for a Cursor that starts here)."""
        return [u if isinstance(u, int) else _KeyOnly(u[0], u[1]) for u in self._evaluated]


class _KeyOnly(ImageBlock):
    """An image block known by key and length only: it matches the context's prefix but cannot be re-evaluated."""

    def __init__(self, key: str, length: int) -> None:
        super().__init__(key, np.zeros((length, 0), dtype=np.float32))


class Cursor:
    """One generation's place: its prompt items, the tokens it sampled and its own sampler. The engine is shared
    (other streams, chats, threads), so before each step the cursor checks that the context still holds its state
    (the version it left) and otherwise re-establishes it from its own items: a prompt snapshot restores the
    prompt, the sampled tokens are evaluated again, the sampler (grammar, penalties) never left this cursor."""

    def __init__(self, engine: Engine, items: Sequence[Item], params: SamplingParams) -> None:
        self.engine = engine
        self.items = list(items)
        self.tokens: list[int] = []
        self._prompt_positions = _positions(_units(self.items))
        self.sampler = engine.sampler(params, items)
        self._version = engine.version
        self._pending = False  # the last sampled token is not evaluated yet

    def prefill(self) -> PrefillStats:
        with self.engine.lock:
            stats = self.engine.prefill(self.items)
            self._version = self.engine.version
            return stats

    def next_token(self) -> int:
        """Samples the next token (raises SamplingError when none is allowed; nothing is then accepted)."""
        with self.engine.lock:
            self.settle()
            token = self.sampler.sample(self.engine.text.ctx)
            self.tokens.append(token)
            self._pending = True
            return token

    def settle(self) -> None:
        """Makes the context hold this cursor's items and every token it sampled."""
        engine = self.engine
        with engine.lock:
            if engine.version != self._version:  # another generation used the context meanwhile
                self._pending = False
                engine.prefill([*self.items, *self.tokens], remember=False)
            elif self._pending:
                self._pending = False
                engine.advance(self.tokens[-1])
            self._version = engine.version

    def full(self) -> bool:
        """True when the last sampled token has no position left to be evaluated at (so no further token either)."""
        return self._prompt_positions + len(self.tokens) > self.engine.text.n_ctx

    def close(self) -> None:
        self.sampler.close()
