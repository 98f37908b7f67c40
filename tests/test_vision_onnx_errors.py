"""Bad input to the ONNX vision backend: a file from another checkpoint, a truncated or edited file, an operator the
runtime lacks, the onnx extra missing; and Liquid AI's official interface (no lfm_edge metadata)."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import convert.onnx.write as onnx_write
from convert.api import ConvertOptions, convert_checkpoint
from lfm_edge.cli import main
from lfm_edge.errors import ConversionError, ModelError
from lfm_edge.image.settings import ProcessorSettings
from lfm_edge.vision.onnx import OnnxCropEncoder, OnnxOptions, VisionRequest, choose_encoder
from tests.conftest import OnnxFiles
from tests.test_vision_onnx import CROP_GOLDENS

CROP = CROP_GOLDENS["crop_64x64"]


def _request(files: OnnxFiles, backend: str = "auto", onnx_path: Path | None = None) -> VisionRequest:
    return VisionRequest(backend, files["mmproj"], ProcessorSettings(), 64, 1, onnx_path)


def _copy(path: Path, folder: Path, data: bytes | None = None) -> Path:
    target = folder / path.name
    if data is None:
        shutil.copyfile(path, target)
    else:
        target.write_bytes(data)
    return target


def test_auto_uses_the_int8_file_beside_the_mmproj(onnx_converted: Callable[..., OnnxFiles]) -> None:
    encoder = choose_encoder(_request(onnx_converted()))
    assert encoder is not None and encoder.path.name.endswith("-int8.onnx")
    assert encoder.encode(CROP).shape == (4, 64)
    encoder.close()
    assert choose_encoder(_request(onnx_converted(), "mtmd")) is None


def test_a_file_from_another_checkpoint_is_refused_or_skipped(
    onnx_converted: Callable[..., OnnxFiles], caplog: pytest.LogCaptureFixture
) -> None:
    ours, other = onnx_converted(), onnx_converted(seed=1)
    with pytest.raises(ModelError, match="different checkpoints"):
        choose_encoder(_request(ours, "onnx", other["fp32"]))
    with caplog.at_level(logging.WARNING, logger="lfm_edge.vision.onnx"):
        request = VisionRequest("auto", other["mmproj"].parent / "none.gguf", ProcessorSettings(), 64, 1)
        assert choose_encoder(VisionRequest("auto", ours["mmproj"], ProcessorSettings(), 64, 1)) is not None
        shutil.copyfile(ours["mmproj"], request.mmproj)  # seed-0 mmproj beside seed-1 ONNX files
        assert choose_encoder(request) is None
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "using llama.cpp (mtmd)" in caplog.records[0].getMessage()


def test_truncated_and_edited_files_are_refused(onnx_converted: Callable[..., OnnxFiles], tmp_path: Path) -> None:
    source = onnx_converted()["int8"]
    data = source.read_bytes()
    truncated = _copy(source, tmp_path, data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        OnnxCropEncoder(truncated)
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x01  # inside a weight: still a valid protobuf
    with pytest.raises(ModelError, match="modified or truncated"):
        OnnxCropEncoder(_copy(source, tmp_path, bytes(flipped)))
    model = onnx.load(source)
    for entry in model.metadata_props:
        if entry.key == "lfm_edge.n_embd":
            entry.value = "65"
    edited = tmp_path / "edited.onnx"
    onnx.save(model, edited)
    with pytest.raises(ModelError, match="modified or truncated"):
        OnnxCropEncoder(edited)


def test_an_operator_the_runtime_lacks_is_named(onnx_converted: Callable[..., OnnxFiles], tmp_path: Path) -> None:
    model = onnx.load(onnx_converted()["fp32"])
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", 19))  # opset 19 has no Gelu: as an onnxruntime too old
    onnx.save(model, tmp_path / "old.onnx")
    with pytest.raises(ModelError, match="lacks an operator"):
        OnnxCropEncoder(tmp_path / "old.onnx")


def test_without_the_extra_auto_falls_back_and_onnx_fails(
    onnx_converted: Callable[..., OnnxFiles], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with caplog.at_level(logging.INFO, logger="lfm_edge.vision.onnx"):
        assert choose_encoder(_request(onnx_converted())) is None
    assert len(caplog.records) == 1 and "lfm-edge[onnx]" in caplog.records[0].getMessage()
    with pytest.raises(ModelError, match=r"lfm-edge\[onnx\]"):
        choose_encoder(_request(onnx_converted(), "onnx"))


def test_convert_without_the_extra_writes_nothing(
    synthetic_checkpoint: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)
    with pytest.raises(ConversionError, match=r"lfm-edge\[onnx\]"):
        convert_checkpoint(synthetic_checkpoint(), ConvertOptions(tmp_path, "f32", quiet=True, onnx=True))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_onnx_write_leaves_no_file(
    synthetic_checkpoint: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def fail(*_: object) -> onnx.ModelProto:
        raise ConversionError("disk full")

    monkeypatch.setattr(onnx_write, "quantize_int8", fail)
    with pytest.raises(ConversionError, match="disk full"):
        convert_checkpoint(synthetic_checkpoint(), ConvertOptions(tmp_path, "f32", quiet=True, onnx=True))
    assert list(tmp_path.iterdir()) == []


def test_the_official_interface_loads_without_metadata(
    onnx_converted: Callable[..., OnnxFiles], tmp_path: Path
) -> None:
    """Liquid AI's export takes pixel_attention_mask too and carries no lfm_edge metadata (names and shapes from the
    public record of its interface; the file itself is not available here)."""
    ours = onnx_converted()["fp32"]
    model = onnx.load(ours)
    del model.metadata_props[:]
    mask = helper.make_tensor_value_info("pixel_attention_mask", TensorProto.INT64, [1, "num_patches"])
    model.graph.input.insert(1, mask)
    onnx.save(model, tmp_path / "vision_encoder.onnx")
    with OnnxCropEncoder(tmp_path / "vision_encoder.onnx", OnnxOptions(n_embd=64)) as official:
        assert official.official and official.identity.startswith("onnx-official:")
        with OnnxCropEncoder(ours) as reference:
            np.testing.assert_array_equal(official.encode(CROP), reference.encode(CROP))
    with pytest.raises(ModelError, match="not an LFM2-VL vision encoder"):
        OnnxCropEncoder(tmp_path / "vision_encoder.onnx", OnnxOptions(n_embd=1024))


def test_the_export_tools_layout_external_weights_and_a_batch_axis(
    onnx_converted: Callable[..., OnnxFiles], tmp_path: Path
) -> None:
    """Liquid AI's export tool (Liquid4All/onnx-export, lfm2_vl vision_builder.py) names the output
    `image_embeddings` [batch, tokens, hidden] and its model cards list `onnx/embed_images*.onnx`; Hub exports keep
    the weights in `<file>_data`. The same embeddings come out, and the cache identity follows the weights file."""
    ours = onnx_converted()["fp32"]
    model = onnx.load(ours)
    del model.metadata_props[:]
    model.graph.input.insert(1, helper.make_tensor_value_info("pixel_attention_mask", TensorProto.INT64, [1, "n"]))
    flat = model.graph.output[0].name
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([0], dtype=np.int64), "batch_axis"))
    model.graph.node.append(helper.make_node("Unsqueeze", [flat, "batch_axis"], ["image_embeddings"]))
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, "t", 64]))
    path = tmp_path / "embed_images.onnx"
    onnx.save(model, path, save_as_external_data=True, location="embed_images.onnx_data", size_threshold=1024)
    with OnnxCropEncoder(path, OnnxOptions(n_embd=64)) as official, OnnxCropEncoder(ours) as reference:
        np.testing.assert_array_equal(official.encode(CROP), reference.encode(CROP))
        before = official.identity
    weights = tmp_path / "embed_images.onnx_data"
    weights.write_bytes(weights.read_bytes()[:-4] + bytes(4))  # another checkpoint's weights, same size
    with OnnxCropEncoder(path, OnnxOptions(n_embd=64)) as changed:
        assert changed.identity != before


def test_cli_convert_onnx_and_a_backend_asked_for_by_name(
    synthetic_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["convert", str(synthetic_checkpoint()), "--outdir", str(tmp_path), "--onnx", "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(Path(line).name for line in result.output.split()) == sorted(p.name for p in tmp_path.iterdir())
    for onnx_file in tmp_path.glob("*.onnx"):
        onnx_file.unlink()
    text = next(p for p in tmp_path.glob("*.gguf") if not p.name.startswith("mmproj"))
    result = runner.invoke(main, ["run", str(text), "hi", "--vision-backend", "onnx", "--max-tokens", "1"])
    assert result.exit_code == 1
    assert "no vision ONNX file beside" in result.output and "Traceback" not in result.output
