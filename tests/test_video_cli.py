"""`lfm-edge watch` and Model.watch on the converted tiny model (random weights: the words are noise, the
mechanics are real): events, JSONL, subtitles read back, image folders, and one-line errors."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import webvtt
from click.testing import CliRunner
from PIL import Image

from lfm_edge import model as api
from lfm_edge.cli import main
from lfm_edge.video import (
    FRAME_KNOBS,
    WATCH_GENERATION,
    Caption,
    Finished,
    ModelCaptioner,
    Started,
    WatchOptions,
)
from tests.video_clips import Clip, scene, write_clip

Converted = Callable[..., tuple[Path, Path]]
FAST = ["--max-tokens", "3", "--threads", "2", "--n-ctx", "1024"]


@pytest.fixture(scope="module")
def text_model(converted: Converted) -> str:
    return str(converted("official-2.5", "f16")[0])


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "scene.mkv"
    write_clip(path, codec="mjpeg")
    return path


def test_model_watch_yields_typed_events(text_model: str, clip: Path) -> None:
    from lfm_edge.generation import GenerationOptions

    with api.load(text_model, n_ctx=1024, n_threads=2) as model:
        events = list(model.watch(clip, every=2.0, min_change=0, generation=GenerationOptions(max_tokens=3)))
        captioner = ModelCaptioner(model, WatchOptions(knobs={"max_image_tokens": 48}))
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    captions = [e for e in events if isinstance(e, Caption)]
    assert [c.video_time for c in captions] == pytest.approx([0.0, 2.0, 4.0])
    assert all(isinstance(c.text, str) and c.compute_s > 0 and c.latency_s >= c.compute_s for c in captions)
    settings = captioner.settings
    assert settings.max_image_tokens == 48 and settings.min_image_tokens == FRAME_KNOBS["min_image_tokens"]
    assert settings.do_image_splitting is False


def test_the_instruction_is_evaluated_once_and_gives_the_fresh_prompts_tokens(text_model: str) -> None:
    frames = [scene(Clip(), t) for t in (0.5, 2.5, 3.0)]
    generation = dataclasses.replace(WATCH_GENERATION, max_tokens=6)  # greedy, as watch captions
    # One slot, n_batch 1: the path on which a restored state and a fresh evaluation are bitwise equal (wider batches
    # round differently, and the random tiny model's near-ties would flip a greedy token: tests/test_threads.py).
    with api.load(text_model, n_ctx=1024, n_threads=2, n_batch=1, n_seq=1) as model:
        fresh = []
        for frame in frames:  # each frame's whole prompt evaluated from an empty context
            model.engine.reset()
            captioner = ModelCaptioner(model, WatchOptions(generation=generation, reuse_prefix=False))
            captioner(frame)
            assert captioner.last is not None and captioner.last.timings.reused_tokens == 0
            fresh.append(captioner.last)
        model.engine.reset()
        captioner = ModelCaptioner(model, WatchOptions(generation=generation))
        reused = []
        for frame in frames:
            captioner(frame)
            assert captioner.last is not None
            reused.append(captioner.last)
    prefix = reused[0].timings.reused_tokens  # the first frame evaluated the instruction itself, then continued it
    assert prefix > 5 and all(c.timings.reused_tokens == prefix for c in reused[1:])
    evaluated = [(c.timings.prefill_tokens, f.timings.prefill_tokens) for c, f in zip(reused, fresh, strict=True)]
    assert all(mine == theirs - prefix for mine, theirs in evaluated)
    assert [c.token_ids for c in reused] == [f.token_ids for f in fresh]
    assert len({c.token_ids for c in fresh}) > 1  # the frames differ, so a stale image would be caught


def test_cli_watch_jsonl_and_subtitles(text_model: str, clip: Path, tmp_path: Path) -> None:
    srt, vtt = tmp_path / "out.srt", tmp_path / "out.vtt"
    args = ["watch", text_model, str(clip), "--every", "2", "--min-change", "0", "--jsonl", "--srt", str(srt)]
    result = CliRunner().invoke(main, [*args, "--vtt", str(vtt), *FAST])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["type"] for r in records] == ["started", "caption", "caption", "caption", "finished"]
    assert records[0]["mode"] == "file" and records[-1]["video_seconds"] == pytest.approx(6.0)
    texts = [r["text"] for r in records if r["type"] == "caption" and r["text"]]
    for document in (webvtt.from_srt(str(srt)), webvtt.read(str(vtt))):
        assert [c.text for c in document.captions] == texts
        assert document.captions[-1].end == "00:00:06.000"


def test_cli_watch_plain_output_and_summary(text_model: str, clip: Path) -> None:
    result = CliRunner().invoke(main, ["watch", text_model, str(clip), "--every", "3", *FAST])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line[:14] for line in lines] == ["[00:00:00.000]", "[00:00:03.000]"]
    assert "2 captions; 60 frames read" in result.stderr


def test_cli_watch_image_folder(text_model: str, tmp_path: Path) -> None:
    for index in range(4):
        Image.fromarray(scene(Clip(), index)).save(tmp_path / f"{index}.jpg")
    (tmp_path / "readme.txt").write_text("not an image")
    result = CliRunner().invoke(main, ["watch", text_model, str(tmp_path), "--fps", "0.5", "--every", "4", "--jsonl",
                                       *FAST])  # fmt: skip
    assert result.exit_code == 0, result.output
    times = [json.loads(line)["video_time"] for line in result.stdout.splitlines() if '"caption"' in line]
    assert times == [0.0, 4.0]


@pytest.mark.parametrize(
    ("source", "extra", "message"),
    [
        ("missing.mp4", [], "no such video file"),
        ("rtsp://127.0.0.1:9/x", [], "--allow-stream"),
        ("57", [], "does not exist"),
        ("missing.mp4", ["--srt", "out.txt"], "must end in .srt or .vtt"),
        ("missing.mp4", ["--input-option", "novalue"], "KEY=VALUE"),
    ],
)
def test_cli_watch_errors_are_one_line(text_model: str, source: str, extra: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["watch", text_model, source, *extra, *FAST])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert not Path("out.txt").exists()


def test_cli_ctrl_c_exits_130_with_complete_subtitles(
    text_model: str, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_call = ModelCaptioner.__call__
    calls = 0

    def interrupted(self: ModelCaptioner, image: object) -> str:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return real_call(self, image)  # type: ignore[arg-type]

    monkeypatch.setattr(ModelCaptioner, "__call__", interrupted)
    srt = tmp_path / "partial.srt"
    args = ["watch", text_model, str(clip), "--every", "1", "--min-change", "0", "--srt", str(srt), *FAST]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 130 and "stopped" in result.stderr and "Traceback" not in result.output
    printed = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(printed) == 2  # the two captions made before Ctrl-C
    expected = [line[1:13] for line in printed if line[15:].strip()]  # empty captions make no cue
    assert [c.start for c in webvtt.from_srt(str(srt)).captions] == expected
