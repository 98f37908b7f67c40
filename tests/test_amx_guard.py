"""ggml's AMX matmul kernels crash LFM2 (SIGSEGV in ggml_backend_amx_mul_mat on any batch of 2+ tokens with a
quantized text model): where llama.cpp reports AMX_INT8, the runtime keeps weights out of the extra buffer types.
On a CPU without AMX the guard is off and extra buffers (CPU_REPACK) stay on."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lfm_edge.errors import ConfigError
from lfm_edge.native import text
from lfm_edge.native.text import ContextOptions


@pytest.mark.parametrize(
    ("forced", "amx", "expected"),
    [(None, True, False), (None, False, True), (True, True, True), (False, False, False)],
)
def test_extra_buffers_follow_the_amx_guard_unless_forced(
    monkeypatch: pytest.MonkeyPatch, forced: bool | None, amx: bool, expected: bool
) -> None:
    monkeypatch.setattr(text, "amx_kernels_active", lambda: amx)
    assert text._extra_buffers(ContextOptions(extra_buffers=forced)) is expected


def test_extra_buffers_must_be_a_bool_or_none() -> None:
    with pytest.raises(ConfigError, match="extra_buffers"):
        ContextOptions(extra_buffers="yes")  # type: ignore[arg-type]


_PROBE = """
import sys
from lfm_edge.model import load
with load(sys.argv[1], n_ctx=512, n_threads=1) as model:
    tokens = model.text.tokenize("hello world " * 20)  # 220 tokens of the synthetic vocabulary
    rows = model.text.decode_tokens_all_logits(tokens, 0)
    print("decoded", rows.shape[0])
"""


def test_a_quantized_model_decodes_a_multi_token_batch_in_its_own_process(
    tmp_path: Path, synthetic_checkpoint: Callable[..., Path]
) -> None:
    """The crash this guards against kills the process, so the probe runs in a subprocess (exit 139 before)."""
    from convert.quantize import QuantizeOptions, quantize_checkpoint

    result = quantize_checkpoint(
        synthetic_checkpoint(), QuantizeOptions(tmp_path, types=("Q8_0",), mmproj_types=("Q8_0",), report=False)
    )
    name = next(item.name for item in result.files if item.role == "text")
    model = tmp_path / name
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(model)], check=False, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "decoded 220" in done.stdout
