"""The engine end to end on converted tiny models: transformers' logits for text and image prompts (image blocks
from mtmd fed transformers' crops, placed between the golden token ids), greedy decoding, and prefix reuse."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from lfm_edge.engine import IMAGE_TOKEN_ID, Engine, ImageBlock, Item
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.native.text import ContextOptions, TextModel
from lfm_edge.vision.mtmd import VisionEncoder, VisionOptions
from tests.conftest import GOLDENS, MODEL_INDEX, model_cases

CROPS = np.load(GOLDENS / "model" / "crops.npz")
TEXT_TOLERANCE = 1e-3
IMAGE_TOLERANCE = 5e-3  # measured up to 3.1e-3 (tiny model): the projector's tanh- vs erf-GELU


@pytest.fixture(scope="module")
def engines(converted: Callable[..., tuple[Path, Path]]) -> Iterator[Callable[[str], tuple[Engine, VisionEncoder]]]:
    cache: dict[str, tuple[Engine, VisionEncoder]] = {}

    def get(layout: str) -> tuple[Engine, VisionEncoder]:
        if layout not in cache:
            text_path, mmproj = converted(layout, "f32")
            text = TextModel(text_path, ContextOptions(n_ctx=4096, n_threads=2, parity=True))
            cache[layout] = (Engine(text), VisionEncoder(mmproj, text.model, VisionOptions(n_threads=2)))
        return cache[layout]

    yield get
    for engine, encoder in cache.values():
        encoder.close()
        engine.text.close()


def _items(layout: str, case: str, encoder: VisionEncoder) -> list[Item]:
    entry = MODEL_INDEX["layouts"][layout]["cases"][case]
    ids = [int(t) for t in np.load(GOLDENS / "model" / entry["npz"])["input_ids"]]
    crops = [crop for image in entry.get("images", []) for crop in image["crops"]]
    items: list[Item] = []
    index = 0
    while index < len(ids):
        if ids[index] != IMAGE_TOKEN_ID:
            items.append(ids[index])
            index += 1
            continue
        crop = crops.pop(0)
        items.append(ImageBlock.of(encoder.encode(CROPS[crop["crops_npz_key"]]), crop["crops_npz_key"]))
        index += crop["tokens"]
    assert not crops
    return items


@pytest.mark.parametrize(("layout", "case"), model_cases(""))
def test_prompt_logits_match_transformers(
    engines: Callable[[str], tuple[Engine, VisionEncoder]], layout: str, case: str
) -> None:
    engine, encoder = engines(layout)
    golden = np.load(GOLDENS / "model" / MODEL_INDEX["layouts"][layout]["cases"][case]["npz"])
    engine.reset()
    engine.prefill(_items(layout, case, encoder))
    tolerance = IMAGE_TOLERANCE if case.startswith("image_") else TEXT_TOLERANCE
    logits = engine.logits()
    assert float(np.abs(logits - golden["last_logits"]).max()) <= tolerance
    assert int(np.argmax(logits)) == int(np.argmax(golden["last_logits"]))


def test_greedy_generation_is_deterministic_and_starts_with_the_golden_argmax(
    engines: Callable[[str], tuple[Engine, VisionEncoder]],
) -> None:
    engine, encoder = engines("official-2.5")
    items = _items("official-2.5", "image_single", encoder)
    greedy = SamplingParams(temperature=0, repetition_penalty=1.0)
    runs = []
    for _ in range(2):
        engine.reset()
        engine.prefill(items)
        runs.append(list(engine.generate(greedy, 8)))
    assert runs[0] == runs[1]
    assert runs[0][0] == MODEL_INDEX["layouts"]["official-2.5"]["cases"]["image_single"]["argmax_last"]


def test_follow_up_evaluates_only_new_tokens(engines: Callable[[str], tuple[Engine, VisionEncoder]]) -> None:
    engine, encoder = engines("official-2.5")
    items = _items("official-2.5", "image_tiled", encoder)
    engine.reset()
    first = engine.prefill(items)
    generated = list(engine.generate(SamplingParams(temperature=0), 4))
    second = engine.prefill([*items, *generated, 7, 6, 1123])  # the reply was evaluated while generating
    assert first.reused_positions == 0 and second.evaluated_positions == 3
    branch = engine.prefill([*items, 6, 1123])  # diverges after the prompt: restored from the prompt's snapshot
    assert branch.reused_positions == first.evaluated_positions and branch.evaluated_positions == 2
