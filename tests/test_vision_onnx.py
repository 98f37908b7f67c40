"""The ONNX vision encoder written by `lfm-edge convert --onnx` against transformers (tests/goldens), and the same
image-prompt test the mtmd backend passes (test_image_prompts.py), with a tighter bound: the ONNX graph computes
transformers' exact GELUs, where llama.cpp's projector uses the tanh approximation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import lfm_edge.model as api
from lfm_edge.native.text import ContextOptions
from lfm_edge.vision import CropEncoder
from lfm_edge.vision import onnx_meta as meta
from lfm_edge.vision.onnx import OnnxCropEncoder, OnnxOptions
from tests.conftest import GOLDENS, MODEL_INDEX, OnnxFiles, model_cases
from tests.test_image_prompts import assert_prompt_matches_transformers

FEATURE_BOUND = 1e-4  # fp32 graph vs transformers float32, max abs (measured <= 3e-6)
LOGITS_BOUND = 1e-4  # last-position logits, F32 text GGUF + fp32 ONNX vision vs transformers: measured <= 9e-6
# (mtmd on the same cases: up to 3e-3, its projector GELU is the tanh approximation)
CROP_GOLDENS = np.load(GOLDENS / "onnx" / "crop_features.npz")
CROP_INDEX = json.loads((GOLDENS / "onnx" / "index.json").read_text(encoding="utf-8"))
LAYOUTS = ("official-2.5", "lfm2-vl")


def _encoder(path: Path) -> OnnxCropEncoder:
    return OnnxCropEncoder(path, OnnxOptions(n_threads=1, n_embd=64))


def _golden_crops(layout: str) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, uint8 crop, transformers features): the elongated/small crops and the model goldens' tiles."""
    for size in CROP_INDEX["crops"]:
        yield size, CROP_GOLDENS[f"crop_{size}"], CROP_GOLDENS[f"{layout}__{size}"]
    crops = np.load(GOLDENS / "model" / MODEL_INDEX["crops_npz"])
    entry = MODEL_INDEX["layouts"][layout]["cases"]["image_two"]
    features = np.load(GOLDENS / "model" / entry["npz"])
    for image in entry["images"]:
        for crop in image["crops"]:
            yield crop["crops_npz_key"], crops[crop["crops_npz_key"]], features[crop["features_key"]]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fp32_crop_features_match_transformers(onnx_converted: Callable[..., OnnxFiles], layout: str) -> None:
    with _encoder(onnx_converted(layout)["fp32"]) as encoder:
        assert isinstance(encoder, CropEncoder)
        for name, crop, golden in _golden_crops(layout):
            features = encoder.encode(crop)
            assert features.shape == golden.shape, name
            assert float(np.abs(features - golden).max()) <= FEATURE_BOUND, name


def test_int8_features_stay_close_to_fp32(onnx_converted: Callable[..., OnnxFiles]) -> None:
    """A machinery check (random weights): per-channel int8 features within 5% relative RMS of fp32's (measured
    about 2% on the tiny model; per-tensor scales give 2.6%)."""
    files = onnx_converted()
    with _encoder(files["fp32"]) as fp32, _encoder(files["int8"]) as int8:
        assert fp32.identity != int8.identity
        for name, crop, _ in _golden_crops("official-2.5"):
            reference, quantized = fp32.encode(crop), int8.encode(crop)
            relative_rms = np.sqrt(np.mean((quantized - reference) ** 2) / np.mean(reference**2))
            assert relative_rms <= 0.05, name


@pytest.fixture(scope="module")
def onnx_models(onnx_converted: Callable[..., OnnxFiles]) -> Iterator[Callable[[str], api.Model]]:
    cache: dict[str, api.Model] = {}

    def get(layout: str) -> api.Model:
        if layout not in cache:
            files = onnx_converted(layout)
            context = ContextOptions(n_ctx=4096, n_threads=2, parity=True)
            options = api.LoadOptions(context=context, vision_backend="onnx", vision_onnx=files["fp32"])
            cache[layout] = api.load(files["text"], options)
        return cache[layout]

    yield get
    for model in cache.values():
        model.close()


@pytest.mark.parametrize(("layout", "case"), [c for c in model_cases("image_") if c[0] in LAYOUTS])
def test_image_prompt_through_onnx_matches_transformers(
    onnx_models: Callable[[str], api.Model], layout: str, case: str
) -> None:
    model = onnx_models(layout)
    assert isinstance(model.vision, OnnxCropEncoder)
    assert_prompt_matches_transformers(model, layout, case, LOGITS_BOUND)


def test_metadata_records_the_processor_and_the_source(onnx_converted: Callable[..., OnnxFiles]) -> None:
    files = onnx_converted()
    with _encoder(files["int8"]) as encoder:
        info = encoder.metadata
    assert info[meta.KEY_WEIGHT_TYPE] == "int8"
    assert info[meta.KEY_FINGERPRINT] == meta.mmproj_fingerprint(files["mmproj"])
    knobs = json.loads(info[meta.KEY_PROCESSOR])
    processor = json.loads((GOLDENS.parent.parent / "convert/synthetic/official/lfm2.5-vl-450m/processor_config.json")
                           .read_text(encoding="utf-8"))["image_processor"]  # fmt: skip
    assert {k: processor[k] for k in knobs if k in processor} == {k: knobs[k] for k in knobs if k in processor}
    assert json.loads(info[meta.KEY_SOURCE])["name"] == "tiny-official-2.5"


def test_quantize_writes_the_onnx_pair_and_reports_int8_vision(
    synthetic_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    """The files through quantize_checkpoint; the vision rows through the report's own function (the text rows
    of the report are test_quantize.py's)."""
    from convert.quantize import QuantizeOptions, quantize_checkpoint
    from convert.quantize.quality import default_eval_set
    from convert.quantize.report import _markdown
    from convert.quantize.vision_quality import VISION_NOTE, vision_report_rows

    options = QuantizeOptions(tmp_path, types=("F16",), mmproj_types=("F16",), report=False, onnx=True)
    result = quantize_checkpoint(synthetic_checkpoint(), options)
    roles = {(f.role, f.type): tmp_path / f.name for f in result.files}
    assert roles["onnx", "int8"].name == "vision-tiny-official-2.5-int8.onnx"
    assert sorted(tmp_path.glob("*.onnx")) == sorted([roles["onnx", "fp32"], roles["onnx", "int8"]])
    onnx_files = {"fp32": roles["onnx", "fp32"], "int8": roles["onnx", "int8"]}
    text, mmproj = roles["text", "F16"], roles["mmproj", "F16"]
    reference, int8 = vision_report_rows(text, mmproj, onnx_files, default_eval_set(), 1)
    assert reference["kl_max"] == 0.0 and reference["top1_agreement"] == 1.0
    assert int8["positions"] == reference["positions"] > 0
    assert 0.0 < int8["kl_mean"] <= int8["kl_max"] and 0.0 <= int8["top1_agreement"] <= 1.0
    report = {"metrics": "m", "reference": "r", "rows": [], "vision_rows": [reference, int8]}
    report["vision_note"] = VISION_NOTE
    assert "machinery" in _markdown(report) and "vision ONNX int8" in _markdown(report)


_RESIDENT_PROBE = """
import sys
from pathlib import Path
import numpy as np
from lfm_edge.vision.onnx import OnnxCropEncoder, OnnxOptions

def resident_bytes():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024

rng = np.random.default_rng(0)
with OnnxCropEncoder(Path(sys.argv[1]), OnnxOptions(n_threads=1, n_embd=64)) as encoder:
    encoder.encode(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    before = resident_bytes()
    for size in (512, 448, 384):
        encoder.encode(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    print(resident_bytes() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc (Linux)")
def test_a_runs_activations_are_not_kept_resident(onnx_converted: Callable[..., OnnxFiles]) -> None:
    """After three large crops the process holds less than one attention-score tensor of the largest more than
    before them (a kept memory pattern, an unshrunk arena or untrimmed malloc arenas kept ~18-23 MB here: 2.3
    such tensors; now 1-4 MB). In a process of its own, so that nothing else allocates meanwhile."""
    import subprocess
    import sys

    patches = (512 // 16) ** 2
    attention_scores = 2 * patches * patches * 4  # the tiny vision config's 2 heads, float32
    probe = subprocess.run([sys.executable, "-c", _RESIDENT_PROBE, str(onnx_converted()["fp32"])],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert int(probe.stdout.strip()) < attention_scores
