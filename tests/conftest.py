"""Shared fixtures: tiny synthetic checkpoints, generated once per session (seconds each)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from convert.synthetic import CheckpointSpec, write_checkpoint

GOLDENS = Path(__file__).parent / "goldens"
MODEL_INDEX = json.loads((GOLDENS / "model" / "index.json").read_text(encoding="utf-8"))


def model_cases(prefix: str) -> list[tuple[str, str]]:
    """(layout, case) pairs of the transformers model goldens whose case name starts with prefix."""
    layouts = MODEL_INDEX["layouts"]
    return [
        (layout, case)
        for layout in sorted(layouts)
        for case in sorted(layouts[layout]["cases"])
        if case.startswith(prefix)
    ]


REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture(scope="session")
def synthetic_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """checkpoint(layout="official-2.5", size="tiny", seed=0) -> folder, cached for the session."""
    cache: dict[CheckpointSpec, Path] = {}

    def make(layout: str = "official-2.5", size: str = "tiny", seed: int = 0) -> Path:
        spec = CheckpointSpec(size, layout, seed)
        if spec not in cache:
            # Folder names as the golden generators used (llama.cpp derives general.name from them).
            name = f"{size}-{layout}" if seed == 0 else f"{size}-{layout}-seed{seed}"
            cache[spec] = write_checkpoint(tmp_path_factory.mktemp("ckpt") / name, spec)
        return cache[spec]

    return make


@pytest.fixture(scope="session")
def converted(
    synthetic_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., tuple[Path, Path]]:
    """converted(layout="official-2.5", outtype="f32") -> (text gguf, mmproj gguf), cached for the session."""
    from convert.api import ConvertOptions, convert_checkpoint

    cache: dict[tuple[str, str], tuple[Path, Path]] = {}

    def make(layout: str = "official-2.5", outtype: str = "f32") -> tuple[Path, Path]:
        if (layout, outtype) not in cache:
            outdir = tmp_path_factory.mktemp("gguf")
            result = convert_checkpoint(synthetic_checkpoint(layout), ConvertOptions(outdir, outtype, quiet=True))
            cache[layout, outtype] = (result.text, result.mmproj)
        return cache[layout, outtype]

    return make


@pytest.fixture(scope="module")
def pair(converted: Callable[..., tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The F16 pair copied to a folder of its own, one per test module (tests replace files there)."""
    text, mmproj = converted("official-2.5", "f16")
    folder = tmp_path_factory.mktemp("pair")
    shutil.copy(text, folder / text.name)
    shutil.copy(mmproj, folder / mmproj.name)
    return folder / text.name, folder / mmproj.name


OnnxFiles = dict[str, Path]


@pytest.fixture(scope="session")
def onnx_converted(
    synthetic_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., OnnxFiles]:
    """onnx_converted(layout, seed=0) -> {"text", "mmproj", "fp32", "int8"}: an F32 GGUF pair with both ONNX files."""
    from convert.api import ConvertOptions, convert_checkpoint

    cache: dict[tuple[str, int], OnnxFiles] = {}

    def make(layout: str = "official-2.5", seed: int = 0) -> OnnxFiles:
        if (layout, seed) not in cache:
            outdir = tmp_path_factory.mktemp("onnx")
            options = ConvertOptions(outdir, "f32", quiet=True, onnx=True)
            result = convert_checkpoint(synthetic_checkpoint(layout, "tiny", seed), options)
            fp32, int8 = result.onnx
            cache[layout, seed] = {"text": result.text, "mmproj": result.mmproj, "fp32": fp32, "int8": int8}
        return cache[layout, seed]

    return make
