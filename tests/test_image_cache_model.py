"""The image path end to end on the tiny model: the persistent embedding cache across loads, content keys (an image
or mmproj rewritten under the same name, size and time), per-stage timings in the API, the CLI and the server."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lfm_edge import model as api
from lfm_edge.cli import main
from lfm_edge.engine import ImageBlock
from lfm_edge.generation import GenerationOptions
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.prompt import RenderOptions
from lfm_edge.server.responses import timings as server_timings

Converted = Callable[..., tuple[Path, Path]]
GREEDY = GenerationOptions(max_tokens=4, sampling=SamplingParams(temperature=0))
PHOTO = Path(__file__).parent / "images" / "exif_o6_1270x720.jpg"  # several tiles and a thumbnail


def _load(text: Path, cache: Path | None = None) -> api.Model:
    return api.load(text, n_ctx=4096, n_threads=2, cache_dir=cache)


def test_a_second_load_answers_from_the_disk_cache(pair: tuple[Path, Path], tmp_path: Path) -> None:
    with _load(pair[0], tmp_path / "cache") as model:
        first = model.generate("What is this?", [PHOTO], GREEDY)
    image = first.timings.image
    assert image is not None and image.crops > 1 and image.cache_hits == 0
    assert len(image.encode_ms_per_crop) == image.crops and image.load_s > 0 and image.preprocess_s > 0
    with _load(pair[0], tmp_path / "cache") as model:
        second = model.generate("What is this?", [PHOTO], GREEDY)
    image = second.timings.image
    assert image is not None and image.disk_hits == image.cache_hits == image.crops
    assert image.encode_ms_per_crop == () and image.encode_s == 0
    assert second.token_ids == first.token_ids


def test_without_a_cache_dir_nothing_persists(pair: tuple[Path, Path]) -> None:
    for _ in range(2):
        with _load(pair[0]) as model:
            image = model.generate("What is this?", [PHOTO], GREEDY).timings.image
            assert image is not None and image.cache_hits == 0


def test_an_mmproj_replaced_under_the_same_name_misses(
    pair: tuple[Path, Path], synthetic_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    from convert.api import ConvertOptions, convert_checkpoint

    folder = tmp_path / "model"
    folder.mkdir()
    text, mmproj = (Path(shutil.copy(path, folder / path.name)) for path in pair)
    with _load(text, tmp_path / "cache") as model:
        model.generate("What is this?", [PHOTO], GREEDY)
    other = convert_checkpoint(synthetic_checkpoint(seed=1), ConvertOptions(tmp_path / "other", "f16", quiet=True))
    stat = mmproj.stat()
    shutil.copyfile(other.mmproj, mmproj)
    os.utime(mmproj, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `cp -p` or a FAT card would leave it
    with _load(text, tmp_path / "cache") as cached, _load(text) as uncached:
        message = [{"role": "user", "content": [{"type": "image", "image": str(PHOTO)}]}]
        settings = cached.settings
        got = cached.prompts.build_timed(message, RenderOptions(), settings)
        want = uncached.prompts.build(message, RenderOptions(), settings)
    assert got.image_timings.disk_hits == 0
    blocks = [(a, b) for a, b in zip(got.items, want, strict=True) if isinstance(a, ImageBlock)]
    assert blocks and all(isinstance(b, ImageBlock) and np.array_equal(a.embeddings, b.embeddings) for a, b in blocks)


def test_an_image_rewritten_with_the_same_size_and_time_is_seen_anew(pair: tuple[Path, Path], tmp_path: Path) -> None:
    path = tmp_path / "frame.bmp"  # uncompressed: every frame has the same size
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(path)
    stat = path.stat()
    message = [{"role": "user", "content": [{"type": "image", "image": str(path)}]}]
    with _load(pair[0]) as model:
        before = model.prompts.build_timed(message, RenderOptions(), model.settings)
        Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert path.stat().st_size == stat.st_size
        after = model.prompts.build_timed(message, RenderOptions(), model.settings)
        again = model.prompts.build_timed(message, RenderOptions(), model.settings)
    keys = [[i.key for i in built.items if isinstance(i, ImageBlock)] for built in (before, after, again)]
    assert keys[0] != keys[1] and keys[1] == keys[2]
    assert after.image_timings.reused_images == 0 and again.image_timings.reused_images == 1


def test_cli_reports_image_stages_and_caches(pair: tuple[Path, Path], tmp_path: Path) -> None:
    args = ["run", str(pair[0]), "What is this?", "--image", str(PHOTO), "--max-tokens", "3", "--temperature", "0",
            "--threads", "2", "--image-cache", str(tmp_path / "cache")]  # fmt: skip
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "image load" in first.stderr and "0 cached" in first.stderr and "prefill" in first.stderr
    second = CliRunner().invoke(main, ["-q", *args, "--json"])
    assert second.exit_code == 0, second.output
    image = json.loads(second.stdout)["timings"]["image"]
    assert image["crops"] > 1 and image["disk_hits"] == image["crops"] and image["encode_ms_per_crop"] == []


def test_cli_cache_on_an_unusable_folder_logs_and_answers(pair: tuple[Path, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "read-only"
    blocker.write_text("a file where the folder should be")
    args = ["run", str(pair[0]), "What?", "--image", str(PHOTO), "--max-tokens", "2", "--threads", "2",
            "--image-cache", str(blocker / "cache")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "cannot be created" in warnings[0]


def test_server_timings_carry_the_image_stages(pair: tuple[Path, Path]) -> None:
    with _load(pair[0]) as model:
        completion = model.generate("What is this?", [PHOTO], GREEDY)
        text_only = model.generate("Hello", options=GREEDY)
    shown = server_timings(completion)
    image = completion.timings.image
    assert image is not None and shown["image_crops"] == image.crops and shown["images"] == 1
    assert shown["prefill_ms"] > 0 and shown["image_encode_ms"] == pytest.approx(1000 * image.encode_s)
    assert "image_crops" not in server_timings(text_only) and text_only.timings.image is None
