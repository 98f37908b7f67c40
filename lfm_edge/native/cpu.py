"""Physical CPU cores this process may run on: the default thread count of llama.cpp contexts.

llama.cpp's matrix kernels keep a core's vector units busy; a second hyper-thread on the same core adds little and
often slows decoding down (the two threads share the core and its caches). So the default is one thread per
physical core among the CPUs the process is allowed to use (its affinity mask: containers and `taskset` narrow it).

On ARM boards the cores may not be alike (big.LITTLE: an RK3588 has 4 Cortex-A76 and 4 Cortex-A55). llama.cpp
splits each matrix evenly between its threads and waits for the slowest, so a thread on a little core holds the big
ones back: the default there is the number of big cores, read from /sys (cpu_capacity, else the highest clock).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable
from pathlib import Path

MAX_DEFAULT_THREADS = 8  # past this, decode is bound by memory bandwidth on the machines this targets
# Cores within this fraction of the fastest one count as big: RK3588's two A76 clusters are binned at 2.256 and
# 2.4 GHz (0.94), its A55s run at 1.8 GHz (0.75) with a capacity of 414 against 1024.
BIG_CORE_FRACTION = 0.85
ARM_MACHINES = ("aarch64", "arm64", "armv7l", "armv8l")
SYS_CPU = "/sys/devices/system/cpu"

SysReader = Callable[[str], str | None]  # a /sys path -> its text, None when missing


def physical_cores(cpuinfo: str, allowed: Iterable[int] | None = None) -> int | None:
    """Distinct (physical id, core id) pairs among the processors of a /proc/cpuinfo text that are in `allowed`
    (all when None). None when the text names no core ids (many ARM kernels do not)."""
    wanted = None if allowed is None else set(allowed)
    cores: set[tuple[str, str]] = set()
    for block in cpuinfo.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "processor" not in fields or "core id" not in fields:
            continue
        if wanted is not None and (not fields["processor"].isdigit() or int(fields["processor"]) not in wanted):
            continue
        cores.add((fields.get("physical id", "0"), fields["core id"]))
    return len(cores) or None


def processors(cpuinfo: str) -> list[int]:
    """The processor numbers a /proc/cpuinfo text lists."""
    numbers = []
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "processor" and value.strip().isdigit():
            numbers.append(int(value))
    return numbers


def _number(text: str | None) -> int | None:
    return int(text.strip()) if text is not None and text.strip().isdigit() else None


def core_speeds(cpus: Iterable[int], read: SysReader) -> dict[int, int] | None:
    """Each CPU's relative speed from /sys: cpu_capacity (arm64 device trees give it: 1024 for the fastest core),
    else cpufreq's cpuinfo_max_freq. None when some CPU has neither (the cores are then taken as alike)."""
    for name in ("cpu_capacity", "cpufreq/cpuinfo_max_freq"):
        speeds = {cpu: _number(read(f"{SYS_CPU}/cpu{cpu}/{name}")) for cpu in cpus}
        if speeds and all(speed for speed in speeds.values()):
            return {cpu: int(speed or 0) for cpu, speed in speeds.items()}
    return None


def big_cores(cpus: Iterable[int], read: SysReader) -> list[int]:
    """The CPUs within BIG_CORE_FRACTION of the fastest one (all of them when /sys does not tell them apart)."""
    chosen = sorted(cpus)
    speeds = core_speeds(chosen, read)
    if speeds is None:
        return chosen
    fastest = max(speeds.values())
    return [cpu for cpu in chosen if speeds[cpu] >= BIG_CORE_FRACTION * fastest]


def arm_threads(cpuinfo: str, read: SysReader, allowed: Iterable[int] | None = None) -> int:
    """The default thread count of an ARM machine: its big cores among the allowed CPUs (ARM cores have no SMT)."""
    wanted = None if allowed is None else set(allowed)
    cpus = [cpu for cpu in processors(cpuinfo) if wanted is None or cpu in wanted]
    if not cpus:  # a cpuinfo without processor lines: trust the affinity mask, else the CPU count
        cpus = sorted(wanted) if wanted else list(range(os.cpu_count() or 1))
    return max(1, min(MAX_DEFAULT_THREADS, len(big_cores(cpus, read))))


def read_sys(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def allowed_cpus() -> set[int] | None:
    """The CPUs this process may run on (None where the OS does not say: macOS, Windows)."""
    getter = getattr(os, "sched_getaffinity", None)
    return set(getter(0)) if getter is not None else None


def default_threads() -> int:
    """One thread per physical core this process may use, at most MAX_DEFAULT_THREADS; logical CPUs where the
    topology is unknown; on ARM, the big cores only."""
    allowed = allowed_cpus()
    logical = len(allowed) if allowed else (os.cpu_count() or 1)
    cpuinfo = read_sys("/proc/cpuinfo") or ""
    if platform.machine().lower() in ARM_MACHINES:
        return min(logical, arm_threads(cpuinfo, read_sys, allowed))
    cores = physical_cores(cpuinfo, allowed)
    return max(1, min(MAX_DEFAULT_THREADS, cores or logical, logical))
