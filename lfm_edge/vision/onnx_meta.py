"""What an lfm_edge vision ONNX file says about itself, and the checks that it is whole and belongs to an mmproj.

The converter writes the file as two concatenated protobuf parts: the model (graph, weights, opsets), then the
model's `metadata_props` alone (protobuf merges repeated fields of concatenated messages, so onnxruntime reads one
model). The metadata holds the processor knobs, the source checkpoint's identity and `lfm_edge.integrity`: the
sha256 of the first part's bytes followed by the canonical JSON of every other metadata entry. Checking it costs one
streaming read of the file, no second copy in memory; any edit or truncation of the file changes it.

`lfm_edge.vision_fingerprint` ties the file to its mmproj: the sha256 of the float32 bytes of four tensors that every
mmproj type stores in F32 (position embeddings, post-layernorm weight and bias, projector output bias), read from the
checkpoint by the converter and from the mmproj by the runtime.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lfm_edge.errors import ModelError

FORMAT = "lfm-edge-vision/1"
KEY_FORMAT = "lfm_edge.format"
KEY_WEIGHT_TYPE = "lfm_edge.weight_type"
KEY_N_EMBD = "lfm_edge.n_embd"
KEY_PROCESSOR = "lfm_edge.processor"  # JSON: {processor_config.json key: value}, as the mmproj's lfm_edge.processor.*
KEY_SOURCE = "lfm_edge.source"  # JSON: checkpoint folder name, config.json sha256
KEY_FINGERPRINT = "lfm_edge.vision_fingerprint"
KEY_MODEL_BYTES = "lfm_edge.model_bytes"
KEY_INTEGRITY = "lfm_edge.integrity"

# GGUF names of the fingerprinted tensors and the official checkpoint names they come from.
FINGERPRINT_TENSORS = (
    ("v.position_embd.weight", "model.vision_tower.vision_model.embeddings.position_embedding.weight"),
    ("v.post_ln.weight", "model.vision_tower.vision_model.post_layernorm.weight"),
    ("v.post_ln.bias", "model.vision_tower.vision_model.post_layernorm.bias"),
    ("mm.2.bias", "model.multi_modal_projector.linear_2.bias"),
)
_CHUNK = 1 << 22


def fingerprint(arrays: Iterable[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for values in arrays:
        digest.update(np.ascontiguousarray(values, dtype="<f4").tobytes())
    return digest.hexdigest()


def mmproj_fingerprint(mmproj: Path) -> str:
    """The fingerprint of an mmproj GGUF (its F32 tensors, memory-mapped by gguf-py)."""
    import gguf

    try:
        reader = gguf.GGUFReader(mmproj)
    except (OSError, ValueError, IndexError, KeyError) as exc:
        raise ModelError(f"{mmproj} is not a readable GGUF file ({exc}); re-download or re-convert it") from exc
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    arrays = []
    for name, _ in FINGERPRINT_TENSORS:
        tensor = tensors.get(name)
        if tensor is None or tensor.tensor_type != gguf.GGMLQuantizationType.F32:
            raise ModelError(f"{mmproj} has no F32 tensor {name}: it is not an LFM2-VL mmproj of lfm-edge or llama.cpp")
        arrays.append(np.asarray(tensor.data))
    return fingerprint(arrays)


def integrity_digest(model_bytes_digest: hashlib._Hash, metadata: Mapping[str, str]) -> str:
    others = {key: value for key, value in metadata.items() if key != KEY_INTEGRITY}
    model_bytes_digest.update(json.dumps(others, sort_keys=True).encode())
    return model_bytes_digest.hexdigest()


def verify_integrity(path: Path, metadata: Mapping[str, str]) -> None:
    """Raises ModelError unless the file is exactly as the converter wrote it."""
    if KEY_INTEGRITY not in metadata or KEY_MODEL_BYTES not in metadata:
        raise ModelError(f"{path} has no lfm_edge integrity record: convert it with `lfm-edge convert --onnx`")
    try:
        remaining = int(metadata[KEY_MODEL_BYTES])
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while remaining > 0:
                block = handle.read(min(_CHUNK, remaining))
                if not block:
                    break
                digest.update(block)
                remaining -= len(block)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path} ({exc}); re-convert it with `lfm-edge convert --onnx`") from exc
    if remaining != 0 or integrity_digest(digest, metadata) != metadata[KEY_INTEGRITY]:
        raise ModelError(
            f"{path} was modified or truncated after conversion (integrity check failed): "
            "re-convert it with `lfm-edge convert --onnx`"
        )


# The processor knobs the graph itself depends on; the others (tiling, token budgets) stay runtime knobs.
GRAPH_KNOBS = ("encoder_patch_size", "downsample_factor")


def check_matches_mmproj(path: Path, metadata: Mapping[str, str], mmproj: Path, settings: Any) -> None:
    """Raises ModelError when the ONNX file was not converted from the checkpoint the mmproj was, or cannot serve
    the processor settings in use (`settings`: lfm_edge.image.settings.ProcessorSettings)."""
    if metadata.get(KEY_FORMAT) != FORMAT:
        raise ModelError(f"{path} is not an lfm-edge vision ONNX file (format {metadata.get(KEY_FORMAT)!r})")
    if metadata.get(KEY_FINGERPRINT) != mmproj_fingerprint(mmproj):
        raise ModelError(
            f"{path} and {mmproj} come from different checkpoints (vision weights differ): convert both from the "
            "same checkpoint (`lfm-edge convert --onnx`), or pass the matching --vision-onnx"
        )
    knobs = json.loads(metadata.get(KEY_PROCESSOR, "{}"))
    for key in GRAPH_KNOBS:
        ours, theirs = knobs.get(key), getattr(settings, key)
        if ours is None or not math.isclose(float(ours), float(theirs)):
            raise ModelError(
                f"{path} was converted for {key}={ours} but the model's processor uses {theirs}: "
                "re-convert the ONNX file from the same checkpoint"
            )
