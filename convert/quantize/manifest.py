"""manifest.json (what each file is, with hashes) and a README.md model-card stub for a quantized folder."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import lfm_edge
from convert.gguf_out import atomic_output

log = logging.getLogger(__name__)
_BLOCK = 1 << 20


@dataclass(frozen=True)
class OutputFile:
    name: str
    role: str  # "text" or "mmproj"
    type: str
    size: int
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def source_files(folder: Path) -> list[Path]:
    """What identifies a checkpoint's weights: config.json and its model*.safetensors files, in name order."""
    return [folder / "config.json", *sorted(folder.glob("model*.safetensors"))]


def source_sha256(folder: Path) -> str:
    """One sha256 over config.json then every model*.safetensors file (name order), read as one stream."""
    digest = hashlib.sha256()
    for path in source_files(folder):
        with path.open("rb") as handle:
            while block := handle.read(_BLOCK):
                digest.update(block)
    return digest.hexdigest()


def describe_output(path: Path, role: str, type_name: str) -> OutputFile:
    return OutputFile(path.name, role, type_name, path.stat().st_size, file_sha256(path))


def write_text_atomically(target: Path, text: str) -> None:
    with atomic_output(target, force=True) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_manifest(outdir: Path, model_name: str, source: Path, files: Iterable[OutputFile]) -> Path:
    manifest = {
        "model": model_name,
        "source": {
            "files": [path.name for path in source_files(source)],
            "sha256": source_sha256(source),
        },
        "files": [asdict(entry) for entry in files],
        "created_with": f"lfm-edge {lfm_edge.__version__}",
    }
    target = outdir / "manifest.json"
    write_text_atomically(target, json.dumps(manifest, indent=2) + "\n")
    return target


def write_model_card(outdir: Path, model_name: str, files: Sequence[OutputFile], has_report: bool) -> Path:
    """A stub: the facts we know (files, types, sizes); the author adds license, base model and intended use."""
    rows = "\n".join(f"| `{f.name}` | {f.role} | {f.type} | {f.size:,} |" for f in files)
    texts = [f for f in files if f.role == "text"]
    mmprojs = [f for f in files if f.role == "mmproj"]
    example = (
        f"lfm-edge run {texts[0].name} 'Describe this image.' --image photo.jpg --mmproj {mmprojs[0].name}"
        if texts and mmprojs
        else ""
    )
    report = "\nQuality against the F16 file (KL divergence, top-1 agreement, perplexity): see `report.md`.\n"
    vision = (
        "\nVision weights: BF16 is lossless (the checkpoint is BF16) and encodes images fastest on CPUs with BF16 dot "
        "products (x86 AVX512_BF16); F16 suits ARM CPUs with FP16 arithmetic; Q8_0 is the smallest. `lfm-edge` "
        "picks the mmproj for the CPU it runs on when several are in the folder.\n"
        if len(mmprojs) > 1
        else ""
    )
    card = (
        f"---\nlibrary_name: gguf\ntags:\n- lfm2\n- gguf\n- llama.cpp\n---\n\n# {model_name} GGUF\n\n"
        f"GGUF files of `{model_name}` for llama.cpp, made with `lfm-edge quantize` "
        "(text model: llama.cpp's quantizer from an F16 conversion; mmproj: the converter).\n\n"
        "| File | Part | Type | Bytes |\n|---|---|---|---|\n"
        f"{rows}\n{vision}{report if has_report else ''}\n## Use\n\n```sh\n{example}\n```\n\n"
        "Hashes and the source checkpoint's sha256: `manifest.json`.\n\n"
        "TODO: license, base model, training data and intended use.\n"
    )
    target = outdir / "README.md"
    write_text_atomically(target, card)
    return target
