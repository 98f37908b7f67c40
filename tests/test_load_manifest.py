"""transformers 5.23 loads what our generator writes (tests/goldens/model/load_manifest.json, made in the reference
venv by tests/reference/load_manifest.py): no missing, unexpected or mismatched keys, and the official parameter
count; and the generator still writes exactly the tensors (and tiny files) that transformers loaded."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from convert.architecture import rename, tensor_specs
from convert.dims import dims_of
from convert.synthetic import CheckpointSpec
from convert.synthetic.configs import model_config
from tests.conftest import GOLDENS

MANIFEST = json.loads((GOLDENS / "model" / "load_manifest.json").read_text(encoding="utf-8"))
CHECKPOINTS: dict[str, Any] = MANIFEST["checkpoints"]


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_transformers_loaded_it_without_missing_or_unexpected_keys(name: str) -> None:
    info = CHECKPOINTS[name]["loading_info"]
    assert info == {"error_msgs": [], "mismatched_keys": [], "missing_keys": [], "unexpected_keys": []}


def test_full_official_has_the_official_parameter_count() -> None:
    assert CHECKPOINTS["full-official-2.5"]["parameter_count"]["parameters"] == 448_718_848
    assert CHECKPOINTS["full-official-2.5"]["safetensors"]["tensor_count"] == 349


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_generator_writes_the_tensors_transformers_loaded(name: str) -> None:
    entry = CHECKPOINTS[name]
    spec = CheckpointSpec(entry["size"], entry["layout"], entry["seed"])
    ours = {rename(t.name, spec.layout): list(t.shape) for t in tensor_specs(dims_of(model_config(spec)))}
    loaded = {t["name"]: t["shape"] for t in entry["safetensors"]["tensors"]}
    assert ours == loaded
    assert {t["dtype"] for t in entry["safetensors"]["tensors"]} == {"BF16"}


@pytest.mark.parametrize("layout", ["official-2.5", "lfm2-vl", "resaved-5.23"])
def test_tiny_files_are_those_transformers_loaded(synthetic_checkpoint: Callable[..., Path], layout: str) -> None:
    folder = synthetic_checkpoint(layout)
    for file, recorded in CHECKPOINTS[f"tiny-{layout}"]["files"].items():
        assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == recorded["sha256"], file
