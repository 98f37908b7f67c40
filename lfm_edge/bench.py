"""`lfm-edge bench`: load time, prompt processing and decode speed, image encoding, TTFT (first turn with an image
and a follow-up on it), peak RSS, and the memory-bandwidth bound of decoding, on this machine.

Definitions (llama-bench's where it has one):
- ppN: N random token ids decoded in one batch from an empty context; only llama_decode is timed.
- tgN: N tokens decoded one at a time from an empty context, each picked greedily (argmax, no penalties) by the
  generation path's Sampler; the whole loop is timed (decode + picking the token).
- tile / thumbnail encode: Model.vision.encode of one 512x512 crop / of the single crop the 512x385 image becomes.
- TTFT: a 512x385 image + a short question, fresh context and empty image caches, from the call to the first
  sampled token (image decoding, preprocessing, encoding, prefill, first sample); follow-up TTFT: a second question
  on the same image. The first reply is forced to a plain sentence (a grammar of token ids) so that the re-rendered
  history matches what the context holds, as it does with trained weights (random weights babble bytes that do not
  re-tokenize to themselves).
- decode bound: bytes read per token (the text GGUF's size: every weight is read once per token; the embedding
  matrix is the tied output head) / memory read bandwidth (numpy summing a 256 MB array, split between as many
  threads as the model uses).

Every figure is measured `repeat` times and reported as min, median and max. One warm-up (untimed) decode and
encode come first (a full-size prompt batch, as llama-bench's warm-up). Peak RSS is read before the bandwidth array
is allocated: it is the model's and the measurements' alone.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lfm_edge import __version__
from lfm_edge.errors import ModelError
from lfm_edge.generation import Completion, GenerationOptions
from lfm_edge.image import load_image, preprocess
from lfm_edge.model import LoadOptions, Model, load
from lfm_edge.native.sampling import Sampler, SamplingParams
from lfm_edge.native.text import ContextOptions, TextModel, default_threads

log = logging.getLogger(__name__)

QUESTION = "What is in this image?"
FOLLOW_UP = "What colour is it?"
FORCED_REPLY = "It is a photo of coloured noise."
DEFAULT_IMAGE_SIZE = (512, 385)  # width, height
TILE = 512
GREEDY = SamplingParams(temperature=0, repetition_penalty=1.0)  # plain argmax, as llama-bench's tg needs no sampler
_MB = 2**20


@dataclass(frozen=True)
class BenchOptions:
    """`image`: the image of the TTFT and thumbnail figures (default: a random 512x385 one). `quick`: pp64, tg16,
    one repetition and a 64 MB bandwidth array (a smoke test, not a measurement)."""

    image: Path | None = None
    repeat: int = 3
    threads: int | None = None
    quick: bool = False
    n_ctx: int = 2048
    mmproj: Path | None = None

    @property
    def prompt_tokens(self) -> int:
        return 64 if self.quick else 512

    @property
    def decode_tokens(self) -> int:
        return 16 if self.quick else 128

    @property
    def repetitions(self) -> int:
        return 1 if self.quick else self.repeat

    @property
    def bandwidth_bytes(self) -> int:
        return (64 if self.quick else 256) * _MB


def summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _repeat(measure: Callable[[], float], times: int) -> dict[str, float]:
    return summary([measure() for _ in range(times)])


def timed_loads(model: str | Path, options: BenchOptions, threads: int) -> tuple[dict[str, float], Model]:
    """Loads the model `repetitions` times (each closed but the last) and returns the load times and the last."""
    context = ContextOptions(n_ctx=options.n_ctx, n_threads=threads)
    times: list[float] = []
    for index in range(options.repetitions):
        started = time.perf_counter()
        loaded = load(model, LoadOptions(context=context, mmproj=options.mmproj))
        times.append(time.perf_counter() - started)
        if index < options.repetitions - 1:
            loaded.close()
    return summary(times), loaded


def prompt_rate(text: TextModel, tokens: int, rng: np.random.Generator) -> float:
    """ppN in tokens/s: random ids decoded in batches of n_batch from an empty context, llama_decode time only."""
    ids = [int(token) for token in rng.integers(0, text.n_vocab, tokens)]
    text.clear()
    before = text.decode_seconds
    text.decode_tokens(ids, 0, logits_for_last=True)
    return tokens / (text.decode_seconds - before)


def decode_rate(text: TextModel, tokens: int, rng: np.random.Generator) -> float:
    """tgN in tokens/s: greedy through the generation path's Sampler, one token per llama_decode, from an empty
    context (one random start token)."""
    text.clear()
    text.decode_tokens([int(rng.integers(0, text.n_vocab))], 0)
    sampler = Sampler(GREEDY, text.vocab, text.n_ctx)
    try:
        started = time.perf_counter()
        for position in range(1, tokens + 1):
            text.decode_tokens([sampler.sample(text.ctx)], position)
        return tokens / (time.perf_counter() - started)
    finally:
        sampler.close()


def encode_ms(model: Model, crop: np.ndarray) -> float:
    assert model.vision is not None
    started = time.perf_counter()
    model.vision.encode(crop)
    return (time.perf_counter() - started) * 1000


def ttft_pair_ms(model: Model, image: Path) -> tuple[float, float]:
    """(first-turn TTFT, follow-up TTFT) in ms, from a fresh engine with empty image caches."""
    model.prompts.clear_caches()
    model.engine.reset()
    reply_ids = model.text.tokenize(FORCED_REPLY)
    forced = "root ::= " + " ".join(f"<[{token}]>" for token in reply_ids)
    first_options = GenerationOptions(len(reply_ids) + 1, sampling=SamplingParams(temperature=0, grammar=forced))
    chat = model.chat(options=GenerationOptions(max_tokens=1, sampling=SamplingParams(temperature=0)))
    first_ms, _ = _user_ttft_ms(lambda: chat.send(QUESTION, images=[image], options=first_options))
    second_ms, second = _user_ttft_ms(lambda: chat.send(FOLLOW_UP))
    if second.timings.reused_tokens == 0:
        log.warning("the follow-up reused nothing of the first turn: its TTFT is a full prefill")
    return first_ms, second_ms


def _user_ttft_ms(send: Callable[[], Completion]) -> tuple[float, Completion]:
    """TTFT as the caller sees it: from the call to the first token, so image preprocessing and encoding count
    (Completion.timings.ttft_s starts at the prefill, after the prompt with its image embeddings was built)."""
    started = time.perf_counter()
    completion = send()
    wall = time.perf_counter() - started
    return (wall - (completion.timings.total_s - completion.timings.ttft_s)) * 1000, completion


def memory_bandwidth(nbytes: int, threads: int = 1, repeat: int = 3) -> float:
    """Memory read bandwidth in bytes/s: the best of `repeat` numpy sums over an array of nbytes, split between
    `threads` threads (numpy releases the GIL in the sum), as llama.cpp's decode threads share the reading."""
    array = np.ones(nbytes // 8, dtype=np.float64)  # np.ones touches every page
    parts = np.array_split(array, max(1, threads))
    best = float("inf")
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        list(pool.map(np.sum, parts))  # warm-up
        for _ in range(max(1, repeat)):
            started = time.perf_counter()
            list(pool.map(np.sum, parts))
            best = min(best, time.perf_counter() - started)
    return nbytes / best


def peak_rss_mb() -> float:
    """This process's peak resident set in MiB. Linux: VmHWM, which starts afresh at exec; ru_maxrss there carries
    the parent's peak into a child started from a big process (a benchmark driver would report its own peak)."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / _MB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def system_info(threads: int) -> dict[str, Any]:
    import llama_cpp

    info = llama_cpp.llama_print_system_info()
    text = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    return {"threads": threads, "cpu": cpu_model(), "cpu_count": os.cpu_count(), "lfm_edge": __version__,
            "llama_cpp_python": llama_cpp.__version__, "llama_cpp_system_info": text.strip()}  # fmt: skip


def _bench_image(options: BenchOptions, folder: Path) -> Path:
    """The user's image (checked to decode before anything is loaded) or a random 512x385 PNG in `folder`."""
    if options.image is not None:
        load_image(options.image)
        return options.image
    from PIL import Image

    width, height = DEFAULT_IMAGE_SIZE
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path = folder / f"random_{width}x{height}.png"
    Image.fromarray(pixels).save(path)
    return path


def run_bench(model: str | Path, options: BenchOptions) -> dict[str, Any]:
    """Every figure of `lfm-edge bench` as a JSON-ready dict (see the module docstring)."""
    threads = options.threads or default_threads()
    with tempfile.TemporaryDirectory(prefix="lfm-edge-bench-") as folder:
        image = _bench_image(options, Path(folder))
        load_s, loaded = timed_loads(model, options, threads)
        with loaded:
            if loaded.vision is None:
                raise ModelError("bench needs the mmproj: put it beside MODEL or pass --mmproj")
            log.info("bench: %s loaded in %.2f s", loaded.files.text.name, load_s["min"])
            report = _measure(loaded, image, options)
    report["figures"] = {"load_s": load_s, **report["figures"]}
    report["system"] = system_info(threads)
    return report


def _measure(model: Model, image: Path, options: BenchOptions) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    n, text = options.repetitions, model.text
    prompt_rate(text, options.prompt_tokens, rng)  # warm-up, as llama-bench's: a full-size batch first
    figures = {"prompt_tok_s": _repeat(lambda: prompt_rate(text, options.prompt_tokens, rng), n)}
    log.info("bench: pp%d %.1f tok/s", options.prompt_tokens, figures["prompt_tok_s"]["median"])
    figures["decode_tok_s"] = _repeat(lambda: decode_rate(text, options.decode_tokens, rng), n)
    log.info("bench: tg%d %.1f tok/s", options.decode_tokens, figures["decode_tok_s"]["median"])
    tile = rng.integers(0, 256, (TILE, TILE, 3), dtype=np.uint8)
    thumbnail = preprocess(image, model.settings).crops[-1]
    encode_ms(model, thumbnail)  # warm-up
    figures["tile_encode_ms"] = _repeat(lambda: encode_ms(model, tile), n)
    figures["thumbnail_encode_ms"] = _repeat(lambda: encode_ms(model, thumbnail), n)
    pairs = [ttft_pair_ms(model, image) for _ in range(n)]
    figures["ttft_ms"] = summary([first for first, _ in pairs])
    figures["followup_ttft_ms"] = summary([second for _, second in pairs])
    peak_mb = peak_rss_mb()  # before the bandwidth array is allocated
    bytes_per_token = model.files.text.stat().st_size
    bandwidth = memory_bandwidth(options.bandwidth_bytes, text.options.n_threads or 1)
    bound = bandwidth / bytes_per_token
    return {
        "model": model.files.text.name,
        "settings": {"repeat": n, "prompt_tokens": options.prompt_tokens, "decode_tokens": options.decode_tokens,
                     "n_ctx": text.n_ctx, "image": image.name if options.image is None else str(image),
                     "thumbnail": "x".join(map(str, thumbnail.shape[1::-1])), "quick": options.quick},
        "figures": figures,
        "peak_rss_mb": peak_mb,
        "decode_bound": {"bytes_per_token": bytes_per_token, "read_gb_s": bandwidth / 1e9, "bound_tok_s": bound,
                         "measured_tok_s": figures["decode_tok_s"]["median"],
                         "fraction_of_bound": figures["decode_tok_s"]["median"] / bound},
    }  # fmt: skip


_ROWS = (
    ("load_s", "model load", "s"),
    ("prompt_tok_s", "pp{prompt_tokens}", "tok/s"),
    ("decode_tok_s", "tg{decode_tokens}", "tok/s"),
    ("tile_encode_ms", "encode tile 512x512", "ms"),
    ("thumbnail_encode_ms", "encode thumbnail {thumbnail}", "ms"),
    ("ttft_ms", "TTFT image + question", "ms"),
    ("followup_ttft_ms", "TTFT follow-up", "ms"),
)


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain aligned table (and a few lines about the machine)."""
    settings, system, bound = report["settings"], report["system"], report["decode_bound"]
    rows: list[tuple[str, ...]] = [("figure", "min", "median", "max", "unit")]
    for key, label, unit in _ROWS:
        values = report["figures"][key]
        cells = [_number(values[name]) for name in ("min", "median", "max")]
        rows.append((label.format(**settings), *cells, unit))
    width = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [f"{report['model']}: {settings['repeat']} repetition(s), {system['threads']} thread(s)"]
    for row in rows:
        padded = (cell.ljust(width[i]) if i in (0, 4) else cell.rjust(width[i]) for i, cell in enumerate(row))
        lines.append("  ".join(padded).rstrip())
    lines += [
        f"peak RSS: {report['peak_rss_mb']:.0f} MB",
        f"decode bound: {bound['bytes_per_token'] / _MB:.0f} MB read per token / {bound['read_gb_s']:.1f} GB/s "
        f"memory read bandwidth = {bound['bound_tok_s']:.1f} tok/s; measured tg {bound['measured_tok_s']:.1f} tok/s "
        f"({bound['fraction_of_bound'] * 100:.0f}% of the bound)",
        f"CPU: {system['cpu']} ({system['cpu_count']} logical cores)",
        f"llama.cpp: {system['llama_cpp_system_info']}",
    ]
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.3f}"
