"""Default threads on ARM boards from sample /proc/cpuinfo and /sys texts of a Pi 4, a Pi 5 and an Orange Pi 5
(RK3588, 4 big + 4 little cores): tests/data/cpu/."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfm_edge.native import cpu

DATA = Path(__file__).parent / "data" / "cpu"


def _board(name: str, drop: str | None = None) -> tuple[str, cpu.SysReader]:
    """The board's cpuinfo text and a /sys reader over its dump (lines `path:value`), without files named `drop`."""
    values = {}
    for line in (DATA / f"{name}.sys").read_text(encoding="utf-8").splitlines():
        path, _, value = line.partition(":")
        if drop is None or not path.endswith(drop):
            values[path] = value
    return (DATA / f"{name}.cpuinfo").read_text(encoding="utf-8"), values.get


@pytest.mark.parametrize(("board", "expected"), [("pi4", 4), ("pi5", 4), ("rk3588", 4)])
def test_default_is_the_big_cores(board: str, expected: int) -> None:
    cpuinfo, read = _board(board)
    assert cpu.processors(cpuinfo) == list(range(8 if board == "rk3588" else 4))
    assert cpu.physical_cores(cpuinfo) is None  # arm64 kernels name no core ids: /sys decides
    assert cpu.arm_threads(cpuinfo, read) == expected


def test_rk3588_big_cores_are_the_a76_clusters() -> None:
    _, read = _board("rk3588")
    assert cpu.big_cores(range(8), read) == [4, 5, 6, 7]
    # Without cpu_capacity the clocks decide: the 2.256 GHz cluster is big beside the 2.4 GHz one, the 1.8 GHz A55s not
    _, by_clock = _board("rk3588", drop="cpu_capacity")
    assert cpu.core_speeds(range(8), by_clock) == {
        n: f for n, f in enumerate([1800000] * 4 + [2256000] * 2 + [2400000] * 2)
    }
    assert cpu.big_cores(range(8), by_clock) == [4, 5, 6, 7]


def test_affinity_mask_narrows_the_choice() -> None:
    cpuinfo, read = _board("rk3588")
    assert cpu.arm_threads(cpuinfo, read, allowed={0, 1, 2, 3}) == 4  # taskset on the little cluster: all of it
    assert cpu.arm_threads(cpuinfo, read, allowed={0, 1, 6}) == 1  # one big core beats two little ones
    pi4, pi4_read = _board("pi4")
    assert cpu.arm_threads(pi4, pi4_read, allowed={2, 3}) == 2


def test_unknown_speeds_take_the_cores_as_alike() -> None:
    cpuinfo, _ = _board("rk3588")
    assert cpu.core_speeds(range(8), lambda _path: None) is None
    assert cpu.arm_threads(cpuinfo, lambda _path: None) == 8
    assert cpu.arm_threads("", lambda _path: None, allowed={0, 1}) == 2  # no processor lines: the affinity mask
