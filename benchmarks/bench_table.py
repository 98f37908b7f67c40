"""`make bench`'s summary (medians over rounds, ratios within a round) and its Markdown table (bench/results.md)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

GOALS = {"pp": 0.97, "tg": 0.97, "encode": 0.97, "followup": 0.10, "vs_transformers_tg": 8.5,
         "vs_transformers_rss": 1 / 3, "describe_rss_mb": 450}  # fmt: skip
_OURS = ("load_s", "prompt_tok_s", "decode_tok_s", "tile_encode_ms", "thumbnail_encode_ms", "ttft_ms",
         "followup_ttft_ms")  # fmt: skip
_TRANSFORMERS = ("load_s", "prompt_tok_s", "decode_tok_s", "ttft_ms")


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return float(statistics.median(present)) if present else None


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def _per_round(rows: list[dict[str, Any]], pick: Callable[[dict[str, Any]], float | None]) -> float | None:
    return _median([pick(row) for row in rows])


def _ours(row: dict[str, Any], key: str) -> float:
    value: float = row["ours"]["figures"][key]["median"]
    return value


def _llama(row: dict[str, Any], key: str) -> float | None:
    if key == "slice_encode_ms":
        return row.get("mtmd_slice_ms")
    bench = row.get("llama_bench") or {}
    return bench.get(key)


def _ours_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ours: dict[str, Any] = {key: _median([_ours(row, key) for row in rows]) for key in _OURS}
    bounds = [row["ours"]["decode_bound"] for row in rows]
    ours["peak_rss_mb"] = max(row["ours"]["peak_rss_mb"] for row in rows)
    ours["decode_bound_tok_s"] = _median([bound["bound_tok_s"] for bound in bounds])
    ours["read_gb_s"] = _median([bound["read_gb_s"] for bound in bounds])
    ours["bytes_per_token"] = bounds[0]["bytes_per_token"]
    return ours


def _ratios(rows: list[dict[str, Any]], transformers: list[dict[str, Any] | None]) -> dict[str, float | None]:
    def within(
        top: Callable[[dict[str, Any]], float | None], bottom: Callable[[dict[str, Any]], float | None]
    ) -> float | None:
        return _median([_ratio(top(row), bottom(row)) for row in rows])

    def best(key: str, ours_key: str, faster: Callable[[list[float]], float]) -> float | None:
        theirs = [value for value in (_llama(row, key) for row in rows) if value is not None]
        mine = faster([_ours(row, ours_key) for row in rows])
        return _ratio(mine, faster(theirs)) if theirs else None

    pairs = [(row, run) for row, run in zip(rows, transformers, strict=True) if run]
    encode_best = best("slice_encode_ms", "tile_encode_ms", min)
    return {
        "best_pp_ours_over_llama_bench": best("prompt_tok_s", "prompt_tok_s", max),
        "best_tg_ours_over_llama_bench": best("decode_tok_s", "decode_tok_s", max),
        "best_encode_speed_ours_over_mtmd_cli": 1 / encode_best if encode_best else None,
        "pp_ours_over_llama_bench": within(lambda r: _ours(r, "prompt_tok_s"), lambda r: _llama(r, "prompt_tok_s")),
        "tg_ours_over_llama_bench": within(lambda r: _ours(r, "decode_tok_s"), lambda r: _llama(r, "decode_tok_s")),
        "encode_speed_ours_over_mtmd_cli": within(lambda r: _llama(r, "slice_encode_ms"),
                                                  lambda r: _ours(r, "tile_encode_ms")),
        "followup_over_first_ttft": within(lambda r: _ours(r, "followup_ttft_ms"), lambda r: _ours(r, "ttft_ms")),
        "tg_ours_over_transformers_f32": _median(
            [_ratio(_ours(row, "decode_tok_s"), run["figures"]["decode_tok_s"]["median"]) for row, run in pairs]
        ),
        "rss_ours_over_transformers_f32": _median(
            [_ratio(row["ours"]["peak_rss_mb"], run["peak_rss_mb"]) for row, run in pairs]
        ),
    }  # fmt: skip


def _variant(variant: Any, rows: list[dict[str, Any]], transformers: list[dict[str, Any] | None]) -> dict[str, Any]:
    llama = {
        key: _median([_llama(row, key) for row in rows]) for key in ("prompt_tok_s", "decode_tok_s", "slice_encode_ms")
    }
    measured = any(value is not None for value in llama.values())
    return {"name": variant.name, "text": variant.text.name, "mmproj": variant.mmproj.name,
            "ours": _ours_figures(rows), "llama_cpp": llama if measured else None,
            "ratios": _ratios(rows, transformers)}  # fmt: skip


def _transformers(runs: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    present = [run for run in runs if run]
    if not present:
        return None
    summary: dict[str, Any] = {
        key: _median([run["figures"][key]["median"] for run in present]) for key in _TRANSFORMERS
    }
    summary.update({"peak_rss_mb": max(run["peak_rss_mb"] for run in present), "runs": len(present),
                    "torch": present[0]["torch"], "transformers": present[0]["transformers"]})  # fmt: skip
    return summary


def summarise(variants: Sequence[Any], rounds: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    """Medians over rounds of each figure, and of each ratio taken within its round."""
    f32_runs = [row.get("transformers_f32") for row in rounds]
    out = [_variant(v, [row["variants"][i] for row in rounds], f32_runs) for i, v in enumerate(variants)]
    transformers = {"f32": _transformers(f32_runs), **{dtype: _transformers([run]) for dtype, run in extra.items()}}
    return {"variants": out, "transformers": {k: v for k, v in transformers.items() if v is not None}}


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if value >= 1000 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return f"{text}{unit}"


def _with_best(ratio: str, best: float | None) -> str:
    return ratio if best is None else f"{ratio}; best vs best {best:.2f}"


def _goal(value: float | None, goal: float, at_least: bool = True) -> str:
    if value is None:
        return "—"
    met = value >= goal if at_least else value <= goal
    return f"{value:.2f} (goal {'≥' if at_least else '≤'} {goal:.2f}{'' if met else ', not met'})"


def _rows(variant: dict[str, Any], transformers: dict[str, Any], goals: bool) -> list[list[str]]:
    """The variant's table; `goals`: the transformers goals apply to it (the issue sets them for Q4_0)."""
    ours, llama, ratios = variant["ours"], variant["llama_cpp"] or {}, variant["ratios"]
    dtypes = sorted(transformers)
    tf = {key: [_num(transformers[d].get(key)) for d in dtypes] for key in (*_TRANSFORMERS, "peak_rss_mb")}
    blank = ["—"] * len(dtypes)
    share = ours["decode_tok_s"] / ours["decode_bound_tok_s"]
    bound = (f"{_num(ours['decode_bound_tok_s'])} ({ours['bytes_per_token'] / 2**20:.0f} MB/token ÷ "
             f"{ours['read_gb_s']:.1f} GB/s; tg at {share:.0%})")  # fmt: skip
    follow_ratio = _goal(ratios["followup_over_first_ttft"], GOALS["followup"], at_least=False)
    follow = f"{_num(ours['followup_ttft_ms'])}: {follow_ratio} of the first turn's"
    vs_tg, vs_rss = ratios["tg_ours_over_transformers_f32"], ratios["rss_ours_over_transformers_f32"]
    tf_tg = _goal(vs_tg, GOALS["vs_transformers_tg"]) if goals else _num(vs_tg)
    tf_rss = _goal(vs_rss, GOALS["vs_transformers_rss"], at_least=False) if goals else _num(vs_rss)
    speed = " speed" if ratios["encode_speed_ours_over_mtmd_cli"] is not None else ""
    pp_cell = _with_best(
        _goal(ratios["pp_ours_over_llama_bench"], GOALS["pp"]), ratios["best_pp_ours_over_llama_bench"]
    )
    tg_cell = _with_best(
        _goal(ratios["tg_ours_over_llama_bench"], GOALS["tg"]), ratios["best_tg_ours_over_llama_bench"]
    )
    return [
        ["model load (s)", _num(ours["load_s"]), "—", *tf["load_s"], "", ""],
        ["pp (tok/s)", _num(ours["prompt_tok_s"]), _num(llama.get("prompt_tok_s")), *tf["prompt_tok_s"],
         pp_cell, ""],
        ["tg (tok/s)", _num(ours["decode_tok_s"]), _num(llama.get("decode_tok_s")), *tf["decode_tok_s"],
         tg_cell, tf_tg],
        ["encode one 512x512 tile (ms)", _num(ours["tile_encode_ms"]), _num(llama.get("slice_encode_ms")), *blank,
         _with_best(_goal(ratios["encode_speed_ours_over_mtmd_cli"], GOALS["encode"]) + speed,
                    ratios["best_encode_speed_ours_over_mtmd_cli"]), ""],
        ["encode the 512x384 thumbnail (ms)", _num(ours["thumbnail_encode_ms"]), "—", *blank, "", ""],
        ["TTFT 512x385 image + question (ms)", _num(ours["ttft_ms"]), "—", *tf["ttft_ms"], "", ""],
        ["TTFT follow-up on the same image (ms)", follow, "—", *blank, "", ""],
        ["peak RSS of the run (MB)", _num(ours["peak_rss_mb"]), "—", *tf["peak_rss_mb"], "", tf_rss],
        ["decode bound (tok/s)", bound, "—", *blank, "", ""],
    ]  # fmt: skip


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _memory_lines(memory: dict[str, Any]) -> list[str]:
    ours, theirs = memory.get("ours") or {}, memory.get("llama_mtmd_cli") or {}
    low = memory.get("ours_low_memory") or {}
    stages = ours.get("resident_mb") or {}
    detail = ", ".join(f"{name} {_num(value)}" for name, value in stages.items())
    what = f"describe a {memory['image']} image, n_ctx {memory['n_ctx']}, {memory['variant']}"
    goal = memory["goal_mb"]
    rows = [[what, _num(ours.get("peak_rss_mb")), _num(theirs.get("peak_rss_mb")), _goal_mb(ours, goal)]]
    if "ours_low_memory" in memory:
        rows.append(["the same, `--low-memory`", _num(low.get("peak_rss_mb")), "", _goal_mb(low, goal)])
    lines = _table(["peak RSS (MB)", "lfm_edge", "llama-mtmd-cli", "goal"], rows)
    if ours:
        lines.append(f"\nlfm_edge: {ours.get('prompt_tokens')} prompt tokens; resident MB after each stage: {detail}.")
    lines += [f"\n{what} failed: {why}" for what, why in (memory.get("errors") or {}).items()]
    return lines


def _goal_mb(figures: dict[str, Any], goal: float) -> str:
    peak = figures.get("peak_rss_mb")
    return f"≤ {goal}" if peak is None else f"≤ {goal}: {'met' if peak <= goal else 'not met'}"


def format_markdown(report: dict[str, Any]) -> str:
    machine, transformers = report["machine"], report["transformers"]
    lines = [f"# lfm-edge bench{' (quick mode: a smoke test, not a measurement)' if report['quick'] else ''}", "",
             f"{machine['cpu']}, {machine['logical_cpus']} logical CPUs ({machine['physical_cores']} physical cores), "
             f"{machine['threads']} threads on every side; {report['rounds']} round(s), each figure's median; ratios "
             f"within a round, then their median (and best round vs best round: a busy spell only slows a side down). "
             f"llama.cpp {machine['llama_cpp_commit'] or '(commit unknown)'} "
             f"(llama-cpp-python {machine['llama_cpp_python']}; reference build: {machine['reference_build']}): "
             f"`{machine['llama_cpp_system_info']}`. {machine['date']}.", ""]  # fmt: skip
    dtypes = sorted(transformers)
    header = ["figure", "lfm_edge", "raw llama.cpp", *(f"transformers {d}" for d in dtypes), "lfm_edge / llama.cpp",
              "lfm_edge / transformers f32"]  # fmt: skip
    for index, variant in enumerate(report["variants"]):
        lines += [f"## {variant['name']} (`{variant['text']}`, `{variant['mmproj']}`)", ""]
        lines += [*_table(header, _rows(variant, transformers, goals=index == 0)), ""]
    if report.get("memory"):
        lines += ["## Memory", "", *_memory_lines(report["memory"]), ""]
    if report.get("vision"):
        lines += ["## Image path (benchmarks/bench_image.py)", "", *vision_lines(report["vision"]), ""]
    if report.get("parallel"):
        lines += ["## Parallel clients (benchmarks/bench_parallel.py)", "", *parallel_lines(report["parallel"]), ""]
    if report.get("onnx_vision"):
        from benchmarks.bench_vision_report import bench_all_lines

        lines += ["## ONNX vision encoder (benchmarks/bench_vision.py)", "",
                  *bench_all_lines(report["onnx_vision"], report.get("vision")), ""]  # fmt: skip
    if report.get("video"):
        from benchmarks.bench_video import format_table as video_table

        lines += ["## Video captioning (benchmarks/bench_video.py)", "", video_table(report["video"]), ""]
    notes = [f"- {tool}: {why}" for tool, why in report["not_measured"].items()]
    notes += [f"- measured again on {day} (`make bench ONLY={key}`): the {key} section" for key, day in
              report.get("refreshed", {}).items()]  # fmt: skip
    notes += [f"- {what} failed: {why}" for what, why in report["errors"].items()]
    if transformers:
        first = next(iter(transformers.values()))
        notes.append(f"- transformers {first['transformers']}, torch {first['torch']}, CPU, same checkpoint folder.")
    if "llama.cpp" not in report["not_measured"]:
        notes.append(
            "- raw llama.cpp: pp/tg from llama-bench, tile encode from llama-mtmd-cli's log, RSS of llama-mtmd-cli."
        )
    if transformers and not report["quick"]:
        notes.append("- the goals against transformers (≥ 8.5x its f32 decode, ≤ 1/3 of its peak RSS) are Q4_0's.")
    return "\n".join([*lines, "Notes:", "", *notes, ""])


def vision_lines(vision: dict[str, Any]) -> list[str]:
    """The image path's rows: benchmarks.bench_image_report builds them."""
    from benchmarks.bench_image_report import markdown_lines

    return markdown_lines(vision)


def parallel_lines(parallel: dict[str, Any]) -> list[str]:
    """Aggregate decode tok/s by concurrent clients, ours beside llama-server, and the two goals."""
    rates, versus = parallel["aggregate_tok_s"], parallel.get("ours_over_llama_server") or {}
    kinds = list(rates)
    header = ["clients", *(f"{kind} (tok/s)" for kind in kinds), *(f"{kind} / 1 client" for kind in kinds),
              "ours / llama-server"]  # fmt: skip
    scaling = parallel["scaling_over_1_client"]
    rows = [[str(n), *(_num(rates[k][n]) for k in kinds), *(_num(scaling[k][n]) for k in kinds), _num(versus.get(n))]
            for n in rates["ours"]]  # fmt: skip
    goals = ", ".join(f"{goal}: {'met' if met else 'not met' if met is not None else 'not measured'}"
                      for goal, met in parallel["goals"].items())  # fmt: skip
    return [*_table(header, rows), "", f"`{parallel['model']}`, {parallel['tokens_per_client']} greedy tokens per "
            f"client (end of text banned), {parallel['threads']} threads, --parallel 4 / -np 4, {parallel['rounds']} "
            f"interleaved round(s), medians; prefill of a ~20-token prompt included. Goals: {goals}."]  # fmt: skip
