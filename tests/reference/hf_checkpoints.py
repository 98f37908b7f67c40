"""Synthetic checkpoints loaded the way transformers 5.23 loads them (shared by the model and load-manifest goldens).

* Model: ``Lfm2VlForConditionalGeneration.from_pretrained(folder, dtype=..., output_loading_info=True)``.
  transformers 5.23 has no checkpoint-conversion rule for ``lfm2_vl`` that renames the LFM2-VL-450M (remote-code
  era) text keys ``language_model.model.*``; its own ``key_mapping=`` argument does it (``LFM2VL_KEY_MAPPING``).
  The un-prefixed ``vision_tower.vision_model.*`` / ``multi_modal_projector.*`` keys of that layout, and the
  ``vision_model.`` level of the official layout, are mapped by transformers itself.
* Config: ``Lfm2VlConfig.from_pretrained`` (the LFM2-VL-450M config says ``model_type: "lfm2-vl"``, which
  ``AutoConfig`` refuses without remote code).
* Processor: ``Lfm2VlProcessor.from_pretrained(folder)``. For the lfm2-vl layout that yields a
  ``Siglip2ImageProcessor`` (its ``preprocessor_config.json``) which transformers 5.23's ``Lfm2VlProcessor`` cannot
  call, so the processor is built from transformers' ``Lfm2VlImageProcessor`` with the folder's
  ``processor_config.json`` values (``lfm2vl_processor``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import Lfm2VlConfig, Lfm2VlForConditionalGeneration, Lfm2VlProcessor
from transformers.models.lfm2_vl import Lfm2VlImageProcessor

from convert.synthetic import CheckpointSpec, write_checkpoint
from tests.reference.common import REPO_ROOT

LAYOUTS = ("official-2.5", "lfm2-vl", "resaved-5.23")
SEED = 0
# Passed as `key_mapping=` (regex -> replacement, transformers' WeightRenaming) for the lfm2-vl layout only.
LFM2VL_KEY_MAPPING = {r"^language_model\.model\.": "model.language_model."}
# processor_config.json keys that Lfm2VlImageProcessor accepts (the rest configure Lfm2VlProcessor itself).
_IMAGE_PROCESSOR_KEYS = (
    "do_image_splitting", "downsample_factor", "encoder_patch_size", "max_image_tokens", "max_pixels_tolerance",
    "max_tiles", "min_image_tokens", "min_tiles", "tile_size", "use_thumbnail",
)  # fmt: skip
_PREPROCESSOR_KEYS = ("do_normalize", "do_rescale", "image_mean", "image_std", "rescale_factor", "resample")


def deterministic_torch() -> None:
    """One thread, deterministic kernels: CPU float32 results are then reproducible bit for bit."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)


@contextlib.contextmanager
def scratch_folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="lfm-edge-goldens-") as name:
        yield Path(name)


def make_checkpoint(root: Path, size: str, layout: str, seed: int = SEED) -> Path:
    """Writes the synthetic checkpoint to root/<size>-<layout> (the folder name is what converters see)."""
    return write_checkpoint(root / f"{size}-{layout}", CheckpointSpec(size, layout, seed))


def file_hashes(folder: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file of a checkpoint folder (ties the goldens to one generator output)."""
    out = {}
    for path in sorted(folder.iterdir()):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        out[path.name] = {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    return out


def scrub(text: str, *folders: Path) -> str:
    """Removes this machine's paths from a message: each folder becomes <name>, the repo root disappears."""
    for folder in folders:
        text = text.replace(str(folder.resolve()), f"<{folder.name}>").replace(str(folder), f"<{folder.name}>")
    text = text.replace(str(REPO_ROOT) + "/", "").replace(str(REPO_ROOT), ".")
    return re.sub(re.escape(tempfile.gettempdir()) + r"/lfm-edge-goldens-\w+", "<tmp>", text)


def error_record(exc: BaseException, *folders: Path) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": scrub(str(exc), *folders)}


def load_kwargs(layout: str, folder: Path, dtype: torch.dtype) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dtype": dtype, "output_loading_info": True}
    if layout == "lfm2-vl":
        kwargs["config"] = Lfm2VlConfig.from_pretrained(folder)
        kwargs["key_mapping"] = dict(LFM2VL_KEY_MAPPING)
    return kwargs


def load_model(folder: Path, layout: str, dtype: torch.dtype) -> tuple[Any, dict[str, Any]]:
    """The model in eval mode and the loading info (sorted lists)."""
    model, info = Lfm2VlForConditionalGeneration.from_pretrained(folder, **load_kwargs(layout, folder, dtype))
    model.eval()
    return model, loading_info_record(info)


def loading_info_record(info: dict[str, Any]) -> dict[str, Any]:
    mismatched = [[name, list(old), list(new)] for name, old, new in sorted(info.get("mismatched_keys", ()))]
    return {
        "missing_keys": sorted(info.get("missing_keys", ())),
        "unexpected_keys": sorted(info.get("unexpected_keys", ())),
        "mismatched_keys": mismatched,
        "error_msgs": [str(msg) for msg in info.get("error_msgs", ())],
    }


def load_processor(folder: Path, layout: str) -> tuple[Any, dict[str, Any]]:
    """The processor to use for the layout, and how it was obtained (with the error of the direct way, if any)."""
    processor = Lfm2VlProcessor.from_pretrained(folder, trust_remote_code=False)
    record: dict[str, Any] = {
        "from_pretrained_image_processor": type(processor.image_processor).__name__,
        "how": "Lfm2VlProcessor.from_pretrained(folder)",
    }
    if isinstance(processor.image_processor, Lfm2VlImageProcessor):
        return processor, record
    try:  # shows why the folder's own processor cannot be used
        processor(images=[_probe_image()], text="<image>")
    except Exception as exc:
        record["from_pretrained_error"] = error_record(exc, folder)
    processor = lfm2vl_processor(folder, processor)
    record["how"] = (
        "Lfm2VlProcessor(image_processor=Lfm2VlImageProcessor(**processor_config.json tiling keys, "
        "**preprocessor_config.json normalisation keys), tokenizer=<from_pretrained>, chat_template=<from_pretrained>)"
    )
    record["image_processor_kwargs"] = _lfm2vl_image_processor_kwargs(folder)
    return processor, record


def _probe_image() -> Any:
    from PIL import Image

    return Image.new("RGB", (64, 64), (128, 64, 32))


def _lfm2vl_image_processor_kwargs(folder: Path) -> dict[str, Any]:
    tiling = json.loads((folder / "processor_config.json").read_text(encoding="utf-8"))
    preprocessing = json.loads((folder / "preprocessor_config.json").read_text(encoding="utf-8"))
    kwargs = {key: tiling[key] for key in _IMAGE_PROCESSOR_KEYS if key in tiling}
    kwargs.update({key: preprocessing[key] for key in _PREPROCESSOR_KEYS if key in preprocessing})
    return kwargs


def lfm2vl_processor(folder: Path, loaded: Any) -> Any:
    image_processor = Lfm2VlImageProcessor(**_lfm2vl_image_processor_kwargs(folder))
    return Lfm2VlProcessor(
        image_processor=image_processor, tokenizer=loaded.tokenizer, chat_template=loaded.chat_template
    )


def parameter_count(model: Any) -> dict[str, Any]:
    """`model.parameters()` yields a tied parameter once: that is the tied-embedding-counted-once total."""
    tied = model.lm_head.weight is model.get_input_embeddings().weight
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "lm_head_tied_to_embed_tokens": bool(tied),
        "state_dict_entries": len(model.state_dict()),
    }
