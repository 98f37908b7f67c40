"""Layout decisions (tiling, grid, smart-resize size, token count) against transformers' layout table, plus the
invariants every layout must satisfy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lfm_edge.errors import ImageError
from lfm_edge.image import ProcessorSettings, plan_layout, smart_resize
from lfm_edge.image.layout import find_closest_aspect_ratio, is_image_too_large, layout_unchecked, target_ratios
from lfm_edge.image.tokens import IMAGE_TOKEN, image_token_ids, image_token_text

GOLDENS = Path(__file__).parent / "goldens" / "image"

# SPEC.md §3.2: CPython's order of target_ratios(2, 10), measured with transformers.
CPYTHON_RATIOS_2_10 = [
    (1, 2), (2, 1), (3, 1), (1, 3), (2, 2), (4, 1), (1, 4), (5, 1), (1, 5), (1, 6), (6, 1), (3, 2), (2, 3),
    (7, 1), (1, 7), (4, 2), (2, 4), (1, 8), (8, 1), (1, 9), (3, 3), (9, 1), (2, 5), (5, 2), (10, 1), (1, 10),
]  # fmt: skip


def _table_configs() -> dict[str, ProcessorSettings]:
    meta = json.loads((GOLDENS / "layout_table.json").read_text())
    return {name: ProcessorSettings(**config["overrides"]) for name, config in meta["configs"].items()}


@pytest.mark.parametrize("config", sorted(_table_configs()))
def test_layout_table(config: str) -> None:
    """Every one of the >100,000 sizes of the table: same decision, grid, smart-resize size and token count."""
    table = np.load(GOLDENS / "layout_table.npz")
    settings = _table_configs()[config]
    columns = ("tiled", "grid_cols", "grid_rows", "thumb_w", "thumb_h", "n_tokens")
    expected = np.stack([table[f"{config}__{column}"] for column in columns], axis=1)
    assert len(expected) >= 100_000
    refused = 0
    sizes = zip(table["W"].tolist(), table["H"].tolist(), strict=True)
    for (width, height), row in zip(sizes, expected.tolist(), strict=True):
        layout = layout_unchecked(width, height, settings)
        grid = layout.grid or (1, 1)
        thumb_h, thumb_w = layout.image_size
        ours = [int(layout.grid is not None), grid[0], grid[1], thumb_w, thumb_h, layout.n_image_tokens]
        assert ours == row, f"{width}x{height}: ours {ours}, transformers {row}"
        too_many = max((h // 16) * (w // 16) for h, w in layout.crop_sizes) > settings.max_num_patches
        if too_many:
            refused += 1
            with pytest.raises(ImageError):
                plan_layout(width, height, settings)
    assert refused < len(expected) // 20  # only extreme aspect ratios are refused


def test_target_ratio_order_is_cpython_set_order() -> None:
    assert list(target_ratios(2, 10)) == CPYTHON_RATIOS_2_10


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (720, 720, (512, 512)),  # rounds to 704x704 (22.5 -> 22), too many pixels -> scaled down
        (80, 80, (256, 256)),  # 80/32 = 2.5 -> 2 (ties to even) -> too few pixels -> scaled up
        (48, 2000, (64, 1984)),  # 1.5 -> 2 and 62.5 -> 62: ties go to the even multiple
        (336, 240, (320, 256)),  # llama.cpp gets 352x256 here (SPEC.md §7.2)
        (33, 47, (224, 320)),
        (1600, 100, (1600, 96)),
        (1, 1, (256, 256)),
    ],
)
def test_smart_resize_examples(width: int, height: int, expected: tuple[int, int]) -> None:
    assert smart_resize(height, width, ProcessorSettings()) == expected


def test_tiling_threshold_of_squares() -> None:
    """720 rounds to 704 (704² = 495,616 <= 524,288), 723 to 736 (541,696 > 524,288); SPEC.md §3.6."""
    settings = ProcessorSettings()
    assert not is_image_too_large(720, 720, settings)
    assert is_image_too_large(723, 723, settings)
    assert is_image_too_large(721, 721, settings)  # 721/32 = 22.53 -> 23


def test_tie_prefers_later_grid_only_for_large_images() -> None:
    ratios = ((1, 1), (2, 2))  # equal aspect: the tie rule decides
    assert find_closest_aspect_ratio(1.0, ratios, 100, 100, 512) == (1, 1)
    assert find_closest_aspect_ratio(1.0, ratios, 1000, 1000, 512) == (2, 2)


_knobs = st.builds(
    ProcessorSettings,
    tile_size=st.sampled_from([256, 384, 512, 640]),
    min_tiles=st.integers(1, 4),
    max_tiles=st.integers(4, 12),
    min_image_tokens=st.integers(1, 64),
    max_image_tokens=st.integers(64, 512),
    max_pixels_tolerance=st.floats(0.5, 4.0),
    use_thumbnail=st.booleans(),
    do_image_splitting=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(width=st.integers(1, 20_000), height=st.integers(1, 20_000), knobs=_knobs)
def test_layout_invariants(width: int, height: int, knobs: ProcessorSettings) -> None:
    try:
        layout = plan_layout(width, height, knobs)
    except ImageError:
        layout = layout_unchecked(width, height, knobs)
        assert max((h // 16) * (w // 16) for h, w in layout.crop_sizes) > knobs.max_num_patches
        return
    assert len(layout.crop_sizes) == len(layout.tokens_per_crop) >= 1
    for h, w in layout.crop_sizes:
        assert h % 32 == 0 and w % 32 == 0 and h >= 32 and w >= 32
        assert (h // 16) * (w // 16) <= knobs.max_num_patches
    features = sum((h // 32) * (w // 32) for h, w in layout.crop_sizes)
    assert layout.n_image_tokens == features
    text = image_token_text(layout, knobs.use_image_special_tokens)
    assert text.count(IMAGE_TOKEN) == features
    if layout.rows <= 10 and layout.cols <= 10:
        assert image_token_ids(layout, True).count(396) == features
    if layout.grid is not None:
        cols, rows = layout.grid
        assert knobs.tile_range[0] <= cols * rows <= knobs.tile_range[1]
        assert len(layout.crop_sizes) == cols * rows + int(layout.thumbnail)
    else:
        assert layout.crop_sizes == (layout.image_size,)
