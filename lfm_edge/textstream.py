"""Turning sampled token bytes into user-visible text: UTF-8-safe pieces and stop strings.

A multi-byte character can be split across tokens; the incremental decoder holds the partial bytes back. A stop
string can be split across pieces; the matcher holds back any tail that could still become one, and cuts the text
at the first complete match (the stop string itself is not returned, as in OpenAI's API).
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class StopMatcher:
    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Text that is safe to show now; sets `stopped` once a stop string is complete."""
        if self.stopped:
            return ""
        self._pending += text
        cut = min((i for i in (self._pending.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            shown, self._pending = self._pending[:cut], ""
            return shown
        hold = max((self._partial_length(stop) for stop in self._stops), default=0)
        shown = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(shown) :]
        return shown

    def _partial_length(self, stop: str) -> int:
        for length in range(min(len(stop) - 1, len(self._pending)), 0, -1):
            if self._pending.endswith(stop[:length]):
                return length
        return 0

    def flush(self) -> str:
        """The held-back tail, once generation ended without completing a stop string."""
        shown, self._pending = ("" if self.stopped else self._pending), ""
        return shown


class TokenTextDecoder:
    """Token bytes in, complete UTF-8 text out (invalid sequences become U+FFFD, as transformers' decode)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return str(self._decoder.decode(data))

    def flush(self) -> str:
        return str(self._decoder.decode(b"", final=True))
