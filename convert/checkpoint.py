"""A Hugging Face LFM2(.5)-VL checkpoint folder: its config files and its tensors, checked against the config.

Nothing is converted here: the folder is read, every tensor is located (single or sharded safetensors) and renamed to
the official layout, and the set of tensors is compared to what config.json implies (missing, unexpected, wrong
shape), so that a bad checkpoint is refused before any output file is opened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convert.architecture import tensor_specs
from convert.dims import Dims, dims_of
from convert.safetensors_io import TensorRecord, read_header
from convert.tensor_map import official_name
from lfm_edge.errors import CheckpointError

SUPPORTED_ARCHITECTURES = ("Lfm2VlForConditionalGeneration",)
SUPPORTED_MODEL_TYPES = ("lfm2_vl", "lfm2-vl")
_PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.bin", "consolidated.pth")


@dataclass(frozen=True)
class Checkpoint:
    folder: Path
    config: dict[str, Any]
    processor: dict[str, Any]  # flat processor settings (LFM2.5's image_processor section merged over the top level)
    dims: Dims
    tensors: dict[str, TensorRecord] = field(repr=False)  # official name -> where it lies

    @property
    def name(self) -> str:
        return self.folder.name


def read_json(path: Path, *, required: bool = True) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise CheckpointError(f"{path.name} is missing from {path.parent}: it is part of every HF checkpoint")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); restore the original file") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def open_checkpoint(folder: Path) -> Checkpoint:
    """Reads and validates a checkpoint folder; raises CheckpointError naming the file and the fix."""
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder: pass a checkpoint folder or a Hugging Face repo id")
    config = read_json(folder / "config.json")
    _check_architecture(folder, config)
    processor = _processor_settings(folder)
    try:
        dims = dims_of(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / 'config.json'} lacks a required value ({exc}); restore the original") from exc
    tensors = _locate_tensors(folder)
    _check_tensors(folder, dims, tensors, tied=bool(config.get("tie_word_embeddings", True)))
    return Checkpoint(folder, config, processor, dims, tensors)


def _check_architecture(folder: Path, config: dict[str, Any]) -> None:
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    if model_type not in SUPPORTED_MODEL_TYPES or not set(architectures) & set(SUPPORTED_ARCHITECTURES):
        raise CheckpointError(
            f"{folder / 'config.json'}: model_type {model_type!r} / architectures {architectures} is not an "
            f"LFM2-VL checkpoint; lfm-edge converts {', '.join(SUPPORTED_ARCHITECTURES)} (model_type lfm2_vl)"
        )
    if not isinstance(config.get("text_config"), dict) or not isinstance(config.get("vision_config"), dict):
        raise CheckpointError(f"{folder / 'config.json'} has no text_config/vision_config sections")


def _processor_settings(folder: Path) -> dict[str, Any]:
    processor = read_json(folder / "processor_config.json", required=False)
    if not processor:
        processor = read_json(folder / "preprocessor_config.json", required=False)
    nested = processor.get("image_processor")
    return {**processor, **nested} if isinstance(nested, dict) else processor


def _shard_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index} has no weight_map: restore the original index file")
        files = sorted({folder / str(name) for name in weight_map.values()})
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{index} names shards that are missing: {', '.join(missing)}; download them")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    pickled = [name for name in _PICKLED if (folder / name).exists()] + [p.name for p in folder.glob("*.bin")]
    if pickled:
        raise CheckpointError(
            f"{folder} holds only pickled weights ({pickled[0]}); lfm-edge never unpickles files (they can run "
            "code). Use the safetensors release, or re-save with transformers' save_pretrained(safe_serialization=True)"
        )
    raise CheckpointError(f"{folder} has no model.safetensors: download the model weights")


def _locate_tensors(folder: Path) -> dict[str, TensorRecord]:
    tensors: dict[str, TensorRecord] = {}
    for path in _shard_files(folder):
        for record in read_header(path):
            official = official_name(record.name)
            if official in tensors:
                raise CheckpointError(f"tensor {record.name!r} appears twice ({path.name}); the checkpoint is corrupt")
            tensors[official] = record
    return tensors


def _check_tensors(folder: Path, dims: Dims, tensors: dict[str, TensorRecord], *, tied: bool) -> None:
    expected = {spec.name: spec.shape for spec in tensor_specs(dims)}
    if not tied:
        expected["lm_head.weight"] = (dims.vocab, dims.hidden)
    elif "lm_head.weight" in tensors:
        expected["lm_head.weight"] = (dims.vocab, dims.hidden)  # a tied checkpoint may still store the copy
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise CheckpointError(
            f"{folder}: {len(missing)} tensor(s) missing, e.g. {missing[0]!r}; config.json expects them — "
            "the download is incomplete or config.json does not belong to these weights"
        )
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise CheckpointError(
            f"{folder}: unexpected tensor {tensors[unexpected[0]].name!r} ({len(unexpected)} in all); "
            "this is not an LFM2-VL checkpoint of the layout config.json describes"
        )
    for name, shape in expected.items():
        record = tensors[name]
        if record.shape != shape:
            raise CheckpointError(
                f"{record.path.name}: tensor {record.name!r} has shape {list(record.shape)} but config.json implies "
                f"{list(shape)}; config.json does not match these weights"
            )
