"""Physical CPU cores this process may run on: the default thread count of llama.cpp contexts.

llama.cpp's matrix kernels keep a core's vector units busy; a second hyper-thread on the same core adds little and
often slows decoding down (the two threads share the core and its caches). So the default is one thread per
physical core among the CPUs the process is allowed to use (its affinity mask: containers and `taskset` narrow it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

MAX_DEFAULT_THREADS = 8  # past this, decode is bound by memory bandwidth on the machines this targets


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


def allowed_cpus() -> set[int] | None:
    """The CPUs this process may run on (None where the OS does not say: macOS, Windows)."""
    getter = getattr(os, "sched_getaffinity", None)
    return set(getter(0)) if getter is not None else None


def default_threads() -> int:
    """One thread per physical core this process may use, at most MAX_DEFAULT_THREADS; logical CPUs where the
    topology is unknown."""
    allowed = allowed_cpus()
    logical = len(allowed) if allowed else (os.cpu_count() or 1)
    try:
        cores = physical_cores(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"), allowed)
    except OSError:
        cores = None
    return max(1, min(MAX_DEFAULT_THREADS, cores or logical, logical))
