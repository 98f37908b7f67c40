"""llama.cpp's sampler chain, ordered as transformers' generate() applies its processors.

transformers (sampling): repetition penalty -> temperature -> top-k -> top-p -> min-p -> draw. Its repetition
penalty divides positive / multiplies negative logits of every token id present anywhere in the sequence (prompt
included, counted once); llama.cpp's penalties sampler does the same for the ids it was shown within
`penalty_last_n`. So the window is the whole context (`penalty_last_n = n_ctx`; llama.cpp's own -1 = "context size"
is a convention of its CLI, the sampler API clamps negatives to 0 = off) and the sampler is shown every prompt token
before generation starts (image positions as the `<image>` id, which transformers' input_ids hold there).
llama_sampler_sample accepts each sampled token itself.

Plain greedy (temperature 0, no grammar, no penalties) is an argmax over the logits in place: llama_sampler_sample
first copies all 65,536 logits into a candidate array, ~0.5 ms a token on a 2-core machine, 5% of a Q4_0 decode
step. Same token: both take the first maximum.
"""

from __future__ import annotations

import ctypes
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from llama_cpp import llama_cpp as lc

from lfm_edge.errors import ConfigError


@dataclass(frozen=True)
class SamplingParams:
    """Defaults: the model card's recommendation (temperature 0.1, min_p 0.15, repetition_penalty 1.05) and
    transformers' GenerationConfig defaults for the rest (top_k 50, top_p 1.0). temperature 0 = greedy."""

    temperature: float = 0.1
    min_p: float = 0.15
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.05
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    grammar: str | None = None  # GBNF (llama.cpp grammar) the output must match; `<[id]>` names a token id
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit); -inf bans the token

    def __post_init__(self) -> None:
        checks = [
            (self.temperature >= 0, f"temperature {self.temperature} must be >= 0 (0 = greedy)"),
            (0 <= self.min_p <= 1, f"min_p {self.min_p} must be in [0, 1]"),
            (0 < self.top_p <= 1, f"top_p {self.top_p} must be in (0, 1]"),
            (self.top_k >= 0, f"top_k {self.top_k} must be >= 0 (0 = off)"),
            (self.repetition_penalty > 0, f"repetition_penalty {self.repetition_penalty} must be > 0 (1 = off)"),
            (self.seed is None or 0 <= self.seed < 2**32, f"seed {self.seed} must be in [0, 2**32)"),
            (
                all(token >= 0 and (math.isfinite(bias) or bias == -math.inf) for token, bias in self.logit_bias),
                f"logit_bias {self.logit_bias!r:.80}: token ids must be >= 0 and biases finite (or -inf to ban)",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


_UNCHECKED_TOKENS: dict[int, tuple[int, ...]] = {}
# Byte patterns that never occur in UTF-8 text: bytes C0, C1 and F5-FF, overlong 3- and 4-byte leads (E0 80-9F,
# F0 80-8F), UTF-16 surrogates (ED A0-BF) and code points above U+10FFFF (F4 90-BF).
_NEVER_UTF8 = re.compile(rb"[\xc0\xc1\xf5-\xff]|\xe0[\x80-\x9f]|\xed[\xa0-\xbf]|\xf0[\x80-\x8f]|\xf4[\x90-\xbf]")


def grammar_blind_spot(piece: bytes) -> bool:
    """True for a token piece that llama.cpp's grammar would check wrongly: a NUL byte after the first (the grammar
    reads the piece as a C string and lets the rest through unchecked), or bytes no UTF-8 text holds (its decoder
    accepts overlong forms, so b"\xc1\xa8" passes as "h" and the output shows replacement characters)."""
    return (len(piece) > 1 and b"\x00" in piece[1:]) or _NEVER_UTF8.search(piece) is not None


def _grammar_blind_tokens(vocab: lc.llama_vocab_p) -> tuple[int, ...]:
    """The tokens of `vocab` for which grammar_blind_spot holds; they are banned under a grammar."""
    key = ctypes.cast(vocab, ctypes.c_void_p).value or 0
    if key not in _UNCHECKED_TOKENS:
        buffer = ctypes.create_string_buffer(256)
        found = []
        for token in range(lc.llama_vocab_n_tokens(vocab)):
            size = lc.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, True)
            if grammar_blind_spot(buffer.raw[: max(size, 0)]):
                found.append(token)
        _UNCHECKED_TOKENS[key] = tuple(found)
    return _UNCHECKED_TOKENS[key]


def _biases(vocab: lc.llama_vocab_p, biases: Sequence[tuple[int, float]]) -> lc.llama_sampler_p:
    n_vocab = lc.llama_vocab_n_tokens(vocab)
    outside = [token for token, _ in biases if token >= n_vocab]
    if outside:
        raise ConfigError(f"logit_bias names token ids {outside[:5]} outside the vocabulary (0..{n_vocab - 1})")
    entries: Any = (lc.llama_logit_bias * max(1, len(biases)))()  # llama-cpp-python annotates token as c_int32
    for index, (token, bias) in enumerate(biases):
        entries[index].token = token
        entries[index].bias = bias
    sampler: lc.llama_sampler_p = lc.llama_sampler_init_logit_bias(n_vocab, len(biases), entries)
    return sampler


def _ban(vocab: lc.llama_vocab_p, tokens: Sequence[int]) -> lc.llama_sampler_p:
    return _biases(vocab, [(token, -math.inf) for token in tokens])


class Sampler:
    def __init__(
        self, params: SamplingParams, vocab: lc.llama_vocab_p, window: int, history: Iterable[int] = ()
    ) -> None:
        """`history`: the prompt's token ids, shown to the repetition penalty only (never to the grammar, which
        constrains the output alone)."""
        self._chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if params.logit_bias:
            try:
                self._add(_biases(vocab, params.logit_bias))
            except ConfigError:
                self.close()
                raise
        if params.grammar is not None:
            grammar = lc.llama_sampler_init_grammar(vocab, params.grammar.encode(), b"root")
            if not grammar:
                self.close()
                raise ConfigError("the grammar does not parse (llama.cpp GBNF, with a `root` rule); see --verbose")
            self._add(_ban(vocab, _grammar_blind_tokens(vocab)))
            self._add(grammar)
        penalized = params.repetition_penalty != 1 or params.frequency_penalty or params.presence_penalty
        if penalized:
            n_vocab = lc.llama_vocab_n_tokens(vocab)
            penalties = lc.llama_sampler_init_penalties(
                n_vocab, window, params.repetition_penalty, params.frequency_penalty, params.presence_penalty
            )
            for token in history:
                lc.llama_sampler_accept(penalties, token)
            self._add(penalties)
        plain = params.grammar is None and not penalized and not params.logit_bias
        self._argmax_width = int(lc.llama_vocab_n_tokens(vocab)) if params.temperature == 0 and plain else 0
        if params.temperature == 0:
            self._add(lc.llama_sampler_init_greedy())
        else:
            self._add(lc.llama_sampler_init_temp(params.temperature))
            if params.top_k > 0:
                self._add(lc.llama_sampler_init_top_k(params.top_k))
            self._add(lc.llama_sampler_init_top_p(params.top_p, 1))
            self._add(lc.llama_sampler_init_min_p(params.min_p, 1))
            seed = params.seed if params.seed is not None else lc.LLAMA_DEFAULT_SEED
            self._add(lc.llama_sampler_init_dist(seed))

    def _add(self, sampler: lc.llama_sampler_p) -> None:
        lc.llama_sampler_chain_add(self._chain, sampler)

    def sample(self, ctx: lc.llama_context_p) -> int:
        if self._argmax_width:
            logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, -1), shape=(self._argmax_width,))
            return int(np.argmax(logits))
        return int(lc.llama_sampler_sample(self._chain, ctx, -1))

    def close(self) -> None:
        if self._chain:
            lc.llama_sampler_free(self._chain)
            self._chain = None
