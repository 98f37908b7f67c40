"""Prompts longer than a command line: `-` reads stdin, --prompt-file reads a file (run, caption, tools, detect)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfm_edge.cli import main

Converted = Callable[..., tuple[Path, Path]]
FAST = ["--max-tokens", "3", "--temperature", "0", "--threads", "2", "--n-ctx", "2048"]
IMAGE = str(Path(__file__).parent / "images" / "photo_336x240.png")
TOOLS = [{"name": "get_weather", "description": "Weather.", "parameters": {"type": "object", "properties": {}}}]


@pytest.fixture(scope="module")
def text_model(converted: Converted) -> str:
    return str(converted("official-2.5", "f16")[0])


def _prompt_tokens(result_stdout: str) -> int:
    return int(json.loads(result_stdout)["usage"]["prompt_tokens"])


def test_dash_reads_stdin_like_the_argument(text_model: str, tmp_path: Path) -> None:
    prompt = "Tell me about " + "the sea and the sky " * 20
    runner = CliRunner()
    given = runner.invoke(main, ["-q", "run", text_model, prompt, "--json", *FAST])
    piped = runner.invoke(main, ["-q", "run", text_model, "-", "--json", *FAST], input=prompt + "\n")
    (tmp_path / "prompt.txt").write_text(prompt + "\n", encoding="utf-8")
    filed = runner.invoke(
        main, ["-q", "run", text_model, "--prompt-file", str(tmp_path / "prompt.txt"), "--json", *FAST]
    )
    assert given.exit_code == piped.exit_code == filed.exit_code == 0, (piped.output, filed.output)
    assert json.loads(given.stdout) | {"timings": None} == json.loads(piped.stdout) | {"timings": None}
    assert _prompt_tokens(given.stdout) == _prompt_tokens(filed.stdout)


def test_prompt_past_the_context_is_the_one_line_error(text_model: str) -> None:
    long_prompt = "word " * 3000
    result = CliRunner().invoke(main, ["run", text_model, "-", *FAST], input=long_prompt)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the prompt needs") and result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("arguments", "stdin", "message"),
    [
        (["-", "--prompt-file", "-"], "x", "give PROMPT or --prompt-file, not both"),
        ([], None, "missing PROMPT"),
        (["-"], "\n\n", "read from stdin is empty"),
    ],
)
def test_bad_prompt_sources_are_usage_errors(
    text_model: str, arguments: list[str], stdin: str | None, message: str
) -> None:
    result = CliRunner().invoke(main, ["run", text_model, *arguments, *FAST], input=stdin)
    assert result.exit_code == 2 and message in result.output


def test_caption_tools_and_detect_read_stdin(text_model: str, tmp_path: Path) -> None:
    runner = CliRunner()
    caption = runner.invoke(main, ["caption", text_model, IMAGE, "--prompt", "-", "--json", *FAST], input="Colours?")
    assert caption.exit_code == 0, caption.output
    assert json.loads(caption.stdout)["usage"]["prompt_tokens"] > 0
    tools_file = tmp_path / "tools.json"
    tools_file.write_text(json.dumps(TOOLS), encoding="utf-8")
    tools = runner.invoke(main, ["tools", text_model, "-", "--tools", str(tools_file), *FAST], input="Weather?")
    assert tools.exit_code == 0 and "finish_reason" in json.loads(tools.stdout)
    detect = runner.invoke(main, ["detect", text_model, IMAGE, "-", "--json", *FAST], input="the red box\n")
    assert detect.exit_code == 0 and "boxes" in json.loads(detect.stdout)
