"""The captioning loops with stand-in captioners (fast, and slow on purpose): cue times against the clip's own
timestamps, skipping a static scene, frame dropping in live mode, SRT/VTT read back with webvtt-py, and stopping
(close, Ctrl-C, an error) that leaves complete subtitle files and a released source."""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import webvtt

from lfm_edge.errors import ConfigError, VideoError
from lfm_edge.video import (
    Caption,
    ChangeDetector,
    Finished,
    Frame,
    SourceOptions,
    Started,
    Unchanged,
    VideoSource,
    WatchOptions,
    open_source,
    to_dict,
    watch_frames,
)
from tests.video_clips import Clip, decoded_times, write_clip


def describe(image: np.ndarray) -> str:
    return f"mean {image.mean():.1f}"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "scene.mp4"
    write_clip(path)  # 6 s at 10 fps: moving shapes, a cut at 2 s, still from 3.5 s
    return path


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("lfm-edge-video-reader", "lfm-edge-video-ahead")]


def test_file_mode_cues_are_the_videos_own_timestamps(clip: Path) -> None:
    events = list(watch_frames(describe, clip, WatchOptions(every=1.0, min_change=0)))
    assert isinstance(events[0], Started) and events[0].mode == "file" and events[0].duration_s == pytest.approx(6.0)
    captions = [e for e in events if isinstance(e, Caption)]
    times = decoded_times(clip)
    expected = [min(t for t in times if t >= k - 1e-3) for k in range(6)]
    assert [c.video_time for c in captions] == pytest.approx(expected, abs=1e-6)
    assert [c.index for c in captions] == list(range(6))
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.frames_read == len(times) and finished.captions == 6


def test_variable_frame_rate_cues_follow_the_frames(tmp_path: Path) -> None:
    times = [0.0, 0.13, 0.5, 0.52, 1.7, 2.05, 3.3, 3.31, 4.9]
    path = tmp_path / "vfr.mkv"
    write_clip(path, times=times)
    captions = [
        e for e in watch_frames(describe, path, WatchOptions(every=1.0, min_change=0)) if isinstance(e, Caption)
    ]
    # The first frame at or after each multiple of one second; a gap (2.05 -> 3.3) skips the empty second.
    assert [c.video_time for c in captions] == pytest.approx([0.0, 1.7, 2.05, 3.3, 4.9], abs=1e-3)


def test_static_scene_is_not_captioned_again(clip: Path) -> None:
    events = list(watch_frames(describe, clip, WatchOptions(every=0.5)))
    captions = [e for e in events if isinstance(e, Caption)]
    unchanged = [e for e in events if isinstance(e, Unchanged)]
    # Still from 3.5 s: the frames at 4.0, 4.5, 5.0, 5.5 are skipped; everything before moves.
    assert [c.video_time for c in captions] == pytest.approx([0.5 * k for k in range(8)], abs=1e-6)
    assert [u.video_time for u in unchanged] == pytest.approx([4.0, 4.5, 5.0, 5.5], abs=1e-6)
    assert all(u.change <= 0.01 for u in unchanged)
    assert isinstance(events[-1], Finished) and events[-1].frames_unchanged == 4


def test_change_detector_threshold() -> None:
    detector = ChangeDetector(min_change=0.01)
    still = np.full((48, 64), 100, np.uint8)
    assert detector.change(still) == 1.0  # nothing captioned yet
    detector.accept(still)
    noisy = (still + np.random.default_rng(0).integers(-8, 9, still.shape)).astype(np.uint8)
    assert detector.change(noisy) == 0.0 and not detector.is_new(detector.change(noisy))
    moved = still.copy()
    moved[10:16, 10:16] = 220  # 36 of 3072 cells: 1.2%
    assert detector.is_new(detector.change(moved))
    assert ChangeDetector(min_change=0).is_new(0.0)


def test_live_mode_drops_frames_under_a_slow_model_and_keeps_the_newest(clip: Path) -> None:
    def slow(image: np.ndarray) -> str:
        time.sleep(0.4)  # four frames of this 10 fps clip played in real time
        return describe(image)

    events = list(watch_frames(slow, clip, WatchOptions(mode="live", min_change=0)))
    assert isinstance(events[0], Started) and events[0].mode == "live"
    captions = [e for e in events if isinstance(e, Caption)]
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.frames_read == 60 and finished.frames_dropped > 0
    assert sum(c.frames_dropped for c in captions) <= finished.frames_dropped
    assert len(captions) + finished.frames_dropped + finished.frames_unchanged == finished.frames_read
    times = [c.video_time for c in captions]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert not reader_threads()


def test_subtitles_are_written_as_captions_come_and_read_back(clip: Path, tmp_path: Path) -> None:
    srt, vtt = tmp_path / "out.srt", tmp_path / "out.vtt"
    options = WatchOptions(every=1.0, min_change=0, subtitles=(srt, vtt))
    seen_during: list[int] = []
    for event in watch_frames(describe, clip, options):
        if isinstance(event, Caption):
            seen_during.append(len(webvtt.from_srt(str(srt)).captions))
    assert seen_during == [1, 2, 3, 4, 5, 6]  # complete after every caption
    for document in (webvtt.from_srt(str(srt)), webvtt.read(str(vtt))):
        cues = document.captions
        assert [c.start_in_seconds for c in cues] == [0, 1, 2, 3, 4, 5]
        assert [c.end_in_seconds for c in cues] == [1, 2, 3, 4, 5, 6]  # the last one lasts to the video's end
        assert cues[0].text.startswith("mean ")
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporary file left


def test_stopping_the_generator_releases_the_source_and_leaves_complete_subtitles(clip: Path, tmp_path: Path) -> None:
    srt = tmp_path / "stopped.srt"
    source = open_source(clip, SourceOptions(realtime=True))
    events = watch_frames(describe, source, WatchOptions(mode="live", min_change=0, subtitles=(srt,)))
    captions = 0
    for event in events:
        if isinstance(event, Caption):
            captions += 1
            if captions == 3:
                break
    events.close()
    assert source.closed and not reader_threads()
    cues = webvtt.from_srt(str(srt)).captions
    assert len(cues) == 3 and all(c.end > c.start for c in cues)  # zero-padded stamps


class _Watched(VideoSource):
    """A file source that tells when a frame at or after `mark` seconds has been decoded."""

    def __init__(self, path: Path, mark: float) -> None:
        self.inner = open_source(path)
        self.info = self.inner.info
        self.mark = mark
        self.decoded_mark = threading.Event()

    def frames(self) -> Iterator[Frame]:
        for frame in self.inner.frames():
            if frame.time >= self.mark:
                self.decoded_mark.set()
            yield frame

    def close(self) -> None:
        self.inner.close()

    @property
    def closed(self) -> bool:
        return self.inner.closed


def test_file_mode_decodes_ahead_while_the_model_captions(clip: Path) -> None:
    source = _Watched(clip, mark=1.0)
    seen_while_captioning: list[bool] = []

    def waits_for_the_next_frame(image: np.ndarray) -> str:
        # Decoding in line with the model would only reach 1.0 s after this returns: the wait would time out.
        seen_while_captioning.append(source.decoded_mark.wait(10.0))
        return describe(image)

    events = watch_frames(waits_for_the_next_frame, source, WatchOptions(every=1.0, min_change=0))
    captions = [e for e in events if isinstance(e, Caption)]
    assert seen_while_captioning[0] is True and len(captions) == 6 and source.closed


def test_stopping_file_mode_releases_the_source_and_the_reader(clip: Path) -> None:
    source = open_source(clip)
    events = watch_frames(describe, source, WatchOptions(every=0.5, min_change=0))
    for event in events:
        if isinstance(event, Caption):
            break  # the reader is now waiting for room: the frames ahead are not taken
    events.close()
    assert source.closed and not reader_threads()


def test_ctrl_c_in_the_model_leaves_complete_subtitles(clip: Path, tmp_path: Path) -> None:
    vtt = tmp_path / "interrupted.vtt"
    calls = 0

    def interrupted(image: np.ndarray) -> str:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise KeyboardInterrupt
        return describe(image)

    with pytest.raises(KeyboardInterrupt):
        for _ in watch_frames(interrupted, clip, WatchOptions(every=1.0, min_change=0, subtitles=(vtt,))):
            pass
    assert len(webvtt.read(str(vtt)).captions) == 3


def test_bad_source_leaves_no_subtitle_file(tmp_path: Path) -> None:
    srt = tmp_path / "never.srt"
    with pytest.raises(VideoError, match="no such video file"):
        list(watch_frames(describe, tmp_path / "missing.mp4", WatchOptions(subtitles=(srt,))))
    assert not srt.exists()


def test_a_stalled_source_is_a_video_error(tmp_path: Path) -> None:
    clip = tmp_path / "stream.ts"
    write_clip(clip, Clip(seconds=8.0), codec="libx264")
    fifo = tmp_path / "camera.fifo"
    os.mkfifo(fifo)
    release = threading.Event()

    def feed() -> None:  # sends the first half, then goes quiet until the test ends
        with open(fifo, "wb") as pipe:
            pipe.write(clip.read_bytes()[: clip.stat().st_size // 2])
            pipe.flush()
            release.wait(30)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    quick_start = {"analyzeduration": "500000", "probesize": "4096"}  # do not wait for the rest while probing
    options = WatchOptions(mode="live", min_change=0, source=SourceOptions(timeout_s=1.0, input_options=quick_start))
    try:
        with pytest.raises(VideoError, match="stalled"):
            list(watch_frames(describe, fifo, options))
    finally:
        release.set()
        feeder.join(5)
    deadline = time.monotonic() + 5
    while reader_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not reader_threads()  # the blocked read ended with the pipe, and the reader released the source


def test_events_serialize(clip: Path) -> None:
    records = [to_dict(e) for e in watch_frames(describe, clip, WatchOptions(every=3.0))]
    assert [r["type"] for r in records] == ["started", "caption", "caption", "finished"]
    assert records[1]["text"].startswith("mean ") and records[1]["video_time"] == 0.0


@pytest.mark.parametrize(
    "bad", [{"every": 0}, {"every": float("nan")}, {"mode": "fast"}, {"min_change": 2}, {"subtitles": (Path("x.txt"),)}]
)
def test_invalid_options(bad: dict[str, object]) -> None:
    with pytest.raises((ConfigError, VideoError)):
        WatchOptions(**bad)  # type: ignore[arg-type]


def test_a_stalled_network_stream_times_out_and_releases_the_connection(tmp_path: Path) -> None:
    clip = tmp_path / "stream.ts"
    write_clip(clip, Clip(seconds=8.0), codec="libx264")
    payload = clip.read_bytes()[: clip.stat().st_size // 2]
    release = threading.Event()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            self.wfile.write(payload)  # half the stream, then nothing while the connection stays open
            self.wfile.flush()
            release.wait(30)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/live.ts"
    quick_start = {"analyzeduration": "500000", "probesize": "4096"}
    source = SourceOptions(allow_stream=True, timeout_s=1.0, input_options=quick_start)
    try:
        events = watch_frames(describe, url, WatchOptions(min_change=0, source=source))
        with pytest.raises(VideoError, match="stalled"):
            for event in events:
                assert not isinstance(event, Started) or (event.kind, event.mode) == ("stream", "live")
        assert not reader_threads()  # ffmpeg's read timeout ended the blocked read: the connection is closed
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_truncated_file_ends_its_last_cue_where_the_frames_end(tmp_path: Path) -> None:
    whole = tmp_path / "whole.mkv"
    write_clip(whole, codec="mjpeg")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    srt = tmp_path / "cut.srt"
    events = list(watch_frames(describe, cut, WatchOptions(every=1.0, min_change=0, subtitles=(srt,))))
    last_frame = decoded_times(cut)[-1]
    assert isinstance(events[-1], Finished) and events[-1].video_seconds == pytest.approx(last_frame + 0.1)
    assert webvtt.from_srt(str(srt)).captions[-1].end_time.in_seconds() < 6
