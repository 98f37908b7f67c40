"""Writes `vision-<name>-fp32.onnx` and `vision-<name>-int8.onnx` beside the GGUF pair, atomically.

int8 is onnxruntime's own dynamic quantization (onnxruntime.quantization.quantize_dynamic): MatMul weights int8
per output channel (the weights of one output feature share a scale, which keeps the small-norm rows of the
projector accurate), activations quantized per call. Metadata and the integrity record: lfm_edge/vision/onnx_meta.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from convert.checkpoint import Checkpoint
from convert.gguf_out import atomic_output
from convert.metadata import _PROCESSOR_DEFAULTS
from convert.onnx.graph import build_vision_model
from convert.safetensors_io import load_float32
from lfm_edge.errors import ConversionError
from lfm_edge.gguf_keys import PROCESSOR_KEYS
from lfm_edge.vision import onnx_meta as meta

log = logging.getLogger(__name__)

ONNX_TYPES = ("fp32", "int8")


@dataclass(frozen=True)
class OnnxResult:
    fp32: Path
    int8: Path


def onnx_targets(outdir: Path, name: str) -> OnnxResult:
    return OnnxResult(outdir / f"vision-{name}-fp32.onnx", outdir / f"vision-{name}-int8.onnx")


def checkpoint_metadata(checkpoint: Checkpoint) -> dict[str, str]:
    """Every metadata entry but the integrity record: what the file is, for which processor, from what."""
    settings = {**checkpoint.config, **checkpoint.processor}
    knobs = {key: settings.get(key, _PROCESSOR_DEFAULTS.get(key)) for key in PROCESSOR_KEYS}
    config_bytes = (checkpoint.folder / "config.json").read_bytes()
    arrays = (load_float32(checkpoint.tensors[official]) for _, official in meta.FINGERPRINT_TENSORS)
    return {
        meta.KEY_FORMAT: meta.FORMAT,
        meta.KEY_N_EMBD: str(checkpoint.dims.hidden),
        meta.KEY_PROCESSOR: json.dumps(knobs, sort_keys=True),
        meta.KEY_SOURCE: json.dumps(
            {"name": checkpoint.name, "config_sha256": hashlib.sha256(config_bytes).hexdigest()}, sort_keys=True
        ),
        meta.KEY_FINGERPRINT: meta.fingerprint(arrays),
    }


def save_with_metadata(model: onnx.ModelProto, target: Path, metadata: dict[str, Any]) -> None:
    """Writes model (its own metadata_props dropped) then a metadata-only ModelProto carrying the integrity record."""
    del model.metadata_props[:]
    body = model.SerializeToString()
    entries = {**metadata, meta.KEY_MODEL_BYTES: str(len(body))}
    entries[meta.KEY_INTEGRITY] = meta.integrity_digest(hashlib.sha256(body), entries)
    tail = onnx.ModelProto()
    onnx.helper.set_model_props(tail, entries)
    try:
        with target.open("wb") as handle:
            handle.write(body)
            handle.write(tail.SerializeToString())
    except OSError as exc:
        raise ConversionError(f"writing {target} failed: {exc.strerror or exc}; free disk space and retry") from exc


class _DropPreprocessingAdvice(logging.Filter):
    """quantize_dynamic logs (on the root logger) advice to run shape pre-processing: our graph is already
    shape-annotated where quantization needs it (MatMul weights are constants), so the advice is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(fp32_path: Path, int8_path: Path) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    advice = _DropPreprocessingAdvice()
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(
            fp32_path, int8_path, per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
        )
    finally:
        logging.getLogger().removeFilter(advice)
    return onnx.load(int8_path)


def require_onnx_tools() -> None:
    """Fails before anything is written when the onnx extra is missing."""
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:
        raise ConversionError(f"--onnx needs onnx and onnxruntime ({exc}): pip install 'lfm-edge[onnx]'") from exc


def write_vision_onnx(checkpoint: Checkpoint, outdir: Path, force: bool, stack: ExitStack | None = None) -> OnnxResult:
    """Both files or neither (a failure removes what was written). With `stack`, the files keep their temporary
    names until the stack closes, so a caller can publish them together with its own outputs."""
    require_onnx_tools()
    targets = onnx_targets(outdir, checkpoint.name)
    with ExitStack() as own:
        outputs = stack if stack is not None else own
        fp32_tmp = outputs.enter_context(atomic_output(targets.fp32, force))
        int8_tmp = outputs.enter_context(atomic_output(targets.int8, force))
        common = checkpoint_metadata(checkpoint)
        save_with_metadata(build_vision_model(checkpoint), fp32_tmp, {**common, meta.KEY_WEIGHT_TYPE: "fp32"})
        with tempfile.TemporaryDirectory(prefix=".onnx-int8-", dir=outdir) as scratch:
            quantized = quantize_int8(fp32_tmp, Path(scratch) / "int8.onnx")
        save_with_metadata(quantized, int8_tmp, {**common, meta.KEY_WEIGHT_TYPE: "int8"})
    log.info("wrote %s, %s", targets.fp32, targets.int8)
    return targets
