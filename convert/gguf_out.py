"""Streaming, atomic GGUF writing: plan every tensor (name, type, shape), write the header, then read, transform and
write one tensor at a time; the file appears under its final name only when complete."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from convert.safetensors_io import TensorRecord, load_float32
from convert.tensor_map import Transform, apply_transform
from lfm_edge.errors import ConversionError

log = logging.getLogger(__name__)
Q = gguf.GGMLQuantizationType

# outtype -> (general.file_type, type of the 2-D weights)
OUTTYPES: dict[str, tuple[gguf.LlamaFileType, gguf.GGMLQuantizationType]] = {
    "f32": (gguf.LlamaFileType.ALL_F32, Q.F32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, Q.F16),
    "bf16": (gguf.LlamaFileType.MOSTLY_BF16, Q.BF16),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, Q.Q8_0),
}
# Kept in F32 whatever the outtype, as llama.cpp's converter does (small, or precision-critical).
_ALWAYS_F32_SUFFIXES = ("shortconv.conv.weight", "v.position_embd.weight")


@dataclass(frozen=True)
class PlannedTensor:
    name: str
    source: TensorRecord
    transform: Transform
    shape: tuple[int, ...]  # numpy (row-major) shape after the transform
    qtype: gguf.GGMLQuantizationType


def choose_type(name: str, shape: tuple[int, ...], outtype: str) -> gguf.GGMLQuantizationType:
    """llama.cpp converter's rules (conversion/base.py prepare_tensors, MmprojModel.tensor_force_quant)."""
    weights_type = OUTTYPES[outtype][1]
    if name == "v.patch_embd.weight":
        return Q.F16 if outtype == "f16" else Q.F32
    if len(shape) <= 1 or name.endswith("_norm.weight") or name.endswith(_ALWAYS_F32_SUFFIXES):
        return Q.F32
    if weights_type == Q.Q8_0 and shape[-1] % gguf.GGML_QUANT_SIZES[Q.Q8_0][0] != 0:
        return Q.F16  # llama.cpp falls back to F16 when rows do not fill whole Q8_0 blocks
    return weights_type


def _encode(values: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    if qtype == Q.F32:
        return values
    if qtype == Q.F16:
        return values.astype(np.float16)
    return np.asarray(gguf.quants.quantize(values, qtype))


def _byte_shape(
    shape: tuple[int, ...], qtype: gguf.GGMLQuantizationType
) -> tuple[tuple[int, ...], np.dtype[np.generic]]:
    if qtype == Q.F32:
        return shape, np.dtype(np.float32)
    if qtype == Q.F16:
        return shape, np.dtype(np.float16)
    return tuple(gguf.quant_shape_to_byte_shape(shape, qtype)), np.dtype(np.uint8)


_CHUNK_BYTES = 16 * 1024 * 1024


def encoded_tensor(tensor: PlannedTensor, patch_size: int) -> np.ndarray:
    """The tensor's bytes in its GGUF type. Untransformed tensors are read and encoded in row chunks into one
    preallocated output, so peak memory is the output plus one chunk (every type here encodes rows independently)."""
    if tensor.transform is not Transform.NONE or len(tensor.shape) < 2:
        return _encode(apply_transform(load_float32(tensor.source), tensor.transform, patch_size), tensor.qtype)
    byte_shape, dtype = _byte_shape(tensor.shape, tensor.qtype)
    output = np.empty(byte_shape, dtype=dtype)
    rows = tensor.shape[0]
    row_bytes = max(1, tensor.source.nbytes // rows)
    step = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        output[start:stop] = _encode(load_float32(tensor.source, (start, stop)), tensor.qtype)
    return output


def tensor_payloads(plan: list[PlannedTensor], patch_size: int) -> Iterator[np.ndarray]:
    for tensor in plan:
        yield encoded_tensor(tensor, patch_size)


@contextlib.contextmanager
def atomic_output(target: Path, force: bool) -> Iterator[Path]:
    """Yields a temporary path in target's folder; renames it to target on success, deletes it on any error."""
    if target.exists() and not force:
        raise ConversionError(f"{target} already exists: pass --force to overwrite it, or choose another --outdir")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise ConversionError(f"cannot write to {target.parent} ({exc.strerror}): choose a writable --outdir") from exc
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        temporary.chmod(0o644)
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class GgufJob:
    target: Path
    arch: str
    plan: list[PlannedTensor]
    patch_size: int
    add_metadata: Callable[[gguf.GGUFWriter], None]  # called after the tensor infos are known (parameter count)
    force: bool = False


def write_gguf(job: GgufJob, progress: Callable[[int], None] | None = None) -> Path:
    with atomic_output(job.target, job.force) as temporary:
        writer = gguf.GGUFWriter(temporary, job.arch)
        for tensor in job.plan:
            shape, dtype = _byte_shape(tensor.shape, tensor.qtype)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            writer.add_tensor_info(tensor.name, shape, dtype, nbytes, raw_dtype=tensor.qtype)
        job.add_metadata(writer)
        try:
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for tensor, payload in zip(job.plan, tensor_payloads(job.plan, job.patch_size), strict=True):
                writer.write_tensor_data(payload)
                if progress:
                    progress(tensor.source.nbytes)
        except OSError as exc:
            raise ConversionError(
                f"writing {job.target} failed: {exc.strerror or exc}; free disk space and retry"
            ) from exc
        finally:
            writer.close()
    log.info("wrote %s (%d tensors)", job.target, len(job.plan))
    return job.target
