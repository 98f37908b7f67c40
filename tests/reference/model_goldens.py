"""Model-math goldens: transformers 5.23 logits and image features of the tiny synthetic checkpoints.

Run from the repository root, in the reference venv (~1 min, 1 thread)::

    python -m tests.reference.model_goldens

For each layout (official-2.5, lfm2-vl, resaved-5.23; seed 0, size tiny) the checkpoint is loaded with
``Lfm2VlForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)`` (see ``hf_checkpoints``) and run on
CPU, one thread, ``torch.use_deterministic_algorithms(True)``. Where each golden comes from:

* ``rendered``: ``Lfm2VlProcessor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)``.
* ``token_ids``: text cases — ``tokenizers.Tokenizer.from_file(tokenizer.json).encode(rendered,
  add_special_tokens=False)`` (checked equal to the processor's tokenizer); image cases —
  ``Lfm2VlProcessor.__call__(images=..., text=rendered)["input_ids"]`` (``<image>`` expanded by the processor).
* logits: ``Lfm2VlForConditionalGeneration.forward(**inputs).logits[0]`` (float32), stored as the last row in
  full plus, per position, the top-20 (stable descending sort: ties by ascending id) and float64 checksums.
* ``image_features_NN``: ``Lfm2VlForConditionalGeneration.get_image_features(pixel_values, spatial_shapes,
  pixel_attention_mask).pooler_output[NN]`` — one array per crop, in the order the processor emits crops.
* ``crops.npz``: each crop's pixels as uint8 (``Lfm2VlImageProcessor.__call__``, one image at a time).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer

from tests.reference.common import GOLDENS, save_npz, sha256_array, write_json
from tests.reference.hf_checkpoints import (
    LAYOUTS,
    LFM2VL_KEY_MAPPING,
    SEED,
    deterministic_torch,
    file_hashes,
    load_model,
    load_processor,
    make_checkpoint,
    scratch_folder,
)
from tests.reference.model_cases import IMAGE_CASES, TEXT_CASES, image_crops, image_messages, load_test_image

OUT = GOLDENS / "model"
TOPK = 20
_CHUNK = 128  # rows of logits processed at once (keeps float64 copies small)


def top_k_stable(chunk: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The first TOPK entries of a stable descending sort of each row (ties: ascending id), via topk."""
    values, ids = torch.topk(chunk, TOPK + 1, dim=-1, sorted=True)
    values_np, ids_np = values.numpy(), ids.numpy()
    order = np.lexsort((ids_np, -values_np), axis=-1)
    values_np = np.take_along_axis(values_np, order, axis=-1)[:, :TOPK]
    ids_np = np.take_along_axis(ids_np, order, axis=-1)[:, :TOPK]
    for row in np.nonzero(values.numpy()[:, TOPK] == values.numpy()[:, TOPK - 1])[0]:  # a tie at the cut
        row_values, row_ids = torch.sort(chunk[row], descending=True, stable=True)
        values_np[row], ids_np[row] = row_values[:TOPK].numpy(), row_ids[:TOPK].numpy()
    return ids_np.astype(np.int32), values_np


def logits_summary(logits: torch.Tensor) -> dict[str, np.ndarray]:
    """[T, V] float32 logits -> last row, per-row top-20 ids/logits and float64 sum, sum of squares, logsumexp."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ids", "vals", "sum", "sumsq", "lse")}
    for chunk in logits.split(_CHUNK):
        ids, values = top_k_stable(chunk)
        wide = chunk.double()
        parts["ids"].append(ids)
        parts["vals"].append(values)
        parts["sum"].append(wide.sum(dim=-1).numpy())
        parts["sumsq"].append((wide * wide).sum(dim=-1).numpy())
        parts["lse"].append(torch.logsumexp(wide, dim=-1).numpy())
    return {
        "last_logits": logits[-1].numpy().copy(),
        "top_ids": np.concatenate(parts["ids"]),
        "top_logits": np.concatenate(parts["vals"]),
        "logits_sum": np.concatenate(parts["sum"]),
        "logits_sumsq": np.concatenate(parts["sumsq"]),
        "logsumexp": np.concatenate(parts["lse"]),
    }


class CropStore:
    """uint8 crops for crops.npz, deduplicated by content across layouts and cases."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._keys: dict[str, str] = {}

    def key_for(self, layout: str, stem: str, index: int, crop: dict[str, Any]) -> str:
        digest = crop["rgb_sha256"]
        if digest not in self._keys:
            key = f"{stem}__c{index:02d}" if layout == LAYOUTS[0] else f"{stem}__{layout}__c{index:02d}"
            self._keys[digest] = key
            self.arrays[key] = crop["rgb"]
        return self._keys[digest]


def text_inputs(processor: Any, tokenizer: Tokenizer, messages: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    rendered = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer.encode(rendered, add_special_tokens=False).ids
    if processor.tokenizer(rendered, add_special_tokens=False)["input_ids"] != ids:
        raise AssertionError("tokenizer.json and the processor's tokenizer disagree")
    return rendered, {"input_ids": torch.tensor([ids], dtype=torch.long)}


def image_inputs(
    processor: Any, messages: list[dict[str, Any]], images: list[Any], layout: str, store: CropStore
) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """Processor inputs of an image prompt and, per image, its grid and crop records (crops checked vs the call)."""
    rendered = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = dict(processor(images=[[im.image for im in images]], text=[rendered], return_tensors="pt"))
    records, pixel_rows = [], []
    for loaded in images:
        grid, crops = image_crops(processor.image_processor, loaded)
        stem = Path(loaded.file).stem
        for index, crop in enumerate(crops):
            crop["crops_npz_key"] = store.key_for(layout, stem, index, crop)
            pixel_rows.append(crop.pop("pixel_values"))
            del crop["rgb"]
        records.append({"file": loaded.file, "grid": grid, "crops": crops})
    if not torch.equal(torch.stack(pixel_rows), inputs["pixel_values"]):
        raise AssertionError("per-image crops differ from the prompt's pixel_values")
    return rendered, inputs, records


def run_model(model: Any, inputs: dict[str, Any]) -> tuple[torch.Tensor, list[np.ndarray]]:
    with torch.inference_mode():
        logits = model(**inputs).logits[0].float()
        features: list[np.ndarray] = []
        if "pixel_values" in inputs:
            out = model.get_image_features(
                pixel_values=inputs["pixel_values"],
                spatial_shapes=inputs["spatial_shapes"],
                pixel_attention_mask=inputs["pixel_attention_mask"],
            )
            features = [f.float().numpy().copy() for f in out.pooler_output]
    return logits, features


def case_record(
    rendered: str, messages: list[dict[str, Any]], inputs: dict[str, Any], logits: torch.Tensor
) -> dict[str, Any]:
    ids = inputs["input_ids"][0].tolist()
    return {
        "messages": messages,
        "rendered": rendered,
        "token_ids": ids,
        "n_tokens": len(ids),
        "image_token_count": ids.count(396),
        "logits_shape": list(logits.shape),
        "logits_sha256": sha256_array(logits.numpy()),
        "argmax_last": int(torch.argmax(logits[-1])),
    }


def run_layout(folder: Path, layout: str, images: dict[str, Any], store: CropStore) -> dict[str, Any]:
    """All cases of one layout: writes the .npz files, returns the layout's part of the index."""
    model, info = load_model(folder, layout, torch.float32)
    processor, processor_record = load_processor(folder, layout)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    cases: dict[str, Any] = {}
    for name, messages in TEXT_CASES.items():
        rendered, inputs = text_inputs(processor, tokenizer, messages)
        logits, _ = run_model(model, inputs)
        cases[name] = _finish(folder.name, name, case_record(rendered, messages, inputs, logits), inputs, logits, [])
    for name, (files, text) in IMAGE_CASES.items():
        messages = image_messages(files, text)
        rendered, inputs, records = image_inputs(processor, messages, [images[f] for f in files], layout, store)
        logits, features = run_model(model, inputs)
        record = case_record(rendered, messages, inputs, logits)
        record["images"] = records
        record["pixel_values_shape"] = list(inputs["pixel_values"].shape)
        cases[name] = _finish(folder.name, name, record, inputs, logits, features)
    return {
        "folder_name": folder.name,
        "seed": SEED,
        "files": file_hashes(folder),
        "from_pretrained": _load_record(layout),
        "loading_info": info,
        "attn_implementation": model.config._attn_implementation,
        "processor": processor_record,
        "cases": cases,
    }


def _load_record(layout: str) -> dict[str, Any]:
    record: dict[str, Any] = {"dtype": "float32"}
    if layout == "lfm2-vl":
        record.update({"config": "Lfm2VlConfig.from_pretrained(folder)", "key_mapping": dict(LFM2VL_KEY_MAPPING)})
    return record


def _finish(
    folder_name: str,
    name: str,
    record: dict[str, Any],
    inputs: dict[str, Any],
    logits: torch.Tensor,
    features: list[np.ndarray],
) -> dict[str, Any]:
    arrays = logits_summary(logits)
    arrays["input_ids"] = inputs["input_ids"][0].numpy().astype(np.int32)
    feature_index = 0
    for image in record.get("images", []):
        for crop in image["crops"]:
            key = f"image_features_{feature_index:02d}"
            arrays[key] = features[feature_index]
            crop.update({"features_key": key, "features_shape": list(features[feature_index].shape)})
            crop["features_sha256"] = sha256_array(features[feature_index])
            feature_index += 1
    if feature_index != len(features):
        raise AssertionError(f"{name}: {len(features)} feature arrays for {feature_index} crops")
    record["npz"] = f"{folder_name}/{name}.npz"
    save_npz(OUT / record["npz"], **arrays)
    return record


def mark_identical(layouts: dict[str, Any]) -> None:
    """Adds, per case, the other layouts whose logits are bit-identical (same sha256)."""
    for layout, data in layouts.items():
        for name, case in data["cases"].items():
            case["logits_identical_to"] = [
                other
                for other, other_data in layouts.items()
                if other != layout and other_data["cases"][name]["logits_sha256"] == case["logits_sha256"]
            ]


def main() -> int:
    deterministic_torch()
    images = {f: load_test_image(f) for files, _ in IMAGE_CASES.values() for f in files}
    store = CropStore()
    layouts: dict[str, Any] = {}
    with scratch_folder() as scratch:
        for layout in LAYOUTS:
            start = time.monotonic()
            folder = make_checkpoint(scratch, "tiny", layout)
            layouts[layout] = run_layout(folder, layout, images, store)
            print(f"tiny-{layout}: {time.monotonic() - start:.1f} s", flush=True)
    mark_identical(layouts)
    save_npz(OUT / "crops.npz", **store.arrays)
    index = {
        "generator": "python -m tests.reference.model_goldens",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "settings": {"device": "cpu", "dtype": "float32", "torch_threads": 1, "deterministic_algorithms": True},
        "topk": TOPK,
        "images": {name: loaded.record for name, loaded in sorted(images.items())},
        "crops_npz": "crops.npz",
        "layouts": layouts,
    }
    write_json(OUT / "index.json", index)
    print("wrote tests/goldens/model/index.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
