"""Shared fixtures: tiny synthetic checkpoints, generated once per session (seconds each)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from convert.synthetic import CheckpointSpec, write_checkpoint

GOLDENS = Path(__file__).parent / "goldens"
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture(scope="session")
def synthetic_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """checkpoint(layout="official-2.5", size="tiny", seed=0) -> folder, cached for the session."""
    cache: dict[CheckpointSpec, Path] = {}

    def make(layout: str = "official-2.5", size: str = "tiny", seed: int = 0) -> Path:
        spec = CheckpointSpec(size, layout, seed)
        if spec not in cache:
            cache[spec] = write_checkpoint(tmp_path_factory.mktemp("ckpt") / f"{size}-{layout}-{seed}", spec)
        return cache[spec]

    return make
