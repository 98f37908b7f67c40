"""Default thread count: physical cores from /proc/cpuinfo, within the affinity mask (parsing only, no timing)."""

from __future__ import annotations

from lfm_edge.native.cpu import MAX_DEFAULT_THREADS, default_threads, physical_cores


def _cpuinfo(*cpus: tuple[int, int, int]) -> str:
    """A /proc/cpuinfo text: one block per (processor, physical id, core id)."""
    blocks = [
        f"processor\t: {cpu}\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nphysical id\t: {package}\n"
        f"siblings\t: 4\ncore id\t\t: {core}\ncpu cores\t: 2\nflags\t\t: fpu sse avx2\n"
        for cpu, package, core in cpus
    ]
    return "\n".join(blocks) + "\n"


SMT = _cpuinfo((0, 0, 0), (1, 0, 1), (2, 0, 0), (3, 0, 1))  # 2 cores, 2 hyper-threads each (Linux numbering)
TWO_SOCKETS = _cpuinfo((0, 0, 0), (1, 0, 1), (2, 1, 0), (3, 1, 1))  # same core ids on another package


def test_hyper_threads_count_once() -> None:
    assert physical_cores(SMT) == 2
    assert physical_cores(SMT, allowed={0, 2}) == 1  # both threads of core 0
    assert physical_cores(SMT, allowed={0, 3}) == 2


def test_core_ids_are_per_package() -> None:
    assert physical_cores(TWO_SOCKETS) == 4
    assert physical_cores(TWO_SOCKETS, allowed={2, 3}) == 2


def test_no_core_ids_is_unknown() -> None:
    arm = "processor\t: 0\nBogoMIPS\t: 48.00\n\nprocessor\t: 1\nBogoMIPS\t: 48.00\n"
    assert physical_cores(arm) is None
    assert physical_cores("") is None
    assert physical_cores(SMT, allowed={7}) is None


def test_default_is_within_bounds() -> None:
    assert 1 <= default_threads() <= MAX_DEFAULT_THREADS
