"""The processor settings of Liquid AI's published LFM2(.5)-VL models, and how to recognise each from its GGUF.

Liquid AI's own GGUF repos hold mmproj files written by llama.cpp's converter, which carry none of lfm_edge's
``lfm_edge.processor.*`` keys; this table lets the runtime still use the right image layout for them. Every value
names its public source; a model whose processor settings could not be sourced is left out (see ``NOT_IN_TABLE``)
and gets the defaults with a warning.

Recognition: first by name (``general.name``, ``general.basename`` + ``general.size_label``, the base-model names
and repo URLs, the file names and the Hub repo id, compared with punctuation and case removed), then by the
structural signature of the mmproj (projector LayerNorm present, projector width, vision depth and width, text
width). Only signatures read from an official ``config.json`` are listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from lfm_edge.image.settings import ProcessorSettings


@dataclass(frozen=True)
class Signature:
    """What an mmproj's tensors and keys say about the model, independent of its name."""

    projector_layernorm: bool  # mm.input_norm.* present (config: projector_use_layernorm)
    projector_width: int  # rows of mm.1.weight (config: projector_hidden_size)
    vision_blocks: int  # clip.vision.block_count (config: vision_config.num_hidden_layers)
    vision_width: int  # clip.vision.embedding_length (config: vision_config.hidden_size)
    text_width: int  # clip.vision.projection_dim (config: text_config.hidden_size)


@dataclass(frozen=True)
class FamilyModel:
    name: str  # as Liquid AI spells it
    repo: str  # the original (safetensors) repo on the Hugging Face Hub
    settings: ProcessorSettings
    signature: Signature | None
    sources: tuple[str, ...]  # where the settings (and the signature) come from

    @property
    def key(self) -> str:
        return normalise(self.name)


def normalise(text: str) -> str:
    """Lower case, letters and digits only: 'LFM2.5 VL 450M' and 'lfm2.5-vl-450m' both become 'lfm25vl450m'."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


FAMILY: tuple[FamilyModel, ...] = (
    FamilyModel(
        name="LFM2.5-VL-450M",
        repo="LiquidAI/LFM2.5-VL-450M",
        # processor_config.json at revision fc6221ca597f3315e4f82fc2df606783267b34ba (sha256 622b75b5…8ae718;
        # verbatim in convert/synthetic/official/lfm2.5-vl-450m/): every knob equals ProcessorSettings' defaults.
        settings=ProcessorSettings(),
        # config.json, same revision: projector_use_layernorm false, projector_hidden_size 2048, vision 12 x 768,
        # text hidden_size 1024.
        signature=Signature(False, 2048, 12, 768, 1024),
        sources=(
            "https://huggingface.co/LiquidAI/LFM2.5-VL-450M/blob/fc6221ca597f3315e4f82fc2df606783267b34ba/"
            "processor_config.json",
            "https://huggingface.co/LiquidAI/LFM2.5-VL-450M/blob/fc6221ca597f3315e4f82fc2df606783267b34ba/config.json",
        ),
    ),
    FamilyModel(
        name="LFM2-VL-450M",
        repo="LiquidAI/LFM2-VL-450M",
        # processor_config.json (blob 4ee6792, 436 bytes; verbatim in convert/synthetic/official/lfm2-vl-450m/):
        # use_thumbnail false, every other knob as LFM2.5's. Liquid AI's LFM2-VL-450M-WebGPU space
        # (vl-processor.js) says the same: "useThumbnail: false, // LFM2-VL-450M does not use thumbnail".
        settings=ProcessorSettings(use_thumbnail=False),
        # config.json (same folder): projector LayerNorm (no projector_use_layernorm key: transformers' default
        # True; the remote code always had it), projector_hidden_size 2560, vision 12 x 768, text 1024.
        signature=Signature(True, 2560, 12, 768, 1024),
        sources=(
            "https://huggingface.co/LiquidAI/LFM2-VL-450M/blob/refs%2Fpr%2F4/processor_config.json",
            "https://huggingface.co/spaces/LiquidAI/LFM2-VL-450M-WebGPU/blob/main/vl-processor.js",
        ),
    ),
    FamilyModel(
        name="LFM2-VL-1.6B",
        repo="LiquidAI/LFM2-VL-1.6B",
        # processor_config.json (blob 5c24786, 435 bytes, unchanged on main at 125f2f31; verbatim in
        # convert/synthetic/official/lfm2-vl-1.6b/): max_pixels_tolerance 1.5, use_thumbnail true, the rest as
        # LFM2.5's. transformers' model doc agrees: "In LFM2-VL-1.6B, the model also receives a thumbnail".
        settings=ProcessorSettings(max_pixels_tolerance=1.5),
        # Its config.json could not be read from a public copy here: no structural signature.
        signature=None,
        sources=(
            "https://huggingface.co/LiquidAI/LFM2-VL-1.6B/blob/refs%2Fpr%2F2/processor_config.json",
            "https://huggingface.co/docs/transformers/model_doc/lfm2_vl",
        ),
    ),
)

# Published models left out, and why (shown by `lfm-edge info` when such a model falls back to the defaults).
NOT_IN_TABLE: dict[str, str] = {
    "LFM2-VL-3B": "its processor_config.json holds only use_image_special_tokens; the official "
    "preprocessor_config.json could not be read (a third-party MLX copy says resample 3, bicubic, which lfm_edge "
    "does not implement)",
    "LFM2.5-VL-1.6B": "its processor_config.json could not be read from a public copy",
    "LFM2.5-VL-3B": "its processor_config.json could not be read from a public copy",
}


def by_name(names: Iterable[str]) -> tuple[FamilyModel, str] | None:
    """The model whose normalised name occurs in one of the names (the longest match wins), and that name."""
    best: tuple[FamilyModel, str] | None = None
    for name in names:
        flat = normalise(name)
        for model in FAMILY:
            if model.key in flat and (best is None or len(model.key) > len(best[0].key)):
                best = (model, name)
    return best


def by_signature(signature: Signature) -> FamilyModel | None:
    matches = [model for model in FAMILY if model.signature == signature]
    return matches[0] if len(matches) == 1 else None


def unsourced(names: Iterable[str]) -> str | None:
    """The left-out model one of the names refers to, with the reason, for the defaults warning."""
    for name in names:
        flat = normalise(name)
        for model, reason in sorted(NOT_IN_TABLE.items(), key=lambda item: -len(item[0])):
            if normalise(model) in flat:
                return f"{model}: {reason}"
    return None
