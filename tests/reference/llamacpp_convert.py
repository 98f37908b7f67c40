"""Runs the vendored llama.cpp `convert_hf_to_gguf.py` unchanged, with one documented patch (used by llamacpp_goldens).

    python -m tests.reference.llamacpp_convert CHECKPOINT [converter arguments...]

The converter identifies a BPE pre-tokenizer by hashing the tokenization of a fixed string
(``TextModel.get_vocab_base_pre`` in ``conversion/base.py``) and raises ``NotImplementedError`` for an unknown hash.
The synthetic checkpoints' tokenizer has the LFM2 pre-tokenizer but a synthetic vocabulary, so its hash is not the
real LFM2 one (``169bf029…``). The patch wraps ``get_vocab_base_pre``: the original runs first (its warning banner,
with the hash, is still logged) and only if it raises ``NotImplementedError`` the wrapper returns ``"lfm2"``, the
value the converter returns for the real LFM2/LFM2.5 tokenizers. Nothing else is touched; the vendored files are
not edited.

The vendored tree is ``build/llama_cpp_python-0.3.36/vendor/llama.cpp`` (override: ``LLAMA_CPP_DIR``). Its own
``gguf-py`` is put first on ``sys.path`` (the converter needs exactly that gguf version).
"""

from __future__ import annotations

import ast
import hashlib
import os
import runpy
import sys
from pathlib import Path
from typing import Any

from tests.reference.common import REPO_ROOT

LLAMA_CPP = Path(os.environ.get("LLAMA_CPP_DIR", REPO_ROOT / "build/llama_cpp_python-0.3.36/vendor/llama.cpp"))
PATCH_MARKER = "lfm-edge patch: get_vocab_base_pre"
PATCHED_PRE = "lfm2"


def _chkhsh(tokenizer: Any, base: Any) -> str:
    """The hash the converter computed (same string, same formula as in get_vocab_base_pre)."""
    source = Path(base.__file__).read_text(encoding="utf-8")
    start = source.index("chktxt = ") + len("chktxt = ")
    chktxt = ast.literal_eval(source[start : source.index("\n", start)])  # the converter's own string literal
    return hashlib.sha256(str(tokenizer.encode(chktxt)).encode()).hexdigest()


def install_patch() -> None:
    from conversion import base

    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self: Any, tokenizer: Any) -> str:
        try:
            return str(original(self, tokenizer))
        except NotImplementedError:
            chkhsh = _chkhsh(tokenizer, base)
            base.logger.warning(f"{PATCH_MARKER}: chkhsh {chkhsh} not recognised, returning {PATCHED_PRE!r}")
            return PATCHED_PRE

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre


def main(argv: list[str]) -> None:
    sys.path[:0] = [str(LLAMA_CPP / "gguf-py"), str(LLAMA_CPP)]
    install_patch()
    script = LLAMA_CPP / "convert_hf_to_gguf.py"
    sys.argv = [str(script), *argv]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
