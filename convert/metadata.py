"""GGUF key/values of the text model (arch `lfm2`) and of the mmproj (arch `clip`, projector `lfm2`).

The values are those llama.cpp's own converter writes (SPEC.md §4.2, checked against its output in
tests/goldens/llamacpp); the mmproj additionally carries the processor settings under `lfm_edge.processor.*`
(lfm_edge/gguf_keys.py) so the runtime needs nothing but the two files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gguf

from convert.checkpoint import Checkpoint
from convert.vocab import Vocabulary
from lfm_edge.errors import CheckpointError
from lfm_edge.gguf_keys import PROCESSOR_KEYS

log = logging.getLogger(__name__)

# HF's SigLIP2 NaFlex has no fixed image size; llama.cpp's converter writes 256 for LFM2-VL (conversion/lfm2.py).
_MMPROJ_IMAGE_SIZE = 256
# The processor keys that have defaults in transformers' Lfm2VlImageProcessor when a config omits them.
_PROCESSOR_DEFAULTS: dict[str, Any] = {"use_image_special_tokens": True, "do_image_splitting": True}


def general_metadata(writer: gguf.GGUFWriter, checkpoint: Checkpoint, file_type: int, kind: str) -> None:
    """general.* keys as llama.cpp's converter derives them (gguf-py Metadata heuristics over the folder)."""
    total_params, shared, expert, experts = writer.get_total_parameter_count()
    metadata = gguf.Metadata.load(None, checkpoint.folder, None, total_params)
    if metadata.name is None:
        metadata.name = checkpoint.folder.name
    if metadata.size_label is None and total_params > 0:
        metadata.size_label = gguf.size_label(total_params, shared, expert, experts)
    writer.add_type(kind)
    metadata.set_gguf_meta_model(writer)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_file_type(file_type)


def text_metadata(writer: gguf.GGUFWriter, checkpoint: Checkpoint, vocab: Vocabulary) -> None:
    text = {**checkpoint.config, **checkpoint.config["text_config"]}  # text_config wins, as llama.cpp merges them
    dims = checkpoint.dims
    writer.add_block_count(len(dims.layer_types))
    writer.add_context_length(int(text["max_position_embeddings"]))
    writer.add_embedding_length(dims.hidden)
    writer.add_feed_forward_length(dims.ffn)
    writer.add_head_count(dims.heads)
    # llama.cpp marks a layer recurrent (short conv) by head_count_kv == 0.
    writer.add_head_count_kv([dims.kv_heads if kind != "conv" else 0 for kind in dims.layer_types])
    writer.add_rope_freq_base(float(_rope_theta(text)))
    writer.add_layer_norm_rms_eps(float(text.get("norm_eps", 1e-5)))
    writer.add_vocab_size(dims.vocab)
    writer.add_shortconv_l_cache(dims.conv_kernel)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    vocab.special.add_to_gguf(writer, quiet=True)


def _rope_theta(text: dict[str, Any]) -> float:
    rope = text.get("rope_parameters") or {}
    theta = rope.get("rope_theta", text.get("rope_theta"))
    if theta is None:
        raise CheckpointError("config.json has no rope_theta (text_config.rope_parameters); restore the original")
    if rope.get("rope_type", "default") != "default":
        raise CheckpointError(f"config.json asks for rope_type {rope['rope_type']!r}; LFM2 uses plain RoPE")
    return float(theta)


def mmproj_metadata(writer: gguf.GGUFWriter, checkpoint: Checkpoint) -> None:
    config, vision, dims = checkpoint.config, checkpoint.config["vision_config"], checkpoint.dims
    processor = checkpoint.processor
    writer.add_clip_has_vision_encoder(True)
    writer.add_vision_projection_dim(dims.hidden)
    writer.add_vision_image_size(_MMPROJ_IMAGE_SIZE)
    writer.add_vision_patch_size(dims.patch_size)
    writer.add_vision_embedding_length(dims.vision_hidden)
    writer.add_vision_feed_forward_length(dims.vision_ffn)
    writer.add_vision_block_count(dims.vision_layers)
    writer.add_vision_head_count(int(vision["num_attention_heads"]))
    writer.add_vision_image_mean(list(processor.get("image_mean", [0.5, 0.5, 0.5])))
    writer.add_vision_image_std(list(processor.get("image_std", [0.5, 0.5, 0.5])))
    writer.add_clip_projector_type(gguf.VisionProjectorType.LFM2)
    writer.add_vision_attention_layernorm_eps(float(vision.get("layer_norm_eps", 1e-6)))
    writer.add_vision_projector_scale_factor(dims.downsample)
    writer.add_vision_use_gelu(True)  # SigLIP2's MLP is gelu_pytorch_tanh
    _processor_metadata(writer, {**config, **processor}, checkpoint.folder)


def _processor_metadata(writer: gguf.GGUFWriter, settings: dict[str, Any], folder: Path) -> None:
    for hf_key, (gguf_key, kind) in PROCESSOR_KEYS.items():
        value = settings.get(hf_key, _PROCESSOR_DEFAULTS.get(hf_key))
        if value is None:
            raise CheckpointError(
                f"{folder}: processor setting {hf_key!r} is in neither processor_config.json nor config.json; "
                "restore the original processor_config.json"
            )
        if kind == "bool":
            writer.add_bool(gguf_key, bool(value))
        elif kind == "float32":
            writer.add_float32(gguf_key, float(value))
        else:
            writer.add_uint32(gguf_key, int(value))
