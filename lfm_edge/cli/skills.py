"""`lfm-edge tools | detect`: the model card's two skills beyond captioning, from the command line."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from lfm_edge.cli.errors import friendly_errors
from lfm_edge.cli.model import (
    PROMPT_FILE,
    generation,
    generation_options,
    image_knobs,
    model_options,
    open_model,
    read_prompt,
)


@click.command()
@click.argument("model")
@click.argument("prompt", required=False)
@PROMPT_FILE
@click.option(
    "--tools",
    "tools_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON file: a list of tools (JSON-schema dicts as the model card passes them, or OpenAI-shaped).",
)
@click.option("--system", default=None, help="System prompt (add 'Output function calls as JSON.' for JSON calls).")
@model_options
@generation_options
@friendly_errors
def tools(model: str, prompt: str | None, tools_file: Path, system: str | None, **kw: Any) -> None:
    """Ask PROMPT with tools available; print the reply as JSON: content, OpenAI-shaped tool_calls, errors.
    PROMPT `-` reads stdin."""
    from lfm_edge.errors import ConfigError

    prompt = read_prompt(prompt, kw.pop("prompt_file"))
    try:
        declared = json.loads(tools_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{tools_file} is not a JSON file of tools ({exc})") from exc
    if not isinstance(declared, list):
        raise ConfigError(f"{tools_file} must hold a JSON list of tools, got {type(declared).__name__}")
    with open_model(model, kw) as loaded:
        reply = loaded.chat(system, generation(kw), tools=declared).send(prompt)
    message = reply.message
    record = {
        "content": message.content,
        "tool_calls": [call.to_openai() for call in message.tool_calls],
        "reasoning": message.reasoning,
        "errors": list(message.errors),
        "finish_reason": reply.finish_reason,
    }
    click.echo(json.dumps(record, ensure_ascii=False, indent=2))


@click.command()
@click.argument("model")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.argument("query")
@click.option("--draw", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG with the boxes drawn.")
@click.option("--json", "as_json", is_flag=True, help="Print the boxes as JSON.")
@model_options
@generation_options
@friendly_errors
def detect(model: str, image: str, query: str, draw: Path | None, as_json: bool, **kw: Any) -> None:
    """Find QUERY in IMAGE (the model card's grounding prompt); boxes in pixels of the original image.
    QUERY `-` reads stdin."""
    query = read_prompt(query, None, "QUERY")
    with open_model(model, kw) as loaded:
        options = generation(kw) if kw["max_tokens"] != 512 else None
        detection = loaded.detect(image, query, options, **image_knobs(kw))
    if draw is not None:
        from lfm_edge.parse import draw_boxes

        draw_boxes(image, detection.boxes, draw)
    boxes = [asdict(box) for box in detection.boxes]
    if as_json:
        click.echo(json.dumps({"boxes": boxes, "errors": list(detection.errors), "raw": detection.raw}, indent=2))
    else:
        for box in detection.boxes:
            click.echo(f"{box.label}: ({box.x1:.0f}, {box.y1:.0f}) - ({box.x2:.0f}, {box.y2:.0f})")
        for error in detection.errors:
            click.echo(f"warning: {error}", err=True)
