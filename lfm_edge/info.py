"""`lfm-edge info`: what a model pair is, read from the GGUF headers only (no weights are loaded)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import gguf

from lfm_edge.mmproj import read_gguf_metadata
from lfm_edge.resolve import resolve
from lfm_edge.settings_source import resolve_settings

_TEXT_KEYS = ("general.name", "general.architecture", "general.file_type", "general.size_label",
              "lfm2.context_length", "lfm2.embedding_length", "lfm2.block_count", "lfm2.vocab_size")  # fmt: skip
_MMPROJ_KEYS = ("clip.projector_type", "clip.vision.embedding_length", "clip.vision.block_count",
                "clip.vision.projection_dim", "clip.vision.projector.scale_factor")  # fmt: skip


def _tensor_summary(path: Path) -> dict[str, Any]:
    reader = gguf.GGUFReader(path)
    types = Counter(tensor.tensor_type.name for tensor in reader.tensors)
    return {"tensors": len(reader.tensors), "types": dict(sorted(types.items())), "bytes": path.stat().st_size}


def describe_model(model: str | Path, mmproj: Path | None = None, quant: str | None = None) -> dict[str, Any]:
    files = resolve(model, mmproj=mmproj, quant=quant)
    text_meta = read_gguf_metadata(files.text)
    report: dict[str, Any] = {
        "text": {"file": str(files.text), **{k: text_meta.get(k) for k in _TEXT_KEYS}, **_tensor_summary(files.text)}
    }
    if files.mmproj is None:
        report["mmproj"] = {"file": None}
        return report
    mmproj_meta = read_gguf_metadata(files.mmproj)
    report["mmproj"] = {"file": str(files.mmproj), **{k: mmproj_meta.get(k) for k in _MMPROJ_KEYS},
                        **_tensor_summary(files.mmproj)}  # fmt: skip
    resolved = resolve_settings(files, mmproj_meta)
    settings = resolved.settings
    report["image processor"] = {
        "source": str(resolved.source),
        **{name: getattr(settings, name) for name in settings.__dataclass_fields__},
    }
    return report
