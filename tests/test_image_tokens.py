"""Token layout of an image (text and ids) and the preprocess() entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lfm_edge.errors import ConfigError
from lfm_edge.image import ProcessorSettings, plan_layout, preprocess
from lfm_edge.image.tokens import image_segments, image_token_ids, image_token_text, row_col_token_id

IMAGES = Path(__file__).parent / "images"


def test_row_col_ids_follow_the_vocabulary() -> None:
    assert row_col_token_id(1, 1) == 397
    assert row_col_token_id(1, 10) == 406
    assert row_col_token_id(2, 1) == 407
    assert row_col_token_id(10, 10) == 496
    with pytest.raises(ConfigError, match=r"<\|img_row_11_col_1\|> has no token id"):
        row_col_token_id(11, 1)


def test_tiled_expansion_1024x768() -> None:
    """SPEC.md §3.5: 3 x 2 grid, thumbnail 576x416 (234 tokens)."""
    layout = plan_layout(1024, 768, ProcessorSettings())
    text = image_token_text(layout, use_special_tokens=True)
    tiles = "".join(f"<|img_row_{r}_col_{c}|>" + "<image>" * 256 for r in (1, 2) for c in (1, 2, 3))
    assert text == "<|image_start|>" + tiles + "<|img_thumbnail|>" + "<image>" * 234 + "<|image_end|>"
    ids = image_token_ids(layout, use_special_tokens=True)
    assert ids[:2] == [498, 397] and ids[-236:] == [497] + [396] * 234 + [499]
    assert [i for i in ids if i != 396] == [498, 397, 398, 399, 407, 408, 409, 497, 499]
    assert image_token_ids(layout, use_special_tokens=False) == [396] * 1770


def test_single_image_expansion() -> None:
    layout = plan_layout(336, 240, ProcessorSettings())
    assert image_token_text(layout, True) == "<|image_start|>" + "<image>" * 80 + "<|image_end|>"
    assert image_token_text(layout, False) == "<image>" * 80


def test_no_thumbnail_no_marker() -> None:
    layout = plan_layout(1024, 768, ProcessorSettings(use_thumbnail=False))
    assert "<|img_thumbnail|>" not in image_token_text(layout, True)
    assert layout.n_image_tokens == 6 * 256


def test_segments_carry_ids_or_tile_positions() -> None:
    layout = plan_layout(300, 5000, ProcessorSettings(min_tiles=4, max_tiles=12))
    assert layout.grid == (1, 12)
    beyond = [s for s in image_segments(layout, True) if s.token_id is None]
    assert [s.tile for s in beyond] == [(11, 1), (12, 1)]
    assert "<|img_row_12_col_1|>" in image_token_text(layout, True)
    with pytest.raises(ConfigError, match="use max_tiles <= 10 or use_image_special_tokens=False"):
        image_token_ids(layout, True)
    assert len(image_token_ids(layout, False)) == layout.n_image_tokens


def test_preprocess_result() -> None:
    result = preprocess(IMAGES / "photo_1024x768.jpg")
    assert (result.rows, result.cols, result.image_size) == (2, 3, (416, 576))
    assert result.spatial_shapes == [(32, 32)] * 6 + [(26, 36)]
    assert len(result.token_ids()) == result.n_image_tokens + 9
    assert result.token_text().count("<image>") == result.n_image_tokens == 1770
    for crop in result.crops:
        assert crop.dtype == np.uint8 and crop.flags.c_contiguous and not crop.flags.writeable
    batch = result.pixel_values
    assert batch is result.pixel_values  # computed once
    assert batch.pixel_values.shape == (7, 1024, 768)
    assert batch.pixel_attention_mask.sum(axis=1).tolist() == [1024] * 6 + [26 * 36]
    assert batch.spatial_shapes.tolist() == [[32, 32]] * 6 + [[26, 36]]


def test_preprocess_uses_the_settings() -> None:
    result = preprocess(IMAGES / "photo_1024x768.jpg", ProcessorSettings(do_image_splitting=False))
    assert [crop.shape for crop in result.crops] == [(416, 576, 3)]
    assert result.token_text() == "<|image_start|>" + "<image>" * 234 + "<|image_end|>"
