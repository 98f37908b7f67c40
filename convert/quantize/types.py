"""Which types `lfm-edge quantize` makes, and the importance matrix some of them need.

Text types are llama.cpp's own (llama-quantize's names); mmproj types are the converter's outtypes, because
llama.cpp's quantizer refuses CLIP files: the official mmproj GGUFs are written by the converter too.
"""

from __future__ import annotations

import logging
from pathlib import Path

import gguf
import numpy as np

from lfm_edge.errors import ConfigError
from lfm_edge.native.quantize import TEXT_FTYPES

log = logging.getLogger(__name__)

DEFAULT_TEXT_TYPES = ("Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")
# BF16 too: the checkpoints are BF16, so it is lossless, and CPUs with BF16 dot products encode images fastest with it.
DEFAULT_MMPROJ_TYPES = ("Q8_0", "F16", "BF16")
# mmproj type -> converter outtype. Q8_0 keeps llama.cpp's converter rules: norms, biases, position embeddings and
# other 1-D tensors stay F32, the patch embedding F32 too, and rows that do not fill 32-wide blocks fall back to F16.
MMPROJ_OUTTYPES = {"F32": "f32", "F16": "f16", "BF16": "bf16", "Q8_0": "q8_0"}


def needs_imatrix(text_type: str) -> bool:
    """IQ types (and Q2_K_S) are tuned for an importance matrix; without one llama.cpp aborts on several of them and
    the rest lose much quality, so all are refused without --imatrix."""
    return text_type.startswith("IQ") or text_type == "Q2_K_S"


def parse_types(spec: str | list[str] | tuple[str, ...], valid: list[str], flag: str) -> tuple[str, ...]:
    """'Q4_0,q8_0' -> ('Q4_0', 'Q8_0'): upper-cased, de-duplicated in order; unknown names list the valid ones."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen: list[str] = []
    for raw in names:
        name = raw.strip().upper()
        if not name:
            continue
        if name not in valid:
            raise ConfigError(f"unknown {flag} type {raw.strip()!r}: choose from {', '.join(valid)}")
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise ConfigError(f"{flag} is empty: name at least one of {', '.join(valid)}")
    return tuple(chosen)


def text_types(spec: str | list[str] | tuple[str, ...], imatrix: Path | None) -> tuple[str, ...]:
    chosen = parse_types(spec, list(TEXT_FTYPES), "--types")
    missing = [name for name in chosen if needs_imatrix(name)]
    if missing and imatrix is None:
        raise ConfigError(
            f"{', '.join(missing)} need an importance matrix: pass --imatrix FILE.gguf (from llama-imatrix) "
            "or choose a K-quant such as Q4_K_M instead"
        )
    return chosen


def mmproj_types(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return parse_types(spec, list(MMPROJ_OUTTYPES), "--mmproj-types")


def load_imatrix(path: Path) -> dict[str, np.ndarray]:
    """A GGUF imatrix (llama-imatrix's default format): per tensor `<name>.in_sum2` and `<name>.counts`; the
    quantizer wants their ratio, the mean squared activation per column, as llama-quantize computes it."""
    try:
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--imatrix {path} is not a GGUF imatrix file ({exc}): make one with llama-imatrix") from exc
    sums = {t.name.removesuffix(".in_sum2"): t for t in reader.tensors if t.name.endswith(".in_sum2")}
    counts = {t.name.removesuffix(".counts"): t for t in reader.tensors if t.name.endswith(".counts")}
    if not sums:
        raise ConfigError(f"--imatrix {path} holds no *.in_sum2 tensors: make it with llama-imatrix (GGUF output)")
    matrix: dict[str, np.ndarray] = {}
    for name, tensor in sums.items():
        if name not in counts:
            raise ConfigError(f"--imatrix {path} has {name}.in_sum2 but no {name}.counts: regenerate it")
        count = np.asarray(counts[name].data, dtype=np.float64).reshape(-1, 1)  # one count per expert matrix
        values = np.asarray(tensor.data, dtype=np.float64).reshape(len(count), -1)
        # As llama-quantize: mean squared activation; a matrix never seen (count 0) gets neutral weights of 1.
        safe = np.where(count > 0, count, 1.0)
        matrix[name] = np.where(count > 0, values / safe, 1.0).astype(np.float32).reshape(-1)
    log.info("read an importance matrix for %d tensors from %s", len(matrix), path)
    return matrix
