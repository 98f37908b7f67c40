"""llama.cpp's own quantizer (llama_model_quantize) for text GGUF files: the same code path as llama-quantize.

Only the text model goes through here: llama_model_quantize refuses CLIP (mmproj) files.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from llama_cpp import llama_cpp as lc

from lfm_edge.errors import ConversionError
from lfm_edge.native.logs import route_native_logs

log = logging.getLogger(__name__)

# Type name (as the official GGUF repos spell it in file names) -> llama_ftype. Values from llama.h.
TEXT_FTYPES: dict[str, int] = {
    "F32": 0,
    "F16": 1,
    "Q4_0": 2,
    "Q4_1": 3,
    "Q8_0": 7,
    "Q5_0": 8,
    "Q5_1": 9,
    "Q2_K": 10,
    "Q3_K_S": 11,
    "Q3_K_M": 12,
    "Q3_K_L": 13,
    "Q4_K_S": 14,
    "Q4_K_M": 15,
    "Q5_K_S": 16,
    "Q5_K_M": 17,
    "Q6_K": 18,
    "IQ2_XXS": 19,
    "IQ2_XS": 20,
    "Q2_K_S": 21,
    "IQ3_XS": 22,
    "IQ3_XXS": 23,
    "IQ1_S": 24,
    "IQ4_NL": 25,
    "IQ3_S": 26,
    "IQ3_M": 27,
    "IQ2_S": 28,
    "IQ2_M": 29,
    "IQ4_XS": 30,
    "IQ1_M": 31,
    "BF16": 32,
}


@dataclass(frozen=True)
class QuantizeParams:
    """`imatrix`: tensor name -> per-column importance (mean of squared activations), as llama-quantize passes it."""

    ftype: int
    n_threads: int | None = None
    leave_output_tensor: bool = False
    imatrix: Mapping[str, np.ndarray] = field(default_factory=dict)


def _imatrix_array(imatrix: Mapping[str, np.ndarray]) -> tuple[ctypes.Array[lc.llama_model_imatrix_data], list[object]]:
    """A NULL-terminated C array of entries; the second value keeps the Python buffers alive during the call."""
    keep: list[object] = []
    entries = (lc.llama_model_imatrix_data * (len(imatrix) + 1))()
    for index, (name, values) in enumerate(imatrix.items()):
        data = np.ascontiguousarray(values, dtype=np.float32)
        encoded = name.encode()
        keep += [data, encoded]
        entries[index].name = encoded
        entries[index].data = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entries[index].size = data.size
    return entries, keep


def quantize_text_gguf(source: Path, target: Path, params: QuantizeParams) -> None:
    """Writes `target` (any name: callers pass a temporary one) from the F16/F32/BF16 text GGUF `source`."""
    route_native_logs()
    native = lc.llama_model_quantize_default_params()
    native.ftype = params.ftype
    native.nthread = params.n_threads or max(1, os.cpu_count() or 1)
    # llama-quantize's --leave-output-tensor; LFM2 ties output to token_embd, so this keeps that tensor's type.
    native.quantize_output_tensor = not params.leave_output_tensor
    entries, keep = _imatrix_array(params.imatrix) if params.imatrix else (None, [])
    if entries is not None:
        native.imatrix = ctypes.cast(entries, ctypes.POINTER(lc.llama_model_imatrix_data))
    status = lc.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(native))
    del keep
    if status != 0:
        raise ConversionError(
            f"llama.cpp could not quantize {source.name} to ftype {params.ftype} (status {status}): "
            "run with --verbose to see llama.cpp's reason"
        )
    log.info("quantized %s -> %s (ftype %d)", source, target, params.ftype)
