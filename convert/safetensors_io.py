"""Lazy, validated reading of .safetensors files with numpy: one memory-mapped tensor at a time.

The safetensors library cannot hand bf16 to numpy, and the converter must fit a Raspberry Pi, so the (simple) file
format is read here: an 8-byte little-endian header length, a JSON header, then the tensor bytes. Every offset in
the header is checked against the file before anything is mapped. Each tensor is mapped on its own and unmapped
after use, so the process never holds more than one tensor's pages.
"""

from __future__ import annotations

import itertools
import json
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lfm_edge.errors import CheckpointError

_MAX_HEADER_BYTES = 100 * 1024 * 1024
# safetensors dtype -> (numpy dtype of the raw element, bytes per element); BF16 is read as its uint16 bit pattern.
DTYPES: dict[str, tuple[np.dtype[np.generic], int]] = {
    "F32": (np.dtype("<f4"), 4),
    "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2),
}


@dataclass(frozen=True)
class TensorRecord:
    """Where one tensor lies: file, dtype, shape and absolute byte range."""

    name: str
    path: Path
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def read_header(path: Path) -> list[TensorRecord]:
    """The tensors of one .safetensors file, validated: dtype known, offsets inside the file, sizes consistent."""
    try:
        file_size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) != 8:
                raise CheckpointError(f"{path} is truncated (no safetensors header): re-download it")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(_MAX_HEADER_BYTES, file_size - 8):
                raise CheckpointError(
                    f"{path}: header length {length} exceeds the file: the file is truncated or corrupt"
                )
            header = json.loads(handle.read(length))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors header ({exc}); re-download the file") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: safetensors header is not a JSON object; the file is corrupt")
    header.pop("__metadata__", None)
    data_start = 8 + length
    records = [_record(path, name, entry, data_start, file_size) for name, entry in header.items()]
    _check_no_overlap(path, records)
    return records


def _record(path: Path, name: str, entry: object, data_start: int, file_size: int) -> TensorRecord:
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise CheckpointError(f"{path}: tensor {name!r} has a malformed header entry; the file is corrupt")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPES:
        raise CheckpointError(
            f"{path}: tensor {name!r} has dtype {dtype}; only {', '.join(DTYPES)} checkpoints can be converted"
        )
    valid_shape = isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
    valid_offsets = isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
    if not (valid_shape and valid_offsets):
        raise CheckpointError(f"{path}: tensor {name!r} has a malformed shape or offsets; the file is corrupt")
    begin, end = data_start + offsets[0], data_start + offsets[1]
    expected = int(np.prod(shape, dtype=np.int64)) * DTYPES[dtype][1]
    if not data_start <= begin <= end or end - begin != expected:
        raise CheckpointError(
            f"{path}: tensor {name!r} offsets {offsets} do not match its shape {shape} and dtype {dtype}; "
            "the header is corrupt"
        )
    if end > file_size:
        raise CheckpointError(
            f"{path}: tensor {name!r} ends at byte {end} but the file has {file_size} bytes: "
            "the file is truncated, re-download it"
        )
    return TensorRecord(name, path, dtype, tuple(shape), begin, end)


def _check_no_overlap(path: Path, records: list[TensorRecord]) -> None:
    ordered = sorted(records, key=lambda r: r.start)
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise CheckpointError(
                f"{path}: tensors {before.name!r} and {after.name!r} overlap in the file; the header is corrupt"
            )


def load_float32(record: TensorRecord, rows: tuple[int, int] | None = None) -> np.ndarray:
    """The tensor (or rows [start, stop) of its first axis) as a new float32 array; bf16 and f16 widen exactly.

    Only the bytes asked for are mapped, and they are unmapped on return, so converting a large tensor in row
    chunks keeps the resident memory to one chunk.
    """
    raw_dtype, itemsize = DTYPES[record.dtype]
    shape = record.shape
    start, stop = rows if rows is not None else (0, shape[0] if shape else 1)
    row_elements = int(np.prod(shape[1:], dtype=np.int64)) if shape else 1
    out_shape = (stop - start, *shape[1:]) if shape else ()
    begin = record.start + start * row_elements * itemsize
    end = record.start + stop * row_elements * itemsize
    if end == begin:
        return np.zeros(out_shape, dtype=np.float32)
    aligned = begin - begin % mmap.ALLOCATIONGRANULARITY
    with (
        record.path.open("rb") as handle,
        mmap.mmap(handle.fileno(), end - aligned, offset=aligned, access=mmap.ACCESS_READ) as mapped,
    ):
        raw = np.frombuffer(mapped, dtype=raw_dtype, offset=begin - aligned)
        if record.dtype == "BF16":
            values = (raw.astype(np.uint32) << np.uint32(16)).view(np.float32)
        else:
            values = raw.astype(np.float32)
        del raw  # release the buffer export before the mapping closes
    return values.reshape(out_shape)
