"""On the same images and prompts, our HF-exact image path lands on transformers' logits; llama.cpp's own mtmd path
(its own decoding, sizes and letterboxed tiles) lands farther away. Prints both distances."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import lfm_edge.model as api
from lfm_edge.native.mtmd_own import own_path_logits
from lfm_edge.native.text import ContextOptions
from lfm_edge.prompt import RenderOptions
from tests.conftest import GOLDENS, MODEL_INDEX
from tests.test_image_prompts import _messages

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("case", ["image_tiled", "image_two"])
def test_ours_is_closer_to_transformers_than_llama_cpps_own_path(
    converted: Callable[..., tuple[Path, Path]], case: str
) -> None:
    text, mmproj = converted("official-2.5", "f32")
    entry = MODEL_INDEX["layouts"]["official-2.5"]["cases"][case]
    golden = np.load(GOLDENS / "model" / entry["npz"])["last_logits"]
    options = api.LoadOptions(context=ContextOptions(n_ctx=8192, n_threads=2, parity=True))
    with api.load(text, options) as model:
        model.engine.prefill(model.prompts.build(_messages(entry), RenderOptions(), model.settings))
        ours = float(np.abs(model.engine.logits() - golden).max())
        files = [(ROOT / image["file"]).read_bytes() for image in entry["images"]]
        theirs_logits = own_path_logits(model.text, str(mmproj), entry["rendered"], files)
    theirs = float(np.abs(theirs_logits - golden).max())
    print(f"{case}: max |logit - transformers|: lfm_edge {ours:.2e}, llama.cpp's own mtmd path {theirs:.2e}")
    assert ours < 5e-3 and theirs > 10 * ours
