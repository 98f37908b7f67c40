"""Fuzz run (`make fuzz-parsers`): 100,000 generated inputs through each output parser, counts and time to JSON.

Parsers: parse_assistant_output, ToolCallStreamFilter (each input fed over a random split), parse_detections and
parse_literal. Two passes:

1. seeded (always): :mod:`benchmarks.fuzz_inputs` makes valid tool-call messages, detection answers and literals,
   mutations, truncations, splices and random Unicode, mostly of the parser's own kind (85%) and sometimes of the
   others'; :mod:`benchmarks.fuzz_checks` asserts the contracts, round trips of valid samples included;
2. atheris (when installed; ``--no-atheris`` skips it): coverage-guided libFuzzer runs of the same checks, one
   subprocess per parser (:mod:`benchmarks.fuzz_atheris`), started from a corpus of seeded samples.

The exit status is 1 when any input broke a contract or raised anything but parse_literal's ParseError; the first
failures are in the report.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.fuzz_checks import CHECKS, Check
from benchmarks.fuzz_inputs import InputGenerator, Sample

ROOT = Path(__file__).resolve().parents[1]
OWN_KIND_SHARE = 0.85
_MAX_FAILURES_KEPT = 5
_EXCERPT_CHARS = 300


def _valid_makers(generator: InputGenerator) -> dict[str, Callable[[], Sample]]:
    return {
        "parse_assistant_output": generator.message,
        "ToolCallStreamFilter": generator.message,
        "parse_detections": generator.detection_answer,
        "parse_literal": generator.literal,
    }


def next_sample(generator: InputGenerator, parser: str) -> Sample:
    """A sample mostly of ``parser``'s own kind (valid or damaged), sometimes of another parser's."""
    makers = _valid_makers(generator)
    own = makers[parser]
    if generator.rng.random() < OWN_KIND_SHARE:
        return generator.sample(own)
    other = generator.sample(generator.rng.choice(list(makers.values())))
    return Sample(other.text)  # what it parses to is known only for the parser of its kind


def run_seeded(parser: str, check: Check, count: int, seed: int) -> dict[str, Any]:
    """``count`` generated inputs through ``check``; outcome counts, failures, time and the slowest input."""
    generator = InputGenerator(seed)
    outcomes: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    in_parser = slowest = 0.0
    slowest_chars = characters = round_trips = 0
    started = time.perf_counter()
    for index in range(count):
        sample = next_sample(generator, parser)
        characters += len(sample.text)
        round_trips += sample.expected is not None
        before = time.perf_counter()
        try:
            outcomes[check(sample, generator.rng)] += 1
        except Exception as error:  # every other exception is the failure being looked for
            outcomes["FAILURE"] += 1
            if len(failures) < _MAX_FAILURES_KEPT:
                failures.append({"index": index, "error": f"{type(error).__name__}: {error}"[:_EXCERPT_CHARS]})
                failures[-1]["input"] = repr(sample.text[:_EXCERPT_CHARS])
        elapsed = time.perf_counter() - before
        in_parser += elapsed
        if elapsed > slowest:
            slowest, slowest_chars = elapsed, len(sample.text)
    return {
        "inputs": count,
        "valid_inputs_round_tripped": round_trips,
        "characters": characters,
        "seconds_total": round(time.perf_counter() - started, 3),
        "seconds_in_checks": round(in_parser, 3),
        "slowest_input_ms": round(slowest * 1e3, 3),
        "slowest_input_chars": slowest_chars,
        "outcomes": dict(outcomes.most_common()),
        "failures": outcomes["FAILURE"],
        "first_failures": failures,
    }


def _write_corpus(folder: Path, parser: str, seed: int, size: int) -> None:
    generator = InputGenerator(seed)
    for index in range(size):
        text = next_sample(generator, parser).text
        (folder / f"seed-{index:04d}").write_bytes(text.encode("utf-8", "surrogatepass"))


def _libfuzzer_stat(output: str, name: str) -> int | None:
    match = re.search(rf"stat::{name}:\s*(\d+)", output)
    return int(match.group(1)) if match else None


def run_atheris(parser: str, runs: int, seed: int, timeout_s: float) -> dict[str, Any]:
    """One libFuzzer process for ``parser``: ``runs`` executions, seeded corpus, crash input kept in the report."""
    with tempfile.TemporaryDirectory(prefix="fuzz-atheris-") as temporary:
        corpus, artifacts = Path(temporary, "corpus"), Path(temporary, "artifacts")
        corpus.mkdir()
        artifacts.mkdir()
        _write_corpus(corpus, parser, seed, 200)
        flags = [f"-runs={runs}", f"-seed={seed + 1}", "-max_len=4096", "-timeout=10", "-print_final_stats=1"]
        command = [sys.executable, "-m", "benchmarks.fuzz_atheris", parser, *flags, f"-artifact_prefix={artifacts}/"]
        started = time.perf_counter()
        try:
            completed = subprocess.run(
                [*command, str(corpus)],
                check=False,
                cwd=ROOT,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return {"runs_requested": runs, "error": f"did not finish within {timeout_s} s", "failures": 1}
        seconds = time.perf_counter() - started
        crashes = [repr(path.read_bytes()) for path in sorted(artifacts.iterdir())]  # at most -max_len bytes
    report: dict[str, Any] = {
        "runs_requested": runs,
        "executed": _libfuzzer_stat(completed.stderr, "number_of_executed_units"),
        "new_coverage_units": _libfuzzer_stat(completed.stderr, "new_units_added"),
        "seconds": round(seconds, 3),
        "exit_status": completed.returncode,
        "failures": int(completed.returncode != 0),
        "crash_inputs": crashes,
    }
    if completed.returncode:
        report["stderr_tail"] = completed.stderr[-6000:]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="generated inputs per parser (seeded pass)")
    parser.add_argument("--atheris-runs", type=int, default=100_000, help="libFuzzer executions per parser")
    parser.add_argument("--no-atheris", action="store_true", help="skip the atheris pass even when installed")
    parser.add_argument("--seed", type=int, default=20250601)
    parser.add_argument("--out", type=Path, default=Path("build/bench/fuzz.json"))
    args = parser.parse_args()
    report: dict[str, Any] = {
        "what": "generated inputs through each parser; any exception but parse_literal's ParseError is a failure",
        "environment": {"python": platform.python_version(), "machine": platform.machine()},
        "seed": args.seed,
        "seeded": {},
    }
    for offset, (name, check) in enumerate(CHECKS.items()):
        result = run_seeded(name, check, args.count, args.seed + offset)
        report["seeded"][name] = result
        print(
            f"seeded  {name}: {result['inputs']:,} inputs in {result['seconds_total']} s, {result['failures']} failures"
        )
    if args.no_atheris:
        report["atheris"] = {"skipped": "--no-atheris"}
    elif importlib.util.find_spec("atheris") is None:
        report["atheris"] = {
            "skipped": "atheris is not installed (pip install atheris to add the coverage-guided pass)"
        }
    else:
        report["atheris"] = {}
        for offset, name in enumerate(CHECKS):
            result = run_atheris(name, args.atheris_runs, args.seed + offset, timeout_s=1800)
            report["atheris"][name] = result
            runs, seconds = result.get("executed"), result.get("seconds")
            print(f"atheris {name}: {runs} runs in {seconds} s, {result['failures']} failures")
    failures = sum(result["failures"] for result in report["seeded"].values())
    failures += sum(result["failures"] for result in report["atheris"].values() if isinstance(result, dict))
    report["total_failures"] = failures
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
    print(f"{failures} failure(s); written to {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
