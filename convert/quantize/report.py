"""The quality report of a quantized folder: one row per text type against the F16 file, written as report.json and
report.md, and a plain-text table for the terminal."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from convert.quantize.manifest import write_text_atomically
from convert.quantize.quality import EvalSet, Measured, compare, default_eval_set, measure

log = logging.getLogger(__name__)

_COLUMNS = (
    ("type", "type", "{}"),
    ("size_bytes", "bytes", "{:,}"),
    ("kl_mean", "KL mean", "{:.5f}"),
    ("kl_max", "KL max", "{:.5f}"),
    ("top1_agreement", "top-1", "{:.3f}"),
    ("perplexity", "PPL", "{:.3f}"),
    ("load_seconds", "load s", "{:.2f}"),
    ("decode_tokens_per_second", "tok/s", "{:.1f}"),
)


def _row(type_name: str, path: Path, reference: Measured, measured: Measured) -> dict[str, Any]:
    kls, agrees = [], []
    for ref_rows, rows in zip(reference.rows, measured.rows, strict=True):
        kl, agree = compare(ref_rows, rows)
        kls.append(kl)
        agrees.append(agree)
    kl_all, agree_all = np.concatenate(kls), np.concatenate(agrees)
    return {
        "type": type_name,
        "file": path.name,
        "size_bytes": path.stat().st_size,
        "positions": int(kl_all.size),
        "kl_mean": float(kl_all.mean()),
        "kl_max": float(kl_all.max()),
        "top1_agreement": float(agree_all.mean()),
        "perplexity": measured.perplexity,
        "load_seconds": measured.load_seconds,
        "decode_tokens_per_second": measured.decode_tokens_per_second,
    }


def build_report(
    f16_text: Path,
    mmproj: Path,
    text_files: Mapping[str, Path],
    n_threads: int | None,
    eval_set: EvalSet,
    onnx_files: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Measures the F16 reference once, then each type (one model loaded at a time: memory stays one model)."""
    reference = measure(f16_text, mmproj, eval_set, n_threads)
    rows = [_row("F16 (reference)", f16_text, reference, reference)]
    for type_name, path in text_files.items():
        # An F16 output is a copy of the reference: measuring it again would only cost time.
        measured = reference if type_name == "F16" else measure(path, mmproj, eval_set, n_threads)
        rows.append(_row(type_name, path, reference, measured))
    report: dict[str, Any] = {
        "reference": "F16 text model from the same conversion; the same F16 mmproj for every row",
        "metrics": "KL(F16 || type) in nats and top-1 agreement of next-token distributions, teacher-forced over "
        f"{len(eval_set.prompts)} chat prompts and {len(eval_set.image_prompts)} image prompts; perplexity on a "
        "bundled English text; greedy decode speed",
        "rows": rows,
    }
    if onnx_files:
        from convert.quantize.vision_quality import VISION_NOTE, vision_report_rows

        report["vision_rows"] = vision_report_rows(f16_text, mmproj, onnx_files, eval_set, n_threads)
        report["vision_note"] = VISION_NOTE
    return report


def _cells(row: Mapping[str, Any]) -> list[str]:
    return [fmt.format(row[key]) if key in row else "" for key, _, fmt in _COLUMNS]


def format_table(report: Mapping[str, Any]) -> str:
    header = [title for _, title, _ in _COLUMNS]
    body = [_cells(row) for row in [*report["rows"], *report.get("vision_rows", [])]]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) for line in [header, *body]]
    return "\n".join(lines)


def _markdown(report: Mapping[str, Any]) -> str:
    header = "| " + " | ".join(title for _, title, _ in _COLUMNS) + " |"
    rule = "|" + "---|" * len(_COLUMNS)
    rows = [*report["rows"], *report.get("vision_rows", [])]
    body = ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    note = [str(report["vision_note"]) + ".", ""] if "vision_note" in report else []
    vision = [f"| `{m['file']}` | {m['type']} | {m['size_bytes']:,} | {m['note']} |" for m in report.get("mmproj", [])]
    if vision:
        vision = ["", "## Vision weights (mmproj)", "", "| file | type | bytes | note |", "|---|---|---|---|", *vision]
    return "\n".join(
        ["# Quantization report", "", str(report["metrics"]) + ".", "", str(report["reference"]) + ".", "", *note,
         header, rule, *body, *vision, ""]
    )  # fmt: skip


MMPROJ_NOTES = {
    "BF16": "lossless (the checkpoint is BF16); fastest on CPUs with BF16 dot products (x86 AVX512_BF16)",
    "F16": "the checkpoint's BF16 values rounded to F16 (exact within F16's normal range)",
    "Q8_0": "smallest; 8-bit blocks, 1-D tensors and the patch embedding kept F32",
    "F32": "exact, twice the size of BF16",
}


def mmproj_section(mmproj_files: Mapping[str, Path]) -> list[dict[str, Any]]:
    """The vision weights written beside the text types (the rows above all use the F16 mmproj)."""
    return [{"type": t, "file": path.name, "size_bytes": path.stat().st_size, "note": MMPROJ_NOTES.get(t, "")}
            for t, path in mmproj_files.items()]  # fmt: skip


def write_report(
    outdir: Path,
    f16_text: Path,
    mmproj: Path,
    text_files: Mapping[str, Path],
    n_threads: int | None,
    extra_files: tuple[Mapping[str, Path] | None, dict[str, Path] | None] = (None, None),
) -> dict[str, Any]:
    """`extra_files`: (mmproj files by type, for their section; ONNX vision files by type, for the vision rows)."""
    mmproj_files, onnx_files = extra_files
    report = build_report(f16_text, mmproj, text_files, n_threads, default_eval_set(), onnx_files)
    report["mmproj"] = mmproj_section(mmproj_files or {})
    write_text_atomically(outdir / "report.json", json.dumps(report, indent=2) + "\n")
    write_text_atomically(outdir / "report.md", _markdown(report))
    log.info("quality report:\n%s", format_table(report))
    return report
