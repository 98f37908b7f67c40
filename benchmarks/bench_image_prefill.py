"""Image-prompt prefill on the text model alone (issue I, item 5): n_batch (= n_ubatch), threads and text weight
type, interleaved in one run, on embeddings the size of real crops (the vision encoder does not run: what is timed
is the text model over the image positions, as after an embedding-cache hit).

python -m benchmarks.bench_image_prefill TEXT.gguf [TEXT2.gguf ...] [--crops 3] [--batches 128,256,512,1024]
    [--threads 1,2] [--seqs 4] [--rounds 3] [--out build/bench/image_prefill.json]

Each round, for every (file, threads, n_batch, n_seq): a fresh context, a warm-up decode, then one timed prefill of
`crops` blocks of 256 image positions (random embeddings, the model's width) between a few template tokens, as the
engine evaluates them (one llama_decode call series per block). Reported: median ms per round and, within each
round, each setting's time relative to the first file at its default n_batch and the most threads (then medians).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lfm_edge.native.text import ContextOptions, TextModel

POSITIONS_PER_CROP = 256  # a 512x512 tile
TEMPLATE = [1, 6, 1098, 1024, 46, 20, 398]  # a few token ids around the image, like the chat template's


def prefill_ms(text: TextModel, crops: int) -> float:
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((POSITIONS_PER_CROP, text.n_embd)).astype(np.float32) * 0.05 for _ in range(crops)]
    text.clear()
    started = time.perf_counter()
    position = 0
    text.decode_tokens(TEMPLATE, position, logits_for_last=False)
    position += len(TEMPLATE)
    for block in blocks:
        text.decode_embeddings(block, position, logits_for_last=False)
        position += POSITIONS_PER_CROP
        text.decode_tokens(TEMPLATE[:2], position, logits_for_last=True)
        position += 2
    return (time.perf_counter() - started) * 1000


@dataclass(frozen=True)
class Grid:
    batches: list[int]
    threads: list[int]
    seqs: list[int]
    crops: int


def one_round(files: list[Path], grid: Grid) -> dict[str, float]:
    result = {}
    for path in files:
        for count, n_batch, n_seq in itertools.product(grid.threads, grid.batches, grid.seqs):
            options = ContextOptions(n_ctx=4096, n_threads=count, n_batch=n_batch, n_seq=n_seq)
            text = TextModel(path, options)
            try:
                text.decode_tokens(TEMPLATE * 40, 0)  # warm-up: first-touch of the compute buffers
                result[f"{path.name} t{count} b{n_batch} s{n_seq}"] = prefill_ms(text, grid.crops)
            finally:
                text.close()
    return result


def summarise(rounds: list[dict[str, float]], baseline: str) -> dict[str, Any]:
    keys = list(rounds[0])
    return {
        "ms": {k: statistics.median(r[k] for r in rounds) for k in keys},
        "relative_to": baseline,
        "relative": {k: statistics.median(r[k] / r[baseline] for r in rounds) for k in keys},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--crops", type=int, default=3)
    parser.add_argument("--batches", default="128,256,512,1024")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--seqs", default="4", help="n_seq (sequences of the unified KV cache; 4 is the default)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("build/bench/image_prefill.json"))
    args = parser.parse_args()
    batches, threads, seqs = ([int(v) for v in text.split(",")] for text in (args.batches, args.threads, args.seqs))
    grid = Grid(batches, threads, seqs, args.crops)
    default = ContextOptions()
    n_batch = default.n_batch if default.n_batch in grid.batches else grid.batches[-1]
    n_seq = default.n_seq if default.n_seq in grid.seqs else grid.seqs[0]
    baseline = f"{args.files[0].name} t{max(grid.threads)} b{n_batch} s{n_seq}"
    rounds = []
    for index in range(args.rounds):
        print(f"bench_image_prefill: round {index + 1}/{args.rounds}", file=sys.stderr, flush=True)
        rounds.append(one_round(args.files, grid))
        report = {"positions": args.crops * (POSITIONS_PER_CROP + 2) + len(TEMPLATE), "rounds": len(rounds),
                  **summarise(rounds, baseline), "raw_rounds": rounds}  # fmt: skip
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "raw_rounds"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
