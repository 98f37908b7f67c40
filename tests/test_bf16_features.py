"""The BF16 mmproj against transformers 5.23 in bf16 (tests/goldens/model/bf16, `make goldens-bf16`): the same
crops through mtmd with the converter's BF16 mmproj give transformers' bf16 image features within BOUND.

Both sides compute in bf16 with their own accumulation order and kernels (ggml's BF16 sgemm accumulates in F32;
torch's CPU bf16 matmul rounds its outputs to bf16 after every layer), on top of the tanh- vs erf-GELU difference of
the projector (test_convert_vision.py). Measured on these crops (features up to 2.72 in magnitude): BF16 mmproj
0.0251 max abs difference (1.13% of the largest feature), F32 mmproj 0.0228 (1.03%), F16 0.0230, Q8_0 0.0623 (2.8%):
the difference is transformers' bf16 rounding, not the BF16 weights. BOUND is about twice the BF16 figure, and the
BF16 mmproj must stay within 25% of what F32 weights give against the same goldens."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from llama_cpp import Llama

from lfm_edge.vision.mtmd import VisionEncoder, VisionOptions

GOLDENS = Path(__file__).parent / "goldens" / "model"
INDEX = json.loads((GOLDENS / "bf16" / "index.json").read_text(encoding="utf-8"))
FEATURES = np.load(GOLDENS / "bf16" / "features.npz")
CROPS = np.load(GOLDENS / "crops.npz")
BOUND = 0.02  # max |ours - transformers bf16| / max |transformers bf16|, per case; see the docstring


@pytest.mark.parametrize("case", sorted(INDEX["cases"]))
def test_bf16_mmproj_features_match_transformers_bf16(converted: Callable[..., tuple[Path, Path]], case: str) -> None:
    bf16 = _worst_difference(*converted(INDEX["layout"], "bf16"), case)
    f32 = _worst_difference(*converted(INDEX["layout"], "f32"), case)
    assert bf16 <= BOUND, bf16
    assert bf16 <= 1.25 * f32, (bf16, f32)


def _worst_difference(text: Path, mmproj: Path, case: str) -> float:
    llama = Llama(model_path=str(text), n_ctx=64, verbose=False)
    worst = 0.0
    with VisionEncoder(mmproj, llama.model, VisionOptions(n_threads=2)) as encoder:
        for entry in INDEX["cases"][case]:
            ours = encoder.encode(CROPS[entry["crops_npz_key"]])
            theirs = FEATURES[entry["features_key"]]
            assert ours.shape == theirs.shape == tuple(entry["shape"])
            worst = max(worst, float(np.abs(ours - theirs).max() / np.abs(theirs).max()))
    return worst
