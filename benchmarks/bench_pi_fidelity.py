"""What the low-memory profile does to the answer: logits after an image prompt under the default and the low-memory
profile (same files), on the full-size synthetic model. The profile keeps the F16 KV cache: its ubatch (128), mapped
weights (no repacked copies where extra buffers would be on), the mmproj's lifetime and the snapshots should leave
the logits within float rounding (tests/test_profiles.py checks the same on the tiny model).

    python -m benchmarks.bench_pi_fidelity TEXT_GGUF MMPROJ_GGUF [--image IMG] [--out bench/pi_fidelity.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

import lfm_edge
from lfm_edge.prompt import RenderOptions

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "tests" / "images" / "photo_1024x768.jpg"


def prompt_logits(text: Path, mmproj: Path, image: Path, profile: str) -> np.ndarray:
    with lfm_edge.load(text, lfm_edge.LoadOptions(mmproj=mmproj, profile=profile)) as model:
        content = [{"type": "image", "image": image}, {"type": "text", "text": "Describe this image."}]
        items = model.prompts.build([{"role": "user", "content": content}], RenderOptions(), model.settings)
        model.engine.prefill(items)
        return model.engine.logits()


def compare(default: np.ndarray, low: np.ndarray) -> dict[str, Any]:
    difference = np.abs(default - low)
    top = np.argsort(-default)[:10]
    return {
        "max_abs_logit_difference": float(difference.max()),
        "mean_abs_logit_difference": float(difference.mean()),
        "logit_range": float(default.max() - default.min()),
        "same_argmax": bool(int(np.argmax(default)) == int(np.argmax(low))),
        "top10_overlap": len(set(top.tolist()) & set(np.argsort(-low)[:10].tolist())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", type=Path)
    parser.add_argument("mmproj", type=Path)
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "pi_fidelity.json")
    parser.add_argument("--no-extra-buffers", action="store_true", help="as benchmarks/bench_rss.py")
    args = parser.parse_args()
    if args.no_extra_buffers:
        from benchmarks.bench_rss import _without_extra_buffers

        _without_extra_buffers()
    default, low = (prompt_logits(args.text, args.mmproj, args.image, p) for p in ("default", "low-memory"))
    report = {"model": args.text.name, "mmproj": args.mmproj.name, "image": args.image.name,
              "no_extra_buffers": args.no_extra_buffers, **compare(default, low)}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
