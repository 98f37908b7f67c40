"""Vision-encoder speed per backend and type, interleaved in one run: llama.cpp's mtmd with each mmproj type beside
ONNX Runtime fp32 and int8, encode ms per crop (512x512 tile, 256x256 crop); TTFT of a 512x385 image + question
through the fastest mmproj and the ONNX int8 encoder (same text model, one process); with --rss, the peak RSS of a
process describing a 1920x1080 photo through each backend (benchmarks.bench_rss). The machine may be shared: read
the ratios, taken within each round.

    python -m benchmarks.bench_vision [--folder DIR [--text GGUF]] [--rounds 3] [--repeat 3] [--threads N]
        [--rss] [--no-ttft] [--out build/bench/vision.json]

Needs the onnx extra. Without --folder it writes the full-size synthetic checkpoint and its conversions under
build/bench/vision (reused; F16 text). --folder: `lfm-edge quantize ... --mmproj-types Q8_0,F16,BF16 --onnx`'s
output, text model by --text (default: the folder's Q4_0). `make bench` runs it on its own files (run_for_bench_all).
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_vision_report import standalone_markdown
from lfm_edge.generation import GenerationOptions
from lfm_edge.model import LoadOptions, Model, load
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.native.text import ContextOptions, TextModel, default_threads
from lfm_edge.vision.mtmd import VisionEncoder, VisionOptions
from lfm_edge.vision.onnx import OnnxCropEncoder, OnnxOptions
from lfm_edge.vision.weights import weight_type_of

log = logging.getLogger("bench_vision")
ROOT = Path(__file__).resolve().parents[1]
WORK = Path("build/bench/vision")
MMPROJ_TYPES = ("q8_0", "f16", "bf16")
CROPS = {"512x512": (512, 512), "256x256": (256, 256)}
QUESTION = "What is in this image?"


@dataclass(frozen=True)
class VisionFiles:
    text: Path  # the text model mtmd binds to (and the TTFT rows use)
    encoders: dict[str, Path]  # "mmproj Q8_0" ... -> mmproj GGUF; "ONNX fp32", "ONNX int8" -> vision ONNX file


def prepare(work: Path, size: str) -> VisionFiles:
    """The synthetic checkpoint and every file the run needs (each made once)."""
    from convert.api import ConvertOptions, convert_checkpoint
    from convert.synthetic import CheckpointSpec, write_checkpoint

    folder = work / f"{size}-official-2.5"
    if not (folder / "model.safetensors").is_file():
        write_checkpoint(folder, CheckpointSpec(size, "official-2.5", 0), force=True)
    encoders: dict[str, Path] = {}
    for outtype in MMPROJ_TYPES:
        outdir = work / outtype
        text = outdir / f"{folder.name}-{outtype}.gguf"
        want_onnx = outtype == "f16"
        onnx_done = (outdir / f"vision-{folder.name}-int8.onnx").is_file() or not want_onnx
        if not text.is_file() or not onnx_done:
            convert_checkpoint(folder, ConvertOptions(outdir, outtype, force=True, quiet=True, onnx=want_onnx))
        encoders[f"mmproj {outtype.upper()}"] = outdir / f"mmproj-{text.name}"
    for kind in ("fp32", "int8"):
        encoders[f"ONNX {kind}"] = work / "f16" / f"vision-{folder.name}-{kind}.onnx"
    return VisionFiles(work / "f16" / f"{folder.name}-f16.gguf", encoders)


def from_folder(folder: Path, text: Path | None) -> VisionFiles:
    """The mmproj types and ONNX files of a `lfm-edge quantize --onnx` folder; text: its Q4_0 unless given."""
    if text is None:
        found = [p for p in folder.glob("*-Q4_0.gguf") if not p.name.startswith("mmproj")]
        if len(found) != 1:
            raise SystemExit(f"bench_vision: pass --text: {folder} has {len(found)} Q4_0 text models")
        text = found[0]
    encoders = {f"mmproj {weight_type_of(p) or p.stem}": p for p in sorted(folder.glob("mmproj*.gguf"))}
    for kind in ("fp32", "int8"):
        onnx = sorted(folder.glob(f"vision-*-{kind}.onnx"))
        if len(onnx) != 1:
            raise SystemExit(f"bench_vision: {folder} has {len(onnx)} vision-*-{kind}.onnx files (need one)")
        encoders[f"ONNX {kind}"] = onnx[0]
    return VisionFiles(text, encoders)


def make_crops(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for name, (h, w) in CROPS.items()}


def _ms(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def encode_table(files: VisionFiles, threads: int, rounds: int, repeat: int) -> dict[str, dict[str, list[float]]]:
    """backend -> crop -> per-round median ms; backends visited in turn within every round."""
    crops = make_crops()
    text = TextModel(files.text, ContextOptions(n_ctx=512, n_threads=threads))
    encoders: dict[str, Any] = {}
    try:
        for name, path in files.encoders.items():
            encoders[name] = (
                OnnxCropEncoder(path, OnnxOptions(n_threads=threads, n_embd=text.n_embd))
                if name.startswith("ONNX")
                else VisionEncoder(path, text.model, VisionOptions(n_threads=threads))
            )
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


def peak_rss(files: VisionFiles, threads: int) -> dict[str, Any]:
    """benchmarks.bench_rss (1920x1080 photo, n_ctx 4096) once per backend, each in a process of its own: the
    mtmd path with the Q8_0 mmproj (or the first type), the ONNX path with the int8 file beside the same mmproj."""
    mmprojs = {name: path for name, path in files.encoders.items() if name.startswith("mmproj")}
    mmproj = mmprojs.get("mmproj Q8_0") or next(iter(mmprojs.values()))
    onnx = files.encoders["ONNX int8"]
    result: dict[str, Any] = {"text": files.text.name, "mmproj": mmproj.name, "onnx": onnx.name,
                              "onnx_file_mb": onnx.stat().st_size / 2**20}  # fmt: skip
    for backend in ("mtmd", "onnx"):
        log.info("peak RSS: %s", backend)
        command = [sys.executable, "-m", "benchmarks.bench_rss", str(files.text), "--mmproj", str(mmproj),
                   "--vision-backend", backend, "--vision-onnx", str(onnx), "--threads", str(threads),
                   "--max-tokens", "1"]  # fmt: skip
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"bench_rss ({backend}) exited {done.returncode}: {done.stderr[-400:]}")
        result[backend] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_for_bench_all(text: Path, rounds: int, threads: int, out: Path) -> dict[str, Any]:
    """`make bench`'s rows, in a process of its own: encode per backend and type with the files beside `text`, and
    the peak RSS per backend (bench_image measures the TTFT rows)."""
    command = [sys.executable, "-m", "benchmarks.bench_vision", "--folder", str(text.parent), "--text", str(text),
               "--rounds", str(rounds), "--threads", str(threads), "--rss", "--no-ttft", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"bench_vision exited {done.returncode}: {done.stderr[-400:]}")
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return report


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_vision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--folder", type=Path, default=None, help="use this folder's files (see above)")
    parser.add_argument("--text", type=Path, default=None, help="text model with --folder (default: its Q4_0)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rss", action="store_true", help="also the peak RSS of each backend (1920x1080 photo)")
    parser.add_argument("--no-ttft", action="store_true", help="skip the in-process TTFT rows")
    parser.add_argument("--out", type=Path, default=Path("build/bench/vision.json"))
    parser.add_argument("--size", choices=("full", "tiny"), default="full", help="tiny: a quick check of the script")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    faulthandler.enable()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    threads = args.threads or default_threads()
    files = from_folder(args.folder, args.text) if args.folder else prepare(WORK / args.size, args.size)
    encode = encode_table(files, threads, args.rounds, args.repeat)
    log.info("encode ms: %s", json.dumps(encode))
    report: dict[str, Any] = {"threads": threads, "rounds": args.rounds, "repeat": args.repeat,
                              "text": files.text.name, "encode_ms": encode}  # fmt: skip
    if not args.no_ttft:
        mmprojs = [n for n in encode if n.startswith("mmproj")]
        fastest = min(mmprojs, key=lambda n: statistics.median(encode[n]["512x512"]))
        report["ttft_ms"] = ttft_table(files.text, files.encoders[fastest], files.encoders["ONNX int8"], threads,
                                       args.rounds)  # fmt: skip
        report["ttft_text"] = f"{files.text.name}, {fastest} for mtmd"
    if args.rss:
        report["peak_rss"] = peak_rss(files, threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(standalone_markdown(report), encoding="utf-8")
    print(standalone_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
