"""Generation -> detokenization -> parsing for real: llama.cpp grammars force the tiny model to emit a given tool
call or box array, and chat(tools=...) / detect() must return exactly the expected typed calls / pixel boxes."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_cpp import llama_cpp as lc

import lfm_edge.model as api
from lfm_edge.errors import ConfigError, SamplingError
from lfm_edge.generation import GenerationOptions
from lfm_edge.native.sampling import Sampler, SamplingParams, grammar_blind_spot

IMAGES = Path(__file__).parent / "images"
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}
TOOLS = [{"name": "get_weather", "description": "Weather of a city.", "parameters": PARAMETERS}]


def _forced(grammar: str) -> GenerationOptions:
    return GenerationOptions(max_tokens=64, sampling=SamplingParams(temperature=0.7, seed=3, grammar=grammar))


@pytest.fixture(scope="module")
def model(converted: Callable[..., tuple[Path, Path]]) -> Iterator[api.Model]:
    text, _ = converted("official-2.5", "f16")
    with api.load(text, n_ctx=4096, n_threads=2) as loaded:
        yield loaded


def test_chat_returns_the_forced_pythonic_tool_call(model: api.Model) -> None:
    # <[10]> / <[11]>: the <|tool_call_start|> / <|tool_call_end|> token ids
    grammar = 'root ::= "Checking." <[10]> "[get_weather(city=\\"Paris\\", days=3)]" <[11]>'
    chat = model.chat(tools=TOOLS, options=_forced(grammar))
    pieces = list(stream := chat.stream("Weather in Paris for 3 days?"))
    assert "".join(pieces) == "Checking."  # the call never reaches the streamed text
    assert stream.completion is not None
    calls = stream.completion.message.tool_calls
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Paris", "days": 3})]
    assert calls[0].to_openai()["function"]["arguments"] == '{"city": "Paris", "days": 3}'


def test_chat_returns_the_forced_json_tool_call(model: api.Model) -> None:
    grammar = 'root ::= <[10]> "[{\\"name\\": \\"get_weather\\", \\"arguments\\": {\\"city\\": \\"Oslo\\"}}]" <[11]>'
    reply = model.chat(system="Output function calls as JSON.", tools=TOOLS, options=_forced(grammar)).send("Oslo?")
    assert [(c.name, c.arguments) for c in reply.message.tool_calls] == [("get_weather", {"city": "Oslo"})]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("photo_1024x768.jpg", (256.0, 384.0, 768.0, 768.0)),  # tiled (3x2 + thumbnail)
        ("photo_336x240.png", (84.0, 120.0, 252.0, 240.0)),  # a single crop
        # stored 400x240 with EXIF orientation 6: the model sees (and boxes are in) the upright 240x400 image
        ("exif_o6_400x240.jpg", (60.0, 200.0, 180.0, 400.0)),
    ],
)
def test_detect_maps_the_forced_boxes_to_original_pixels(
    model: api.Model, image: str, expected: tuple[float, ...]
) -> None:
    answer = '[{\\"label\\": \\"statue\\", \\"bbox\\": [0.25, 0.5, 0.75, 1.0]}]'
    detection = model.detect(IMAGES / image, "statue", _forced(f'root ::= "{answer}"'))
    assert not detection.errors
    box = detection.boxes[0]
    assert (box.label, box.x1, box.y1, box.x2, box.y2) == ("statue", *expected)


def test_a_broken_grammar_is_a_config_error_and_the_model_still_works(model: api.Model) -> None:
    with pytest.raises(ConfigError, match="grammar"):
        model.generate("Hi", options=_forced("root ::= ("))
    assert model.generate("Hi", options=GenerationOptions(max_tokens=3)).completion_tokens == 3


@pytest.mark.parametrize(
    ("piece", "blind"),
    [
        (b"hello", False),
        (b"\xc3\xa9", False),  # é
        (b"\xe4\xb8", False),  # the first two bytes of a CJK character: a valid fragment
        (b"\x80\x81", False),  # continuation bytes: the end of a character
        (b"\xf0\x9f\x98\x80", False),  # an emoji
        (b"\x00", False),  # llama.cpp's grammar rejects a piece that starts with NUL itself
        (b"a\x00b", True),
        (b"\xc1\xa8", True),  # an overlong "h": llama.cpp's grammar accepts it as "h"
        (b"t\xc0\xaf", True),
        (b"\xe0\x81\xa8", True),
        (b"\xed\xa0\x80", True),  # a UTF-16 surrogate
        (b"\xf4\x90\x80\x80", True),  # above U+10FFFF
        (b"\xff", True),
    ],
)
def test_grammar_blind_spots_are_exactly_the_pieces_no_utf8_text_holds(piece: bytes, blind: bool) -> None:
    assert grammar_blind_spot(piece) is blind


def test_a_forced_literal_comes_out_exactly(model: api.Model) -> None:
    """Without the ban, the tiny vocabulary's overlong token b"\\xc1\\xa8" satisfies the grammar's "h"."""
    literal = "<think>Let me see, which hue?</think>Blue."
    for seed in range(4):
        options = GenerationOptions(max_tokens=48, sampling=SamplingParams(seed=seed, grammar=f'root ::= "{literal}"'))
        assert model.generate("Colour?", options=options).text == literal


def test_logit_bias_is_validated_and_bans(model: api.Model) -> None:
    with pytest.raises(ConfigError, match="logit_bias"):
        SamplingParams(logit_bias=((3, float("nan")),))
    greedy = GenerationOptions(max_tokens=1, sampling=SamplingParams(temperature=0))
    first = model.generate("Hello", options=greedy).token_ids[0]
    banned = SamplingParams(temperature=0, logit_bias=((first, float("-inf")),))
    assert model.generate("Hello", options=GenerationOptions(max_tokens=1, sampling=banned)).token_ids[0] != first
    outside = SamplingParams(logit_bias=((10**7, 1.0),))
    with pytest.raises(ConfigError, match="outside the vocabulary"):
        model.generate("Hello", options=GenerationOptions(max_tokens=1, sampling=outside))
    assert model.generate("Hello", options=greedy).token_ids[0] == first  # the model still works


def test_greedy_under_logit_bias_picks_what_llama_cpps_own_chain_picks(model: api.Model) -> None:
    """Greedy with logit_bias alone is an argmax in numpy (no candidate array); llama.cpp's logit_bias + greedy
    samplers, run by llama_sampler_sample on the same logits, are the reference."""
    model.generate("Hello", options=GenerationOptions(max_tokens=1, sampling=SamplingParams(temperature=0)))
    ctx, vocab = model.text.ctx, model.text.vocab
    logits = model.text.last_logits()
    order = [int(t) for t in np.argsort(logits)[::-1][:4]]
    overtake = float(logits[order[0]] - logits[order[1]]) + 1.0
    cases = [((order[0], -math.inf),), ((order[0], -math.inf), (order[1], -0.5), (order[3], 2.0)),
             ((order[2], 1.0), (order[2], 1.5)), ((order[1], overtake),)]  # fmt: skip
    for biases in cases:
        sampler = Sampler(SamplingParams(temperature=0, repetition_penalty=1, logit_bias=biases), vocab, 64)
        assert sampler._bias is not None  # the numpy path
        ours = sampler.sample(ctx, -1)
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        entries: Any = (lc.llama_logit_bias * len(biases))()
        for index, (token, bias) in enumerate(biases):
            entries[index].token, entries[index].bias = token, bias
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_logit_bias(model.text.n_vocab, len(biases), entries))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        try:
            assert ours == lc.llama_sampler_sample(chain, ctx, -1), biases
        finally:
            lc.llama_sampler_free(chain)
    every = tuple((t, -math.inf) for t in range(model.text.n_vocab))
    ban_all = SamplingParams(temperature=0, repetition_penalty=1, logit_bias=every)
    with pytest.raises(SamplingError, match="bans every token"):
        Sampler(ban_all, vocab, 64).sample(ctx, -1)
