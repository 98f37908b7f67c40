"""Load profiles (lfm_edge/profiles.py): the low-memory profile's settings on a loaded tiny model, and the memory
check that refuses a model too large for the machine before llama.cpp allocates anything."""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import lfm_edge
from lfm_edge import profiles
from lfm_edge.errors import ConfigError, ModelError
from lfm_edge.generation import GenerationOptions
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.native.text import ContextOptions
from lfm_edge.prompt import RenderOptions
from lfm_edge.resolve import ModelFiles

Converted = Callable[..., tuple[Path, Path]]
IMAGE = Path(__file__).parent / "images" / "photo_1024x768.jpg"
GREEDY = GenerationOptions(max_tokens=4, sampling=SamplingParams(temperature=0))
MEMINFO = "MemTotal: 1000000 kB\nMemFree: 100000 kB\nMemAvailable: {avail} kB\nSwapTotal: 0 kB\nSwapFree: {swap} kB\n"


def test_low_memory_context_settings() -> None:
    low = profiles.profile_named("low-memory")
    context = profiles.context_for(low, ContextOptions(n_ctx=2048))
    assert (context.kv_cache_type, context.n_batch, context.n_ctx) == (None, 128, 2048)  # KV stays F16
    assert (context.mmap, context.extra_buffers) == (True, False)  # weights mapped, no anonymous repacked copies
    offloaded = profiles.context_for(low, ContextOptions(n_gpu_layers=-1))
    assert (offloaded.mmap, offloaded.extra_buffers) == (None, None)  # no host copy to drop: llama.cpp decides
    assert profiles.context_for(low, ContextOptions(mmap=False)).mmap is False  # the caller's choice stands
    asked = ContextOptions(kv_cache_type="q8_0", n_batch=64)
    assert (profiles.context_for(low, asked).kv_cache_type, profiles.context_for(low, asked).n_batch) == ("q8_0", 64)
    assert profiles.context_for(profiles.profile_named("default"), ContextOptions()) == ContextOptions()
    with pytest.raises(ConfigError, match="unknown profile 'tiny'"):
        profiles.profile_named("tiny")


def test_low_memory_frees_the_mmproj_after_each_prompt(converted: Converted, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)  # the CLI tests before may have raised the root level (`lfm-edge -q`)
    text, _ = converted("official-2.5", "f16")
    with lfm_edge.load(text, profile="low-memory", n_ctx=4096, n_threads=2) as model:
        vision = model.vision
        assert isinstance(vision, profiles.TransientVisionEncoder) and not vision.is_open and vision.loads == 0
        assert model.engine.max_snapshots == 0 and model.text.options.n_batch == 128
        assert model.text.options.kv_cache_type is None and model.text.options.mmap
        assert vision.before_open is not None  # drops the mapped text weights before the mmproj opens
        first = model.generate("Describe this image.", [IMAGE], GREEDY)
        assert not vision.is_open and vision.loads == 1 and model.engine._snapshots == []
        again = model.generate("Describe this image.", [IMAGE], GREEDY)  # crops cached: the mmproj stays closed
        assert vision.loads == 1 and again.text == first.text
        model.prompts.clear_caches()
        model.generate("Describe this image.", [IMAGE], GREEDY)
        assert vision.loads == 2 and not vision.is_open


def _image_prompt_logits(text: Path, profile: str) -> np.ndarray:
    with lfm_edge.load(text, profile=profile, n_ctx=4096, n_threads=2) as model:
        content = [{"type": "image", "image": IMAGE}, {"type": "text", "text": "Describe this image."}]
        items = model.prompts.build([{"role": "user", "content": content}], RenderOptions(), model.settings)
        model.engine.prefill(items)
        return model.engine.logits()


def test_low_memory_gives_the_default_logits(converted: Converted) -> None:
    """The profile changes the ubatch, where the weights live and when the mmproj is open: not the logits."""
    text, _ = converted("official-2.5", "f32")
    default, low = (_image_prompt_logits(text, profile) for profile in ("default", "low-memory"))
    np.testing.assert_allclose(low, default, rtol=0, atol=1e-4)


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
def test_drop_mapped_pages_leaves_the_mapping_unresident(tmp_path: Path) -> None:
    weights = tmp_path / "weights.gguf"
    weights.write_bytes(np.random.default_rng(0).integers(0, 255, 8 * profiles.MB, dtype=np.uint8).tobytes())
    with weights.open("rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        assert sum(mapped[offset] for offset in range(0, len(mapped), 4096)) > 0  # every page touched
        assert _resident_kb(weights) >= 8 * 1024
        assert profiles.drop_mapped_pages(weights) == 8 * profiles.MB
        assert _resident_kb(weights) == 0
        assert mapped[-1] == weights.read_bytes()[-1]  # mapped back on the next access
    assert profiles.drop_mapped_pages(tmp_path / "not-mapped.gguf") == 0


def _resident_kb(path: Path) -> int:
    """Rss of this process's mappings of `path` (/proc/self/smaps)."""
    resident, inside = 0, False
    for line in Path("/proc/self/smaps").read_text(encoding="utf-8").splitlines():
        if "-" in line.split(maxsplit=1)[0]:  # a mapping's header line
            inside = line.endswith(str(path.resolve()))
        elif inside and line.startswith("Rss:"):
            resident += int(line.split()[1])
    return resident


def _files(tmp_path: Path, text_mb: int, mmproj_mb: int) -> ModelFiles:
    text, mmproj = tmp_path / "m-Q4_0.gguf", tmp_path / "mmproj-m-Q8_0.gguf"
    for path, size in ((text, text_mb), (mmproj, mmproj_mb)):
        with path.open("wb") as file:
            file.truncate(size * profiles.MB)  # sparse: only the size matters
    return ModelFiles(text, mmproj)


def test_memory_check_refuses_what_cannot_fit(tmp_path: Path) -> None:
    files = _files(tmp_path, 300, 100)
    need = profiles.memory_need(files, ContextOptions(n_ctx=4096))
    assert need.files == 400 * profiles.MB and need.kv_cache == 4096 * 12288
    with pytest.raises(ModelError, match=r"needs about 578 MB .* only 400 MB of memory and 0 MB of swap"):
        profiles.check_memory(files, ContextOptions(n_ctx=4096), MEMINFO.format(avail=400 * 1024, swap=0))
    low = profiles.context_for(profiles.profile_named("low-memory"), ContextOptions(n_ctx=2048))
    assert profiles.check_memory(files, low, MEMINFO.format(avail=600 * 1024, swap=0)).kv_cache == 2048 * 12288


def test_memory_check_warns_when_only_swap_holds_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    files = _files(tmp_path, 300, 100)
    profiles.check_memory(files, ContextOptions(), MEMINFO.format(avail=500 * 1024, swap=512 * 1024))
    assert "it will swap" in caplog.text
    profiles.check_memory(files, ContextOptions(), "")  # no /proc/meminfo (macOS): nothing to check against
    profiles.check_memory(files, ContextOptions(n_gpu_layers=-1), MEMINFO.format(avail=1, swap=0))  # offloaded


def test_load_fails_before_llama_cpp_when_memory_is_short(
    converted: Converted, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, _ = converted("official-2.5", "f16")
    monkeypatch.setattr(profiles, "read_meminfo", lambda: MEMINFO.format(avail=50 * 1024, swap=0))
    with pytest.raises(ModelError, match="only 50 MB of memory"):
        lfm_edge.load(text, n_threads=2)
    monkeypatch.setenv(profiles.SKIP_CHECK_ENV, "1")
    with lfm_edge.load(text, n_threads=2, n_ctx=512) as model:
        assert model.text.n_ctx == 512
