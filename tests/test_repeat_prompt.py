"""A prompt asked again is restored whole from its snapshot, last logits included: nothing is evaluated, and the
answer is the one the first evaluation gave (tiny converted model, F16)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import lfm_edge.model as api
from lfm_edge.errors import ModelError
from lfm_edge.generation import GenerationOptions
from lfm_edge.native.sampling import SamplingParams

IMAGE = Path(__file__).parent / "images" / "photo_1024x768.jpg"
GREEDY = GenerationOptions(max_tokens=8, sampling=SamplingParams(temperature=0))
SEEDED = GenerationOptions(max_tokens=8, sampling=SamplingParams(temperature=0.9, min_p=0.0, seed=7))
Converted = Callable[..., tuple[Path, Path]]


def _load(converted: Converted) -> api.Model:
    text, mmproj = converted("official-2.5", "f16")
    context = api.ContextOptions(n_ctx=2048, n_threads=2, n_seq=2)
    return api.Model(api.ModelFiles(text, mmproj), api.LoadOptions(context=context))


@pytest.fixture
def model(converted: Converted) -> Iterator[api.Model]:
    with _load(converted) as loaded:
        yield loaded


@pytest.mark.parametrize("options", [GREEDY, SEEDED], ids=["greedy", "seeded"])
@pytest.mark.parametrize("images", [(), (IMAGE,)], ids=["text", "image"])
def test_the_same_prompt_again_evaluates_nothing_and_answers_the_same(
    model: api.Model, converted: Converted, options: GenerationOptions, images: tuple[Path, ...]
) -> None:
    first = model.generate("Name a colour.", images, options)
    model.generate("Something else in between.", (), options)  # the slots move on; the snapshot stays
    again = model.generate("Name a colour.", images, options)
    assert first.timings.prefill_tokens > 0 and first.timings.reused_tokens == 0
    assert again.timings.prefill_tokens == 0 and again.timings.reused_tokens == first.prompt_tokens
    assert again.token_ids == first.token_ids
    with _load(converted) as cold:  # and it is the answer a fresh process gives
        assert cold.generate("Name a colour.", images, options).token_ids == first.token_ids


def test_a_refused_snapshot_falls_back_to_evaluating(model: api.Model, monkeypatch: pytest.MonkeyPatch) -> None:
    first = model.generate("Count to three.", (), GREEDY)

    def refuse(state: bytes, seq: int = 0) -> None:
        model.text.clear(seq)  # as llama.cpp's refusal leaves it
        raise ModelError("llama.cpp refused to restore a saved state")

    monkeypatch.setattr(model.text, "load_state", refuse)
    again = model.generate("Count to three.", (), GREEDY)
    assert again.timings.prefill_tokens == first.timings.prefill_tokens  # evaluated again, from scratch
    assert again.token_ids == first.token_ids


def test_engine_prefill_still_leaves_the_logits_in_the_context(model: api.Model) -> None:
    """Callers of Engine.prefill that read Engine.logits() afterwards (tests, gpu_check) are not given a restore."""
    items = model.text.tokenize("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n")
    model.engine.prefill(items)
    first = model.engine.logits()
    model.engine.prefill(model.text.tokenize("Other text"))
    second = model.engine.prefill(items)
    assert second.logits is None and second.evaluated_positions == len(items)
    assert np.array_equal(model.engine.logits(), first)


@pytest.mark.parametrize("extended", [False, True], ids=["same-prompt", "longer-prompt"])
def test_parking_the_slot_never_evicts_the_snapshot_being_restored(converted: Converted, extended: bool) -> None:
    """One slot, three snapshots at most: restoring the oldest snapshot parks the slot's content first, which must
    not push out the very snapshot being restored (it did: ValueError from list.remove under the stress test)."""
    text, mmproj = converted("official-2.5", "f16")
    context = api.ContextOptions(n_ctx=1024, n_threads=2, n_seq=1)
    with api.Model(api.ModelFiles(text, mmproj), api.LoadOptions(context=context)) as model:
        engine = model.engine
        engine.max_snapshots = 3
        a, b, c = (model.text.tokenize(f"Prompt {name} with a few words.") for name in "ABC")
        for prompt in (a, b, c):
            engine.prefill(prompt)  # snapshots [a, b, c]: a is the oldest
        engine.prefill([*c, 11], remember=False)  # the slot holds what no snapshot has: parking it adds one
        if extended:  # a longer prompt restores a's snapshot and evaluates the rest
            stats = engine.prefill([*a, 12])
            assert stats.reused_positions == len(a) and stats.evaluated_positions == 1
        else:  # the same prompt is restored whole
            stats = engine.prefill(a, whole_from_snapshot=True)
            assert stats.logits is not None and stats.evaluated_positions == 0


def test_a_slot_already_holding_the_prompt_is_not_snapshotted_twice(converted: Converted) -> None:
    text, mmproj = converted("official-2.5", "f16")
    context = api.ContextOptions(n_ctx=1024, n_threads=2, n_seq=1)
    with api.Model(api.ModelFiles(text, mmproj), api.LoadOptions(context=context)) as model:
        items = model.text.tokenize("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n")
        model.engine.prefill(items)  # the one slot holds exactly these units; their snapshot has the logits
        stats = model.engine.prefill(items, whole_from_snapshot=True)
        assert stats.logits is not None
        assert [s.units for s in model.engine._snapshots].count(list(items)) == 1
