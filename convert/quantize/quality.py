"""Teacher-forced quality of a quantized text GGUF against its F16 file, through our runtime.

The same token sequence (chat-rendered prompts; image prompts through the HF-exact image path) is evaluated in both
models and the full next-token distribution compared at every position: KL(F16 || quantized) and top-1 agreement.
Also perplexity on a bundled text, load time and greedy decode speed. Both models use the same F16 mmproj, so the
numbers measure the text model's quantization alone.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from lfm_edge.engine import ImageBlock, Item
from lfm_edge.model import LoadOptions, Model, load
from lfm_edge.native.text import ContextOptions
from lfm_edge.prompt import RenderOptions

log = logging.getLogger(__name__)

_PROMPTS = (
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain in two sentences why the sky is blue.",
    "List three uses of a paperclip.",
    "Translate 'good morning' into Spanish and German.",
    "def fibonacci(n):",
)
_IMAGE_PROMPTS = ("Describe this image.", "What colors are in this picture?")
_PERPLEXITY_TOKENS = 256  # bounded so the report stays quick on 2 cores for the full-size model


@dataclass(frozen=True)
class EvalSet:
    prompts: tuple[str, ...]
    image: Path | None
    image_prompts: tuple[str, ...]
    text: str
    decode_tokens: int = 32


def default_eval_set() -> EvalSet:
    package = resources.files("convert.quantize")
    image = Path(str(package / "eval_image.png"))
    text = (package / "eval_text.txt").read_text(encoding="utf-8")
    return EvalSet(_PROMPTS, image, _IMAGE_PROMPTS, text)


@dataclass(frozen=True)
class Measured:
    """One model's raw measurements: per-prompt logits rows and the scalar metrics."""

    rows: tuple[np.ndarray, ...]
    perplexity: float
    load_seconds: float
    decode_tokens_per_second: float


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """float32 (a float64 copy of 65,536-wide rows costs seconds on 2 cores); the sums below accumulate in float64."""
    values = logits.astype(np.float32, copy=True)
    values -= values.max(axis=-1, keepdims=True)
    values -= np.log(np.exp(values).sum(axis=-1, keepdims=True, dtype=np.float64)).astype(np.float32)
    return values


def compare(reference: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-position KL(reference || candidate) in nats and whether the argmax agrees."""
    log_p, log_q = _log_softmax(reference), _log_softmax(candidate)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=-1, dtype=np.float64)
    agree = reference.argmax(axis=-1) == candidate.argmax(axis=-1)
    return np.maximum(kl, 0.0), agree  # tiny negative values are float rounding


def _items_logits(model: Model, items: list[Item]) -> np.ndarray:
    """Logits at every position after the last image block (and at the block's end): teacher forcing."""
    model.engine.reset()
    last_image = max((i for i, item in enumerate(items) if isinstance(item, ImageBlock)), default=-1)
    rows = []
    if last_image >= 0:
        model.engine.prefill(items[: last_image + 1])
        rows.append(model.engine.logits()[None, :])
    tail = [int(item) for item in items[last_image + 1 :] if not isinstance(item, ImageBlock)]
    rows.append(model.text.decode_tokens_all_logits(tail, model.engine.n_past))
    model.engine.reset()
    return np.concatenate(rows)


def _prompt_rows(model: Model, eval_set: EvalSet) -> list[np.ndarray]:
    messages = [[{"role": "user", "content": [{"type": "text", "text": p}]}] for p in eval_set.prompts]
    if eval_set.image is not None and model.vision is not None:
        image = {"type": "image", "image": str(eval_set.image)}
        messages += [
            [{"role": "user", "content": [image, {"type": "text", "text": p}]}] for p in eval_set.image_prompts
        ]
    return [_items_logits(model, model.prompts.build(m, RenderOptions(), model.settings)) for m in messages]


def _perplexity(model: Model, text: str) -> float:
    tokens = model.text.tokenize(text)[:_PERPLEXITY_TOKENS]
    model.engine.reset()
    logits = model.text.decode_tokens_all_logits(tokens, 0)
    model.engine.reset()
    # Only the target's log-probability is needed: logsumexp minus its logit, without a full log-softmax.
    logits = logits[:-1]
    peak = logits.max(axis=-1)
    log_sum = peak + np.log(np.exp(logits - peak[:, None]).sum(axis=-1, dtype=np.float64))
    nll = log_sum - logits[np.arange(len(tokens) - 1), tokens[1:]]
    return float(math.exp(nll.mean()))


def _decode_speed(model: Model, prompt: str, count: int) -> float:
    """Greedy tokens per second, one token per llama_decode as in generation (prompt evaluation excluded)."""
    model.engine.reset()
    tokens = model.text.tokenize(prompt)
    model.text.decode_tokens(tokens, 0)
    position = len(tokens)
    started = time.perf_counter()
    for _ in range(count):
        token = int(model.text.last_logits().argmax())
        model.text.decode_tokens([token], position)
        position += 1
    elapsed = time.perf_counter() - started
    model.engine.reset()
    return count / elapsed if elapsed > 0 else float("inf")


def measure(text: Path, mmproj: Path | None, eval_set: EvalSet, n_threads: int | None = None) -> Measured:
    started = time.perf_counter()
    context = ContextOptions(n_ctx=2048, n_threads=n_threads)
    with load(text, LoadOptions(context=context, mmproj=mmproj)) as model:
        load_seconds = time.perf_counter() - started
        rows = tuple(_prompt_rows(model, eval_set))
        perplexity = _perplexity(model, eval_set.text)
        speed = _decode_speed(model, eval_set.prompts[0], eval_set.decode_tokens)
    log.info("measured %s: perplexity %.3f, %.1f tok/s", text.name, perplexity, speed)
    return Measured(rows, perplexity, load_seconds, speed)
