"""The `lfm-edge` command line. Each command only parses options and calls library functions; every
LfmEdgeError becomes a one-line `error: ...` on stderr and exit status 1, never a traceback."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from lfm_edge import __version__
from lfm_edge.cli.errors import friendly_errors as _friendly_errors
from lfm_edge.cli.model import caption, chat, info, run
from lfm_edge.cli.serve import serve
from lfm_edge.cli.skills import detect, tools
from lfm_edge.cli.watch import watch


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lfm-edge")
@click.option("--verbose", "-v", is_flag=True, help="Show info logs and llama.cpp's own log output.")
@click.option("--quiet", "-q", is_flag=True, help="Only results and errors (no timings, no warnings).")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Run LFM2.5-VL-450M on the edge: convert checkpoints to GGUF and run them over llama.cpp."""
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    ctx.obj = {"verbose": verbose, "quiet": quiet}


@main.command()
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", type=click.Choice(["tiny", "full"]), default="tiny", show_default=True)
@click.option(
    "--layout",
    type=click.Choice(["official-2.5", "lfm2-vl", "resaved-5.23"]),
    default="official-2.5",
    show_default=True,
    help="Tensor-name layout: the official LFM2.5-VL release, LFM2-VL-450M, or a transformers 5.23 re-save.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights.")
@click.option("--force", is_flag=True, help="Replace OUTDIR if it exists.")
@click.option(
    "--model",
    type=click.Choice(["LFM2.5-VL-450M", "LFM2-VL-450M"]),
    default=None,
    help="An official model's files (sets --layout); name OUTDIR after it, converters name the GGUF from it.",
)
@_friendly_errors
def synthetic(outdir: Path, size: str, layout: str, seed: int, force: bool, model: str | None) -> None:
    """Write a synthetic checkpoint (official file layout, random weights) to OUTDIR.

    Needs the `synthetic` extra (tokenizers, safetensors).
    """
    from convert.synthetic import MODEL_LAYOUTS, CheckpointSpec, describe, write_checkpoint

    layout = MODEL_LAYOUTS[model] if model else layout
    path = write_checkpoint(outdir, CheckpointSpec(size, layout, seed), force=force)
    click.echo(describe(path))


@main.command()
@click.argument("model")
@click.option(
    "--outdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for <name>-<outtype>.gguf and mmproj-<name>-<outtype>.gguf.",
)
@click.option("--outtype", type=click.Choice(["f32", "f16", "bf16", "q8_0"]), default="f16", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--onnx", is_flag=True, help="Also write the vision encoder as ONNX, fp32 and int8 (the onnx extra).")
@_friendly_errors
def convert(model: str, outdir: Path, outtype: str, force: bool, quiet: bool, onnx: bool) -> None:
    """Convert an LFM2(.5)-VL checkpoint (folder or Hugging Face repo id) to a text GGUF and an mmproj GGUF."""
    from convert.api import ConvertOptions, convert_checkpoint

    result = convert_checkpoint(model, ConvertOptions(outdir, outtype, force, quiet, onnx))
    click.echo("\n".join(str(path) for path in (result.text, result.mmproj, *result.onnx)))


@main.command("mmproj-bf16")
@click.argument("f16", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Default: the same name with BF16.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@_friendly_errors
def mmproj_bf16(f16: Path, out: Path | None, force: bool) -> None:
    """Write the BF16 mmproj beside an F16 one (exact for F16 that came from BF16; see the README's "Vision weights
    per CPU"). The runtime picks it where its CPU's order puts BF16 before the types offered beside it."""
    from convert.quantize.mmproj_bf16 import write_bf16_mmproj

    result = write_bf16_mmproj(f16, out, force)
    click.echo(f"{result.path}: {result.converted_values} values to BF16, {result.inexact_values} not exactly "
               f"representable (largest relative change {result.max_relative_error:.2g}); "
               f"{result.subnormal_values} were F16 subnormals, which F16 may already have rounded")  # fmt: skip


@main.command()
@click.argument("model")
@click.option("--types", default="Q4_0,Q4_K_M,Q5_K_M,Q6_K,Q8_0", show_default=True, help="Text model types.")
@click.option("--mmproj-types", default="Q8_0,F16,BF16", show_default=True, help="mmproj types (F32, F16, BF16, Q8_0).")
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True)
@click.option("--imatrix", type=click.Path(dir_okay=False, path_type=Path), help="GGUF importance matrix (IQ types).")
@click.option("--threads", type=int, default=None, help="Quantizer and report threads (default: all cores).")
@click.option("--report/--no-report", default=True, show_default=True, help="Measure each type against F16.")
@click.option("--onnx", is_flag=True, help="Also write the vision encoder as ONNX fp32 + int8 (the onnx extra).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@_friendly_errors
def quantize(model: str, **kw: object) -> None:
    """Quantize an LFM2(.5)-VL checkpoint (folder or Hugging Face repo id): <Model>-<TYPE>.gguf per text type,
    mmproj-<Model>-<TYPE>.gguf per mmproj type, manifest.json, README.md and a quality report (report.md)."""
    from convert.quantize import QuantizeOptions, quantize_checkpoint
    from convert.quantize.report import format_table

    options = QuantizeOptions(
        outdir=Path(str(kw["outdir"])),
        types=tuple(str(kw["types"]).split(",")),
        mmproj_types=tuple(str(kw["mmproj_types"]).split(",")),
        force=bool(kw["force"]),
        n_threads=kw["threads"] if isinstance(kw["threads"], int) else None,
        imatrix=Path(str(kw["imatrix"])) if kw["imatrix"] else None,
        report=bool(kw["report"]),
        onnx=bool(kw["onnx"]),
    )
    result = quantize_checkpoint(model, options)
    if result.report is not None:
        click.echo(format_table(result.report))
    click.echo("\n".join(str(options.outdir / f.name) for f in result.files))


@main.command()
def doctor() -> None:
    """Report the Python, llama-cpp-python build and the offload backends it was compiled with."""
    from lfm_edge.doctor import report

    click.echo(report())


@main.command()
@click.argument("model")
@click.option("--image", type=click.Path(path_type=Path), help="Image of the TTFT figures (default: random 512x385).")
@click.option("--mmproj", type=click.Path(dir_okay=False, path_type=Path), help="mmproj GGUF (default: beside MODEL).")
@click.option("--repeat", default=3, show_default=True, type=click.IntRange(1, 100), help="Repetitions per figure.")
@click.option("--threads", default=None, type=click.IntRange(1, 512), help="CPU threads (default: up to 8).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.option("--quick", is_flag=True, help="pp64, tg16, one repetition: a smoke test, not a measurement.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the JSON report to this file.")
@_friendly_errors
def bench(model: str, image: Path | None, mmproj: Path | None, out: Path | None, as_json: bool, **kw: Any) -> None:
    """Measure load time, pp512 / tg128 tok/s, image encoding, TTFT (first turn and follow-up), peak RSS and the
    decode memory-bandwidth bound of MODEL on this machine (min / median / max of --repeat runs)."""
    from lfm_edge.bench import BenchOptions, format_table, run_bench

    options = BenchOptions(image=image, repeat=kw["repeat"], threads=kw["threads"], quick=kw["quick"], mmproj=mmproj)
    report = run_bench(model, options)
    text = json.dumps(report, indent=2)
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from exc
    click.echo(text if as_json else format_table(report))


for _command in (run, chat, caption, info, tools, detect, serve):
    main.add_command(_command)
main.add_command(watch)
