"""llama.cpp's sampler chain, ordered as transformers' generate() applies its processors.

transformers (sampling): repetition penalty -> temperature -> top-k -> top-p -> min-p -> draw. Its repetition
penalty divides positive / multiplies negative logits of every token id present anywhere in the sequence (prompt
included, counted once); llama.cpp's penalties sampler does the same for the ids it was shown within
`penalty_last_n`. So the window is the whole context (`penalty_last_n = n_ctx`; llama.cpp's own -1 = "context size"
is a convention of its CLI, the sampler API clamps negatives to 0 = off) and the sampler is shown every prompt token
before generation starts (image positions as the `<image>` id, which transformers' input_ids hold there).
llama_sampler_sample accepts each sampled token itself.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def __post_init__(self) -> None:
        checks = [
            (self.temperature >= 0, f"temperature {self.temperature} must be >= 0 (0 = greedy)"),
            (0 <= self.min_p <= 1, f"min_p {self.min_p} must be in [0, 1]"),
            (0 < self.top_p <= 1, f"top_p {self.top_p} must be in (0, 1]"),
            (self.top_k >= 0, f"top_k {self.top_k} must be >= 0 (0 = off)"),
            (self.repetition_penalty > 0, f"repetition_penalty {self.repetition_penalty} must be > 0 (1 = off)"),
            (self.seed is None or 0 <= self.seed < 2**32, f"seed {self.seed} must be in [0, 2**32)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


class Sampler:
    def __init__(self, params: SamplingParams, n_vocab: int, window: int) -> None:
        self._chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        penalized = params.repetition_penalty != 1 or params.frequency_penalty or params.presence_penalty
        if penalized:
            self._add(lc.llama_sampler_init_penalties(
                n_vocab, window, params.repetition_penalty, params.frequency_penalty, params.presence_penalty
            ))  # fmt: skip
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
        self.n_vocab = n_vocab

    def _add(self, sampler: lc.llama_sampler_p) -> None:
        lc.llama_sampler_chain_add(self._chain, sampler)

    def accept(self, token: int) -> None:
        lc.llama_sampler_accept(self._chain, token)

    def sample(self, ctx: lc.llama_context_p) -> int:
        return int(lc.llama_sampler_sample(self._chain, ctx, -1))

    def close(self) -> None:
        if self._chain:
            lc.llama_sampler_free(self._chain)
            self._chain = None
