"""llama.cpp's tokenizer on the converted vocabulary equals `tokenizers` on the source tokenizer.json."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from llama_cpp import Llama
from tokenizers import Tokenizer

CORPUS = (Path(__file__).parent / "data" / "tokenizer_corpus.txt").read_text(encoding="utf-8")
PIECES = [*CORPUS.splitlines(keepends=True), CORPUS, "", " ", "\n", "  \n\n \t", "a" * 300]


@pytest.fixture(scope="module")
def tokenizers_pair(
    synthetic_checkpoint: Callable[..., Path], converted: Callable[..., tuple[Path, Path]]
) -> tuple[Llama, Tokenizer]:
    text_gguf, _ = converted()
    llama = Llama(model_path=str(text_gguf), vocab_only=True, verbose=False)
    return llama, Tokenizer.from_file(str(synthetic_checkpoint() / "tokenizer.json"))


@pytest.mark.parametrize("index", range(len(PIECES)))
def test_llama_cpp_tokenizes_like_tokenizers(tokenizers_pair: tuple[Llama, Tokenizer], index: int) -> None:
    llama, reference = tokenizers_pair
    text = PIECES[index]
    expected = reference.encode(text, add_special_tokens=False).ids
    assert llama.tokenize(text.encode("utf-8"), add_bos=False, special=True) == expected


def test_bos_is_added_once(tokenizers_pair: tuple[Llama, Tokenizer]) -> None:
    llama, reference = tokenizers_pair
    assert llama.tokenize(b"hi", add_bos=True, special=True) == reference.encode("hi").ids
    assert llama.token_bos() == 1 and llama.token_eos() == 7


def test_detokenization_round_trips(tokenizers_pair: tuple[Llama, Tokenizer]) -> None:
    llama, _ = tokenizers_pair
    ids = llama.tokenize(CORPUS.encode("utf-8"), add_bos=False, special=True)
    assert llama.detokenize(ids, special=True).decode("utf-8") == CORPUS
