"""The processor config of the original model behind a GGUF from the Hugging Face Hub (lfm_edge.settings_source).

A GGUF that came through huggingface_hub lies in its cache as ``<cache>/models--Owner--Name-GGUF/snapshots/<rev>/``.
Its original repo is named by the GGUF's ``general.base_model.0.repo_url`` (llama.cpp's converter writes it from the
model card) or, failing that, is the GGUF repo id without ``-GGUF``. Its ``processor_config.json`` and
``preprocessor_config.json`` are read from the same cache; missing ones are downloaded once (a 404 is cached by
huggingface_hub too), with a short timeout, and never when ``HF_HUB_OFFLINE`` is set.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
_CACHE_FOLDER = re.compile(r"^models--([^/]+?)--(.+)$")
_REPO_URL = re.compile(r"^https://huggingface\.co/([\w.-]+/[\w.-]+?)/?$")


@dataclass(frozen=True)
class HubLocation:
    repo: str  # owner/name of the GGUF repo
    cache_dir: Path  # the huggingface_hub cache folder holding it


def locate(path: Path) -> HubLocation | None:
    """The Hub repo a file was downloaded from, read from its huggingface_hub cache path (not resolved: snapshot
    files are links into blobs/)."""
    parts = path.absolute().parts
    for index, part in enumerate(parts):
        match = _CACHE_FOLDER.match(part)
        if match and index + 1 < len(parts) and parts[index + 1] == "snapshots":
            return HubLocation(f"{match[1]}/{match[2]}", Path(*parts[:index]))
    return None


def original_repo(gguf_repo: str, metadata: Mapping[str, Any]) -> str | None:
    """The repo the GGUF was converted from: its base_model URL, else the GGUF repo id without -GGUF."""
    match = _REPO_URL.match(str(metadata.get("general.base_model.0.repo_url", "")))
    if match:
        return match[1]
    if gguf_repo.upper().endswith("-GGUF"):
        return gguf_repo[: -len("-GGUF")]
    return None


def offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "")
    return bool(constants.HF_HUB_OFFLINE) or flag.upper() in {"1", "ON", "YES", "TRUE"}


def fetch_configs(repo: str, cache_dir: Path, names: tuple[str, ...]) -> Path | None:
    """The snapshot folder holding whichever of ``names`` the repo has, or None when none could be had."""
    found = [_cached(repo, cache_dir, name) for name in names]
    if not any(found) and not offline():
        found = _download(repo, cache_dir, names)
    folders = {path.parent for path in found if path is not None}
    return folders.pop() if len(folders) == 1 else None


def _cached(repo: str, cache_dir: Path, name: str) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, name, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, EntryNotFoundError, OSError, ValueError):
        return None


def _download(repo: str, cache_dir: Path, names: tuple[str, ...]) -> list[Path | None]:
    """One request per file; the first failure other than "no such file" ends the attempt (no retries)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    found: list[Path | None] = []
    for name in names:
        try:
            found.append(Path(hf_hub_download(repo, name, cache_dir=cache_dir, etag_timeout=TIMEOUT_S)))
        except EntryNotFoundError:
            found.append(None)
        except Exception as exc:  # any failure of this optional lookup falls back to the next source
            log.info("cannot read %s of %s from the Hugging Face Hub (%s)", name, repo, type(exc).__name__)
            return []
    return found
