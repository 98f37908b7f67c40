"""The fast BLAS resize against the tap-by-tap transcription of PyTorch's kernel (resize_reference).

resize_reference itself was checked bit-identical to torchvision 0.29.1 (reference venv, not in this suite); the
goldens (test_image_goldens) then pin the whole pipeline to transformers' crops.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lfm_edge.errors import ImageError
from lfm_edge.image import resize, resize_many
from lfm_edge.image.resize_kernel import axis_kernel, resize_reference
from lfm_edge.image.resize_math import exact_split


def _image(height: int, width: int, seed: int, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


@settings(max_examples=150, deadline=None)
@given(
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    out_height=st.integers(1, 160),
    out_width=st.integers(1, 160),
    channels=st.sampled_from([1, 3, 4]),
    seed=st.integers(0, 2**32 - 1),
)
def test_fast_resize_equals_reference(
    height: int, width: int, out_height: int, out_width: int, channels: int, seed: int
) -> None:
    image = _image(height, width, seed, channels)
    assert np.array_equal(resize(image, out_width, out_height), resize_reference(image, out_width, out_height))


@pytest.mark.parametrize(
    ("size", "out"),
    [
        ((480, 640), (576, 416)),  # the benchmark's single image
        ((1080, 1920), (2048, 1024)),  # upscale one axis, downscale the other
        ((300, 4000), (576, 64)),  # strong downscale: weights split in two halves
        ((40, 1023), (1024, 40)),  # gcd 1: one period, no pattern to batch
        ((37, 480), (416, 37)),  # rounding glitches in the weight pattern (irregular outputs)
        ((2, 20000), (10, 2)),  # weight sums too large even split: float64
        ((5, 1), (256, 3)),  # one input pixel
        ((1, 7), (7, 1)),
    ],
)
def test_fast_resize_equals_reference_on_hard_cases(size: tuple[int, int], out: tuple[int, int]) -> None:
    image = _image(*size, seed=sum(size))
    assert np.array_equal(resize(image, *out), resize_reference(image, *out))


def test_exactness_paths_are_all_exercised() -> None:
    """The hard cases above cover the three arithmetic paths of resize_math.exact_split."""
    assert exact_split(axis_kernel(640, 576))[:2] == (1, 0)
    assert exact_split(axis_kernel(4000, 576))[0] == 2
    assert exact_split(axis_kernel(20000, 10))[2] is np.float64


def test_resize_many_equals_single_resizes() -> None:
    image = _image(300, 400, seed=1)
    sizes = [(256, 128), (96, 64), (400, 64), (400, 300), (512, 300)]
    for size, many in zip(sizes, resize_many(image, sizes), strict=True):
        assert np.array_equal(many, resize_reference(image, *size))
        assert many.flags.c_contiguous and many.dtype == np.uint8


def test_float32_and_float64_plans_share_one_width_pass() -> None:
    image = _image(2, 20000, seed=3)
    sizes = [(10, 2), (5000, 2), (20000, 1)]
    for size, many in zip(sizes, resize_many(image, sizes), strict=True):
        assert np.array_equal(many, resize_reference(image, *size))


def test_unchanged_size_is_a_copy() -> None:
    image = _image(20, 30, seed=2)
    same = resize(image, 30, 20)
    assert np.array_equal(same, image) and same is not image


@pytest.mark.parametrize(("in_size", "out_size"), [(4000, 576), (640, 576), (33, 224), (1, 256), (20000, 10)])
def test_kernel_weights_are_int16_and_normalised(in_size: int, out_size: int) -> None:
    kernel = axis_kernel(in_size, out_size)
    assert kernel.weights.min() >= 0 and kernel.weights.max() < 2**15
    sums = kernel.weights.sum(axis=1)
    assert np.abs(sums - 2**kernel.precision).max() <= kernel.taps  # rounding of each weight by <= 1/2
    assert kernel.indices().max() < in_size


def test_kernel_refuses_empty_axes() -> None:
    with pytest.raises(ImageError, match="must be >= 1"):
        axis_kernel(0, 10)
