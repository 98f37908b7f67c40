"""Converted tiny checkpoints run through llama.cpp give transformers' logits (goldens in tests/goldens/model).

Settings that make logits comparable (SPEC.md §9): F32 weights, F32 KV cache, flash attention off.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import llama_cpp
import numpy as np
import pytest
from llama_cpp import Llama

from tests.conftest import MODEL_INDEX, model_cases

GOLDENS = Path(__file__).parent / "goldens" / "model"
INDEX = MODEL_INDEX
TEXT_CASES = model_cases("text_")
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def models(converted: Callable[..., tuple[Path, Path]]) -> Callable[[str], Llama]:
    cache: dict[str, Llama] = {}

    def load(layout: str) -> Llama:
        if layout not in cache:
            text, _ = converted(layout, "f32")
            cache[layout] = Llama(
                model_path=str(text), n_ctx=512, n_batch=512, logits_all=True, flash_attn=False,
                type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, n_threads=2, verbose=False,
            )  # fmt: skip
        return cache[layout]

    return load


@pytest.mark.parametrize(("layout", "case"), TEXT_CASES)
def test_text_logits_match_transformers(models: Callable[[str], Llama], layout: str, case: str) -> None:
    golden = np.load(GOLDENS / INDEX["layouts"][layout]["cases"][case]["npz"])
    ids = golden["input_ids"].tolist()
    llama = models(layout)
    llama.reset()
    llama.eval(ids)
    logits = np.asarray(llama.scores[: len(ids)], dtype=np.float64)
    np.testing.assert_allclose(logits[-1], golden["last_logits"], atol=TOLERANCE, rtol=0)
    ours_at_their_top = np.take_along_axis(logits, golden["top_ids"].astype(np.int64), axis=1)
    np.testing.assert_allclose(ours_at_their_top, golden["top_logits"], atol=TOLERANCE, rtol=0)
    logsumexp = np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1)) + logits.max(axis=1)
    np.testing.assert_allclose(logsumexp, golden["logsumexp"], atol=TOLERANCE, rtol=0)
    assert int(np.argmax(logits[-1])) == INDEX["layouts"][layout]["cases"][case]["argmax_last"]
