"""The converted mmproj, fed transformers' own crops through mtmd (one bitmap per crop, never resized), gives
transformers' image features (tests/goldens/model).

Documented tolerance: llama.cpp's LFM2 projector uses tanh-GELU where transformers uses erf-GELU
(ACT2FN["gelu"]), a difference of up to ~1.3e-3 on features of magnitude ~2.5 (measured on the tiny model).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from llama_cpp import Llama

from lfm_edge.vision.mtmd import VisionEncoder, VisionOptions
from tests.conftest import MODEL_INDEX, model_cases

GOLDENS = Path(__file__).parent / "goldens" / "model"
INDEX = MODEL_INDEX
CROPS = np.load(GOLDENS / "crops.npz")
TOLERANCE = 3e-3  # tanh- vs erf-GELU in the projector; see the module docstring
IMAGE_CASES = model_cases("image_")


@pytest.mark.parametrize(("layout", "case"), IMAGE_CASES)
def test_mtmd_features_of_hf_crops_match_transformers(
    converted: Callable[..., tuple[Path, Path]], layout: str, case: str
) -> None:
    text, mmproj = converted(layout, "f32")
    entry = INDEX["layouts"][layout]["cases"][case]
    golden = np.load(GOLDENS / entry["npz"])
    llama = Llama(model_path=str(text), n_ctx=64, verbose=False)
    with VisionEncoder(mmproj, llama.model, VisionOptions(n_threads=2)) as encoder:
        for image in entry["images"]:
            for crop in image["crops"]:
                features = encoder.encode(CROPS[crop["crops_npz_key"]])
                expected = golden[crop["features_key"]]
                assert features.shape == expected.shape == (crop["tokens"], features.shape[1])
                np.testing.assert_allclose(features, expected, atol=TOLERANCE, rtol=0, err_msg=crop["kind"])
