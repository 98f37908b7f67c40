"""transformers 5.23's image features in bf16 (the dtype users run it in), for the BF16 mmproj test.

Loads the tiny official-2.5 synthetic checkpoint with `Lfm2VlForConditionalGeneration.from_pretrained(dtype=
torch.bfloat16)` and stores `get_image_features(...).pooler_output` (as float32) for every crop of the image cases of
tests/goldens/model (same processor call, same crop order as model_goldens), under tests/goldens/model/bf16/:
features.npz (`<case>_NN`) and index.json (case -> crops_npz_key per feature, shapes, sha256).

    python -m tests.reference.bf16_features
"""

from __future__ import annotations

import json
from typing import Any

import torch

from tests.reference.common import GOLDENS, save_npz, sha256_array, write_json
from tests.reference.hf_checkpoints import (
    deterministic_torch,
    load_model,
    load_processor,
    make_checkpoint,
    scratch_folder,
)
from tests.reference.model_cases import IMAGE_CASES, image_messages, load_test_image
from tests.reference.model_goldens import CropStore, image_inputs, run_model

OUT = GOLDENS / "model" / "bf16"
LAYOUT = "official-2.5"


def main() -> None:
    deterministic_torch()
    images = {f: load_test_image(f) for files, _ in IMAGE_CASES.values() for f in files}
    store = CropStore()
    model_index = json.loads((GOLDENS / "model" / "index.json").read_text(encoding="utf-8"))
    arrays: dict[str, Any] = {}
    index: dict[str, Any] = {}
    with scratch_folder() as scratch:
        folder = make_checkpoint(scratch, "tiny", LAYOUT)
        model, _ = load_model(folder, LAYOUT, torch.bfloat16)
        processor, _ = load_processor(folder, LAYOUT)
        for name, (files, text) in IMAGE_CASES.items():
            messages = image_messages(files, text)
            _, inputs, records = image_inputs(processor, messages, [images[f] for f in files], LAYOUT, store)
            inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
            _, features = run_model(model, inputs)
            # The crop keys of crops.npz, as model_goldens recorded them for this case (same processor, same order).
            golden = model_index["layouts"][LAYOUT]["cases"][name]["images"]
            crops = [crop["crops_npz_key"] for image in golden for crop in image["crops"]]
            if len(crops) != sum(len(record["crops"]) for record in records):
                raise AssertionError(f"{name}: the crops differ from tests/goldens/model/index.json")
            entries = []
            for number, (key, values) in enumerate(zip(crops, features, strict=True)):
                arrays[f"{name}_{number:02d}"] = values
                entries.append({"crops_npz_key": key, "features_key": f"{name}_{number:02d}",
                                "shape": list(values.shape), "sha256": sha256_array(values)})  # fmt: skip
            index[name] = entries
    save_npz(OUT / "features.npz", **arrays)
    write_json(OUT / "index.json", {"layout": LAYOUT, "dtype": "bfloat16", "transformers": "5.23", "cases": index})


if __name__ == "__main__":
    main()
