"""The evaluation engine: a prompt is a sequence of token ids and image-embedding blocks; the engine evaluates only
what is new since the last call and generates from there.

Reuse (LFM2 is hybrid, so the cache cannot be rolled back to an arbitrary position): if what was evaluated is a
prefix of the new prompt, only the rest is evaluated; otherwise the longest saved snapshot that is a prefix is
restored (llama_state_seq_* data, taken at the end of each prompt) and the rest evaluated from there; otherwise the
context is cleared and everything evaluated. A prompt's end snapshot keeps its last logits too, so a generation
whose prompt was asked before (a retry, "regenerate") restores it whole and evaluates nothing (Cursor.prefill).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from lfm_edge.errors import ContextLengthError, ModelError, PromptError
from lfm_edge.native.sampling import Sampler, SamplingParams
from lfm_edge.native.text import CacheFullError, TextModel

log = logging.getLogger(__name__)

IMAGE_TOKEN_ID = 396  # `<image>`: the id transformers' input_ids hold at image positions
# Snapshots (prompt ends and parked slots) kept, least recently used dropped first: at most this many bytes (a
# full-size model's 2,342-token image prompt is ~28 MB) and this many snapshots.
SNAPSHOT_BUDGET_BYTES = 256 << 20
_MAX_SNAPSHOTS = 32


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
    # The last position's logits when the whole prompt was restored from a snapshot (nothing evaluated, so the
    # context's own logits belong to another decode); None: read them from the context.
    logits: np.ndarray | None = field(default=None, repr=False)


class PrefixStore(Protocol):
    """A persistent store of states after a prompt's last image (lfm_edge.vision.prefix_state): keyed by the units
    before the cut and by what the store knows of the model; `reject` drops an entry llama.cpp refused."""

    def load(self, units: Sequence[Unit]) -> bytes | None: ...

    def save(self, units: Sequence[Unit], state: bytes) -> None: ...

    def reject(self, units: Sequence[Unit], why: str) -> None: ...


@dataclass(eq=False)  # identity: list.remove must not compare the logits arrays of two equal prompts
class _Snapshot:
    units: list[Unit]
    state: bytes
    logits: np.ndarray | None = None  # of the last position, when taken right after that prompt's prefill


@dataclass(eq=False)
class Slot:
    """One llama.cpp sequence: what it holds, a version that changes with its content, the cursor generating in
    it (None: free) and when it was last used (least recently used slots are taken first)."""

    seq: int
    evaluated: list[Unit] = field(default_factory=list)
    version: int = 0
    owner: object | None = None
    used: int = 0
    # n_past as counted last: of which list object (`evaluated` is only appended to, or replaced), how many of its
    # units, their positions. Every decode step asks; summing a long conversation each time would grow with it.
    _counted: tuple[list[Unit] | None, int, int] = field(default=(None, 0, 0), repr=False)

    @property
    def n_past(self) -> int:
        held = self.evaluated
        counted, units, positions = self._counted
        if counted is not held or units > len(held):
            units = positions = 0
        positions += _positions(held[units:])
        self._counted = (held, len(held), positions)
        return positions


class Engine:
    """The prefix-reusing evaluator over one llama.cpp context with n_seq sequences (slots). Shared by every stream,
    chat and thread of a Model: `lock` (reentrant) serializes every use of the context.

    A prompt goes to the free slot holding its longest prefix (a chat's next turn finds its own slot), else to the
    least recently used one; a slot about to be overwritten is parked first as a snapshot (bounded by
    SNAPSHOT_BUDGET_BYTES), which a later prompt sharing it as a prefix restores into any slot."""

    def __init__(self, text: TextModel) -> None:
        self.text = text
        self.lock = threading.RLock()
        n_seq = int(getattr(text.options, "n_seq", 1))
        self.slots = [Slot(seq) for seq in range(n_seq)]
        self._snapshots: list[_Snapshot] = []
        self.max_snapshots = _MAX_SNAPSHOTS  # 0: none (the low-memory profile)
        self.prefix_store: PrefixStore | None = None  # states after the last image, shared by processes
        self._tick = 0
        self._current = self.slots[0]
        from lfm_edge.batching import Batcher

        self.batcher = Batcher(self)

    @property
    def n_past(self) -> int:
        """Positions held by the slot used last."""
        return self._current.n_past

    def reset(self) -> None:
        with self.lock:
            for slot in self.slots:
                slot.evaluated = []
                slot.version += 1
                slot.used = 0  # the next prompt goes to slot 0 (sequence 0), as single-sequence callers expect
            self._current = self.slots[0]
            self._snapshots = []
            self.text.clear()

    def _touch(self, slot: Slot) -> None:
        self._tick += 1
        slot.used = self._tick
        slot.version += 1
        self._current = slot

    def choose_slot(self, units: Sequence[Unit], owner: object | None) -> Slot:
        """The slot for a prompt: free slots first (owned by nobody or by `owner`), then the one holding the longest
        prefix of the prompt, then the least recently used."""

        def rank(slot: Slot) -> tuple[bool, int, int]:
            held = slot.evaluated
            prefix = len(held) if len(held) < len(units) and list(units[: len(held)]) == held else 0
            return (slot.owner is None or slot.owner is owner, prefix, -slot.used)

        return max(self.slots, key=rank)

    def prefill(
        self,
        items: Sequence[Item],
        *,
        remember: bool = True,
        owner: object | None = None,
        whole_from_snapshot: bool = False,
    ) -> PrefillStats:
        """Makes a slot hold exactly `items` (evaluating as little as possible) and gives it to `owner`; logits
        of the last position are then available in the context, or, with `whole_from_snapshot` when the same
        prompt was prefilled before and its snapshot is kept, restored with nothing evaluated and the logits in
        the stats. Raises ContextLengthError (nothing changed) when the prompt does not fit; `remember`:
        snapshot the result (with its last logits) so a later prompt that shares it as a prefix, or is the same
        prompt, restores it."""
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
            slot = self.choose_slot(units, owner)
            if slot.owner is not None and slot.owner is not owner:
                log.debug("slot %d taken from a generation nobody reads (it resumes from its own state)", slot.seq)
            slot.owner = owner
            self._touch(slot)
            whole = self._restore_whole(slot, units) if whole_from_snapshot else None
            if whole is not None:
                return PrefillStats(total, 0, time.perf_counter() - started, whole)
            keep = self._evaluate_in(slot, items, units)
            if remember:
                logits = self.text.last_logits()
                logits.setflags(write=False)  # shared by every cursor that restores this prompt
                self._remember_snapshot(slot, logits)
        reused = _positions(units[:keep])
        return PrefillStats(reused, total - reused, time.perf_counter() - started)

    def _restore_whole(self, slot: Slot, units: list[Unit]) -> np.ndarray | None:
        """The same prompt asked again: restores its snapshot into `slot` and returns its last logits (None when no
        snapshot of exactly `units` kept them)."""
        whole = next((s for s in self._snapshots if s.logits is not None and s.units == units), None)
        if whole is None or whole.logits is None:
            return None
        try:
            self._restore(slot, whole)
        except ModelError as exc:  # refused (it cleared the slot): dropped, and the prompt is evaluated instead
            log.warning("a saved state was refused (%s); evaluating the prompt again", exc)
            self._snapshots.remove(whole)
            self._clear(slot)
            return None
        return whole.logits

    def _restore(self, slot: Slot, snapshot: _Snapshot) -> None:
        """Loads `snapshot` into `slot` (now the most recently used snapshot), parking the slot's content first."""
        self._snapshots.remove(snapshot)  # out of the list while parking, which may evict the oldest snapshot
        if slot.evaluated != snapshot.units:  # (the same content would be parked as a second snapshot of it)
            self._park(slot)
        self._snapshots.append(snapshot)
        self.text.load_state(snapshot.state, slot.seq)
        slot.evaluated = list(snapshot.units)

    def keep_prefix(self, items: Sequence[Item]) -> bool:
        """Makes sure a snapshot of exactly `items` exists, evaluating them once when none does, so that every later
        prompt starting with them restores it instead of evaluating them again (a video's instruction before each
        frame: lfm_edge.video.loop). Returns whether anything was evaluated."""
        units = _units(items)
        with self.lock:
            if self.max_snapshots <= 0 or any(s.units == units for s in self._snapshots):
                return False
            self.prefill(items, remember=True)
        return True

    def _evaluate_in(self, slot: Slot, items: Sequence[Item], units: list[Unit]) -> int:
        """Evaluates what `slot` lacks of `items`; when the shared cache is full, parks the idle slots and retries
        once. Returns how many items were reused."""
        for attempt in range(2):
            keep = self._restore_longest_prefix(slot, units)
            try:
                keep = self._restore_persisted(slot, units, keep)
                self._evaluate_persisting(slot, items, units, keep)
                return keep
            except CacheFullError:
                self._clear(slot)
                if attempt or not self._free_idle_slots(keep={slot}):
                    raise
            except BaseException:
                self._clear(slot)  # a half-evaluated prompt is useless; leave a clean, usable slot
                raise
        raise AssertionError("unreachable")

    def _persist_cut(self, units: Sequence[Unit]) -> int:
        """Where the prefix store keeps a state: right after the prompt's last image block, when something follows
        it (0: nowhere)."""
        if self.prefix_store is None:
            return 0
        last = max((index for index, unit in enumerate(units) if not isinstance(unit, int)), default=-1)
        return last + 1 if 0 <= last < len(units) - 1 else 0

    def _restore_persisted(self, slot: Slot, units: list[Unit], keep: int) -> int:
        """Restores the stored state after the last image when the slot holds less; returns the items held."""
        cut = self._persist_cut(units)
        if cut <= keep or self.prefix_store is None:
            return keep
        state = self.prefix_store.load(units[:cut])
        if state is None:
            return keep
        try:
            self.text.load_state(state, slot.seq)
        except ModelError as exc:  # checksummed but refused: the slot is empty now (load_state cleared it)
            self.prefix_store.reject(units[:cut], str(exc))
            self._clear(slot)
            return 0
        slot.evaluated = list(units[:cut])
        return cut

    def _evaluate_persisting(self, slot: Slot, items: Sequence[Item], units: list[Unit], keep: int) -> None:
        """Evaluates items[keep:], stopping after the last image to store the state there when the store lacks it
        (the same llama_decode calls as without the stop: an image block is always a call of its own)."""
        cut = self._persist_cut(units)
        if cut > keep and self.prefix_store is not None:
            self._evaluate(slot, items[keep:cut], logits_for_last=False)
            self.prefix_store.save(units[:cut], self.text.save_state(slot.seq))
            keep = cut
        self._evaluate(slot, items[keep:], logits_for_last=True)

    def _free_idle_slots(self, keep: set[Slot]) -> bool:
        """Parks and clears the slots no generation is using (their cells go back to the shared cache)."""
        idle = [slot for slot in self.slots if slot not in keep and slot.owner is None and slot.evaluated]
        for slot in idle:
            self._park(slot)
            self._clear(slot)
        return bool(idle)

    def _clear(self, slot: Slot) -> None:
        slot.evaluated = []
        slot.version += 1
        self.text.clear(slot.seq)

    def step(self, entries: list[tuple[Slot, int]]) -> None:
        """One llama_decode evaluating one token in each slot; logits row i belongs to entries[i]."""
        with self.lock:
            for slot, _ in entries:
                self._touch(slot)
            try:
                try:
                    self.text.decode_step([(token, slot.n_past, slot.seq) for slot, token in entries])
                except CacheFullError:
                    if not self._free_idle_slots(keep={slot for slot, _ in entries}):
                        raise
                    self.text.decode_step([(token, slot.n_past, slot.seq) for slot, token in entries])
            except BaseException:
                for slot, _ in entries:
                    self._clear(slot)
                raise
            for slot, token in entries:
                slot.evaluated.append(token)

    def _restore_longest_prefix(self, slot: Slot, units: list[Unit]) -> int:
        """Number of leading items already in the slot after this call (always < len(units)): what it holds when
        that is a prefix, or the longest snapshot that is one when longer."""
        held = slot.evaluated
        own = len(held) if len(held) < len(units) and units[: len(held)] == held else 0
        best = max(
            (s for s in self._snapshots if own < len(s.units) < len(units) and units[: len(s.units)] == s.units),
            key=lambda s: len(s.units),
            default=None,
        )
        if best is None and own:
            return own
        if best is not None:
            self._restore(slot, best)
            return len(best.units)
        self._park(slot)
        self._clear(slot)
        return 0

    def _park(self, slot: Slot) -> None:
        """Snapshots a slot's content before it is overwritten, unless a snapshot of it exists."""
        if slot.evaluated and all(s.units != slot.evaluated for s in self._snapshots):
            self._remember_snapshot(slot)

    def _evaluate(self, slot: Slot, items: Sequence[Item], *, logits_for_last: bool) -> None:
        index = 0
        while index < len(items):
            item = items[index]
            last = index == len(items) - 1
            if isinstance(item, ImageBlock):
                want = logits_for_last and last
                self.text.decode_embeddings(item.embeddings, slot.n_past, logits_for_last=want, seq=slot.seq)
                slot.evaluated.append((item.key, item.length))
                index += 1
                continue
            run = index
            while run < len(items) and not isinstance(items[run], ImageBlock):
                run += 1
            tokens = [int(t) for t in items[index:run] if not isinstance(t, ImageBlock)]
            want = logits_for_last and run == len(items)
            self.text.decode_tokens(tokens, slot.n_past, logits_for_last=want, seq=slot.seq)
            slot.evaluated.extend(tokens)
            index = run

    def _remember_snapshot(self, slot: Slot, logits: np.ndarray | None = None) -> None:
        if self.max_snapshots <= 0:  # the low-memory profile keeps none
            self._snapshots = []
            return
        kept = [s for s in self._snapshots if s.units != slot.evaluated]
        kept.append(_Snapshot(list(slot.evaluated), self.text.save_state(slot.seq), logits))
        while len(kept) > 1 and (len(kept) > self.max_snapshots or _total_bytes(kept) > SNAPSHOT_BUDGET_BYTES):
            kept.pop(0)
        self._snapshots = kept

    def logits(self) -> np.ndarray:
        with self.lock:
            return self.text.last_logits()

    def sampler(self, params: SamplingParams, items: Sequence[Item]) -> Sampler:
        """A sampler for a generation after `items` (the repetition penalty sees the prompt); grammar and biases are
        checked here, before anything is evaluated."""
        history = [t for u in _units(items) for t in ([u] if isinstance(u, int) else [IMAGE_TOKEN_ID] * u[1])]
        with self.lock:
            return Sampler(params, self.text.vocab, self.text.n_ctx, history)

    def generate(self, params: SamplingParams, max_tokens: int) -> Generator[int, None, None]:
        """Samples up to max_tokens tokens after the prompt prefilled last, evaluating each; stops at
        end-of-generation (the end token is yielded but not evaluated)."""
        from lfm_edge.batching import Cursor

        with self.lock:
            slot = self._current
            if not slot.evaluated:
                raise ModelError("generate() needs a prefilled prompt")
            items: list[Item] = [u if isinstance(u, int) else _key_only(u) for u in slot.evaluated]
            cursor = Cursor(self, items, params)
            cursor.attach(slot)
        try:
            for _ in range(max_tokens):
                token = cursor.next_token()
                yield token
                if self.text.is_end_of_generation(token) or cursor.full():
                    return
            cursor.settle()  # as a reply cut at max_tokens: fully in the context
        finally:
            cursor.close()


def _total_bytes(snapshots: list[_Snapshot]) -> int:
    return sum(len(s.state) + (0 if s.logits is None else s.logits.nbytes) for s in snapshots)


def _key_only(unit: tuple[str, int]) -> ImageBlock:
    """An image block known by key and length only: it matches a slot's content but cannot be evaluated again."""
    return ImageBlock(unit[0], np.zeros((unit[1], 0), dtype=np.float32))
