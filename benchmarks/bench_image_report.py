"""benchmarks.bench_image's summary (medians over rounds, ratios taken within each round) and its markdown rows,
which bench_table puts in bench/results.md under "Image path"."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASELINE = "llama-mtmd-cli"
# (row, against, upper bound or None): the goals, as ratios of TTFT taken within a round.
RATIOS = (
    ("ours", BASELINE, 0.75),
    ("ours onnx", BASELINE, 0.75),
    ("ours cache hit", "ours", 0.25),
    ("ours", "transformers bf16", None),
    ("ours", "transformers f32", None),
)


@dataclass(frozen=True)
class Setup:
    text: Path
    mmproj: Path  # chosen for this CPU
    mmprojs: dict[str, Path]  # every type in the folder (encode rows)
    reference_mmproj: Path  # Q8_0, as users run llama-mtmd-cli
    onnx: Path | None
    checkpoint: Path | None  # the HF checkpoint for the transformers rows
    images: dict[str, Path]
    threads: int


def ttft_of(entry: Any) -> float | None:
    """The TTFT ms of one measurement, whatever tool took it (ours: [wall, stages]; llama-mtmd-cli: its dict;
    transformers: a number); None when it was not measured."""
    if entry is None:
        return None
    if isinstance(entry, list):
        return float(entry[0])
    if isinstance(entry, dict):
        return float(entry["ttft_ms"])
    return float(entry)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def _cell(row: dict[str, Any], system: str, image: str) -> float | None:
    return ttft_of((row.get(system) or {}).get(image))


def _ratio_in(row: dict[str, Any], top: str, bottom: str, image: str) -> float | None:
    a, b = _cell(row, top, image), _cell(row, bottom, image)
    return a / b if a is not None and b else None


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    types = rounds[0]["encode"]
    crops = next(iter(types.values()))
    encode = {t: {c: _median([r["encode"][t][c] for r in rounds]) for c in crops} for t in types}
    speed = {f"{t} vs Q8_0 512x512 speed": encode["Q8_0"]["512x512"] / encode[t]["512x512"]  # type: ignore[operator]
             for t in types if "Q8_0" in encode}  # fmt: skip
    systems = list(rounds[0]["ttft"])
    images = sorted({image for r in rounds for s in r["ttft"].values() if isinstance(s, dict) for image in s})
    ttft = {s: {i: _median([_cell(r["ttft"], s, i) for r in rounds]) for i in images} for s in systems}
    ratios = {f"{top} / {bottom} {image}": _median([_ratio_in(r["ttft"], top, bottom, image) for r in rounds])
              for top, bottom, _ in RATIOS for image in images if top in systems and bottom in systems}  # fmt: skip
    stages = {s: {i: _stages(rounds, s, i) for i in images} for s in ("ours", "ours cache hit", "ours onnx")
              if s in systems}  # fmt: skip
    report: dict[str, Any] = {"encode_ms": encode, "encode_speed_vs_q8_0": speed, "ttft_ms": ttft,
                              "ttft_ratios": ratios, "ttft_stages": stages}  # fmt: skip
    if "prefill" in rounds[0]:
        report["image_prefill_ms_by_n_batch"] = {k: _median([r["prefill"][k] for r in rounds])
                                                 for k in rounds[0]["prefill"]}  # fmt: skip
    return report


def _stages(rounds: list[dict[str, Any]], system: str, image: str) -> dict[str, float | None]:
    entries = [(r["ttft"].get(system) or {}).get(image) for r in rounds]
    measured = [entry[1] for entry in entries if entry]
    if not measured:
        return {}
    return {k: _median([m.get(k) for m in measured]) for k in measured[0]}


def _num(value: float | None, digits: int = 0) -> str:
    return "not measured" if value is None else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _goal(ratio: float | None, goal: float | None) -> str:
    if ratio is None:
        return "not measured"
    if goal is None:
        return f"{ratio:.2f}"
    return f"{ratio:.2f} ({'meets' if ratio <= goal else 'misses'} ≤ {goal})"


def markdown_lines(vision: dict[str, Any]) -> list[str]:
    """Encode ms per crop by mmproj type; TTFT per system and image; the goal ratios; the stages of ours."""
    encode = vision["encode_ms"]
    crops = list(next(iter(encode.values())))
    speed = vision.get("encode_speed_vs_q8_0", {})
    rows = [[t, *(_num(ms[c]) for c in crops), _num(speed.get(f"{t} vs Q8_0 512x512 speed"), 2)]
            for t, ms in encode.items()]  # fmt: skip
    lines = [*_table(["mmproj type", *(f"encode {c} (ms)" for c in crops), "512x512 speed vs Q8_0"], rows), ""]
    ttft = vision["ttft_ms"]
    images = sorted({i for per in ttft.values() for i in per})
    rows = [[system, *(_num(per.get(i)) for i in images)] for system, per in ttft.items()]
    lines += [*_table(["TTFT, image + question (ms)", *images], rows), ""]
    ratios = vision.get("ttft_ratios", {})
    rows = [[f"{top} / {bottom}", *(_goal(ratios.get(f"{top} / {bottom} {i}"), goal) for i in images)]
            for top, bottom, goal in RATIOS if any(f"{top} / {bottom} {i}" in ratios for i in images)]  # fmt: skip
    lines += [*_table(["TTFT ratio (median of per-round ratios)", *images], rows), ""]
    stage_rows = []
    for system, per in vision.get("ttft_stages", {}).items():
        for image, stage in per.items():
            if stage:
                stage_rows.append([f"{system} {image}", _num(stage.get("encode_ms")), _num(stage.get("prefill_ms")),
                                   f"{_num(stage.get('prefill_positions'))} / {_num(stage.get('reused_positions'))}",
                                   f"{_num(stage.get('cache_hits'))}/{_num(stage.get('crops'))}"])  # fmt: skip
    lines += [*_table(["ours, stages (ms)", "encode", "prefill", "positions evaluated / restored", "crops cached"],
                      stage_rows), ""]  # fmt: skip
    notes = [f"mmproj chosen for this CPU ({vision.get('cpu_class')}): `{vision.get('chosen_mmproj')}`; "
             f"llama-mtmd-cli with `{vision.get('reference_mmproj')}`"
             f"{' and --no-repack (AMX)' if vision.get('no_repack') else ''}, -n 1, TTFT from its log's timestamps "
             "(model and mmproj loaded -> first token; image decoding and preprocessing included, as for ours and "
             "transformers). Cache hit: a second process, the persistent cache filled by the first, another question "
             "about the same photo (crop embeddings and the text model's state after the image restored)."]  # fmt: skip
    prefill = vision.get("image_prefill_ms_by_n_batch")
    if prefill:
        notes.append("Image-prompt prefill of the largest image (embeddings cached): "
                     + ", ".join(f"n_batch {k}: {_num(v)} ms" for k, v in prefill.items()) + ".")  # fmt: skip
    return [*lines, *notes]
