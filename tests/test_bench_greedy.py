"""The Sampler's plain-greedy fast path (an argmax over the logits in place, used by `lfm-edge bench`'s tg and by
temperature-0 generation without penalties) picks the token llama.cpp's greedy sampler picks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from llama_cpp import llama_cpp as lc

from lfm_edge.native.sampling import Sampler, SamplingParams
from lfm_edge.native.text import ContextOptions, TextModel


def test_fast_greedy_matches_llama_cpp_greedy(converted: Callable[..., tuple[Path, Path]]) -> None:
    text = TextModel(converted("official-2.5", "f16")[0], ContextOptions(n_ctx=256, n_threads=1))
    fast = Sampler(SamplingParams(temperature=0, repetition_penalty=1.0), text.vocab, text.n_ctx)
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
    try:
        rng = np.random.default_rng(0)
        text.decode_tokens([int(token) for token in rng.integers(0, text.n_vocab, 8)], 0)
        for position in range(8, 40):
            token = fast.sample(text.ctx)
            assert token == int(lc.llama_sampler_sample(chain, text.ctx, -1)) == int(np.argmax(text.last_logits()))
            text.decode_tokens([token], position)
    finally:
        lc.llama_sampler_free(chain)
        fast.close()
        text.close()
