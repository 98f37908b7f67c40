"""The image path's figures, interleaved in one run (`make bench-image`; `make bench` runs it too):
- encode ms per crop for each mmproj weight type in FOLDER (ours, llama.cpp's mtmd);
- TTFT of an image + question (512x385 and 1920x1080), each in a process of its own: ours with the mmproj type chosen
  for this CPU (mtmd backend), ours with the ONNX Runtime backend (when a vision ONNX file is in FOLDER),
  llama-mtmd-cli with the Q8_0 mmproj as users run it, transformers bf16 and f32 (reference venv, `--transformers
  CHECKPOINT`); then the cache hit: a second process, the persistent cache filled by the first, another question
  about the same photo (embeddings and the text model's state after the image come from the cache);
- image-prompt prefill (embeddings cached, so only the text model runs) against n_batch.

python -m benchmarks.bench_image FOLDER [--rounds 3] [--threads N] [--quant Q4_0] [--sizes 512x385,1920x1080]
    [--transformers CHECKPOINT] [--out build/bench/image.json]
FOLDER holds <Model>-Q4_0.gguf and mmproj-<Model>-<TYPE>.gguf files (`lfm-edge quantize ... --mmproj-types
Q8_0,F16,BF16`), optionally vision-<Model>-*.onnx. Medians over rounds; ratios are taken within the run.

How each TTFT is taken: ours, from the generate() call to the first token (image file decoding and preprocessing
included), model loaded and warmed up; llama-mtmd-cli (-n 1), from its log's timestamps: model and mmproj loaded
to its perf summary (image decoding, preprocessing, encode, prefill, the first token; see mtmd_cli_ttft);
transformers, from the call (processor included) to the first token's logits, after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_image_report import Setup, markdown_lines, summarise
from lfm_edge.generation import GenerationOptions
from lfm_edge.model import LoadOptions, Model
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.native.text import ContextOptions, amx_kernels_active, default_threads
from lfm_edge.resolve import files_in_folder, resolve
from lfm_edge.vision.weights import cpu_class, cpu_features, system_info, weight_type_of

ROOT = Path(__file__).resolve().parents[1]
MTMD_CLI = ROOT / "build" / "llama-ref" / "bin" / "llama-mtmd-cli"
REF_PY = ROOT / ".venv-ref" / "bin" / "python"
QUESTION = "What is in this image?"
FOLLOW_UP = "How many people are in it?"  # the cache-hit process asks something else about the same photo
ONE_TOKEN = GenerationOptions(max_tokens=1, sampling=SamplingParams(temperature=0))
CROPS = {"512x512": (512, 512), "512x384": (384, 512), "256x256": (256, 256)}


def _image(folder: Path, width: int, height: int) -> Path:
    from benchmarks.bench_rss import write_photo

    return write_photo(folder / f"photo_{width}x{height}.jpg", width, height)


def _load(text: Path, mmproj: Path, threads: int, extra: dict[str, Any] | None = None) -> Model:
    extra = extra or {}
    context = ContextOptions(n_ctx=4096, n_threads=threads, **extra.get("context", {}))
    options = LoadOptions(context=context, mmproj=mmproj, cache_dir=extra.get("cache_dir"),
                          vision_backend=extra.get("backend", "mtmd"), vision_onnx=extra.get("onnx"))  # fmt: skip
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


def ttft_ms(model: Model, image: Path, question: str = QUESTION) -> tuple[float, dict[str, Any]]:
    """From the call to the first token, fresh context; the stages as Completion.timings reports them."""
    model.engine.reset()
    started = time.perf_counter()
    completion = model.generate(question, [image], ONE_TOKEN)
    wall = (time.perf_counter() - started) * 1000
    timings = completion.timings
    stages = {"prefill_ms": timings.prefill_s * 1000, "prefill_positions": timings.prefill_tokens,
              "reused_positions": timings.reused_tokens}  # fmt: skip
    if timings.image is not None:
        stages |= {"encode_ms": timings.image.encode_s * 1000, "crops": timings.image.crops,
                   "cache_hits": timings.image.cache_hits, "load_ms": timings.image.load_s * 1000,
                   "preprocess_ms": timings.image.preprocess_s * 1000}  # fmt: skip
    return wall, stages


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One process's TTFTs (`--child SPEC`): load, warm up on text, then each image + question."""
    extra = {"cache_dir": spec.get("cache"), "backend": spec["backend"], "onnx": spec.get("onnx")}
    with _load(Path(spec["text"]), Path(spec["mmproj"]), spec["threads"], extra) as model:
        model.generate("Hi", options=ONE_TOKEN)  # first-touch of compute buffers
        return {name: ttft_ms(model, Path(image), spec["question"]) for name, image in spec["images"].items()}


def _subprocess_json(command: list[str]) -> Any:
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if completed.returncode:
        raise RuntimeError(f"{' '.join(command[:3])}... exited {completed.returncode}: {completed.stderr[-600:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def ours_ttft(spec: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = _subprocess_json([sys.executable, "-m", "benchmarks.bench_image", "--child",
                                               json.dumps(spec, default=str)])  # fmt: skip
    return result


_STAMP = r"(\d+)\.(\d\d)\.(\d{3})\.(\d{3}) I "  # common/log.cpp: minutes.seconds.milliseconds.microseconds


def _stamp_ms(log: str, marker: str) -> float:
    found = re.search(_STAMP + re.escape(marker), log)
    if found is None:
        raise RuntimeError(f"llama-mtmd-cli's log has no {marker!r} line")
    minutes, seconds, millis, micros = (int(v) for v in found.groups())
    return (minutes * 60 + seconds) * 1000 + millis + micros / 1000


def mtmd_cli_ttft(text: Path, mmproj: Path, image: Path, threads: int) -> dict[str, float]:
    """llama-mtmd-cli -n 1, TTFT from its log's timestamps: from its "main: loading model" line (text model and
    mmproj loaded) to its perf summary (image file decoding and preprocessing, encode, prompt eval, the first token
    sampled, printed and decoded). Its "prompt eval time" is not used: mtmd's encode time leaks into it.
    `--no-repack` where ggml's AMX kernels would run (they crash on this model's quantized weights)."""
    command = [str(MTMD_CLI), "-m", str(text), "--mmproj", str(mmproj), "--image", str(image), "-p", QUESTION,
               "-n", "1", "-t", str(threads), "--temp", "0", "-c", "4096", "-lv", "4",
               *(["--no-repack"] if amx_kernels_active() else [])]  # fmt: skip
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False)
    wall = (time.perf_counter() - started) * 1000
    log = completed.stdout + completed.stderr
    if completed.returncode:
        raise RuntimeError(f"llama-mtmd-cli exited {completed.returncode}: {log[-400:]}")
    encode = sum(float(v) for v in re.findall(r"(?:slice encoded|batch encoding done) in (\d+) ms", log))
    decode = sum(float(v) for v in re.findall(r"image decoded \(batch \d+/\d+\) in (\d+) ms", log))
    ttft = _stamp_ms(log, "llama_perf_context_print:") - _stamp_ms(log, "main: loading model")
    return {"ttft_ms": ttft, "encode_ms": encode, "image_decode_ms": decode, "wall_ms": wall}


def transformers_ttft(checkpoint: Path, dtype: str, images: dict[str, Path], threads: int) -> dict[str, float]:
    command = [
        str(REF_PY),
        "-m",
        "benchmarks.bench_transformers",
        str(checkpoint),
        "--dtype",
        dtype,
        "--threads",
        str(threads),
        "--ttft-only",
        *(a for image in images.values() for a in ("--image", str(image))),
    ]
    report = _subprocess_json(command)
    return {name: float(report["ttft_ms"][image.name]) for name, image in images.items()}


def _attempt(errors: dict[str, str], what: str, call: Any) -> Any:
    try:
        return call()
    except (RuntimeError, OSError, ValueError) as exc:
        errors[what] = str(exc).replace(str(ROOT) + "/", "")[-300:]
        print(f"bench_image: {what} failed: {errors[what]}", file=sys.stderr, flush=True)
        return None


def prefill_round(text: Path, mmproj: Path, image: Path, threads: int) -> dict[str, float]:
    """Prefill ms of the largest image's prompt (embeddings cached, so only the text model runs) per n_batch."""
    result = {}
    with tempfile.TemporaryDirectory() as name:
        for n_batch in (128, 256, 512):
            with _load(text, mmproj, threads, {"context": {"n_batch": n_batch}, "cache_dir": name}) as model:
                model.engine.prefix_store = None  # embeddings from the folder, the image's prefill evaluated
                ttft_ms(model, image)
                result[str(n_batch)] = ttft_ms(model, image)[1]["prefill_ms"]
    return result


def ttft_round(setup: Setup, folder: Path, index: int, errors: dict[str, str]) -> dict[str, Any]:
    """Every TTFT row once, each in a process of its own, one after the other."""
    spec = {"text": setup.text, "mmproj": setup.mmproj, "threads": setup.threads, "images": setup.images,
            "question": QUESTION, "backend": "mtmd", "cache": folder / f"cache-{index}"}  # fmt: skip
    row: dict[str, Any] = {"ours": _attempt(errors, "ours", lambda: ours_ttft(spec))}
    hit = {**spec, "question": FOLLOW_UP}
    row["ours cache hit"] = _attempt(errors, "ours cache hit", lambda: ours_ttft(hit))
    if setup.onnx is not None:
        onnx = {**spec, "backend": "onnx", "onnx": setup.onnx, "cache": None}
        row["ours onnx"] = _attempt(errors, "ours onnx", lambda: ours_ttft(onnx))
    if MTMD_CLI.exists():
        cli = {name: _attempt(errors, f"llama-mtmd-cli {name}",
                              lambda image=image: mtmd_cli_ttft(setup.text, setup.reference_mmproj, image,
                                                                setup.threads))
               for name, image in setup.images.items()}  # fmt: skip
        row["llama-mtmd-cli"] = cli
    if setup.checkpoint is not None and not REF_PY.exists():
        errors["transformers"] = "not measured: no reference venv (.venv-ref/bin/python; make reference)"
    elif setup.checkpoint is not None:
        for dtype in ("bf16", "f32"):
            row[f"transformers {dtype}"] = _attempt(errors, f"transformers {dtype}", lambda dtype=dtype:
                                                    transformers_ttft(setup.checkpoint, dtype, setup.images,
                                                                      setup.threads))  # fmt: skip
    return row


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quant", default="Q4_0", help="text model type in FOLDER")
    parser.add_argument("--sizes", default="512x385,1920x1080", help="images of the TTFT rows, WIDTHxHEIGHT")
    parser.add_argument("--transformers", type=Path, default=None, help="the HF checkpoint (reference venv rows)")
    parser.add_argument("--no-prefill", action="store_true", help="skip the n_batch sweep")
    parser.add_argument("--out", type=Path, default=Path("build/bench/image.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def _setup(args: argparse.Namespace, images: dict[str, Path]) -> Setup:
    found = files_in_folder(args.folder, args.quant)
    if found.mmproj is None:
        raise SystemExit(f"bench_image: no mmproj in {args.folder}")
    mmprojs = {weight_type_of(p) or p.name: p for p in sorted(args.folder.glob("mmproj*.gguf"))}
    # the int8 graph is the fast path the rows are about; fp32 only where no int8 file is there
    onnx = sorted(args.folder.glob("vision-*.onnx"), key=lambda path: not path.name.endswith("-int8.onnx"))
    return Setup(found.text, found.mmproj, mmprojs, mmprojs.get("Q8_0", found.mmproj),
                 onnx[0] if onnx else None, args.transformers, images,
                 args.threads or default_threads())  # fmt: skip


def main() -> int:
    args = _arguments()
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    started = time.perf_counter()
    rounds: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="lfm-edge-bench-image-") as name:
        folder = Path(name)
        sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
        setup = _setup(args, {f"{w}x{h}": _image(folder, w, h) for w, h in sizes})
        head = {"threads": setup.threads, "cpu_class": cpu_class(cpu_features(system_info())),
                "llama_cpp_system_info": system_info().strip(), "text": setup.text.name,
                "chosen_mmproj": setup.mmproj.name, "reference_mmproj": setup.reference_mmproj.name,
                "onnx": setup.onnx.name if setup.onnx else None, "no_repack": amx_kernels_active()}  # fmt: skip
        for index in range(args.rounds):
            print(f"bench_image: round {index + 1}/{args.rounds}", file=sys.stderr, flush=True)
            row: dict[str, Any] = {"encode": encode_round(setup.text, setup.mmprojs, setup.threads)}
            row["ttft"] = ttft_round(setup, folder, index, errors)
            if not args.no_prefill:
                row["prefill"] = prefill_round(setup.text, setup.mmproj, list(setup.images.values())[-1],
                                               setup.threads)  # fmt: skip
            rounds.append(row)
            # Written after every round, so a long run stopped early keeps what it measured.
            report = {**head, "rounds": len(rounds), "minutes": (time.perf_counter() - started) / 60,
                      **summarise(rounds), "errors": errors, "raw_rounds": rounds}  # fmt: skip
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print("\n".join(markdown_lines(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
