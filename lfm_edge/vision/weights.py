"""Which mmproj weight type encodes fastest on this CPU, from llama.cpp's own view of it (llama_print_system_info).

Vision encoding is compute-bound (a 512x512 crop is 1,024 patches through a 12-layer ViT), so the type whose dot
products the CPU does natively wins, not the smallest file. The rule, and where each line comes from:

- x86 with AVX512_BF16: Q8_0, F16, BF16, F32. Measured on this project's 2-core KVM Xeon (AVX512_BF16, AMX) in
  three `make bench` runs, 3 interleaved rounds each (README, "Image path"): Q8_0, F16 and BF16 encode a 512x512
  crop within 4% of each other on an idle machine, and BF16 was the slowest in each run (0.96x and 0.97x of Q8_0
  idle, 0.82x under load). Issue I's table had BF16 at 1.38x Q8_0 on a machine of the same kind; that could not be
  reproduced here. With the speeds tied, the smallest file wins: it loads faster and holds less memory.
- other x86 (AVX2 / AVX512F without BF16): the same order. Inferred: F16 and Q8_0 are tied on the machine above, and
  without AVX512_BF16 ggml widens BF16 to F32 by shifts, so BF16 has no edge either.
- ARM with FP16_VA (FP16 vector arithmetic, e.g. Cortex-A76 / Raspberry Pi 5, Apple M): F16, Q8_0, F32, BF16.
  Inferred from ggml's code, not measured: sgemm has a native float16x8 kernel for F16; for BF16 this ggml has no
  NEON kernel (only SME2 through KleidiAI, off by default), so BF16 falls to the scalar dot product.
- other ARM (e.g. Cortex-A72 / Raspberry Pi 4): Q8_0, F16, F32, BF16. Inferred: integer dot products (DOTPROD) or
  NEON widening beat F16 converted in software; BF16 is scalar as above.
- anything else: the official repo's default order, Q8_0, F16, BF16, F32.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path

WEIGHT_TYPES = ("BF16", "F16", "Q8_0", "F32")
_ORDERS = {
    "x86_bf16": ("Q8_0", "F16", "BF16", "F32"),
    "x86": ("Q8_0", "F16", "BF16", "F32"),
    "arm_fp16": ("F16", "Q8_0", "F32", "BF16"),
    "arm": ("Q8_0", "F16", "F32", "BF16"),
    "other": ("Q8_0", "F16", "BF16", "F32"),
}


def cpu_features(system_info: str) -> set[str]:
    """The features llama.cpp reports as on ("AVX512_BF16 = 1 | NEON = 1 | ..." -> {"AVX512_BF16", "NEON"})."""
    return {name for name, value in re.findall(r"([A-Z0-9_]+) = (\d+)", system_info) if value != "0"}


@functools.cache
def system_info() -> str:
    from llama_cpp import llama_cpp as lc

    return bytes(lc.llama_print_system_info()).decode(errors="replace")


def cpu_class(features: set[str]) -> str:
    if "AVX512_BF16" in features:
        return "x86_bf16"
    if features & {"AVX2", "AVX512", "AVX"}:
        return "x86"
    if "FP16_VA" in features:
        return "arm_fp16"
    if "NEON" in features:
        return "arm"
    return "other"


def preferred_types(features: set[str] | None = None) -> tuple[str, ...]:
    """mmproj weight types, fastest first, for a CPU with `features` (default: this one)."""
    return _ORDERS[cpu_class(cpu_features(system_info()) if features is None else features)]


def weight_type_of(path: Path) -> str | None:
    """The type in an mmproj file's name (`mmproj-<Model>-<TYPE>.gguf`, any case), None if it names none."""
    stem = path.stem.upper()
    return next((t for t in WEIGHT_TYPES if stem.endswith(("-" + t, "_" + t, "." + t))), None)


def pick_mmproj(candidates: Iterable[Path], features: set[str] | None = None) -> Path | None:
    """The candidate of the fastest type for this CPU; files whose name names no type come last, by name."""
    ordered = sorted(candidates)
    if not ordered:
        return None
    rank = {t: index for index, t in enumerate(preferred_types(features))}
    return min(ordered, key=lambda p: rank.get(weight_type_of(p) or "", len(rank)))
