"""Hostile payloads for the server tests and the soak: images whose headers lie or whose decoding is a bomb, and
schemas or grammars that expand without bound. Each is built here from scratch (seconds), never stored."""

from __future__ import annotations

import base64
import io
import struct
from typing import Any

from PIL import Image

LONG_ANSWER_GRAMMAR = 'root ::= ("ab "){900}'  # forces a long answer whatever the weights (tiny model: ~1 min)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def bilevel_png(width: int, height: int) -> bytes:
    """A PNG of width x height that compresses to almost nothing (a decompression bomb when decoded)."""
    encoded = io.BytesIO()
    Image.new("1", (width, height)).save(encoded, "PNG")
    return encoded.getvalue()


def ico_hiding_a_big_png() -> bytes:
    """An ICO whose directory says 16x16 but whose one frame is a 9000x9000 PNG (Pillow decodes it to open it)."""
    png = bilevel_png(9000, 9000)
    directory = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 22)
    return directory + png


def icns_hiding_a_big_png() -> bytes:
    """An ICNS with a 12000x12000 PNG in its 512x512 slot (ic09)."""
    png = bilevel_png(12000, 12000)
    return b"icns" + struct.pack(">I", 16 + len(png)) + b"ic09" + struct.pack(">I", 8 + len(png)) + png


def _jpeg_scans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each scan (SOS segment and its entropy-coded data)."""
    scans, pos = [], 2
    while pos < len(data) - 1:
        marker = data[pos + 1]
        if marker == 0xD9:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if marker == 0xDA:
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
            scans.append((pos, end))
        pos = end
    return scans


def progressive_jpeg_scan_bomb(copies: int = 20_000, size: int = 1024) -> bytes:
    """A progressive JPEG with its smallest scan repeated `copies` times (each repeat is a pass over all pixels)."""
    encoded = io.BytesIO()
    Image.new("L", (size, size), 128).save(encoded, "JPEG", progressive=True, quality=90)
    data = encoded.getvalue()
    start, end = min(_jpeg_scans(data), key=lambda scan: scan[1] - scan[0])
    return data[:end] + data[start:end] * copies + data[end:]


def gif_with_frames(count: int) -> bytes:
    frames = [Image.new("P", (2, 2), i % 2) for i in range(count)]
    encoded = io.BytesIO()
    frames[0].save(encoded, "GIF", save_all=True, append_images=frames[1:], duration=10, optimize=False)
    return encoded.getvalue()


def image_chat(uri: str, **extra: Any) -> dict[str, Any]:
    content = [{"type": "image_url", "image_url": {"url": uri}}, {"type": "text", "text": "What is it?"}]
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 2, **extra}


def schema_chat(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }


def forced_tool_chat(parameters: dict[str, Any], names: tuple[str, ...] = ("f",)) -> dict[str, Any]:
    tools = [{"type": "function", "function": {"name": name, "parameters": parameters}} for name in names]
    return {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "tools": tools, "tool_choice": "required"}


HOSTILE_SCHEMAS: list[tuple[dict[str, Any], str]] = [
    ({"type": "string", "maxLength": 20000}, "maxLength"),
    ({"type": "array", "items": {"type": "integer"}, "maxItems": 100000}, "maxItems"),
    ({"type": "string", "pattern": "^(a|b){0,100000}$"}, "pattern"),
    ({"enum": list(range(100_000))}, "max_grammar_bytes"),
    ({"enum": [f"v{i}" for i in range(5000)]}, "enum"),
    ({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string",
                                                                                   "minLength": 5000}}}}},
     "properties.a.properties.b.minLength"),
]  # fmt: skip
