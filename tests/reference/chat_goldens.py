"""Chat-template goldens: what transformers 5.23 renders for the LFM2.5-VL-450M and LFM2-VL-450M templates.

Run from the repository root, in the reference venv::

    python -m tests.reference.chat_goldens

Every golden comes from transformers itself (``tokenizer`` is a ``TokenizersBackend``):

* ``rendered``: ``PreTrainedTokenizerBase.apply_chat_template(messages, tools=..., tokenize=False,
  **kwargs)``, which drops None-valued message keys and then calls
  ``transformers.utils.chat_template_utils.render_jinja_template``.
* ``token_ids``: ``apply_chat_template(..., tokenize=True, return_dict=False)``, i.e. the rendered text
  encoded with ``add_special_tokens=False``; checked equal to ``tokenizer.encode(rendered,
  add_special_tokens=False)``.
* ``token_ids_sanitized``: ``apply_chat_template(..., tokenize=True, sanitize_control_tokens=True)``.
* ``assistant_mask``: ``apply_chat_template(..., return_dict=True,
  return_assistant_tokens_mask=True)["assistant_masks"]``; ``generation_spans``: the character spans of
  the template's ``{% generation %}`` blocks, from ``render_jinja_template(...,
  return_assistant_tokens_mask=True)``.
* ``error``: the exception transformers raises, type and message.

The tokenizers are those of tiny synthetic checkpoints written by ``convert.synthetic`` (layouts
``official-2.5`` and ``lfm2-vl``): a byte-level BPE with every LFM2 special token at its official id, and
the official chat templates.

``strftime_now`` (the template global behind "Today's date: ...") is a closure made in
``chat_template_utils._cached_compile_jinja_template``: ``datetime.now().strftime(format)``, which looks
up the name ``datetime`` in the ``chat_template_utils`` module at call time. ``frozen_clock`` patches that
module attribute with a ``datetime`` subclass whose ``now()`` returns 2026-11-23 12:00:00, so every
rendering says 2026-11-23 (and checks it with a probe render).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import transformers
from transformers.utils import chat_template_utils, get_json_schema

from convert.synthetic import CheckpointSpec, write_checkpoint
from tests.reference.chat_sets_core import CORE_SETS, MessageSet
from tests.reference.chat_sets_tools import TOOL_SETS
from tests.reference.common import GOLDENS, REPO_ROOT, write_json

OUTPUT = GOLDENS / "chat" / "chat_template_goldens.json"
FROZEN_NOW = datetime(2026, 11, 23, 12, 0, 0)
TEMPLATE_25 = "lfm2.5-vl-450m"
TEMPLATE_2 = "lfm2-vl-450m"
LAYOUT_OF_TEMPLATE = {TEMPLATE_25: "official-2.5", TEMPLATE_2: "lfm2-vl"}
FORMAT_VERSION = 1

ALL_SETS: list[MessageSet] = [*CORE_SETS, *TOOL_SETS]
# Sets also rendered with the older LFM2-VL-450M template (no tools, no thinking, other items dropped).
LFM2_VL_SET_IDS = (
    "plain_user",
    "plain_user_no_gen_prompt",
    "system_user",
    "multi_turn",
    "image_then_text",
    "multiple_images",
    "unknown_item_types",
    "thinking_last_assistant",
    "non_ascii",
    "tools_openai_with_system",
)


class _FrozenDatetime(datetime):
    """datetime whose now() is FROZEN_NOW (the only call chat_template_utils makes)."""

    @classmethod
    def now(cls, tz: Any = None) -> _FrozenDatetime:  # type: ignore[override]
        return cls.combine(FROZEN_NOW.date(), FROZEN_NOW.time(), tzinfo=tz)


@contextlib.contextmanager
def frozen_clock() -> Iterator[None]:
    """Freeze the clock behind transformers' `strftime_now` template global to FROZEN_NOW."""
    with mock.patch.object(chat_template_utils, "datetime", _FrozenDatetime):
        probe = chat_template_utils._compile_jinja_template("{{ strftime_now('%Y-%m-%d') }}").render()
        if probe != FROZEN_NOW.strftime("%Y-%m-%d"):
            raise RuntimeError(f"strftime_now is not frozen: rendered {probe!r}")
        yield


def load_tokenizer(folder: Path) -> Any:
    # trust_remote_code=False: the LFM2-VL tokenizer_config has an auto_map for the processor (unused here).
    return transformers.AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)


def tools_for_json(tools: list[Any] | None) -> list[Any] | None:
    """The tools as the template sees them: render_jinja_template turns callables into get_json_schema(fn)."""
    if tools is None:
        return None
    return [tool if isinstance(tool, dict) else get_json_schema(tool) for tool in tools]


def _dumps(value: Any) -> str | None:
    # No sort_keys: key order is part of the input (tojson and the tool-call arguments keep it).
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _error(exc: Exception) -> dict[str, str]:
    return {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "message": str(exc)}


def _raw_render(tokenizer: Any, mset: MessageSet) -> str:
    """render_jinja_template called directly, as apply_chat_template would but without dropping None keys."""
    rendered, _ = chat_template_utils.render_jinja_template(
        conversations=[copy.deepcopy(mset.messages)],
        tools=copy.deepcopy(mset.tools),
        chat_template=tokenizer.chat_template,
        **{**tokenizer.special_tokens_map, **mset.kwargs},
    )
    return str(rendered[0])


def _apply(tokenizer: Any, mset: MessageSet, **options: Any) -> Any:
    return tokenizer.apply_chat_template(
        copy.deepcopy(mset.messages), tools=copy.deepcopy(mset.tools), **mset.kwargs, **options
    )


def _generation_spans(tokenizer: Any, mset: MessageSet, rendered: str) -> list[list[int]]:
    """Character spans (Python str indices) of the {% generation %} blocks (apply_chat_template uses them)."""
    messages = [{k: v for k, v in m.items() if v is not None} for m in copy.deepcopy(mset.messages)]
    text, spans = chat_template_utils.render_jinja_template(
        conversations=[messages],
        tools=copy.deepcopy(mset.tools),
        chat_template=tokenizer.chat_template,
        return_assistant_tokens_mask=True,
        **{**tokenizer.special_tokens_map, **mset.kwargs},
    )
    if text[0] != rendered:
        raise RuntimeError(f"{mset.id}: render_jinja_template disagrees with apply_chat_template")
    return [[start, end] for start, end in spans[0]]


def _token_goldens(tokenizer: Any, mset: MessageSet, rendered: str, with_mask: bool) -> dict[str, Any]:
    ids = [int(i) for i in _apply(tokenizer, mset, tokenize=True, return_dict=False)]
    if ids != tokenizer.encode(rendered, add_special_tokens=False):
        raise RuntimeError(f"{mset.id}: apply_chat_template ids differ from encode(rendered)")
    out: dict[str, Any] = {"token_ids": ids, "token_ids_sanitized": None}
    if mset.sanitize:
        sanitized = _apply(tokenizer, mset, tokenize=True, return_dict=False, sanitize_control_tokens=True)
        out["token_ids_sanitized"] = [int(i) for i in sanitized]
    out["assistant_mask"] = out["generation_spans"] = None
    if with_mask and not mset.kwargs.get("continue_final_message"):
        encoded = _apply(tokenizer, mset, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        out["assistant_mask"] = [int(m) for m in encoded["assistant_masks"]]
        out["generation_spans"] = _generation_spans(tokenizer, mset, rendered)
    return out


def render_case(tokenizer: Any, mset: MessageSet, template: str) -> dict[str, Any]:
    """One golden case: the inputs, then either the renderings or the error transformers raised."""
    case: dict[str, Any] = {
        "id": mset.id if template == TEMPLATE_25 else f"{TEMPLATE_2}.{mset.id}",
        "set_id": mset.id,
        "description": mset.description,
        "template": template,
        "api": mset.api,
        "messages_json": _dumps(mset.messages),
        "tools_json": _dumps(tools_for_json(mset.tools)),
        "tools_are_python_functions": any(callable(tool) for tool in mset.tools or []),
        "kwargs": mset.kwargs,
        "sanitize_control_tokens": mset.sanitize,
        "rendered": None,
        "error": None,
        "token_ids": None,
        "token_ids_sanitized": None,
        "assistant_mask": None,
        "generation_spans": None,
    }
    rendered, case["error"] = render_text(tokenizer, mset)
    expect_error = mset.id.startswith("error_")
    if expect_error != (rendered is None):
        raise RuntimeError(f"{mset.id}: expect_error={expect_error}, rendered={rendered!r}, error={case['error']}")
    _check_json_roundtrip(tokenizer, case, (rendered, case["error"]))
    if rendered is None:
        return case
    case["rendered"] = rendered
    case.update(_token_goldens(tokenizer, mset, rendered, with_mask=template == TEMPLATE_25))
    return case


def render_text(tokenizer: Any, mset: MessageSet) -> tuple[str | None, dict[str, str] | None]:
    """(rendered text, None), or (None, error) when transformers raises."""
    try:
        if mset.api == "render_jinja_template":
            return _raw_render(tokenizer, mset), None
        return str(_apply(tokenizer, mset, tokenize=False)), None
    except Exception as exc:  # any exception transformers raises is a golden
        return None, _error(exc)


def _check_json_roundtrip(tokenizer: Any, case: dict[str, Any], expected: tuple[Any, Any]) -> None:
    """Rendering the stored JSON inputs (what a consumer of the goldens has) must give the same result."""
    tools = None if case["tools_json"] is None else json.loads(case["tools_json"])
    mset = MessageSet(
        case["set_id"],
        case["description"],
        json.loads(case["messages_json"]),
        tools,
        case["kwargs"],
        api=case["api"],
    )
    if render_text(tokenizer, mset) != expected:
        raise RuntimeError(f"{case['id']}: the stored JSON inputs render differently")


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _template_info(template: str, tokenizer: Any, folder: Path) -> dict[str, Any]:
    return {
        "layout": LAYOUT_OF_TEMPLATE[template],
        "chat_template_sha256": _sha256_text(tokenizer.chat_template),
        "tokenizer_json_sha256": hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest(),
        "special_tokens_map": dict(tokenizer.special_tokens_map),
    }


def _check_ids(sets: list[MessageSet]) -> None:
    ids = [mset.id for mset in sets]
    if len(ids) != len(set(ids)):
        raise RuntimeError("duplicate message-set ids")
    missing = set(LFM2_VL_SET_IDS) - set(ids)
    if missing:
        raise RuntimeError(f"unknown ids in LFM2_VL_SET_IDS: {sorted(missing)}")


def build_goldens(workdir: Path) -> dict[str, Any]:
    """Write the two synthetic checkpoints into workdir and render every case with the clock frozen."""
    _check_ids(ALL_SETS)
    by_id = {mset.id: mset for mset in ALL_SETS}
    plan = {TEMPLATE_25: ALL_SETS, TEMPLATE_2: [by_id[set_id] for set_id in LFM2_VL_SET_IDS]}
    cases: list[dict[str, Any]] = []
    templates: dict[str, Any] = {}
    with frozen_clock():
        for template, sets in plan.items():
            folder = write_checkpoint(workdir / template, CheckpointSpec("tiny", LAYOUT_OF_TEMPLATE[template], 0))
            tokenizer = load_tokenizer(folder)
            templates[template] = _template_info(template, tokenizer, folder)
            cases.extend(render_case(tokenizer, mset, template) for mset in sets)
    return {
        "format_version": FORMAT_VERSION,
        "generator": "python -m tests.reference.chat_goldens",
        "transformers_version": transformers.__version__,
        "frozen_date": FROZEN_NOW.strftime("%Y-%m-%d"),
        "tokenizer_source": "convert.synthetic CheckpointSpec(size='tiny', layout=<layout>, seed=0)",
        "templates": templates,
        "cases": cases,
    }


def main() -> int:
    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="chat-goldens-") as tmp:
        goldens = build_goldens(Path(tmp))
    write_json(OUTPUT, goldens)
    errors = sum(case["error"] is not None for case in goldens["cases"])
    print(f"wrote {len(goldens['cases'])} cases ({errors} expected errors) to {OUTPUT.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
