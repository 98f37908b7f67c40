"""Repacked (interleaved) quantized weights on CPUs where llama.cpp's AMX kernels are active, without those kernels.

llama.cpp offers its CPU "extra" buffer types as one ordered list: AMX first where the CPU has it, then CPU_REPACK.
ggml's AMX matmul crashes LFM2 (see text._extra_buffers), so there all extra buffers are turned off, and with them
the CPU_REPACK layout that makes Q4_0 prompt evaluation about 1.4-2x and decoding about 1.1-1.3x faster (measured
on the full-size model here, one thread). This module puts the text model's matmul weights in CPU_REPACK by name
(llama_model_params.tensor_buft_overrides), skipping AMX.

An override is obeyed blindly: llama.cpp's CPU_REPACK buffer dereferences a null layout, and dies, for a tensor it
has no interleaved layout for. So a name is listed only when ggml's own rule (ggml-cpu/repack.cpp,
ggml_repack_get_optimal_repack_type, x86 branch) gives it one: Q4_0, Q4_K, IQ4_NL and MXFP4 with AVX2, Q2_K with
AVX512, each with rows divisible by 8; and only the weights LFM2 uses in matrix products alone (never token_embd,
which is also read by row).
"""

from __future__ import annotations

import ctypes
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from gguf import GGMLQuantizationType, GGUFReader
from llama_cpp import llama_cpp as lc

log = logging.getLogger(__name__)

REPACK_BUFFER = "CPU_REPACK"
MATMUL_WEIGHT = re.compile(
    r"^blk\.\d+\.(ffn_(up|gate|down)|attn_(q|k|v|output)|shortconv\.(in_proj|out_proj))\.weight$"
)
_INTERLEAVED_ROWS = 8
# ggml's x86 rule: the CPU feature each type's interleaved kernel needs.
_X86_REPACKABLE = {
    GGMLQuantizationType.Q4_0: "AVX2",
    GGMLQuantizationType.Q4_K: "AVX2",
    GGMLQuantizationType.IQ4_NL: "AVX2",
    GGMLQuantizationType.MXFP4: "AVX2",
    GGMLQuantizationType.Q2_K: "AVX512",
}


class _Override(ctypes.Structure):
    """llama_model_tensor_buft_override: a tensor-name regex and the buffer type its matches go to."""

    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


def repackable_weights(path: Path, cpu_features: str) -> list[str]:
    """The names of the text GGUF's matmul weights that ggml interleaves on this x86 CPU (its system info text)."""
    names = []
    for tensor in GGUFReader(path).tensors:
        feature = _X86_REPACKABLE.get(GGMLQuantizationType(tensor.tensor_type))
        rows = int(tensor.shape[1]) if len(tensor.shape) == 2 else 0
        if feature is None or f"{feature} = 1" not in cpu_features or rows % _INTERLEAVED_ROWS:
            continue
        if MATMUL_WEIGHT.match(tensor.name):
            names.append(tensor.name)
    return names


def _repack_buffer_type() -> int | None:
    """llama.cpp's CPU_REPACK buffer type, looked up the way llama.cpp itself does (the CPU backend's extra list)."""
    libs = Path(lc.__file__).parent / "lib"
    ggml, base = ctypes.CDLL(str(libs / "libggml.so")), ctypes.CDLL(str(libs / "libggml-base.so"))
    ggml.ggml_backend_dev_by_type.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    ggml.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
    base.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    base.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    base.ggml_backend_buft_name.restype = ctypes.c_char_p
    base.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
    device = ggml.ggml_backend_dev_by_type(0)  # GGML_BACKEND_DEVICE_TYPE_CPU
    if not device:
        return None
    address = base.ggml_backend_reg_get_proc_address(
        ggml.ggml_backend_dev_backend_reg(device), b"ggml_backend_dev_get_extra_bufts"
    )
    if not address:
        return None
    extra = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)(device)
    index = 0
    while extra and extra[index]:
        if base.ggml_backend_buft_name(extra[index]) == REPACK_BUFFER.encode():
            return int(extra[index])
        index += 1
    return None


class RepackOverrides:
    """The override array handed to llama_model_load_from_file; it must outlive the load, so this object holds it."""

    def __init__(self, names: Sequence[str], buffer_type: int) -> None:
        self.names = list(names)
        self._patterns = [f"^{re.escape(name)}$".encode() for name in self.names]
        self._array = (_Override * (len(self._patterns) + 1))()  # the last entry stays {NULL, NULL}: the end
        for index, pattern in enumerate(self._patterns):
            self._array[index] = _Override(pattern, buffer_type)

    @property
    def pointer(self) -> int:
        return ctypes.addressof(self._array)


def repack_overrides(path: Path) -> RepackOverrides | None:
    """Overrides that repack the file's eligible weights on this CPU, or None (nothing eligible, or no CPU_REPACK)."""
    features = bytes(lc.llama_print_system_info()).decode(errors="replace")
    try:
        names = repackable_weights(path, features)
    except (OSError, ValueError) as error:  # not a GGUF gguf-py can read: llama.cpp's own load reports it
        log.debug("no repack overrides for %s: %s", path, error)
        return None
    buffer_type = _repack_buffer_type() if names else None
    if buffer_type is None:
        return None
    log.info("%d weights of %s repacked (CPU_REPACK) without llama.cpp's AMX kernels", len(names), path.name)
    return RepackOverrides(names, buffer_type)
