"""An F16 mmproj GGUF -> the BF16 mmproj the converter would have written (`lfm-edge mmproj-bf16 FILE`).

For CPUs that encode fastest with BF16 vision weights (lfm_edge.vision.weights) when only the F16 file is at hand.
Every tensor gets the type the converter's bf16 outtype gives it (convert.gguf_out.choose_type: 2-D weights BF16,
the patch embedding, norms and 1-D tensors F32); metadata is copied, general.file_type set to MOSTLY_BF16.

Exactness: F16 -> F32 is exact, so F32 targets are exact. F16 -> BF16 keeps 7 of F16's 10 mantissa bits, so an F16
value is exact in BF16 when its low 3 mantissa bits are zero. Every F16 value written from a BF16 checkpoint (the
official checkpoints are BF16) is, when the BF16 value was within F16's normal range (2^-14 <= |x| <= 65504): it
round-trips exactly. BF16 values outside that range were rounded (or overflowed) when the F16 file was written;
that information is not in the F16 file, so they get the BF16 nearest to the F16 value, not the original. Values that
did not come from BF16 are rounded to the nearest BF16 (ties to even; relative error at most 2^-8). The command
counts the values that changed and reports the largest relative change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from convert.gguf_out import atomic_output, choose_type
from lfm_edge.errors import ConversionError

log = logging.getLogger(__name__)
Q = gguf.GGMLQuantizationType


@dataclass(frozen=True)
class Bf16Result:
    path: Path
    converted_values: int
    inexact_values: int
    max_relative_error: float
    # Nonzero F16 subnormals (|x| < 2^-14): if the F16 file came from BF16, F16 may have rounded these, so they can
    # differ from the original BF16 values even when they convert exactly.
    subnormal_values: int = 0


def bf16_name(f16: Path) -> Path:
    """mmproj-X-F16.gguf -> mmproj-X-BF16.gguf (the case of the type is kept)."""
    stem = f16.stem
    for suffix in ("F16", "f16"):
        if stem.endswith(suffix) and not stem.endswith(("BF16", "bf16")):
            return f16.with_name(f"{stem[: -len(suffix)]}{'BF16' if suffix == 'F16' else 'bf16'}.gguf")
    raise ConversionError(f"{f16.name} does not end in F16.gguf: pass --out for the BF16 file's name")


def to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> BF16 bit patterns (uint16), rounded to nearest even, as gguf-py and llama.cpp's converter do."""
    return np.asarray(gguf.quants.quantize(values.astype(np.float32), Q.BF16)).view(np.uint16).reshape(values.shape)


def widen_bf16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _open(f16: Path) -> gguf.GGUFReader:
    try:
        reader = gguf.GGUFReader(f16)
    except (OSError, ValueError, IndexError, KeyError) as exc:
        raise ConversionError(f"{f16} is not a readable GGUF file ({exc})") from exc
    field = reader.get_field("general.architecture")
    if field is None or field.contents() != "clip":
        raise ConversionError(f"{f16} is not an mmproj (general.architecture is not 'clip'): pass the F16 mmproj")
    if not any(t.tensor_type == Q.F16 for t in reader.tensors):
        raise ConversionError(f"{f16} holds no F16 tensors: pass an F16 mmproj")
    return reader


def _copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> None:
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        value = field.contents()
        if field.name == "general.file_type":
            value = int(gguf.LlamaFileType.MOSTLY_BF16)
        sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, field.types[0], sub_type=sub_type)


def write_bf16_mmproj(f16: Path, out: Path | None = None, force: bool = False) -> Bf16Result:
    reader = _open(f16)
    target = out or bf16_name(f16)
    if target.exists() and not force:
        raise ConversionError(f"{target} already exists: pass --force to overwrite it, or --out another file")
    converted = inexact = subnormal = 0
    worst = 0.0
    with atomic_output(target, force) as temporary:
        writer = gguf.GGUFWriter(temporary, "clip")
        _copy_metadata(reader, writer)
        for tensor in reader.tensors:
            data = np.asarray(tensor.data)
            if tensor.tensor_type != Q.F16:
                writer.add_tensor(tensor.name, data, raw_dtype=tensor.tensor_type)
                continue
            values = data.astype(np.float32)
            if choose_type(tensor.name, values.shape, "bf16") == Q.F32:
                writer.add_tensor(tensor.name, values)
                continue
            bits = to_bf16(values)
            back = widen_bf16(bits)
            changed = back != values
            converted += values.size
            subnormal += int(np.count_nonzero((values != 0) & (np.abs(values) < 2.0**-14)))
            inexact += int(np.count_nonzero(changed))
            if changed.any():
                errors = np.abs(back[changed] - values[changed]) / np.abs(values[changed])
                worst = max(worst, float(errors.max()))
            writer.add_tensor(tensor.name, bits, raw_shape=values.shape, raw_dtype=Q.BF16)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    log.info("wrote %s: %d values converted, %d not exact (max relative error %.2g), %d F16 subnormals", target,
             converted, inexact, worst, subnormal)  # fmt: skip
    return Bf16Result(target, converted, inexact, worst, subnormal)
