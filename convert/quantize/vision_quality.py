"""The vision rows of the quality report: the int8 ONNX vision encoder against the fp32 one, through the whole model.

Both runs use the same F16 text model and the same image prompts (the report's eval set); only the vision encoder
differs, so KL(fp32 || int8) and top-1 agreement of the next-token distributions measure what int8 vision costs.
The positions compared are those after the image (teacher-forced), where the image embeddings matter.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from convert.quantize.quality import EvalSet, _items_logits, compare
from lfm_edge.model import LoadOptions, load
from lfm_edge.native.text import ContextOptions
from lfm_edge.prompt import RenderOptions

log = logging.getLogger(__name__)


def image_rows(text: Path, mmproj: Path, onnx: Path, eval_set: EvalSet, n_threads: int | None) -> list[np.ndarray]:
    """Teacher-forced logits of each image prompt with `onnx` as the vision encoder."""
    if eval_set.image is None:
        return []
    options = LoadOptions(
        context=ContextOptions(n_ctx=2048, n_threads=n_threads), mmproj=mmproj, vision_backend="onnx", vision_onnx=onnx
    )
    image = {"type": "image", "image": str(eval_set.image)}
    chats = [[{"role": "user", "content": [image, {"type": "text", "text": p}]}] for p in eval_set.image_prompts]
    with load(text, options) as model:
        return [_items_logits(model, model.prompts.build(chat, RenderOptions(), model.settings)) for chat in chats]


def vision_report_rows(
    text: Path, mmproj: Path, onnx_files: dict[str, Path], eval_set: EvalSet, n_threads: int | None
) -> list[dict[str, Any]]:
    """One row per ONNX vision type against fp32 (its own row is the reference)."""
    reference = image_rows(text, mmproj, onnx_files["fp32"], eval_set, n_threads)
    rows = []
    for type_name, path in onnx_files.items():
        measured = reference if type_name == "fp32" else image_rows(text, mmproj, path, eval_set, n_threads)
        pairs = [compare(ref, got) for ref, got in zip(reference, measured, strict=True)]
        kl = np.concatenate([kl for kl, _ in pairs]) if pairs else np.zeros(0)
        agree = np.concatenate([agree for _, agree in pairs]) if pairs else np.zeros(0, dtype=bool)
        rows.append(
            {
                "type": f"vision ONNX {type_name}" + (" (reference)" if type_name == "fp32" else ""),
                "file": path.name,
                "size_bytes": path.stat().st_size,
                "positions": int(kl.size),
                "kl_mean": float(kl.mean()) if kl.size else float("nan"),
                "kl_max": float(kl.max()) if kl.size else float("nan"),
                "top1_agreement": float(agree.mean()) if agree.size else float("nan"),
            }
        )
    log.info("vision rows: %s", [(r["type"], r["kl_mean"], r["top1_agreement"]) for r in rows])
    return rows


VISION_NOTE = (
    "Vision rows: the same F16 text model with the int8 ONNX vision encoder against the fp32 one, KL(fp32 || int8) "
    "and top-1 agreement over the image prompts' positions. On a synthetic checkpoint (random weights) these check "
    "the machinery, not the real model's quality"
)
