"""The transformers column of `make bench`: the same figures for transformers on CPU, same checkpoint, same threads.

Runs only in the reference venv (torch + transformers), as its own process, so that its peak RSS (ru_maxrss, loading
included) is transformers' alone; the package and its tests never import torch. Prints one JSON object.

    .venv-ref/bin/python -m benchmarks.bench_transformers CHECKPOINT --dtype f32 --threads 2 [--quick]

Figures (the definitions of `lfm-edge bench`):
- load_s: Lfm2VlForConditionalGeneration + Lfm2VlProcessor from_pretrained;
- prompt_tok_s (ppN): one forward of N random token ids from an empty cache, last position's logits only;
- decode_tok_s (tgN): greedy `generate` of N+1 new tokens after a one-token prompt; only the N decode steps are
  timed (a logits processor stamps each step; the first stamp follows the prefill);
- ttft_ms: a 512x385 image + a short question through the processor's chat template, from the call (image decoding
  and preprocessing included) to the first token's logits.
`--ttft-only` (benchmarks.bench_image): only load_s and ttft_ms of each `--image` (repeatable), after one warm-up
TTFT on the first image; keyed by the image file's name.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

QUESTION = "What is in this image?"
_DTYPES = {"f32": "float32", "bf16": "bfloat16"}


class _Stamps:
    """A logits processor that records when each generation step's logits are ready."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.times.append(time.perf_counter())
        return scores


def _load(checkpoint: Path, dtype: str) -> tuple[Any, Any, float]:
    transformers: Any = importlib.import_module("transformers")
    torch: Any = importlib.import_module("torch")
    started = time.perf_counter()
    model = transformers.Lfm2VlForConditionalGeneration.from_pretrained(
        checkpoint, dtype=getattr(torch, _DTYPES[dtype])
    )
    model.eval()
    processor = transformers.Lfm2VlProcessor.from_pretrained(checkpoint)
    return model, processor, time.perf_counter() - started


def _generate(model: Any, inputs: dict[str, Any], new_tokens: int) -> list[float]:
    """Greedy generation of exactly new_tokens tokens; returns the step stamps."""
    transformers: Any = importlib.import_module("transformers")
    stamps = _Stamps()
    model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                   logits_processor=transformers.LogitsProcessorList([stamps]))  # fmt: skip
    return stamps.times


def prompt_rate(model: Any, tokens: int, rng: np.random.Generator) -> float:
    torch: Any = importlib.import_module("torch")
    ids = torch.tensor(rng.integers(0, model.config.text_config.vocab_size, (1, tokens)))
    started = time.perf_counter()
    model(input_ids=ids, use_cache=True, logits_to_keep=1)
    return tokens / (time.perf_counter() - started)


def decode_rate(model: Any, tokens: int, rng: np.random.Generator) -> float:
    torch: Any = importlib.import_module("torch")
    ids = torch.tensor([[int(rng.integers(0, model.config.text_config.vocab_size))]])
    stamps = _generate(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, tokens + 1)
    return tokens / (stamps[-1] - stamps[0])


def ttft_ms(model: Any, processor: Any, image: Path) -> float:
    from PIL import Image

    started = time.perf_counter()
    with Image.open(image) as opened:
        picture = opened.convert("RGB")
    messages = [{"role": "user", "content": [{"type": "image", "image": picture}, {"type": "text", "text": QUESTION}]}]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    stamps = _generate(model, dict(inputs), 1)
    return (stamps[0] - started) * 1000


def _summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def run_ttft(args: argparse.Namespace) -> dict[str, Any]:
    torch: Any = importlib.import_module("torch")
    torch.set_num_threads(args.threads)
    model, processor, load_s = _load(args.checkpoint, args.dtype)
    with torch.inference_mode():
        ttft_ms(model, processor, args.image[0])  # warm-up: first-call allocations
        ttft = {image.name: ttft_ms(model, processor, image) for image in args.image}
    return {"dtype": args.dtype, "threads": torch.get_num_threads(), "load_s": load_s, "ttft_ms": ttft,
            "torch": torch.__version__}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch: Any = importlib.import_module("torch")
    transformers: Any = importlib.import_module("transformers")
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    model, processor, load_s = _load(args.checkpoint, args.dtype)
    prompt_tokens, decode_tokens = (64, 16) if args.quick else (512, 128)
    figures: dict[str, list[float]] = {"load_s": [load_s], "prompt_tok_s": [], "decode_tok_s": [], "ttft_ms": []}
    with torch.inference_mode():
        prompt_rate(model, 16, rng)  # warm-up
        for _ in range(args.repeat):
            figures["prompt_tok_s"].append(prompt_rate(model, prompt_tokens, rng))
            figures["decode_tok_s"].append(decode_rate(model, decode_tokens, rng))
            figures["ttft_ms"].append(ttft_ms(model, processor, args.image[0]))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "dtype": args.dtype, "threads": torch.get_num_threads(), "repeat": args.repeat,
        "prompt_tokens": prompt_tokens, "decode_tokens": decode_tokens,
        "figures": {name: _summary(values) for name, values in figures.items()},
        "peak_rss_mb": peak_kib / 1024, "torch": torch.__version__, "transformers": transformers.__version__,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--image", type=Path, action="append", required=True)
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="f32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="pp64, tg16: a smoke test")
    parser.add_argument("--ttft-only", action="store_true", help="load and TTFT of each --image only")
    args = parser.parse_args()
    print(json.dumps(run_ttft(args) if args.ttft_only else run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
