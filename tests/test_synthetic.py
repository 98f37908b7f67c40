"""The synthetic checkpoint generator: official layout, exact shapes, determinism, atomic writes, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from convert.architecture import rename, tensor_specs, to_bfloat16_bits
from convert.dims import dims_of
from convert.safetensors_io import TensorRecord, read_header
from convert.synthetic import CheckpointSpec, write_checkpoint
from convert.synthetic import writer as writer_module
from convert.synthetic.configs import model_config
from lfm_edge.cli import main
from lfm_edge.errors import ConfigError, ConversionError
from tests.conftest import REFERENCE

LAYOUTS = ["official-2.5", "lfm2-vl", "resaved-5.23"]
EXPECTED_FILES = {
    "official-2.5": {
        "config.json", "processor_config.json", "generation_config.json", "tokenizer_config.json",
        "chat_template.jinja", "tokenizer.json", "model.safetensors",
    },
}  # fmt: skip
EXPECTED_FILES["resaved-5.23"] = EXPECTED_FILES["official-2.5"]
EXPECTED_FILES["lfm2-vl"] = EXPECTED_FILES["official-2.5"] | {
    "preprocessor_config.json",
    "special_tokens_map.json",
}
PREFIXES = {
    "official-2.5": {
        "model.language_model.",
        "model.vision_tower.vision_model.",
        "model.multi_modal_projector.",
    },
    "resaved-5.23": {"model.language_model.", "model.vision_tower.", "model.multi_modal_projector."},
    "lfm2-vl": {"language_model.model.", "vision_tower.vision_model.", "multi_modal_projector."},
}


def _header(folder: Path) -> dict[str, TensorRecord]:
    return {record.name: record for record in read_header(folder / "model.safetensors")}


def _read_tensor(folder: Path, name: str) -> bytes:
    record = _header(folder)[name]
    return (folder / "model.safetensors").read_bytes()[record.start : record.end]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_tiny_checkpoint_has_every_file_and_layout_prefixes(
    synthetic_checkpoint: Callable[..., Path], layout: str
) -> None:
    folder = synthetic_checkpoint(layout)
    assert {p.name for p in folder.iterdir()} == EXPECTED_FILES[layout]
    header = _header(folder)
    assert {record.dtype for record in header.values()} == {"BF16"}
    roots = {name[: len(p)] for name in header for p in PREFIXES[layout] if name.startswith(p)}
    assert roots == PREFIXES[layout]
    assert all(any(name.startswith(p) for p in PREFIXES[layout]) for name in header)
    assert not any(name.startswith("lm_head") for name in header)  # tied embeddings, as the official file


def test_tiny_keeps_the_official_structure(synthetic_checkpoint: Callable[..., Path]) -> None:
    config = json.loads((synthetic_checkpoint() / "config.json").read_text())
    text, vision = config["text_config"], config["vision_config"]
    assert text["layer_types"].count("conv") == 2 and text["layer_types"].count("full_attention") == 2
    assert text["vocab_size"] == 65_536
    assert vision["num_hidden_layers"] >= 3  # llama.cpp maps projector linears through its block-id table
    assert (vision["patch_size"], vision["num_patches"]) == (16, 256)
    assert config["projector_use_layernorm"] is False and config["use_thumbnail"] is True


def test_lfm2_vl_layout_has_projector_layernorm_and_no_thumbnail(
    synthetic_checkpoint: Callable[..., Path],
) -> None:
    folder = synthetic_checkpoint("lfm2-vl")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "lfm2-vl" and config["use_thumbnail"] is False
    header = _header(folder)
    assert header["multi_modal_projector.layer_norm.weight"].shape == (128,)
    assert header["multi_modal_projector.linear_1.weight"].shape == (config["projector_hidden_size"], 128)


@pytest.mark.parametrize("layout", ["lfm2-vl", "resaved-5.23"])
def test_layouts_share_weights_with_the_official_one(synthetic_checkpoint: Callable[..., Path], layout: str) -> None:
    official, other = synthetic_checkpoint("official-2.5"), synthetic_checkpoint(layout)
    for name in [
        "model.language_model.embed_tokens.weight",
        "model.language_model.layers.0.conv.conv.weight",
        "model.vision_tower.vision_model.encoder.layers.2.mlp.fc1.weight",
        "model.vision_tower.vision_model.post_layernorm.bias",
    ]:
        assert _read_tensor(official, name) == _read_tensor(other, rename(name, layout))


def test_generation_is_deterministic_and_seeded(tmp_path: Path, synthetic_checkpoint: Callable[..., Path]) -> None:
    again = write_checkpoint(tmp_path / "again", CheckpointSpec("tiny", "official-2.5", 0))
    first = synthetic_checkpoint()
    for name in EXPECTED_FILES["official-2.5"]:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    other_seed = synthetic_checkpoint(seed=1)
    name = "model.language_model.layers.1.self_attn.q_proj.weight"
    assert _read_tensor(first, name) != _read_tensor(other_seed, name)


def test_bfloat16_rounding_is_round_to_nearest_even() -> None:
    values = np.array([1.0, 1.00390625, 1.01171875, -2.5, 3.0e38, 1e-40], dtype=np.float32)
    # 1.00390625 is halfway between bf16 1.0 and 1.0078125: ties go to the even mantissa (1.0).
    expected = np.array([0x3F80, 0x3F80, 0x3F82, 0xC020, 0x7F62, 0x0001], dtype=np.uint16)
    np.testing.assert_array_equal(to_bfloat16_bits(values), expected)


@pytest.mark.parametrize(("size", "layout"), [("huge", "official-2.5"), ("tiny", "lfm2.5"), ("", "")])
def test_unknown_size_or_layout_is_a_clear_error(size: str, layout: str) -> None:
    with pytest.raises(ConfigError, match="unknown synthetic"):
        CheckpointSpec(size, layout)


def test_existing_folder_is_kept_without_force(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ConversionError, match="already exists"):
        write_checkpoint(target)
    assert (target / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failure_leaves_no_half_written_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    def explode(*_: object) -> None:
        raise error

    monkeypatch.setattr(writer_module, "_write_safetensors", explode)
    with pytest.raises(type(error)):
        write_checkpoint(tmp_path / "ckpt")
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_an_existing_checkpoint(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    write_checkpoint(target, force=True)
    assert not (target / "stale.txt").exists() and (target / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_cli_writes_a_checkpoint_and_reports_errors_in_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["synthetic", str(tmp_path / "c"), "--layout", "resaved-5.23"])
    assert result.exit_code == 0, result.output
    assert "97 tensors" in result.output
    again = runner.invoke(main, ["synthetic", str(tmp_path / "c")])
    assert again.exit_code == 1
    assert again.output.strip().splitlines() == [
        f"Error: {tmp_path / 'c'} already exists: choose another folder, or replace it with --force (force=True)"
    ]
    bad = runner.invoke(main, ["synthetic", str(tmp_path / "d"), "--size", "huge"])
    assert bad.exit_code == 2 and "huge" in bad.output


def test_full_size_table_counts() -> None:
    specs = tensor_specs(dims_of(model_config(CheckpointSpec("full"))))
    assert len(specs) == 349
    assert sum(int(np.prod(s.shape)) for s in specs) == 448_718_848


@pytest.mark.parametrize(("layout", "folder"), [("official-2.5", "lfm2.5-vl-450m"), ("lfm2-vl", "lfm2-vl-450m")])
def test_embedded_official_files_equal_the_shared_reference(layout: str, folder: str) -> None:
    shared = REFERENCE / folder
    if not shared.is_dir():
        pytest.skip("../shared/reference is not beside this checkout (CI and developers have it)")
    embedded = Path(__file__).parents[1] / "convert" / "synthetic" / "official" / folder
    names = sorted(p.name for p in shared.iterdir())
    assert names == sorted(p.name for p in embedded.iterdir())
    for name in names:
        assert (embedded / name).read_bytes() == (shared / name).read_bytes(), name
