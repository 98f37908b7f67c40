"""The committed goldens were made from the checkpoints this generator makes today.

If the synthetic tokenizer or files drift (a changed corpus, another `tokenizers` version), every golden that holds
token ids is stale: these tests say so, and `make goldens` regenerates them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from tests.conftest import GOLDENS

CHAT = json.loads((GOLDENS / "chat" / "chat_template_goldens.json").read_text(encoding="utf-8"))
LAYOUT_OF_TEMPLATE = {name: entry["layout"] for name, entry in CHAT["templates"].items()}


@pytest.mark.parametrize("template", sorted(CHAT["templates"]))
def test_chat_goldens_used_this_generators_files(synthetic_checkpoint: Callable[..., Path], template: str) -> None:
    entry = CHAT["templates"][template]
    folder = synthetic_checkpoint(entry["layout"])
    assert hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest() == entry["tokenizer_json_sha256"]
    assert hashlib.sha256((folder / "chat_template.jinja").read_bytes()).hexdigest() == entry["chat_template_sha256"]


def test_synthetic_tokenizer_reproduces_the_golden_token_ids(synthetic_checkpoint: Callable[..., Path]) -> None:
    tokenizers = {
        name: Tokenizer.from_file(str(synthetic_checkpoint(layout) / "tokenizer.json"))
        for name, layout in LAYOUT_OF_TEMPLATE.items()
    }
    checked = 0
    for case in CHAT["cases"]:
        if case["error"] is None and case["token_ids"] is not None and not case["sanitize_control_tokens"]:
            encoding = tokenizers[case["template"]].encode(case["rendered"], add_special_tokens=False)
            assert encoding.ids == case["token_ids"], case["id"]
            checked += 1
    assert checked >= 25
