"""HF tensor names -> GGUF tensor names, as data tables (SPEC.md §4.1).

Two steps: `LAYOUT_RULES` rewrites the three known key layouts (official LFM2.5-VL, LFM2-VL-450M's remote-code era,
transformers 5.23 re-saves) to the official one; `TEXT_MAP` / `VISION_MAP` then map official names to llama.cpp's
names, each with the array transform llama.cpp's converter applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

import numpy as np


class Transform(Enum):
    NONE = "none"
    SQUEEZE_CONV = "squeeze_conv"  # conv.conv [C, 1, K] -> [C, K]: ggml's short conv wants a 2-D kernel
    PATCH_TO_CONV = "patch_to_conv"  # Linear over (py, px, C)-flattened patches -> conv kernel [O, C, py, px]


@dataclass(frozen=True)
class NameRule:
    pattern: re.Pattern[str]
    gguf: str  # format string over the pattern's groups
    transform: Transform = Transform.NONE


# (pattern, replacement) applied in order; the result is the official LFM2.5-VL-450M name.
LAYOUT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^language_model\.model\."), "model.language_model."),
    (re.compile(r"^language_model\.lm_head\."), "lm_head."),
    (re.compile(r"^vision_tower\."), "model.vision_tower."),
    (re.compile(r"^multi_modal_projector\."), "model.multi_modal_projector."),
    (re.compile(r"^model\.vision_tower\.(?!vision_model\.)"), "model.vision_tower.vision_model."),
)


def official_name(name: str) -> str:
    for pattern, replacement in LAYOUT_RULES:
        name = pattern.sub(replacement, name)
    return name


def _rules(table: list[tuple[str, str, Transform]]) -> tuple[NameRule, ...]:
    return tuple(NameRule(re.compile(f"^{pattern}$"), gguf, transform) for pattern, gguf, transform in table)


_T = r"model\.language_model\."
_L = _T + r"layers\.(\d+)\."
_NONE, _SQUEEZE, _PATCH = Transform.NONE, Transform.SQUEEZE_CONV, Transform.PATCH_TO_CONV

TEXT_MAP = _rules(
    [
        (_T + r"embed_tokens\.weight", "token_embd.weight", _NONE),
        # llama.cpp loads token_embd_norm as LFM2's final norm (LLM_TENSOR_OUTPUT_NORM_LFM2).
        (_T + r"embedding_norm\.weight", "token_embd_norm.weight", _NONE),
        (r"lm_head\.weight", "output.weight", _NONE),
        (_L + r"operator_norm\.weight", "blk.{0}.attn_norm.weight", _NONE),
        (_L + r"ffn_norm\.weight", "blk.{0}.ffn_norm.weight", _NONE),
        (_L + r"feed_forward\.w1\.weight", "blk.{0}.ffn_gate.weight", _NONE),
        (_L + r"feed_forward\.w3\.weight", "blk.{0}.ffn_up.weight", _NONE),
        (_L + r"feed_forward\.w2\.weight", "blk.{0}.ffn_down.weight", _NONE),
        (_L + r"conv\.conv\.weight", "blk.{0}.shortconv.conv.weight", _SQUEEZE),
        (_L + r"conv\.in_proj\.weight", "blk.{0}.shortconv.in_proj.weight", _NONE),
        (_L + r"conv\.out_proj\.weight", "blk.{0}.shortconv.out_proj.weight", _NONE),
        (_L + r"self_attn\.q_proj\.weight", "blk.{0}.attn_q.weight", _NONE),  # no RoPE permutation: NeoX rope
        (_L + r"self_attn\.k_proj\.weight", "blk.{0}.attn_k.weight", _NONE),
        (_L + r"self_attn\.v_proj\.weight", "blk.{0}.attn_v.weight", _NONE),
        (_L + r"self_attn\.out_proj\.weight", "blk.{0}.attn_output.weight", _NONE),
        (_L + r"self_attn\.q_layernorm\.weight", "blk.{0}.attn_q_norm.weight", _NONE),
        (_L + r"self_attn\.k_layernorm\.weight", "blk.{0}.attn_k_norm.weight", _NONE),
    ]
)

_V = r"model\.vision_tower\.vision_model\."
_E = _V + r"encoder\.layers\.(\d+)\."
_P = r"model\.multi_modal_projector\."
_WB = r"\.(weight|bias)"

VISION_MAP = _rules(
    [
        (_V + r"embeddings\.patch_embedding\.weight", "v.patch_embd.weight", _PATCH),
        (_V + r"embeddings\.patch_embedding\.bias", "v.patch_embd.bias", _NONE),
        (_V + r"embeddings\.position_embedding\.weight", "v.position_embd.weight", _NONE),
        (_E + r"layer_norm1" + _WB, "v.blk.{0}.ln1.{1}", _NONE),
        (_E + r"layer_norm2" + _WB, "v.blk.{0}.ln2.{1}", _NONE),
        (_E + r"self_attn\.q_proj" + _WB, "v.blk.{0}.attn_q.{1}", _NONE),
        (_E + r"self_attn\.k_proj" + _WB, "v.blk.{0}.attn_k.{1}", _NONE),
        (_E + r"self_attn\.v_proj" + _WB, "v.blk.{0}.attn_v.{1}", _NONE),
        (_E + r"self_attn\.out_proj" + _WB, "v.blk.{0}.attn_out.{1}", _NONE),
        (_E + r"mlp\.fc1" + _WB, "v.blk.{0}.ffn_up.{1}", _NONE),
        (_E + r"mlp\.fc2" + _WB, "v.blk.{0}.ffn_down.{1}", _NONE),
        (_V + r"post_layernorm" + _WB, "v.post_ln.{0}", _NONE),
        # LFM2-VL-450M only (projector_use_layernorm); llama.cpp loads it as optional mm.input_norm.
        (_P + r"layer_norm" + _WB, "mm.input_norm.{0}", _NONE),
        (_P + r"linear_1" + _WB, "mm.1.{0}", _NONE),
        (_P + r"linear_2" + _WB, "mm.2.{0}", _NONE),
    ]
)


def gguf_name(official: str, table: tuple[NameRule, ...]) -> tuple[str, Transform] | None:
    for rule in table:
        match = rule.pattern.match(official)
        if match:
            return rule.gguf.format(*match.groups()), rule.transform
    return None


def apply_transform(values: np.ndarray, transform: Transform, patch_size: int) -> np.ndarray:
    if transform is Transform.SQUEEZE_CONV:
        return values.reshape(values.shape[0], values.shape[2])
    if transform is Transform.PATCH_TO_CONV:
        # HF flattens each patch as (py, px, C) (convert_image_to_patches); ggml's conv wants [O, C, py, px].
        out_features = values.shape[0]
        return np.ascontiguousarray(values.reshape(out_features, patch_size, patch_size, 3).transpose(0, 3, 1, 2))
    return values
