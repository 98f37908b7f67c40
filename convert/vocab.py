"""tokenizer.json -> the GGUF vocabulary of llama.cpp's `gpt2` (byte-level BPE) tokenizer, pre-tokenizer `lfm2`.

Token types follow llama.cpp's converter (`get_vocab_base`): ids absent from the vocabulary become `[PAD{i}]`
(UNUSED); added tokens are CONTROL when special (or when they look like `<|...|>`), USER_DEFINED otherwise; the
rest are NORMAL. Special ids, add_bos/add_eos, merges and the chat template come from gguf-py's own SpecialVocab.
The pre-tokenizer is recognised from its structure, not from a hash of the real tokenizer's output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from convert.checkpoint import read_json
from lfm_edge.errors import CheckpointError

# The LFM2 split regex (SPEC.md §5); llama.cpp spells the contractions case-expanded, which is equivalent.
LFM2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_CONTRACTIONS_EXPANDED = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"


@dataclass(frozen=True)
class Vocabulary:
    tokens: list[str]
    token_types: list[int]
    pre: str
    special: gguf.SpecialVocab


def _normalise_regex(pattern: str) -> str:
    return pattern.replace(_CONTRACTIONS_EXPANDED, "(?i:'s|'t|'re|'ve|'m|'ll|'d)")


def detect_pre_tokenizer(tokenizer: dict[str, Any], path: Path) -> str:
    """'lfm2' when the pre-tokenizer is Sequence[Split(LFM2 regex, Isolated), ByteLevel(no prefix, no regex)]."""
    pre = tokenizer.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    found = [step.get("type") for step in steps if isinstance(step, dict)]
    if len(steps) == 2 and found == ["Split", "ByteLevel"]:
        split, byte_level = steps
        regex = (split.get("pattern") or {}).get("Regex", "")
        if (
            _normalise_regex(regex) == LFM2_SPLIT
            and str(split.get("behavior", "")).lower() == "isolated"
            and not split.get("invert", False)
            and not byte_level.get("add_prefix_space", False)
            and not byte_level.get("use_regex", True)
        ):
            return "lfm2"
        found = [f"Split({regex!r}, {split.get('behavior')})", f"ByteLevel({byte_level})"]
    raise CheckpointError(
        f"{path}: pre-tokenizer {found} is not LFM2's (Split on the Llama-3-style regex, Isolated, then ByteLevel "
        "without prefix space or regex); this tokenizer cannot be converted to llama.cpp's 'lfm2' pre-tokenizer"
    )


def _looks_special(token: str) -> bool:
    # llama.cpp's converter (does_token_look_special) marks <|...|> added tokens CONTROL even when not special.
    return token.startswith("<|") and token.endswith("|>")


def _special_vocab(folder: Path, vocab_size: int) -> gguf.SpecialVocab:
    # gguf-py warns "Unknown separator token" for the BOS-BOS pair template LFM2 shares with Llama 3: benign noise.
    vocab_log = logging.getLogger("gguf.vocab")
    level = vocab_log.level
    vocab_log.setLevel(logging.ERROR)
    try:
        return gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
    finally:
        vocab_log.setLevel(level)


def read_vocabulary(folder: Path, vocab_size: int) -> Vocabulary:
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(f"tokenizer.json is missing from {folder}: download it with the model")
    tokenizer = read_json(path)
    model = tokenizer.get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise CheckpointError(f"{path}: tokenizer model is {model.get('type')!r}, not a byte-level BPE as LFM2's")
    pre = detect_pre_tokenizer(tokenizer, path)
    by_id: dict[int, str] = {int(i): tok for tok, i in model["vocab"].items()}
    added = {int(entry["id"]): entry for entry in tokenizer.get("added_tokens", [])}
    by_id.update({i: entry["content"] for i, entry in added.items()})
    if by_id and max(by_id) >= vocab_size:
        raise CheckpointError(
            f"{path}: token id {max(by_id)} does not fit config.json's vocab_size {vocab_size}; "
            "tokenizer.json and config.json come from different models"
        )
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            special = added[i].get("special", False) or _looks_special(by_id[i])
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    special_vocab = _special_vocab(folder, vocab_size)
    if not special_vocab.merges:
        raise CheckpointError(f"{path} has no BPE merges: the file is incomplete")
    return Vocabulary(tokens, [int(t) for t in types], pre, special_vocab)
