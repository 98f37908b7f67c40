"""One generation: sample tokens from a prefilled engine, stream UTF-8-safe text, stop on strings, and measure.

Timings follow the usual definitions: TTFT = building the prompt (images decoded, preprocessed and encoded) +
prefill + the first sampled token; prefill tok/s counts only the positions actually evaluated (a reused prefix costs
nothing); decode tok/s over the tokens after the first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from lfm_edge.engine import Engine, Item
from lfm_edge.errors import ConfigError
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.parse import ParsedMessage, parse_assistant_output
from lfm_edge.textstream import StopMatcher, TokenTextDecoder
from lfm_edge.vision.timings import ImageTimings

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    sampling: SamplingParams = field(default_factory=SamplingParams)

    def __post_init__(self) -> None:
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ConfigError(f"max_tokens={self.max_tokens!r} must be an integer >= 1")


@dataclass(frozen=True)
class Timings:
    ttft_s: float
    prefill_tokens: int
    reused_tokens: int
    prefill_tok_s: float
    decode_tokens: int
    decode_tok_s: float
    total_s: float
    # The stages before the first token: the images (load, preprocess, encode; None for a text-only prompt), the
    # prompt prefill, and sampling the first token after it.
    image: ImageTimings | None = None
    prefill_s: float = 0.0
    first_token_s: float = 0.0


@dataclass(frozen=True)
class Completion:
    """`text` is the raw model output (tool-call markup included); `message` is it parsed: content, tool calls
    (OpenAI-shaped via ToolCall.to_openai) and <think> reasoning, with any parse problems in message.errors."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    token_ids: tuple[int, ...]
    timings: Timings
    message: ParsedMessage


class TextStream:
    """Iterate for text pieces; `completion` is set once the iteration is over."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self._pieces = pieces
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def text(self) -> str:
        return "".join(self)

    def close(self) -> None:
        """Stops generating now (the sampler is freed); `completion` stays None."""
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def run_generation(
    engine: Engine,
    items: Sequence[Item],
    options: GenerationOptions,
    started: float | None = None,
    image: ImageTimings | None = None,
) -> TextStream:
    """`started`: when the request began (time.perf_counter()), so TTFT covers building the prompt too (image
    decoding, preprocessing and encoding); default: now. `image`: those stages' timings, passed to Timings."""
    stream = TextStream(iter(()))
    stream._pieces = _pieces(engine, items, options, stream, (started, image))
    return stream


def _pieces(
    engine: Engine,
    items: Sequence[Item],
    options: GenerationOptions,
    stream: TextStream,
    begun: tuple[float | None, ImageTimings | None],
) -> Iterator[str]:
    started = time.perf_counter() if begun[0] is None else begun[0]
    prefill = engine.prefill(items)
    prefilled_at = time.perf_counter()
    decoder, matcher = TokenTextDecoder(), StopMatcher(options.stop)
    tokens: list[int] = []
    text: list[str] = []
    first_token_at = None
    finish: FinishReason = "length"
    sampled = engine.generate(options.sampling, options.max_tokens)
    try:
        for token in sampled:
            first_token_at = first_token_at or time.perf_counter()
            tokens.append(token)
            if engine.text.is_end_of_generation(token):
                finish = "stop"
                break
            shown = matcher.feed(decoder.feed(engine.text.piece(token)))
            if shown:
                text.append(shown)
                yield shown
            if matcher.stopped:
                finish = "stop"
                break
    finally:
        sampled.close()  # frees the sampler now, also when the caller stops iterating early
    tail = matcher.feed(decoder.flush()) + matcher.flush()
    if tail:
        text.append(tail)
        yield tail
    ended = time.perf_counter()
    first = (first_token_at or ended) - started
    raw = "".join(text)
    stream.completion = Completion(
        text=raw,
        message=parse_assistant_output(raw),
        finish_reason=finish,
        prompt_tokens=prefill.reused_positions + prefill.evaluated_positions,
        completion_tokens=len(tokens),
        token_ids=tuple(tokens),
        timings=Timings(
            ttft_s=first,
            prefill_tokens=prefill.evaluated_positions,
            reused_tokens=prefill.reused_positions,
            prefill_tok_s=_rate(prefill.evaluated_positions, prefill.seconds),
            decode_tokens=max(0, len(tokens) - 1),
            decode_tok_s=_rate(max(0, len(tokens) - 1), ended - (first_token_at or ended)),
            total_s=ended - started,
            image=begun[1],
            prefill_s=prefill.seconds,
            first_token_s=(first_token_at or ended) - prefilled_at,
        ),
    )
