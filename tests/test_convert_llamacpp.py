"""Our converter against llama.cpp's own convert_hf_to_gguf.py (goldens in tests/goldens/llamacpp, made by
tests/reference/llamacpp_goldens.py): same tensors (name, type, shape, bytes) and the same metadata, plus only the
documented `lfm_edge.processor.*` keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import pytest

from lfm_edge.gguf_keys import PREFIX, PROCESSOR_KEYS

GOLDENS = Path(__file__).parent / "goldens" / "llamacpp"
Converted = Callable[..., tuple[Path, Path]]


def _metadata(reader: gguf.GGUFReader) -> dict[str, Any]:
    fields = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        value = field.contents()
        if isinstance(value, list) and len(value) > 64:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            value = {"length": len(value), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
        fields[name] = value
    return fields


def _golden_metadata(golden: dict[str, Any]) -> dict[str, Any]:
    return {
        entry["key"]: {"length": entry["length"], "sha256": entry["sha256"]} if "sha256" in entry else entry["value"]
        for entry in golden["metadata"]
    }


def _tensors(reader: gguf.GGUFReader) -> dict[str, tuple[str, list[int], str]]:
    return {
        t.name: (t.tensor_type.name, [int(d) for d in t.shape], hashlib.sha256(t.data.tobytes()).hexdigest())
        for t in reader.tensors
    }


def _golden_tensors(golden: dict[str, Any]) -> dict[str, tuple[str, list[int], str]]:
    return {t["name"]: (t["type"], t["shape"], t["sha256"]) for t in golden["tensors"]}


CASES = [("official-2.5", "f32", "text-f32"), ("official-2.5", "f16", "text-f16"),
         ("official-2.5", "f32", "mmproj-f32"), ("official-2.5", "f16", "mmproj-f16"),
         ("lfm2-vl", "f32", "lfm2-vl-text-f32"), ("lfm2-vl", "f32", "lfm2-vl-mmproj-f32")]  # fmt: skip


@pytest.mark.parametrize(("layout", "outtype", "golden_name"), CASES)
def test_same_tensors_and_metadata_as_llama_cpp(
    converted: Converted, layout: str, outtype: str, golden_name: str
) -> None:
    golden = json.loads((GOLDENS / f"{golden_name}.json").read_text(encoding="utf-8"))
    text, mmproj = converted(layout, outtype)
    reader = gguf.GGUFReader(mmproj if "mmproj" in golden_name else text)
    assert _tensors(reader) == _golden_tensors(golden)
    ours, theirs = _metadata(reader), _golden_metadata(golden)
    assert {k: v for k, v in ours.items() if not k.startswith(PREFIX)} == theirs
    additions = {k for k in ours if k.startswith(PREFIX)}
    assert additions == (set() if "text" in golden_name else {key for key, _ in PROCESSOR_KEYS.values()})


def test_llama_cpp_fails_on_resaved_checkpoints_and_we_do_not(converted: Converted) -> None:
    error = json.loads((GOLDENS / "resaved-5.23-error.json").read_text(encoding="utf-8"))
    assert "Can not map tensor" in json.dumps(error)
    _, mmproj = converted("resaved-5.23")
    assert gguf.GGUFReader(mmproj).tensors
