"""A short human-readable description of a checkpoint folder (what `lfm-edge synthetic` prints)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from lfm_edge.errors import CheckpointError


def safetensors_header(path: Path) -> dict[str, dict[str, object]]:
    """The tensor table of a .safetensors file (name -> dtype, shape, data_offsets), without reading data."""
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise CheckpointError(f"{path} is truncated: no safetensors header")
        (length,) = struct.unpack("<Q", prefix)
        header: dict[str, dict[str, object]] = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


def summarize(folder: Path) -> str:
    header = safetensors_header(folder / "model.safetensors")
    params = 0
    for entry in header.values():
        count = 1
        for dim in entry["shape"]:  # type: ignore[attr-defined]
            count *= int(dim)
        params += count
    files = ", ".join(sorted(p.name for p in folder.iterdir()))
    return f"{folder}: {len(header)} tensors, {params:,} parameters\nfiles: {files}"
