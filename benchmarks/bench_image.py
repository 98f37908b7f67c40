"""The image path's figures, interleaved in one run: encode ms per crop for each mmproj weight type, TTFT of an image +
question (512x385 and 1920x1080) with the type chosen for this CPU, uncached and from the persistent embedding cache
in a fresh load (what a second process sees), and image-prompt prefill against n_batch.

python -m benchmarks.bench_image FOLDER [--rounds 3] [--threads N] [--quant Q4_0] [--sizes 512x385,1920x1080]
    [--out build/bench/image.json]
FOLDER holds <Model>-Q4_0.gguf and mmproj-<Model>-<TYPE>.gguf files (`lfm-edge quantize ... --mmproj-types
Q8_0,F16,BF16,F32`). Each round measures every type, then every TTFT, one after the other; medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from lfm_edge.generation import GenerationOptions
from lfm_edge.model import LoadOptions, Model
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.native.text import ContextOptions, default_threads
from lfm_edge.resolve import files_in_folder, resolve
from lfm_edge.vision.weights import cpu_class, cpu_features, system_info, weight_type_of

QUESTION = "What is in this image?"
ONE_TOKEN = GenerationOptions(max_tokens=1, sampling=SamplingParams(temperature=0))
CROPS = {"512x512": (512, 512), "512x384": (384, 512), "256x256": (256, 256)}


def _image(folder: Path, width: int, height: int) -> Path:
    from benchmarks.bench_rss import write_photo

    return write_photo(folder / f"photo_{width}x{height}.jpg", width, height)


def _load(text: Path, mmproj: Path, threads: int, extra: dict[str, Any] | None = None) -> Model:
    context = ContextOptions(n_ctx=4096, n_threads=threads, **(extra or {}).get("context", {}))
    options = LoadOptions(context=context, mmproj=mmproj, cache_dir=(extra or {}).get("cache_dir"))
    return Model(resolve(text, mmproj=mmproj), options)


def encode_round(text: Path, mmprojs: dict[str, Path], threads: int) -> dict[str, dict[str, float]]:
    """ms per crop size for each type (one warm-up encode per type first)."""
    rng = np.random.default_rng(0)
    crops = {name: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for name, (h, w) in CROPS.items()}
    result: dict[str, dict[str, float]] = {}
    for type_name, mmproj in mmprojs.items():
        with _load(text, mmproj, threads) as model:
            assert model.vision is not None
            model.vision.encode(crops["256x256"])
            timings = {}
            for name, crop in crops.items():
                started = time.perf_counter()
                model.vision.encode(crop)
                timings[name] = (time.perf_counter() - started) * 1000
            result[type_name] = timings
    return result


def ttft_ms(model: Model, image: Path) -> tuple[float, dict[str, Any]]:
    """From the call to the first token, fresh context; the stages as Completion.timings reports them."""
    model.engine.reset()
    started = time.perf_counter()
    completion = model.generate(QUESTION, [image], ONE_TOKEN)
    wall = (time.perf_counter() - started) * 1000
    timings = completion.timings
    stages = {"prefill_ms": timings.prefill_s * 1000, "prefill_positions": timings.prefill_tokens}
    if timings.image is not None:
        stages |= {"encode_ms": timings.image.encode_s * 1000, "crops": timings.image.crops,
                   "cache_hits": timings.image.cache_hits, "load_ms": timings.image.load_s * 1000,
                   "preprocess_ms": timings.image.preprocess_s * 1000}  # fmt: skip
    return wall, stages


def ttft_round(text: Path, mmproj: Path, images: dict[str, Path], threads: int, cache: Path) -> dict[str, Any]:
    """Uncached TTFT per image, then a fresh load with the persistent cache filled by the first: cache-hit TTFT."""
    row: dict[str, Any] = {}
    with _load(text, mmproj, threads, {"cache_dir": cache}) as model:
        model.generate("Hi", options=ONE_TOKEN)  # warm-up: first-touch of compute buffers
        for name, image in images.items():
            row[name] = ttft_ms(model, image)
    with _load(text, mmproj, threads, {"cache_dir": cache}) as model:
        model.generate("Hi", options=ONE_TOKEN)
        for name, image in images.items():
            row[f"{name} cached"] = ttft_ms(model, image)
    return row


def prefill_round(text: Path, mmproj: Path, image: Path, threads: int) -> dict[str, float]:
    """Prefill ms of the largest image's prompt (embeddings cached, so only the text model runs) per n_batch."""
    result = {}
    with tempfile.TemporaryDirectory() as name:
        for n_batch in (256, 512, 1024):
            with _load(text, mmproj, threads, {"context": {"n_batch": n_batch}, "cache_dir": name}) as model:
                ttft_ms(model, image)
                result[str(n_batch)] = ttft_ms(model, image)[1]["prefill_ms"]
    return result


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    types = rounds[0]["encode"]
    encode = {t: {c: _median([r["encode"][t][c] for r in rounds]) for c in CROPS} for t in types}
    ttft = {k: _median([r["ttft"][k][0] for r in rounds]) for k in rounds[0]["ttft"]}
    stages = {k: {s: _median([r["ttft"][k][1][s] for r in rounds]) for s in rounds[0]["ttft"][k][1]}
              for k in rounds[0]["ttft"]}  # fmt: skip
    prefill = {k: _median([r["prefill"][k] for r in rounds]) for k in rounds[0]["prefill"]}
    ratios = {f"{t} vs Q8_0 512x512 speed": encode["Q8_0"]["512x512"] / encode[t]["512x512"] for t in types
              if "Q8_0" in encode}  # fmt: skip
    hits = {k: ttft[f"{k} cached"] / ttft[k] for k in ttft if not k.endswith("cached")}
    return {"encode_ms": encode, "encode_speed_vs_q8_0": ratios, "ttft_ms": ttft, "ttft_stages": stages,
            "cache_hit_ttft_ratio": hits, "image_prefill_ms_by_n_batch": prefill}  # fmt: skip


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quant", default="Q4_0", help="text model type in FOLDER")
    parser.add_argument("--sizes", default="512x385,1920x1080", help="images of the TTFT rows, WIDTHxHEIGHT")
    parser.add_argument("--out", type=Path, default=Path("build/bench/image.json"))
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    threads = args.threads or default_threads()
    found = files_in_folder(args.folder, args.quant)
    mmprojs = {weight_type_of(p) or p.name: p for p in sorted(args.folder.glob("mmproj*.gguf"))}
    assert found.mmproj is not None
    head = {"threads": threads, "cpu_class": cpu_class(cpu_features(system_info())),
            "llama_cpp_system_info": system_info().strip(), "text": found.text.name,
            "chosen_mmproj": found.mmproj.name}  # fmt: skip
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lfm-edge-bench-image-") as name:
        folder = Path(name)
        sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
        images = {f"{w}x{h}": _image(folder, w, h) for w, h in sizes}
        for index in range(args.rounds):
            print(f"bench_image: round {index + 1}/{args.rounds}", file=sys.stderr, flush=True)
            row: dict[str, Any] = {"encode": encode_round(found.text, mmprojs, threads)}
            row["ttft"] = ttft_round(found.text, found.mmproj, images, threads, folder / f"cache-{index}")
            row["prefill"] = prefill_round(found.text, found.mmproj, list(images.values())[-1], threads)
            rounds.append(row)
            # Written after every round, so a long run stopped early keeps what it measured.
            report = {**head, "rounds": len(rounds), **summarise(rounds), "raw_rounds": rounds}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "raw_rounds"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
