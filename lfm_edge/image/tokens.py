"""The placeholder sequence an image expands to in the prompt (``Lfm2VlProcessor`` 5.23, SPEC.md §3.5), as text
and as token ids (SPEC.md §5):

    <|image_start|> <|img_row_1_col_1|> <image>*256 ... <|img_row_R_col_C|> <image>*256
                    <|img_thumbnail|> <image>*thumbnail_tokens <|image_end|>      (tiled)
    <|image_start|> <image>*tokens <|image_end|>                                    (single image)

Without ``use_image_special_tokens`` only the ``<image>`` runs remain. Feature order = crop order = this order.
"""

from __future__ import annotations

from dataclasses import dataclass

from lfm_edge.errors import ConfigError
from lfm_edge.image.layout import ImageLayout

IMAGE_TOKEN = "<image>"
IMAGE_START_TOKEN = "<|image_start|>"
IMAGE_END_TOKEN = "<|image_end|>"
IMAGE_THUMBNAIL_TOKEN = "<|img_thumbnail|>"

IMAGE_TOKEN_ID = 396
IMAGE_THUMBNAIL_TOKEN_ID = 497
IMAGE_START_TOKEN_ID = 498
IMAGE_END_TOKEN_ID = 499
_ROW_COL_BASE_ID = 397
# The vocabulary has <|img_row_R_col_C|> for R, C in 1..10 only.
MAX_GRID_SIDE = 10


def row_col_token(row: int, col: int) -> str:
    """Marker of the tile at 1-based (row, col)."""
    return f"<|img_row_{row}_col_{col}|>"


def row_col_token_id(row: int, col: int) -> int:
    """Token id of <|img_row_R_col_C|>: 397 + 10 (R - 1) + (C - 1); ConfigError beyond the 10x10 vocabulary."""
    if not (1 <= row <= MAX_GRID_SIDE and 1 <= col <= MAX_GRID_SIDE):
        raise ConfigError(
            f"tile marker {row_col_token(row, col)} has no token id (the vocabulary stops at row/column "
            f"{MAX_GRID_SIDE}): use max_tiles <= {MAX_GRID_SIDE} or use_image_special_tokens=False"
        )
    return _ROW_COL_BASE_ID + MAX_GRID_SIDE * (row - 1) + (col - 1)


@dataclass(frozen=True)
class Segment:
    """One piece of the expansion: a marker (``count`` 1) or a run of ``count`` image tokens."""

    token: str
    token_id: int | None  # None for a tile marker outside the vocabulary (grids beyond 10x10)
    count: int = 1
    tile: tuple[int, int] | None = None  # (row, col) of a tile marker


def _marker(token: str, token_id: int | None) -> Segment:
    return Segment(token, token_id, 1)


def _image_run(count: int) -> Segment:
    return Segment(IMAGE_TOKEN, IMAGE_TOKEN_ID, count)


def image_segments(layout: ImageLayout, use_special_tokens: bool) -> list[Segment]:
    """The expansion of one image as segments (markers and runs of <image>), in order."""
    segments = []
    if use_special_tokens:
        segments.append(_marker(IMAGE_START_TOKEN, IMAGE_START_TOKEN_ID))
    counts = iter(layout.tokens_per_crop)
    if layout.multi_tile:
        for row in range(1, layout.rows + 1):
            for col in range(1, layout.cols + 1):
                if use_special_tokens:
                    inside = row <= MAX_GRID_SIDE and col <= MAX_GRID_SIDE
                    token_id = row_col_token_id(row, col) if inside else None
                    segments.append(Segment(row_col_token(row, col), token_id, 1, (row, col)))
                segments.append(_image_run(next(counts)))
        if layout.thumbnail:
            if use_special_tokens:
                segments.append(_marker(IMAGE_THUMBNAIL_TOKEN, IMAGE_THUMBNAIL_TOKEN_ID))
            segments.append(_image_run(next(counts)))
    else:
        segments.append(_image_run(next(counts)))
    if use_special_tokens:
        segments.append(_marker(IMAGE_END_TOKEN, IMAGE_END_TOKEN_ID))
    return segments


def image_token_text(layout: ImageLayout, use_special_tokens: bool) -> str:
    """The expansion as the text transformers puts in place of ``<image>`` (what its tokenizer then encodes)."""
    return "".join(segment.token * segment.count for segment in image_segments(layout, use_special_tokens))


def image_token_ids(layout: ImageLayout, use_special_tokens: bool) -> list[int]:
    """The expansion as token ids; ConfigError if a tile marker is outside the vocabulary (grid side > 10)."""
    ids: list[int] = []
    for segment in image_segments(layout, use_special_tokens):
        token_id = segment.token_id if segment.token_id is not None else row_col_token_id(*(segment.tile or (0, 0)))
        ids.extend([token_id] * segment.count)
    return ids
