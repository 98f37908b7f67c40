"""Which two GGUF files to load: a text .gguf (its mmproj beside it), a folder holding the pair, or a Hugging Face
repo id (default LiquidAI/LFM2.5-VL-450M-GGUF) through huggingface_hub's cache, offline first.

When several mmproj files are offered, the one of the fastest weight type for this CPU is chosen
(lfm_edge.vision.weights); an explicit mmproj always wins."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from lfm_edge.errors import ModelError
from lfm_edge.vision.weights import pick_mmproj

log = logging.getLogger(__name__)

DEFAULT_REPO = "LiquidAI/LFM2.5-VL-450M-GGUF"
DEFAULT_QUANT = "Q4_0"


@dataclass(frozen=True)
class ModelFiles:
    text: Path
    mmproj: Path | None


def _is_mmproj(path: Path) -> bool:
    return path.name.lower().startswith("mmproj")


def _pick_mmproj(candidates: list[Path]) -> Path | None:
    chosen = pick_mmproj(candidates)
    if chosen is not None and len(candidates) > 1:
        log.info("mmproj for this CPU: %s (of %d offered)", chosen.name, len(candidates))
    return chosen


def files_in_folder(folder: Path, quant: str | None = None) -> ModelFiles:
    ggufs = sorted(folder.glob("*.gguf"))
    texts = [p for p in ggufs if not _is_mmproj(p)]
    if quant:
        texts = [p for p in texts if p.stem.upper().endswith(quant.upper())]
    if len(texts) != 1:
        found = ", ".join(p.name for p in ggufs) or "no .gguf files"
        hint = f" matching --quant {quant}" if quant else "; pick one with --quant"
        raise ModelError(f"{folder} must hold exactly one text .gguf{hint} (found: {found})")
    return ModelFiles(texts[0], _pick_mmproj([p for p in ggufs if _is_mmproj(p)]))


def resolve(model: str | Path, *, mmproj: str | Path | None = None, quant: str | None = None) -> ModelFiles:
    """Local paths win; anything else of the form owner/name is a Hugging Face repo id."""
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelError(f"{path} is not a .gguf file: convert the checkpoint first with `lfm-edge convert`")
        beside = [p for p in path.parent.glob("mmproj*.gguf") if p != path]
        found = ModelFiles(path, Path(mmproj) if mmproj else _pick_mmproj(beside))
    elif path.is_dir():
        found = files_in_folder(path, quant)
        found = ModelFiles(found.text, Path(mmproj) if mmproj else found.mmproj)
    elif str(model).count("/") == 1 and not str(model).startswith((".", "/", "~")):
        found = _from_hub(str(model), quant or DEFAULT_QUANT)
        found = ModelFiles(found.text, Path(mmproj) if mmproj else found.mmproj)
    else:
        raise ModelError(f"{model} does not exist: pass a .gguf file, a folder holding one, or a Hugging Face repo id")
    if found.mmproj is not None and not found.mmproj.is_file():
        raise ModelError(f"mmproj {found.mmproj} does not exist")
    return found


def _from_hub(repo: str, quant: str) -> ModelFiles:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = [f"*{quant}.gguf", "mmproj*.gguf"]
    try:
        folder = Path(snapshot_download(repo, allow_patterns=patterns, local_files_only=True))
        return files_in_folder(folder, quant)
    except (LocalEntryNotFoundError, ModelError, FileNotFoundError):
        log.info("%s (%s) is not in the Hugging Face cache; downloading", repo, quant)
    try:
        folder = Path(snapshot_download(repo, allow_patterns=patterns))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise ModelError(
            f"cannot download {repo} ({quant}) from the Hugging Face Hub ({type(exc).__name__}); download it "
            f"where you have a network: `huggingface-cli download {repo} --include '*{quant}.gguf' 'mmproj*.gguf'` "
            "(it lands in the cache under HF_HOME), or pass a local .gguf path"
        ) from exc
    return files_in_folder(folder, quant)
