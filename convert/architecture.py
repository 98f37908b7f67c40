"""The LFM2(.5)-VL architecture as data: every tensor's official name and shape, derived from config.json.

Names are in the official LFM2.5-VL-450M layout (SPEC.md §4.1). The converter checks checkpoints against this table
(missing, unexpected, wrong shape); the synthetic generator fills it with random values (seeded per official name, so
the three layouts of one seed hold the same weights).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from convert.dims import Dims

TEXT = "model.language_model."
VISION = "model.vision_tower.vision_model."
PROJECTOR = "model.multi_modal_projector."

# (official prefix, prefix in that layout), first match wins.
LAYOUT_PREFIXES: dict[str, tuple[tuple[str, str], ...]] = {
    "official-2.5": (),
    "resaved-5.23": ((VISION, "model.vision_tower."),),
    "lfm2-vl": (
        (TEXT, "language_model.model."),
        (VISION, "vision_tower.vision_model."),
        (PROJECTOR, "multi_modal_projector."),
    ),
}


@dataclass(frozen=True)
class TensorSpec:
    name: str  # official layout
    shape: tuple[int, ...]
    init: str  # one of _INIT_STD's keys, or "norm" / "bias"


def rename(name: str, layout: str) -> str:
    for official, renamed in LAYOUT_PREFIXES[layout]:
        if name.startswith(official):
            return renamed + name[len(official) :]
    return name


def _text_tensors(d: Dims) -> Iterator[TensorSpec]:
    head_dim = d.hidden // d.heads
    yield TensorSpec(f"{TEXT}embed_tokens.weight", (d.vocab, d.hidden), "embedding")
    yield TensorSpec(f"{TEXT}embedding_norm.weight", (d.hidden,), "norm")
    for i, kind in enumerate(d.layer_types):
        layer = f"{TEXT}layers.{i}."
        if kind == "conv":
            yield TensorSpec(f"{layer}conv.conv.weight", (d.hidden, 1, d.conv_kernel), "conv")
            yield TensorSpec(f"{layer}conv.in_proj.weight", (3 * d.hidden, d.hidden), "linear")
            yield TensorSpec(f"{layer}conv.out_proj.weight", (d.hidden, d.hidden), "linear")
        else:
            attn = f"{layer}self_attn."
            yield TensorSpec(f"{attn}q_proj.weight", (d.heads * head_dim, d.hidden), "linear")
            yield TensorSpec(f"{attn}k_proj.weight", (d.kv_heads * head_dim, d.hidden), "linear")
            yield TensorSpec(f"{attn}v_proj.weight", (d.kv_heads * head_dim, d.hidden), "linear")
            yield TensorSpec(f"{attn}out_proj.weight", (d.hidden, d.heads * head_dim), "linear")
            yield TensorSpec(f"{attn}q_layernorm.weight", (head_dim,), "norm")
            yield TensorSpec(f"{attn}k_layernorm.weight", (head_dim,), "norm")
        yield TensorSpec(f"{layer}operator_norm.weight", (d.hidden,), "norm")
        yield TensorSpec(f"{layer}ffn_norm.weight", (d.hidden,), "norm")
        yield TensorSpec(f"{layer}feed_forward.w1.weight", (d.ffn, d.hidden), "linear")
        yield TensorSpec(f"{layer}feed_forward.w3.weight", (d.ffn, d.hidden), "linear")
        yield TensorSpec(f"{layer}feed_forward.w2.weight", (d.hidden, d.ffn), "linear")


def _linear(name: str, out_features: int, in_features: int) -> Iterator[TensorSpec]:
    yield TensorSpec(f"{name}.weight", (out_features, in_features), "linear")
    yield TensorSpec(f"{name}.bias", (out_features,), "bias")


def _layernorm(name: str, width: int) -> Iterator[TensorSpec]:
    yield TensorSpec(f"{name}.weight", (width,), "norm")
    yield TensorSpec(f"{name}.bias", (width,), "bias")


def _vision_tensors(d: Dims) -> Iterator[TensorSpec]:
    v, patch_values = d.vision_hidden, 3 * d.patch_size * d.patch_size
    yield from _linear(f"{VISION}embeddings.patch_embedding", v, patch_values)
    yield TensorSpec(f"{VISION}embeddings.position_embedding.weight", (d.vision_positions, v), "position")
    for i in range(d.vision_layers):
        layer = f"{VISION}encoder.layers.{i}."
        yield from _layernorm(f"{layer}layer_norm1", v)
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            yield from _linear(f"{layer}self_attn.{proj}", v, v)
        yield from _layernorm(f"{layer}layer_norm2", v)
        yield from _linear(f"{layer}mlp.fc1", d.vision_ffn, v)
        yield from _linear(f"{layer}mlp.fc2", v, d.vision_ffn)
    yield from _layernorm(f"{VISION}post_layernorm", v)


def _projector_tensors(d: Dims) -> Iterator[TensorSpec]:
    unshuffled = d.vision_hidden * d.downsample * d.downsample
    if d.projector_layernorm:
        yield from _layernorm(f"{PROJECTOR}layer_norm", unshuffled)
    yield from _linear(f"{PROJECTOR}linear_1", d.projector_hidden, unshuffled)
    yield from _linear(f"{PROJECTOR}linear_2", d.hidden, d.projector_hidden)


def tensor_specs(dims: Dims) -> list[TensorSpec]:
    """Every tensor of the checkpoint, official names, in a fixed order (no lm_head: embeddings are tied)."""
    return [*_text_tensors(dims), *_vision_tensors(dims), *_projector_tensors(dims)]


def _std(spec: TensorSpec) -> float:
    # Scaled so activations keep unit RMS through residual blocks and tied-embedding logits have std ~3:
    # peaked enough to be informative, far from degenerate.
    if spec.init == "embedding":
        return 3.0 / float(np.sqrt(spec.shape[1]))
    if spec.init == "conv":
        return 0.5 / float(np.sqrt(spec.shape[-1]))
    if spec.init == "position":
        return 0.2
    if spec.init == "bias":
        return 0.02
    if spec.init == "norm":
        return 0.1
    return 1.0 / float(np.sqrt(spec.shape[-1]))


def random_values(spec: TensorSpec, seed: int) -> np.ndarray:
    """float32 values of one tensor, a pure function of (seed, official name)."""
    digest = hashlib.sha256(spec.name.encode()).digest()
    rng = np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])
    values = rng.standard_normal(spec.shape, dtype=np.float32) * np.float32(_std(spec))
    if spec.init == "norm":
        values += np.float32(1.0)
    return values


def to_bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even, as torch's .to(torch.bfloat16)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)
