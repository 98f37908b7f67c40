"""What llama.cpp's own converter writes for the official models of lfm_edge.image.family (reference venv, ~30 s).

    python -m tests.reference.family_goldens

Liquid AI's GGUF repos hold mmproj files made by llama.cpp's converter: no ``lfm_edge.processor.*`` keys, and the
``general.*`` names the converter derives from the checkpoint folder's name. For each table model that has a
synthetic layout here, the tiny synthetic checkpoint (seed 0) is written to a folder named as the official repo
(``LFM2-VL-450M``, ``LFM2.5-VL-450M``) and converted with the vendored ``convert_hf_to_gguf.py --mmproj --outtype
f32`` (tests/reference/llamacpp_convert.py); the file is recorded as in tests/goldens/llamacpp (metadata in file
order, tensors with sha256). tests/test_family.py converts the same checkpoint with lfm_edge's converter minus its
processor keys, checks it equals this record, and then checks the settings lfm_edge picks for it give
transformers' crops and token sequence (tests/goldens/image). Output: tests/goldens/family/<model>-mmproj-f32.json.
"""

from __future__ import annotations

import time
from pathlib import Path

from convert.synthetic import CheckpointSpec, write_checkpoint
from tests.reference.common import GOLDENS, write_json
from tests.reference.hf_checkpoints import scratch_folder
from tests.reference.llamacpp_goldens import LLAMA_CPP, PATCH_DOC, _relative, convert, dump_gguf

OUT = GOLDENS / "family"
# table model -> (synthetic layout with its official files, image golden variant holding transformers' output)
MODELS = {
    "LFM2-VL-450M": ("lfm2-vl", "lfm2_vl_450m"),
    "LFM2.5-VL-450M": ("official-2.5", "official"),
    # Its config.json is not public here: the LFM2-VL-450M structure stands in; only the name is LFM2-VL-1.6B's.
    "LFM2-VL-1.6B": ("lfm2-vl", "lfm2_vl_1_6b"),
}


def record(name: str, layout: str, scratch: Path) -> dict[str, object]:
    folder = write_checkpoint(scratch / name, CheckpointSpec("tiny", layout, 0))
    out = scratch / f"{name}-mmproj-f32.gguf"
    run = convert(folder, out, ["--outtype", "f32", "--mmproj"])
    result: dict[str, object] = {
        "generator": "python -m tests.reference.family_goldens",
        "checkpoint": {
            "folder_name": name,
            "synthetic": f"python -m convert.synthetic OUTDIR/{name} --size tiny --layout {layout} --seed 0",
        },
        "image_golden": f"tests/goldens/image/{MODELS[name][1]}.json",
        "converter": {"script": _relative(LLAMA_CPP / "convert_hf_to_gguf.py"), "patch": PATCH_DOC, **run},
    }
    if run["returncode"] != 0:
        raise SystemExit(f"{name}: the converter failed: {run.get('error')}")
    result.update(dump_gguf(out))
    return result


def main() -> int:
    with scratch_folder() as scratch:
        for name, (layout, _) in MODELS.items():
            start = time.monotonic()
            write_json(OUT / f"{name}-mmproj-f32.json", record(name, layout, scratch))
            print(f"wrote tests/goldens/family/{name}-mmproj-f32.json ({time.monotonic() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
