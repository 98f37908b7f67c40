"""The numbers of a config.json that fix every tensor shape (transformers 5.23 semantics)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dims:
    """The numbers that fix every tensor shape."""

    vocab: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    layer_types: tuple[str, ...]
    conv_kernel: int
    vision_hidden: int
    vision_ffn: int
    vision_layers: int
    vision_positions: int
    patch_size: int
    projector_hidden: int
    projector_layernorm: bool
    downsample: int


def effective_ffn(text: dict[str, Any]) -> int:
    """Lfm2MLP's feed-forward width (transformers modeling_lfm2.py: auto-adjust, multiplier, round up)."""
    ff = int(text.get("block_ff_dim", text["intermediate_size"]))
    if text.get("block_auto_adjust_ff_dim", True):
        ff = int(2 * ff / 3)
        multiplier = text.get("block_ffn_dim_multiplier")
        if multiplier is not None:
            ff = int(multiplier * ff)
        multiple = int(text.get("block_multiple_of", 256))
        ff = multiple * ((ff + multiple - 1) // multiple)
    return ff


def dims_of(config: dict[str, Any]) -> Dims:
    text, vision = config["text_config"], config["vision_config"]
    # LFM2-VL-450M's config has no projector_use_layernorm key; its remote code always had the LayerNorm.
    layernorm = bool(config.get("projector_use_layernorm", True))
    return Dims(
        vocab=text["vocab_size"],
        hidden=text["hidden_size"],
        ffn=effective_ffn(text),
        heads=text["num_attention_heads"],
        kv_heads=text["num_key_value_heads"],
        layer_types=tuple(text["layer_types"]),
        conv_kernel=text["conv_L_cache"],
        vision_hidden=vision["hidden_size"],
        vision_ffn=vision["intermediate_size"],
        vision_layers=vision["num_hidden_layers"],
        vision_positions=vision["num_patches"],
        patch_size=vision["patch_size"],
        projector_hidden=config["projector_hidden_size"],
        projector_layernorm=layernorm,
        downsample=config["downsample_factor"],
    )
