"""Generations sharing one Model: each a Cursor in its own slot (llama.cpp sequence), stepped together.

Continuous batching without a scheduler thread: a cursor that wants its next token registers with the Batcher and
takes the engine lock; whoever gets the lock first evaluates the pending token of every cursor registered by then
(in ONE llama_decode when MULTI_SEQUENCE_STEPS; see below why it is off) and samples each one's next token from its
own row with its own sampler (grammar, penalties, seed). The others find their token ready when they get the lock.
A cursor that joins or leaves changes only the next step.

A cursor whose slot was taken meanwhile (more generations than slots, a stream left half-read) notices it by the
slot's version and re-establishes its own state before sampling (a snapshot of its prompt, then its own tokens
again): a stream resumed late is correct, never another prompt's continuation.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lfm_edge.native.sampling import SamplingParams

# Continuous batching (one llama_decode holding the next token of every waiting generation) is OFF. A first
# measurement showed wrong logits for every sequence but the first: that was ggml's AMX matmul path, which
# native/text.py now keeps weights out of; a multi-sequence step then matches single steps to float rounding
# (tests/test_threads.py::test_llama_cpp_multi_sequence_step_matches_single_steps). Switched on, the alternating-chats
# test still diverged in 1 of 6 runs here (a second turn differing from token 5), so each waiting generation keeps
# its own llama_decode, in one pass of the engine lock, until that is understood.
MULTI_SEQUENCE_STEPS = False

if TYPE_CHECKING:
    from lfm_edge.engine import Engine, Item, PrefillStats, Slot


class Cursor:
    """One generation's place: its prompt items, the tokens it sampled, its own sampler and (while it generates)
    a slot. `next_token` returns the next sampled token; the previous one is evaluated first."""

    def __init__(self, engine: Engine, items: Sequence[Item], params: SamplingParams) -> None:
        self.engine = engine
        self.items = list(items)
        self.tokens: list[int] = []
        self.sampler = engine.sampler(params, items)
        self.slot: Slot | None = None
        self._version = -1
        self._prompt_positions = sum(1 if isinstance(i, int) else i.length for i in self.items)
        self._ready: int | None = None  # sampled, not yet returned
        self._error: BaseException | None = None

    def prefill(self) -> PrefillStats:
        """Evaluates the prompt in a slot and samples the first token (before anything else can use the logits)."""
        with self.engine.lock:
            stats = self.engine.prefill(self.items, owner=self)
            self.attach(self.engine._current)
            return stats

    def attach(self, slot: Slot) -> None:
        """Takes `slot`, which holds this cursor's state with its logits last, and samples from them."""
        with self.engine.lock:
            self.slot, slot.owner, self._version = slot, self, slot.version
            self._ready = self.sampler.sample(self.engine.text.ctx, -1)

    def next_token(self) -> int:
        if self._ready is None and self._error is None:
            self.engine.batcher.step(self)
        error, self._error = self._error, None
        if error is not None:
            raise error
        token, self._ready = self._ready, None
        assert token is not None
        self.tokens.append(token)
        return token

    def holds_state(self) -> bool:
        return self.slot is not None and self.slot.owner is self and self.slot.version == self._version

    def resume(self) -> None:
        """Re-establishes this cursor's state (prompt + its tokens) in a slot and samples the next token."""
        with self.engine.lock:
            self.engine.prefill([*self.items, *self.tokens], remember=False, owner=self)
            self.attach(self.engine._current)

    def sampled(self, row: int) -> None:
        """After a step that evaluated this cursor's last token at batch row `row`."""
        assert self.slot is not None
        self._version = self.slot.version
        self._ready = self.engine.batcher.sample(self, row)

    def fail(self, error: BaseException) -> None:
        self._error = error

    def settle(self) -> None:
        """Evaluates the last sampled token too (a reply cut at max_tokens is then fully in the slot)."""
        with self.engine.lock:
            if self.tokens and not self.full():
                if not self.holds_state():
                    self.engine.prefill([*self.items, *self.tokens], remember=False, owner=self)
                else:
                    assert self.slot is not None
                    self.engine.step([(self.slot, self.tokens[-1])])
                self._version = self.engine._current.version

    def full(self) -> bool:
        """True when the last sampled token has no position left to be evaluated at (so no further token either)."""
        return self._prompt_positions + len(self.tokens) > self.engine.text.n_ctx

    def close(self) -> None:
        """Frees the sampler and the slot (its content stays for a prompt that continues it, e.g. a chat).

        Takes no lock: an abandoned stream is closed by the garbage collector, in whatever thread runs it, maybe one
        holding the batcher's mutex while another holds the engine lock."""
        slot, self.slot = self.slot, None
        if slot is not None and slot.owner is self:
            slot.owner = None
        self.sampler.close()


class Batcher:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._waiting: list[Cursor] = []
        self._mutex = threading.Lock()
        self.largest_step = 0  # the most sequences decoded in one llama_decode so far (tests, /health)

    def step(self, cursor: Cursor) -> None:
        """Returns once `cursor` has its next token (or its error)."""
        with self._mutex:
            self._waiting.append(cursor)
        with self.engine.lock:
            with self._mutex:
                group, self._waiting = self._waiting, []
            if group:
                self._run(group)

    def _run(self, group: list[Cursor]) -> None:
        batched: list[Cursor] = []
        for cursor in group:
            if cursor.holds_state():
                batched.append(cursor)
                continue
            try:
                cursor.resume()
            except Exception as exc:  # that cursor's caller gets it; the others go on
                cursor.fail(exc)
        width = self.engine.text.n_batch if MULTI_SEQUENCE_STEPS else 1
        for start in range(0, len(batched), width):
            self._decode(batched[start : start + width])

    def _decode(self, cursors: list[Cursor]) -> None:
        entries = [(cursor.slot, cursor.tokens[-1]) for cursor in cursors]
        self.largest_step = max(self.largest_step, len(entries))
        try:
            self.engine.step(entries)  # type: ignore[arg-type]
        except Exception as exc:
            for cursor in cursors:
                cursor.fail(exc)
            return
        for row, cursor in enumerate(cursors):
            try:
                cursor.sampled(row)
            except Exception as exc:
                cursor.fail(exc)

    def sample(self, cursor: Cursor, row: int) -> int:
        return cursor.sampler.sample(self.engine.text.ctx, row)
