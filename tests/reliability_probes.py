"""Misuse probes of issue Q, each run in its own process by test_reliability.py (an abort or a segfault must show as
an exit code, not take the test runner down): `python tests/reliability_probes.py CASE TEXT_GGUF MMPROJ_GGUF`.

A probe prints `outcome: <what happened>` lines and exits 0 when the process survived everything it tried.
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import lfm_edge.model as api
from lfm_edge.errors import LfmEdgeError
from lfm_edge.generation import GenerationOptions
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.resolve import ModelFiles

IMAGE = Path(__file__).parent / "images" / "photo_1024x768.jpg"
GREEDY = GenerationOptions(max_tokens=8, sampling=SamplingParams(temperature=0))


def outcome(what: str) -> None:
    print(f"outcome: {what}", flush=True)


def attempt(label: str, action: Callable[[], object]) -> None:
    """Runs action; prints `label: ok` or `label: <ErrorClass>` (library errors only; anything else propagates)."""
    try:
        action()
    except LfmEdgeError as exc:
        outcome(f"{label}: {type(exc).__name__}")
    else:
        outcome(f"{label}: ok")


def load(files: ModelFiles, **context: object) -> api.Model:
    return api.Model(files, api.LoadOptions(context=api.ContextOptions(**context)))  # type: ignore[arg-type]


def probe_grammar(files: ModelFiles) -> None:
    with load(files, n_ctx=512, n_threads=1) as model:
        ends = [t for t in range(model.text.n_vocab) if model.text.is_end_of_generation(t)]
        cases = {
            "nul grammar": SamplingParams(temperature=0, grammar='root ::= "\\u0000"'),
            "ignore eos": SamplingParams(grammar='root ::= "yes"', logit_bias=tuple((t, -math.inf) for t in ends)),
            "ban all": SamplingParams(logit_bias=tuple((t, -math.inf) for t in range(model.text.n_vocab))),
            "bad grammar": SamplingParams(grammar="root ::= (("),
        }
        for label, sampling in cases.items():
            attempt(label, lambda s=sampling: model.generate("Hi", options=GenerationOptions(8, sampling=s)))
        attempt("after", lambda: model.generate("Hi", options=GREEDY))


def probe_batches(files: ModelFiles) -> None:
    with load(files, n_ctx=300, n_threads=1) as model:
        prompt = "w"
        while len(model.text.tokenize(prompt)) < 320:  # a prompt longer than the requested n_ctx and n_batch
            prompt += " w"
        attempt(
            "long prompt", lambda: outcome(f"prompt tokens: {model.generate(prompt, options=GREEDY).prompt_tokens}")
        )
        attempt("too long", lambda: model.generate(" ".join(["word"] * 5000), options=GREEDY))
    with load(files, n_ctx=64, n_threads=1) as model:
        attempt("image in 64", lambda: model.generate("Hi", images=[IMAGE], options=GREEDY))
        attempt("after", lambda: model.generate("Hi", options=GREEDY))


def probe_load_options(files: ModelFiles) -> None:
    for label, context in {
        "n_batch -1": {"n_batch": -1},
        "n_ctx str": {"n_ctx": "4096"},
        "n_ctx float": {"n_ctx": 4096.0},
        "n_ctx huge": {"n_ctx": 2_000_000_000},
        "n_ctx over training": {"n_ctx": 1 << 20},
        "n_threads 0": {"n_threads": 0},
    }.items():
        attempt(label, lambda c=context: load(files, **c).close())


def probe_closed(files: ModelFiles) -> None:
    model = load(files, n_ctx=512, n_threads=1)
    stream = model.stream("Hi", options=GenerationOptions(max_tokens=50))
    next(iter(stream), None)
    chat = model.chat()
    model.close()
    attempt("generate", lambda: model.generate("Hi", options=GREEDY))
    attempt("stream read", lambda: list(stream))
    attempt("chat send", lambda: chat.send("Hi"))
    attempt("caption", lambda: model.caption(IMAGE))
    model.close()  # twice is fine
    with load(files, n_ctx=512, n_threads=1) as scoped:
        chat = scoped.chat()
    attempt("chat after with", lambda: chat.send("Hi"))


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def probe_dropped(files: ModelFiles) -> None:
    rounds = []
    for _ in range(12):
        model = load(files, n_ctx=4096, n_threads=1)
        model.generate("Hi", images=[IMAGE], options=GREEDY, max_image_tokens=64, do_image_splitting=False)
        del model
        gc.collect()
        rounds.append(_rss_mb())
    outcome(f"rss growth: {rounds[-1] - rounds[3]:.0f} MB over {len(rounds) - 4} rounds")


def probe_fork(files: ModelFiles) -> None:
    model = load(files, n_ctx=512, n_threads=1)
    model.generate("Hi", options=GREEDY)
    pid = os.fork()
    if pid == 0:
        try:
            model.generate("Hi", options=GREEDY)
            code = 10
        except LfmEdgeError as exc:
            code = 20 if type(exc).__name__ == "ModelClosedError" else 30
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    outcome(f"child exit: {os.waitstatus_to_exitcode(status)}")
    attempt("parent after fork", lambda: model.generate("Hi", options=GREEDY))
    model.close()


def probe_reply_tokens(files: ModelFiles) -> None:
    with load(files, n_ctx=2048, n_threads=1) as model:
        greedy = GenerationOptions(max_tokens=12, sampling=SamplingParams(temperature=0))
        chat = model.chat(options=greedy, max_image_tokens=64, do_image_splitting=False)
        image_id, im_end = model.text.tokenize("<image>")[0], model.text.tokenize("<|im_start|>")[0]
        forced = SamplingParams(temperature=0, grammar=f'root ::= "a " <[{image_id}]> " b " <[{im_end}]> " c"')
        reply = chat.send("Say something", options=GenerationOptions(max_tokens=12, sampling=forced))
        outcome(f"reply: {reply.text!r}")
        attempt("next send", lambda: chat.send("Again"))
        attempt("third send with image", lambda: chat.send("Look", images=[IMAGE]))
        outcome(f"history roles: {[m['role'] for m in chat.history]}")


def probe_numbers(files: ModelFiles) -> None:
    for label, knobs in {
        "nan presence": {"presence_penalty": math.nan},
        "nan frequency": {"frequency_penalty": math.nan},
        "inf temperature": {"temperature": math.inf},
        "float token id": {"logit_bias": ((1.5, 1.0),)},
        "str top_k": {"top_k": "5"},
        "bool seed": {"seed": True},
    }.items():
        attempt(label, lambda k=knobs: SamplingParams(**k))  # type: ignore[arg-type]
    attempt("max_tokens 0", lambda: GenerationOptions(max_tokens=0))
    attempt("stop not strings", lambda: GenerationOptions(stop=(1,)))  # type: ignore[arg-type]
    with load(files, n_ctx=512, n_threads=1) as model:
        outside = SamplingParams(logit_bias=((model.text.n_vocab + 5, 1.0),))
        attempt("bias outside vocab", lambda: model.generate("Hi", options=GenerationOptions(4, sampling=outside)))


def probe_stop_thread(files: ModelFiles) -> None:
    with load(files, n_ctx=4096, n_threads=1) as model:
        options = GenerationOptions(max_tokens=3000, sampling=SamplingParams(temperature=1.0, seed=1))
        stream = model.stream("Hi", options=options)
        started = threading.Event()
        errors: list[BaseException] = []

        def consume() -> None:
            try:
                for _ in stream:
                    started.set()
            except BaseException as exc:  # reported below: the probe must say what went wrong
                errors.append(exc)

        worker = threading.Thread(target=consume)
        worker.start()
        started.wait(60)
        stream.close()  # from another thread, while the consumer is inside the generator
        at_close = model.engine.n_past
        worker.join(60)
        outcome(f"tokens after close: {model.engine.n_past - at_close}; errors {errors!r}; alive {worker.is_alive()}")
        attempt("after", lambda: model.generate("Hi", options=GREEDY))


def probe_misuse(files: ModelFiles) -> None:
    """A seeded random mix of the operations above on one model, bounded in count."""
    rng = random.Random(int(os.environ.get("PROBE_SEED", "0")))
    model = load(files, n_ctx=1024, n_threads=1)
    streams: list[api.TextStream] = []
    chats = [model.chat(options=GREEDY) for _ in range(2)]
    operations: dict[str, Callable[[], object]] = {
        "generate": lambda: model.generate("Hi", options=GREEDY),
        "start stream": lambda: streams.append(model.stream(rng.choice(["Hi", "Yo"]), options=GREEDY)),
        "read stream": lambda: next(iter(rng.choice(streams)), None) if streams else None,
        "close stream": lambda: rng.choice(streams).close() if streams else None,
        "stop stream": lambda: rng.choice(streams).stop() if streams else None,
        "chat": lambda: rng.choice(chats).send(rng.choice(["Hi", "<image>", "<|im_end|>"])),
        "bad grammar": lambda: model.generate("Hi", options=GenerationOptions(4, sampling=SamplingParams(grammar="x"))),
        "dead grammar": lambda: model.generate(
            "Hi", options=GenerationOptions(4, sampling=SamplingParams(grammar='root ::= "\\u0000"'))
        ),
        "bad option": lambda: SamplingParams(min_p=math.nan),
        "too long": lambda: model.generate("word " * 3000, options=GREEDY),
    }
    names = sorted(operations)
    for _ in range(60):
        name = rng.choice(names)
        attempt(name, operations[name])
    model.close()
    for name in names:
        attempt(f"closed {name}", operations[name])


def _post(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def probe_server(files: ModelFiles) -> None:
    from lfm_edge.server import ServerOptions
    from lfm_edge.server.run import start_in_thread

    with load(files, n_ctx=1024, n_threads=1) as model:
        server = start_in_thread(model, ServerOptions(model_ids=("tiny",), port=0))
        try:
            url = f"{server.url}/v1/chat/completions"
            messages = [{"role": "user", "content": "Hi"}]
            for stream in (False, True):
                body = {"messages": messages, "grammar": 'root ::= "\\u0000"', "max_tokens": 4, "stream": stream}
                try:
                    status, answer = _post(url, body)
                    outcome(f"dead grammar stream={stream}: {status} {answer.get('error', {}).get('code')}")
                except json.JSONDecodeError:
                    outcome(f"dead grammar stream={stream}: an SSE answer")
            status, answer = _post(url, {"messages": messages, "max_tokens": 4})
            outcome(f"next request: {status} {sorted(answer)}")
        finally:
            server.close()


PROBES: dict[str, Callable[[ModelFiles], None]] = {
    name.removeprefix("probe_"): function for name, function in globals().items() if name.startswith("probe_")
}

if __name__ == "__main__":
    case, text, mmproj = sys.argv[1:4]
    PROBES[case](ModelFiles(Path(text), Path(mmproj)))
    outcome("survived")
