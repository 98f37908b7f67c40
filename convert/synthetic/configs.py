"""The config files of a synthetic checkpoint: the official files, with tiny dimensions for size `tiny`.

Sizes and layouts are data tables. `full` keeps every official number; `tiny` keeps every key and the structure
(conv/attention interleave, SigLIP2 16x16 position grid, 16-pixel patches, vocab 65,536) with small widths.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from lfm_edge.errors import ConfigError

SIZES = ("tiny", "full")
LAYOUTS = ("official-2.5", "lfm2-vl", "resaved-5.23")
# Official model -> the layout holding its official files. Only models whose config.json is public here have one
# (lfm_edge.image.family lists the others). Name the output folder after the model: converters derive
# general.name from it, as they do for the official checkpoint.
MODEL_LAYOUTS = {"LFM2.5-VL-450M": "official-2.5", "LFM2-VL-450M": "lfm2-vl"}

# Official folder each layout starts from.
_OFFICIAL_DIR = {
    "official-2.5": "lfm2.5-vl-450m",
    "resaved-5.23": "lfm2.5-vl-450m",
    "lfm2-vl": "lfm2-vl-450m",
}

# text hidden 64 (4 heads of 16, 2 KV heads); FFN: int(2*384/3)=256, already a multiple of 256.
_TINY_TEXT = {
    "hidden_size": 64,
    "block_dim": 64,
    "conv_dim": 64,
    "conv_dim_out": 64,
    "num_attention_heads": 4,
    "num_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 384,
    "block_ff_dim": 384,
    "num_hidden_layers": 4,
    "layer_types": ["conv", "full_attention", "full_attention", "conv"],
}
# >= 3 vision layers: llama.cpp maps multi_modal_projector.linear_{1,2} through its block-id table.
_TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 3}
_TINY_PROJECTOR_HIDDEN = {"official-2.5": 96, "resaved-5.23": 96, "lfm2-vl": 120}


@dataclass(frozen=True)
class CheckpointSpec:
    """What to generate: one of SIZES x LAYOUTS, and the seed of the random weights."""

    size: str = "tiny"
    layout: str = "official-2.5"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ConfigError(f"unknown synthetic size {self.size!r}: choose one of {', '.join(SIZES)}")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"unknown synthetic layout {self.layout!r}: choose one of {', '.join(LAYOUTS)}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed {self.seed} out of range: use an integer in [0, 2**32)")


def official_text(layout: str, filename: str) -> str:
    """The verbatim text of an official file shipped beside this module."""
    folder = resources.files("convert.synthetic") / "official" / _OFFICIAL_DIR[layout]
    return (folder / filename).read_text(encoding="utf-8")


def official_json(layout: str, filename: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(official_text(layout, filename))
    return data


def official_file_names(layout: str) -> list[str]:
    folder = resources.files("convert.synthetic") / "official" / _OFFICIAL_DIR[layout]
    return sorted(entry.name for entry in folder.iterdir() if entry.name != "config.json")


def model_config(spec: CheckpointSpec) -> dict[str, Any]:
    """config.json for the spec: official for `full`; official keys with tiny widths for `tiny`."""
    config = copy.deepcopy(official_json(spec.layout, "config.json"))
    if spec.size == "tiny":
        config["text_config"].update(copy.deepcopy(_TINY_TEXT))
        config["vision_config"].update(_TINY_VISION)
        config["projector_hidden_size"] = _TINY_PROJECTOR_HIDDEN[spec.layout]
    return config
