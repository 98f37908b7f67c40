"""The low-memory profile's memory goals and the cost of each of its choices (issue 19): peak RSS, TTFT and decode
speed describing a 1920x1080 image at n_ctx 4096 and a 512x512 image at n_ctx 2048, Q4_0 text + Q8_0 mmproj of the
full-size synthetic model; the default profile, the low-memory profile, and each low-memory choice alone.

    python -m benchmarks.bench_pi_profile TEXT_GGUF MMPROJ_GGUF [--out bench/pi_profile.json] [--rounds 1]

Each configuration is its own process (benchmarks/bench_rss.py), so each peak is its workload's alone; rounds are
interleaved and the median of each figure is reported. Goals: <= 450 MB (1920x1080, n_ctx 4096) and <= 350 MB
(512x512, n_ctx 2048) under the low-memory profile.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from lfm_edge.profiles import PROFILES, Profile

ROOT = Path(__file__).resolve().parents[1]
GOALS_MB = {("1920x1080", 4096): 450.0, ("512x512", 2048): 350.0}
# name -> (profile fields over the default, image size, n_ctx)
CONFIGS: dict[str, tuple[dict[str, Any], str, int]] = {  # the goals first: partial runs still answer them
    "low-memory 512x512 n_ctx 2048": ({"profile": "low-memory"}, "512x512", 2048),
    "default 512x512 n_ctx 2048": ({}, "512x512", 2048),
    "low-memory 1920x1080 n_ctx 4096": ({"profile": "low-memory"}, "1920x1080", 4096),
    "default 1920x1080 n_ctx 4096": ({}, "1920x1080", 4096),
    "only text weights mapped, dropped while encoding": ({"mapped_weights": True}, "1920x1080", 4096),
    "only mmproj freed after encoding": ({"transient_mmproj": True}, "1920x1080", 4096),
    "only ubatch 128": ({"n_batch": 128}, "1920x1080", 4096),
    "low-memory with a Q8_0 KV cache": (
        {"n_batch": 128, "transient_mmproj": True, "max_snapshots": 0, "mapped_weights": True, "kv_cache_type": "q8_0"},
        "1920x1080",
        4096,
    ),
}
# Run inside the child: registers the configuration as a profile named "bench", then runs bench_rss.
CHILD = """
import sys, json
from lfm_edge.profiles import PROFILES, Profile
PROFILES["bench"] = Profile("bench", **json.loads(sys.argv.pop(1)))
import benchmarks.bench_rss as b
sys.exit(b.main())
"""


EXTRA: list[str] = []  # arguments every bench_rss run gets (--no-extra-buffers)


def run_one(fields: dict[str, Any], image: Path, n_ctx: int, files: tuple[Path, Path]) -> dict[str, Any]:
    profile = fields.get("profile", "bench")
    overrides = {} if "profile" in fields else fields
    command = [sys.executable, "-c", CHILD, json.dumps(overrides), str(files[0]), "--mmproj", str(files[1]),
               "--image", str(image), "--n-ctx", str(n_ctx), "--profile", profile, *EXTRA]  # fmt: skip
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(float(run[key]) for run in runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", type=Path)
    parser.add_argument("mmproj", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "pi_profile.json")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-extra-buffers", action="store_true", help="passed to bench_rss (see there)")
    parser.add_argument("--only", nargs="*", help="run these configurations only (names as in CONFIGS)")
    args = parser.parse_args()
    if args.no_extra_buffers:
        EXTRA.append("--no-extra-buffers")
    for name in set(CONFIGS) - set(args.only or CONFIGS):
        del CONFIGS[name]
    assert isinstance(PROFILES["low-memory"], Profile)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="lfm-edge-pi-") as folder:
        images = {}
        for size in {size for _, size, _ in CONFIGS.values()}:
            width, height = (int(v) for v in size.split("x"))
            images[size] = Path(folder) / f"photo_{size}.jpg"
            where = str(images[size])
            code = (
                f"import benchmarks.bench_rss as b, pathlib; b.write_photo(pathlib.Path({where!r}), {width}, {height})"
            )
            subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        for _ in range(args.rounds):
            for name, (fields, size, n_ctx) in CONFIGS.items():
                runs[name].append(run_one(fields, images[size], n_ctx, (args.text, args.mmproj)))
                print(json.dumps({"config": name, **runs[name][-1]}), file=sys.stderr, flush=True)
    report: dict[str, Any] = {"model": args.text.name, "mmproj": args.mmproj.name, "rounds": args.rounds,
                              "no_extra_buffers": args.no_extra_buffers, "configs": {}}  # fmt: skip
    for name, (fields, size, n_ctx) in CONFIGS.items():
        summary: dict[str, Any] = {
            key: median_of(runs[name], key) for key in ("peak_rss_mb", "load_s", "ttft_s", "decode_tok_s")
        }
        summary.update(
            {"settings": fields, "image": size, "n_ctx": n_ctx, "prompt_tokens": runs[name][0]["prompt_tokens"]}
        )
        goal = GOALS_MB.get((size, n_ctx)) if fields.get("profile") == "low-memory" else None
        if goal is not None:
            summary["goal_mb"] = goal
            summary["goal_met"] = summary["peak_rss_mb"] <= goal
        report["configs"][name] = summary
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0 if all(c.get("goal_met", True) for c in report["configs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
