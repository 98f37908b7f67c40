"""Where an image goes: single resize or tile grid, crop sizes and token counts (transformers 5.23, SPEC.md §3.2).

Pure integer/float64 Python, transcribed from ``Lfm2VlImageProcessor``: Python's ``round`` (ties to even) in
``round_by_factor``, ``math.floor``/``math.ceil`` of float64 quotients, the 16-pixel floor of
``_is_image_too_large`` and CPython's order of the target-ratio list (a sort of a set of int tuples, stable and
deterministic), which decides exact ties in :func:`find_closest_aspect_ratio`.

Two deliberate departures, both where transformers produces input the model cannot consume:

* a crop with more patches than ``max_num_patches`` raises :class:`ImageError`: extreme aspect ratios, about
  1:max_image_tokens (1:256 by default) and beyond, where the short side is clamped up to 32 pixels
  (transformers leaves it unpadded with a wrong mask, or fails to stack it);
* a 1x1 grid (possible only with ``min_tiles=1``) gives one tile-sized crop; its token count is that crop's, not
  the smart-resize size's (transformers emits the latter and then has fewer placeholders than features).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from lfm_edge.errors import ImageError
from lfm_edge.image.settings import ProcessorSettings


def round_by_factor(number: float, factor: int) -> int:
    """Closest multiple of factor; Python's round, so exact halves go to the even multiple (720/32 -> 22)."""
    return round(number / factor) * factor


def smart_resize(height: int, width: int, settings: ProcessorSettings) -> tuple[int, int]:
    """(new_width, new_height): multiples of 32 near the input's aspect, area within the token budget."""
    factor = settings.total_factor
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > settings.max_pixels:
        beta = math.sqrt((height * width) / settings.max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < settings.min_pixels:
        beta = math.sqrt(settings.min_pixels / (height * width))
        # No max(factor, .) here, as in transformers (the result is >= factor anyway since beta grows the area).
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar


def is_image_too_large(height: int, width: int, settings: ProcessorSettings) -> bool:
    """Whether the image is tiled (if splitting is on). The floor is the patch size, not 32: transformers' quirk."""
    factor = settings.total_factor
    h_bar = max(settings.encoder_patch_size, round_by_factor(height, factor))
    w_bar = max(settings.encoder_patch_size, round_by_factor(width, factor))
    return h_bar * w_bar > settings.max_pixels * settings.max_pixels_tolerance


@functools.lru_cache(maxsize=64)
def target_ratios(min_tiles: int, max_tiles: int) -> tuple[tuple[int, int], ...]:
    """Candidate grids (cols, rows), by tile count; equal counts in CPython's set iteration order (SPEC.md §3.2)."""
    ratios = [
        (w, h)
        for n in range(min_tiles, max_tiles + 1)
        for w in range(1, n + 1)
        for h in range(1, n + 1)
        if min_tiles <= w * h <= max_tiles
    ]
    return tuple(sorted(set(ratios), key=lambda ratio: ratio[0] * ratio[1]))


def find_closest_aspect_ratio(
    aspect_ratio: float, ratios: tuple[tuple[int, int], ...], width: int, height: int, tile_size: int
) -> tuple[int, int]:
    """(cols, rows) whose aspect is closest to width/height; on an exact tie the later candidate wins if the image
    covers more than half of that grid's area."""
    best_diff = float("inf")
    best = (1, 1)
    area = width * height
    for cols, rows in ratios:
        diff = abs(aspect_ratio - cols / rows)
        if diff < best_diff:
            best_diff, best = diff, (cols, rows)
        elif diff == best_diff and area > 0.5 * tile_size * tile_size * cols * rows:
            best = (cols, rows)
    return best


@dataclass(frozen=True)
class ImageLayout:
    """How one image of ``width`` x ``height`` pixels is cut (all sizes in pixels).

    ``image_size`` (h, w) is transformers' ``image_sizes``: the smart-resize size, i.e. the single crop, or the
    thumbnail of a tiled image. ``grid`` (cols, rows) is set when tiled: the image is resized once to
    ``(cols * tile, rows * tile)`` (stretched, no letterbox) and cut row-major; ``rows``/``cols`` are transformers'
    ``image_rows``/``image_cols`` (1, 1 when not tiled). ``crop_sizes`` lists (h, w) in crop order: tiles row-major,
    then the thumbnail.
    """

    width: int
    height: int
    image_size: tuple[int, int]
    grid: tuple[int, int] | None
    thumbnail: bool
    tile_size: int
    crop_sizes: tuple[tuple[int, int], ...]
    tokens_per_crop: tuple[int, ...]

    @property
    def rows(self) -> int:
        return self.grid[1] if self.grid else 1

    @property
    def cols(self) -> int:
        return self.grid[0] if self.grid else 1

    @property
    def multi_tile(self) -> bool:
        """Whether the token layout has per-tile markers (transformers: rows > 1 or cols > 1)."""
        return self.rows > 1 or self.cols > 1

    @property
    def n_image_tokens(self) -> int:
        return sum(self.tokens_per_crop)


def _tokens(size: tuple[int, int], settings: ProcessorSettings) -> int:
    """Image tokens of a crop: transformers' _compute_tokens_for_image for its (h, w)."""
    patches_h = math.ceil((size[0] // settings.encoder_patch_size) / settings.downsample_factor)
    patches_w = math.ceil((size[1] // settings.encoder_patch_size) / settings.downsample_factor)
    return patches_h * patches_w


def _check_patches(layout_sizes: list[tuple[int, int]], width: int, height: int, settings: ProcessorSettings) -> None:
    limit = settings.max_num_patches
    for crop_h, crop_w in layout_sizes:
        patches = (crop_h // settings.encoder_patch_size) * (crop_w // settings.encoder_patch_size)
        if patches > limit:
            raise ImageError(
                f"image of {width}x{height} pixels is too elongated: its {crop_w}x{crop_h} crop would have {patches} "
                f"patches, more than the encoder's {limit}. Crop or pad it to a less extreme aspect ratio (about "
                f"1:{settings.max_image_tokens} at most), or raise max_image_tokens"
            )


def layout_unchecked(width: int, height: int, settings: ProcessorSettings) -> ImageLayout:
    """transformers' layout as is, including crops with more than max_num_patches patches (see plan_layout)."""
    new_w, new_h = smart_resize(height, width, settings)
    min_tiles, max_tiles = settings.tile_range
    splitting = not min_tiles == max_tiles == 1
    grid = None
    sizes = [(new_h, new_w)]
    thumbnail = False
    if splitting and is_image_too_large(height, width, settings):
        ratios = target_ratios(min_tiles, max_tiles)
        grid = find_closest_aspect_ratio(width / height, ratios, width, height, settings.tile_size)
        tile = settings.tile_size
        sizes = [(tile, tile)] * (grid[0] * grid[1])
        thumbnail = settings.use_thumbnail and grid[0] * grid[1] != 1
        if thumbnail:
            sizes.append((new_h, new_w))
    return ImageLayout(
        width=width,
        height=height,
        image_size=(new_h, new_w),
        grid=grid,
        thumbnail=thumbnail,
        tile_size=settings.tile_size,
        crop_sizes=tuple(sizes),
        tokens_per_crop=tuple(_tokens(size, settings) for size in sizes),
    )


def plan_layout(width: int, height: int, settings: ProcessorSettings) -> ImageLayout:
    """The layout transformers 5.23 gives an upright image of width x height pixels.

    Raises ImageError for an empty image, or when a crop would have more than ``max_num_patches`` patches.
    """
    if width < 1 or height < 1:
        raise ImageError(f"image of {width}x{height} pixels is empty: both sides must be at least 1 pixel")
    layout = layout_unchecked(width, height, settings)
    _check_patches(list(layout.crop_sizes), width, height, settings)
    return layout
