"""Every ```python example of README.md runs as written (extracted from the file, each in a fresh namespace), in a
folder holding the files the examples name: the tiny converted model as model-f16.gguf (mmproj beside it),
photo.jpg, statue_of_liberty.jpg, processor_config.json and chat_template.jinja. The openai-client example talks to
a real `lfm-edge serve` on a free loopback port (its base URL is the one substitution). The tiny model's weights are
random, so it never ends an answer by itself and its byte soup re-tokenizes longer each chat turn: generation is
capped at MAX_TOKENS here, which changes nothing the examples show but how long the answers are."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import lfm_edge
import lfm_edge.model
from lfm_edge.server import ServerOptions
from lfm_edge.server.run import RunningServer, start_in_thread

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
IMAGES = Path(__file__).parent / "images"
CHECKPOINT_FILES = ROOT / "convert" / "synthetic" / "official" / "lfm2.5-vl-450m"
EXAMPLE_URL = "http://127.0.0.1:8080/v1"
EXAMPLE_MODEL_ID = "LFM2.5-VL-450M-Q4_0"
MAX_TOKENS = 16


def python_examples(text: str) -> list[tuple[int, str]]:
    """(line number, source) of each fenced python block."""
    return [
        (text[: match.start()].count("\n") + 2, match.group(1))
        for match in re.finditer(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)
    ]


EXAMPLES = python_examples(README.read_text(encoding="utf-8"))


def test_the_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 5
    assert any("lfm_edge.load(" in source for _, source in EXAMPLES)


@pytest.fixture(scope="module")
def folder(converted: Callable[..., tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    text, mmproj = converted("official-2.5", "f16")
    where = tmp_path_factory.mktemp("readme")
    shutil.copy(text, where / "model-f16.gguf")
    shutil.copy(mmproj, where / "mmproj-model-f16.gguf")
    shutil.copy(IMAGES / "photo_336x240.png", where / "photo.jpg")  # one crop: the random model rambles
    shutil.copy(IMAGES / "photo_336x240.png", where / "statue_of_liberty.jpg")  # Pillow reads by content
    (where / "frames").mkdir()  # the watch example's folder of images
    for index in range(2):
        shutil.copy(IMAGES / "photo_336x240.png", where / "frames" / f"{index:03d}.png")
    for name in ("processor_config.json", "chat_template.jinja"):
        shutil.copy(CHECKPOINT_FILES / name, where / name)
    return where


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[RunningServer]:
    with lfm_edge.load(folder / "model-f16.gguf", n_ctx=4096, n_threads=2) as model:
        running = start_in_thread(model, ServerOptions(model_ids=(EXAMPLE_MODEL_ID,), port=0))
        try:
            yield running
        finally:
            running.close()


@pytest.mark.parametrize(("line", "source"), EXAMPLES, ids=[f"README.md:{line}" for line, _ in EXAMPLES])
def test_example_runs(
    line: int, source: str, folder: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if EXAMPLE_URL in source:
        source = source.replace(EXAMPLE_URL, request.getfixturevalue("server").url + "/v1")
    monkeypatch.chdir(folder)
    generate = lfm_edge.model.run_generation

    def capped(engine: Any, items: Any, options: Any, *rest: Any) -> Any:
        return generate(
            engine, items, dataclasses.replace(options, max_tokens=min(options.max_tokens, MAX_TOKENS)), *rest
        )

    monkeypatch.setattr(lfm_edge.model, "run_generation", capped)
    exec(compile(source, f"README.md:{line}", "exec"), {"__name__": "readme_example"})
