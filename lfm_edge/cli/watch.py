"""`lfm-edge watch MODEL SOURCE`: captions a video file, a camera, a stream or an image folder as it plays."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from lfm_edge.cli.errors import friendly_errors
from lfm_edge.cli.model import model_options, open_model


def _input_options(pairs: tuple[str, ...]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: use KEY=VALUE, e.g. video_size=640x480", param_hint="--input-option")
        options[key] = value
    return options


@click.command()
@click.argument("model")
@click.argument("source")
@click.option("--prompt", default=None, help="Instruction for every frame (default: one short sentence).")
@click.option("--every", default=2.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="File mode: seconds of video between captions.")  # fmt: skip
@click.option("--mode", type=click.Choice(["auto", "live", "file"]), default="auto", show_default=True,
              help="auto: live for cameras/streams, file otherwise; live on a file plays it in real time.")  # fmt: skip
@click.option("--jsonl", is_flag=True, help="One JSON event per line on stdout.")
@click.option("--srt", type=click.Path(dir_okay=False, path_type=Path), help="Write SRT subtitles here.")
@click.option("--vtt", type=click.Path(dir_okay=False, path_type=Path), help="Write WebVTT subtitles here.")
@click.option("--min-change", default=0.01, show_default=True, type=click.FloatRange(0, 1),
              help="Share of a frame's 64x48 grey thumbnail that must change to caption it (0: always).")  # fmt: skip
@click.option("--fps", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Image folders: frames per second of the file order.")  # fmt: skip
@click.option("--allow-stream", is_flag=True, help="Accept network stream URLs (rtsp://, http://, ...).")
@click.option("--timeout", default=10.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Cameras and streams: seconds without a frame before giving up.")  # fmt: skip
@click.option("--input-format", default=None, help="ffmpeg input format (v4l2, avfoundation, dshow, ...).")
@click.option("--input-option", multiple=True, help="ffmpeg input option KEY=VALUE (repeatable), e.g. framerate=30.")
@click.option("--max-tokens", default=20, show_default=True, type=click.IntRange(1),
              help="Tokens per caption (about 15 words: a two-line subtitle).")  # fmt: skip
@click.option("--temperature", default=0.0, show_default=True, type=float, help="0 = greedy.")
@click.option("--max-image-tokens", default=64, show_default=True, type=click.IntRange(1), help="Frame budget.")
@click.option("--min-image-tokens", default=32, show_default=True, type=click.IntRange(1))
@click.option("--splitting", is_flag=True, help="Tile large frames (slower; off by default).")
@model_options
@click.pass_context
@friendly_errors
def watch(ctx: click.Context, /, model: str, source: str, **kw: Any) -> None:
    """Caption SOURCE: a video file, a camera (0, /dev/video0), a stream URL (with --allow-stream) or a folder or
    glob of images. Live sources caption the newest frame whenever the model is free; files get a caption every
    --every seconds of video, with a progress bar. Ctrl-C stops and leaves complete subtitle files."""
    options = _watch_options(kw)
    quiet = bool(ctx.obj and ctx.obj.get("quiet"))
    with open_model(model, kw) as loaded:
        events = loaded.watch(source, options)
        try:
            _show(events, kw["jsonl"], quiet)
        except KeyboardInterrupt:
            events.close()  # releases the source and finishes the subtitle files
            click.echo("\nstopped", err=True)
            ctx.exit(130)


def _watch_options(kw: dict[str, Any]) -> Any:
    from lfm_edge.generation import GenerationOptions
    from lfm_edge.native.sampling import SamplingParams
    from lfm_edge.video import WATCH_PROMPT, SourceOptions, WatchOptions

    source = SourceOptions(
        allow_stream=kw["allow_stream"],
        fps=kw["fps"],
        timeout_s=kw["timeout"],
        input_format=kw["input_format"],
        input_options=_input_options(kw["input_option"]),
    )
    knobs = {"max_image_tokens": kw["max_image_tokens"], "min_image_tokens": kw["min_image_tokens"],
             "do_image_splitting": kw["splitting"]}  # fmt: skip
    return WatchOptions(
        prompt=kw["prompt"] or WATCH_PROMPT,
        every=kw["every"],
        mode=kw["mode"],
        min_change=kw["min_change"],
        subtitles=tuple(path for path in (kw["srt"], kw["vtt"]) if path is not None),
        generation=GenerationOptions(
            max_tokens=kw["max_tokens"], sampling=SamplingParams(temperature=kw["temperature"])
        ),
        knobs=knobs,
        source=source,
    )


def _show(events: Iterator[Any], jsonl: bool, quiet: bool) -> None:
    from lfm_edge.video import Caption, Finished, Started, to_dict

    display: _Display | None = None
    for event in events:
        if jsonl:
            click.echo(json.dumps(to_dict(event), ensure_ascii=False))
            continue
        if isinstance(event, Started):
            display = _Display(event, quiet)
        elif display is not None:
            display.update(event)
        if isinstance(event, Finished) and display is not None:
            display.close(event)
        elif isinstance(event, Caption) and display is None:
            click.echo(event.text)


class _Display:
    """File mode: a progress bar over the video's duration. Live: caption lines, plus (on a terminal) a status line
    with the current caption's age and the captions per second."""

    def __init__(self, started: Any, quiet: bool) -> None:
        from tqdm import tqdm

        self.live = started.mode == "live"
        self.quiet = quiet
        self.began = time.monotonic()
        self.captions = 0
        self.last_caption_at: float | None = None
        self.status = not quiet and self.live and sys.stderr.isatty()
        show_bar = not quiet and not self.live and started.duration_s
        self.bar = tqdm(total=round(started.duration_s or 0, 1), unit="s", disable=not show_bar, file=sys.stderr)

    def update(self, event: Any) -> None:
        from lfm_edge.video import Caption
        from lfm_edge.video.subtitles import stamp

        if isinstance(event, Caption):
            self.captions += 1
            self.last_caption_at = time.monotonic()
            line = f"[{stamp(event.video_time)}] {event.text}"
            if self.bar.disable:
                click.echo(line)
            else:
                self.bar.write(line, file=sys.stdout)
        if not self.bar.disable and hasattr(event, "video_time"):
            self.bar.update(max(0.0, round(event.video_time - self.bar.n, 1)))
        if self.status:
            age = time.monotonic() - (self.last_caption_at or self.began)
            rate = self.captions / max(time.monotonic() - self.began, 1e-9)
            click.echo(f"\r\x1b[K  caption age {age:4.1f} s · {rate:.2f} captions/s", nl=False, err=True)

    def close(self, finished: Any) -> None:
        self.bar.close()
        if self.status:
            click.echo("\r\x1b[K", nl=False, err=True)
        if not self.quiet:
            speed = finished.video_seconds / max(finished.wall_seconds, 1e-9)
            click.echo(
                f"[{finished.captions} captions; {finished.frames_read} frames read, "
                f"{finished.frames_dropped} dropped, {finished.frames_unchanged} unchanged; "
                f"{finished.video_seconds:.1f} s of video in "
                f"{finished.wall_seconds:.1f} s ({speed:.2f}x)]",
                err=True,
            )
