"""`full` synthetic checkpoints have exactly the official tensor names, shapes and dtypes (SPEC.md §4.1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from convert.architecture import rename, tensor_specs
from convert.dims import dims_of
from convert.safetensors_io import read_header
from convert.synthetic import CheckpointSpec, write_checkpoint
from convert.synthetic.configs import model_config

ATTENTION_LAYERS = (2, 5, 8, 10, 12, 14)  # SPEC.md §1.1: layer_types of LFM2.5-VL-450M
ATTENTION_SHAPES = {
    "q_proj": (1024, 1024),
    "k_proj": (512, 1024),
    "v_proj": (512, 1024),
    "out_proj": (1024, 1024),
    "q_layernorm": (64,),
    "k_layernorm": (64,),
}
T, V, P = "model.language_model.", "model.vision_tower.vision_model.", "model.multi_modal_projector."


def _spec_table(projector_hidden: int = 2048, projector_layernorm: bool = False) -> dict[str, tuple[int, ...]]:
    """SPEC.md §4.1, transcribed: official HF tensor name -> torch shape."""
    table: dict[str, tuple[int, ...]] = {
        f"{T}embed_tokens.weight": (65536, 1024),
        f"{T}embedding_norm.weight": (1024,),
        f"{V}embeddings.patch_embedding.weight": (768, 768),
        f"{V}embeddings.patch_embedding.bias": (768,),
        f"{V}embeddings.position_embedding.weight": (256, 768),
        f"{V}post_layernorm.weight": (768,),
        f"{V}post_layernorm.bias": (768,),
        f"{P}linear_1.weight": (projector_hidden, 3072),
        f"{P}linear_1.bias": (projector_hidden,),
        f"{P}linear_2.weight": (1024, projector_hidden),
        f"{P}linear_2.bias": (1024,),
    }
    if projector_layernorm:
        table[f"{P}layer_norm.weight"] = table[f"{P}layer_norm.bias"] = (3072,)
    for i in range(16):
        layer = f"{T}layers.{i}."
        table |= {
            f"{layer}operator_norm.weight": (1024,),
            f"{layer}ffn_norm.weight": (1024,),
            f"{layer}feed_forward.w1.weight": (4608, 1024),
            f"{layer}feed_forward.w3.weight": (4608, 1024),
            f"{layer}feed_forward.w2.weight": (1024, 4608),
        }
        if i in ATTENTION_LAYERS:
            for name, shape in ATTENTION_SHAPES.items():
                table[f"{layer}self_attn.{name}.weight"] = shape
        else:
            table[f"{layer}conv.conv.weight"] = (1024, 1, 3)
            table[f"{layer}conv.in_proj.weight"] = (3072, 1024)
            table[f"{layer}conv.out_proj.weight"] = (1024, 1024)
    for i in range(12):
        layer = f"{V}encoder.layers.{i}."
        for norm in ("layer_norm1", "layer_norm2"):
            table[f"{layer}{norm}.weight"] = table[f"{layer}{norm}.bias"] = (768,)
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            table[f"{layer}self_attn.{proj}.weight"] = (768, 768)
            table[f"{layer}self_attn.{proj}.bias"] = (768,)
        table[f"{layer}mlp.fc1.weight"], table[f"{layer}mlp.fc1.bias"] = (3072, 768), (3072,)
        table[f"{layer}mlp.fc2.weight"], table[f"{layer}mlp.fc2.bias"] = (768, 3072), (768,)
    return table


def _generated(layout: str) -> dict[str, tuple[int, ...]]:
    specs = tensor_specs(dims_of(model_config(CheckpointSpec("full", layout))))
    return {rename(s.name, layout): s.shape for s in specs}


def test_full_official_matches_spec_4_1_exactly() -> None:
    table = _spec_table()
    assert _generated("official-2.5") == table
    assert len(table) == 349
    assert sum(int(np.prod(shape)) for shape in table.values()) == 448_718_848


def test_full_lfm2_vl_has_the_2560_projector_and_its_layernorm() -> None:
    table = {rename(k, "lfm2-vl"): v for k, v in _spec_table(2560, projector_layernorm=True).items()}
    assert _generated("lfm2-vl") == table
    assert len(table) == 351  # 148 text + 203 mmproj tensors (SPEC.md §4.1)


def test_full_resaved_has_no_vision_model_prefix() -> None:
    names = set(_generated("resaved-5.23"))
    assert {rename(k, "resaved-5.23") for k in _spec_table()} == names
    assert not any("vision_model." in name for name in names)


@pytest.mark.slow
def test_full_checkpoint_file_has_official_names_shapes_and_bf16(tmp_path: Path) -> None:
    folder = write_checkpoint(tmp_path / "full", CheckpointSpec("full"))
    records = read_header(folder / "model.safetensors")
    assert {record.name: record.shape for record in records} == _spec_table()
    assert {record.dtype for record in records} == {"BF16"}
    header_bytes = 8 + int.from_bytes((folder / "model.safetensors").read_bytes()[:8], "little")
    assert (folder / "model.safetensors").stat().st_size - header_bytes == 2 * 448_718_848
    official = json.loads((Path(__file__).parent.parent / "convert/synthetic/official/lfm2.5-vl-450m/config.json")
                          .read_text())  # fmt: skip
    assert json.loads((folder / "config.json").read_text()) == official
