"""Choosing the mmproj weight type for this CPU (lfm_edge.vision.weights, used by resolve) and the BF16 mmproj
written from an F16 one (`lfm-edge mmproj-bf16`), compared with the converter's own BF16 output."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest
from click.testing import CliRunner

from convert.quantize.mmproj_bf16 import bf16_name, widen_bf16, write_bf16_mmproj
from lfm_edge.cli import main
from lfm_edge.errors import ConversionError
from lfm_edge.resolve import resolve
from lfm_edge.vision.weights import (
    cpu_class,
    cpu_features,
    pick_mmproj,
    preferred_types,
    system_info,
    weight_type_of,
)

Converted = Callable[..., tuple[Path, Path]]
# llama_print_system_info lines of the CPUs the rule distinguishes (x86 here; ARM as llama.cpp prints it there).
SAPPHIRE_RAPIDS = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | AVX512_BF16 = 1 |"
HASWELL = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 |"
PI5 = "CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | LLAMAFILE = 1 | OPENMP = 1 |"
PI4 = "CPU : NEON = 1 | ARM_FMA = 1 | LLAMAFILE = 1 | OPENMP = 1 |"
NAMES = ["mmproj-M-Q8_0.gguf", "mmproj-M-F16.gguf", "mmproj-M-BF16.gguf", "mmproj-M-F32.gguf"]


@pytest.mark.parametrize(
    ("info", "best"), [(SAPPHIRE_RAPIDS, "Q8_0"), (HASWELL, "Q8_0"), (PI5, "F16"), (PI4, "Q8_0"), ("CPU : |", "Q8_0")]
)
def test_the_fastest_offered_type_for_each_cpu(info: str, best: str) -> None:
    features = cpu_features(info)
    assert pick_mmproj([Path(n) for n in NAMES], features) == Path(f"mmproj-M-{best}.gguf")
    assert preferred_types(features)[0] == best


def test_a_missing_type_falls_to_the_next_best() -> None:
    features = cpu_features(PI5)
    offered = [Path("mmproj-M-Q8_0.gguf"), Path("mmproj-M-BF16.gguf")]
    assert pick_mmproj(offered, features) == Path("mmproj-M-Q8_0.gguf")
    assert pick_mmproj([Path("mmproj-custom.gguf")], features) == Path("mmproj-custom.gguf")
    assert pick_mmproj([], features) is None


def test_type_names_in_any_case() -> None:
    assert weight_type_of(Path("mmproj-tiny-official-2.5-bf16.gguf")) == "BF16"
    assert weight_type_of(Path("mmproj-LFM2.5-VL-450M-F16.gguf")) == "F16"
    assert weight_type_of(Path("mmproj-x-q8_0.gguf")) == "Q8_0"
    assert weight_type_of(Path("mmproj-x.gguf")) is None


def test_this_machine_is_read_from_llama_cpp() -> None:
    features = cpu_features(system_info())
    assert features and cpu_class(features) in ("x86_bf16", "x86", "arm_fp16", "arm", "other")


def test_resolve_picks_for_this_cpu_and_an_explicit_mmproj_wins(converted: Converted, tmp_path: Path) -> None:
    text, mmproj = converted("official-2.5", "f16")
    shutil.copy(text, tmp_path / "M-F16.gguf")
    for name in NAMES:
        shutil.copy(mmproj, tmp_path / name)
    best = preferred_types()[0]
    assert resolve(tmp_path).mmproj == tmp_path / f"mmproj-M-{best}.gguf"
    assert resolve(tmp_path / "M-F16.gguf").mmproj == tmp_path / f"mmproj-M-{best}.gguf"
    assert resolve(tmp_path, mmproj=tmp_path / "mmproj-M-Q8_0.gguf").mmproj == tmp_path / "mmproj-M-Q8_0.gguf"


def test_bf16_from_f16_matches_the_converters_bf16(converted: Converted, tmp_path: Path) -> None:
    """The synthetic checkpoint is BF16, as the official one: every value within F16's normal range comes back
    exactly; only values F16 had to round (|x| < 2^-14, subnormal in F16) may differ, and are counted."""
    _, f16 = converted("official-2.5", "f16")
    _, reference = converted("official-2.5", "bf16")
    result = write_bf16_mmproj(f16, tmp_path / "mmproj-bf16.gguf")
    ours = {t.name: t for t in gguf.GGUFReader(result.path).tensors}
    theirs = {t.name: t for t in gguf.GGUFReader(reference).tensors}
    assert {n: t.tensor_type for n, t in ours.items()} == {n: t.tensor_type for n, t in theirs.items()}
    differing = 0
    for name, tensor in theirs.items():
        if tensor.tensor_type == gguf.GGMLQuantizationType.BF16:
            want = widen_bf16(np.asarray(tensor.data).view(np.uint16))
            got = widen_bf16(np.asarray(ours[name].data).view(np.uint16))
        else:
            want, got = np.asarray(tensor.data), np.asarray(ours[name].data)
        changed = got != want
        assert np.all(np.abs(want[changed]) < 2.0**-14), name
        differing += int(changed.sum())
    assert result.converted_values > 0 and differing <= result.subnormal_values
    meta = gguf.GGUFReader(result.path)
    field = meta.get_field("general.file_type")
    assert field is not None and field.contents() == int(gguf.LlamaFileType.MOSTLY_BF16)
    assert meta.get_field("clip.projector_type") is not None


def test_mmproj_bf16_command(converted: Converted, tmp_path: Path) -> None:
    _, f16 = converted("official-2.5", "f16")
    source = Path(shutil.copy(f16, tmp_path / "mmproj-M-F16.gguf"))
    result = CliRunner().invoke(main, ["mmproj-bf16", str(source)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mmproj-M-BF16.gguf").is_file() and "not exactly representable" in result.output
    again = CliRunner().invoke(main, ["mmproj-bf16", str(source)])
    assert again.exit_code != 0 and again.output.lower().startswith("error:") and "already exists" in again.output
    not_mmproj = CliRunner().invoke(main, ["mmproj-bf16", str(converted("official-2.5", "f16")[0])])
    assert not_mmproj.exit_code != 0 and "not an mmproj" in not_mmproj.output


def test_bf16_name() -> None:
    assert bf16_name(Path("mmproj-M-F16.gguf")) == Path("mmproj-M-BF16.gguf")
    assert bf16_name(Path("mmproj-m-f16.gguf")) == Path("mmproj-m-bf16.gguf")
    with pytest.raises(ConversionError):
        bf16_name(Path("mmproj-M-BF16.gguf"))


def test_quantize_writes_bf16_by_default_and_lists_it(
    synthetic_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    from convert.quantize import QuantizeOptions, quantize_checkpoint
    from convert.quantize.report import _markdown, mmproj_section

    result = quantize_checkpoint(synthetic_checkpoint(), QuantizeOptions(tmp_path, ("Q8_0",), report=False))
    mmprojs = {f.type: tmp_path / f.name for f in result.files if f.role == "mmproj"}
    assert list(mmprojs) == ["Q8_0", "F16", "BF16"]
    kinds = {t.name: t.tensor_type.name for t in gguf.GGUFReader(mmprojs["BF16"]).tensors}
    assert kinds["v.blk.0.attn_q.weight"] == "BF16" and kinds["v.patch_embd.weight"] == "F32"
    card = result.model_card.read_text(encoding="utf-8")
    assert "mmproj-tiny-official-2.5-BF16.gguf" in card and "Vision weights" in card
    assert any(e["type"] == "BF16" for e in json.loads(result.manifest.read_text())["files"])
    section = mmproj_section(mmprojs)
    report = {"metrics": "m", "reference": "r", "rows": [], "mmproj": section}
    assert "| `mmproj-tiny-official-2.5-BF16.gguf` | BF16 |" in _markdown(report)
