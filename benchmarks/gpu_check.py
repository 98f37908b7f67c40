"""`make gpu-check`: the same greedy tokens on the GPU build as on the CPU, through our runtime.

Run after `make venv-gpu BACKEND=...`. Loads the demo model (tiny synthetic, `make demo` makes it) twice, with all
layers offloaded and with none, and compares the first-step logits and 24 greedy tokens. Writes
build/bench/gpu_check.json. For Mesa's llvmpipe (a CPU "GPU"), set GGML_VK_VISIBLE_DEVICES=0.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from llama_cpp import llama_cpp as lc

import lfm_edge.model as api
from lfm_edge.generation import GenerationOptions
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.native.text import ContextOptions
from lfm_edge.prompt import RenderOptions

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "build" / "demo" / "tiny-lfm2.5-vl-f16.gguf"
GREEDY = GenerationOptions(max_tokens=24, sampling=SamplingParams(temperature=0, repetition_penalty=1.0))
MESSAGES = [{"role": "user", "content": "Describe a cat."}]


def _run(n_gpu_layers: int) -> tuple[list[int], np.ndarray]:
    options = api.LoadOptions(context=ContextOptions(n_ctx=512, n_threads=2, n_gpu_layers=n_gpu_layers))
    with api.load(MODEL, options) as model:
        model.engine.prefill(model.prompts.build(MESSAGES, RenderOptions(), model.settings))
        logits = model.engine.logits()
        model.engine.reset()
        tokens = list(model.generate("Describe a cat.", options=GREEDY).token_ids)
    return tokens, logits


def main() -> int:
    cpu_tokens, cpu_logits = _run(0)
    gpu_tokens, gpu_logits = _run(-1)
    report = {
        "gpu_offload_supported": bool(lc.llama_supports_gpu_offload()),
        "same_tokens": cpu_tokens == gpu_tokens,
        "tokens_compared": len(cpu_tokens),
        "max_abs_first_logit_diff": float(np.abs(cpu_logits - gpu_logits).max()),
        "argmax_equal": int(cpu_logits.argmax()) == int(gpu_logits.argmax()),
    }
    out = ROOT / "build" / "bench" / "gpu_check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if report["same_tokens"] else 1


if __name__ == "__main__":
    sys.exit(main())
