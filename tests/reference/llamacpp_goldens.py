"""llama.cpp converter goldens: what the vendored `convert_hf_to_gguf.py` writes for the tiny synthetic checkpoints.

Run from the repository root, in the reference venv (~1 min)::

    python -m tests.reference.llamacpp_goldens

Each conversion runs ``python -m tests.reference.llamacpp_convert`` (the vendored converter, unchanged, with the one
documented ``get_vocab_base_pre`` patch) in a subprocess, into a temporary folder. Every GGUF is then read with the
vendored gguf-py ``gguf.GGUFReader``: ``ReaderField.contents()`` / ``.types`` for metadata, ``ReaderTensor`` (name,
``tensor_type``, ``shape`` in ggml ``ne`` order, ``data`` bytes) for tensors. Outputs, in tests/goldens/llamacpp/:

* ``{text,mmproj}-{f32,f16}.json``: tiny official-2.5 (``--outtype f32|f16``; mmproj with ``--mmproj``).
* ``lfm2-vl-{text,mmproj}-f32.json``: the LFM2-VL-450M layout (projector LayerNorm -> ``mm.input_norm``).
* ``resaved-5.23-error.json``: the transformers-5.23 re-save layout: the mmproj conversion fails; the text one works.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.reference.common import GOLDENS, REPO_ROOT, write_json
from tests.reference.hf_checkpoints import make_checkpoint, scratch_folder, scrub
from tests.reference.llamacpp_convert import LLAMA_CPP, PATCH_MARKER, PATCHED_PRE

OUT = GOLDENS / "llamacpp"
LONG_ARRAY = 16  # arrays longer than this are summarised (length, sha256, first items)
FIRST_ITEMS = 5
PATCH_DOC = (
    "tests/reference/llamacpp_convert.py wraps conversion.base.TextModel.get_vocab_base_pre: the original runs; "
    f"if it raises NotImplementedError (unknown pre-tokenizer hash) the wrapper returns {PATCHED_PRE!r}."
)


def gguf_reader() -> Any:
    sys.path.insert(0, str(LLAMA_CPP / "gguf-py"))
    from gguf import GGUFReader

    return GGUFReader


def canonical_sha256(values: list[Any]) -> str:
    """sha256 of json.dumps(values, ensure_ascii=False, separators=(",", ":")) in UTF-8."""
    text = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def field_record(field: Any) -> dict[str, Any]:
    names = [t.name for t in field.types]
    kind = names[0] if len(names) == 1 else f"{names[0]}[{']['.join(names[1:])}]"
    value = field.contents()
    record: dict[str, Any] = {"key": field.name, "type": kind}
    if isinstance(value, list) and len(value) > LONG_ARRAY:
        record.update({"length": len(value), "sha256": canonical_sha256(value), "first": value[:FIRST_ITEMS]})
    else:
        record["value"] = value
    return record


def tensor_record(tensor: Any, data_offset: int) -> dict[str, Any]:
    raw = tensor.data.tobytes()
    if len(raw) != int(tensor.n_bytes):
        raise AssertionError(f"{tensor.name}: {len(raw)} bytes read, {tensor.n_bytes} expected")
    return {
        "name": tensor.name,
        "type": tensor.tensor_type.name,
        "shape": [int(v) for v in tensor.shape],
        "n_elements": int(tensor.n_elements),
        "n_bytes": int(tensor.n_bytes),
        "offset": int(tensor.data_offset) - data_offset,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def dump_gguf(path: Path) -> dict[str, Any]:
    reader = gguf_reader()(str(path))
    fields = [f for name, f in reader.fields.items() if not name.startswith("GGUF.")]
    header = {name[5:]: reader.fields[name].contents() for name in reader.fields if name.startswith("GGUF.")}
    header.update({"alignment": int(reader.alignment), "data_offset": int(reader.data_offset)})
    return {
        "file": {"bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
        "header": header,
        "metadata": [field_record(f) for f in fields],
        "tensors": [tensor_record(t, int(reader.data_offset)) for t in reader.tensors],
    }


def convert(checkpoint: Path, out: Path, extra: list[str]) -> dict[str, Any]:
    """Runs the converter; returns the scrubbed command, return code, warnings and error line."""
    args = [str(checkpoint), *extra, "--outfile", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "tests.reference.llamacpp_convert", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [scrub(line, checkpoint, out.parent) for line in result.stderr.splitlines()]
    record: dict[str, Any] = {
        "command": ["convert_hf_to_gguf.py", *(scrub(a, checkpoint, out.parent) for a in args)],
        "returncode": result.returncode,
        "warnings": [line for line in lines if line.startswith("WARNING:") and line.strip() != "WARNING:hf-to-gguf:"],
        "patch_applied": any(PATCH_MARKER in line for line in lines),
    }
    if result.returncode != 0:
        errors = [line for line in lines if line and not line.startswith((" ", "INFO:", "WARNING:", "Traceback"))]
        record["error"] = errors[-1] if errors else "(no error line)"
        record["traceback_tail"] = [line for line in lines if line.startswith("  File")][-3:]
    return record


def golden(checkpoint: Path, scratch: Path, kind: str, outtype: str, prefix: str = "") -> dict[str, Any]:
    extra = ["--outtype", outtype, *(["--mmproj"] if kind == "mmproj" else [])]
    out = scratch / "gguf" / f"{prefix}{kind}-{outtype}.gguf"
    out.parent.mkdir(exist_ok=True)
    run = convert(checkpoint, out, extra)
    record = {
        "generator": "python -m tests.reference.llamacpp_goldens",
        "checkpoint": {"folder_name": checkpoint.name, "synthetic": _synthetic_args(checkpoint.name)},
        "converter": {"script": _relative(LLAMA_CPP / "convert_hf_to_gguf.py"), "patch": PATCH_DOC, **run},
    }
    if run["returncode"] == 0:
        record.update(dump_gguf(out))
        out.unlink()
    return record


def _synthetic_args(folder_name: str) -> str:
    size, layout = folder_name.split("-", 1)
    return f"python -m convert.synthetic OUTDIR --size {size} --layout {layout} --seed 0"


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return path.name


def _differences(official: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    ours = {m["key"]: m for m in official["metadata"]}
    theirs = {m["key"]: m for m in other["metadata"]}
    keys = sorted(set(ours) | set(theirs))
    return {
        "metadata_keys_differing": [k for k in keys if ours.get(k) != theirs.get(k)],
        "tensors_identical": official["tensors"] == other["tensors"],
    }


def resaved_record(checkpoint: Path, scratch: Path, official_text: dict[str, Any]) -> dict[str, Any]:
    text = golden(checkpoint, scratch, "text", "f32", prefix="resaved-")
    mmproj = golden(checkpoint, scratch, "mmproj", "f32", prefix="resaved-")
    converted = text["converter"]["returncode"] == 0
    return {
        "generator": "python -m tests.reference.llamacpp_goldens",
        "checkpoint": text["checkpoint"],
        "mmproj_f32": {"converter": mmproj["converter"]},
        "text_f32": {
            "converter": text["converter"],
            "compared_with_text-f32.json": _differences(official_text, text) if converted else None,
        },
    }


def main() -> int:
    outputs: dict[str, dict[str, Any]] = {}
    with scratch_folder() as scratch:
        official = make_checkpoint(scratch, "tiny", "official-2.5")
        for kind in ("text", "mmproj"):
            for outtype in ("f32", "f16"):
                start = time.monotonic()
                outputs[f"{kind}-{outtype}.json"] = golden(official, scratch, kind, outtype)
                print(f"{kind}-{outtype}: {time.monotonic() - start:.1f} s", flush=True)
        lfm2vl = make_checkpoint(scratch, "tiny", "lfm2-vl")
        for kind in ("text", "mmproj"):
            outputs[f"lfm2-vl-{kind}-f32.json"] = golden(lfm2vl, scratch, kind, "f32", prefix="lfm2-vl-")
        resaved = make_checkpoint(scratch, "tiny", "resaved-5.23")
        outputs["resaved-5.23-error.json"] = resaved_record(resaved, scratch, outputs["text-f32.json"])
    for name, record in outputs.items():
        write_json(OUT / name, record)
        print(f"wrote tests/goldens/llamacpp/{name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
