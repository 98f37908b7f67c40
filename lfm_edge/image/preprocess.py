"""One call from an image to everything the runtime needs: uint8 crops, layout, token expansion (and, on demand,
transformers' pixel_values), exactly as transformers 5.23's Lfm2VlProcessor would produce them."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from lfm_edge.image.crops import PixelBatch, make_crops, pixel_batch
from lfm_edge.image.layout import ImageLayout, plan_layout
from lfm_edge.image.load import PILLOW_LIMIT, ImageSource, load_image
from lfm_edge.image.settings import ProcessorSettings
from lfm_edge.image.tokens import image_token_ids, image_token_text


@dataclass(frozen=True)
class PreprocessedImage:
    """One image, preprocessed. ``crops`` are read-only C-contiguous (h, w, 3) uint8 arrays in transformers' order
    (tiles row-major, thumbnail last); ``layout`` says how they were cut."""

    crops: tuple[npt.NDArray[np.uint8], ...]
    layout: ImageLayout
    settings: ProcessorSettings

    @property
    def rows(self) -> int:
        """transformers' image_rows."""
        return self.layout.rows

    @property
    def cols(self) -> int:
        """transformers' image_cols."""
        return self.layout.cols

    @property
    def image_size(self) -> tuple[int, int]:
        """transformers' image_sizes entry, (h, w): the smart-resize size (single crop or thumbnail)."""
        return self.layout.image_size

    @property
    def spatial_shapes(self) -> list[tuple[int, int]]:
        """Per crop (patch rows, patch columns), transformers' spatial_shapes."""
        patch = self.settings.encoder_patch_size
        return [(crop.shape[0] // patch, crop.shape[1] // patch) for crop in self.crops]

    @property
    def n_image_tokens(self) -> int:
        """Number of <image> placeholders = number of image features the encoder yields."""
        return self.layout.n_image_tokens

    def token_text(self) -> str:
        """The prompt text that replaces this image's ``<image>``."""
        return image_token_text(self.layout, self.settings.use_image_special_tokens)

    def token_ids(self) -> list[int]:
        """The same as token ids (ConfigError for tile markers outside the vocabulary, grids beyond 10x10)."""
        return image_token_ids(self.layout, self.settings.use_image_special_tokens)

    @functools.cached_property
    def pixel_values(self) -> PixelBatch:
        """transformers' pixel_values / pixel_attention_mask / spatial_shapes (computed on first use)."""
        return pixel_batch(self.crops, self.settings.encoder_patch_size, self.settings.max_num_patches)


def preprocess(
    image: ImageSource,
    settings: ProcessorSettings | None = None,
    *,
    max_pixels: int | Literal["pillow"] | None = PILLOW_LIMIT,
) -> PreprocessedImage:
    """Load (see load_image) and preprocess one image with ``settings`` (default: LFM2.5-VL-450M's)."""
    settings = settings or ProcessorSettings()
    pixels = load_image(image, max_pixels=max_pixels)
    layout = plan_layout(pixels.shape[1], pixels.shape[0], settings)
    crops = make_crops(pixels, layout)
    for crop in crops:
        crop.setflags(write=False)
    return PreprocessedImage(tuple(crops), layout, settings)
