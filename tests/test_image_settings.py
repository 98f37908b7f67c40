"""ProcessorSettings: validation, the two processor_config.json layouts, mmproj GGUF metadata, presets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lfm_edge.errors import ConfigError
from lfm_edge.gguf_keys import PROCESSOR_KEYS
from lfm_edge.image import PRESETS, ProcessorSettings, preset

OFFICIAL = Path(__file__).resolve().parents[1] / "convert" / "synthetic" / "official"


def _config(model: str) -> dict[str, Any]:
    return json.loads((OFFICIAL / model / "processor_config.json").read_text())  # type: ignore[no-any-return]


def test_defaults_are_lfm2_5_vl_450m() -> None:
    settings = ProcessorSettings()
    assert ProcessorSettings.from_processor_config(_config("lfm2.5-vl-450m")) == settings
    # SPEC.md §3.1
    assert (settings.min_pixels, settings.max_pixels, settings.max_num_patches) == (65_536, 262_144, 1024)
    assert settings.tokens_per_tile == 256


def test_lfm2_vl_450m_flat_layout() -> None:
    settings = ProcessorSettings.from_processor_config(_config("lfm2-vl-450m"))
    assert settings == ProcessorSettings(use_thumbnail=False) == preset("lfm2-vl-450m")


def test_use_image_special_tokens_at_the_top_level() -> None:
    config = {"image_processor": {"tile_size": 384}, "use_image_special_tokens": False}
    settings = ProcessorSettings.from_processor_config(config)
    assert (settings.tile_size, settings.use_image_special_tokens) == (384, False)


def test_model_card_preset() -> None:
    assert preset("model-card") == ProcessorSettings(min_image_tokens=32)
    assert set(PRESETS) == {"lfm2.5-vl-450m", "model-card", "lfm2-vl-450m"}
    with pytest.raises(ConfigError, match="unknown processor preset 'fast'"):
        preset("fast")


def test_splitting_off_means_one_tile() -> None:
    settings = ProcessorSettings(do_image_splitting=False, max_image_tokens=128)
    assert settings.tile_range == (1, 1)
    assert settings.max_num_patches == 512  # no tile term when not splitting


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tile_size": 500}, "tile_size=500 is invalid: it must be a multiple of"),
        ({"tile_size": 0}, "tile_size=0 is invalid"),
        ({"min_tiles": 0}, "min_tiles=0 is invalid"),
        ({"max_tiles": 1.5}, "max_tiles=1.5 is invalid"),
        ({"max_tiles": True}, "max_tiles=True is invalid"),
        ({"min_tiles": 5, "max_tiles": 4}, "min_tiles=5 is larger than max_tiles=4"),
        ({"max_tiles": 1000}, "max_tiles=1000 is too large"),
        ({"min_image_tokens": 300}, "min_image_tokens=300 is larger than max_image_tokens=256"),
        ({"max_image_tokens": -1}, "max_image_tokens=-1 is invalid"),
        ({"max_pixels_tolerance": 0.0}, "max_pixels_tolerance=0.0 is invalid"),
        ({"max_pixels_tolerance": float("nan")}, "max_pixels_tolerance=nan is invalid"),
        ({"max_pixels_tolerance": "2"}, "max_pixels_tolerance='2' is invalid"),
        ({"use_thumbnail": 1}, "use_thumbnail=1 is invalid: it must be true or false"),
        ({"do_image_splitting": "yes"}, "do_image_splitting='yes' is invalid"),
        ({"encoder_patch_size": 0}, "encoder_patch_size=0 is invalid"),
        ({"tile_size": 512, "image_size": 3}, r"unknown processor setting\(s\) \['image_size'\]"),
    ],
)
def test_bad_knobs_are_refused_with_the_value_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProcessorSettings().replace(**changes)


@pytest.mark.parametrize(
    ("key", "value"),
    [("image_mean", [0.48, 0.45, 0.4]), ("image_std", [0.5, 0.5]), ("rescale_factor", 1.0), ("resample", 3)],
)
def test_unsupported_normalisation_is_refused(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"processor config has {key}="):
        ProcessorSettings.from_processor_config({"image_processor": {key: value}})


def test_config_must_be_objects() -> None:
    with pytest.raises(ConfigError, match="must be a JSON object"):
        ProcessorSettings.from_processor_config([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'image_processor' must be an object"):
        ProcessorSettings.from_processor_config({"image_processor": 5})


def test_config_values_are_validated() -> None:
    with pytest.raises(ConfigError, match="max_tiles='10' is invalid"):
        ProcessorSettings.from_processor_config({"max_tiles": "10"})


def _metadata(settings: ProcessorSettings, numpy_scalars: bool) -> dict[str, Any]:
    converters = {"uint32": np.uint32, "float32": np.float32, "bool": np.bool_}
    metadata = {}
    for name, (key, kind) in PROCESSOR_KEYS.items():
        value = getattr(settings, name)
        metadata[key] = converters[kind](value) if numpy_scalars else value
    return metadata


@pytest.mark.parametrize("numpy_scalars", [False, True])
def test_gguf_metadata_round_trip(numpy_scalars: bool) -> None:
    settings = ProcessorSettings(min_image_tokens=32, use_thumbnail=False, max_tiles=6, max_pixels_tolerance=1.5)
    assert ProcessorSettings.from_gguf_metadata(_metadata(settings, numpy_scalars)) == settings


def test_gguf_metadata_missing_keys_keep_defaults() -> None:
    assert ProcessorSettings.from_gguf_metadata({"general.architecture": "clip"}) == ProcessorSettings()


@pytest.mark.parametrize(("name", "bad"), [("max_tiles", "10"), ("use_thumbnail", 2), ("max_pixels_tolerance", True)])
def test_gguf_metadata_of_the_wrong_kind_is_refused(name: str, bad: Any) -> None:
    key, kind = PROCESSOR_KEYS[name]
    with pytest.raises(ConfigError, match=f"GGUF key {key} holds .*expected a {kind}"):
        ProcessorSettings.from_gguf_metadata({key: bad})
