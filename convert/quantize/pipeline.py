"""quantize_checkpoint: HF checkpoint -> `<Model>-<TYPE>.gguf` per text type + `mmproj-<Model>-<TYPE>.gguf` per
mmproj type, as the official GGUF repos name them, plus manifest.json, README.md and (optionally) a quality report.

One F16 conversion goes to a temporary folder inside the output folder (removed at the end, whatever happens); every
text type is quantized from it by llama.cpp's quantizer. Every output is written under a temporary name and renamed
when complete, so a failure leaves no half-written file; existing outputs need `force`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from convert.api import ConvertOptions, convert_checkpoint, resolve_source
from convert.checkpoint import open_checkpoint
from convert.gguf_out import atomic_output
from convert.quantize.manifest import OutputFile, describe_output, write_manifest, write_model_card
from convert.quantize.types import (
    DEFAULT_MMPROJ_TYPES,
    DEFAULT_TEXT_TYPES,
    MMPROJ_OUTTYPES,
    load_imatrix,
    mmproj_types,
    text_types,
)
from lfm_edge.errors import ConversionError
from lfm_edge.native.quantize import TEXT_FTYPES, QuantizeParams, quantize_text_gguf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizeOptions:
    outdir: Path
    types: tuple[str, ...] = DEFAULT_TEXT_TYPES
    mmproj_types: tuple[str, ...] = DEFAULT_MMPROJ_TYPES
    force: bool = False
    n_threads: int | None = None
    imatrix: Path | None = None
    report: bool = True
    onnx: bool = False  # also vision-<Model>-{fp32,int8}.onnx (the onnx extra), and vision rows in the report


@dataclass(frozen=True)
class QuantizeResult:
    model_name: str
    files: tuple[OutputFile, ...]
    manifest: Path
    model_card: Path
    report: dict[str, object] | None = field(default=None, repr=False)


def model_name_of(source: str | Path, folder: Path) -> str:
    """The checkpoint folder's name; for a Hub repo id its name part (the download folder is a commit hash)."""
    text = str(source)
    if not Path(text).expanduser().exists() and text.count("/") == 1:
        return text.split("/")[1]
    return folder.name


def _targets(outdir: Path, name: str, texts: tuple[str, ...], mmprojs: tuple[str, ...]) -> dict[tuple[str, str], Path]:
    found = {("text", t): outdir / f"{name}-{t}.gguf" for t in texts}
    found.update({("mmproj", t): outdir / f"mmproj-{name}-{t}.gguf" for t in mmprojs})
    return found


def _refuse_existing(targets: dict[tuple[str, str], Path], force: bool) -> None:
    existing = [path.name for path in targets.values() if path.exists()]
    if existing and not force:
        raise ConversionError(
            f"{', '.join(existing)} already exist in {next(iter(targets.values())).parent}: "
            "pass --force to overwrite them, or choose another --outdir"
        )


def _place(intermediate: Path, target: Path) -> None:
    """Copies an intermediate file to target atomically (the intermediate may still serve the report)."""
    with atomic_output(target, force=True) as temporary:
        shutil.copyfile(intermediate, temporary)


def _make_mmproj(folder: Path, type_name: str, work: Path, f16_mmproj: Path, target: Path) -> None:
    if type_name == "F16":
        _place(f16_mmproj, target)
        return
    outtype = MMPROJ_OUTTYPES[type_name]
    result = convert_checkpoint(folder, ConvertOptions(work / outtype, outtype, force=True, quiet=True))
    _place(result.mmproj, target)
    shutil.rmtree(work / outtype, ignore_errors=True)  # the converter's text file of this type is not needed


def _make_onnx(folder: Path, work: Path, targets: dict[tuple[str, str], Path]) -> dict[str, Path]:
    """Writes both ONNX files in a work subfolder (nothing `auto` would find beside the report's mmproj), then
    places them; returns the placed files by type."""
    from convert.onnx.write import write_vision_onnx

    written = write_vision_onnx(open_checkpoint(folder), work / "onnx", force=True)
    placed = {"fp32": targets["onnx", "fp32"], "int8": targets["onnx", "int8"]}
    _place(written.fp32, placed["fp32"])
    _place(written.int8, placed["int8"])
    return placed


def quantize_checkpoint(source: str | Path, options: QuantizeOptions) -> QuantizeResult:
    texts = text_types(options.types, options.imatrix)
    mmprojs = mmproj_types(options.mmproj_types)
    imatrix = load_imatrix(options.imatrix) if options.imatrix else {}
    folder = resolve_source(source)
    open_checkpoint(folder)  # refuses a bad checkpoint before anything is created
    name = model_name_of(source, folder)
    targets = _targets(options.outdir, name, texts, mmprojs)
    if options.onnx:
        from convert.onnx.write import require_onnx_tools

        require_onnx_tools()
        targets.update({("onnx", t): options.outdir / f"vision-{name}-{t}.onnx" for t in ("fp32", "int8")})
    _refuse_existing(targets, options.force)
    try:
        options.outdir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".quantize-", dir=options.outdir))
    except OSError as exc:
        raise ConversionError(f"cannot write to {options.outdir} ({exc}): choose a writable --outdir") from exc
    try:
        f16 = convert_checkpoint(folder, ConvertOptions(work, "f16", force=True, quiet=True))
        for type_name in texts:
            target = targets["text", type_name]
            if type_name == "F16":
                _place(f16.text, target)
                continue
            params = QuantizeParams(TEXT_FTYPES[type_name], options.n_threads, imatrix=imatrix)
            with atomic_output(target, force=True) as temporary:
                quantize_text_gguf(f16.text, temporary, params)
            log.info("wrote %s", target)
        for type_name in mmprojs:
            _make_mmproj(folder, type_name, work, f16.mmproj, targets["mmproj", type_name])
        onnx_files = _make_onnx(folder, work, targets) if options.onnx else None
        files = tuple(describe_output(path, role, t) for (role, t), path in targets.items())
        report = None
        if options.report:
            from convert.quantize.report import write_report

            text_files = {t: targets["text", t] for t in texts}
            mmproj_files = {t: targets["mmproj", t] for t in mmprojs}
            report = write_report(
                options.outdir, f16.text, f16.mmproj, text_files, options.n_threads, (mmproj_files, onnx_files)
            )
        manifest = write_manifest(options.outdir, name, folder, files)
        card = write_model_card(options.outdir, name, files, report is not None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return QuantizeResult(name, files, manifest, card, report)
