"""Load manifest: what transformers 5.23 makes of each synthetic checkpoint layout.

Output: tests/goldens/model/load_manifest.json.

Run from the repository root, in the reference venv::

    python -m tests.reference.load_manifest      # tiny and full (~900 MB, one at a time) x 3 layouts, ~1 min

Where each field comes from:

* ``loading_info``: ``Lfm2VlForConditionalGeneration.from_pretrained(folder, output_loading_info=True, ...)``
  (missing / unexpected / mismatched keys, error messages). For the lfm2-vl layout it is recorded twice: plain
  (``without_key_mapping``, which leaves the text model randomly initialised) and with transformers' own
  ``key_mapping=`` argument (see ``tests/reference/hf_checkpoints.py``).
* ``autoconfig``: ``AutoConfig.from_pretrained(folder, trust_remote_code=False)`` — type or error.
* ``parameter_count``: ``sum(p.numel() for p in model.parameters())`` (a tied parameter is yielded once).
* ``model_state_dict``: ``model.state_dict()`` names and shapes (transformers 5.23's internal naming).
* ``safetensors``: ``safetensors.safe_open`` of ``model.safetensors``: metadata and every tensor's name/shape/dtype.
* ``save_pretrained``: ``model.save_pretrained(tmp)`` of tiny models (bfloat16) loaded from the official-2.5,
  resaved-5.23 and lfm2-vl folders, and of one built from the config (``_from_config``): the tensor table of each
  and its comparison with the synthetic layouts. transformers reverts its load-time renames on save, so only a
  model that was *not* loaded from a ``vision_model.`` checkpoint is saved without ``vision_model.``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors import safe_open
from transformers import AutoConfig, Lfm2VlConfig, Lfm2VlForConditionalGeneration

from tests.reference.common import GOLDENS, write_json
from tests.reference.hf_checkpoints import (
    LAYOUTS,
    LFM2VL_KEY_MAPPING,
    SEED,
    deterministic_torch,
    error_record,
    file_hashes,
    load_model,
    loading_info_record,
    make_checkpoint,
    parameter_count,
    scratch_folder,
)

OUTPUT = GOLDENS / "model" / "load_manifest.json"
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16"}


def safetensors_table(path: Path) -> dict[str, Any]:
    """Header of a .safetensors file: metadata and (name, shape, dtype) of every tensor, sorted by name."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = []
        for name in sorted(handle.keys()):
            view = handle.get_slice(name)
            tensors.append({"name": name, "shape": list(view.get_shape()), "dtype": view.get_dtype()})
    return {"metadata": metadata, "tensor_count": len(tensors), "tensors": tensors}


def _autoconfig(folder: Path) -> dict[str, Any]:
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    except Exception as exc:
        return {"error": error_record(exc, folder)}
    return {"class": type(config).__name__, "model_type": config.model_type}


def _without_key_mapping(folder: Path, dtype: torch.dtype) -> dict[str, Any]:
    """The lfm2-vl layout loaded with no key_mapping: what a plain from_pretrained does."""
    config = Lfm2VlConfig.from_pretrained(folder)
    _, info = Lfm2VlForConditionalGeneration.from_pretrained(
        folder, config=config, dtype=dtype, output_loading_info=True
    )
    return loading_info_record(info)


def checkpoint_record(folder: Path, size: str, layout: str) -> dict[str, Any]:
    """Everything the manifest says about one checkpoint folder."""
    dtype = torch.float32 if size == "tiny" else torch.bfloat16
    record: dict[str, Any] = {
        "size": size,
        "layout": layout,
        "seed": SEED,
        "files": file_hashes(folder),
        "autoconfig": _autoconfig(folder),
        "from_pretrained": {"dtype": _DTYPE_NAMES[dtype]},
        "safetensors": safetensors_table(folder / "model.safetensors"),
    }
    if layout == "lfm2-vl":
        record["without_key_mapping"] = _without_key_mapping(folder, dtype)
        record["from_pretrained"].update(
            {"config": "Lfm2VlConfig.from_pretrained(folder)", "key_mapping": dict(LFM2VL_KEY_MAPPING)}
        )
    model, info = load_model(folder, layout, dtype)
    record["loading_info"] = info
    record["parameter_count"] = parameter_count(model)
    record["model_state_dict"] = [[name, list(t.shape)] for name, t in sorted(model.state_dict().items())]
    record["model_config_class"] = type(model.config).__name__
    record["projector_use_layernorm"] = bool(model.config.projector_use_layernorm)
    return record


def _compare(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> dict[str, Any]:
    by_name_ours = {t["name"]: t for t in ours}
    by_name_theirs = {t["name"]: t for t in theirs}
    common = sorted(set(by_name_ours) & set(by_name_theirs))
    return {
        "names_identical": set(by_name_ours) == set(by_name_theirs),
        "only_in_save_pretrained": sorted(set(by_name_theirs) - set(by_name_ours)),
        "only_in_synthetic": sorted(set(by_name_ours) - set(by_name_theirs)),
        "shape_or_dtype_differs": [n for n in common if by_name_ours[n] != by_name_theirs[n]],
    }


def _same_names_as(table: dict[str, Any], synthetic: dict[str, dict[str, Any]]) -> list[str]:
    names = {t["name"] for t in table["tensors"]}
    return [layout for layout, ours in synthetic.items() if names == {t["name"] for t in ours["tensors"]}]


# How the model that is re-saved was made: (description, layout of the tiny checkpoint or None for from-config).
_RESAVE_SOURCES = {
    "from_pretrained_official-2.5": "official-2.5",
    "from_pretrained_resaved-5.23": "resaved-5.23",
    "from_pretrained_lfm2-vl_key_mapping": "lfm2-vl",
    "from_config": None,
}


def _resaved_model(scratch: Path, layout: str | None) -> Any:
    if layout is None:  # a model built from the config (as a fine-tune started from scratch): no load-time renames
        config = Lfm2VlConfig.from_pretrained(scratch / "tiny-official-2.5")
        return Lfm2VlForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model, _ = load_model(scratch / f"tiny-{layout}", layout, torch.bfloat16)
    return model


def resave_record(scratch: Path) -> dict[str, Any]:
    """model.save_pretrained(tmp) of tiny models made four ways, compared with the synthetic layouts' names."""
    synthetic = {layout: safetensors_table(scratch / f"tiny-{layout}" / "model.safetensors") for layout in LAYOUTS}
    record: dict[str, Any] = {}
    for source, layout in _RESAVE_SOURCES.items():
        target = scratch / f"save_pretrained-{source}"
        _resaved_model(scratch, layout).save_pretrained(target)
        table = safetensors_table(target / "model.safetensors")
        record[source] = {
            "files": sorted(path.name for path in target.iterdir()),
            "safetensors": table,
            "same_tensor_names_as_synthetic_layouts": _same_names_as(table, synthetic),
            "compare_with_synthetic_resaved-5.23": _compare(synthetic["resaved-5.23"]["tensors"], table["tensors"]),
        }
        if layout is not None:  # from_config weights are random
            record[source]["model_safetensors_sha256"] = file_hashes(target)["model.safetensors"]["sha256"]
    return record


def build_manifest(sizes: tuple[str, ...]) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "generator": "python -m tests.reference.load_manifest",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "checkpoints": {},
    }
    with scratch_folder() as scratch:
        for size in sizes:
            for layout in LAYOUTS:
                start = time.monotonic()
                folder = make_checkpoint(scratch, size, layout)
                manifest["checkpoints"][f"{size}-{layout}"] = checkpoint_record(folder, size, layout)
                if size == "tiny" and layout == LAYOUTS[-1]:
                    manifest["save_pretrained"] = resave_record(scratch)
                if size == "full":  # ~900 MB each: keep only one on disk
                    _remove(folder)
                print(f"{size}-{layout}: {time.monotonic() - start:.1f} s", flush=True)
    return manifest


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reference.load_manifest", description=__doc__)
    parser.parse_args(argv)
    deterministic_torch()
    write_json(OUTPUT, build_manifest(("tiny", "full")))
    print(f"wrote {OUTPUT.relative_to(GOLDENS.parent.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
