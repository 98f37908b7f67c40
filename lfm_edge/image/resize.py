"""Fast, bit-exact resize: PyTorch's uint8 antialias-bilinear kernel (resize_kernel) evaluated with BLAS.

Each pass is a sparse banded matrix product. Outputs are taken in blocks whose input windows fit in one span, and
each block is one small dense float matrix product, so numpy never loops over pixels and the multiplications by zero
stay bounded. The result is exact, not approximate: every product is an integer (pixel <= 255 times an int16
weight) and every partial sum stays below 2**24, where float32 holds all integers (resize_math.exact_split; strong
downscales split the weights in two halves, float64 is the last resort), and the rounding ``(acc + half) >> p`` is
done with power-of-two scaling and floor.

The width pass (resize_width) batches all rows and all periods of the weight pattern in each product; the height
pass below multiplies whole rows (thousands of values each), so its blocks are small. Pass order and the uint8
rounding between passes are torchvision's: width first, then height, a pass skipped when its size is unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lfm_edge.image.resize_kernel import AxisKernel, axis_kernel
from lfm_edge.image.resize_math import MAX_PIXEL, choose_block, exact_split, scale_and_floor
from lfm_edge.image.resize_width import width_pass

FloatArray = npt.NDArray[np.floating]


@dataclass(frozen=True)
class _HeightPlan:
    """Output rows [g * block, (g + 1) * block) read input rows [starts[g], starts[g] + span).

    ``matrices[part][g]`` is (block, span); parts are the high and low weight halves when the kernel is split.
    """

    kernel: AxisKernel
    block: int
    span: int
    starts: tuple[int, ...]
    matrices: tuple[FloatArray, ...]
    shift: int


@functools.lru_cache(maxsize=64)
def _height_plan(in_size: int, out_size: int, row_length: int) -> _HeightPlan:
    kernel = axis_kernel(in_size, out_size)
    parts, shift, dtype = exact_split(kernel)
    block = choose_block(kernel, parts, row_length)
    groups = -(-kernel.out_size // block)
    first, weights = kernel.first, kernel.weights
    ends = np.minimum(first + kernel.taps, kernel.in_size)
    padded_ends = np.full(groups * block, ends[-1], dtype=np.int64)
    padded_ends[: kernel.out_size] = ends
    block_first = first[::block]
    span = int((padded_ends.reshape(groups, block).max(axis=1) - block_first).max())
    starts = np.minimum(block_first, kernel.in_size - span)
    dense = np.zeros((groups, block, span), dtype=np.int64)
    outputs, taps = np.nonzero(weights)
    group = outputs // block
    dense[group, outputs % block, first[outputs] + taps - starts[group]] = weights[outputs, taps]
    if parts == 1:
        matrices: tuple[FloatArray, ...] = (dense.astype(dtype),)
    else:
        matrices = ((dense >> shift).astype(dtype), (dense & ((1 << shift) - 1)).astype(dtype))
    return _HeightPlan(kernel, block, span, tuple(int(s) for s in starts), matrices, shift)


def _height_pass(rows: FloatArray, out_size: int) -> npt.NDArray[np.uint8]:
    """Height pass on (H, N) rows holding uint8 values, any layout along N; returns (out_size, N) uint8."""
    plan = _height_plan(rows.shape[0], out_size, rows.shape[1])
    dtype = plan.matrices[0].dtype
    if rows.dtype != dtype:
        rows = rows.astype(dtype)
    padded = len(plan.starts) * plan.block
    accumulators = [np.empty((padded, rows.shape[1]), dtype=dtype) for _ in plan.matrices]
    for group, start in enumerate(plan.starts):
        window = rows[start : start + plan.span]
        out_rows = slice(group * plan.block, (group + 1) * plan.block)
        for matrices, acc in zip(plan.matrices, accumulators, strict=True):
            np.matmul(matrices[group], window, out=acc[out_rows])
    values = scale_and_floor(accumulators, plan.kernel.precision, plan.shift)
    out = np.empty((out_size, rows.shape[1]), dtype=np.uint8)
    np.minimum(values[:out_size], MAX_PIXEL, out=out, casting="unsafe")
    return out


def resize_many(image: npt.NDArray[np.uint8], sizes: Sequence[tuple[int, int]]) -> list[npt.NDArray[np.uint8]]:
    """Resize one (H, W, C) uint8 image to each (width, height) in sizes, bit-identical to torchvision.

    Equal to ``[resize_reference(image, w, h) for w, h in sizes]`` (torchvision's uint8 antialias bilinear), but
    each chunk of the input is converted once for all sizes (the tile grid and the thumbnail of one image).
    """
    height, width, channels = image.shape
    widths = sorted({w for w, _ in sizes if w != width})
    widened = dict(zip(widths, width_pass(image, widths), strict=True)) if widths else {}
    results = []
    for out_w, out_h in sizes:
        rows: FloatArray = widened[out_w] if out_w != width else image.astype(np.float32)
        if out_h != height:
            results.append(_height_pass(rows.reshape(height, -1), out_h).reshape(out_h, out_w, channels))
        else:
            results.append(rows.astype(np.uint8))
    return results


def resize(image: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    """Resize an (H, W, C) uint8 image to (height, width, C), bit-identical to torchvision's antialias bilinear."""
    return resize_many(image, [(width, height)])[0]
