"""`make bench-followup`: time to first token of a follow-up question on the same image, against the first turn's.

Full-size synthetic model (random weights, official shapes) converted to F16, a 512x385 image and a short question,
then a follow-up question. Issue D's goal: follow-up TTFT <= 10% of the first turn's. Writes build/bench/followup.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import lfm_edge.model as api
from lfm_edge.generation import GenerationOptions
from lfm_edge.native.sampling import SamplingParams

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "build" / "bench"


def _model_files() -> Path:
    text = BENCH / "convert-out" / "ours" / "full-official-2.5-f16.gguf"
    if not text.exists():
        from benchmarks.bench_convert import run

        run("f16", with_llama_cpp=False)
    return text


def main() -> int:
    text = _model_files()
    image = Path(tempfile.mkdtemp()) / "photo_512x385.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (385, 512, 3), dtype=np.uint8)).save(image)
    runs = []
    with api.load(text, n_ctx=4096) as model:
        # Random weights babble bytes that do not re-tokenize to what was sampled, unlike a trained model's text.
        # So the first reply is forced (a grammar of token ids) to the canonical tokens of a plain sentence: the
        # next turn's re-rendered history then matches what the context holds, as it does with the real model.
        reply_ids = model.text.tokenize("It is a photo of coloured noise.")
        forced = "root ::= " + " ".join(f"<[{token}]>" for token in reply_ids)
        first_options = GenerationOptions(len(reply_ids) + 1, sampling=SamplingParams(temperature=0, grammar=forced))
        for _ in range(3):
            model.prompts.clear_caches()  # each run preprocesses and encodes the image anew, as a first turn does
            model.engine.reset()
            chat = model.chat(options=GenerationOptions(max_tokens=16, sampling=SamplingParams(temperature=0)))
            first = chat.send("What is in this image?", images=[image], options=first_options)
            second = chat.send("What colour is it?")
            runs.append({
                "first_ttft_s": first.timings.ttft_s, "first_prompt_tokens": first.prompt_tokens,
                "followup_ttft_s": second.timings.ttft_s, "followup_evaluated": second.timings.prefill_tokens,
                "followup_reused": second.timings.reused_tokens,
                "ratio": second.timings.ttft_s / first.timings.ttft_s,
            })  # fmt: skip
    report = {"model": text.name, "image": "512x385", "runs": runs,
              "median_ratio": float(np.median([r["ratio"] for r in runs]))}  # fmt: skip
    BENCH.mkdir(parents=True, exist_ok=True)
    (BENCH / "followup.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
