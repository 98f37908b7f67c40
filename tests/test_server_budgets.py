"""The checks that run before llama.cpp or Pillow see a request's grammar or image: the GBNF checker agrees with
llama.cpp's own parser, schema refusals name their key, image headers are counted right, and the decode pool's
memory and time budgets hold (through a real server on loopback)."""

from __future__ import annotations

import base64
import http.client
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from llama_cpp import llama_cpp as lc
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf
from PIL import Image

import lfm_edge.model as api
from lfm_edge.errors import RequestError
from lfm_edge.server import Limits
from lfm_edge.server.gbnf_check import GrammarBudget, GrammarProblem, check_gbnf
from lfm_edge.server.images import gif_frames, jpeg_scans, webp_frames
from lfm_edge.server.schema_budget import SchemaBudget, check_schema, pattern_expansion
from tests.hostile_inputs import gif_with_frames, image_chat, progressive_jpeg_scan_bomb
from tests.server_support import running_server

IMAGES = Path(__file__).parent / "images"

# Grammars llama.cpp parses and grammars it refuses (syntax only: no left recursion, tokens by id).
GRAMMARS = [
    'root ::= "yes" | "no"',
    'root ::= [a-z]+ ("," [a-z]+)*',
    "root ::= item{2,5}\nitem ::= [0-9] # a digit",
    'root ::= ( "a"\n  | "b" )?',
    'root ::= "\\x41\\u00e9\\U0001F600\\t\\n\\\\"',
    "root ::= [^\\]\\-] .",
    "root ::= <[5]> !<[7]>",
    'root ::= "a"{3}',
    'root ::= "a"{0,}',
    'root ::= "a" (',
    'root ::= "a" )',
    'root ::= "\\q"',
    'root ::= "\\x4"',
    "root ::= undefined-rule",
    'other ::= "a"',
    'root ::= "a"\nroot2 :: "b"',
    "root ::= [abc",
    'root ::= "abc',
    'root ::= * "a"',
    'root ::= "a"{2,',
    "root ::= <[12x]>",
    'root ::= "a" "b" ) "c"',
    JSON_GBNF,
]


@pytest.fixture(scope="module")
def model(converted: Callable[..., tuple[Path, Path]]) -> Iterator[api.Model]:
    with api.load(converted("official-2.5", "f16")[0], n_ctx=256, n_threads=2) as loaded:
        yield loaded


@pytest.mark.parametrize("grammar", GRAMMARS)
def test_the_checker_accepts_exactly_what_llama_cpp_parses(model: api.Model, grammar: str) -> None:
    vocab = lc.llama_model_get_vocab(model.text.model)
    sampler = lc.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    native = bool(sampler)
    if sampler:
        lc.llama_sampler_free(sampler)
    try:
        check_gbnf(grammar, GrammarBudget())
        ours = True
    except GrammarProblem:
        ours = False
    assert ours == native


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "maxLength": 1000},
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 999},
                                          "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 50}},
         "required": ["n"]},
        {"$defs": {"p": {"type": "object", "properties": {"x": {"type": "number"}}}},
         "type": "array", "items": {"$ref": "#/$defs/p"}},
    ],
)  # fmt: skip
def test_ordinary_schemas_pass_both_checks(schema: dict[str, Any]) -> None:
    check_schema(schema, "s", SchemaBudget())
    check_gbnf(json_schema_to_gbnf(json.dumps(schema)), GrammarBudget())


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"items": {"maxItems": 2000}}, "s.items.maxItems"),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "s.properties.a.$ref"),
        ({"$ref": "https://example.com/schema.json"}, "s.$ref"),
        ({"anyOf": [{"pattern": "(x{0,50}){0,50}"}]}, "s.anyOf[0].pattern"),
        (
            {"properties": {"a": {"properties": {"b": {"properties": {"c": {}}}}}}},
            "s.properties.a.properties.b.properties",
        ),
    ],
)
def test_schema_refusals_name_the_key(schema: dict[str, Any], where: str) -> None:
    with pytest.raises(RequestError) as raised:
        check_schema(schema, "s", SchemaBudget(max_depth=4))
    assert str(raised.value).startswith(where) and raised.value.code == "unsupported_schema"


def test_pattern_expansion_multiplies_nested_repetitions() -> None:
    assert pattern_expansion("^[a-z]{2,5}$") < 10
    assert pattern_expansion("((ab){10}){10}") >= 200


def _encoded(image: Image.Image, kind: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def test_headers_are_counted_as_pillow_counts_them() -> None:
    photo = Image.open(IMAGES / "photo_512x512.png").convert("RGB")
    assert jpeg_scans(_encoded(photo, "JPEG"), 64) == 1
    assert 2 < jpeg_scans(_encoded(photo, "JPEG", progressive=True), 64) <= 20
    assert jpeg_scans(progressive_jpeg_scan_bomb(copies=500, size=64), 64) == 65  # counting stops past the limit
    with Image.open(IMAGES / "anim_160x120.gif") as gif:
        assert gif_frames((IMAGES / "anim_160x120.gif").read_bytes(), 1000)[0] == gif.n_frames
    assert gif_frames(gif_with_frames(30), 1000)[0] == 30
    frames = [photo.resize((32, 32)).rotate(angle) for angle in (0, 90, 180)]
    webp = _encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50)
    with Image.open(io.BytesIO(webp)) as opened:
        assert webp_frames(webp) == opened.n_frames == 3


def _post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 0, timeout=120)
    connection.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.status, json.loads(response.read())
    connection.close()
    return answer


def _uri(name: str) -> str:
    return "data:image/jpeg;base64," + base64.b64encode((IMAGES / name).read_bytes()).decode()


def test_decoding_budgets_hold(converted: Callable[..., tuple[Path, Path]]) -> None:
    small, large = _uri("exif_o6_400x240.jpg"), _uri("l_1024x768.jpg")
    with running_server(converted, limits=Limits(max_decoded_image_mb=1)) as (server, _):
        assert _post(server.url, image_chat(small))[0] == 200  # 0.3 MB decoded
        status, body = _post(server.url, image_chat(large))  # 2.4 MB decoded
        assert status == 413 and "max_decoded_image_mb" in body["error"]["message"]
    with running_server(converted, limits=Limits(image_decode_timeout_s=0.0)) as (server, _):
        status, body = _post(server.url, image_chat(small))
        assert status == 413 and body["error"]["code"] == "image_too_complex"
        assert "image_decode_timeout_s" in body["error"]["message"]
