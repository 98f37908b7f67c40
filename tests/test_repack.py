"""CPU_REPACK weights without llama.cpp's AMX kernels (native/repack.py): only names ggml can interleave are listed,
and a model loaded that way decodes a multi-token batch with the logits of plain buffers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader

from lfm_edge.native import repack

X86_AVX2 = "AVX = 1 | AVX2 = 1 | AVX512 = 0 |"
X86_AVX512 = "AVX = 1 | AVX2 = 1 | AVX512 = 1 |"
ARM = "NEON = 1 | ARM_FMA = 1 | DOTPROD = 1 |"


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory, synthetic_checkpoint: Callable[..., Path]) -> dict[str, Path]:
    from convert.quantize import QuantizeOptions, quantize_checkpoint

    folder = tmp_path_factory.mktemp("repack")
    result = quantize_checkpoint(
        synthetic_checkpoint(), QuantizeOptions(folder, types=("Q4_0", "F16"), mmproj_types=("F16",), report=False)
    )
    texts = [item.name for item in result.files if item.role == "text"]
    return {name.rsplit("-", 1)[-1].removesuffix(".gguf"): folder / name for name in texts}


def _expected(path: Path, features: str) -> list[str]:
    """Independent of the module's table: Q4_0 matmul weights (the only repackable type these files hold)."""
    if "AVX2 = 1" not in features:
        return []
    return [
        tensor.name
        for tensor in GGUFReader(path).tensors
        if tensor.tensor_type.name == "Q4_0" and tensor.name != "token_embd.weight" and int(tensor.shape[1]) % 8 == 0
    ]


@pytest.mark.parametrize("features", [X86_AVX2, X86_AVX512, ARM])
def test_only_interleavable_matmul_weights_are_listed(quantized: dict[str, Path], features: str) -> None:
    names = repack.repackable_weights(quantized["Q4_0"], features)
    assert names == _expected(quantized["Q4_0"], features)
    assert all(repack.MATMUL_WEIGHT.match(name) for name in names)
    if features != ARM:
        assert names, "the Q4_0 tiny model has interleavable weights"


def test_a_float_model_has_nothing_to_repack(quantized: dict[str, Path]) -> None:
    assert repack.repackable_weights(quantized["F16"], X86_AVX512) == []


_PROBE = """
import json, sys
import numpy as np
from lfm_edge.native import text
from lfm_edge.native.text import ContextOptions, TextModel
text.amx_kernels_active = lambda: True  # the guarded path, on any CPU
path, out = sys.argv[1], sys.argv[2]
rows = {}
for name, forced, n_batch in (("repacked", None, 512), ("plain", False, 512), ("narrow", False, 16)):
    options = ContextOptions(n_ctx=512, n_threads=1, n_batch=n_batch, extra_buffers=forced)
    model = TextModel(__import__("pathlib").Path(path), options)
    tokens = model.tokenize("hello world " * 20)
    rows[name] = model.decode_tokens_all_logits(tokens, 0)
    rows[name + "_count"] = model.repacked_weights
    model.close()
np.save(out, np.stack([rows["repacked"], rows["plain"], rows["narrow"]]))
print(json.dumps({"repacked": rows["repacked_count"], "plain": rows["plain_count"]}))
"""


def test_repacked_weights_decode_a_batch_like_plain_buffers(quantized: dict[str, Path], tmp_path: Path) -> None:
    """In a subprocess: a wrong override kills the process (llama.cpp dereferences a missing layout)."""
    out = tmp_path / "logits.npy"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(quantized["Q4_0"]), str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    from llama_cpp import llama_cpp as lc

    features = bytes(lc.llama_print_system_info()).decode()
    assert counts == {"repacked": len(_expected(quantized["Q4_0"], features)), "plain": 0}
    repacked, plain, narrow = np.load(out)
    assert repacked.shape == plain.shape and repacked.shape[0] == 220
    # The same Q4_0 x Q8_0 products summed in another order. Rounding is amplified along the 220 positions of this
    # random model: plain buffers at n_batch 16 vs 512 differ by ~0.35 (logits up to ~16). Repacking may move logits
    # no more than that; a wrong layout moves them by the logits' own scale.
    batch_width_noise = float(np.abs(narrow - plain).max())
    assert float(np.abs(repacked - plain).max()) <= max(2 * batch_width_noise, 1e-3)
    assert float(np.abs(repacked[0] - plain[0]).max()) <= 1e-3 * max(1.0, float(np.abs(plain[0]).max()))
