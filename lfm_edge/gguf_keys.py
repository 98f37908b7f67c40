"""GGUF metadata keys that lfm_edge adds to the mmproj file (the converter writes them, the runtime reads them).

llama.cpp (at the vendored commit) hard-codes the LFM2 processor knobs and reads none of these; they let the runtime
reproduce transformers' preprocessing from the two GGUF files alone. Values are those of processor_config.json
(`image_processor` section, or the top level of LFM2-VL-450M's file).
"""

from __future__ import annotations

PREFIX = "lfm_edge.processor."

# processor_config.json key -> (GGUF key, GGUF value kind)
PROCESSOR_KEYS: dict[str, tuple[str, str]] = {
    "tile_size": (f"{PREFIX}tile_size", "uint32"),
    "min_tiles": (f"{PREFIX}min_tiles", "uint32"),
    "max_tiles": (f"{PREFIX}max_tiles", "uint32"),
    "min_image_tokens": (f"{PREFIX}min_image_tokens", "uint32"),
    "max_image_tokens": (f"{PREFIX}max_image_tokens", "uint32"),
    "max_pixels_tolerance": (f"{PREFIX}max_pixels_tolerance", "float32"),
    "use_thumbnail": (f"{PREFIX}use_thumbnail", "bool"),
    "do_image_splitting": (f"{PREFIX}do_image_splitting", "bool"),
    "use_image_special_tokens": (f"{PREFIX}use_image_special_tokens", "bool"),
    "encoder_patch_size": (f"{PREFIX}encoder_patch_size", "uint32"),
    "downsample_factor": (f"{PREFIX}downsample_factor", "uint32"),
}
