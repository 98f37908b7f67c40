"""The width pass of the exact resize, batched over the periodicity of the resampling weights.

Resizing W_in -> W_out pixels, the weights repeat every P = W_in / g inputs and Q = W_out / g outputs
(g = gcd(W_in, W_out)): output o + Q uses the weights of output o, shifted by P inputs. So a row of the image, cut
into its g periods, is a stack of g short rows that all get the *same* small matrix: one BLAS product per group of
outputs covers every period of every row of a chunk, instead of one product per group per row chunk. Outputs whose
weights break the pattern (the image borders, where the window is clipped and renormalised, and rare float
rounding differences) are recomputed exactly one by one afterwards.

Rows stay channel-interleaved (as decoded): a group's matrix is kron(weights, identity(C)), which maps C-interleaved
inputs to C-interleaved outputs. That costs C times the multiplications by zero but avoids two transposes, and the
wider products run closer to BLAS speed (measured faster on the benchmark sizes). Each row is laid out with E zero
periods on both sides so that windows of the first and last period stay inside the buffer; the window of output
group j for period m is ``flat[front + m * P + offset_j : ... + span_j]`` (in pixels, times C floats), a strided 2-D
view (row stride P >= span_j, as BLAS requires). Several target widths share one buffer and one conversion of each
input chunk, with P the least common multiple of their periods.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lfm_edge.image.resize_kernel import AxisKernel, axis_kernel
from lfm_edge.image.resize_math import MAX_PIXEL, choose_block, exact_split, scale_and_floor

FloatArray = npt.NDArray[np.floating]
# Rows of the width pass converted at once: about this many bytes of float32 (measured: 1-2 MiB best, 4 MiB and
# more slower as the chunk leaves the cache).
_CHUNK_BYTES = 1 << 21
# Products with fewer output columns run far below BLAS speed (measured on the benchmark sizes).
_MIN_BLOCK = 4


@dataclass(frozen=True)
class _Group:
    """Outputs [lo, hi) of a period read inputs [offset, offset + span) relative to the period start (pixels)."""

    lo: int
    hi: int
    offset: int
    span: int
    matrices: tuple[FloatArray, ...]  # one (span * C, (hi - lo) * C) matrix per weight part (high, low)


@dataclass(frozen=True)
class _Plan:
    kernel: AxisKernel
    per_period: int  # outputs per (common) period
    groups: tuple[_Group, ...]
    irregular: npt.NDArray[np.int64]  # outputs recomputed one by one
    parts: int
    shift: int
    dtype: type[np.floating]


@dataclass(frozen=True)
class _Geometry:
    """Buffer layout shared by the plans: rows of (periods + 2 * pad) periods of ``period`` pixels."""

    period: int
    periods: int
    pad: int
    front: int

    @property
    def row_length(self) -> int:
        return (self.periods + 2 * self.pad) * self.period


def _template(kernel: AxisKernel, period: int, per_period: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Window starts (relative to the period) and weights of the middle period, the pattern all periods follow."""
    middle = (kernel.in_size // period) // 2
    outputs = slice(middle * per_period, (middle + 1) * per_period)
    return kernel.first[outputs] - middle * period, kernel.weights[outputs]


def _irregular(kernel: AxisKernel, period: int, per_period: int) -> npt.NDArray[np.int64]:
    first, weights = _template(kernel, period, per_period)
    outputs = np.arange(kernel.out_size)
    phase, index = outputs % per_period, outputs // per_period
    regular = (kernel.first == first[phase] + index * period) & (kernel.weights == weights[phase]).all(axis=1)
    return np.nonzero(~regular)[0]


def _groups(kernel: AxisKernel, period: int, per_period: int, block: int, channels: int) -> tuple[_Group, ...] | None:
    """Output groups of one period, or None if a group's window is longer than the period (not a BLAS layout)."""
    first, weights = _template(kernel, period, per_period)
    last_tap = np.array([np.nonzero(row)[0].max() if row.any() else 0 for row in weights])
    parts, shift, dtype = exact_split(kernel)
    groups = []
    for lo in range(0, per_period, block):
        hi = min(lo + block, per_period)
        offset = int(first[lo:hi].min())
        span = int((first[lo:hi] + last_tap[lo:hi]).max()) + 1 - offset
        if span > period:
            return None
        dense = np.zeros((span, hi - lo), dtype=np.int64)
        for column, output in enumerate(range(lo, hi)):
            start = int(first[output]) - offset
            dense[start : start + weights.shape[1], column] = weights[output, : span - start]
        halves = [dense] if parts == 1 else [dense >> shift, dense & ((1 << shift) - 1)]
        identity = np.eye(channels, dtype=np.int64)
        matrices = tuple(np.kron(half, identity).astype(dtype) for half in halves)
        groups.append(_Group(lo, hi, offset, span, matrices))
    return tuple(groups)


def _plan(kernel: AxisKernel, period: int, rows_per_call: int, channels: int) -> _Plan | None:
    per_period = kernel.out_size * period // kernel.in_size
    parts, shift, dtype = exact_split(kernel)
    block = min(max(_MIN_BLOCK, choose_block(kernel, parts, rows_per_call)), per_period)
    while True:
        groups = _groups(kernel, period, per_period, block, channels)
        if groups is not None:
            return _Plan(kernel, per_period, groups, _irregular(kernel, period, per_period), parts, shift, dtype)
        if block == 1:
            return None
        block = max(1, block // 2)


@functools.lru_cache(maxsize=32)
def _plans(
    width: int, out_sizes: tuple[int, ...], chunk_rows: int, channels: int
) -> tuple[_Geometry, tuple[_Plan, ...]]:
    """The shortest common period (most batching) for which every kernel has a BLAS-compatible plan."""
    kernels = [axis_kernel(width, size) for size in out_sizes]
    period = math.lcm(*(width // math.gcd(width, k.out_size) for k in kernels))
    while True:
        periods = width // period
        plans = [_plan(k, period, chunk_rows * periods, channels) for k in kernels]
        if all(p is not None for p in plans):
            break
        # Merge periods by their smallest factor. A single period (the whole row) always works: its template is the
        # kernel itself and every window lies inside the row.
        if periods == 1:
            raise AssertionError(f"no width plan for {width} -> {out_sizes}")  # unreachable, see above
        period *= next(f for f in range(2, periods + 1) if periods % f == 0)
    ready = [p for p in plans if p is not None]
    offsets = [g.offset for p in ready for g in p.groups]
    ends = [g.offset + g.span for p in ready for g in p.groups]
    pad = max(0, math.ceil(-min(offsets) / period), math.ceil((max(ends) - period) / period))
    return _Geometry(period, periods, pad, front=max(0, -min(offsets))), tuple(ready)


def _window(buffer: FloatArray, geometry: _Geometry, n_windows: int, group: _Group, channels: int) -> FloatArray:
    size = buffer.itemsize
    return np.lib.stride_tricks.as_strided(
        buffer[(geometry.front + group.offset) * channels :],
        shape=(n_windows, group.span * channels),
        strides=(geometry.period * channels * size, size),
        writeable=False,
    )


def _fix_irregular(data: FloatArray, plan: _Plan, out: FloatArray) -> None:
    """Recompute the outputs that do not follow the periodic pattern, exactly (float64 sums < 2**53).

    ``data`` is (rows, in_size, C) and ``out`` (rows, out_size, C).
    """
    if plan.irregular.size == 0:
        return
    kernel = plan.kernel
    taps = kernel.indices()[plan.irregular]
    weights = kernel.weights[plan.irregular].astype(np.float64)
    total = np.einsum("rotc,ot->roc", data[:, taps].astype(np.float64), weights)
    total += 2.0 ** (kernel.precision - 1)
    out[:, plan.irregular] = np.minimum(np.floor(total * 2.0**-kernel.precision), MAX_PIXEL)


def _data_view(buffer: FloatArray, geometry: _Geometry, rows: int, width: int, channels: int) -> FloatArray:
    """The (rows, W, C) pixels inside the padded buffer."""
    size = buffer.itemsize
    return np.lib.stride_tricks.as_strided(
        buffer[(geometry.front + geometry.pad * geometry.period) * channels :],
        shape=(rows, width, channels),
        strides=(geometry.row_length * channels * size, channels * size, size),
    )


def _run_plan(buffer: FloatArray, geometry: _Geometry, plan: _Plan, data: FloatArray, out: FloatArray) -> None:
    """One plan on the buffered rows (``data``, (rows, W, C)); writes ``out``, (rows, out_size, C) float32."""
    rows, _, channels = data.shape
    periods = geometry.periods + 2 * geometry.pad
    n_windows = rows * periods
    width = plan.per_period * channels
    # All plans share the buffer; a float32 plan beside a float64 one runs in float64 (still exact).
    accumulators = [np.empty((n_windows, width), dtype=buffer.dtype) for _ in range(plan.parts)]
    for group in plan.groups:
        window = _window(buffer, geometry, n_windows, group, channels)
        columns = slice(group.lo * channels, group.hi * channels)
        for matrix, acc in zip(group.matrices, accumulators, strict=True):
            np.matmul(window, matrix.astype(buffer.dtype, copy=False), out=acc[:, columns])
    values = scale_and_floor(accumulators, plan.kernel.precision, plan.shift).reshape(rows, periods, width)
    inside = values[:, geometry.pad : geometry.pad + geometry.periods]
    np.minimum(inside, MAX_PIXEL, out=out.reshape(rows, geometry.periods, width))
    _fix_irregular(data, plan, out)


def width_pass(image: npt.NDArray[np.uint8], out_sizes: Sequence[int]) -> list[npt.NDArray[np.float32]]:
    """Width pass of one (H, W, C) uint8 image to each width in out_sizes: each result is (H, out_w, C) float32
    holding exact uint8 values."""
    height, width, channels = image.shape
    chunk = max(1, _CHUNK_BYTES // (4 * channels * width))
    geometry, plans = _plans(width, tuple(out_sizes), chunk, channels)
    dtype = np.float64 if any(p.dtype == np.float64 for p in plans) else np.float32
    tail = geometry.period + max(g.offset + g.span for p in plans for g in p.groups)
    buffer = np.zeros((geometry.front + chunk * geometry.row_length + tail) * channels, dtype=dtype)
    results = [np.empty((height, size, channels), dtype=np.float32) for size in out_sizes]
    for row in range(0, height, chunk):
        stop = min(row + chunk, height)
        data = _data_view(buffer, geometry, stop - row, width, channels)
        np.copyto(data, image[row:stop])
        for plan, result in zip(plans, results, strict=True):
            _run_plan(buffer, geometry, plan, data, result[row:stop])
    return results
