"""Subtitle files (SRT or WebVTT, by suffix) written with webvtt-py. The whole file is rewritten atomically after
each cue (a temporary file beside it, then os.replace), so at any moment, Ctrl-C included, it is complete and valid.

Each cue lasts until the next one starts; the last one until the end of the video (or of watching). While watching,
the last cue is given a provisional end `linger_s` after its start."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

from lfm_edge.errors import VideoError

_FORMATS = {".srt": "srt", ".vtt": "vtt"}
_MIN_CUE_S = 0.5


def subtitle_format(path: Path) -> str:
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise VideoError(f"subtitle file {str(path)!r}: the name must end in .srt or .vtt")
    return kind


def stamp(seconds: float) -> str:
    millis = round(max(0.0, seconds) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


class SubtitleWriter:
    def __init__(self, path: Path, linger_s: float = 2.0) -> None:
        self.path = Path(path)
        self.format = subtitle_format(self.path)
        self.linger_s = linger_s
        self.cues: list[tuple[float, float, str]] = []

    def add(self, start: float, text: str) -> None:
        if not text.strip():
            return
        if self.cues:
            previous_start, _, previous_text = self.cues[-1]
            self.cues[-1] = (previous_start, max(start, previous_start + 0.001), previous_text)
        self.cues.append((start, start + max(self.linger_s, _MIN_CUE_S), text.strip()))
        self.write()

    def finish(self, end: float | None) -> None:
        """Ends the last cue at `end` (seconds; None keeps its provisional end) and writes the file."""
        if self.cues and end is not None:
            start, _, text = self.cues[-1]
            self.cues[-1] = (start, max(end, start + _MIN_CUE_S), text)
        self.write()

    def render(self) -> str:
        import webvtt

        document = webvtt.WebVTT()
        for start, end, text in self.cues:
            document.captions.append(webvtt.Caption(stamp(start), stamp(end), text))
        buffer = io.StringIO()
        document.write(buffer, format=self.format)
        return buffer.getvalue()

    def write(self) -> None:
        content = self.render()
        try:
            descriptor, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent or ".")
        except OSError as exc:
            raise VideoError(f"cannot write subtitles to {str(self.path)!r}: {exc.strerror or exc}") from exc
        try:
            os.fchmod(descriptor, 0o644)  # mkstemp's 0600 would make the subtitles private to this user
            with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise VideoError(f"cannot write subtitles to {str(self.path)!r}: {exc.strerror or exc}") from exc
