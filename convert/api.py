"""convert_checkpoint: LFM2(.5)-VL HF checkpoint -> `<name>-<outtype>.gguf` + `mmproj-<name>-<outtype>.gguf`.

Everything is validated before a byte is written; both files are written to temporary names side by side and
renamed together at the end, so a failure (bad input, disk full, Ctrl-C) leaves neither file behind.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf

from convert.checkpoint import Checkpoint, open_checkpoint
from convert.gguf_out import OUTTYPES, GgufJob, PlannedTensor, atomic_output, choose_type, write_gguf
from convert.metadata import general_metadata, mmproj_metadata, text_metadata
from convert.tensor_map import TEXT_MAP, VISION_MAP, NameRule, Transform, gguf_name
from convert.vocab import read_vocabulary
from lfm_edge.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvertOptions:
    outdir: Path
    outtype: str = "f16"
    force: bool = False
    quiet: bool = False
    onnx: bool = False  # also vision-<name>-{fp32,int8}.onnx (the onnx extra; convert/onnx)


@dataclass(frozen=True)
class ConvertResult:
    text: Path
    mmproj: Path
    onnx: tuple[Path, ...] = ()


def resolve_source(source: str | Path) -> Path:
    """A local folder as is; otherwise a Hugging Face repo id, downloaded (safetensors and config files only)."""
    path = Path(source).expanduser()
    if path.exists() or str(source).startswith((".", "/", "~")) or str(source).count("/") != 1:
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = ["*.json", "*.jinja", "*.safetensors", "*.txt", "*.md"]
    try:
        return Path(snapshot_download(str(source), allow_patterns=patterns))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot download {source!r} from the Hugging Face Hub ({exc}); pass a local folder"
        ) from exc


def _plan(checkpoint: Checkpoint, table: tuple[NameRule, ...], outtype: str) -> list[PlannedTensor]:
    plan = []
    for official, record in checkpoint.tensors.items():
        mapped = gguf_name(official, table)
        if mapped is None:
            continue
        name, transform = mapped
        shape = record.shape
        if transform is Transform.SQUEEZE_CONV:
            shape = (shape[0], shape[2])
        elif transform is Transform.PATCH_TO_CONV:
            patch = checkpoint.dims.patch_size
            shape = (shape[0], 3, patch, patch)
        plan.append(PlannedTensor(name, record, transform, shape, choose_type(name, shape, outtype)))
    return plan


def _progress_bar(total: int, quiet: bool) -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    if quiet or not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, desc="converting", file=sys.stderr)
    return bar.update, bar.close


def convert_checkpoint(source: str | Path, options: ConvertOptions) -> ConvertResult:
    if options.outtype not in OUTTYPES:
        raise ConfigError(f"unknown outtype {options.outtype!r}: choose one of {', '.join(OUTTYPES)}")
    if options.onnx:
        from convert.onnx.write import require_onnx_tools

        require_onnx_tools()
    checkpoint = open_checkpoint(resolve_source(source))
    vocab = read_vocabulary(checkpoint.folder, checkpoint.dims.vocab)
    file_type = int(OUTTYPES[options.outtype][0])
    text_plan = _plan(checkpoint, TEXT_MAP, options.outtype)
    mmproj_plan = _plan(checkpoint, VISION_MAP, options.outtype)
    stem = f"{checkpoint.name}-{options.outtype}"
    result = ConvertResult(options.outdir / f"{stem}.gguf", options.outdir / f"mmproj-{stem}.gguf")
    update, close = _progress_bar(sum(t.source.nbytes for t in text_plan + mmproj_plan), options.quiet)

    def text_keys(writer: gguf.GGUFWriter) -> None:
        general_metadata(writer, checkpoint, file_type, gguf.GGUFType.MODEL)
        text_metadata(writer, checkpoint, vocab)

    def mmproj_keys(writer: gguf.GGUFWriter) -> None:
        general_metadata(writer, checkpoint, file_type, gguf.GGUFType.MMPROJ)
        mmproj_metadata(writer, checkpoint)

    try:
        with contextlib.ExitStack() as stack:
            text_tmp = stack.enter_context(atomic_output(result.text, options.force))
            mmproj_tmp = stack.enter_context(atomic_output(result.mmproj, options.force))
            patch = checkpoint.dims.patch_size
            write_gguf(GgufJob(text_tmp, "lfm2", text_plan, patch, text_keys, force=True), update)
            write_gguf(GgufJob(mmproj_tmp, "clip", mmproj_plan, patch, mmproj_keys, force=True), update)
            if options.onnx:
                from convert.onnx.write import write_vision_onnx

                written = write_vision_onnx(checkpoint, options.outdir, options.force, stack)
                result = ConvertResult(result.text, result.mmproj, (written.fp32, written.int8))
    finally:
        close()
    log.info("converted %s -> %s, %s", checkpoint.folder, result.text, result.mmproj)
    return result
