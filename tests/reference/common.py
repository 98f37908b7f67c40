"""Shared helpers of the golden generators (run in the reference venv, `make goldens`).

Goldens must be reproducible byte for byte, so every file is written through these helpers: JSON with sorted keys
and a trailing newline, and .npz archives whose zip entries carry a fixed timestamp (numpy's own savez stamps the
current time).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDENS = REPO_ROOT / "tests" / "goldens"
IMAGES = REPO_ROOT / "tests" / "images"
_FIXED_ZIP_TIME = (2026, 1, 1, 0, 0, 0)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like np.savez_compressed, but byte-reproducible: sorted names, fixed timestamps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_array(array: np.ndarray) -> str:
    """Hash of the C-contiguous bytes of an array (dtype and shape are recorded separately)."""
    return sha256_bytes(np.ascontiguousarray(array).tobytes())


def rle_ids(ids: list[int]) -> list[list[int]]:
    """Run-length encoding of token ids: [[id, count], ...] (how the image goldens store long <image> runs)."""
    runs: list[list[int]] = []
    for token in ids:
        if runs and runs[-1][0] == token:
            runs[-1][1] += 1
        else:
            runs.append([token, 1])
    return runs
