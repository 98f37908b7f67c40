"""`lfm-edge run | chat | caption | info`: the commands that load a model. Each parses options and calls the API."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from lfm_edge.cli.errors import friendly_errors
from lfm_edge.generation import Completion, GenerationOptions
from lfm_edge.native.sampling import SamplingParams
from lfm_edge.native.text import ContextOptions

F = TypeVar("F", bound=Callable[..., Any])

_MODEL_OPTIONS = [
    click.option(
        "--mmproj", type=click.Path(dir_okay=False, path_type=Path), help="mmproj GGUF (default: beside MODEL)."
    ),
    click.option("--quant", default=None, help="Quantization to pick in a folder or Hub repo (default Q4_0)."),
    click.option("--n-ctx", default=4096, show_default=True, type=click.IntRange(64, 32768), help="Context size."),
    click.option("--threads", default=None, type=click.IntRange(1, 512), help="CPU threads (default: up to 8)."),
    click.option("--n-gpu-layers", default=0, show_default=True, type=int, help="Layers to offload (-1: all)."),
    click.option("--mmproj-gpu", is_flag=True, help="Run the vision encoder on the GPU too."),
    click.option("--flash-attn/--no-flash-attn", default=None, help="Force flash attention on/off (default: auto)."),
    click.option(
        "--image-cache",
        is_flag=False,
        flag_value="default",
        default=None,
        metavar="[DIR]",
        help="Keep image embeddings on disk, shared between runs (alone: ~/.cache/lfm-edge/image-embeddings).",
    ),
    click.option("--image-cache-mb", default=1024, show_default=True, type=click.IntRange(1), help="Its size bound."),
    click.option(
        "--vision-backend",
        type=click.Choice(["auto", "mtmd", "onnx"]),
        default="auto",
        show_default=True,
        help="Vision encoder: llama.cpp's mtmd, ONNX Runtime (the onnx extra), or auto (ONNX when a matching "
        "vision-*.onnx sits beside the mmproj).",
    ),
    click.option("--vision-onnx", type=click.Path(dir_okay=False, path_type=Path), help="Vision ONNX file to use."),
    click.option(
        "--profile",
        type=click.Choice(["default", "low-memory"]),
        default="default",
        show_default=True,
        help="Load profile; low-memory: 1 GB / 512 MB boards (README: Raspberry Pi).",
    ),
    click.option("--low-memory", is_flag=True, help="Same as --profile low-memory."),
]
PROMPT_FILE = click.option(
    "--prompt-file",
    type=click.File("r", encoding="utf-8"),
    help="Read the prompt from this file ('-': stdin) instead of the PROMPT argument.",
)
_GENERATION_OPTIONS = [
    click.option("--max-tokens", default=512, show_default=True, type=click.IntRange(1)),
    click.option("--temperature", default=0.1, show_default=True, type=float, help="0 = greedy."),
    click.option("--min-p", default=0.15, show_default=True, type=float),
    click.option("--repetition-penalty", default=1.05, show_default=True, type=float),
    click.option("--seed", default=None, type=click.IntRange(0, 2**32 - 1)),
    click.option("--stop", multiple=True, help="Stop string (repeatable)."),
    click.option("--min-image-tokens", type=click.IntRange(1), help="Image knob (model card recommends 32)."),
    click.option("--max-image-tokens", type=click.IntRange(1), help="Image knob."),
    click.option("--max-tiles", type=click.IntRange(1), help="Image knob."),
    click.option("--no-splitting", is_flag=True, help="Never tile images (one resized image each)."),
]


def _apply(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


model_options = _apply(_MODEL_OPTIONS)
generation_options = _apply(_GENERATION_OPTIONS)


def open_model(model: str, kw: dict[str, Any]) -> Any:
    from lfm_edge.model import LoadOptions, load

    context = ContextOptions(
        n_ctx=kw["n_ctx"],
        n_threads=kw["threads"],
        n_gpu_layers=kw["n_gpu_layers"],  # negative: all layers (llama.cpp)
        flash_attention=kw.get("flash_attn"),
        n_seq=kw.get("parallel") or ContextOptions.n_seq,  # slots: generations served at once
    )
    cache = kw.get("image_cache")
    options = LoadOptions(
        context=context,
        mmproj=kw["mmproj"],
        quant=kw["quant"],
        mmproj_on_gpu=kw.get("mmproj_gpu", False),
        cache_dir=True if cache == "default" else cache,
        image_cache_bytes=kw.get("image_cache_mb", 1024) * 2**20,
        vision_backend=kw.get("vision_backend", "auto"),
        vision_onnx=kw.get("vision_onnx"),
    )
    return load(model, options, profile="low-memory" if kw.get("low_memory") else kw.get("profile"))


def read_prompt(prompt: str | None, prompt_file: TextIO | None, name: str = "PROMPT") -> str:
    """The prompt given as an argument, as `-` (stdin, as llm and ollama read it) or with --prompt-file: one
    longer than a command line can hold. Trailing newlines are dropped (`echo` and heredocs add one)."""
    if prompt_file is not None and prompt is not None:
        raise click.UsageError(f"give {name} or --prompt-file, not both")
    source = prompt_file if prompt_file is not None else sys.stdin if prompt == "-" else None
    if source is None:
        if prompt is None:
            raise click.UsageError(f"missing {name}: pass it, '-' to read it from stdin, or --prompt-file FILE")
        return prompt
    try:
        text = source.read().rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise click.UsageError(f"the prompt is not UTF-8 text ({exc})") from exc
    if not text.strip():
        raise click.UsageError(f"the {name} read from {'stdin' if source is sys.stdin else source.name} is empty")
    return text


def generation(kw: dict[str, Any]) -> GenerationOptions:
    sampling = SamplingParams(
        temperature=kw["temperature"], min_p=kw["min_p"], repetition_penalty=kw["repetition_penalty"], seed=kw["seed"]
    )
    return GenerationOptions(max_tokens=kw["max_tokens"], stop=tuple(kw["stop"]), sampling=sampling)


def image_knobs(kw: dict[str, Any]) -> dict[str, Any]:
    knobs = {name: kw[name] for name in ("min_image_tokens", "max_image_tokens", "max_tiles") if kw.get(name)}
    if kw.get("no_splitting"):
        knobs["do_image_splitting"] = False
    return knobs


def completion_json(completion: Completion, **extra: Any) -> str:
    usage = {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
    record = {**extra, "text": completion.text, "finish_reason": completion.finish_reason, "usage": usage,
              "timings": asdict(completion.timings)}  # fmt: skip
    return json.dumps(record, ensure_ascii=False)


def timings_line(completion: Completion) -> str:
    t = completion.timings
    stages = f"prefill {t.prefill_s * 1000:.0f} ms, first token {t.first_token_s * 1000:.0f} ms"
    if t.image is not None:
        i = t.image
        per_crop = f", {i.encode_s * 1000 / len(i.encode_ms_per_crop):.0f} ms/crop" if i.encode_ms_per_crop else ""
        stages = (
            f"image load {i.load_s * 1000:.0f} ms, preprocess {i.preprocess_s * 1000:.0f} ms, encode "
            f"{i.encode_s * 1000:.0f} ms ({i.crops} crops, {i.cache_hits} cached{per_crop}), {stages}"
        )
    return (
        f"[{completion.prompt_tokens} prompt tokens ({t.reused_tokens} reused), {completion.completion_tokens} "
        f"generated; TTFT {t.ttft_s * 1000:.0f} ms ({stages}), prefill {t.prefill_tok_s:.1f} tok/s, "
        f"decode {t.decode_tok_s:.1f} tok/s]"
    )


@click.command()
@click.argument("model")
@click.argument("prompt", required=False)
@click.option("--image", "images", multiple=True, type=click.Path(exists=True, dir_okay=False), help="Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming text.")
@PROMPT_FILE
@model_options
@generation_options
@click.pass_context
@friendly_errors
def run(
    ctx: click.Context, /, model: str, prompt: str | None, images: tuple[str, ...], as_json: bool, **kw: Any
) -> None:
    """Answer one PROMPT (optionally about --image files), streaming the text to stdout. PROMPT `-` reads stdin."""
    text = read_prompt(prompt, kw.pop("prompt_file"))
    with open_model(model, kw) as loaded:
        stream = loaded.stream(text, list(images), generation(kw), **image_knobs(kw))
        for piece in stream:
            if not as_json:
                click.echo(piece, nl=False)
        completion = stream.completion
        if as_json:
            click.echo(completion_json(completion))
        else:
            click.echo()
            if not ctx.obj.get("quiet"):
                click.echo(timings_line(completion), err=True)


@click.command()
@click.argument("model")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--prompt", default=None, help="The question for every image ('-': stdin)  [default: Describe this image.]"
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per image (JSONL).")
@click.option("--parallel", default=1, show_default=True, type=click.IntRange(1, 64), help="Images captioned at once.")
@PROMPT_FILE
@model_options
@generation_options
@friendly_errors
def caption(model: str, images: tuple[str, ...], prompt: str | None, as_json: bool, **kw: Any) -> None:
    """Describe each image (batch): `path: caption` lines in input order, or JSONL with --json."""
    prompt_file = kw.pop("prompt_file")
    prompt = read_prompt(prompt, prompt_file, "--prompt") if prompt or prompt_file else "Describe this image."
    with open_model(model, kw) as loaded:
        completions = loaded.caption_many(list(images), prompt, generation(kw), **image_knobs(kw))
        for image, completion in zip(images, completions, strict=True):
            click.echo(completion_json(completion, image=image) if as_json else f"{image}: {completion.text}")


@click.command()
@click.argument("model")
@click.option("--system", default=None, help="System prompt.")
@model_options
@generation_options
@friendly_errors
def chat(model: str, system: str | None, **kw: Any) -> None:
    """Interactive chat on stdin. Commands: /image PATH (attach to the next message), /reset, /exit."""
    with open_model(model, kw) as loaded:
        _repl(loaded.chat(system, generation(kw), **image_knobs(kw)))


@click.command()
@click.argument("model")
@click.option("--mmproj", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quant", default=None)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def info(model: str, mmproj: Path | None, quant: str | None, as_json: bool) -> None:
    """Show a model's files, metadata, tensor types and image-processor knobs (nothing is loaded)."""
    from lfm_edge.info import describe_model

    report = describe_model(model, mmproj, quant)
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    else:
        for section, values in report.items():
            click.echo(f"{section}:")
            for key, value in values.items() if isinstance(values, dict) else [("", values)]:
                click.echo(f"  {key}: {value}" if key else f"  {value}")


def _repl(chat: Any) -> None:
    pending: list[str] = []
    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            continue
        if line in ("/exit", "/quit"):
            return
        if line == "/reset":
            chat.reset()
            pending.clear()
            click.echo("(conversation reset)", err=True)
            continue
        if line.startswith("/image "):
            path = line[len("/image ") :].strip()
            if not Path(path).is_file():
                click.echo(f"error: no such image file: {path}", err=True)
                continue
            pending.append(path)
            click.echo(f"(image {path} attached to your next message)", err=True)
            continue
        for piece in chat.stream(line, pending):
            click.echo(piece, nl=False)
        click.echo()
        pending.clear()
