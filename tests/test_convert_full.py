"""`full` synthetic checkpoints (448,718,848 parameters) convert with the official tensor counts and load in
llama.cpp (slow: ~1 GB of weights per layout; `make test-slow`)."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest
from llama_cpp import Llama

from convert.api import ConvertOptions, convert_checkpoint
from convert.synthetic import CheckpointSpec, write_checkpoint


@pytest.mark.slow
@pytest.mark.parametrize(("layout", "mmproj_tensors"), [("official-2.5", 201), ("lfm2-vl", 203)])
def test_full_checkpoint_converts_with_official_counts_and_loads(
    tmp_path: Path, layout: str, mmproj_tensors: int
) -> None:
    folder = write_checkpoint(tmp_path / f"full-{layout}", CheckpointSpec("full", layout))
    result = convert_checkpoint(folder, ConvertOptions(tmp_path / "out", "f16", quiet=True))
    assert len(gguf.GGUFReader(result.text).tensors) == 148
    assert len(gguf.GGUFReader(result.mmproj).tensors) == mmproj_tensors
    llama = Llama(model_path=str(result.text), n_ctx=64, n_threads=2, verbose=False)
    tokens = llama.tokenize(b"Hello", add_bos=True, special=True)
    llama.eval(tokens)
    assert llama.n_tokens == len(tokens)
