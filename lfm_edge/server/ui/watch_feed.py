"""`lfm-edge serve --watch SOURCE`: the video loop (lfm_edge.video) as the page's LiveFeed.

Each Caption of the loop becomes a LiveEvent carrying the frame it describes (as JPEG), so the page shows the picture
and its caption together. The source is opened when the first viewer arrives and released when the hub closes the
generator (the loop's own `finally`). Needs the `video` extra; the check happens when the server starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from lfm_edge.errors import ConfigError
from lfm_edge.server.ui.live import LiveEvent, LiveFeed, jpeg_bytes


def video_feed(model: Any, source: str, **watch_options: Any) -> LiveFeed:
    """A LiveFeed captioning `source` (a camera such as 0 or /dev/video0, a video file, a folder of images) with
    `model`; `watch_options` fill lfm_edge.video's WatchOptions (prompt=..., every=..., mode=...)."""
    try:
        from lfm_edge.video.loop import ModelCaptioner, WatchOptions, watch_frames
    except ImportError as exc:
        raise ConfigError(f"--watch needs the `video` extra: pip install 'lfm-edge[video]' ({exc})") from exc
    from lfm_edge.video.events import Caption

    options = WatchOptions(**watch_options)

    class _FrameKeepingCaptioner(ModelCaptioner):
        """Remembers the frame it captioned last, for the event that carries its caption."""

        frame: np.ndarray | None = None

        def __call__(self, image: np.ndarray) -> str:
            self.frame = image
            return super().__call__(image)

    def feed() -> Iterator[LiveEvent]:
        captioner = _FrameKeepingCaptioner(model, options)
        events = watch_frames(captioner, source, options)
        try:
            for event in events:
                if isinstance(event, Caption):
                    frame = captioner.frame
                    yield LiveEvent(event.video_time, event.text, jpeg_bytes(frame) if frame is not None else None)
        finally:
            events.close()

    return feed
