"""Reference goldens of the image preprocessor, produced by transformers 5.23 itself (tests/goldens/image/).

Run from the repository root with the reference venv:  python -m tests.reference.image_goldens

For every image of tests/images/ (see tests.reference.make_images):
* `transformers.image_utils.load_image(path)` makes the RGB PIL image (what it did: load_image.json, see
  tests.reference.image_loading);
* for every variant below, `transformers.models.lfm2_vl.processing_lfm2_vl.Lfm2VlProcessor.__call__`
  (images=[image], text=["<image>Describe this image."]) runs the torchvision-backend `Lfm2VlImageProcessor`
  (image_processing_lfm2_vl.py, CPU) and the prompt expansion (`replace_image_token`); its intermediate results are
  captured by wrapping the processor's own `_process_images` and `get_text_with_replacements` methods.
  Records: tests.reference.image_records.
The tokenizer is the synthetic one of `convert.synthetic` (tiny, official-2.5 layout, seed 0), so `input_ids` are
ids of that tokenizer (same special-token ids as the official one). Exceptions raised by HF are recorded, not fatal.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch
import torchvision
import transformers
from transformers import AutoTokenizer
from transformers.models.lfm2_vl.image_processing_lfm2_vl import Lfm2VlImageProcessor, Lfm2VlImageProcessorKwargs
from transformers.models.lfm2_vl.processing_lfm2_vl import Lfm2VlProcessor

from tests.reference.common import GOLDENS, IMAGES, REPO_ROOT, sha256_bytes, write_json
from tests.reference.image_loading import load_reference
from tests.reference.image_records import (
    consistency_problems,
    ids_record,
    processed_record,
    prompt_record,
    value_table,
)

OUT = GOLDENS / "image"
PROMPT = "<image>Describe this image."
OFFICIAL = REPO_ROOT / "convert" / "synthetic" / "official"
VALUES_IMAGE = "values_512x512.png"


def _lfm2_vl_450m_overrides(folder: str = "lfm2-vl-450m") -> dict[str, Any]:
    """The image-processor keys of an LFM2-VL flat processor_config.json (LFM2-VL-450M: use_thumbnail false)."""
    config = json.loads((OFFICIAL / folder / "processor_config.json").read_text())
    return {k: v for k, v in config.items() if k in Lfm2VlImageProcessorKwargs.__annotations__}


# name -> (description, image-processor overrides on top of LFM2.5-VL-450M's processor_config.json)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "official": ("LFM2.5-VL-450M processor_config.json as is", {}),
    "min_tokens_32": ("min_image_tokens=32 (the model card's recommendation)", {"min_image_tokens": 32}),
    "max_tokens_128": ("max_image_tokens=128", {"max_image_tokens": 128}),
    "tiles_1_4": ("min_tiles=1, max_tiles=4 (grid 1x1 possible: SPEC 3.7 mismatch)", {"min_tiles": 1, "max_tiles": 4}),
    "tiles_4_12": ("min_tiles=4, max_tiles=12", {"min_tiles": 4, "max_tiles": 12}),
    "no_thumbnail": ("use_thumbnail=False", {"use_thumbnail": False}),
    "no_splitting": ("do_image_splitting=False", {"do_image_splitting": False}),
    "lfm2_vl_450m": (
        "LFM2-VL-450M processor_config.json keys (use_thumbnail false) over the LFM2.5 defaults",
        _lfm2_vl_450m_overrides(),
    ),
    "tile_384": ("tile_size=384 (144 tokens per tile)", {"tile_size": 384}),
    "lfm2_vl_1_6b": (
        "LFM2-VL-1.6B processor_config.json keys (max_pixels_tolerance 1.5) over the LFM2.5 defaults",
        _lfm2_vl_450m_overrides("lfm2-vl-1.6b"),
    ),
}


def load_tokenizer() -> tuple[Any, dict[str, Any]]:
    """The tokenizer of a freshly written synthetic checkpoint (convert.synthetic), and facts about it."""
    from convert.synthetic import CheckpointSpec, write_checkpoint

    spec = CheckpointSpec("tiny", "official-2.5", 0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "synthetic"
        write_checkpoint(str(folder), spec, force=True)
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        digest = sha256_bytes((folder / "tokenizer.json").read_bytes())
    info = {
        "source": "python -m convert.synthetic OUTDIR --size tiny --layout official-2.5 --seed 0",
        "class": type(tokenizer).__name__,
        "tokenizer_json_sha256": digest,
        "image_token_id": tokenizer.convert_tokens_to_ids("<image>"),
    }
    return tokenizer, info


def make_processor(overrides: dict[str, Any], tokenizer: Any) -> Lfm2VlProcessor:
    image_processor = Lfm2VlImageProcessor.from_pretrained(str(OFFICIAL / "lfm2.5-vl-450m"), **overrides)
    return Lfm2VlProcessor(image_processor, tokenizer)


def run_processor(processor: Lfm2VlProcessor, image: Any) -> tuple[Any, str, list[int]]:
    """processor(images=[image], text=[PROMPT]); returns (image-processor output, expanded text, input_ids)."""
    captured: dict[str, Any] = {}
    process_images, with_replacements = processor._process_images, processor.get_text_with_replacements

    def spy_images(*args: Any, **kwargs: Any) -> Any:
        captured["images"] = result = process_images(*args, **kwargs)
        return result

    def spy_text(*args: Any, **kwargs: Any) -> Any:
        captured["text"] = result = with_replacements(*args, **kwargs)
        return result

    processor._process_images, processor.get_text_with_replacements = spy_images, spy_text
    try:
        out = processor(images=[image], text=[PROMPT], return_tensors="pt")
    finally:
        del processor._process_images, processor.get_text_with_replacements
    return captured["images"][0], captured["text"][0][0], out["input_ids"][0].tolist()


def image_record(processor: Lfm2VlProcessor, image: Any, record_ids: bool) -> dict[str, Any]:
    """The golden record of one (variant, image); an exception raised by HF is recorded instead."""
    record: dict[str, Any] = {"input_size": list(image.size)}
    try:
        processed, text, ids = run_processor(processor, image)
    except Exception as exc:
        record["error"] = {"type": type(exc).__name__, "message": str(exc)}
        return record
    ip = processor.image_processor
    record.update(processed_record(ip, processed))
    record["prompt"] = prompt_record(text, processor.image_token)
    plain = processor.replace_image_token(processed, image_idx=0, use_image_special_tokens=False)
    record["replacement_no_special_tokens"] = prompt_record(plain, processor.image_token)
    if record_ids:
        record["input_ids"] = ids_record(ids)
    max_patches = max(
        ip.max_image_tokens * ip.downsample_factor**2,
        (ip.tile_size // ip.encoder_patch_size) ** 2 if ip.do_image_splitting else 0,
    )
    record["problems"] = consistency_problems(record, max_patches)
    return record


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
    }


def load_images() -> tuple[dict[str, Any], dict[str, Any]]:
    """name -> RGB PIL image (load_image), and name -> load record, in MANIFEST order."""
    manifest = json.loads((IMAGES / "MANIFEST.json").read_text())["images"]
    images, records = {}, {}
    for name in sorted(manifest):
        path = IMAGES / name
        assert sha256_bytes(path.read_bytes()) == manifest[name]["sha256"], f"{name} differs from MANIFEST.json"
        images[name], records[name] = load_reference(path)
    return images, records


def write_variant(name: str, images: dict[str, Any], tokenizer: Any, tokenizer_info: dict[str, Any]) -> None:
    description, overrides = VARIANTS[name]
    processor = make_processor(overrides, tokenizer)
    start = time.perf_counter()
    records = {image_name: image_record(processor, image, record_ids=True) for image_name, image in images.items()}
    golden = {
        "variant": name,
        "description": description,
        "overrides": overrides,
        "image_processor": processor.image_processor.to_dict(),
        "prompt": PROMPT,
        "tokenizer": tokenizer_info,
        "images": records,
    }
    if name == "official":
        value_image = np.asarray(images[VALUES_IMAGE])
        processed = run_processor(processor, images[VALUES_IMAGE])[0]
        write_json(
            OUT / "value_table.json",
            {
                "source": f"official variant on {VALUES_IMAGE} (512x512: not resized)",
                **value_table(processor.image_processor, value_image, processed),
            },
        )
    write_json(OUT / f"{name}.json", golden)
    errors = sum("error" in r for r in records.values())
    flagged = sum(bool(r.get("problems")) for r in records.values())
    print(f"{name}: {len(records)} images, {errors} errors, {flagged} flagged, {time.perf_counter() - start:.1f}s")


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)  # lean, and the same on every machine
    variants = argv or list(VARIANTS)
    tokenizer, tokenizer_info = load_tokenizer()
    images, load_records = load_images()
    write_json(
        OUT / "load_image.json",
        {"function": "transformers.image_utils.load_image", "environment": environment(), "images": load_records},
    )
    for name in variants:
        write_variant(name, images, tokenizer, tokenizer_info)


if __name__ == "__main__":
    main(sys.argv[1:])
