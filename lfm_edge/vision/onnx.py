"""OnnxCropEncoder: one crop -> ONNX Runtime (CPU) -> its image embeddings; a CropEncoder like llama.cpp's mtmd.

Two kinds of file load: ours (`lfm-edge convert --onnx`: `vision-<name>-{fp32,int8}.onnx`, checked whole and
matched to the mmproj before use, lfm_edge/vision/onnx_meta.py) and Liquid AI's official export (its export tool's
"tiled" vision graph, `onnx/embed_images*.onnx`; `vision_encoder.onnx` in a third-party crate; README "ONNX vision
encoder" for the sources). Both take transformers' processor tensors (`pixel_values` float32 [batch, patches,
3*p*p], `spatial_shapes` int64 [batch, 2], the official one also `pixel_attention_mask` int64 [batch, patches]) and
return float32 embeddings, ours `image_features` [tokens, n_embd], the official `image_embeddings` [batch, tokens,
n_embd]; one crop is run per call, unpadded (mask all ones). The official file carries no lfm_edge metadata: only
its interface is checked.

`choose_encoder` implements `--vision-backend`: `mtmd` (llama.cpp), `onnx` (an error if it cannot be used), `auto`
(ONNX when a matching file sits beside the mmproj and onnxruntime is installed, else mtmd with one log line).
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lfm_edge.errors import ImageError, ModelError
from lfm_edge.image.crops import patchify
from lfm_edge.vision import onnx_meta as meta

log = logging.getLogger(__name__)

BACKENDS = ("auto", "mtmd", "onnx")
INSTALL_HINT = "install the onnx extra: pip install 'lfm-edge[onnx]'"
_PIXELS, _MASK, _SHAPES = "pixel_values", "pixel_attention_mask", "spatial_shapes"
# How onnxruntime says it has no kernel or schema for a node, or does not know the graph's opset.
_MISSING_OPERATOR = ("No Op registered", "not a registered function/op", "Could not find an implementation", "opset")
# Files `auto` looks for beside the mmproj, fastest first (README: measured table).
_BESIDE_PATTERNS = ("vision-*-int8.onnx", "vision-*-fp32.onnx")


@dataclass(frozen=True)
class OnnxOptions:
    n_threads: int = 4
    patch_size: int = 16
    downsample: int = 2
    n_embd: int | None = None  # the text model's width; checked against the graph's output


def _runtime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelError(f"the ONNX vision backend needs onnxruntime: {INSTALL_HINT}") from exc
    onnxruntime.set_default_logger_severity(3)  # errors only: its load-time warnings would go to stderr
    return onnxruntime


def _session(path: Path, n_threads: int) -> Any:
    ort = _runtime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No busy-waiting between runs: llama.cpp's decode threads need those cores right after an encode.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # A memory pattern is planned and kept per crop shape: ~70 MB more resident while the text model prefills the
    # image, at no measurable speed gain (README "Peak RSS of the ONNX path").
    options.enable_mem_pattern = False
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types derive from Exception only
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if any(marker in message for marker in _MISSING_OPERATOR) or type(exc).__name__ == "NotImplemented":
            raise ModelError(
                f"onnxruntime {ort.__version__} cannot run {path} ({message}): it lacks an operator the graph "
                "needs; upgrade onnxruntime (pip install -U 'lfm-edge[onnx]') or use --vision-backend mtmd"
            ) from exc
        raise ModelError(
            f"{path} is not a loadable ONNX file ({message}): it is truncated or corrupt; re-convert it with "
            "`lfm-edge convert --onnx` or re-download it"
        ) from exc


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, None elsewhere (musl, macOS, Windows: their allocators return memory differently)."""
    try:
        function: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):
        return None
    return function


def release_freed_memory() -> None:
    """Returns the heap pages onnxruntime freed (the parsed model after loading, a run's activations; its worker
    threads allocate in their own malloc arenas, which glibc does not shrink by itself) to the system."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class OnnxCropEncoder:
    """Owns an onnxruntime InferenceSession over a vision-encoder graph."""

    def __init__(self, path: Path, options: OnnxOptions | None = None) -> None:
        self.path = path
        self.options = options or OnnxOptions()
        self._session = _session(path, self.options.n_threads)
        release_freed_memory()
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        self.official = meta.KEY_FORMAT not in self.metadata
        if not self.official:
            meta.verify_integrity(path, self.metadata)
        self._inputs = self._check_interface()
        self._output = self._session.get_outputs()[0].name
        self._run_options = _runtime().RunOptions()
        # The arena's activations (~100 MB for a 512x512 crop, mostly attention scores) are returned after each
        # run, so they are not still held while the text model prefills the image (README "Peak RSS").
        self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    @property
    def identity(self) -> str:
        if self.official:  # the graph file and its external weights (`<name>.onnx_data`, `<name>.data`, ...)
            files = [self.path, *sorted(p for p in self.path.parent.glob(f"{self.path.name}*") if p != self.path)]
            stats = ":".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
            return f"onnx-official:{stats}"
        return f"onnx:{self.metadata.get(meta.KEY_WEIGHT_TYPE)}:{self.metadata[meta.KEY_INTEGRITY]}"

    def _check_interface(self) -> tuple[str, ...]:
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = self._session.get_outputs()
        patch_values = 3 * self.options.patch_size**2
        pixels, shapes = inputs.get(_PIXELS), inputs.get(_SHAPES)
        out_width = outputs[0].shape[-1] if outputs and outputs[0].shape else None
        ok = (
            pixels is not None
            and shapes is not None
            and set(inputs) <= {_PIXELS, _MASK, _SHAPES}
            and pixels.type == "tensor(float)"
            and pixels.shape[-1] in (patch_values, None)
            and shapes.type == "tensor(int64)"
            and (self.options.n_embd is None or not isinstance(out_width, int) or out_width == self.options.n_embd)
        )
        if not ok:
            found = {name: (i.type, i.shape) for name, i in inputs.items()}
            raise ModelError(
                f"{self.path} is not an LFM2-VL vision encoder for this model: inputs {found}, output width "
                f"{out_width}; expected pixel_values [1, N, {patch_values}] float, spatial_shapes [1, 2] int64 "
                f"and image_features [T, {self.options.n_embd}]"
            )
        return tuple(inputs)

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> OnnxCropEncoder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def encode(self, crop: np.ndarray) -> np.ndarray:
        """Embeddings [(H/32) * (W/32), n_embd] float32 of one uint8 H x W x 3 crop."""
        unit = self.options.patch_size * self.options.downsample
        shape_ok = crop.ndim == 3 and crop.shape[2] == 3 and crop.shape[0] % unit == 0 and crop.shape[1] % unit == 0
        if crop.dtype != np.uint8 or not shape_ok:
            raise ImageError(
                f"a crop must be uint8 H x W x 3, H and W multiples of {unit}; got {crop.dtype} {crop.shape}"
            )
        if self._session is None:
            raise ModelError("this ONNX vision encoder was closed")
        rows = patchify(crop, self.options.patch_size)[np.newaxis]
        grid = (crop.shape[0] // self.options.patch_size, crop.shape[1] // self.options.patch_size)
        feeds = {
            _PIXELS: rows,
            _SHAPES: np.array([grid], dtype=np.int64),
            _MASK: np.ones(rows.shape[:2], dtype=np.int64),
        }
        (output,) = self._session.run([self._output], {name: feeds[name] for name in self._inputs}, self._run_options)
        release_freed_memory()
        tokens = (grid[0] // self.options.downsample) * (grid[1] // self.options.downsample)
        embeddings = np.asarray(output, dtype=np.float32).reshape(-1, output.shape[-1])
        if embeddings.shape[0] != tokens:
            raise ModelError(f"{self.path} gave {embeddings.shape[0]} embeddings for a crop that needs {tokens}")
        return embeddings


@dataclass(frozen=True)
class VisionRequest:
    """What the loader knows when it picks a vision backend."""

    backend: str  # one of BACKENDS
    mmproj: Path
    settings: Any  # lfm_edge.image.settings.ProcessorSettings (patch size, downsample factor)
    n_embd: int
    n_threads: int
    onnx_path: Path | None = None  # --vision-onnx; otherwise found beside the mmproj
    on_gpu: bool = False


def open_checked(request: VisionRequest, path: Path) -> OnnxCropEncoder:
    """Loads `path` and, for our own files, checks it was converted from the mmproj's checkpoint."""
    options = OnnxOptions(
        n_threads=request.n_threads,
        patch_size=int(request.settings.encoder_patch_size),
        downsample=int(request.settings.downsample_factor),
        n_embd=request.n_embd,
    )
    encoder = OnnxCropEncoder(path, options)
    try:
        if encoder.official:
            log.info("%s has no lfm_edge metadata (an official export?): its weights are not checked against %s",
                     path, request.mmproj)  # fmt: skip
        else:
            meta.check_matches_mmproj(path, encoder.metadata, request.mmproj, request.settings)
    except BaseException:
        encoder.close()
        raise
    return encoder


def find_beside(mmproj: Path) -> Path | None:
    for pattern in _BESIDE_PATTERNS:
        found = sorted(mmproj.parent.glob(pattern))
        if found:
            return found[0]
    return None


def choose_encoder(request: VisionRequest) -> OnnxCropEncoder | None:
    """The ONNX encoder to use instead of mtmd, or None for mtmd. Raises ModelError only when ONNX was asked
    for by name (backend "onnx" or an explicit onnx_path) and cannot be used."""
    if request.backend not in BACKENDS:
        raise ModelError(f"unknown vision backend {request.backend!r}: choose one of {', '.join(BACKENDS)}")
    explicit = request.backend == "onnx" or request.onnx_path is not None
    if request.backend == "mtmd" or (request.on_gpu and not explicit):
        return None
    path = request.onnx_path or find_beside(request.mmproj)
    if path is None:
        if explicit:
            raise ModelError(
                f"no vision ONNX file beside {request.mmproj}: write one with `lfm-edge convert --onnx` or pass "
                "--vision-onnx PATH"
            )
        return None
    try:
        return open_checked(request, path)
    except ModelError as exc:
        if explicit:
            raise
        log.warning("vision backend: using llama.cpp (mtmd), not %s: %s", path.name, exc)
        return None
