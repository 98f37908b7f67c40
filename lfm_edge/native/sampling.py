"""llama.cpp's sampler chain, ordered as transformers' generate() applies its processors.

transformers (sampling): repetition penalty -> temperature -> top-k -> top-p -> min-p -> draw. Its repetition
penalty divides positive / multiplies negative logits of every token id present anywhere in the sequence (prompt
included, counted once); llama.cpp's penalties sampler does the same for the ids it was shown within
`penalty_last_n`. So the window is the whole context (`penalty_last_n = n_ctx`; llama.cpp's own -1 = "context size"
is a convention of its CLI, the sampler API clamps negatives to 0 = off) and the sampler is shown every prompt token
before generation starts (image positions as the `<image>` id, which transformers' input_ids hold there).
llama_sampler_sample accepts each sampled token itself.

Sampling never calls llama_sampler_sample: the chain is applied to our own candidate array, the chosen candidate is
checked (finite: allowed by the grammar and the bans) and only then accepted, because accepting a token the grammar
forbids throws a C++ exception that no C caller can catch (the process aborts).

Plain greedy (temperature 0, no grammar, no penalties) is an argmax over the logits in place: llama_sampler_sample
first copies all 65,536 logits into a candidate array, ~0.5 ms a token on a 2-core machine, 5% of a Q4_0 decode
step. Same token: both take the first maximum.
"""

from __future__ import annotations

import ctypes
import math
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from llama_cpp import llama_cpp as lc

from lfm_edge.errors import ConfigError, ModelClosedError, SamplingError


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
        _check_number("temperature", self.temperature, 0, None, "0 = greedy")
        _check_number("min_p", self.min_p, 0, 1, "0 = off")
        _check_number("top_p", self.top_p, 0, 1, "1 = off")
        if self.top_p == 0:
            raise ConfigError("top_p=0 must be in (0, 1] (1 = off)")
        _check_integer("top_k", self.top_k, 0, None)
        _check_number("repetition_penalty", self.repetition_penalty, 0, None, "1 = off")
        if self.repetition_penalty == 0:
            raise ConfigError("repetition_penalty=0 must be > 0 (1 = off)")
        _check_number("frequency_penalty", self.frequency_penalty, -2, 2, "0 = off")
        _check_number("presence_penalty", self.presence_penalty, -2, 2, "0 = off")
        if self.seed is not None:
            _check_integer("seed", self.seed, 0, 2**32 - 1)
        if self.grammar is not None and (not isinstance(self.grammar, str) or not self.grammar.strip()):
            raise ConfigError(f"grammar={self.grammar!r:.60} must be a non-empty GBNF string (or None)")
        _check_biases(self.logit_bias)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_number(name: str, value: object, low: float, high: float | None, hint: str) -> None:
    if not _is_number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise ConfigError(f"{name}={value!r:.40} must be a finite number ({hint})")
    number = float(value)  # type: ignore[arg-type]
    if number < low or (high is not None and number > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{name}={value!r} must be {bounds} ({hint})")


def _check_integer(name: str, value: object, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{name}={value!r:.40} must be an integer {bounds}")


def _check_biases(biases: object) -> None:
    if not isinstance(biases, tuple | list):
        raise ConfigError(f"logit_bias={biases!r:.60} must be a tuple of (token id, bias) pairs")
    for entry in biases:
        token, bias = entry if isinstance(entry, tuple | list) and len(entry) == 2 else (None, None)
        if isinstance(token, bool) or not isinstance(token, int) or token < 0:
            raise ConfigError(f"logit_bias entry {entry!r:.60}: the token id must be an integer >= 0")
        if not _is_number(bias) or not (math.isfinite(float(bias)) or bias == -math.inf):  # type: ignore[arg-type]
            raise ConfigError(f"logit_bias entry {entry!r:.60}: the bias must be a finite number (or -inf to ban)")


# llama_token_data {int32 id; float logit; float p;}: filled from numpy, no per-token Python work.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
assert _TOKEN_DATA.itemsize == ctypes.sizeof(lc.llama_token_data)

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


def _bias_vector(biases: Sequence[tuple[int, float]], n_vocab: int) -> np.ndarray | None:
    if not biases:
        return None
    vector = np.zeros(n_vocab, dtype=np.float32)
    np.add.at(vector, np.array([token for token, _ in biases]), np.array([bias for _, bias in biases], np.float32))
    return vector


def _ban(vocab: lc.llama_vocab_p, tokens: Sequence[int]) -> lc.llama_sampler_p:
    return _biases(vocab, [(token, -math.inf) for token in tokens])


class Sampler:
    def __init__(
        self, params: SamplingParams, vocab: lc.llama_vocab_p, window: int, history: Iterable[int] = ()
    ) -> None:
        """`history`: the prompt's token ids, shown to the repetition penalty only (never to the grammar, which
        constrains the output alone)."""
        self._chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        self._free = weakref.finalize(self, lc.llama_sampler_free, self._chain)  # also when never closed
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
        plain = params.grammar is None and not penalized
        self._n_vocab = int(lc.llama_vocab_n_tokens(vocab))
        self._argmax_width = self._n_vocab if params.temperature == 0 and plain else 0
        # Greedy under logit_bias alone (e.g. end-of-text banned): the biases added in numpy, then the argmax
        # (llama.cpp's logit_bias sampler adds them to the same candidates, in id order, and greedy takes the first
        # maximum too), instead of a 65,536-entry candidate array per token.
        self._bias = _bias_vector(params.logit_bias, self._n_vocab) if self._argmax_width else None
        self._candidates = np.zeros(self._n_vocab if not self._argmax_width else 0, dtype=_TOKEN_DATA)
        self._ids = np.arange(len(self._candidates), dtype=np.int32)
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

    def sample(self, ctx: lc.llama_context_p, index: int = -1, logits: np.ndarray | None = None) -> int:
        """The next token from the logits of batch row `index` (-1: the last), or from `logits` when given (a prompt
        restored whole from a snapshot). Raises SamplingError, before anything is accepted (the sampler stays
        usable), when no token is allowed: llama.cpp's grammar would throw a C++ exception through the C API
        (std::terminate) on accepting a token it forbids."""
        if not self._free.alive:
            raise ModelClosedError("this generation's sampler was closed (the stream was closed)")
        if logits is None:
            logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, index), shape=(self._n_vocab,))
        if self._argmax_width:
            scores = logits if self._bias is None else logits + self._bias
            token = int(np.argmax(scores))
            if not math.isfinite(float(scores[token])):
                if self._bias is not None and math.isfinite(float(logits[token])):
                    raise SamplingError("no token can be sampled: logit_bias bans every token; remove some bans")
                raise SamplingError("the model produced non-finite logits; the weights or settings are broken")
            return token
        # What llama_sampler_sample does, with a check between choosing and accepting.
        self._candidates["id"] = self._ids  # samplers sort the array in place
        self._candidates["logit"] = logits
        self._candidates["p"] = 0.0
        array = lc.llama_token_data_array(
            data=self._candidates.ctypes.data_as(lc.llama_token_data_p), size=self._n_vocab, selected=-1, sorted=False
        )
        lc.llama_sampler_apply(self._chain, ctypes.byref(array))
        if not 0 <= array.selected < array.size:
            raise SamplingError(f"the sampler chain selected no token (index {array.selected} of {array.size})")
        chosen = array.data[array.selected]
        if not math.isfinite(chosen.logit):
            raise SamplingError(
                "no token can be sampled: the grammar allows none of the tokens logit_bias leaves (or the grammar "
                "cannot continue at all); loosen the grammar or remove the bans"
            )
        token = int(chosen.id)
        lc.llama_sampler_accept(self._chain, token)
        return token

    def close(self) -> None:
        self._free()
