"""`make bench`: our runtime, raw llama.cpp and transformers side by side, in one run, same machine, same threads.

Full run (bench/results.json + bench/results.md, committed): the full-size synthetic checkpoint (random weights,
official shapes) as Q4_0 text + Q8_0 mmproj and as F16 + F16 mmproj. Each round measures, one after the other,
`lfm-edge bench --repeat 1` (ours), llama-bench pp512/tg128 and llama-mtmd-cli's slice encode (raw llama.cpp, built
by `make bench-reference`) for each variant, and transformers on CPU (f32, the reference venv) with the same
checkpoint; ratios are taken within a round, then the median over rounds (the machine may be shared: interleaving
keeps a slow spell from favouring one side). Then, once: peak RSS while describing a 1920x1080 image at n_ctx 4096
(ours: benchmarks.bench_rss; llama-mtmd-cli: benchmarks.measure) and transformers bf16; then the image path,
parallel clients, ONNX vision encoder and video captioning benchmarks, each with its own rounds.

Quick mode (`make bench QUICK=1`, CI): the tiny synthetic checkpoint converted to F16, pp64/tg16, one round; columns
whose tool is missing (no llama-ref build, no reference venv) are reported as not measured, not as failures.
Output: build/bench/quick/results.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import bench_reference as ref
from benchmarks.bench_rss import write_photo
from benchmarks.bench_table import format_markdown, summarise
from lfm_edge.bench import cpu_model
from lfm_edge.native.cpu import allowed_cpus, physical_cores

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "build" / "bench"
REF_PY = ROOT / ".venv-ref" / "bin" / "python"


@dataclass(frozen=True)
class Variant:
    name: str
    text: Path
    mmproj: Path


@dataclass(frozen=True)
class Plan:
    quick: bool
    rounds: int
    threads: int
    checkpoint: Path
    variants: tuple[Variant, ...]
    out_dir: Path


def _run_json(command: list[str]) -> dict[str, Any]:
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if completed.returncode:
        raise RuntimeError(f"{Path(command[0]).name} exited with {completed.returncode}: {completed.stderr[-400:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _attempt(what: str, errors: dict[str, str], call: Any) -> Any:
    """call() or None, with the failure recorded in errors (a reference tool failing must not stop the run)."""
    try:
        return call()
    except (RuntimeError, OSError, ValueError, subprocess.CalledProcessError) as exc:
        errors[what] = str(exc).replace(str(ROOT) + "/", "")[-300:]
        print(f"bench: {what} failed: {errors[what]}", file=sys.stderr)
        return None


def full_plan(rounds: int, threads: int) -> Plan:
    from benchmarks.bench_convert import run as convert_f16

    checkpoint = BENCH / "full-official-2.5"
    f16 = BENCH / "convert-out" / "ours" / "full-official-2.5-f16.gguf"
    if not f16.exists():
        convert_f16("f16", with_llama_cpp=False)
    quantized = BENCH / "quantized"
    q4, q8 = quantized / "full-official-2.5-Q4_0.gguf", quantized / "mmproj-full-official-2.5-Q8_0.gguf"
    int8 = quantized / "vision-full-official-2.5-int8.onnx"
    if not (q4.exists() and q8.exists() and int8.exists()):
        subprocess.run([str(Path(sys.executable).with_name("lfm-edge")), "quantize", str(checkpoint), "--types",
                        "Q4_0", "--mmproj-types", "Q8_0,F16,BF16", "--onnx", "--outdir", str(quantized),
                        "--no-report", "--force"], check=True)  # fmt: skip
    variants = (Variant("Q4_0 text + Q8_0 mmproj", q4, q8), Variant("F16 text + F16 mmproj", f16, ref.MMPROJ))
    return Plan(False, rounds, threads, checkpoint, variants, ROOT / "bench")


def quick_plan(threads: int) -> Plan:
    from convert.api import ConvertOptions, convert_checkpoint
    from convert.synthetic import CheckpointSpec, write_checkpoint

    folder = BENCH / "quick"
    checkpoint = folder / "tiny-official-2.5"
    text = folder / "tiny-official-2.5-f16.gguf"
    if not (text.exists() and (folder / "vision-tiny-official-2.5-int8.onnx").exists()):
        write_checkpoint(checkpoint, CheckpointSpec("tiny", "official-2.5"), force=True)
        convert_checkpoint(checkpoint, ConvertOptions(folder, "f16", force=True, quiet=True, onnx=True))
    variant = Variant("tiny F16 text + F16 mmproj", text, text.with_name(f"mmproj-{text.name}"))
    return Plan(True, 1, threads, checkpoint, (variant,), folder)


def _tokens(plan: Plan) -> tuple[int, int]:
    return (64, 16) if plan.quick else (512, 128)


def _variant_round(plan: Plan, variant: Variant, images: dict[str, Path], errors: dict[str, str]) -> dict[str, Any]:
    extra = ("--repeat", "1", "--image", str(images["ttft"]), *(("--quick",) if plan.quick else ()))
    ours = ref.ours(variant.text, variant.mmproj, plan.threads, extra)
    ours["settings"]["image"] = images["ttft"].name  # not this machine's temporary path
    row: dict[str, Any] = {"ours": ours}
    if ref.available():
        tokens = _tokens(plan)
        row["llama_bench"] = _attempt(f"llama-bench {variant.name}", errors,
                                      lambda: ref.llama_bench(variant.text, plan.threads, tokens))  # fmt: skip
        row["mtmd_slice_ms"] = _attempt(
            f"llama-mtmd-cli {variant.name}", errors,
            lambda: ref.mtmd_slice_ms(variant.text, variant.mmproj, images["tile"], plan.threads),
        )  # fmt: skip
    return row


def _transformers(plan: Plan, dtype: str, image: Path, errors: dict[str, str]) -> dict[str, Any] | None:
    command = [str(REF_PY), "-m", "benchmarks.bench_transformers", str(plan.checkpoint), "--image", str(image),
               "--dtype", dtype, "--threads", str(plan.threads), *(("--quick",) if plan.quick else ())]  # fmt: skip
    result: dict[str, Any] | None = _attempt(f"transformers {dtype}", errors, lambda: _run_json(command))
    return result


def _json_report(module: str, arguments: list[str], out: Path, drop: str = "") -> dict[str, Any]:
    """`python -m benchmarks.<module> ... --out OUT` in a process of its own; its report, less the `drop` key."""
    command = [sys.executable, "-m", f"benchmarks.{module}", *arguments, "--out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if completed.returncode:
        raise RuntimeError(f"{module} exited with {completed.returncode}: {completed.stderr[-400:]}")
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    report.pop(drop, None)
    return report


def _vision(plan: Plan) -> dict[str, Any]:
    """benchmarks.bench_image on the folder of the first variant: encode ms per crop for each mmproj type there,
    TTFT (512x385, 1920x1080) of ours (chosen type; mtmd and ONNX), llama-mtmd-cli and transformers, the cache hit
    in a second process, and image prefill by n_batch; its own rounds, interleaved."""
    variant = plan.variants[0]
    quant = "F16" if plan.quick else "Q4_0"
    arguments = [str(variant.text.parent), "--quant", quant, "--rounds", str(plan.rounds), "--threads",
                 str(plan.threads), *(() if plan.quick else ("--transformers", str(plan.checkpoint)))]  # fmt: skip
    return _json_report("bench_image", arguments, plan.out_dir / "image.json", drop="raw_rounds")


def _onnx_vision(plan: Plan) -> dict[str, Any]:
    """benchmarks.bench_vision beside the first variant's text model: encode ms per crop for every mmproj type and
    both ONNX files, interleaved; peak RSS of the ONNX path against the mtmd path."""
    from benchmarks.bench_vision import run_for_bench_all

    return run_for_bench_all(plan.variants[0].text, plan.rounds, plan.threads, plan.out_dir / "onnx_vision.json")


def _memory(plan: Plan) -> dict[str, Any]:
    """Peak RSS describing a 1920x1080 photo at n_ctx 4096, the first variant: ours (default and --low-memory
    profiles) and llama-mtmd-cli; each in a process of its own."""
    variant, tokens = plan.variants[0], 4 if plan.quick else 16
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="lfm-edge-bench-rss-") as name:
        image = write_photo(Path(name) / "photo_1920x1080.jpg", 1920, 1080)
        command = [sys.executable, "-m", "benchmarks.bench_rss", str(variant.text), "--mmproj", str(variant.mmproj),
                   "--image", str(image), "--n-ctx", "4096", "--threads", str(plan.threads),
                   "--max-tokens", str(tokens)]  # fmt: skip
        memory = {"variant": variant.name, "image": "1920x1080", "n_ctx": 4096, "goal_mb": 450,
                  "ours": _attempt("describe 1920x1080 (ours)", errors, lambda: _run_json(command)),
                  "ours_low_memory": _attempt("describe 1920x1080 (ours, --low-memory)", errors,
                                              lambda: _run_json([*command, "--profile", "low-memory"]))}  # fmt: skip
        if ref.available():
            options = (4096, plan.threads, tokens)
            memory["llama_mtmd_cli"] = _attempt(
                "describe 1920x1080 (llama-mtmd-cli)", errors,
                lambda: ref.mtmd_describe(variant.text, variant.mmproj, image, options),
            )  # fmt: skip
    if errors and not (memory["ours"] or memory["ours_low_memory"]):
        raise RuntimeError("; ".join(f"{what}: {why}" for what, why in errors.items()))
    memory["errors"] = errors
    return memory


def _machine(plan: Plan, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    system = rounds[0]["variants"][0]["ours"]["system"]
    allowed = allowed_cpus()
    try:
        cores = physical_cores(Path("/proc/cpuinfo").read_text(encoding="utf-8"), allowed)
    except OSError:
        cores = None
    commits = [row.get("llama_bench") or {} for rnd in rounds for row in rnd["variants"]]
    return {"cpu": cpu_model(), "logical_cpus": len(allowed) if allowed else None, "physical_cores": cores,
            "threads": plan.threads, "llama_cpp_system_info": system["llama_cpp_system_info"],
            "llama_cpp_python": system["llama_cpp_python"],
            "llama_cpp_commit": next((c["build_commit"] for c in commits if c.get("build_commit")), None),
            "reference_build": "build/llama-ref: cmake Release, default flags (GGML_NATIVE=ON, OpenMP)",
            "date": time.strftime("%Y-%m-%d")}  # fmt: skip


def missing_tools() -> dict[str, str]:
    """Columns that cannot be measured on this machine, and why."""
    missing = {}
    if not ref.available():
        missing["llama.cpp"] = "not measured: no build/llama-ref/bin/llama-bench, llama-mtmd-cli (make bench-reference)"
    if not REF_PY.exists():
        missing["transformers"] = "not measured: no reference venv .venv-ref (make reference)"
    return missing


def _parallel(plan: Plan) -> dict[str, Any]:
    """benchmarks.bench_parallel on the F16 text model (the last variant): aggregate decode tok/s with 1, 2 and 4
    clients through `lfm-edge serve --parallel 4` beside llama-server -np 4; its own rounds, interleaved."""
    out = (plan.out_dir if plan.quick else BENCH) / "parallel.json"
    arguments = [str(plan.variants[-1].text), "--rounds", str(plan.rounds), "--threads", str(plan.threads),
                 *(("--tokens", "16") if plan.quick else ())]  # fmt: skip
    return _json_report("bench_parallel", arguments, out, drop="samples")


def _video(plan: Plan) -> dict[str, Any]:
    """benchmarks.bench_video on its own models (Q4_0 + Q8_0 mmproj + ONNX int8; the tiny model in quick mode): live
    captions/s and lag, file mode's video seconds per wall second, a static scene's CPU share."""
    arguments = ["--threads", str(plan.threads), *(("--quick", "--choice-rounds", "0") if plan.quick else ())]
    return _json_report("bench_video", arguments, plan.out_dir / "video.json")


# The benchmarks with rounds of their own, run after the interleaved rounds: report key -> (what, runner).
SECTIONS: dict[str, tuple[str, Any]] = {
    "memory": ("peak RSS (bench_rss)", _memory),
    "vision": ("image path (bench_image)", _vision),
    "parallel": ("parallel clients (bench_parallel)", _parallel),
    "onnx_vision": ("ONNX vision encoder (bench_vision)", _onnx_vision),
    "video": ("video captioning (bench_video)", _video),
}


def refresh(plan: Plan, keys: list[str]) -> dict[str, Any]:
    """The committed report with only the named sections measured again (e.g. after a change that touches one)."""
    report: dict[str, Any] = json.loads((plan.out_dir / "results.json").read_text(encoding="utf-8"))
    errors = report.setdefault("errors", {})
    for key in keys:
        what, call = SECTIONS[key]
        errors.pop(what, None)
        report[key] = _attempt(what, errors, lambda call=call: call(plan))
    report.setdefault("refreshed", {}).update({key: time.strftime("%Y-%m-%d") for key in keys})
    return report


def run(plan: Plan) -> dict[str, Any]:
    errors: dict[str, str] = {}
    missing = missing_tools()
    with tempfile.TemporaryDirectory(prefix="lfm-edge-bench-all-") as name:
        folder = Path(name)
        images = {"tile": ref.random_image(folder, 512, 512), "ttft": ref.random_image(folder, 512, 385)}
        rounds = []
        for index in range(plan.rounds):
            print(f"bench: round {index + 1}/{plan.rounds}", file=sys.stderr, flush=True)
            row: dict[str, Any] = {"variants": [_variant_round(plan, v, images, errors) for v in plan.variants]}
            if "transformers" not in missing:
                row["transformers_f32"] = _transformers(plan, "f32", images["ttft"], errors)
            rounds.append(row)
        sections = {key: _attempt(what, errors, lambda call=call: call(plan)) for key, (what, call) in SECTIONS.items()}
        extra = {}
        if "transformers" not in missing and not plan.quick:
            extra["bf16"] = _transformers(plan, "bf16", images["ttft"], errors)
    results = summarise(plan.variants, rounds, extra)
    return {"quick": plan.quick, "rounds": plan.rounds, "machine": _machine(plan, rounds),
            **sections, "not_measured": missing, "errors": errors, **results, "raw_rounds": rounds}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model, pp64/tg16, one round (CI)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: one per physical core, up to 8")
    parser.add_argument("--only", default=None, help=f"measure only these sections again, comma-separated, into the "
                        f"existing results.json: {', '.join(SECTIONS)}")  # fmt: skip
    args = parser.parse_args()
    only = [key.strip() for key in args.only.split(",")] if args.only else []
    if unknown := [key for key in only if key not in SECTIONS]:
        parser.error(f"--only {','.join(unknown)}: not a section; choose from {', '.join(SECTIONS)}")
    from lfm_edge.native.cpu import default_threads

    threads = args.threads or default_threads()
    plan = quick_plan(threads) if args.quick else full_plan(args.rounds, threads)
    report = refresh(plan, only) if only else run(plan)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    (plan.out_dir / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = format_markdown(report)
    (plan.out_dir / "results.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
