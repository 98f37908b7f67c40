"""The image-processor knobs of LFM2(.5)-VL, validated, with their defaults read from the model's files.

The knobs are those of transformers 5.23's ``Lfm2VlImageProcessor`` / ``Lfm2VlProcessor`` (SPEC.md §2, §3.1).
Defaults are LFM2.5-VL-450M's shipped ``processor_config.json``; :meth:`ProcessorSettings.from_processor_config`
reads either layout of that file and :meth:`ProcessorSettings.from_gguf_metadata` the keys lfm_edge's converter
writes into the mmproj GGUF (lfm_edge.gguf_keys). The model card recommends ``min_image_tokens=32``
(:data:`PRESETS` ``"model-card"``); the shipped file says 64, which stays the default.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lfm_edge.errors import ConfigError
from lfm_edge.gguf_keys import PROCESSOR_KEYS

logger = logging.getLogger(__name__)

MODEL_CARD_MIN_IMAGE_TOKENS = 32
# target_ratios enumerates O(max_tiles**3) candidates; nothing sensible needs more than this.
_MAX_TILES_LIMIT = 100
# Normalisation the preprocessor implements (x / 255 - 0.5) / 0.5; any other value in a config is refused.
_SUPPORTED_FIXED: dict[str, float | list[float]] = {
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "rescale_factor": 1 / 255,
    "resample": 2,  # PILImageResampling.BILINEAR
}
_INT_KNOBS = (
    "tile_size",
    "min_tiles",
    "max_tiles",
    "min_image_tokens",
    "max_image_tokens",
    "encoder_patch_size",
    "downsample_factor",
)
_BOOL_KNOBS = ("use_thumbnail", "do_image_splitting", "use_image_special_tokens")


@dataclass(frozen=True)
class ProcessorSettings:
    """Processor knobs (transformers names). Construction validates; ``dataclasses.replace`` re-validates.

    * ``min_image_tokens`` / ``max_image_tokens``: pixel budget of the single image or thumbnail, in tokens of
      (patch * downsample)² pixels.
    * ``min_tiles`` / ``max_tiles``: range of tile counts of the grid for large images; ``tile_size``: tile side.
    * ``use_thumbnail``: append a downscaled whole image after the tiles.
    * ``do_image_splitting``: tile large images at all (False: always one resized image).
    * ``max_pixels_tolerance``: an image is tiled when its rounded area exceeds max pixels times this.
    * ``use_image_special_tokens``: emit ``<|image_start|>``, row/column and thumbnail markers around the tokens.
    * ``encoder_patch_size``, ``downsample_factor``: the vision encoder's, fixed by the model.
    """

    tile_size: int = 512
    min_tiles: int = 2
    max_tiles: int = 10
    min_image_tokens: int = 64
    max_image_tokens: int = 256
    max_pixels_tolerance: float = 2.0
    use_thumbnail: bool = True
    do_image_splitting: bool = True
    use_image_special_tokens: bool = True
    encoder_patch_size: int = 16
    downsample_factor: int = 2

    def __post_init__(self) -> None:
        for name in _INT_KNOBS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} is invalid: it must be an integer >= 1")
        for name in _BOOL_KNOBS:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r} is invalid: it must be true or false")
        tolerance = self.max_pixels_tolerance
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not math.isfinite(tolerance):
            raise ConfigError(f"max_pixels_tolerance={tolerance!r} is invalid: it must be a finite number > 0")
        if tolerance <= 0:
            raise ConfigError(f"max_pixels_tolerance={tolerance!r} is invalid: it must be a finite number > 0")
        self._check_relations()

    def _check_relations(self) -> None:
        if self.tile_size % self.total_factor:
            raise ConfigError(
                f"tile_size={self.tile_size} is invalid: it must be a multiple of encoder_patch_size * "
                f"downsample_factor = {self.total_factor} (e.g. {self.total_factor * 16})"
            )
        if self.min_tiles > self.max_tiles:
            # transformers raises too (when splitting); checked always so a later toggle cannot surprise.
            raise ConfigError(
                f"min_tiles={self.min_tiles} is larger than max_tiles={self.max_tiles}: lower min_tiles or raise "
                "max_tiles"
            )
        if self.max_tiles > _MAX_TILES_LIMIT:
            raise ConfigError(f"max_tiles={self.max_tiles} is too large: use at most {_MAX_TILES_LIMIT}")
        if self.min_image_tokens > self.max_image_tokens:
            raise ConfigError(
                f"min_image_tokens={self.min_image_tokens} is larger than max_image_tokens={self.max_image_tokens}: "
                "lower min_image_tokens or raise max_image_tokens"
            )

    # Derived values (SPEC.md §3.1).
    @property
    def total_factor(self) -> int:
        """Pixels per token side: every crop side is a multiple of this."""
        return self.encoder_patch_size * self.downsample_factor

    @property
    def min_pixels(self) -> int:
        return self.min_image_tokens * self.total_factor**2

    @property
    def max_pixels(self) -> int:
        return self.max_image_tokens * self.total_factor**2

    @property
    def tile_range(self) -> tuple[int, int]:
        """(min_tiles, max_tiles) in effect: (1, 1) when splitting is off, as transformers does."""
        return (self.min_tiles, self.max_tiles) if self.do_image_splitting else (1, 1)

    @property
    def max_num_patches(self) -> int:
        """Patch rows of a padded crop (transformers' pad length); a crop with more patches is refused."""
        tile_patches = (self.tile_size // self.encoder_patch_size) ** 2 if self.do_image_splitting else 0
        return max(self.max_image_tokens * self.downsample_factor**2, tile_patches)

    @property
    def tokens_per_tile(self) -> int:
        return math.ceil((self.tile_size // self.encoder_patch_size) / self.downsample_factor) ** 2

    def replace(self, **changes: Any) -> ProcessorSettings:
        """A copy with some knobs changed (validated); unknown names raise ConfigError."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown processor setting(s) {unknown}: known are {knob_names()}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_processor_config(cls, config: Mapping[str, Any]) -> ProcessorSettings:
        """Settings from a parsed processor_config.json: LFM2.5's layout (knobs in an ``image_processor`` section,
        ``use_image_special_tokens`` possibly at the top) or LFM2-VL-450M's flat one. Missing knobs keep the
        defaults; ``max_num_patches`` and ``size`` are ignored (transformers recomputes / ignores them)."""
        if not isinstance(config, Mapping):
            raise ConfigError(f"processor config must be a JSON object, got {type(config).__name__}")
        section = config.get("image_processor", config)
        if not isinstance(section, Mapping):
            raise ConfigError(f"processor config 'image_processor' must be an object, got {type(section).__name__}")
        _check_fixed(section)
        values = {name: section[name] for name in knob_names() if section.get(name) is not None}
        top_level = config.get("use_image_special_tokens")
        if "use_image_special_tokens" not in values and top_level is not None:
            values["use_image_special_tokens"] = top_level
        return cls(**values)

    @classmethod
    def from_gguf_metadata(cls, metadata: Mapping[str, Any]) -> ProcessorSettings:
        """Settings from mmproj GGUF metadata (key -> Python value, e.g. from gguf.GGUFReader fields); keys of
        lfm_edge.gguf_keys.PROCESSOR_KEYS. Missing keys keep the defaults (llama.cpp's own files have none)."""
        values: dict[str, Any] = {}
        for name, (key, kind) in PROCESSOR_KEYS.items():
            if key in metadata:
                values[name] = _gguf_value(key, kind, metadata[key])
        missing = sorted(set(PROCESSOR_KEYS) - set(values))
        if missing:
            logger.info("mmproj metadata lacks %s; using LFM2.5-VL-450M defaults for them", ", ".join(missing))
        return cls(**values)


def knob_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ProcessorSettings)]


def _check_fixed(section: Mapping[str, Any]) -> None:
    for name, supported in _SUPPORTED_FIXED.items():
        value = section.get(name)
        if value is None:
            continue
        if isinstance(supported, list):
            same = isinstance(value, list) and len(value) == len(supported)
            same = same and all(math.isclose(v, s) for v, s in zip(value, supported, strict=True))
        else:
            same = isinstance(value, int | float) and math.isclose(value, supported)
        if not same:
            raise ConfigError(
                f"processor config has {name}={value!r}; lfm_edge implements only {name}={supported!r} "
                "(LFM2-VL's bilinear resize and 0.5/0.5 normalisation)"
            )


def _gguf_value(key: str, kind: str, raw: Any) -> Any:
    """Convert a GGUF scalar (Python or numpy) to the knob's Python type, refusing the wrong kind."""
    value = raw.item() if hasattr(raw, "item") else raw
    if kind == "bool":
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
    elif kind == "uint32":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "float32" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(f"GGUF key {key} holds {raw!r}; expected a {kind}. Re-convert the mmproj with lfm-edge convert")


PRESETS: dict[str, ProcessorSettings] = {
    # LFM2.5-VL-450M's processor_config.json (the default).
    "lfm2.5-vl-450m": ProcessorSettings(),
    # The LFM2.5-VL-450M model card's recommendation.
    "model-card": ProcessorSettings(min_image_tokens=MODEL_CARD_MIN_IMAGE_TOKENS),
    # LFM2-VL-450M's processor_config.json: no thumbnail.
    "lfm2-vl-450m": ProcessorSettings(use_thumbnail=False),
}


def preset(name: str) -> ProcessorSettings:
    """A named preset of :data:`PRESETS`."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown processor preset {name!r}: choose one of {sorted(PRESETS)}") from None
