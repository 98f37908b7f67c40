"""One model, `parallel` requests at a time (the model's slots), fed from a bounded queue. Each running job
generates on its own thread; the Model decodes the running jobs together (lfm_edge/batching.py).

`ModelWorker.run(job, cancelled)` queues `job(emit, cancelled)` and yields what it emits, as it emits it, on the
event loop. Setting `cancelled` (a client went away) or closing the iterator stops the job: it checks the flag
between tokens, and a job still waiting in the queue never starts. A full queue answers at once with 503 and
Retry-After, so a client can back off.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lfm_edge.errors import RequestError

log = logging.getLogger(__name__)

Emit = Callable[[Any], None]
Job = Callable[[Emit, threading.Event], None]


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_DONE = object()


class ModelWorker:
    def __init__(self, max_queue: int, retry_after_s: int, parallel: int = 1) -> None:
        self.parallel = parallel
        self._executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="lfm-edge-model")
        self._capacity = parallel + max_queue
        self._retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._pending = 0
        self._running = 0

    @property
    def pending(self) -> int:
        """Requests admitted and not finished: the running ones and those waiting."""
        with self._lock:
            return self._pending

    def counters(self) -> dict[str, int]:
        """For /health: slots, slots busy (jobs running), jobs queued behind them, and the queue's capacity."""
        with self._lock:
            return {
                "slots": self.parallel,
                "slots_busy": self._running,
                "queued": self._pending - self._running,
                "queue_capacity": self._capacity - self.parallel,
            }

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _admit(self) -> None:
        with self._lock:
            if self._pending >= self._capacity:
                raise RequestError(
                    f"the server is busy ({self._pending} requests running or queued); retry in a moment",
                    503,
                    "server_busy",
                    headers={"Retry-After": str(self._retry_after_s)},
                )
            self._pending += 1

    def _finished(self) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, job: Job, cancelled: threading.Event) -> AsyncGenerator[Any, None]:
        """Yields what `job` emits; raises what it raises. Raises RequestError(503) when the queue is full."""
        self._admit()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()

        def emit(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the event loop is gone (shutdown): nobody is listening
                cancelled.set()

        def guarded() -> None:
            with self._lock:
                self._running += 1
            try:
                if not cancelled.is_set():
                    job(emit, cancelled)
            except BaseException as exc:
                emit(_Failed(exc))
            finally:
                with self._lock:
                    self._running -= 1
                self._finished()
                emit(_DONE)

        try:
            loop.run_in_executor(self._executor, guarded)
        except RuntimeError:
            self._finished()
            raise RequestError("the server is shutting down", 503, "server_shutting_down") from None
        try:
            while (item := await events.get()) is not _DONE:
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            cancelled.set()  # no-op when the job is over; stops it between tokens otherwise
