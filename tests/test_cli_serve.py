"""`lfm-edge serve` as a user starts it: a subprocess on port 0, the URL from its log line, Ctrl-C to stop."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from lfm_edge.cli import main


def test_serve_help_documents_the_safety_options() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--api-key", "--cors", "--allowed-host", "--allow-remote-images", "--alias"):
        assert option in result.output


def test_serve_refuses_a_short_api_key_in_one_line(converted: Callable[..., tuple[Path, Path]]) -> None:
    text, _ = converted("official-2.5", "f16")
    result = CliRunner().invoke(main, ["serve", str(text), "--api-key", "short"])
    assert result.exit_code == 1 and "at least 8 characters" in result.output and "Traceback" not in result.output


def test_serve_starts_answers_and_stops_on_ctrl_c(converted: Callable[..., tuple[Path, Path]]) -> None:
    text, _ = converted("official-2.5", "f16")
    command = [sys.executable, "-m", "lfm_edge.cli", "serve", str(text), "--port", "0", "--threads", "2",
               "--alias", "tiny", "--n-ctx", "1024"]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"at (http://\S+/v1)", line)
        assert match, line
        with urllib.request.urlopen(match.group(1).removesuffix("/v1") + "/health", timeout=30) as response:
            assert json.load(response)["model"] == "tiny"
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, errors
    assert "Traceback" not in errors
