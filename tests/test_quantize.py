"""`lfm-edge quantize` (issue F) on the tiny synthetic checkpoint: every default type, the manifest, the report's
numbers and their ordering, and bad inputs as typed errors that leave nothing behind. Full size: `make test-slow`."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest
from click.testing import CliRunner

from convert.quantize import QuantizeOptions, QuantizeResult, quantize_checkpoint
from convert.quantize.manifest import file_sha256, source_sha256
from convert.quantize.types import DEFAULT_TEXT_TYPES, load_imatrix
from lfm_edge.cli import main
from lfm_edge.errors import CheckpointError, ConfigError, ConversionError
from lfm_edge.model import load

Checkpoints = Callable[..., Path]


@pytest.fixture(scope="module")
def quantized(synthetic_checkpoint: Checkpoints, tmp_path_factory: pytest.TempPathFactory) -> QuantizeResult:
    """All default types with the report, one thread (2 shared cores: two threads spin against each other)."""
    outdir = tmp_path_factory.mktemp("quantized")
    return quantize_checkpoint(synthetic_checkpoint(), QuantizeOptions(outdir, n_threads=1))


def _types(path: Path) -> dict[str, str]:
    return {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}


def test_every_default_type_is_written_with_official_names_and_loads(quantized: QuantizeResult) -> None:
    outdir = quantized.manifest.parent
    names = sorted(p.name for p in outdir.iterdir())
    expected = [f"tiny-official-2.5-{t}.gguf" for t in DEFAULT_TEXT_TYPES]
    expected += [f"mmproj-tiny-official-2.5-{t}.gguf" for t in ("BF16", "F16", "Q8_0")]
    assert names == sorted([*expected, "README.md", "manifest.json", "report.json", "report.md"])  # no temp left
    for name in expected[: len(DEFAULT_TEXT_TYPES)]:
        with load(outdir / name, n_ctx=128, n_threads=1) as model:
            assert model.vision is not None
            model.engine.prefill(model.text.tokenize("Hello"))
            assert model.engine.logits().shape == (model.text.n_vocab,)


def test_tiny_rows_fall_back_as_llama_cpp_does(quantized: QuantizeResult) -> None:
    """Tiny rows are 64 wide: 256-block K-quants do not fit, so llama.cpp's quantizer falls back per tensor
    (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0); the 256-wide FFN rows keep their K-quant. The tied token embedding
    (also the output) becomes Q8_0 (Q6_K's fallback) in every file; norms and the short conv stay F32."""
    outdir = quantized.manifest.parent
    q4_0 = _types(outdir / "tiny-official-2.5-Q4_0.gguf")
    q4_k_m = _types(outdir / "tiny-official-2.5-Q4_K_M.gguf")
    q6_k = _types(outdir / "tiny-official-2.5-Q6_K.gguf")
    assert q4_0["token_embd.weight"] == q4_k_m["token_embd.weight"] == q6_k["token_embd.weight"] == "Q8_0"
    assert q4_0["blk.0.ffn_down.weight"] == "Q4_0"
    assert q4_k_m["blk.0.ffn_down.weight"] == "Q4_K"  # 256 wide
    assert Counter(q4_k_m.values())["Q5_0"] > 0
    assert set(q6_k.values()) == {"Q6_K", "Q8_0", "F32"}
    assert all(kind == "F32" for name, kind in q4_0.items() if name.endswith("norm.weight"))


def test_mmproj_q8_0_keeps_the_converter_rules(quantized: QuantizeResult) -> None:
    mmproj = _types(quantized.manifest.parent / "mmproj-tiny-official-2.5-Q8_0.gguf")
    assert mmproj["v.patch_embd.weight"] == "F32"
    assert mmproj["v.position_embd.weight"] == "F32"
    assert "Q8_0" in mmproj.values()


def test_manifest_and_model_card(quantized: QuantizeResult, synthetic_checkpoint: Checkpoints) -> None:
    outdir = quantized.manifest.parent
    manifest = json.loads(quantized.manifest.read_text(encoding="utf-8"))
    assert manifest["source"]["sha256"] == source_sha256(synthetic_checkpoint())
    assert manifest["source"]["files"][0] == "config.json"
    for entry in manifest["files"]:
        path = outdir / entry["name"]
        assert entry["size"] == path.stat().st_size
        assert entry["sha256"] == file_sha256(path)
    assert {e["role"] for e in manifest["files"]} == {"text", "mmproj"}
    card = (outdir / "README.md").read_text(encoding="utf-8")
    assert "tiny-official-2.5-Q4_K_M.gguf" in card and "report.md" in card
    assert "mmproj-tiny-official-2.5-BF16.gguf" in card and "Vision weights" in card
    bf16 = next(e for e in manifest["files"] if e["role"] == "mmproj" and e["type"] == "BF16")
    assert _types(outdir / bf16["name"])["v.blk.0.attn_q.weight"] == "BF16"


def test_report_numbers_and_ordering(quantized: QuantizeResult) -> None:
    assert quantized.report is not None
    rows = {row["type"]: row for row in quantized.report["rows"]}  # type: ignore[index]
    assert set(rows) == {"F16 (reference)", *DEFAULT_TEXT_TYPES}
    assert rows["F16 (reference)"]["kl_mean"] == 0.0 and rows["F16 (reference)"]["top1_agreement"] == 1.0
    for row in rows.values():
        assert row["kl_mean"] >= 0.0 and row["kl_max"] >= row["kl_mean"]
        assert 0.0 <= row["top1_agreement"] <= 1.0
        assert row["perplexity"] > 0 and row["load_seconds"] > 0 and row["decode_tokens_per_second"] > 0
        assert row["positions"] > 100  # 6 chat prompts and 2 image prompts, every position
    assert rows["Q8_0"]["kl_mean"] < rows["Q4_0"]["kl_mean"]
    assert rows["Q6_K"]["kl_mean"] < rows["Q4_K_M"]["kl_mean"]
    assert rows["Q8_0"]["top1_agreement"] > rows["Q4_0"]["top1_agreement"]
    report_md = (quantized.manifest.parent / "report.md").read_text(encoding="utf-8")
    assert "| Q8_0 |" in report_md
    assert [m["type"] for m in quantized.report["mmproj"]] == ["Q8_0", "F16", "BF16"]  # type: ignore[index]
    assert "mmproj-tiny-official-2.5-BF16.gguf` | BF16 |" in report_md


@pytest.mark.parametrize(
    ("types", "error", "needle"),
    [
        ("Q4_0,Q9_9", ConfigError, "Q4_K_M"),  # the valid names are listed
        ("IQ2_XS", ConfigError, "--imatrix"),
        ("", ConfigError, "empty"),
    ],
)
def test_bad_types_are_refused_before_anything_is_written(
    synthetic_checkpoint: Checkpoints, tmp_path: Path, types: str, error: type[Exception], needle: str
) -> None:
    outdir = tmp_path / "out"
    with pytest.raises(error, match=needle):
        quantize_checkpoint(synthetic_checkpoint(), QuantizeOptions(outdir, types=tuple(types.split(","))))
    assert not outdir.exists()


def test_not_an_lfm2_vl_checkpoint(synthetic_checkpoint: Checkpoints, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(synthetic_checkpoint(), tmp_path / "llava"))
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["model_type"] = "llava"
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(CheckpointError, match="llava"):
        quantize_checkpoint(folder, QuantizeOptions(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_force_and_cli(synthetic_checkpoint: Checkpoints, tmp_path: Path) -> None:
    args = ["quantize", str(synthetic_checkpoint()), "--types", "q8_0", "--mmproj-types", "F16", "--no-report"]
    args += ["--outdir", str(tmp_path), "--threads", "1"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    target = tmp_path / "tiny-official-2.5-Q8_0.gguf"
    before = target.read_bytes()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "--force" in again.output
    assert target.read_bytes() == before
    with pytest.raises(ConversionError, match="already exist"):
        quantize_checkpoint(synthetic_checkpoint(), QuantizeOptions(tmp_path, ("Q8_0",), ("F16",), report=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "README.md", "manifest.json", "mmproj-tiny-official-2.5-F16.gguf", "tiny-official-2.5-Q8_0.gguf"
    ]  # fmt: skip
    assert CliRunner().invoke(main, [*args, "--force"]).exit_code == 0
    unknown = CliRunner().invoke(main, [*args[:3], "Q3_X", *args[4:]])
    assert unknown.exit_code == 1 and "unknown --types type 'Q3_X'" in unknown.output


def test_bad_imatrix_file_is_a_config_error(synthetic_checkpoint: Checkpoints, tmp_path: Path) -> None:
    bogus = tmp_path / "imatrix.gguf"
    bogus.write_bytes(b"not a gguf")
    with pytest.raises(ConfigError, match="imatrix"):
        quantize_checkpoint(synthetic_checkpoint(), QuantizeOptions(tmp_path / "out", ("IQ4_XS",), imatrix=bogus))


def test_imatrix_is_read_and_passed_to_the_quantizer(
    synthetic_checkpoint: Checkpoints, converted: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    """A GGUF imatrix as llama-imatrix writes it (<name>.in_sum2, <name>.counts) unlocks the IQ types. IQ2_XS is
    one llama.cpp itself refuses without an imatrix, so this passing proves the matrix reached it; its 256-blocks
    do not fit 64-wide rows, where llama.cpp falls back to IQ4_NL."""
    writer = gguf.GGUFWriter(tmp_path / "imatrix.gguf", "imatrix")
    for tensor in gguf.GGUFReader(converted("official-2.5", "f16")[0]).tensors:
        if len(tensor.shape) == 2 and not tensor.name.endswith("conv.weight"):
            writer.add_tensor(f"{tensor.name}.in_sum2", np.full((1, int(tensor.shape[0])), 2.0, dtype=np.float32))
            writer.add_tensor(f"{tensor.name}.counts", np.full((1, 1), 4.0, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    matrix = load_imatrix(tmp_path / "imatrix.gguf")
    assert np.allclose(matrix["blk.0.ffn_down.weight"], 0.5)
    options = QuantizeOptions(tmp_path / "out", ("IQ2_XS",), ("F16",), imatrix=tmp_path / "imatrix.gguf", report=False)
    result = quantize_checkpoint(synthetic_checkpoint(), options)
    kinds = _types(result.manifest.parent / "tiny-official-2.5-IQ2_XS.gguf")
    assert kinds["blk.0.ffn_down.weight"] == "IQ2_XS" and "IQ4_NL" in kinds.values()


# SPEC §0: the official LiquidAI/LFM2.5-VL-450M-GGUF file sizes.
OFFICIAL_SIZES = {
    "Q4_0": 219_311_264,
    "Q4_K_M": 229_313_568,
    "F16": 711_486_624,
    "mmproj-Q8_0": 102_815_168,
    "mmproj-F16": 189_126_080,
}


@pytest.mark.slow
def test_full_size_matches_the_official_file_sizes(tmp_path: Path) -> None:
    from convert.synthetic import CheckpointSpec, write_checkpoint

    folder = write_checkpoint(tmp_path / "LFM2.5-VL-450M", CheckpointSpec("full", "official-2.5"))
    options = QuantizeOptions(tmp_path / "out", ("Q4_0", "Q4_K_M", "F16"), ("Q8_0", "F16"), report=False)
    result = quantize_checkpoint(folder, options)
    sizes = {(f.type if f.role == "text" else f"mmproj-{f.type}"): f.size for f in result.files}
    for key, official in OFFICIAL_SIZES.items():
        assert abs(sizes[key] - official) <= official * 0.01, (key, sizes[key], official)
