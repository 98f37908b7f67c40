"""Vision-encoder speed per backend and type on the full-size synthetic checkpoint, interleaved in one run:
llama.cpp's mtmd with the mmproj types (Q8_0, F16, BF16) beside ONNX Runtime fp32 and int8, encode ms per crop
(512x512 tile, 256x256 crop); then TTFT of a 512x385 image + question through the fastest mmproj and the ONNX int8
encoder (same text model), also interleaved. The machine is shared and noisy: read the ratios, measured per round.

    python -m benchmarks.bench_vision [--rounds 3] [--repeat 3] [--threads N] [--out build/bench/vision.json]

Needs the onnx extra. Writes the full-size checkpoint and its conversions under build/bench/vision (reused).
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import json
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from convert.api import ConvertOptions, convert_checkpoint
from convert.synthetic import CheckpointSpec, write_checkpoint
from lfm_edge.generation import GenerationOptions
from lfm_edge.model import LoadOptions, Model, load
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.native.text import ContextOptions, TextModel, default_threads
from lfm_edge.vision.mtmd import VisionEncoder, VisionOptions
from lfm_edge.vision.onnx import OnnxCropEncoder, OnnxOptions

log = logging.getLogger("bench_vision")
WORK = Path("build/bench/vision")
MMPROJ_TYPES = ("q8_0", "f16", "bf16")
CROPS = {"512x512": (512, 512), "256x256": (256, 256)}
QUESTION = "What is in this image?"


def prepare(work: Path, size: str) -> dict[str, Path]:
    """The checkpoint and every file the run needs (each made once)."""
    folder = work / f"{size}-official-2.5"
    if not (folder / "model.safetensors").is_file():
        write_checkpoint(folder, CheckpointSpec(size, "official-2.5", 0), force=True)
    files: dict[str, Path] = {}
    for outtype in MMPROJ_TYPES:
        outdir = work / outtype
        text = outdir / f"{folder.name}-{outtype}.gguf"
        want_onnx = outtype == "f16"
        onnx_done = (outdir / f"vision-{folder.name}-int8.onnx").is_file() or not want_onnx
        if not text.is_file() or not onnx_done:
            convert_checkpoint(folder, ConvertOptions(outdir, outtype, force=True, quiet=True, onnx=want_onnx))
        files[f"mmproj {outtype.upper()}"] = outdir / f"mmproj-{text.name}"
        files[f"text {outtype}"] = text
    files["ONNX fp32"] = work / "f16" / f"vision-{folder.name}-fp32.onnx"
    files["ONNX int8"] = work / "f16" / f"vision-{folder.name}-int8.onnx"
    return files


def make_crops(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for name, (h, w) in CROPS.items()}


def _ms(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def encode_table(files: dict[str, Path], threads: int, rounds: int, repeat: int) -> dict[str, dict[str, list[float]]]:
    """backend -> crop -> per-round median ms; backends visited in turn within every round."""
    crops = make_crops()
    text = TextModel(files["text f16"], ContextOptions(n_ctx=512, n_threads=threads))
    encoders: dict[str, Any] = {}
    try:
        for outtype in MMPROJ_TYPES:
            name = f"mmproj {outtype.upper()}"
            encoders[name] = VisionEncoder(files[name], text.model, VisionOptions(n_threads=threads))
        for name in ("ONNX fp32", "ONNX int8"):
            encoders[name] = OnnxCropEncoder(files[name], OnnxOptions(n_threads=threads, n_embd=text.n_embd))
        for name, encoder in encoders.items():  # warm-up: first-call allocations and graph planning
            log.info("warm-up %s", name)
            for crop in crops.values():
                encoder.encode(crop)
        results: dict[str, dict[str, list[float]]] = {name: {c: [] for c in crops} for name in encoders}
        for round_index in range(rounds):
            log.info("encode round %d", round_index)
            for name, encoder in encoders.items():
                for crop_name, crop in crops.items():
                    times = [_ms(functools.partial(encoder.encode, crop)) for _ in range(repeat)]
                    results[name][crop_name].append(statistics.median(times))
        return results
    finally:
        for encoder in encoders.values():
            encoder.close()
        text.close()


def ttft_table(text: Path, mmproj: Path, onnx: Path, threads: int, rounds: int) -> dict[str, list[float]]:
    """TTFT ms (call to first token, image preprocessing and encoding included) of a 512x385 image + question."""
    image = np.random.default_rng(1).integers(0, 256, size=(385, 512, 3), dtype=np.uint8)
    context = ContextOptions(n_ctx=4096, n_threads=threads)
    backends = {
        "mtmd": LoadOptions(context=context, mmproj=mmproj, vision_backend="mtmd"),
        "onnx int8": LoadOptions(context=context, mmproj=mmproj, vision_backend="onnx", vision_onnx=onnx),
    }
    log.info("TTFT: loading %s with each vision backend", text.name)
    models: dict[str, Model] = {name: load(text, options) for name, options in backends.items()}
    options = GenerationOptions(max_tokens=1, sampling=SamplingParams(temperature=0))
    try:
        results: dict[str, list[float]] = {name: [] for name in models}
        for round_index in range(rounds + 1):
            for name, model in models.items():
                model.prompts.clear_caches()
                model.engine.reset()
                elapsed = _ms(functools.partial(model.generate, QUESTION, [image], options))
                if round_index > 0:  # round 0 warms up
                    results[name].append(elapsed)
        return results
    finally:
        for model in models.values():
            model.close()


def _markdown(report: dict[str, Any]) -> str:
    encode = report["encode_ms"]
    best = {c: min(statistics.median(encode[n][c]) for n in encode if n.startswith("mmproj")) for c in CROPS}
    header = "| backend | " + " | ".join(f"{c} ms | speed vs best mmproj" for c in CROPS) + " |"
    lines = [header, "|---|" + "---|---|" * 2]
    for name, per_crop in encode.items():
        cells = [
            f"{statistics.median(per_crop[c]):.0f} | {best[c] / statistics.median(per_crop[c]):.2f}x" for c in CROPS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ttft = {name: statistics.median(values) for name, values in report["ttft_ms"].items()}
    lines += ["", "| TTFT 512x385 + question | ms | vs mtmd |", "|---|---|---|"]
    lines += [f"| {name} ({report['ttft_text']}) | {ms:.0f} | {ms / ttft['mtmd']:.2f}x |" for name, ms in ttft.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_vision", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("build/bench/vision.json"))
    parser.add_argument("--size", choices=("full", "tiny"), default="full", help="tiny: a quick check of the script")
    args = parser.parse_args(argv)
    faulthandler.enable()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    threads = args.threads or default_threads()
    files = prepare(WORK / args.size, args.size)
    encode = encode_table(files, threads, args.rounds, args.repeat)
    log.info("encode ms: %s", json.dumps(encode))
    fastest = min((n for n in encode if n.startswith("mmproj")), key=lambda n: statistics.median(encode[n]["512x512"]))
    ttft = ttft_table(files["text f16"], files[fastest], files["ONNX int8"], threads, args.rounds)
    report = {"threads": threads, "rounds": args.rounds, "repeat": args.repeat, "encode_ms": encode,
              "ttft_ms": ttft, "ttft_text": f"F16 text, {fastest} for mtmd"}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(_markdown(report), encoding="utf-8")
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
