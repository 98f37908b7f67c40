"""Where the bytes of an image description are: the resident set and its peak in each phase (issue 19).

    python -m benchmarks.bench_pi_phases TEXT_GGUF MMPROJ_GGUF IMAGE [--n-ctx 4096] [--profile low-memory]

Each phase's peak is measured alone: at every phase boundary the kernel's high-water mark is reset
(/proc/self/clear_refs, "5"), so `peak_mb` is the most that phase held, and the phase with the largest one sets the
process's peak. Phases: imports; text model and context; mmproj opened; crops encoded; mmproj freed; prefill
(the prompt's embeddings and tokens through the text model); decode. Prints one JSON object. Linux only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import lfm_edge.model as api
from lfm_edge import profiles
from lfm_edge.generation import GenerationOptions
from lfm_edge.native import text as native_text
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.vision import mtmd

PHASES: list[dict[str, Any]] = []


def _status() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = round(int(rest.split()[0]) / 1024, 1)
    return fields


def mark(phase: str) -> None:
    """Closes `phase`: its peak (the high-water mark since the last mark) and what stays resident after it."""
    status = _status()
    PHASES.append({"phase": phase, "peak_mb": status["VmHWM"], "after_mb": status["VmRSS"],
                   "anon_mb": status["RssAnon"], "file_mb": status["RssFile"]})  # fmt: skip
    Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")


def _wrap(owner: Any, name: str, before: str | None = None, after: str | None = None, once: bool = False) -> None:
    original = getattr(owner, name)
    done: list[bool] = []

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        first = not done
        if before and (first or not once):
            mark(before)
        result = original(*args, **kwargs)
        if after and (first or not once):
            mark(after)
        done.append(True)
        return result

    setattr(owner, name, wrapped)


def _mark_prefill_end() -> None:
    """The first one-token decode starts the generation: everything before it was the prompt's prefill."""
    original = native_text.TextModel._decode
    seen: list[bool] = []

    def decode(self: Any, batch: Any) -> None:
        if not seen and batch.n_tokens == 1:
            seen.append(True)
            mark("prefill")
        original(self, batch)

    native_text.TextModel._decode = decode  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", type=Path)
    parser.add_argument("mmproj", type=Path)
    parser.add_argument("image", type=Path)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--profile", default="low-memory")
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--kv-cache-type", help="overrides the profile's (f16, q8_0)")
    parser.add_argument("--n-batch", type=int, default=512, help="the ubatch (the profile may lower it)")
    args = parser.parse_args()
    mark("imports")
    _wrap(mtmd.VisionEncoder, "__init__", before="text model and context (up to the mmproj)", after="mmproj opened")
    _wrap(profiles.TransientVisionEncoder, "release", before="crops encoded", after="mmproj freed", once=True)
    _mark_prefill_end()
    context = native_text.ContextOptions(
        n_ctx=args.n_ctx, n_threads=args.threads, kv_cache_type=args.kv_cache_type, n_batch=args.n_batch
    )
    options = api.LoadOptions(context=context, mmproj=args.mmproj, profile=args.profile)
    with api.load(args.text, options) as model:
        generation = GenerationOptions(max_tokens=args.max_tokens, sampling=SamplingParams(temperature=0))
        completion = model.generate("Describe this image.", [args.image], generation)
        mark("decode")
    largest = max(PHASES, key=lambda phase: phase["peak_mb"])
    report = {"profile": args.profile, "n_ctx": args.n_ctx, "kv_cache_type": model.text.options.kv_cache_type,
              "n_batch": model.text.n_batch, "image": args.image.name, "model": args.text.name,
              "mmproj": args.mmproj.name, "prompt_tokens": completion.prompt_tokens, "phases": PHASES,
              "peak_mb": largest["peak_mb"], "peak_phase": largest["phase"]}  # fmt: skip
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
