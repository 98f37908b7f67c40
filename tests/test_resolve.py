"""Model resolution: a .gguf with its mmproj beside it, a folder, and a Hub repo id served from the local cache
without the network (HF_HOME respected), or a one-line error saying what to download."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from lfm_edge.errors import ModelError
from lfm_edge.resolve import resolve

Converted = Callable[..., tuple[Path, Path]]


def _fake_hub_cache(home: Path, repo: str, files: dict[str, Path]) -> None:
    """huggingface_hub's cache layout: hub/models--owner--name/{refs/main, snapshots/<rev>/...}."""
    folder = home / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(snapshot.name)
    for name, source in files.items():
        shutil.copy(source, snapshot / name)


def _offline_cache(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub reads HF_HOME / HF_HUB_OFFLINE when first imported: set the environment and its constants.
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_gguf_path_finds_its_mmproj(converted: Converted) -> None:
    text, mmproj = converted("official-2.5", "f16")
    assert resolve(text).mmproj == mmproj


def test_folder_needs_a_quant_when_several_text_files(converted: Converted, tmp_path: Path) -> None:
    text16, mmproj = converted("official-2.5", "f16")
    text32, _ = converted("official-2.5", "f32")
    for path in (text16, text32, mmproj):
        shutil.copy(path, tmp_path / path.name)
    with pytest.raises(ModelError, match="--quant"):
        resolve(tmp_path)
    assert resolve(tmp_path, quant="F32").text.name == text32.name


def test_hub_repo_comes_from_the_cache_offline(
    converted: Converted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, mmproj = converted("official-2.5", "f16")
    _offline_cache(tmp_path, monkeypatch)
    _fake_hub_cache(tmp_path, "LiquidAI/LFM2.5-VL-450M-GGUF",
                    {"LFM2.5-VL-450M-Q4_0.gguf": text, "mmproj-LFM2.5-VL-450M-Q8_0.gguf": mmproj})  # fmt: skip
    found = resolve("LiquidAI/LFM2.5-VL-450M-GGUF")
    assert found.text.name == "LFM2.5-VL-450M-Q4_0.gguf" and found.mmproj is not None
    assert found.mmproj.name == "mmproj-LFM2.5-VL-450M-Q8_0.gguf"


def test_missing_repo_offline_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _offline_cache(tmp_path, monkeypatch)
    with pytest.raises(ModelError, match="huggingface-cli download LiquidAI/Nope") as error:
        resolve("LiquidAI/Nope", quant="Q8_0")
    assert "\n" not in str(error.value)
