"""Image settings for GGUF files without lfm_edge's keys: the family table, the source order, and bad input.

The central case (issue 21): an LFM2-VL-450M mmproj written by llama.cpp's own converter (no
``lfm_edge.processor.*`` keys) must get ``use_thumbnail=False`` and so exactly transformers' crops and token
sequence for LFM2-VL-450M. The mmproj is made here by lfm_edge's converter with its processor keys switched off
and checked equal, key for key and tensor for tensor, to what llama.cpp's converter wrote for the same checkpoint
(tests/goldens/family, made by tests/reference/family_goldens.py).
"""

from __future__ import annotations

import json
import logging
import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import convert.metadata
import lfm_edge.model as api
from convert.api import ConvertOptions, convert_checkpoint
from convert.synthetic import CheckpointSpec, write_checkpoint
from lfm_edge.engine import ImageBlock
from lfm_edge.errors import ConfigError
from lfm_edge.image import ProcessorSettings, plan_layout
from lfm_edge.image.family import FAMILY, Signature, by_name, by_signature
from lfm_edge.mmproj import mmproj_signature, read_gguf_metadata
from lfm_edge.native.text import ContextOptions
from lfm_edge.prompt import RenderOptions
from lfm_edge.resolve import ModelFiles
from lfm_edge.settings_source import resolve_settings
from tests import test_image_goldens as image_goldens
from tests import test_image_prompts as image_prompts
from tests.conftest import MODEL_INDEX, model_cases
from tests.test_convert_llamacpp import _golden_metadata, _golden_tensors, _metadata, _tensors

GOLDENS = Path(__file__).parent / "goldens" / "family"
OFFICIAL = Path(__file__).parents[1] / "convert" / "synthetic" / "official"
# Folder (= general.name) -> synthetic layout. LFM2-VL-1.6B's config.json is not public here: the LFM2-VL-450M
# structure stands in for it, so its case checks recognition by name and its processor settings only.
LAYOUTS = {"LFM2-VL-450M": "lfm2-vl", "LFM2.5-VL-450M": "official-2.5", "LFM2-VL-1.6B": "lfm2-vl"}


def _golden(model: str) -> dict[str, Any]:
    return json.loads((GOLDENS / f"{model}-mmproj-f32.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def llama_cpp_like(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], ModelFiles]:
    """folder name -> the GGUF pair lfm_edge's converter writes without its processor keys (what llama.cpp writes),
    alone in a folder (no processor config beside it)."""
    cache: dict[str, ModelFiles] = {}

    def make(name: str) -> ModelFiles:
        if name not in cache:
            layout = LAYOUTS.get(name, "lfm2-vl")
            root = tmp_path_factory.mktemp("family")
            checkpoint = write_checkpoint(root / name, CheckpointSpec("tiny", layout, 0))
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(convert.metadata, "_processor_metadata", lambda *args: None)
                result = convert_checkpoint(checkpoint, ConvertOptions(root / "gguf", "f32", quiet=True))
            assert result.mmproj is not None
            cache[name] = ModelFiles(result.text, result.mmproj)
        return cache[name]

    return make


def _resolve(files: ModelFiles) -> Any:
    assert files.mmproj is not None
    return resolve_settings(files, read_gguf_metadata(files.mmproj))


def _copy_pair(files: ModelFiles, folder: Path) -> ModelFiles:
    folder.mkdir(parents=True, exist_ok=True)
    assert files.mmproj is not None
    return ModelFiles(Path(shutil.copy(files.text, folder)), Path(shutil.copy(files.mmproj, folder)))


@pytest.mark.parametrize("model", sorted(LAYOUTS))
def test_llama_cpp_mmproj_gets_transformers_crops_and_tokens(
    llama_cpp_like: Callable[[str], ModelFiles], model: str
) -> None:
    files = llama_cpp_like(model)
    golden = _golden(model)
    assert files.mmproj is not None
    import gguf

    reader = gguf.GGUFReader(files.mmproj)
    assert _metadata(reader) == _golden_metadata(golden), "not what llama.cpp's converter writes"
    assert _tensors(reader) == _golden_tensors(golden)

    resolved = _resolve(files)
    assert (resolved.source.kind, resolved.model) == ("table", model)
    variant = Path(golden["image_golden"]).stem
    assert resolved.settings == image_goldens._settings(variant)
    for image_name, record in image_goldens._variant(variant)["images"].items():
        if record.get("problems") or "error" in record:
            continue  # transformers' own unusable outputs: covered by test_image_goldens
        pixels = image_goldens._pixels(image_name)
        layout = plan_layout(pixels.shape[1], pixels.shape[0], resolved.settings)
        assert (layout.rows, layout.cols, list(layout.image_size)) == (
            record["image_rows"], record["image_cols"], record["image_sizes"]
        ), image_name  # fmt: skip
        image_goldens._check_crops(record, image_goldens._crops(image_name, layout), resolved.settings)
        image_goldens._check_tokens(record, layout, resolved.settings)


def test_lfm2_vl_450m_no_thumbnail_end_to_end(llama_cpp_like: Callable[[str], ModelFiles]) -> None:
    """The issue's reproduction: `info` on the llama.cpp-written LFM2-VL-450M pair says use_thumbnail False, and a
    tiled image gets no thumbnail crop."""
    from lfm_edge.info import describe_model

    files = llama_cpp_like("LFM2-VL-450M")
    report = describe_model(files.text, files.mmproj)
    assert report["image processor"]["use_thumbnail"] is False
    assert report["image processor"]["source"].startswith("table (LFM2-VL-450M")
    layout = plan_layout(1024, 768, _resolve(files).settings)
    assert layout.grid == (3, 2) and not layout.thumbnail


@pytest.mark.parametrize("case", [case for layout, case in model_cases("image_") if layout == "lfm2-vl"])
def test_llama_cpp_lfm2_vl_450m_image_prompt_matches_transformers(
    llama_cpp_like: Callable[[str], ModelFiles], case: str
) -> None:
    """The whole image path on the key-less LFM2-VL-450M pair: transformers' token sequence and logits (the
    goldens were made with LFM2-VL-450M's processor, no thumbnail)."""
    files = llama_cpp_like("LFM2-VL-450M")
    entry = MODEL_INDEX["layouts"]["lfm2-vl"]["cases"][case]
    golden = np.load(GOLDENS.parent / "model" / entry["npz"])
    options = api.LoadOptions(context=ContextOptions(n_ctx=4096, n_threads=2, parity=True), mmproj=files.mmproj)
    with api.load(files.text, options) as model:
        assert model.settings_source.kind == "table"
        items = model.prompts.build(image_prompts._messages(entry), RenderOptions(), model.settings)
        ids = [i for item in items for i in ([396] * item.length if isinstance(item, ImageBlock) else [item])]
        assert ids == golden["input_ids"].tolist()
        model.engine.reset()
        model.engine.prefill(items)
        logits = model.engine.logits()
    assert float(np.abs(logits - golden["last_logits"]).max()) <= image_prompts.TOLERANCE
    assert int(np.argmax(logits)) == entry["argmax_last"]


def test_processor_config_beside_wins_over_the_table(
    llama_cpp_like: Callable[[str], ModelFiles], tmp_path: Path
) -> None:
    files = _copy_pair(llama_cpp_like("LFM2.5-VL-450M"), tmp_path)
    shutil.copy(OFFICIAL / "lfm2-vl-450m" / "processor_config.json", tmp_path)
    shutil.copy(OFFICIAL / "lfm2-vl-450m" / "preprocessor_config.json", tmp_path)  # SigLIP2's: normalisation only
    resolved = _resolve(files)
    assert resolved.source.kind == "processor_config"
    assert resolved.source.detail == str(tmp_path / "processor_config.json")
    assert resolved.settings == ProcessorSettings(use_thumbnail=False)


def test_mmproj_keys_win_and_a_disagreeing_config_is_a_warning(
    converted: Callable[..., tuple[Path, Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text, mmproj = converted("official-2.5", "f32")
    files = _copy_pair(ModelFiles(text, mmproj), tmp_path)
    shutil.copy(OFFICIAL / "lfm2-vl-450m" / "processor_config.json", tmp_path)
    with caplog.at_level(logging.WARNING):
        resolved = _resolve(files)
    assert resolved.source.kind == "mmproj"
    assert resolved.settings.use_thumbnail is True
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "use_thumbnail=True" in warning and "use_thumbnail=False" in warning
    assert "processor_config.json" in warning


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", r"processor_config\.json is not valid JSON .*line 1, column 2"),
        ("[1, 2]", r"processor_config\.json must hold a JSON object"),
        ('{"encoder_patch_size": 14}', r"processor_config\.json: encoder_patch_size=14 contradicts the mmproj"),
        ('{"downsample_factor": 4}', r"processor_config\.json: downsample_factor=4 contradicts .*scale_factor is 2"),
        ('{"image_processor": {"tile_size": 500}}', r"processor_config\.json: tile_size=500 is invalid"),
        ('{"image_processor": {"resample": 3}}', r"processor_config\.json: processor config has resample=3"),
        ('{"image_processor": 5}', r"processor_config\.json: key 'image_processor' must be an object"),
        ('{"use_thumbnail": "no"}', r"processor_config\.json: use_thumbnail='no' is invalid"),
    ],
)
def test_bad_processor_config_names_file_and_key(
    llama_cpp_like: Callable[[str], ModelFiles], tmp_path: Path, content: str, expected: str
) -> None:
    files = _copy_pair(llama_cpp_like("LFM2-VL-450M"), tmp_path)
    (tmp_path / "processor_config.json").write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=expected):
        _resolve(files)


def test_unknown_model_gets_defaults_and_a_warning(
    llama_cpp_like: Callable[[str], ModelFiles], caplog: pytest.LogCaptureFixture
) -> None:
    files = llama_cpp_like("tiny-lfm2-vl")  # general.name "Tiny Lfm2 Vl", a tiny (unknown) structure
    with caplog.at_level(logging.WARNING):
        resolved = _resolve(files)
    assert (resolved.source.kind, resolved.settings) == ("defaults", ProcessorSettings())
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "'Tiny Lfm2 Vl'" in warning and "use_thumbnail=" in warning and "processor_config.json" in warning


def test_signature_read_from_the_mmproj_is_the_one_config_json_implies(
    llama_cpp_like: Callable[[str], ModelFiles],
) -> None:
    files = llama_cpp_like("tiny-lfm2-vl")
    assert files.mmproj is not None
    config = json.loads((files.text.parent.parent / "tiny-lfm2-vl" / "config.json").read_text())
    assert mmproj_signature(files.mmproj, read_gguf_metadata(files.mmproj)) == _signature_of(config)


@pytest.mark.parametrize("model", [m for m in FAMILY if m.signature is not None], ids=lambda m: m.name)
def test_table_signatures_are_those_of_the_official_config(model: Any) -> None:
    config = json.loads((OFFICIAL / model.name.lower() / "config.json").read_text())
    assert model.signature == _signature_of(config)
    assert by_signature(model.signature) is model


def _signature_of(config: dict[str, Any]) -> Signature:
    vision, text = config["vision_config"], config["text_config"]
    return Signature(
        bool(config.get("projector_use_layernorm", True)),  # transformers' default
        int(config["projector_hidden_size"]),
        int(vision["num_hidden_layers"]),
        int(vision["hidden_size"]),
        int(text["hidden_size"]),
    )


@pytest.mark.parametrize("model", FAMILY, ids=lambda m: m.name)
def test_table_settings_are_the_committed_official_processor_configs(model: Any) -> None:
    config = json.loads((OFFICIAL / model.name.lower() / "processor_config.json").read_text())
    assert model.settings == ProcessorSettings.from_processor_config(config)


def test_names_are_told_apart() -> None:
    def named(text: str) -> str | None:
        found = by_name([text])
        return found[0].name if found else None

    assert named("LFM2 VL 450M") == "LFM2-VL-450M"
    assert named("LFM2.5 VL 450M") == "LFM2.5-VL-450M"
    assert named("mmproj-LFM2.5-VL-450M-Q8_0.gguf") == "LFM2.5-VL-450M"
    assert named("LiquidAI/LFM2-VL-1.6B-GGUF") == "LFM2-VL-1.6B"
    assert named("LFM2.5-VL-1.6B") is None  # not sourced: left out of the table
    assert named("LFM2-VL-3B") is None


def _hub_snapshot(cache: Path, repo: str, files: dict[str, Path | str]) -> Path:
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(snapshot.name)
    for name, content in files.items():
        if isinstance(content, Path):
            shutil.copy(content, snapshot / name)
        else:
            (snapshot / name).write_text(content, encoding="utf-8")
    return snapshot


def _hub_pair(llama_cpp_like: Callable[[str], ModelFiles], cache: Path) -> ModelFiles:
    files = llama_cpp_like("tiny-lfm2-vl")
    assert files.mmproj is not None
    snapshot = _hub_snapshot(cache, "Someone/Tiny-VL-GGUF", {"tiny.gguf": files.text, "mmproj-tiny.gguf": files.mmproj})
    return ModelFiles(snapshot / "tiny.gguf", snapshot / "mmproj-tiny.gguf")


def test_hub_gguf_repo_reads_the_original_repo_config_from_the_cache(
    llama_cpp_like: Callable[[str], ModelFiles], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    files = _hub_pair(llama_cpp_like, tmp_path)
    _hub_snapshot(tmp_path, "Someone/Tiny-VL", {"processor_config.json": '{"use_thumbnail": false, "max_tiles": 6}'})
    resolved = _resolve(files)
    assert resolved.source.kind == "hub"
    assert resolved.source.detail.startswith("Someone/Tiny-VL: processor_config.json")
    assert (resolved.settings.use_thumbnail, resolved.settings.max_tiles) == (False, 6)


def test_offline_without_cache_makes_no_network_attempt(
    llama_cpp_like: Callable[[str], ModelFiles], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy_hub(monkeypatch, fail=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = _resolve(_hub_pair(llama_cpp_like, tmp_path))
    assert resolved.source.kind == "defaults"
    assert calls and all(call["local_files_only"] for call in calls)


def test_online_lookup_is_one_attempt_that_may_fail(
    llama_cpp_like: Callable[[str], ModelFiles], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy_hub(monkeypatch, fail=True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    resolved = _resolve(_hub_pair(llama_cpp_like, tmp_path))
    assert resolved.source.kind == "defaults"
    online = [call for call in calls if not call["local_files_only"]]
    assert [(c["repo_id"], c["filename"]) for c in online] == [("Someone/Tiny-VL", "preprocessor_config.json")]


def _spy_hub(monkeypatch: pytest.MonkeyPatch, fail: bool) -> list[dict[str, Any]]:
    """Replaces huggingface_hub.hf_hub_download: records every call; network calls fail as with no network."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    calls: list[dict[str, Any]] = []

    def fake(repo_id: str, filename: str, **kwargs: Any) -> str:
        calls.append({"repo_id": repo_id, "filename": filename, "local_files_only": kwargs.get("local_files_only")})
        if kwargs.get("local_files_only"):
            raise LocalEntryNotFoundError("not cached")
        raise ConnectionError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    return calls


def test_models_endpoint_and_api_show_the_settings_source(converted: Callable[..., tuple[Path, Path]]) -> None:
    from tests.server_support import running_server

    with running_server(converted) as (server, model):
        assert model.settings_source.kind == "mmproj"
        with urllib.request.urlopen(server.url + "/v1/models", timeout=30) as response:
            listed = json.loads(response.read())
    image = listed["data"][0]["image_settings"]
    assert image["source"] == str(model.settings_source)
    assert image["use_thumbnail"] is model.settings.use_thumbnail


def test_synthetic_model_option_writes_that_models_files(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lfm_edge.cli import main

    result = CliRunner().invoke(main, ["synthetic", str(tmp_path / "LFM2-VL-450M"), "--model", "LFM2-VL-450M"])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "LFM2-VL-450M" / "processor_config.json").read_text())
    assert written == json.loads((OFFICIAL / "lfm2-vl-450m" / "processor_config.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(("layout", "model"), [("lfm2-vl", "LFM2-VL-450M"), ("official-2.5", "LFM2.5-VL-450M")])
def test_full_size_mmproj_without_keys_is_recognised_by_its_structure(tmp_path: Path, layout: str, model: str) -> None:
    """Official shapes under a name that says nothing (general.name 'Full Lfm2 Vl'): the structure decides."""
    folder = write_checkpoint(tmp_path / f"full-{layout}", CheckpointSpec("full", layout))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(convert.metadata, "_processor_metadata", lambda *args: None)
        result = convert_checkpoint(folder, ConvertOptions(tmp_path / "out", "f16", quiet=True))
    resolved = _resolve(ModelFiles(result.text, result.mmproj))
    assert (resolved.source.kind, resolved.model) == ("table", model)
    assert "structure" in resolved.source.detail


def test_unusable_hub_config_is_a_warning_and_the_next_source_is_used(
    llama_cpp_like: Callable[[str], ModelFiles],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """LFM2-VL-3B-like: the original repo's preprocessor config asks for bicubic resampling."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    files = _hub_pair(llama_cpp_like, tmp_path)
    _hub_snapshot(tmp_path, "Someone/Tiny-VL", {"preprocessor_config.json": '{"resample": 3, "max_tiles": 6}'})
    with caplog.at_level(logging.WARNING):
        resolved = _resolve(files)
    assert resolved.source.kind == "defaults"
    assert "preprocessor_config.json: processor config has resample=3" in caplog.text
