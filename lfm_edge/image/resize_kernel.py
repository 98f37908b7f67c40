"""The exact resampling weights of transformers' resize, and a plain reference implementation of it.

transformers 5.23 resizes with ``torchvision.transforms.v2.functional.resize(uint8 CHW, antialias=True,
interpolation=BILINEAR)``, which on CPU runs PyTorch's uint8 antialias kernel (``UpSampleKernel.cpp``:
``_compute_index_ranges_int16_weights``, a Pillow-SIMD port). Per axis it computes triangle-filter weights in float64,
quantises them to int16 with a per-axis precision, and rounds each pass back to uint8 (SPEC.md §3.3). Pillow's own
BILINEAR uses 22-bit weights instead and differs by ±1 on up to ~2 % of values, which is why this is reimplemented.

:func:`resize_reference` applies the weights tap by tap in int32: slow but a literal transcription of the kernel,
kept as the oracle the fast path (:mod:`lfm_edge.image.resize`) is tested against.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lfm_edge.errors import ImageError

# PyTorch stops raising the weight precision at 22 bits and keeps the largest weight below 2**15 (int16).
_MAX_PRECISION = 22
_INT16_LIMIT = 1 << 15


@dataclass(frozen=True)
class AxisKernel:
    """int16 weights of one axis (in_size -> out_size): output i = sum_k pixel[first[i] + k] * weights[i, k].

    ``weights`` is zero past each output's own window; ``first + k`` is clipped to the input so it is always a
    valid index. Arrays are read-only (kernels are cached and shared).
    """

    in_size: int
    out_size: int
    precision: int
    first: npt.NDArray[np.int64]
    weights: npt.NDArray[np.int64]

    @property
    def taps(self) -> int:
        return int(self.weights.shape[1])

    def indices(self) -> npt.NDArray[np.int64]:
        """(out_size, taps) input index of every tap, clipped into the input."""
        offsets = np.arange(self.taps, dtype=np.int64)
        indices: npt.NDArray[np.int64] = np.minimum(self.first[:, None] + offsets[None, :], self.in_size - 1)
        return indices


def _float_weights(in_size: int, out_size: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], int]:
    """Normalised float64 weights (out, max_taps), window starts and the longest window, as PyTorch computes them."""
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0
    inv_scale = 1.0 / scale if scale >= 1.0 else 1.0
    max_taps = math.ceil(support) * 2 + 1
    centers = scale * (np.arange(out_size, dtype=np.float64) + 0.5)
    # C++ casts to int64 truncate toward zero; np.trunc does the same.
    first = np.maximum(np.trunc(centers - support + 0.5).astype(np.int64), 0)
    stop = np.minimum(np.trunc(centers + support + 0.5).astype(np.int64), in_size)
    window = np.clip(stop - first, 0, max_taps)
    taps = np.arange(max_taps, dtype=np.int64)
    # Same operation order as the C++: ((j + xmin) - center + 0.5) * invscale.
    x = ((taps[None, :] + first[:, None]).astype(np.float64) - centers[:, None] + 0.5) * inv_scale
    tri = np.where(np.abs(x) < 1.0, 1.0 - np.abs(x), 0.0)
    tri = np.where(taps[None, :] < window[:, None], tri, 0.0)
    # The kernel sums taps one after the other; numpy's pairwise sum could round differently.
    total = np.zeros(out_size, dtype=np.float64)
    for tap in range(max_taps):
        total = total + tri[:, tap]
    nonzero = total != 0.0
    tri[nonzero] = tri[nonzero] / total[nonzero, None]
    return tri, first, int(window.max())


@functools.lru_cache(maxsize=64)
def axis_kernel(in_size: int, out_size: int) -> AxisKernel:
    """PyTorch's int16 antialias-bilinear weights for resizing one axis from in_size to out_size pixels."""
    if in_size < 1 or out_size < 1:
        raise ImageError(f"cannot resize an axis of {in_size} pixels to {out_size}: both sizes must be >= 1")
    weights, first, longest = _float_weights(in_size, out_size)
    largest = float(weights.max())
    precision = 0
    while precision < _MAX_PRECISION and int(0.5 + largest * (1 << (precision + 1))) < _INT16_LIMIT:
        precision += 1
    scaled = weights * float(1 << precision)
    # (int)(v + 0.5) for v >= 0 and (int)(v - 0.5) below: round half away from zero.
    quantised = np.where(scaled < 0, np.trunc(scaled - 0.5), np.trunc(scaled + 0.5)).astype(np.int64)
    quantised = np.ascontiguousarray(quantised[:, :longest])
    first.setflags(write=False)
    quantised.setflags(write=False)
    return AxisKernel(in_size, out_size, precision, first, quantised)


def _reference_axis(image: npt.NDArray[np.uint8], axis: int, out_size: int) -> npt.NDArray[np.uint8]:
    kernel = axis_kernel(image.shape[axis], out_size)
    indices = kernel.indices()
    shape = [1] * image.ndim
    shape[axis] = out_size
    out_shape = list(image.shape)
    out_shape[axis] = out_size
    acc = np.full(out_shape, 1 << (kernel.precision - 1), dtype=np.int64)
    for tap in range(kernel.taps):
        acc += np.take(image, indices[:, tap], axis=axis).astype(np.int64) * kernel.weights[:, tap].reshape(shape)
    out: npt.NDArray[np.uint8] = np.clip(acc >> kernel.precision, 0, 255).astype(np.uint8)
    return out


def resize_reference(image: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    """Resize an (H, W, C) uint8 image the way torchvision does: width pass first, then height, uint8 in between.

    A pass whose size does not change is skipped (as in PyTorch). Slow (one numpy pass per tap); for tests.
    """
    out = image
    if width != image.shape[1]:
        out = _reference_axis(out, 1, width)
    if height != image.shape[0]:
        out = _reference_axis(out, 0, height)
    return out
