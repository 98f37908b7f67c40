"""HF-exact image preprocessing for LFM2(.5)-VL: numpy + Pillow, bit-identical to transformers 5.23.

``preprocess(image, settings)`` loads an image (path, bytes, file, PIL image or numpy array; EXIF orientation
applied, converted to RGB like transformers' load_image) and returns its uint8 crops, layout and token expansion.
The pieces are public too: :func:`load_image`, :func:`plan_layout`, :func:`make_crops`, :func:`resize`,
:mod:`~lfm_edge.image.tokens`.
"""

from lfm_edge.image.crops import PixelBatch, make_crops, patchify, pixel_batch
from lfm_edge.image.layout import ImageLayout, plan_layout, smart_resize
from lfm_edge.image.load import load_image
from lfm_edge.image.preprocess import PreprocessedImage, preprocess
from lfm_edge.image.resize import resize, resize_many
from lfm_edge.image.settings import PRESETS, ProcessorSettings, preset

__all__ = [
    "PRESETS",
    "ImageLayout",
    "PixelBatch",
    "PreprocessedImage",
    "ProcessorSettings",
    "load_image",
    "make_crops",
    "patchify",
    "pixel_batch",
    "plan_layout",
    "preprocess",
    "preset",
    "resize",
    "resize_many",
    "smart_resize",
]
