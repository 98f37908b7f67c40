"""Exact-integer arithmetic shared by both passes of the fast resize (see resize.py for the idea)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from lfm_edge.image.resize_kernel import AxisKernel

FloatArray = npt.NDArray[np.floating]

MAX_PIXEL = 255
# float32 represents every integer up to 2**24 exactly.
_FLOAT32_EXACT = 1 << 24
# Fixed cost of one numpy matmul call, in float32 flops it could have done instead (measured: ~4 us at ~40 GFLOP/s).
_CALL_COST_FLOPS = 160_000.0
_MAX_BLOCK = 256


def choose_block(kernel: AxisKernel, parts: int, rows_per_call: int) -> int:
    """Outputs per matrix product: balances numpy's fixed cost per call against the multiplications by zero.

    A block of b outputs spans about (b - 1) * scale + taps inputs, so each output costs ~2 * span * parts flops per
    row while each call costs a fixed overhead worth ~_CALL_COST_FLOPS; the total is smallest at
    b = sqrt(_CALL_COST_FLOPS / (2 * rows * scale * parts)).
    """
    scale = kernel.in_size / kernel.out_size
    best = math.sqrt(_CALL_COST_FLOPS / (2.0 * rows_per_call * scale * parts))
    return max(1, min(round(best), _MAX_BLOCK, kernel.out_size))


def exact_split(kernel: AxisKernel) -> tuple[int, int, type[np.floating]]:
    """(parts, shift, dtype) for which every partial sum of pixel * weight is an exactly represented integer.

    One float32 part when 255 * (largest weight sum) stays below 2**24; else the weights are split into
    high = w >> shift and low = w & (2**shift - 1), each summed exactly; float64 (exact to 2**53) as a last resort.
    The bounds include the rounding offset and the carry added when the halves are recombined (scale_and_floor).
    """
    weights = kernel.weights
    half = 1 << (kernel.precision - 1)
    if MAX_PIXEL * int(weights.sum(axis=1).max()) + half < _FLOAT32_EXACT:
        return 1, 0, np.float32
    for shift in range(1, kernel.precision):
        high = int((weights >> shift).sum(axis=1).max())
        low = int((weights & ((1 << shift) - 1)).sum(axis=1).max())
        carry = (MAX_PIXEL * low) >> shift
        if MAX_PIXEL * low < _FLOAT32_EXACT and MAX_PIXEL * high + carry + (half >> shift) < _FLOAT32_EXACT:
            return 2, shift, np.float32
    return 1, 0, np.float64


def scale_and_floor(accumulators: Sequence[FloatArray], precision: int, shift: int) -> FloatArray:
    """In place: floor((acc + 2**(precision-1)) / 2**precision), the kernel's ``(acc + half) >> precision``.

    ``accumulators`` is [acc] or [high, low] with acc = high * 2**shift + low. Returns the array holding the result.
    Only integers below the exactness limit and power-of-two scalings are formed, so nothing is rounded.
    """
    if len(accumulators) == 1:
        total = accumulators[0]
        total += 2.0 ** (precision - 1)
        total *= 2.0**-precision
        np.floor(total, out=total)
        return total
    high, low = accumulators
    # acc + 2**(p-1) = 2**s * (high + 2**(p-1-s) + floor(low / 2**s)) + (low mod 2**s), and a remainder below 2**s
    # never changes floor(. / 2**p).
    low *= 2.0**-shift
    np.floor(low, out=low)
    high += low
    high += 2.0 ** (precision - 1 - shift)
    high *= 2.0 ** (shift - precision)
    np.floor(high, out=high)
    return high
