"""Writes a synthetic checkpoint folder atomically: everything goes to a temporary sibling folder that is renamed
into place only when complete, so an error or Ctrl-C never leaves a half-written checkpoint."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from convert.architecture import random_values, rename, tensor_specs, to_bfloat16_bits
from convert.dims import dims_of
from convert.safetensors_io import read_header
from convert.synthetic.configs import CheckpointSpec, model_config, official_file_names, official_text
from convert.synthetic.tokenizer import tokenizer_json
from lfm_edge.errors import ConfigError, ConversionError

log = logging.getLogger(__name__)


def write_checkpoint(outdir: str | Path, spec: CheckpointSpec | None = None, *, force: bool = False) -> Path:
    """Writes config, processor/tokenizer files, tokenizer.json and model.safetensors (bf16) to ``outdir``."""
    spec = spec or CheckpointSpec()
    target = Path(outdir)
    if target.exists() and not force:
        raise ConversionError(
            f"{target} already exists: choose another folder, or replace it with --force (force=True)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        _write_files(staging, spec)
        _make_readable(staging)
        _replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("wrote %s synthetic checkpoint (%s layout, seed %d) to %s", spec.size, spec.layout, spec.seed, target)
    return target


def _replace_folder(staging: Path, target: Path) -> None:
    if target.exists():
        if not target.is_dir():
            raise ConfigError(f"{target} exists and is not a folder: remove it or choose another path")
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(target)


def _make_readable(folder: Path) -> None:
    # mkdtemp and safetensors create owner-only modes; a checkpoint folder is an ordinary shared folder.
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def _write_files(folder: Path, spec: CheckpointSpec) -> None:
    config = model_config(spec)
    _write_json(folder / "config.json", config)
    for name in official_file_names(spec.layout):
        (folder / name).write_text(official_text(spec.layout, name), encoding="utf-8")
    (folder / "tokenizer.json").write_text(tokenizer_json(spec.seed), encoding="utf-8")
    _write_safetensors(folder / "model.safetensors", config, spec)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _write_safetensors(path: Path, config: dict[str, Any], spec: CheckpointSpec) -> None:
    try:
        from safetensors import TensorSpec, serialize_file
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("the synthetic generator needs safetensors: pip install 'lfm-edge[synthetic]'") from exc
    arrays = {}  # keeps the buffers alive while safetensors reads them through raw pointers
    specs = {}
    for tensor in tensor_specs(dims_of(config)):
        bits = to_bfloat16_bits(random_values(tensor, spec.seed))
        name = rename(tensor.name, spec.layout)
        arrays[name] = bits
        specs[name] = TensorSpec(dtype="bfloat16", shape=tensor.shape, data_ptr=bits.ctypes.data, data_len=bits.nbytes)
    # metadata format "pt": transformers refuses safetensors files without it.
    serialize_file(specs, str(path), metadata={"format": "pt"})


def describe(folder: Path) -> str:
    """One line of counts and one of file names: what `lfm-edge synthetic` prints."""
    records = read_header(folder / "model.safetensors")
    params = sum(int(np.prod(record.shape, dtype=np.int64)) for record in records)
    files = ", ".join(sorted(path.name for path in folder.iterdir()))
    return f"{folder}: {len(records)} tensors, {params:,} parameters\nfiles: {files}"
