"""The fuzz run of `make fuzz-parsers`, in miniature: its generator and checks stay valid as the parsers change."""

from __future__ import annotations

import pytest

from benchmarks.bench_parse import hostile_cases
from benchmarks.fuzz_checks import CHECKS
from benchmarks.fuzz_parsers import run_seeded


@pytest.mark.parametrize("parser", list(CHECKS))
def test_seeded_fuzz_in_miniature(parser: str) -> None:
    result = run_seeded(parser, CHECKS[parser], count=150, seed=7)
    assert result["failures"] == 0, result["first_failures"]
    assert result["valid_inputs_round_tripped"] > 20


def test_hostile_cases_are_about_one_megabyte() -> None:
    sizes = {name: len(text) for name, text in hostile_cases().items()}
    assert len(sizes) > 50
    assert all(900_000 <= size <= 1_000_100 for size in sizes.values()), sizes
