"""Every llama.cpp compute call of the process runs on one thread.

ggml's CPU backend is built with OpenMP here (llama-cpp-python's wheels link libgomp): each OS thread that starts a
graph gets its own OpenMP team, and the team's barrier is ggml's barrier between two ops. Once a process holds more
OpenMP threads than it has CPUs, which happens as soon as a few server workers or app threads have each run a decode,
libgomp cuts every barrier's spin short and sleeps on a futex instead. Measured on 2 cores with the full-size F16
model: a one-token decode took 46 ms instead of 35 ms after four threads had taken turns, for the rest of the
process's life, and four batched clients reached 0.72x of llama-server, which decodes on one thread. So the threads
of this library never call llama_decode themselves: they hand the call to this thread and wait for it.

The wait cannot be cut short: a KeyboardInterrupt that arrives meanwhile is raised once the call has returned (as it
was when the caller ran the call itself), so nothing touches the llama.cpp context while the call runs. After a
fork the child starts its own thread on its first call.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Call:
    __slots__ = ("done", "error", "function", "result")

    def __init__(self, function: Callable[[], object]) -> None:
        self.function = function
        self.done = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None


class ComputeThread:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = -1

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """function(*args) on the compute thread; returns its result or raises its exception in the caller."""
        if threading.current_thread() is self._thread:
            return function(*args)
        call = _Call(functools.partial(function, *args))
        self._ensure_started()
        self._calls.put(call)
        _wait_uninterrupted(call.done)
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's thread does not exist there, and its lock may have been held at the fork."""
        self._lock = threading.Lock()
        self._calls = queue.SimpleQueue()  # the child's copy may hold its parent's calls
        self._thread = None

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._calls = queue.SimpleQueue()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._serve, args=(self._calls,), name="lfm-edge-compute",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    @staticmethod
    def _serve(calls: queue.SimpleQueue[_Call]) -> None:
        while True:
            call = calls.get()
            try:
                call.result = call.function()
            except BaseException as exc:  # the caller gets it
                call.error = exc
            finally:
                call.done.set()


def _wait_uninterrupted(done: threading.Event) -> None:
    interrupted: BaseException | None = None
    while True:
        try:
            done.wait()
            break
        except BaseException as exc:  # KeyboardInterrupt: the call is running; let it finish first
            interrupted = exc
    if interrupted is not None:
        raise interrupted


COMPUTE = ComputeThread()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=COMPUTE.reset_after_fork)
