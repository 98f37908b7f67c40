"""Video sources on clips made here with PyAV: codecs and containers, the video's own timestamps (constant and
variable frame rate), rotation metadata, image folders, and every kind of bad input as one VideoError or a logged
skip. Cameras: no /dev/video* exists here, so the device path runs on a file behind a mocked `av.open`."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from lfm_edge.errors import VideoError
from lfm_edge.video import SourceOptions, open_source
from lfm_edge.video import sources as sources_module
from lfm_edge.video.sources import classify
from tests.video_clips import Clip, decoded_times, scene, write_clip

CODECS = [("libx264", "mp4"), ("mpeg4", "avi"), ("mjpeg", "mkv"), ("libvpx-vp9", "webm"), ("ffv1", "mkv")]


@pytest.mark.parametrize(("codec", "suffix"), CODECS)
def test_every_codec_and_container_gives_its_frames_and_times(tmp_path: Path, codec: str, suffix: str) -> None:
    path = tmp_path / f"clip.{suffix}"
    written = write_clip(path, codec=codec)
    with open_source(path) as source:
        frames = list(source.frames())
        assert source.info.kind == "file" and not source.info.live
        assert (source.info.width, source.info.height) == (160, 120)
    assert [f.time for f in frames] == pytest.approx(decoded_times(path), abs=1e-6)
    assert [f.time for f in frames] == pytest.approx(written, abs=2e-3)
    middle = frames[len(frames) // 2]
    expected = scene(Clip(), middle.time).astype(np.int16)
    assert np.abs(middle.rgb().astype(np.int16) - expected).mean() < 12  # lossy codecs, same picture
    assert middle.thumbnail().shape == (48, 64) and middle.thumbnail().dtype == np.uint8


def test_variable_frame_rate_keeps_each_frames_own_time(tmp_path: Path) -> None:
    times = [0.0, 0.13, 0.5, 0.52, 1.7, 2.05, 3.3, 3.31, 4.9]
    path = tmp_path / "vfr.mkv"
    write_clip(path, codec="libx264", times=times)
    with open_source(path) as source:
        assert [f.time for f in source.frames()] == pytest.approx(times, abs=1e-3)


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path: Path, degrees: int) -> None:
    path = tmp_path / "phone.mp4"
    write_clip(path, Clip(seconds=0.3), codec="libx264", rotation=degrees)
    with open_source(path) as source:
        image = next(source.frames()).rgb()
    upright = np.rot90(scene(Clip(), 0.0), degrees // 90)  # display matrix angles are counter-clockwise
    assert image.shape == upright.shape
    assert np.abs(image.astype(np.int16) - upright.astype(np.int16)).mean() < 12


def test_truncated_file_gives_what_it_has_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    whole = tmp_path / "whole.mkv"
    write_clip(whole, codec="mjpeg")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with caplog.at_level(logging.WARNING), open_source(cut) as source:
        frames = list(source.frames())
    assert 0 < len(frames) < len(decoded_times(whole))
    assert "truncated" in caplog.text


def _undecodable(tmp_path: Path) -> Path:
    clip = tmp_path / "clip.avi"
    write_clip(clip, Clip(seconds=0.5), codec="mjpeg")
    path = tmp_path / "unknown_codec.avi"
    path.write_bytes(clip.read_bytes().replace(b"MJPG", b"ZZZZ"))  # a FourCC no decoder knows
    return path


BAD_FILES = {
    "missing": (lambda tmp: tmp / "nope.mp4", "no such video file"),
    "empty": (lambda tmp: (tmp / "empty.mp4", (tmp / "empty.mp4").write_bytes(b""))[0], r"empty \(0 bytes\)"),
    "text": (lambda tmp: (tmp / "notes.mp4", (tmp / "notes.mp4").write_text("hello\n" * 50))[0], "not a video"),
    "image_only": (lambda tmp: (tmp / "x.png", Image.new("RGB", (8, 8)).save(tmp / "x.png"))[0], None),
    "unknown_codec": (_undecodable, "no decoder"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_one_video_error(tmp_path: Path, case: str) -> None:
    make, message = BAD_FILES[case]
    path = make(tmp_path)
    if message is None:  # a still image is a one-frame video to ffmpeg: accepted
        with open_source(path) as source:
            assert len(list(source.frames())) == 1
        return
    with pytest.raises(VideoError, match=message), open_source(path) as source:
        list(source.frames())


def test_truncated_mp4_without_its_index_is_a_video_error(tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    write_clip(whole)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(VideoError, match="cannot open file"):
        open_source(cut)


def test_image_folder_uses_file_order_and_fps_and_skips_non_images(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for index in range(3):
        Image.fromarray(scene(Clip(), index)).save(tmp_path / f"frame{index:02d}.png")
    (tmp_path / "frame01b.txt").write_text("not an image")
    (tmp_path / ".hidden").write_text("ignored")
    with caplog.at_level(logging.WARNING), open_source(tmp_path, SourceOptions(fps=2.0)) as source:
        frames = list(source.frames())
    assert [f.time for f in frames] == [0.0, 0.5, 1.0]
    assert np.array_equal(frames[1].rgb(), scene(Clip(), 1))
    assert "frame01b.txt" in caplog.text and ".hidden" not in caplog.text
    with open_source(str(tmp_path / "frame0[02].png")) as globbed:
        assert len(list(globbed.frames())) == 2


def test_folders_without_images(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="holds no files"):
        open_source(str(tmp_path / "*.jpg"))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(VideoError, match="no decodable image"), open_source(tmp_path) as source:
        list(source.frames())
    with pytest.raises(VideoError, match="fps"):
        open_source(tmp_path, SourceOptions(fps=0))


def test_classify() -> None:
    assert classify("0") == classify("/dev/video2") == classify("video=Integrated Camera") == "camera"
    assert classify("rtsp://cam.local/stream") == classify("http://host/live.m3u8") == "stream"
    assert classify("holiday.mp4") == "file" and classify("frames/*.jpg") == "images"


def test_streams_need_the_flag() -> None:
    with pytest.raises(VideoError, match="--allow-stream"):
        open_source("rtsp://127.0.0.1:9/none")


def test_missing_camera_is_a_video_error() -> None:
    with pytest.raises(VideoError, match=r"camera /dev/video\d+ does not exist"):
        open_source("57")  # no such device on any machine this runs on


def test_camera_device_path_opens_v4l2_with_timeouts_and_options(tmp_path: Path, monkeypatch: Any) -> None:
    clip = tmp_path / "camera.mkv"
    write_clip(clip, Clip(seconds=1.0), codec="mjpeg")
    calls: list[dict[str, Any]] = []
    real_open = av.open

    def fake_open(target: str, **kw: Any) -> Any:
        calls.append({"target": target, **kw})
        return real_open(str(clip))  # the device's frames come from a file

    monkeypatch.setattr(sources_module, "_device_exists", lambda device: device == "/dev/video0")
    monkeypatch.setattr(av, "open", fake_open)
    options = SourceOptions(timeout_s=3.0, input_options={"video_size": "160x120"})
    with open_source("0", options) as source:
        assert source.info.kind == "camera" and source.info.live
        assert len(list(source.frames())) == 10
    assert calls == [{"target": "/dev/video0", "format": "v4l2", "options": {"video_size": "160x120"},
                      "timeout": (3.0, 3.0)}]  # fmt: skip
    assert source.closed


@pytest.mark.parametrize(
    ("code", "message"), [(errno.EBUSY, "is busy"), (errno.EACCES, "permission denied"), (errno.EIO, "no answer")]
)
def test_camera_open_failures_are_one_line(monkeypatch: Any, code: int, message: str) -> None:
    def failing_open(target: str, **kw: Any) -> Any:
        raise OSError(code, "device says no", target)

    monkeypatch.setattr(sources_module, "_device_exists", lambda device: True)
    monkeypatch.setattr(av, "open", failing_open)
    with pytest.raises(VideoError, match=message) as raised:
        open_source("/dev/video0")
    assert "\n" not in str(raised.value)
