"""The BF16 mmproj against transformers 5.23 in bf16 (tests/goldens/model/bf16, `make goldens-bf16`): the same
crops through mtmd with the converter's BF16 mmproj give transformers' bf16 image features within BOUND.

Both sides compute in bf16 with their own accumulation order and kernels (ggml's BF16 sgemm accumulates in F32;
torch's CPU bf16 matmul rounds its outputs to bf16 after every layer), on top of the tanh- vs erf-GELU difference of
the projector (test_convert_vision.py); the bound is about twice the largest difference measured on these crops."""

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
BOUND = BOUND_PLACEHOLDER  # max |ours - transformers bf16| relative to the features' max magnitude; see docstring


@pytest.mark.parametrize("case", sorted(INDEX["cases"]))
def test_bf16_mmproj_features_match_transformers_bf16(converted: Callable[..., tuple[Path, Path]], case: str) -> None:
    text, mmproj = converted(INDEX["layout"], "bf16")
    llama = Llama(model_path=str(text), n_ctx=64, verbose=False)
    worst = 0.0
    with VisionEncoder(mmproj, llama.model, VisionOptions(n_threads=2)) as encoder:
        for entry in INDEX["cases"][case]:
            ours = encoder.encode(CROPS[entry["crops_npz_key"]])
            theirs = FEATURES[entry["features_key"]]
            assert ours.shape == theirs.shape == tuple(entry["shape"])
            worst = max(worst, float(np.abs(ours - theirs).max() / np.abs(theirs).max()))
    assert worst <= BOUND, worst
