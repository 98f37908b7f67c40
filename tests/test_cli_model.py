"""`lfm-edge run | chat | caption | info` through click's CliRunner on the converted tiny model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from lfm_edge.cli import main

Converted = Callable[..., tuple[Path, Path]]
FAST = ["--max-tokens", "6", "--temperature", "0", "--threads", "2", "--n-ctx", "2048"]


@pytest.fixture(scope="module")
def text_model(converted: Converted) -> str:
    return str(converted("official-2.5", "f16")[0])


def test_run_streams_text_and_reports_timings(text_model: str) -> None:
    result = CliRunner().invoke(main, ["run", text_model, "Hello", *FAST])
    assert result.exit_code == 0, result.output
    assert "TTFT" in result.stderr and "6 generated" in result.stderr


def test_run_json_is_one_object(text_model: str) -> None:
    result = CliRunner().invoke(main, ["--quiet", "run", text_model, "Hello", "--json", *FAST])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["usage"]["completion_tokens"] == 6 and record["finish_reason"] == "length"
    assert set(record["timings"]) >= {"ttft_s", "prefill_tok_s", "decode_tok_s"}


def test_run_is_deterministic_when_greedy(text_model: str) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["-q", "run", text_model, "Hi", "--json", *FAST])
    second = runner.invoke(main, ["-q", "run", text_model, "Hi", "--json", *FAST])
    assert json.loads(first.stdout)["text"] == json.loads(second.stdout)["text"]


def test_chat_reads_turns_and_commands_from_stdin(text_model: str, tmp_path: Path) -> None:
    script = "Hello\n/image missing.png\n/reset\nAgain\n/exit\nnot read\n"
    result = CliRunner().invoke(main, ["chat", text_model, *FAST], input=script)
    assert result.exit_code == 0, result.output
    assert "no such image file" in result.stderr and "conversation reset" in result.stderr
    assert len(result.stdout.strip("\n").split("\n")) >= 2


def test_info_plain_and_json(converted: Converted) -> None:
    text, mmproj = converted("official-2.5", "f16")
    plain = CliRunner().invoke(main, ["info", str(text)])
    assert plain.exit_code == 0 and "lfm2" in plain.output and "max_tiles: 10" in plain.output
    record = json.loads(CliRunner().invoke(main, ["info", str(text), "--json"]).stdout)
    assert record["text"]["tensors"] == 40 and record["mmproj"]["tensors"] == 57
    assert record["image processor"]["use_thumbnail"] is True and record["mmproj"]["file"] == str(mmproj)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.gguf", "hi"], "does not exist"),
        (["info", "nowhere/at-all/x.gguf"], "does not exist"),
        (["run", "{model}", "hi", "--temperature", "-1"], "temperature"),
        (["run", "{model}", "hi", "--max-image-tokens", "8", "--min-image-tokens", "16"], "min_image_tokens"),
    ],
)
def test_errors_are_one_line_with_non_zero_exit(text_model: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, [a.replace("{model}", text_model) for a in args])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_tools_prints_the_reply_as_json(text_model: str, tmp_path: Path) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}]))
    result = CliRunner().invoke(main, ["-q", "tools", text_model, "Weather?", "--tools", str(tools), *FAST])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) == {"content", "tool_calls", "reasoning", "errors", "finish_reason"}
    tools.write_text("{not json")
    bad = CliRunner().invoke(main, ["tools", text_model, "x", "--tools", str(tools)])
    assert bad.exit_code == 1 and "not a JSON file of tools" in bad.output


def test_detect_json_and_drawing(text_model: str, tmp_path: Path) -> None:
    image = str(Path(__file__).parent / "images" / "photo_336x240.png")
    out = tmp_path / "boxes.png"
    result = CliRunner().invoke(main, ["-q", "detect", text_model, image, "cat", "--json", "--draw", str(out), *FAST])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert set(record) == {"boxes", "errors", "raw"} and out.is_file()


def test_caption_jsonl(text_model: str) -> None:
    images = [str(Path(__file__).parent / "images" / name) for name in ("photo_336x240.png", "photo_1024x768.jpg")]
    result = CliRunner().invoke(main, ["-q", "caption", text_model, *images, "--json", *FAST])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == images and all(line["usage"]["completion_tokens"] for line in lines)
