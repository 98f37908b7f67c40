"""GGUF metadata of the two files (read with gguf-py, memory-mapped, no tensor data) and the checks that they
belong together: text arch `lfm2`; mmproj arch `clip`, projector `lfm2`, projection_dim = the text model's width."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gguf

from lfm_edge.errors import ModelError
from lfm_edge.image.family import Signature

if TYPE_CHECKING:
    from lfm_edge.resolve import ModelFiles


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    try:
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError, IndexError, KeyError) as exc:
        raise ModelError(f"{path} is not a readable GGUF file ({exc}); re-download or re-convert it") from exc
    metadata: dict[str, Any] = {}
    for name, entry in reader.fields.items():
        if name.startswith("GGUF.") or name.startswith("tokenizer.ggml."):
            continue  # the vocabulary is llama.cpp's business; skipping it keeps this fast
        metadata[name] = entry.contents()
    return metadata


def check_pair(text: dict[str, Any], mmproj: dict[str, Any] | None, n_embd: int, files: ModelFiles) -> None:
    arch = text.get("general.architecture")
    if arch != "lfm2":
        raise ModelError(f"{files.text} is a {arch!r} model, not LFM2 (arch 'lfm2'): pass an LFM2(.5)-VL text GGUF")
    if mmproj is None:
        return
    kind = (mmproj.get("general.architecture"), mmproj.get("clip.projector_type"))
    if kind != ("clip", "lfm2"):
        raise ModelError(f"{files.mmproj} is not an LFM2-VL mmproj (arch/projector {kind}); pass the matching mmproj")
    projection = mmproj.get("clip.vision.projection_dim")
    if projection != n_embd:
        raise ModelError(
            f"{files.mmproj} projects to width {projection} but {files.text} has width {n_embd}: "
            "they come from different models; pass the mmproj converted with this text model"
        )


def mmproj_signature(path: Path, metadata: Mapping[str, Any]) -> Signature | None:
    """The structural signature of an LFM2-VL mmproj (lfm_edge.image.family), from its header only."""
    try:
        tensors = {t.name: [int(d) for d in t.shape] for t in gguf.GGUFReader(path).tensors}
        keys = ("clip.vision.block_count", "clip.vision.embedding_length", "clip.vision.projection_dim")
        blocks, width, text_width = (int(metadata[key]) for key in keys)
    except (OSError, ValueError, IndexError, KeyError, TypeError):
        return None
    projector = tensors.get("mm.1.weight")
    if projector is None or len(projector) != 2:
        return None
    # ggml lists the shape innermost first: mm.1.weight is [in (vision width x 4), out (projector width)].
    return Signature("mm.input_norm.weight" in tensors, projector[1], blocks, width, text_width)
