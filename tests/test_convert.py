"""The converter: outputs, layouts, atomic writes and every bad input of issue B, each a typed one-line error."""

from __future__ import annotations

import errno
import json
import pickle
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest
from click.testing import CliRunner

from convert import gguf_out
from convert.api import ConvertOptions, convert_checkpoint
from lfm_edge.cli import main
from lfm_edge.errors import CheckpointError, ConfigError, ConversionError, LfmEdgeError

Checkpoints = Callable[..., Path]
Converted = Callable[..., tuple[Path, Path]]


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def _tensors(path: Path) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    reader = gguf.GGUFReader(path)
    return {
        t.name: (t.tensor_type.name, tuple(int(d) for d in t.shape), bytes(t.data.tobytes())) for t in reader.tensors
    }


def _convert(folder: Path, outdir: Path, outtype: str = "f32", force: bool = False) -> tuple[Path, Path]:
    result = convert_checkpoint(folder, ConvertOptions(outdir, outtype, force, quiet=True))
    return result.text, result.mmproj


@pytest.mark.parametrize(("layout", "text_count", "mmproj_count"), [("official-2.5", 40, 57), ("lfm2-vl", 40, 59)])
def test_tensor_counts(converted: Converted, layout: str, text_count: int, mmproj_count: int) -> None:
    text, mmproj = converted(layout)
    assert text.name == f"tiny-{layout}-f32.gguf" and mmproj.name == f"mmproj-tiny-{layout}-f32.gguf"
    assert len(_tensors(text)) == text_count and len(_tensors(mmproj)) == mmproj_count
    if layout == "lfm2-vl":
        assert "mm.input_norm.weight" in _tensors(mmproj)


@pytest.mark.parametrize(("layout", "outtype"), [("resaved-5.23", "f16"), ("lfm2-vl", "f32")])
def test_every_layout_converts_to_the_official_layouts_tensors(converted: Converted, layout: str, outtype: str) -> None:
    official = [_tensors(p) for p in converted("official-2.5", outtype)]
    other = [_tensors(p) for p in converted(layout, outtype)]
    assert other[0] == official[0]  # the text model is the same in all three layouts
    shared = set(official[1]) & set(other[1])
    differing = {name for name in shared if official[1][name] != other[1][name]}
    # lfm2-vl's projector is wider (2560-like) and has a LayerNorm: only mm.* may differ
    assert differing <= ({"mm.1.weight", "mm.1.bias", "mm.2.weight"} if layout == "lfm2-vl" else set())
    assert len(shared) == len(official[1])


def test_outtypes_choose_llama_cpp_tensor_types(converted: Converted) -> None:
    text, mmproj = converted("official-2.5", "q8_0")
    types = {name: entry[0] for name, entry in (_tensors(text) | _tensors(mmproj)).items()}
    assert types["blk.1.attn_q.weight"] == "Q8_0" and types["token_embd.weight"] == "Q8_0"
    assert types["blk.0.shortconv.conv.weight"] == "F32" and types["token_embd_norm.weight"] == "F32"
    assert types["v.patch_embd.weight"] == "F32" and types["v.position_embd.weight"] == "F32"
    assert types["v.blk.0.ffn_up.weight"] == "Q8_0"  # rows of 32 values fill one Q8_0 block
    assert types["v.blk.0.attn_q.bias"] == "F32"


def test_existing_output_needs_force_and_nothing_is_left_behind(synthetic_checkpoint: Checkpoints,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    text, _ = _convert(synthetic_checkpoint(), tmp_path)
    before = text.read_bytes()  # a second conversion must not touch it
    with pytest.raises(ConversionError, match="already exists"):
        _convert(synthetic_checkpoint(), tmp_path)
    assert text.read_bytes() == before
    _convert(synthetic_checkpoint(), tmp_path, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([text.name, f"mmproj-{text.name}"])


@pytest.mark.parametrize(
    "failure", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")], ids=["ctrl-c", "disk-full"]
)
def test_interrupted_or_failed_write_leaves_no_gguf(
    synthetic_checkpoint: Checkpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    calls = {"n": 0}
    original = gguf.GGUFWriter.write_tensor_data

    def fail_midway(self: gguf.GGUFWriter, tensor: np.ndarray, *args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 50:  # inside the mmproj, after the whole text model was written
            raise failure
        original(self, tensor, *args)

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensor_data", fail_midway)
    expected = KeyboardInterrupt if isinstance(failure, KeyboardInterrupt) else ConversionError
    with pytest.raises(expected):
        _convert(synthetic_checkpoint(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_folder(synthetic_checkpoint: Checkpoints, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConversionError, match="writable"):
        _convert(synthetic_checkpoint(), blocker / "out")


def _edit_json(folder: Path, name: str, edit: Callable[[dict], object]) -> None:  # type: ignore[type-arg]
    data = json.loads((folder / name).read_text())
    edit(data)
    (folder / name).write_text(json.dumps(data))


def _rewrite_header(folder: Path, edit: Callable[[dict], object]) -> None:  # type: ignore[type-arg]
    path = folder / "model.safetensors"
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + length])
    edit(header)
    encoded = json.dumps(header, separators=(",", ":")).encode().ljust(length)
    assert len(encoded) == length, "edit must not grow the header"
    path.write_bytes(raw[:8] + encoded + raw[8 + length :])


def _drop_tensor(header: dict) -> None:  # type: ignore[type-arg]
    header["model.language_model.layers.0.ffn_norm.weight"]["dtype"] = "BF16"
    header["x" * 10] = header.pop("model.language_model.layers.0.ffn_norm.weight")


def _lie_about_offsets(header: dict) -> None:  # type: ignore[type-arg]
    entry = header["model.language_model.embed_tokens.weight"]
    entry["data_offsets"] = [entry["data_offsets"][0], entry["data_offsets"][1] + 2]


def _overlap(header: dict) -> None:  # type: ignore[type-arg]
    first = header["model.language_model.embedding_norm.weight"]
    header["model.language_model.layers.0.ffn_norm.weight"]["data_offsets"] = list(first["data_offsets"])


BAD_CHECKPOINTS: dict[str, tuple[Callable[[Path], object], type[LfmEdgeError], str]] = {
    "config missing": (lambda f: (f / "config.json").unlink(), CheckpointError, "config.json is missing"),
    "config corrupt": (lambda f: (f / "config.json").write_text("{oops"), CheckpointError, "not valid JSON"),
    "unknown model_type": (
        lambda f: _edit_json(f, "config.json", lambda c: c.update(model_type="llava")),
        CheckpointError, "not an LFM2-VL checkpoint",
    ),
    "missing tensor": (lambda f: _rewrite_header(f, _drop_tensor), CheckpointError, "missing"),
    "unexpected tensor": (
        lambda f: _edit_json(f, "config.json", lambda c: c["vision_config"].update(num_hidden_layers=2)),
        CheckpointError, "unexpected tensor",
    ),
    "shape mismatch": (
        lambda f: _edit_json(f, "config.json", lambda c: c.update(projector_hidden_size=64)),
        CheckpointError, "config.json implies",
    ),
    "truncated file": (
        lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:-1000]),
        CheckpointError, "truncated",
    ),
    "lying offsets": (lambda f: _rewrite_header(f, _lie_about_offsets), CheckpointError, "do not match"),
    "overlapping tensors": (lambda f: _rewrite_header(f, _overlap), CheckpointError, "overlap"),
    "tokenizer missing": (lambda f: (f / "tokenizer.json").unlink(), CheckpointError, "tokenizer.json is missing"),
    "tokenizer not BPE": (
        lambda f: _edit_json(f, "tokenizer.json", lambda t: t["model"].update(type="Unigram")),
        CheckpointError, "not a byte-level BPE",
    ),
    "other pre-tokenizer": (
        lambda f: _edit_json(f, "tokenizer.json", lambda t: t["pre_tokenizer"]["pretokenizers"][1].update(
            add_prefix_space=True)),
        CheckpointError, "not LFM2's",
    ),
    "config vocab_size mismatch": (
        lambda f: _edit_json(f, "config.json", lambda c: c["text_config"].update(vocab_size=65000)),
        CheckpointError, "config.json implies",
    ),
    "tokenizer beyond vocab_size": (
        lambda f: _edit_json(f, "tokenizer.json", lambda t: t["added_tokens"].append(
            {**t["added_tokens"][0], "id": 70000, "content": "<|extra|>"})),
        CheckpointError, "does not fit config.json's vocab_size",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_bad_checkpoint_is_refused_and_nothing_written(synthetic_checkpoint: Checkpoints, tmp_path: Path,
                                                       case: str) -> None:  # fmt: skip
    folder = _copy(synthetic_checkpoint(), tmp_path)
    damage, error, message = BAD_CHECKPOINTS[case]
    damage(folder)
    outdir = tmp_path / "out"
    with pytest.raises(error, match=message):
        _convert(folder, outdir)
    assert not outdir.exists() or list(outdir.iterdir()) == []


class _Tripwire:
    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return (Path("unpickled.marker").write_text, ("pwned",))


def test_pickled_checkpoint_is_refused_and_never_unpickled(synthetic_checkpoint: Checkpoints, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    folder = _copy(synthetic_checkpoint(), tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Tripwire()))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="never unpickles"):
        _convert(folder, tmp_path / "out")
    assert not (tmp_path / "unpickled.marker").exists()


def test_unknown_outtype(synthetic_checkpoint: Checkpoints, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="q3_k"):
        _convert(synthetic_checkpoint(), tmp_path, "q3_k")


def test_sharded_checkpoint_converts_like_the_single_file(
    synthetic_checkpoint: Checkpoints, converted: Converted, tmp_path: Path
) -> None:
    from safetensors.numpy import save_file

    folder = _copy(synthetic_checkpoint(), tmp_path)
    reference = converted()
    from convert.safetensors_io import read_header

    records = read_header(folder / "model.safetensors")
    raw = (folder / "model.safetensors").read_bytes()
    weight_map = {}
    for shard, part in enumerate([records[::2], records[1::2]]):
        name = f"model-0000{shard + 1}-of-00002.safetensors"
        arrays = {r.name: np.frombuffer(raw[r.start : r.end], np.uint16).reshape(r.shape) for r in part}
        save_file(arrays, str(folder / name))  # uint16 stands in for bf16 bits; patched to BF16 below
        _retag_bf16(folder / name)
        weight_map |= {r.name: name for r in part}
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    sharded = _convert(folder, tmp_path / "sharded")
    assert _tensors(sharded[0]) == _tensors(reference[0]) and _tensors(sharded[1]) == _tensors(reference[1])


def _retag_bf16(path: Path) -> None:
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + length])
    for name, entry in header.items():
        if name != "__metadata__":
            entry["dtype"] = "BF16"
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded = encoded.ljust(len(encoded) + (-len(encoded)) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + raw[8 + length :])


def test_cli_convert_and_one_line_errors(synthetic_checkpoint: Checkpoints, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["convert", str(synthetic_checkpoint()), "--outdir", str(tmp_path), "--outtype", "f16"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.split() == [str(tmp_path / "tiny-official-2.5-f16.gguf"),
                                 str(tmp_path / "mmproj-tiny-official-2.5-f16.gguf")]  # fmt: skip
    again = runner.invoke(main, ["convert", str(synthetic_checkpoint()), "--outdir", str(tmp_path)])
    assert again.exit_code == 1 and len(again.output.strip().splitlines()) == 1 and "--force" in again.output
    missing = runner.invoke(main, ["convert", str(tmp_path / "nope"), "--outdir", str(tmp_path)])
    assert missing.exit_code == 1 and "Traceback" not in missing.output


def test_choose_type_table() -> None:
    assert gguf_out.choose_type("v.patch_embd.weight", (32, 3, 16, 16), "f16") == gguf.GGMLQuantizationType.F16
    assert gguf_out.choose_type("v.patch_embd.weight", (32, 3, 16, 16), "bf16") == gguf.GGMLQuantizationType.F32
    assert gguf_out.choose_type("blk.0.ffn_up.weight", (256, 64), "bf16") == gguf.GGMLQuantizationType.BF16
    assert gguf_out.choose_type("blk.0.ffn_up.weight", (256, 48), "q8_0") == gguf.GGMLQuantizationType.F16


@pytest.mark.parametrize("layout", ["official-2.5", "resaved-5.23"])
def test_config_files_written_by_transformers_convert_identically(
    synthetic_checkpoint: Checkpoints, converted: Converted, tmp_path: Path, layout: str
) -> None:
    """transformers 5.23's save_pretrained rewrites config.json (drops block_ff_dim, adds full_attn_idxs: null, ...)."""
    folder = _copy(synthetic_checkpoint(layout), tmp_path)
    saved = Path(__file__).parent / "goldens" / "model" / "transformers_saved"
    for file in saved.iterdir():
        shutil.copyfile(file, folder / file.name)
    text, mmproj = _convert(folder, tmp_path / "out")
    reference_text, reference_mmproj = converted("official-2.5")
    assert _tensors(text) == _tensors(reference_text) and _tensors(mmproj) == _tensors(reference_mmproj)
