"""Generations sharing one Model: each a Cursor in its own slot (llama.cpp sequence), decoded together.

Continuous batching without a scheduler thread: a cursor that wants its next token registers with the Batcher and
waits. Once every generating cursor has registered (or a short grace period has passed: a reader that lags, like a
stream left half-read, is not waited for again until it comes back), one of the waiting threads takes the engine
lock and evaluates the pending token of every registered cursor in ONE llama_decode, then samples each one's next
token from its own logits row with its own sampler (grammar, penalties, seed). A cursor that joins (its prompt is
prefilled between two steps) or leaves (finished, stopped, closed) changes only the next step.

A cursor whose slot was taken meanwhile (more generations than slots, a stream left half-read) notices it by the
slot's version and re-establishes its own state before sampling (a snapshot of its prompt, then its own tokens
again): a stream resumed late is correct, never another prompt's continuation.

Batched rows round differently from a single row (llama.cpp picks other kernels for a wider batch: measured 1e-6 on
the logits), so a greedy choice between two tokens whose logits tie to within that can differ between a generation
run alone and the same one run beside others; any larger gap gives the same tokens.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from lfm_edge.native.sampling import SamplingParams

if TYPE_CHECKING:
    from lfm_edge.engine import Engine, Item, PrefillStats, Slot

# How long a step waits for generating cursors that have not asked for their next token yet: GRACE_S plus this share
# of the last step's duration. The per-token work of a reader (detokenize, stop strings, an SSE write) is well under
# a millisecond, but on a busy machine its thread may not run for a while, and a cursor that misses a step waits a
# whole step. A cursor that misses it is not waited for again until it asks (see Batcher).
GRACE_S = 0.004
GRACE_SHARE_OF_STEP = 0.1


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
        """Evaluates the prompt in a slot and samples the first token (before anything else can use the logits). A
        prompt asked before is restored whole from its snapshot, its last logits with it."""
        with self.engine.lock:
            stats = self.engine.prefill(self.items, owner=self, whole_from_snapshot=True)
            self.attach(self.engine._current, stats.logits)
            return stats

    def attach(self, slot: Slot, logits: np.ndarray | None = None) -> None:
        """Takes `slot`, which holds this cursor's state, and samples from its last position's logits: `logits`, or
        the context's last row."""
        with self.engine.lock:
            self.slot, slot.owner, self._version = slot, self, slot.version
            self._ready = self.sampler.sample(self.engine.text.ctx, -1, logits)
        self.engine.batcher.join(self)

    def served(self) -> bool:
        return self._ready is not None or self._error is not None

    def next_token(self) -> int:
        if not self.served():
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
            stats = self.engine.prefill(
                [*self.items, *self.tokens], remember=False, owner=self, whole_from_snapshot=True
            )
            self.attach(self.engine._current, stats.logits)

    def sampled(self, row: int) -> None:
        """After a step that evaluated this cursor's last token at batch row `row`."""
        assert self.slot is not None
        self._version = self.slot.version
        self._ready = self.sampler.sample(self.engine.text.ctx, row)

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

        Takes no engine lock: an abandoned stream is closed by the garbage collector, in whatever thread runs it,
        maybe one waiting for a step while another holds the engine lock. The batcher's own lock is reentrant and
        never held while waiting for the engine lock."""
        self.engine.batcher.leave(self)
        slot, self.slot = self.slot, None
        if slot is not None and slot.owner is self:
            slot.owner = None
        self.sampler.close()


class Batcher:
    """Gathers the cursors that want their next token and decodes them in one step (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._waiting: list[Cursor] = []
        self._keeping_up: set[Cursor] = set()  # generating cursors a step waits for
        # Reentrant: the garbage collector may close an abandoned stream's cursor (leave) in a thread holding it.
        self._changed = threading.Condition(threading.RLock())
        self._stepping = False
        self.largest_step = 0  # the most sequences decoded in one llama_decode so far (tests, /health)
        self.steps = 0
        self._step_seconds = 0.0  # the last step's
        self._steps_at_crop = -1  # `steps` when the last image crop was encoded

    @contextlib.contextmanager
    def between_steps(self) -> Iterator[None]:
        """Held while one image crop is encoded: the engine lock, taken once the generations running have had a step
        since the previous crop, so they wait one crop's encoding at most. Generations that do not ask for a step
        within the grace period plus two steps' time are not waited for again (as in a step)."""
        with self._changed:
            if self._keeping_up and self.steps == self._steps_at_crop:
                patience = self._grace() + 2 * self._step_seconds
                if not self._changed.wait_for(lambda: self.steps != self._steps_at_crop, patience):
                    self._keeping_up.intersection_update(self._waiting)
        with self.engine.lock:
            yield
            self._steps_at_crop = self.steps

    def join(self, cursor: Cursor) -> None:
        with self._changed:
            self._keeping_up.add(cursor)

    def leave(self, cursor: Cursor) -> None:
        with self._changed:
            self._keeping_up.discard(cursor)
            if cursor in self._waiting:
                self._waiting.remove(cursor)
            self._changed.notify_all()  # a step may have been waiting for it

    def step(self, cursor: Cursor) -> None:
        """Returns once `cursor` has its next token (or its error)."""
        with self._changed:
            self._keeping_up.add(cursor)
            self._waiting.append(cursor)
            self._changed.notify_all()
        while not cursor.served():
            group = self._gather(cursor)
            if group:
                self._lead(group)

    def _gather(self, cursor: Cursor) -> list[Cursor]:
        """Waits until `cursor` is served (returns []) or until this thread should run the next step: every cursor
        that keeps up has asked, or the grace period is over (returns the step's cursors)."""
        with self._changed:
            deadline = time.monotonic() + self._grace()
            while not cursor.served():
                if self._stepping:  # the others get their tokens from it and then ask again: wait for them anew
                    self._changed.wait()
                    deadline = time.monotonic() + self._grace()
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._keeping_up.issubset(self._waiting):
                    group, self._waiting = self._waiting, []
                    self._keeping_up.intersection_update(group)  # those that missed it are not waited for again
                    self._stepping = True
                    return group
                self._changed.wait(left)
            return []

    def _grace(self) -> float:
        return GRACE_S + GRACE_SHARE_OF_STEP * self._step_seconds

    def _lead(self, group: list[Cursor]) -> None:
        # A cursor served early in the step may already be back in _waiting (its thread took the token and asked
        # for the next one): only those that lost their slot to a resumed one go back, and none twice.
        again: list[Cursor] = list(group)
        try:
            with self.engine.lock:
                started = time.perf_counter()
                again = self._run(group)
                self._step_seconds = time.perf_counter() - started
        finally:
            with self._changed:
                self._stepping = False
                self._waiting.extend(c for c in again if not c.served() and c not in self._waiting)
                self._changed.notify_all()

    def _run(self, group: list[Cursor]) -> list[Cursor]:
        """Steps `group`; returns the cursors that lost their slot to one resumed here (served next step)."""
        for cursor in group:
            if not cursor.holds_state():
                try:
                    cursor.resume()
                except Exception as exc:  # that cursor's caller gets it; the others go on
                    cursor.fail(exc)
        batched = [cursor for cursor in group if not cursor.served() and cursor.holds_state()]
        lost = [cursor for cursor in group if not cursor.served() and not cursor.holds_state()]
        width = self.engine.text.n_batch
        for start in range(0, len(batched), width):
            self._decode(batched[start : start + width])
        return lost

    def _decode(self, cursors: list[Cursor]) -> None:
        entries = [(cursor.slot, cursor.tokens[-1]) for cursor in cursors]
        self.largest_step = max(self.largest_step, len(entries))
        self.steps += 1
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
