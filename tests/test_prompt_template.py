"""The chat-template renderer against transformers 5.23's apply_chat_template goldens, plus its sandbox and errors."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from lfm_edge.errors import PromptError
from lfm_edge.prompt import (
    ChatTemplate,
    RenderOptions,
    json_schema_for,
    starts_with_bos,
    strip_leading_bos,
    template_source_from_metadata,
)
from tests.conftest import GOLDENS
from tests.reference.chat_sets_tools import get_current_temperature

GOLDEN = json.loads((GOLDENS / "chat" / "chat_template_goldens.json").read_text(encoding="utf-8"))
CASES = {case["id"]: case for case in GOLDEN["cases"]}
FROZEN_NOW = datetime.combine(date.fromisoformat(GOLDEN["frozen_date"]), datetime.min.time())
OFFICIAL = Path(__file__).resolve().parents[1] / "convert" / "synthetic" / "official"
LFM25_SOURCE = (OFFICIAL / "lfm2.5-vl-450m" / "chat_template.jinja").read_text(encoding="utf-8")
LFM25 = ChatTemplate(LFM25_SOURCE)  # compiled once: renders share it, as the runtime's do
# The options that are template variables rather than RenderOptions fields.
RENDER_KWARGS = {"add_generation_prompt", "continue_final_message"}


@pytest.fixture(scope="module")
def golden_env(synthetic_checkpoint: Callable[..., Path]) -> dict[str, tuple[ChatTemplate, Tokenizer]]:
    """Per golden template name: the template and tokenizer of the synthetic checkpoint the goldens were made from."""
    env = {}
    for name, info in GOLDEN["templates"].items():
        folder = synthetic_checkpoint(info["layout"])
        source = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        tokenizer_bytes = (folder / "tokenizer.json").read_bytes()
        assert hashlib.sha256(source.encode("utf-8")).hexdigest() == info["chat_template_sha256"]
        assert hashlib.sha256(tokenizer_bytes).hexdigest() == info["tokenizer_json_sha256"]
        specials = info["special_tokens_map"]
        template = ChatTemplate(source, bos_token=specials["bos_token"], eos_token=specials["eos_token"])
        env[name] = (template, Tokenizer.from_file(str(folder / "tokenizer.json")))
    return env


def golden_options(case: dict[str, Any]) -> RenderOptions:
    kwargs = case["kwargs"]
    tools = json.loads(case["tools_json"]) if case["tools_json"] is not None else None
    if case["tools_are_python_functions"]:
        tools = [get_current_temperature]  # the function the generator passed; tools_json holds its schema
    extra = {key: value for key, value in kwargs.items() if key not in RENDER_KWARGS}
    return RenderOptions(
        add_generation_prompt=kwargs.get("add_generation_prompt", False),
        tools=tools,
        extra=extra or None,
        now=FROZEN_NOW,
        continue_final_message=kwargs.get("continue_final_message", False),
        # The one render_jinja_template case is transformers' raw renderer, which keeps None values.
        drop_none_values=case["api"] == "apply_chat_template",
    )


def assistant_mask(tokenizer: Tokenizer, text: str, spans: tuple[tuple[int, int], ...]) -> list[int]:
    """transformers' apply_chat_template(return_assistant_tokens_mask=True) algorithm, on our spans."""
    encoding = tokenizer.encode(text, add_special_tokens=False)
    mask = [0] * len(encoding.ids)
    for start, end in spans:
        start_token = encoding.char_to_token(start)
        end_token = encoding.char_to_token(end - 1)
        if start_token is None:
            break
        for index in range(start_token, end_token + 1 if end_token else len(mask)):
            mask[index] = 1
    return mask


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_golden_case(golden_env: dict[str, tuple[ChatTemplate, Tokenizer]], case_id: str) -> None:
    case = CASES[case_id]
    template, tokenizer = golden_env[case["template"]]
    messages = json.loads(case["messages_json"])
    if case["error"] is not None:
        with pytest.raises(PromptError):
            template.render(messages, golden_options(case))
        return
    rendered = template.render_with_spans(messages, golden_options(case))
    assert rendered.text == case["rendered"]
    assert tokenizer.encode(rendered.text, add_special_tokens=False).ids == case["token_ids"]
    if case["generation_spans"] is not None:
        assert [list(span) for span in rendered.generation_spans] == case["generation_spans"]
        assert assistant_mask(tokenizer, rendered.text, rendered.generation_spans) == case["assistant_mask"]


def test_every_golden_template_and_case_is_covered() -> None:
    assert len(CASES) == len(GOLDEN["cases"]) == 57
    assert {case["template"] for case in CASES.values()} == set(GOLDEN["templates"])


def test_python_function_schema_equals_transformers_get_json_schema() -> None:
    case = CASES["tools_python_function"]
    # Key order is part of the golden: the template writes the schema with tojson.
    assert json.dumps([json_schema_for(get_current_temperature)]) == json.dumps(json.loads(case["tools_json"]))


def test_bos_is_written_once_and_strip_leading_bos_hands_it_to_the_tokenizer(
    golden_env: dict[str, tuple[ChatTemplate, Tokenizer]],
) -> None:
    template, tokenizer = golden_env["lfm2.5-vl-450m"]
    prompt = template.render([{"role": "user", "content": "Hi"}])
    ids = tokenizer.encode(prompt, add_special_tokens=False).ids
    assert ids[0] == 1 and ids.count(1) == 1
    assert starts_with_bos(prompt, "<|startoftext|>")
    stripped = strip_leading_bos(prompt, "<|startoftext|>")
    assert not starts_with_bos(stripped, "<|startoftext|>")
    # The tokenizer's own BOS (add_special_tokens=True) then gives the same ids: BOS from one place only.
    assert tokenizer.encode(stripped, add_special_tokens=True).ids == ids


def test_strip_leading_bos_removes_exactly_one_and_only_at_the_start() -> None:
    assert strip_leading_bos("<s><s>x", "<s>") == "<s>x"
    assert strip_leading_bos("x<s>", "<s>") == "x<s>"
    assert strip_leading_bos("<s>x", "") == "<s>x"
    assert not starts_with_bos("<s>x", "")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ namespace.__init__ }}",
        "{{ messages.append(1) }}",
        "{% set ns = namespace(_secret=1) %}",
        "{% set ns = namespace() %}{% set ns._x = 1 %}",
        "{{ raise_exception('no system prompt allowed') }}",
        "{{ messages[0].content.missing.deeper }}",
        "{{ 1 / 0 }}",
        "{{ range(10 ** 9) | list }}",
        "{{ messages[0].nothing | tojson }}",
    ],
)
def test_bad_templates_raise_prompt_error_and_the_renderer_stays_usable(source: str) -> None:
    template = ChatTemplate("{% if bad %}" + source + "{% endif %}fine")
    messages = [{"role": "user", "content": "Hi"}]
    with pytest.raises(PromptError) as caught:
        template.render(messages, RenderOptions(extra={"bad": True}))
    assert caught.value.__cause__ is not None  # the jinja2/Python error stays attached for debugging
    assert template.render(messages, RenderOptions(extra={"bad": False})) == "fine"


def test_raise_exception_message_reaches_the_prompt_error() -> None:
    template = ChatTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(PromptError, match="roles must alternate"):
        template.render([{"role": "user", "content": "Hi"}])


def test_syntax_error_is_a_prompt_error_naming_the_line() -> None:
    with pytest.raises(PromptError, match="line 2"):
        ChatTemplate("ok\n{% if %}")
    with pytest.raises(PromptError, match="non-empty"):
        ChatTemplate("")


def test_transformers_globals_and_filters() -> None:
    source = (
        "{{ {'a': '<é>', 'b': [1, none, true]} | tojson }}|{{ [1] | tojson(indent=2) }}|"
        "{{ dict(x=1) | tojson }}|{% set ns = namespace(n=0) %}{% for i in range(5) %}{% if i == 3 %}{% break %}"
        "{% endif %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}|{{ strftime_now('%d %b %Y') }}"
    )
    rendered = ChatTemplate(source).render([{"role": "user", "content": ""}], RenderOptions(now=FROZEN_NOW))
    assert rendered == '{"a": "<é>", "b": [1, null, true]}|[\n  1\n]|{"x": 1}|3|23 Nov 2026'


def test_strftime_now_defaults_to_the_clock() -> None:
    rendered = ChatTemplate("{{ strftime_now('%Y') }}").render([{"role": "user", "content": ""}])
    assert rendered in {str(datetime.now().year - 1), str(datetime.now().year)}  # new-year race


def test_concurrent_renders_keep_their_own_clock_and_spans() -> None:
    template = ChatTemplate("{{ strftime_now('%Y') }}{% generation %}{{ messages[0].content }}{% endgeneration %}")
    failures: list[str] = []

    def worker(year: int) -> None:
        for _ in range(50):
            text = f"y{year}"
            result = template.render_with_spans(
                [{"role": "user", "content": text}], RenderOptions(now=datetime(year, 1, 1))
            )
            if result.text != f"{year}{text}" or result.generation_spans != ((4, 4 + len(text)),):
                failures.append(f"{year}: {result}")

    threads = [threading.Thread(target=worker, args=(year,)) for year in (2001, 2002, 2003)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@pytest.mark.parametrize(
    ("messages", "options", "match"),
    [
        ([], RenderOptions(), "messages is empty"),
        ("hello", RenderOptions(), "list of message dicts"),
        ([{"role": "user", "content": "x"}, "oops"], RenderOptions(), r"messages\[1\] is a str"),
        ([{"role": "user", "content": "x"}], RenderOptions(extra={"messages": []}), "renderer sets itself"),
        ([{"role": "user", "content": "x"}], RenderOptions(tools=[print]), r"tools\[0\]"),
        ([{"role": "user", "content": "x"}], RenderOptions(tools={"name": "f"}), "wrap a single tool"),  # type: ignore[arg-type]
        ([{"role": "user"}], RenderOptions(add_generation_prompt=False, continue_final_message=True), "no 'content'"),
        (
            [{"role": "assistant", "content": "x", "notes": "y"}],
            RenderOptions(add_generation_prompt=False, continue_final_message="notes"),
            "never reads",
        ),
        (
            [{"role": "assistant", "content": [{"type": "image"}]}],
            RenderOptions(add_generation_prompt=False, continue_final_message=True),
            "no text block",
        ),
    ],
)
def test_bad_input_raises_prompt_error(messages: Any, options: RenderOptions, match: str) -> None:
    with pytest.raises(PromptError, match=match):
        LFM25.render(messages, options)


def test_continue_final_message_on_a_content_list_and_on_thinking() -> None:
    continuing = RenderOptions(add_generation_prompt=False, continue_final_message=True)
    blocks = [{"role": "assistant", "content": [{"type": "text", "text": "It is "}, {"type": "image"}]}]
    assert LFM25.render(blocks, continuing).endswith("<|im_start|>assistant\nIt is ")
    thinking = [{"role": "assistant", "content": "Answer", "reasoning_content": "Let me"}]
    options = RenderOptions(add_generation_prompt=False, continue_final_message="reasoning_content")
    result = LFM25.render_with_spans(thinking, options)
    assert result.text.endswith("<|im_start|>assistant\n<think>Let me")
    assert all(end <= len(result.text) for _, end in result.generation_spans)


def test_render_leaves_the_callers_messages_alone() -> None:
    messages = [{"role": "assistant", "content": "Hi", "reasoning": "r", "tool_calls": None}]
    snapshot = json.dumps(messages)
    LFM25.render(messages, RenderOptions(add_generation_prompt=False, continue_final_message=True))
    assert json.dumps(messages) == snapshot


def test_rich_objects_reach_the_template_as_inert_placeholders() -> None:
    class Picture:
        def save(self, path: str) -> None:  # the kind of method a template must never reach
            raise AssertionError(path)

    source = "{% for item in messages[0].content %}{{ item.image }}{% endfor %}{{ flag }}"
    messages = [{"role": "user", "content": [{"type": "image", "image": Picture()}]}]
    rendered = ChatTemplate(source).render(messages, RenderOptions(extra={"flag": (1, "a")}))
    assert rendered == "<Picture>(1, 'a')"


def test_template_source_from_metadata() -> None:
    assert template_source_from_metadata({"tokenizer.chat_template": LFM25_SOURCE}) == LFM25_SOURCE
    with pytest.raises(PromptError, match=r"tokenizer\.chat_template"):
        template_source_from_metadata({"general.name": "x"})


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Weather:
    def forecast(self, city: str, hours: list[int] | None = None, mode: Literal["fast", 2] = "fast") -> dict[str, int]:
        """Forecast.

        Spans two lines.

        Args:
            city: The city,
                continued here.
            hours: Hours ahead.
            mode: Speed.

        Returns:
            The forecast.
        """
        return {}


def paint(colour: Colour, sizes: tuple[int, str], extra: dict[str, float], flag: bool | int = True) -> None:
    """Paint.

    Args:
        colour: Which colour.
        sizes: Sizes (choices: [[1, "a"]])
        extra: More.
        flag: Flag.
    """


def test_json_schema_for_covers_the_supported_hints() -> None:
    method = json_schema_for(Weather().forecast)["function"]
    assert method == {
        "name": "forecast",
        "description": "Forecast.\n\nSpans two lines.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, continued here."},
                "hours": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "nullable": True,
                    "description": "Hours ahead.",
                },
                "mode": {"type": ["string", "integer"], "enum": ["fast", 2], "description": "Speed."},
            },
            "required": ["city"],
        },
        "return": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "The forecast."},
    }
    properties = json_schema_for(paint)["function"]["parameters"]["properties"]
    assert properties["colour"] == {"type": "string", "enum": ["red", "blue"], "description": "Which colour."}
    assert properties["sizes"] == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "string"}],
        "enum": [[1, "a"]],
        "description": "Sizes",
    }
    assert properties["extra"]["additionalProperties"] == {"type": "number"}
    assert properties["flag"]["type"] == ["boolean", "integer"]


def no_doc(x: int) -> None:
    pass


def undocumented_arg(x: int, y: int) -> None:
    """Does things.

    Args:
        x: An x.
    """


def unhinted(x) -> None:  # type: ignore[no-untyped-def]
    """Does things.

    Args:
        x: An x.
    """


def custom_class(x: Weather) -> None:
    """Does things.

    Args:
        x: An x.
    """


@pytest.mark.parametrize(
    ("func", "match"),
    [(no_doc, "no docstring"), (undocumented_arg, "'y'"), (unhinted, "no type hint"), (custom_class, "Weather")],
)
def test_json_schema_for_rejects_what_it_cannot_describe(func: Callable[..., Any], match: str) -> None:
    with pytest.raises(PromptError, match=match):
        json_schema_for(func)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40), st.text(max_size=20))
def test_any_user_text_is_written_verbatim(user_text: str, system_text: str) -> None:
    messages = [{"role": "system", "content": system_text}, {"role": "user", "content": user_text}]
    system_block = f"<|im_start|>system\n{system_text}<|im_end|>\n" if system_text else ""
    expected = f"<|startoftext|>{system_block}<|im_start|>user\n{user_text}<|im_end|>\n<|im_start|>assistant\n"
    assert LFM25.render(messages) == expected
