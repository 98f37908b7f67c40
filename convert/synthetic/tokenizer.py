"""tokenizer.json of a synthetic checkpoint: byte-level BPE, the LFM2 pre-tokenizer, every special token at its id.

Built with the `tokenizers` library (SPEC.md §5): the added tokens and their ids come from the official
LFM2-VL-450M tokenizer_config.json; each is also placed in model.vocab at the same id, because `tokenizers` keeps an
added token's id only when the vocabulary holds it there (SPEC.md §9). Merges are learned by tokenizers' BpeTrainer on
a multilingual corpus; the vocabulary is then filled to 65,536 with further merges of existing tokens.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from convert.synthetic.configs import official_json
from convert.synthetic.corpus import training_corpus

VOCAB_SIZE = 65_536
LFM2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BOS = "<|startoftext|>"
# Ids 14 and 15 are ordinary vocabulary entries of the real tokenizer, not added tokens.
_ORDINARY_RESERVED = {14: "<|reserved_4|>", 15: "<|reserved_5|>"}
_TRAINED_MERGES = 24_000


def added_tokens() -> dict[int, dict[str, Any]]:
    """id -> added-token entry, from the official tokenizer_config.json (same ids in LFM2.5)."""
    decoder = official_json("lfm2-vl", "tokenizer_config.json")["added_tokens_decoder"]
    return {int(token_id): entry for token_id, entry in decoder.items()}


def _trained_merges(seed: int) -> list[tuple[str, str]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = _pre_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=256 + _TRAINED_MERGES,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(training_corpus(seed), trainer=trainer)
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return [(a, b) for a, b in merges]


def _pre_tokenizer() -> Any:
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LFM2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )


def _byte_alphabet() -> list[str]:
    """The 256 byte-level characters in byte order (GPT-2's bytes_to_unicode)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return [mapping[b] for b in range(256)]


class _VocabBuilder:
    """Places tokens at the lowest free id, never over the ids the added tokens own."""

    def __init__(self, reserved: dict[int, str]) -> None:
        self.vocab: dict[str, int] = {token: token_id for token_id, token in reserved.items()}
        self._taken = set(reserved)
        self._next = 0

    def add(self, token: str) -> bool:
        if token in self.vocab:
            return False
        while self._next in self._taken:
            self._next += 1
        if self._next >= VOCAB_SIZE:
            raise ValueError("synthetic vocabulary overflow")
        self.vocab[token] = self._next
        self._taken.add(self._next)
        return True

    @property
    def full(self) -> bool:
        return len(self.vocab) >= VOCAB_SIZE


def build_vocab(seed: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The BPE model's vocab (exactly 65,536 entries, ids 0..65535) and its merges, in rank order."""
    reserved = {token_id: entry["content"] for token_id, entry in added_tokens().items()}
    reserved.update(_ORDINARY_RESERVED)
    builder = _VocabBuilder(reserved)
    alphabet = _byte_alphabet()
    for char in alphabet:
        builder.add(char)
    merges: list[tuple[str, str]] = []
    for left, right in _trained_merges(seed):
        if builder.full:
            break
        builder.add(left + right)
        merges.append((left, right))
    _fill_with_merges(builder, merges, alphabet, seed)
    return builder.vocab, merges


def _fill_with_merges(builder: _VocabBuilder, merges: list[tuple[str, str]], alphabet: list[str], seed: int) -> None:
    """Adds merges of two existing ordinary tokens until the vocabulary holds 65,536 entries."""
    rng = np.random.default_rng([seed, 0x70C])
    pieces = alphabet + [left + right for left, right in merges]
    while not builder.full:
        left = pieces[int(rng.integers(0, len(pieces)))]
        right = alphabet[int(rng.integers(0, len(alphabet)))] if rng.random() < 0.5 else pieces[-1]
        if len(left) + len(right) > 16 or not builder.add(left + right):
            continue
        merges.append((left, right))
        pieces.append(left + right)


def tokenizer_json(seed: int) -> str:
    """The complete tokenizer.json text."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, processors

    vocab, merges = build_vocab(seed)
    # ignore_merges=True: llama.cpp tokenizes pre-type "lfm2" with ignore_merges (llama-vocab.cpp), as Llama 3.
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tokenizer.pre_tokenizer = _pre_tokenizer()
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, vocab[BOS])]
    )
    for token_id, entry in sorted(added_tokens().items()):
        token = AddedToken(
            entry["content"],
            single_word=entry["single_word"],
            lstrip=entry["lstrip"],
            rstrip=entry["rstrip"],
            normalized=entry["normalized"],
            special=entry["special"],
        )
        if entry["special"]:
            tokenizer.add_special_tokens([token])
        else:
            tokenizer.add_tokens([token])
        if tokenizer.token_to_id(entry["content"]) != token_id:
            raise AssertionError(f"added token {entry['content']!r} did not keep id {token_id}")
    return str(tokenizer.to_str(pretty=True))
