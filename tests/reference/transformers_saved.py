"""The config files transformers 5.23 itself writes when a user re-saves LFM2.5-VL (a fine-tune's files).

Loads the tiny official-2.5 synthetic checkpoint with `Lfm2VlForConditionalGeneration.from_pretrained` and
`AutoProcessor.from_pretrained`, re-saves both with `save_pretrained`, and commits the small text files (config.json,
generation_config.json, processor_config.json, tokenizer_config.json, chat_template.jinja) under
tests/goldens/model/transformers_saved/. The converter tests pair them with synthetic weights, so the converter is
proven on configs written by transformers, not by us (5.23 drops `block_ff_dim`, adds `full_attn_idxs: null`, ...).

    python -m tests.reference.transformers_saved
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoProcessor, Lfm2VlForConditionalGeneration

from convert.synthetic import CheckpointSpec, write_checkpoint
from tests.reference.common import GOLDENS

KEPT = (
    "config.json",
    "generation_config.json",
    "processor_config.json",
    "tokenizer_config.json",
    "chat_template.jinja",
)


def main() -> None:
    out = GOLDENS / "model" / "transformers_saved"
    with tempfile.TemporaryDirectory() as scratch:
        source = write_checkpoint(Path(scratch) / "tiny-official-2.5", CheckpointSpec("tiny", "official-2.5"))
        saved = Path(scratch) / "saved"
        Lfm2VlForConditionalGeneration.from_pretrained(source, dtype=torch.bfloat16).save_pretrained(saved)
        AutoProcessor.from_pretrained(source).save_pretrained(saved)
        out.mkdir(parents=True, exist_ok=True)
        for name in KEPT:
            shutil.copyfile(saved / name, out / name)


if __name__ == "__main__":
    main()
