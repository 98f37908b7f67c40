"""lfm_edge.native.compute_thread: every llama.cpp compute call on one thread, whoever asks (see its docstring)."""

from __future__ import annotations

import _thread
import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from llama_cpp import llama_cpp as lc

import lfm_edge.model as api
from lfm_edge.generation import GenerationOptions
from lfm_edge.native.compute_thread import COMPUTE, ComputeThread
from lfm_edge.native.sampling import SamplingParams

IMAGE = Path(__file__).parent / "images" / "photo_1024x768.jpg"


def test_runs_on_one_thread_and_returns_results() -> None:
    compute = ComputeThread()
    names = [compute.run(lambda: threading.current_thread().name) for _ in range(3)]
    assert names == ["lfm-edge-compute"] * 3
    assert compute.run(pow, 2, 10) == 1024


def test_exceptions_reach_the_caller_and_the_thread_goes_on() -> None:
    compute = ComputeThread()
    with pytest.raises(ZeroDivisionError):
        compute.run(lambda: 1 / 0)
    assert compute.run(lambda: "still serving") == "still serving"


def test_a_call_from_the_compute_thread_runs_at_once() -> None:
    compute = ComputeThread()
    assert compute.run(lambda: compute.run(lambda: 7)) == 7  # no deadlock waiting on itself


def test_ctrl_c_waits_for_the_running_call_then_raises() -> None:
    compute = ComputeThread()
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.3)
        finished.set()

    threading.Timer(0.05, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        compute.run(slow)
    assert finished.is_set()  # nothing could touch the llama.cpp context while the call ran


def _child_result(queue: multiprocessing.Queue[str]) -> None:
    queue.put(COMPUTE.run(lambda: threading.current_thread().name))


def test_a_forked_child_gets_its_own_thread() -> None:
    COMPUTE.run(lambda: None)  # the parent's thread exists and is not copied by fork
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = context.Queue()
    child = context.Process(target=_child_result, args=(queue,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == "lfm-edge-compute"


def test_a_child_forked_while_the_lock_is_held_still_runs_calls() -> None:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = context.Queue()
    with COMPUTE._lock:  # as if another thread were starting the compute thread at the moment of the fork
        child = context.Process(target=_child_result, args=(queue,))
        child.start()
    child.join(30)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == "lfm-edge-compute"


def test_decodes_and_encodes_from_many_threads_run_on_the_compute_thread(
    converted: Callable[..., tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The property that keeps libgomp to one OpenMP team: callers on four threads, every llama_decode and every
    mtmd encode on the compute thread."""
    from llama_cpp import mtmd_cpp as mtmd

    seen: set[str] = set()

    def spy(real: Callable[..., int]) -> Callable[..., int]:
        def call(*args: object) -> int:
            seen.add(threading.current_thread().name)
            return real(*args)

        return call

    monkeypatch.setattr(lc, "llama_decode", spy(lc.llama_decode))
    monkeypatch.setattr(mtmd, "mtmd_encode_chunk", spy(mtmd.mtmd_encode_chunk))
    text, mmproj = converted("official-2.5", "f16")
    context = api.ContextOptions(n_ctx=2048, n_threads=2, n_seq=4)
    options = GenerationOptions(max_tokens=4, sampling=SamplingParams(temperature=0))
    with api.Model(api.ModelFiles(text, mmproj), api.LoadOptions(context=context, vision_backend="mtmd")) as model:
        threads = [
            threading.Thread(target=model.generate, args=(f"Say {i}.", (IMAGE,) if i == 0 else (), options))
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert seen == {"lfm-edge-compute"}
